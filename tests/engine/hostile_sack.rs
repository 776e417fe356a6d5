//! Hostile connected peers against loss recovery, as Linux fixed them after CVE-2019-11477,
//! 11478 and 11479: SACK blocks that would shred the scoreboard into a record per byte (and
//! every ACK into a walk of all of them), and D-SACK blocks that would undo every window
//! reduction. The peer is played by hand in front of a server that sends a bulk response.

use std::collections::BTreeMap;
use std::time::Duration;

use xdptcp::sim::Rng;
use xdptcp::tcp::ConnId;
use xdptcp::wire::SeqNumber;
use xdptcp::wire::tcp::{Flags, Options};

use crate::netsim::{Bulk, Pattern};
use crate::util::*;

/// What the server sends.
const LEN: usize = 200_000;

/// The peer of a server that writes [`LEN`] bytes as soon as it is connected, and what the
/// peer has received.
struct Hostile {
    p: RawPeer<Bulk>,
    id: ConnId,
    rx: Received,
    /// The first flight (the initial window), in order.
    flight: Vec<Sent>,
}

impl Hostile {
    /// Handshake with SACK and window scale 7, no timestamps (so four SACK blocks fit).
    fn new() -> Hostile {
        let mut p = RawPeer::new(server_config(), Bulk::new(LEN, false));
        let (_, flight) = p.handshake_answered(Some(7), false);
        assert_eq!(flight.len(), 10, "the initial window: {flight:?}");
        let id = p.engine.find(&p.tuple()).expect("established");
        let rx = Received {
            pattern: Pattern::new(u64::from(PORT)),
            base: p.rcv_nxt,
            ooo: BTreeMap::new(),
            fin: false,
        };
        Hostile { p, id, rx, flight }
    }

    /// A duplicate ACK (of what was received in order) with these SACK blocks.
    fn sack(&mut self, blocks: &[(SeqNumber, SeqNumber)]) -> Vec<Sent> {
        let mut o = Options::default();
        o.sack_blocks[..blocks.len()].copy_from_slice(blocks);
        o.sack_count = blocks.len() as u8;
        let f = self.p.frame(self.p.snd_nxt, Flags::ACK, o, &[]);
        self.p.deliver(&f)
    }

    /// The scoreboard's records, and the records it has looked at so far.
    fn census(&self) -> (usize, u64) {
        self.p.engine.scoreboard_census(self.id).expect("connected")
    }

    /// Takes `segs`, then plays a receiver that ACKs what arrives in order until the server's
    /// FIN, checking every byte. With `shred`, each ACK is followed by one with four 1-byte
    /// SACK blocks at random in what the server sent in answer, and the scoreboard must hold
    /// no more records than those segments.
    fn receive_all(&mut self, mut segs: Vec<Sent>, mut shred: Option<&mut Rng>) {
        for _ in 0..20_000 {
            self.rx.take(&mut self.p, &segs);
            if self.rx.fin {
                assert_eq!(self.rx.received(&self.p), LEN);
                return;
            }
            self.p.now = self.p.now + Duration::from_millis(1);
            segs = self.p.send(&[]);
            let sent: Vec<&Sent> = segs
                .iter()
                .filter(|s| s.is_data() || s.has(Flags::FIN))
                .collect();
            if let (Some(rng), Some(last)) = (shred.as_deref_mut(), sent.last()) {
                let una = self.p.rcv_nxt;
                let span = u64::from(last.end() - una);
                let blocks = [0; 4].map(|_| {
                    let l = una + (rng.next_u64() % span) as u32;
                    (l, l + 1u32)
                });
                let in_flight = sent.len();
                segs.extend(self.sack(&blocks));
                let (records, _) = self.census();
                assert!(
                    records <= in_flight,
                    "{records} records for {in_flight} segments"
                );
            }
            if segs.is_empty() {
                segs = self.p.advance(Duration::from_millis(300));
            }
        }
        panic!(
            "no FIN after 20 000 rounds: {} bytes",
            self.rx.received(&self.p)
        );
    }
}

/// A receiver's side of the transfer: RCV.NXT is the [`RawPeer`]'s, out-of-order segments
/// wait here for the hole before them.
struct Received {
    pattern: Pattern,
    /// The server's ISN + 1.
    base: SeqNumber,
    ooo: BTreeMap<u32, Sent>,
    fin: bool,
}

impl Received {
    /// Bytes received in order.
    fn received(&self, p: &RawPeer<Bulk>) -> usize {
        (p.rcv_nxt - self.base) as usize - usize::from(self.fin)
    }

    /// Takes data segments (checking each byte in order) and the FIN.
    fn take(&mut self, p: &mut RawPeer<Bulk>, segs: &[Sent]) {
        for s in segs.iter().filter(|s| s.is_data() || s.has(Flags::FIN)) {
            if s.seq.gt(p.rcv_nxt) {
                self.ooo.insert(s.seq - self.base, s.clone());
            } else if s.end().gt(p.rcv_nxt) {
                self.accept(p, s);
            }
            while let Some(next) = self.ooo.remove(&(p.rcv_nxt - self.base)) {
                self.accept(p, &next);
            }
        }
    }

    fn accept(&mut self, p: &mut RawPeer<Bulk>, s: &Sent) {
        let skip = (p.rcv_nxt - s.seq) as usize;
        let from = self.received(p);
        assert!(
            self.pattern.matches(from, &s.payload[skip..]),
            "bytes {from}.. differ"
        );
        p.rcv_nxt = s.end();
        self.fin = s.has(Flags::FIN);
    }
}

