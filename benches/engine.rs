//! Criterion benches of the engine, in memory: SYN → SYN-ACK with cookies, cookie ACK →
//! ESTABLISHED, one whole short HTTP-like connection, a lookup among 100 000 live
//! connections, and a duplicate ACK on a connection with data in flight, before and after a
//! peer shredded its scoreboard with 50 000 ACKs of 1-byte SACK blocks (issue 16). Also
//! prints the memory of an idle connection and of a TIME-WAIT entry, and the scoreboard's
//! records after the shredding.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use xdptcp::app::{App, Io};
use xdptcp::rng::Rng;
use xdptcp::tcp::time_wait::TimeWaitTable;
use xdptcp::tcp::{Config, Engine, FourTuple, Listener, Secret, SynCookieMode};
use xdptcp::time::Instant;
use xdptcp::tx::Tx;
use xdptcp::wire::SeqNumber;
use xdptcp::wire::ethernet::{self, ETHERTYPE_IPV4};
use xdptcp::wire::tcp::{Flags, Options, Repr as TcpRepr};
use xdptcp::wire::{IpRepr, TcpFrame, ipv4};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const PORT: u16 = 80;

/// A TX that reuses its frame buffers: the benches measure the engine, not the allocator.
#[derive(Default)]
struct Queue {
    frames: Vec<Vec<u8>>,
    len: usize,
}

impl Queue {
    fn clear(&mut self) {
        self.len = 0;
    }
    fn frames(&self) -> &[Vec<u8>] {
        &self.frames[..self.len]
    }
}

impl Tx for Queue {
    fn send<F: FnOnce(&mut [u8])>(&mut self, len: usize, build: F) -> bool {
        if self.len == self.frames.len() {
            self.frames.push(Vec::with_capacity(1600));
        }
        let f = &mut self.frames[self.len];
        f.clear();
        f.resize(len, 0);
        build(f);
        self.len += 1;
        true
    }
}

/// A tiny HTTP/1.0-like server: one request, one response, then close (server-first).
#[derive(Default)]
struct MiniHttp;

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, world!";
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";

impl App for MiniHttp {
    type State = ();
    fn on_data(&mut self, _: &mut (), io: &mut Io<'_>, data: &[u8]) -> usize {
        if data.windows(4).any(|w| w == b"\r\n\r\n") {
            io.write(RESPONSE);
            io.close();
        }
        data.len()
    }
}

/// The client side: sends the request on connect, reads everything, closes on the FIN.
#[derive(Default)]
struct MiniClient;

impl App for MiniClient {
    type State = ();
    fn on_connected(&mut self, _: &mut (), io: &mut Io<'_>) {
        io.write(REQUEST);
    }
    fn on_data(&mut self, _: &mut (), _: &mut Io<'_>, data: &[u8]) -> usize {
        data.len()
    }
}

fn server_config(mode: SynCookieMode) -> Config {
    Config {
        local_mac: SERVER_MAC,
        listeners: vec![Listener {
            addr: Some(IpAddr::V4(SERVER)),
            port: PORT,
            keepalive: None,
            fastopen: None,
            options: Default::default(),
        }],
        syncookies: mode,
        max_time_wait: 1 << 20,
        secret: Secret([0x42; 32]),
        ..Config::default()
    }
}

/// The i-th client address and port: 60 000 ports per address.
fn client_of(i: u32) -> (Ipv4Addr, u16) {
    let a = i / 60_000;
    (
        Ipv4Addr::new(10, 1 + (a >> 8) as u8, a as u8, 2),
        1024 + (i % 60_000) as u16,
    )
}

fn frame(src: Ipv4Addr, sport: u16, seq: u32, ack: u32, flags: Flags, options: Options) -> Vec<u8> {
    let f = TcpFrame {
        eth: ethernet::Repr {
            dst: SERVER_MAC,
            src: CLIENT_MAC,
            vlan: None,
            ethertype: ETHERTYPE_IPV4,
        },
        ip: IpRepr::V4(ipv4::Repr {
            src,
            dst: SERVER,
            protocol: 6,
            payload_len: 0,
            ttl: 64,
        }),
        tcp: TcpRepr {
            src_port: sport,
            dst_port: PORT,
            seq: SeqNumber(seq),
            ack: SeqNumber(ack),
            flags,
            window: 502,
            options,
            payload: &[],
        },
    };
    let mut buf = vec![0; f.buffer_len()];
    f.emit(&mut buf);
    buf
}

