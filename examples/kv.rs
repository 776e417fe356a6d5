//! A line-based key-value store served by the xdptcp library: our own [`App`] on the engine,
//! on AF_XDP, without the `xdptcp` binary.
//!
//! ```sh
//! cargo build --release --example kv
//! sudo target/release/examples/kv --iface eth1 --port 7070 --duration 600
//! # from another host:
//! printf 'SET color blue\nGET color\nDEL color\nGET color\n' | nc 192.0.2.10 7070
//! # OK / VALUE blue / DELETED / NOT_FOUND
//! ```
//!
//! The protocol, one command per line (`\n` or `\r\n`), answered in order (pipelining is
//! fine): `SET key value` → `OK`, `GET key` → `VALUE value` or `NOT_FOUND`, `DEL key` →
//! `DELETED` or `NOT_FOUND`, `COUNT` → `COUNT n`; anything else → `ERROR ...`. A line longer
//! than 4 KiB gets an error and the connection is closed. Each worker (receive queue) keeps its
//! own store: with several queues a client sees the store of the queue its flow lands on.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant as StdInstant};

use anyhow::{Context, Result};
use clap::Parser;

use xdptcp::app::{App, Io};
use xdptcp::tcp::{Config, Engine, Listener, Secret};
use xdptcp::wire::ipv4::Repr as Ipv4;
use xdptcp::xdp::sys::{self, Interface};
use xdptcp::xdp::{LinkMss, Server, ServerConfig, XskConfig};

/// The longest command line accepted.
const MAX_LINE: usize = 4096;
/// Room a reply may need: `VALUE ` + a value from a line of at most `MAX_LINE` + newline.
const MAX_REPLY: usize = MAX_LINE + 16;
/// Keys per store at most (each worker's memory stays bounded).
const MAX_KEYS: usize = 100_000;

/// A key-value store, one per worker.
#[derive(Debug, Default)]
struct Kv {
    store: HashMap<Vec<u8>, Vec<u8>>,
    commands: u64,
    errors: u64,
}

/// Per connection: the start of a line that has not ended yet.
#[derive(Debug, Default)]
struct Line {
    partial: Vec<u8>,
}

impl Kv {
    /// Runs one command line (without its line ending) and returns the reply.
    fn execute(&mut self, line: &[u8]) -> Vec<u8> {
        self.commands += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut words = line.splitn(3, |&b| b == b' ');
        let reply = match (words.next(), words.next(), words.next()) {
            (Some(b"SET"), Some(key), Some(value)) if !key.is_empty() => {
                if self.store.len() >= MAX_KEYS && !self.store.contains_key(key) {
                    b"ERROR store full".to_vec()
                } else {
                    self.store.insert(key.to_vec(), value.to_vec());
                    b"OK".to_vec()
                }
            }
            (Some(b"GET"), Some(key), None) => match self.store.get(key) {
                Some(v) => [b"VALUE ", &v[..]].concat(),
                None => b"NOT_FOUND".to_vec(),
            },
            (Some(b"DEL"), Some(key), None) => match self.store.remove(key) {
                Some(_) => b"DELETED".to_vec(),
                None => b"NOT_FOUND".to_vec(),
            },
            (Some(b"COUNT"), None, None) => format!("COUNT {}", self.store.len()).into_bytes(),
            _ => {
                self.errors += 1;
                b"ERROR use SET key value | GET key | DEL key | COUNT".to_vec()
            }
        };
        [&reply[..], b"\n"].concat()
    }
}

impl App for Kv {
    type State = Line;

    fn on_data(&mut self, st: &mut Line, io: &mut Io<'_>, data: &[u8]) -> usize {
        let mut used = 0;
        while used < data.len() {
            // Backpressure: a command is read only when its reply surely fits; the rest stays
            // in the receive buffer and is offered again once the peer has read.
            if io.send_space() < MAX_REPLY {
                return used;
            }
            let rest = &data[used..];
            let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                if st.partial.len() + rest.len() > MAX_LINE {
                    return self.refuse(st, io, data.len());
                }
                st.partial.extend_from_slice(rest);
                return data.len();
            };
            if st.partial.len() + end > MAX_LINE {
                return self.refuse(st, io, data.len());
            }
            let reply = if st.partial.is_empty() {
                self.execute(&rest[..end])
            } else {
                let mut line = std::mem::take(&mut st.partial);
                line.extend_from_slice(&rest[..end]);
                self.execute(&line)
            };
            io.write(&reply);
            used += end + 1;
        }
        used
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("commands", self.commands),
            ("errors", self.errors),
            ("keys", self.store.len() as u64),
        ]
    }
}

