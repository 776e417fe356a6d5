//! Turns recordings of packetdrill runs (`XDPTCP_SHIM_RECORD=DIR`, one `PID.ops` file per
//! run) into seed corpora for the three fuzz targets:
//!
//! - `shim_calls/`: each recording as is, after a mode byte (SYN cookies `auto`);
//! - `engine_receive/`: the run's inbound TCP segments, in that target's record format
//!   (`[kind=1, dt, len_hi, len_lo, segment]`, the destination port moved to the simulated
//!   server's, the clock step `dt³` µs closest to the recorded one);
//! - `wire_parse/`: each inbound segment as a whole Ethernet frame.
//!
//! `scripts/fuzz.sh` runs it; the corpora stay out of git.
//!
//! Usage: `fuzz_seeds RECORDINGS_DIR CORPUS_DIR`

use std::path::Path;

use xdptcp::sim::SERVER_PORT;
use xdptcp::wire::ethernet;
use xdptcp_packetdrill::ops::Op;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, recordings, corpus] = args.as_slice() else {
        eprintln!("usage: fuzz_seeds RECORDINGS_DIR CORPUS_DIR");
        std::process::exit(2);
    };
    let corpus = Path::new(corpus);
    for target in ["shim_calls", "engine_receive", "wire_parse"] {
        std::fs::create_dir_all(corpus.join(target))?;
    }
    let mut count = 0usize;
    for entry in std::fs::read_dir(recordings)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "ops") {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        if bytes.is_empty() {
            continue;
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut shim = vec![0u8];
        shim.extend_from_slice(&bytes);
        std::fs::write(corpus.join("shim_calls").join(&name), shim)?;

        let mut engine = vec![0u8];
        let mut micros = 0u64;
        for (i, op) in Op::decode_all(&bytes).into_iter().enumerate() {
            match op {
                Op::Advance { micros: m } => micros += u64::from(m),
                Op::Packet(seg) => {
                    let ip = seg.to_ip();
                    let header = if seg.v6 { 40 } else { 20 };
                    let Some(tcp) = ip.get(header..) else {
                        continue;
                    };
                    let mut tcp = tcp.to_vec();
                    tcp[2..4].copy_from_slice(&SERVER_PORT.to_be_bytes());
                    let dt = (micros as f64).cbrt().round().min(255.0) as u8;
                    micros = 0;
                    let len = u16::try_from(tcp.len()).unwrap_or(u16::MAX);
                    engine.extend([1, dt]);
                    engine.extend(len.to_be_bytes());
                    engine.extend(&tcp[..usize::from(len)]);

                    let mut frame = vec![0u8; ethernet::HEADER_LEN];
                    let ethertype = if seg.v6 {
                        ethernet::ETHERTYPE_IPV6
                    } else {
                        ethernet::ETHERTYPE_IPV4
                    };
                    frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
                    frame.extend_from_slice(&ip);
                    std::fs::write(corpus.join("wire_parse").join(format!("{name}-{i}")), frame)?;
                }
                _ => {}
            }
        }
        std::fs::write(corpus.join("engine_receive").join(&name), engine)?;
        count += 1;
    }
    println!(
        "fuzz_seeds: {count} recordings turned into seeds under {}",
        corpus.display()
    );
    Ok(())
}
