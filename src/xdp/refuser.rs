//! A handler for a port with no listener: every TCP/IPv4 segment that is not a RST gets the
//! RST of RFC 9293 §3.10.7.1 ("If the state is CLOSED ..."). It exercises the whole data path
//! (XDP → socket → handler → UMEM TX frame → peer) without the engine: the AF_XDP interop
//! tests (`tests/interop_xsk.rs`) run it to test the shell alone.

use crate::stats::Stats;
use crate::time::Instant;
use crate::tx::Tx;
use crate::xdp::worker::Handler;

/// Answers each TCP/IPv4 segment that is not itself a RST with the RST of a closed port.
#[derive(Default)]
pub struct Refuser {
    stats: Stats,
}

/// RFC 1071 Internet checksum over the concatenation of `chunks` (each of even length but
/// the last).
fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for c in chunks {
        for pair in c.chunks(2) {
            let word = if pair.len() == 2 {
                u16::from_be_bytes([pair[0], pair[1]])
            } else {
                u16::from_be_bytes([pair[0], 0])
            };
            sum += word as u32;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl Handler for Refuser {
    fn receive<T: Tx>(&mut self, _now: Instant, f: &[u8], tx: &mut T) {
        self.stats.rx_frames += 1;
        if f.len() < 54 || f[12..14] != [0x08, 0x00] || f[23] != 6 {
            return;
        }
        let ihl = (f[14] & 0x0f) as usize * 4;
        let total = u16::from_be_bytes([f[16], f[17]]) as usize;
        if ihl < 20 || f.len() < 14 + ihl + 20 || total > f.len() - 14 {
            return;
        }
        let t = &f[14 + ihl..];
        let doff = (t[12] >> 4) as usize * 4;
        let Some(payload) = total.checked_sub(ihl + doff) else {
            return;
        };
        let flags = t[13];
        if flags & 0x04 != 0 {
            return; // never answer a RST
        }
        let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
        let ack = u32::from_be_bytes([t[8], t[9], t[10], t[11]]);
        let seg_len = payload as u32 + u32::from(flags & 0x03 != 0);
        let (rseq, rack, rflags) = if flags & 0x10 != 0 {
            (ack, 0, 0x04)
        } else {
            (0, seq.wrapping_add(seg_len), 0x14)
        };
        let (src_ip, dst_ip) = (&f[26..30], &f[30..34]);
        let (sport, dport) = (&t[0..2], &t[2..4]);
        let sent = tx.send(54, |o| {
            o[0..6].copy_from_slice(&f[6..12]);
            o[6..12].copy_from_slice(&f[0..6]);
            o[12..14].copy_from_slice(&[0x08, 0x00]);
            let ip = &mut o[14..34];
            ip.copy_from_slice(&[
                0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]);
            ip[12..16].copy_from_slice(dst_ip);
            ip[16..20].copy_from_slice(src_ip);
            let c = checksum(&[ip]);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            let tcp = &mut o[34..54];
            tcp.fill(0);
            tcp[0..2].copy_from_slice(dport);
            tcp[2..4].copy_from_slice(sport);
            tcp[4..8].copy_from_slice(&rseq.to_be_bytes());
            tcp[8..12].copy_from_slice(&rack.to_be_bytes());
            tcp[12] = 5 << 4;
            tcp[13] = rflags;
            let pseudo = [dst_ip, src_ip, &[0u8, 6, 0, 20]].concat();
            let c = checksum(&[&pseudo, tcp]);
            tcp[16..18].copy_from_slice(&c.to_be_bytes());
        });
        if sent {
            self.stats.tx_frames += 1;
            self.stats.resets_sent += 1;
        }
    }

    fn poll_timers<T: Tx>(&mut self, _now: Instant, _tx: &mut T) {}

    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    fn stats(&self) -> Stats {
        self.stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_matches_the_rfc_1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2, complemented 220d.
        assert_eq!(
            checksum(&[&[0x00, 0x01, 0xf2, 0x03], &[0xf4, 0xf5, 0xf6, 0xf7]]),
            0x220d
        );
    }

    #[test]
    fn a_syn_gets_rst_ack_for_seq_plus_one_and_garbage_gets_nothing() {
        let mut syn = vec![0u8; 54];
        syn[12..14].copy_from_slice(&[0x08, 0x00]);
        syn[14] = 0x45;
        syn[16..18].copy_from_slice(&40u16.to_be_bytes());
        syn[23] = 6;
        syn[38..42].copy_from_slice(&1000u32.to_be_bytes());
        syn[46] = 5 << 4;
        syn[47] = 0x02;
        let mut r = Refuser::default();
        let mut out: Vec<Vec<u8>> = Vec::new();
        r.receive(Instant::ZERO, &syn, &mut out);
        assert_eq!(out.len(), 1);
        let t = &out[0][34..54];
        assert_eq!(t[13], 0x14, "RST+ACK");
        assert_eq!(&t[8..12], &1001u32.to_be_bytes());
        for len in 0..54 {
            r.receive(Instant::ZERO, &syn[..len], &mut out);
        }
        let mut bad = syn.clone();
        bad[16..18].copy_from_slice(&10u16.to_be_bytes());
        r.receive(Instant::ZERO, &bad, &mut out);
        assert_eq!(out.len(), 1, "truncated or inconsistent frames are ignored");
    }
}