impl Kv {
    /// A line too long: say so and close; whatever else arrives is ignored.
    fn refuse(&mut self, st: &mut Line, io: &mut Io<'_>, consumed: usize) -> usize {
        self.errors += 1;
        st.partial = Vec::new();
        io.write(b"ERROR line too long\n");
        io.close();
        consumed
    }
}

#[derive(Parser, Debug)]
#[command(about = "A line-based key-value store on the xdptcp engine, over AF_XDP")]
struct Args {
    /// The interface to serve on.
    #[arg(long)]
    iface: String,
    /// The local address to serve (default: every address of the interface).
    #[arg(long)]
    addr: Option<IpAddr>,
    /// The TCP port.
    #[arg(long, default_value_t = 7070)]
    port: u16,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 60)]
    duration: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    sys::check_privileges()?;
    let iface = Interface::lookup(&args.iface)?;
    let config = Config {
        local_mac: iface.mac,
        listeners: vec![Listener {
            addr: args.addr,
            port: args.port,
            keepalive: None,
            fastopen: None,
            options: Default::default(),
        }],
        // The MTU's MSS, clamped to what one frame of the default UMEM carries.
        mss: LinkMss::new(
            iface.mtu,
            XskConfig::default().frame_len()?,
            Ipv4::HEADER_LEN,
        )
        .mss,
        reset_unknown: iface.rx_queues <= 1,
        secret: Secret(sys::random_bytes().context("reading /dev/urandom")?),
        ..Config::default()
    };
    let now = sys::monotonic_now();
    let mut server = Server::start(
        ServerConfig::for_engine(&iface.name, &config, now),
        move |_queue| Engine::new(config.clone(), Kv::default(), now),
    )?;
    eprintln!(
        "kv: serving port {} on {} with {} worker(s) for {} s",
        args.port,
        iface.name,
        server.workers(),
        args.duration
    );
    let start = StdInstant::now();
    while start.elapsed() < Duration::from_secs(args.duration) {
        server.collect(Duration::from_millis(100));
    }
    let report = server.stop();
    eprintln!("kv: {}", report.totals.stats);
    let app: Vec<String> = report
        .totals
        .app
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    eprintln!("kv: {}", app.join(" "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::net::Ipv4Addr;

    use xdptcp::app::Shutdown;
    use xdptcp::tcp::{ConnId, FourTuple};
    use xdptcp::time::Instant;

    /// Offers `data` to the app on one connection with a send buffer of `capacity`; returns
    /// what was consumed.
    fn offer(
        kv: &mut Kv,
        st: &mut Line,
        send: &mut VecDeque<u8>,
        capacity: usize,
        data: &[u8],
    ) -> usize {
        let tuple = FourTuple {
            local_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            remote_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            local_port: 7070,
            remote_port: 40000,
        };
        let (mut shutdown, mut deadline) = (Shutdown::Open, None);
        let mut io = Io::new(
            ConnId(0),
            tuple,
            Instant::ZERO,
            send,
            capacity,
            &mut shutdown,
            &mut deadline,
        );
        kv.on_data(st, &mut io, data)
    }

    #[test]
    fn pipelined_commands_split_anywhere_get_their_replies_in_order() {
        let input = b"SET k v1\nGET k\r\nDEL k\nGET k\n";
        for split in 0..=input.len() {
            let (mut kv, mut st, mut send) = (Kv::default(), Line::default(), VecDeque::new());
            let n = offer(&mut kv, &mut st, &mut send, 1 << 16, &input[..split]);
            assert_eq!(n, split, "a partial line is carried");
            offer(&mut kv, &mut st, &mut send, 1 << 16, &input[split..]);
            let out: Vec<u8> = send.into_iter().collect();
            assert_eq!(
                out, b"OK\nVALUE v1\nDELETED\nNOT_FOUND\n",
                "split at {split}"
            );
        }
    }

    #[test]
    fn a_full_send_buffer_leaves_commands_unread() {
        let (mut kv, mut st, mut send) = (Kv::default(), Line::default(), VecDeque::new());
        let n = offer(
            &mut kv,
            &mut st,
            &mut send,
            MAX_REPLY + 3,
            b"COUNT\nCOUNT\n",
        );
        assert_eq!(n, 6, "the second waits for room");
        assert_eq!(send.len(), 8);
    }

    #[test]
    fn commands_get_their_replies() {
        let mut kv = Kv::default();
        assert_eq!(kv.execute(b"SET a hello world"), b"OK\n");
        assert_eq!(kv.execute(b"GET a\r"), b"VALUE hello world\n");
        assert_eq!(kv.execute(b"COUNT"), b"COUNT 1\n");
        assert_eq!(kv.execute(b"DEL a"), b"DELETED\n");
        assert_eq!(kv.execute(b"GET a"), b"NOT_FOUND\n");
        assert!(kv.execute(b"FLY away").starts_with(b"ERROR"));
        assert_eq!(kv.errors, 1);
    }
}