fn linux_syn_options() -> Options {
    Options {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamp: Some((1_000_000, 0)),
        ..Options::default()
    }
}

/// SYN frame of client `i`, and from the engine's SYN-ACK the third segment (ACK) for it.
fn handshake_frames<A: App>(
    engine: &mut Engine<A>,
    now: Instant,
    i: u32,
    ts: bool,
    q: &mut Queue,
) -> (Vec<u8>, Vec<u8>) {
    let (src, sport) = client_of(i);
    let opts = if ts {
        linux_syn_options()
    } else {
        Options {
            mss: Some(1460),
            ..Options::default()
        }
    };
    let syn = frame(src, sport, 1000, 0, Flags::SYN, opts);
    q.clear();
    engine.receive(now, &syn, q);
    let sa = TcpFrame::parse(&q.frames()[0]).expect("SYN-ACK");
    let ack_opts = Options {
        timestamp: sa.tcp.options.timestamp.map(|(val, _)| (1_000_001, val)),
        ..Options::default()
    };
    let ack = frame(
        src,
        sport,
        1001,
        (sa.tcp.seq + 1u32).0,
        Flags::ACK,
        ack_opts,
    );
    (syn, ack)
}

fn bench_syn_ack(c: &mut Criterion) {
    let now = Instant::from_secs(1000);
    let mut engine = Engine::new(server_config(SynCookieMode::Always), MiniHttp, now);
    let syns: Vec<Vec<u8>> = (0..1024)
        .map(|i| {
            let (src, sport) = client_of(i);
            frame(src, sport, 1000 + i, 0, Flags::SYN, linux_syn_options())
        })
        .collect();
    let mut q = Queue::default();
    let mut i = 0;
    c.bench_function("syn_to_cookie_syn_ack", |b| {
        b.iter(|| {
            q.clear();
            engine.receive(now, black_box(&syns[i & 1023]), &mut q);
            i += 1;
            black_box(q.len)
        })
    });
    assert_eq!(engine.connections(), 0);
}

fn bench_cookie_ack(c: &mut Criterion) {
    let now = Instant::from_secs(1000);
    c.bench_function("cookie_ack_to_established", |b| {
        b.iter_custom(|iters| {
            let mut engine = Engine::new(server_config(SynCookieMode::Always), MiniHttp, now);
            let mut q = Queue::default();
            let acks: Vec<Vec<u8>> = (0..iters as u32)
                .map(|i| handshake_frames(&mut engine, now, i, true, &mut q).1)
                .collect();
            let start = std::time::Instant::now();
            for ack in &acks {
                q.clear();
                engine.receive(now, black_box(ack), &mut q);
            }
            let took = start.elapsed();
            assert_eq!(engine.connections(), iters as usize);
            took
        })
    });
}

/// Runs one whole connection between `client` and `server` (hand-driven, zero delay);
/// returns the time spent inside the server engine.
fn short_connection(
    client: &mut Engine<MiniClient>,
    server: &mut Engine<MiniHttp>,
    now: Instant,
    i: u32,
    qs: &mut [Queue; 2],
    time_server: bool,
) -> Duration {
    let (src, sport) = client_of(i);
    let mut server_time = Duration::ZERO;
    qs[0].clear();
    client
        .connect(
            now,
            SocketAddr::new(IpAddr::V4(src), sport),
            SocketAddr::new(IpAddr::V4(SERVER), PORT),
            SERVER_MAC,
            &mut qs[0],
        )
        .expect("connect");
    let [to_server, to_client] = qs;
    loop {
        to_client.clear();
        let start = time_server.then(std::time::Instant::now);
        for f in to_server.frames() {
            server.receive(now, f, to_client);
        }
        if let Some(start) = start {
            server_time += start.elapsed();
        }
        to_server.clear();
        for f in to_client.frames() {
            client.receive(now, f, to_server);
        }
        if to_server.len == 0 {
            break;
        }
    }
    server_time
}