#[test]
fn a_sack_shredding_peer_leaves_the_scoreboard_small_its_cost_flat_and_the_transfer_exact() {
    let mut h = Hostile::new();
    let una = h.flight[0].seq;
    let top = h.flight[9].end();
    let first = h.flight[0].end();
    let mut rng = Rng::new(16);
    let mut at = |lo: SeqNumber, hi: SeqNumber| {
        let l = lo + (rng.next_u64() % u64::from(hi - lo - 1)) as u32;
        (l, l + 1u32)
    };
    // Forty thousand duplicate ACKs at SND.UNA, each with four 1-byte SACK blocks: two in the
    // first segment, two anywhere in flight. Under the old scoreboard each cut records in
    // two; here none SACKs anything, so none splits one.
    let mut costs = Vec::new();
    for _ in 0..40_000 {
        let blocks = [at(una, first), at(una, top), at(una, first), at(una, top)];
        let (_, before) = h.census();
        h.sack(&blocks);
        let (records, after) = h.census();
        assert!(records <= 10, "{records} records for 10 segments");
        costs.push(after - before);
    }
    let early = costs[..1000].iter().max().unwrap();
    let late = costs[costs.len() - 1000..].iter().max().unwrap();
    assert!(late <= early, "per-ACK cost grew from {early} to {late}");
    let st = h.p.engine.stats();
    assert_eq!(st.sack_blocks_rounded, 4 * 40_000, "{st}");
    assert_eq!(st.fast_retransmits + st.rto_retransmits, 0, "{st}");
    // Then the transfer, with a shredding ACK after every real one.
    let flight = std::mem::take(&mut h.flight);
    h.receive_all(flight, Some(&mut Rng::new(17)));
}

#[test]
fn a_one_byte_block_inside_a_lost_segment_does_not_split_its_retransmission() {
    let mut h = Hostile::new();
    let lost = h.flight[2].clone();
    let mut segs: Vec<Sent> = h
        .flight
        .iter()
        .filter(|s| s.seq != lost.seq)
        .cloned()
        .collect();
    h.rx.take(&mut h.p, &segs[..2]);
    // The hole's bytes "arrive" one at a time, then the rest of the flight is SACKed.
    for i in 0..200 {
        let b = lost.seq + (1 + i * 7) as u32;
        h.sack(&[(b, b + 1u32)]);
    }
    let answer = h.sack(&[(h.flight[3].seq, h.flight[9].end())]);
    let resent: Vec<&Sent> = answer.iter().filter(|s| s.is_data()).collect();
    assert!(
        resent
            .iter()
            .any(|s| s.seq == lost.seq && s.len() == lost.len()),
        "the lost segment goes out again whole: {resent:?}"
    );
    assert!(
        resent
            .iter()
            .all(|s| !s.seq.in_range(lost.seq + 1u32, lost.end())),
        "{resent:?}"
    );
    assert_eq!(h.p.engine.stats().fast_retransmits, 1);
    segs.drain(..2);
    segs.extend(answer);
    h.receive_all(segs, None);
}

/// A peer that lost the third segment of the first flight and SACKed the seven after it:
/// the server is in fast recovery and has retransmitted the hole once.
fn in_recovery() -> Hostile {
    let mut h = Hostile::new();
    let segs: Vec<Sent> = h.flight[..2].to_vec();
    h.rx.take(&mut h.p, &segs);
    let answer = h.sack(&[(h.flight[3].seq, h.flight[9].end())]);
    let lost = &h.flight[2];
    assert!(
        answer.iter().any(|s| s.seq == lost.seq && s.is_data()),
        "{answer:?}"
    );
    let st = h.p.engine.stats();
    assert_eq!((st.recovery_episodes, st.undos), (1, 0), "{st}");
    h
}

#[test]
fn a_dsack_for_data_never_retransmitted_does_not_undo_the_recovery() {
    // Linux `tcp_sacktag_one`: only a D-SACKed skb that was retransmitted counts toward
    // "undo_retrans". Segment 5 was never retransmitted.
    let mut h = in_recovery();
    let sacked = (h.flight[3].seq, h.flight[9].end());
    h.sack(&[(h.flight[5].seq, h.flight[5].end()), sacked]);
    let st = h.p.engine.stats();
    assert_eq!((st.undos, st.dsack_ignored), (0, 1), "{st}");
    // The D-SACK for the retransmitted segment itself does undo (RFC 2883 §5).
    let mut h = in_recovery();
    let hole = (h.flight[2].seq, h.flight[2].end());
    h.sack(&[hole, (hole.0, sacked.1)]);
    let st = h.p.engine.stats();
    assert_eq!((st.undos, st.dsack_ignored), (1, 0), "{st}");
}

#[test]
fn a_dsack_reaching_past_snd_max_does_not_undo_the_recovery() {
    // Linux `tcp_is_sackblock_valid`: "Too far in future". This one covers the
    // retransmission too.
    let mut h = in_recovery();
    let past = h.flight[9].end() + 100_000u32;
    h.sack(&[
        (h.flight[2].seq, past),
        (h.flight[2].seq - 1u32, past + 1u32),
    ]);
    let st = h.p.engine.stats();
    assert_eq!((st.undos, st.dsack_ignored), (0, 1), "{st}");
    assert_eq!(st.sack_blocks_rejected, 1, "the block after it, too: {st}");
}