fn client_config() -> Config {
    Config {
        local_mac: CLIENT_MAC,
        secret: Secret([0x17; 32]),
        max_time_wait: 1 << 20,
        ..Config::default()
    }
}

fn bench_short_connection(c: &mut Criterion) {
    let mut group = c.benchmark_group("short_connection");
    for (name, server_only) in [("both_ends", false), ("server_only", true)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let now = Instant::from_secs(1000);
                let mut client = Engine::new(client_config(), MiniClient, now);
                let mut server = Engine::new(server_config(SynCookieMode::Auto), MiniHttp, now);
                let mut qs = [Queue::default(), Queue::default()];
                let start = std::time::Instant::now();
                let mut inside = Duration::ZERO;
                for i in 0..iters as u32 {
                    inside +=
                        short_connection(&mut client, &mut server, now, i, &mut qs, server_only);
                }
                let took = start.elapsed();
                assert_eq!(server.connections(), 0, "{}", server.stats());
                assert_eq!(server.time_wait_len(), iters as usize, "{}", server.stats());
                if server_only { inside } else { took }
            })
        });
    }
    group.finish();
}

fn bench_lookup(c: &mut Criterion) {
    const N: u32 = 100_000;
    let now = Instant::from_secs(1000);
    let mut engine = Engine::new(server_config(SynCookieMode::Always), MiniHttp, now);
    let mut q = Queue::default();
    let acks: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            let (_, ack) = handshake_frames(&mut engine, now, i, false, &mut q);
            q.clear();
            engine.receive(now, &ack, &mut q);
            ack
        })
        .collect();
    assert_eq!(engine.connections(), N as usize);
    let mut rng = Rng::new(7);
    let order: Vec<usize> = (0..1 << 16)
        .map(|_| (rng.next_u64() % u64::from(N)) as usize)
        .collect();
    let mut i = 0;
    c.bench_function("ack_lookup_among_100k", |b| {
        b.iter(|| {
            q.clear();
            engine.receive(now, black_box(&acks[order[i & 0xffff]]), &mut q);
            i += 1;
            black_box(q.len)
        })
    });
    assert_eq!(engine.connections(), N as usize);
}

/// Writes 64 KiB as soon as it is connected: its initial window then waits in flight.
#[derive(Default)]
struct Flood;

impl App for Flood {
    type State = ();
    fn on_connected(&mut self, _: &mut (), io: &mut Io<'_>) {
        io.write(&[0x5a; 64 * 1024]);
    }
    fn on_data(&mut self, _: &mut (), _: &mut Io<'_>, data: &[u8]) -> usize {
        data.len()
    }
}

/// Connects client `i` to a [`Flood`] server (SACK-permitted, window scale 7, no timestamps,
/// so that four SACK blocks fit); returns a duplicate ACK of SND.UNA and SND.UNA.
fn flooded(engine: &mut Engine<Flood>, now: Instant, i: u32, q: &mut Queue) -> (Vec<u8>, u32) {
    let (src, sport) = client_of(i);
    let opts = Options {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        ..Options::default()
    };
    q.clear();
    engine.receive(now, &frame(src, sport, 1000, 0, Flags::SYN, opts), q);
    let sa = TcpFrame::parse(&q.frames()[0]).expect("SYN-ACK");
    let una = (sa.tcp.seq + 1u32).0;
    let ack = frame(src, sport, 1001, una, Flags::ACK, Options::default());
    q.clear();
    engine.receive(now, &ack, q);
    assert_eq!(q.len, 10, "the initial window in flight");
    (ack, una)
}

/// One duplicate ACK on a connection with ten segments in flight: on a fresh connection, and
/// on one that has taken 50 000 ACKs of four 1-byte SACK blocks each (two at SND.UNA, two
/// anywhere in flight), followed by a plain duplicate ACK or by one more of those.
fn bench_shredded_ack(c: &mut Criterion) {
    const SHREDS: usize = 50_000;
    let now = Instant::from_secs(1000);
    let mut q = Queue::default();
    let mut fresh = Engine::new(server_config(SynCookieMode::Never), Flood, now);
    let (fresh_dup, _) = flooded(&mut fresh, now, 0, &mut q);
    let mut shredded = Engine::new(server_config(SynCookieMode::Never), Flood, now);
    let (dup, una) = flooded(&mut shredded, now, 1, &mut q);
    let (src, sport) = client_of(1);
    let mut rng = Rng::new(16);
    let mut byte = |span: u64| {
        let l = SeqNumber(una) + (rng.next_u64() % span) as u32;
        (l, l + 1u32)
    };
    let shreds: Vec<Vec<u8>> = (0..4096)
        .map(|_| {
            let opts = Options {
                sack_blocks: [byte(1460), byte(14_600), byte(1460), byte(14_600)],
                sack_count: 4,
                ..Options::default()
            };
            frame(src, sport, 1001, una, Flags::ACK, opts)
        })
        .collect();
    for i in 0..SHREDS {
        q.clear();
        shredded.receive(now, &shreds[i % shreds.len()], &mut q);
    }
    let tuple = FourTuple {
        local_addr: IpAddr::V4(SERVER),
        remote_addr: IpAddr::V4(src),
        local_port: PORT,
        remote_port: sport,
    };
    let id = shredded.find(&tuple).expect("connected");
    let records = |e: &Engine<Flood>| e.scoreboard_census(id).expect("connected").0;
    eprintln!(
        "scoreboard: {} records for 10 segments in flight after {SHREDS} shredding ACKs",
        records(&shredded)
    );
    let mut group = c.benchmark_group("dup_ack_10_segments_in_flight");
    // One frame in, what it sent discarded.
    let mut receive = |engine: &mut Engine<Flood>, f: &[u8]| {
        q.clear();
        engine.receive(now, black_box(f), &mut q);
        black_box(q.len)
    };
    group.bench_function("fresh", |b| b.iter(|| receive(&mut fresh, &fresh_dup)));
    group.bench_function("after_50k_shredding_acks", |b| {
        b.iter(|| receive(&mut shredded, &dup))
    });
    let mut i = 0;
    group.bench_function("shredding_after_50k_shredding_acks", |b| {
        b.iter(|| {
            i += 1;
            receive(&mut shredded, &shreds[i & 4095])
        })
    });
    group.finish();
    eprintln!(
        "scoreboard: {} records after {} more shredding ACKs",
        records(&shredded),
        i
    );
}

/// Memory per idle established connection and per TIME-WAIT entry, printed once.
fn report_memory() {
    let now = Instant::from_secs(1000);
    let mut engine = Engine::new(server_config(SynCookieMode::Never), MiniHttp, now);
    let mut q = Queue::default();
    let (_, ack) = handshake_frames(&mut engine, now, 0, true, &mut q);
    q.clear();
    engine.receive(now, &ack, &mut q);
    let (src, sport) = client_of(0);
    let id = engine
        .find(&xdptcp::tcp::FourTuple {
            local_addr: IpAddr::V4(SERVER),
            remote_addr: IpAddr::V4(src),
            local_port: PORT,
            remote_port: sport,
        })
        .expect("established");
    eprintln!(
        "memory: idle established connection = {} B (target <= 1024), TIME-WAIT entry = {} B \
         (target <= 64)",
        engine.connection_bytes(id).expect("live"),
        TimeWaitTable::ENTRY_BYTES
    );
}

fn benches(c: &mut Criterion) {
    report_memory();
    bench_syn_ack(c);
    bench_cookie_ack(c);
    bench_short_connection(c);
    bench_lookup(c);
    bench_shredded_ack(c);
}

criterion_group!(engine_benches, benches);
criterion_main!(engine_benches);
