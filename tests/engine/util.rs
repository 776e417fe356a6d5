//! Test apps and helpers shared by the engine scenarios: the one segment type ([`Seg`], and
//! [`Sent`] for a segment with its time and direction), the hand-driven peers ([`Peer`], and
//! [`RawPeer`] that keeps its own sequence numbers), and "these segments, then nothing"
//! assertions ([`recv!`], [`recv_nothing!`], after smoltcp's).

#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;

use xdptcp::app::{App, CloseReason, Io};
use xdptcp::tcp::ConnId;

/// What happened to the connections of one side, in order.
#[derive(Debug, Default)]
pub struct Log {
    pub connected: Vec<ConnId>,
    pub closed: Vec<(ConnId, CloseReason)>,
    pub peer_closed: Vec<ConnId>,
    pub received: Vec<u8>,
}

/// A scriptable app: sends `greeting` on connect, echoes if `echo`, closes on peer close if
/// `close_on_peer_close`, records everything in a shared log.
#[derive(Clone, Default)]
pub struct Scripted {
    pub log: Rc<RefCell<Log>>,
    pub greeting: Vec<u8>,
    pub echo: bool,
    pub close_after_greeting: bool,
    /// Half-close (`shutdown(SHUT_WR)`) right after the greeting.
    pub half_close_after_greeting: bool,
    pub close_on_peer_close: bool,
    /// Consume nothing (a stalled reader).
    pub stalled: bool,
    /// Close as soon as any data arrives (after consuming it).
    pub close_on_data: bool,
    /// Written when the peer's FIN arrives (before closing if `close_on_peer_close`).
    pub peer_close_reply: Vec<u8>,
}

#[derive(Default)]
pub struct ScriptedConn {
    id: Option<ConnId>,
}

impl App for Scripted {
    type State = ScriptedConn;

    fn on_connected(&mut self, state: &mut ScriptedConn, io: &mut Io<'_>) {
        state.id = Some(io.id());
        self.log.borrow_mut().connected.push(io.id());
        if !self.greeting.is_empty() {
            assert_eq!(io.write(&self.greeting), self.greeting.len());
        }
        if self.close_after_greeting {
            io.close();
        }
        if self.half_close_after_greeting {
            io.shutdown_write();
        }
    }

    fn on_data(&mut self, _: &mut ScriptedConn, io: &mut Io<'_>, data: &[u8]) -> usize {
        if self.stalled {
            return 0;
        }
        let n = if self.echo {
            io.write(data)
        } else {
            data.len()
        };
        self.log.borrow_mut().received.extend_from_slice(&data[..n]);
        if self.close_on_data {
            io.close();
        }
        n
    }

    fn on_peer_closed(&mut self, _: &mut ScriptedConn, io: &mut Io<'_>) {
        self.log.borrow_mut().peer_closed.push(io.id());
        if !self.peer_close_reply.is_empty() {
            assert_eq!(
                io.write(&self.peer_close_reply),
                self.peer_close_reply.len()
            );
        }
        if self.close_on_peer_close {
            io.close();
        }
    }

    fn on_closed(&mut self, state: &mut ScriptedConn, reason: CloseReason) {
        if let Some(id) = state.id {
            self.log.borrow_mut().closed.push((id, reason));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Segments
// ---------------------------------------------------------------------------------------------

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use xdptcp::sim::{self, Dir};
use xdptcp::tcp::{Config, Engine, FourTuple, Listener, Secret};
use xdptcp::time::Instant;
use xdptcp::wire::SeqNumber;
use xdptcp::wire::ethernet;
use xdptcp::wire::tcp::{Flags, Options, Repr as TcpRepr};
use xdptcp::wire::{IpRepr, TcpFrame, ipv4, ipv6};

/// The fake client's address (the peer of a server engine): the client of [`sim::Pair`].
pub const PEER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// The engine's address: the server of [`sim::Pair`].
pub const ENGINE_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const PEER_MAC: [u8; 6] = sim::CLIENT_MAC;
pub const ENGINE_MAC: [u8; 6] = sim::SERVER_MAC;
/// The port a server engine listens on.
pub const PORT: u16 = sim::SERVER_PORT;
/// The peer's default port.
pub const PEER_PORT: u16 = 40000;

/// A server configuration listening on [`ENGINE_ADDR`]:[`PORT`], fixed secret, no cookies
/// before the half-open budget (the default `Auto`).
pub fn server_config() -> Config {
    Config {
        local_mac: ENGINE_MAC,
        listeners: vec![Listener {
            addr: Some(IpAddr::V4(ENGINE_ADDR)),
            port: PORT,
            keepalive: None,
            fastopen: None,
            options: Default::default(),
        }],
        secret: Secret([0x42; 32]),
        ..Config::default()
    }
}

/// A SYN as Linux sends it (MSS 1460, SACK-permitted, timestamps, window scale 7) from `isn`.
pub fn linux_syn(isn: u32) -> Seg {
    seg(SYN).seq(isn).mss(1460).sack_perm().ts(PEER_TS, 0).ws(7)
}

/// The third segment of a handshake from `isn` that the SYN-ACK `sa` (a cookie, say) answered,
/// echoing its timestamp.
pub fn cookie_ack(isn: u32, sa: &Seg) -> Seg {
    let mut s = seg(ACK).seq(isn.wrapping_add(1)).ack(sa.seq + 1u32);
    if let Some((val, _)) = sa.options.timestamp {
        s = s.ts(PEER_TS + 1, val);
    }
    s
}

/// A client configuration (no listeners).
pub fn client_config() -> Config {
    Config {
        local_mac: ENGINE_MAC,
        secret: Secret([0x17; 32]),
        ..Config::default()
    }
}

/// An owned TCP segment, built and inspected by tests.
#[derive(Clone, PartialEq, Eq)]
pub struct Seg {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNumber,
    pub ack: SeqNumber,
    pub flags: Flags,
    /// The window field, unscaled.
    pub window: u16,
    pub options: Options,
    pub payload: Vec<u8>,
}

impl std::fmt::Debug for Seg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<{}→{} {:?} seq={} ack={} win={} len={}",
            self.src_port,
            self.dst_port,
            self.flags,
            self.seq.0,
            self.ack.0,
            self.window,
            self.payload.len()
        )?;
        let o = &self.options;
        if let Some(m) = o.mss {
            write!(f, " mss={m}")?;
        }
        if let Some(w) = o.window_scale {
            write!(f, " ws={w}")?;
        }
        if o.sack_permitted {
            write!(f, " sackOK")?;
        }
        if let Some((v, e)) = o.timestamp {
            write!(f, " ts={v}/{e}")?;
        }
        for (l, r) in &o.sack_blocks[..usize::from(o.sack_count)] {
            write!(f, " sack={}-{}", l.0, r.0)?;
        }
        write!(f, ">")
    }
}

/// Starts a segment with these flags (ports are filled in by the [`Peer`]).
pub fn seg(flags: Flags) -> Seg {
    Seg {
        src_port: 0,
        dst_port: 0,
        seq: SeqNumber(0),
        ack: SeqNumber(0),
        flags,
        window: 65535,
        options: Options::default(),
        payload: Vec::new(),
    }
}

impl Seg {
    pub fn seq(mut self, seq: u32) -> Seg {
        self.seq = SeqNumber(seq);
        self
    }
    pub fn ack(mut self, ack: SeqNumber) -> Seg {
        self.ack = ack;
        self
    }
    pub fn win(mut self, window: u16) -> Seg {
        self.window = window;
        self
    }
    pub fn mss(mut self, mss: u16) -> Seg {
        self.options.mss = Some(mss);
        self
    }
    pub fn ws(mut self, shift: u8) -> Seg {
        self.options.window_scale = Some(shift);
        self
    }
    pub fn sack_perm(mut self) -> Seg {
        self.options.sack_permitted = true;
        self
    }
    pub fn ts(mut self, val: u32, ecr: u32) -> Seg {
        self.options.timestamp = Some((val, ecr));
        self
    }
    pub fn data(mut self, data: &[u8]) -> Seg {
        self.payload = data.to_vec();
        self
    }
    /// Exactly these flags (PSH aside).
    pub fn is(&self, flags: Flags) -> bool {
        self.flags == flags || self.flags == (flags | Flags::PSH)
    }
    /// At least these flags.
    pub fn has(&self, flags: Flags) -> bool {
        self.flags.contains(flags)
    }
    /// Payload length.
    pub fn len(&self) -> usize {
        self.payload.len()
    }
    pub fn is_data(&self) -> bool {
        !self.payload.is_empty()
    }
    pub fn tsval(&self) -> u32 {
        self.options.timestamp.expect("timestamp option").0
    }
    pub fn tsecr(&self) -> u32 {
        self.options.timestamp.expect("timestamp option").1
    }
    /// SEG.SEQ + SEG.LEN (payload, SYN and FIN counted).
    pub fn end(&self) -> SeqNumber {
        self.seq
            + (self.payload.len()
                + usize::from(self.flags.contains(Flags::SYN))
                + usize::from(self.flags.contains(Flags::FIN)))
    }
}

impl From<&TcpFrame<'_>> for Seg {
    fn from(f: &TcpFrame<'_>) -> Seg {
        Seg {
            src_port: f.tcp.src_port,
            dst_port: f.tcp.dst_port,
            seq: f.tcp.seq,
            ack: f.tcp.ack,
            flags: f.tcp.flags,
            window: f.tcp.window,
            options: f.tcp.options,
            payload: f.tcp.payload.to_vec(),
        }
    }
}

/// A segment an engine sent, with when and which way (and whether a test's drop rule lost
/// it on the link). It derefs to its [`Seg`].
#[derive(Debug, Clone)]
pub struct Sent {
    /// When it was sent (virtual clock).
    pub at: Instant,
    pub dir: Dir,
    pub seg: Seg,
    /// The drop rule removed it from the link.
    pub dropped: bool,
}

impl Sent {
    pub fn new(at: Instant, dir: Dir, seg: Seg) -> Sent {
        Sent {
            at,
            dir,
            seg,
            dropped: false,
        }
    }
}

impl Deref for Sent {
    type Target = Seg;
    fn deref(&self) -> &Seg {
        &self.seg
    }
}

pub const SYN: Flags = Flags::SYN;
pub const ACK: Flags = Flags::ACK;
pub const RST: Flags = Flags::RST;
pub const FIN: Flags = Flags::FIN;
pub const SYN_ACK: Flags = Flags(Flags::SYN.0 | Flags::ACK.0);
pub const FIN_ACK: Flags = Flags(Flags::FIN.0 | Flags::ACK.0);
pub const RST_ACK: Flags = Flags(Flags::RST.0 | Flags::ACK.0);
pub const PSH_ACK: Flags = Flags(Flags::PSH.0 | Flags::ACK.0);

/// Builds the Ethernet frame of `s` from `src` to `dst`.
pub fn frame(src: (Ipv4Addr, [u8; 6]), dst: (Ipv4Addr, [u8; 6]), s: &Seg) -> Vec<u8> {
    frame_between((src.0.into(), src.1), (dst.0.into(), dst.1), s)
}

/// Builds the Ethernet frame of `s` from `src` to `dst`, over IPv4 or IPv6 (both addresses of
/// one family).
pub fn frame_between(src: (IpAddr, [u8; 6]), dst: (IpAddr, [u8; 6]), s: &Seg) -> Vec<u8> {
    let protocol = xdptcp::wire::IPPROTO_TCP;
    let ip = match (src.0, dst.0) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => IpRepr::V4(ipv4::Repr {
            src,
            dst,
            protocol,
            payload_len: 0,
            ttl: 64,
        }),
        (IpAddr::V6(src), IpAddr::V6(dst)) => IpRepr::V6(ipv6::Repr {
            src,
            dst,
            next_header: protocol,
            payload_len: 0,
            hop_limit: 64,
        }),
        _ => panic!("addresses of two families: {src:?} → {dst:?}"),
    };
    let f = TcpFrame {
        eth: ethernet::Repr {
            dst: dst.1,
            src: src.1,
            vlan: None,
            ethertype: ip.ethertype(),
        },
        ip,
        tcp: TcpRepr {
            src_port: s.src_port,
            dst_port: s.dst_port,
            seq: s.seq,
            ack: s.ack,
            flags: s.flags,
            window: s.window,
            options: s.options,
            payload: &s.payload,
        },
    };
    let mut buf = vec![0u8; f.buffer_len()];
    f.emit(&mut buf);
    buf
}

/// Parses frames the engine sent into segments (panics on a frame that does not parse: the
/// engine must only send valid frames).
pub fn parse_all(frames: &[Vec<u8>]) -> Vec<Seg> {
    frames
        .iter()
        .map(|b| {
            let f = TcpFrame::parse(b).expect("the engine sent a frame that does not parse");
            Seg::from(&f)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// "These segments, then nothing"
// ---------------------------------------------------------------------------------------------

/// A named check of one segment, for [`expect_segments`].
pub type Check<'c, S> = (&'c str, &'c dyn Fn(&S) -> bool);

/// Asserts that `segs` holds exactly one segment per predicate, each matching its own, in
/// order, and nothing more (smoltcp's `recv!`); returns them. Use it through [`recv!`].
#[track_caller]
pub fn expect_segments<'s, S: std::fmt::Debug>(segs: &'s [S], checks: &[Check<'_, S>]) -> &'s [S] {
    let names: Vec<&str> = checks.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        segs.len(),
        checks.len(),
        "expected {names:?}, then nothing; got {segs:#?}"
    );
    for (i, (s, (name, check))) in segs.iter().zip(checks).enumerate() {
        assert!(
            check(s),
            "segment {i} is not `{name}`: {s:?}; all: {segs:#?}"
        );
    }
    segs
}

/// `recv!(segs, [|s| pred, ...])`: exactly these segments, in order, then nothing.
macro_rules! recv {
    ($segs:expr, [$(|$s:ident| $check:expr),+ $(,)?]) => {
        $crate::util::expect_segments(&$segs, &[$((stringify!($check), &|$s: &_| $check)),+])
    };
}

/// `recv_nothing!(segs)`: the engine sent nothing (smoltcp's `recv_nothing!`); a format
/// string and arguments after `segs` say what was being checked.
macro_rules! recv_nothing {
    ($segs:expr) => {
        recv_nothing!($segs, "")
    };
    ($segs:expr, $($what:tt)+) => {{
        let segs = &$segs;
        assert!(segs.is_empty(), "{}: expected nothing, got {segs:#?}", format!($($what)+));
    }};
}

// ---------------------------------------------------------------------------------------------
// Peers
// ---------------------------------------------------------------------------------------------

/// A fake remote end talking to one engine: the engine is at [`ENGINE_ADDR`], the peer at
/// [`PEER_ADDR`]. Segments sent get the peer's port and the engine's port filled in.
pub struct Peer<A: App> {
    pub engine: Engine<A>,
    pub now: Instant,
    pub port: u16,
    pub engine_port: u16,
}

impl<A: App> Peer<A> {
    /// A peer (client at PEER_PORT) in front of a server engine, clock at 1000 s.
    pub fn server(cfg: Config, app: A) -> Peer<A> {
        let now = Instant::from_secs(1000);
        Peer {
            engine: Engine::new(cfg, app, now),
            now,
            port: PEER_PORT,
            engine_port: PORT,
        }
    }

    /// A peer (server at PORT) in front of a client engine that will connect from
    /// `engine_port`.
    pub fn client(cfg: Config, app: A, engine_port: u16) -> Peer<A> {
        let now = Instant::from_secs(1000);
        Peer {
            engine: Engine::new(cfg, app, now),
            now,
            port: PORT,
            engine_port,
        }
    }

    /// The 4-tuple as the engine sees it.
    pub fn tuple(&self) -> FourTuple {
        FourTuple {
            local_addr: IpAddr::V4(ENGINE_ADDR),
            remote_addr: IpAddr::V4(PEER_ADDR),
            local_port: self.engine_port,
            remote_port: self.port,
        }
    }

    /// The frame of `s` from this peer to the engine.
    pub fn frame(&self, mut s: Seg) -> Vec<u8> {
        if s.src_port == 0 {
            s.src_port = self.port;
        }
        if s.dst_port == 0 {
            s.dst_port = self.engine_port;
        }
        frame((PEER_ADDR, PEER_MAC), (ENGINE_ADDR, ENGINE_MAC), &s)
    }

    /// Sends `s` to the engine now and returns its replies.
    pub fn send(&mut self, s: Seg) -> Vec<Seg> {
        let f = self.frame(s);
        self.send_frame(&f)
    }

    /// Sends raw bytes to the engine now and returns its replies.
    pub fn send_frame(&mut self, f: &[u8]) -> Vec<Seg> {
        let mut tx: Vec<Vec<u8>> = Vec::new();
        self.engine.receive(self.now, f, &mut tx);
        parse_all(&tx)
    }

    /// Advances the clock by `d`, running timers, and returns what they sent.
    pub fn advance(&mut self, d: Duration) -> Vec<Seg> {
        self.now = self.now + d;
        self.poll()
    }

    /// Runs the timers due now.
    pub fn poll(&mut self) -> Vec<Seg> {
        let mut tx: Vec<Vec<u8>> = Vec::new();
        self.engine.poll_timers(self.now, &mut tx);
        parse_all(&tx)
    }

    /// Runs every timer up to `now + d`, deadline by deadline; returns everything sent with
    /// the time it was sent.
    pub fn run_timers(&mut self, d: Duration) -> Vec<(Instant, Seg)> {
        let end = self.now + d;
        let mut out = Vec::new();
        while let Some(at) = self.engine.next_deadline() {
            if at > end {
                break;
            }
            self.now = self.now.max(at);
            for s in self.poll() {
                out.push((self.now, s));
            }
        }
        self.now = end;
        for s in self.poll() {
            out.push((self.now, s));
        }
        out
    }

    /// The client engine opens a connection to this peer; returns its id and its SYN.
    pub fn connect(&mut self) -> (xdptcp::tcp::ConnId, Seg) {
        let mut tx: Vec<Vec<u8>> = Vec::new();
        let id = self
            .engine
            .connect(
                self.now,
                SocketAddr::new(IpAddr::V4(ENGINE_ADDR), self.engine_port),
                SocketAddr::new(IpAddr::V4(PEER_ADDR), self.port),
                PEER_MAC,
                &mut tx,
            )
            .expect("connect");
        let mut segs = parse_all(&tx);
        assert_eq!(segs.len(), 1, "one SYN: {segs:?}");
        (id, segs.remove(0))
    }

    /// Runs a three-way handshake against a server engine from `isn` with `syn_opts` applied
    /// to the SYN; returns the SYN-ACK (the final ACK has been sent, with a timestamp if the
    /// SYN-ACK had one).
    pub fn handshake_with(&mut self, isn: u32, syn: Seg) -> Seg {
        let replies = self.send(syn.seq(isn));
        assert_eq!(replies.len(), 1, "one SYN-ACK: {replies:?}");
        let sa = replies[0].clone();
        assert!(sa.is(SYN_ACK), "{sa:?}");
        assert_eq!(sa.ack, SeqNumber(isn) + 1u32);
        let mut ack = seg(ACK).seq(isn.wrapping_add(1)).ack(sa.seq + 1u32);
        if let Some((val, _)) = sa.options.timestamp {
            ack = ack.ts(PEER_TS, val);
        }
        let replies = self.send(ack);
        assert!(
            replies.iter().all(|r| !r.flags.contains(RST)),
            "{replies:?}"
        );
        sa
    }

    /// A handshake with the options Linux sends (MSS 1460, SACK-permitted, TS, WS 7).
    pub fn handshake(&mut self, isn: u32) -> Seg {
        self.handshake_with(isn, seg(SYN).mss(1460).sack_perm().ts(PEER_TS, 0).ws(7))
    }
}

/// The TSval the peer uses (it does not advance unless a test says so).
pub const PEER_TS: u32 = 1_000_000;

/// A server engine behind a peer, with `Scripted` as the app.
pub fn server_peer(app: Scripted) -> Peer<Scripted> {
    Peer::server(server_config(), app)
}

/// A [`server_peer`] running `app`, past the handshake (peer ISN 1000): the peer, the SYN-ACK
/// and the connection's id.
pub fn established(app: Scripted) -> (Peer<Scripted>, Seg, ConnId) {
    let mut peer = server_peer(app);
    let sa = peer.handshake(1000);
    let id = peer.engine.find(&peer.tuple()).expect("established");
    (peer, sa, id)
}

/// The client port a [`RawPeer`] uses.
pub const RAW_PORT: u16 = PEER_PORT;

/// A [`Peer`] that plays the client by hand and keeps its own sequence numbers: it sends the
/// next bytes in order (or at a sequence number a test picks), acknowledges what the engine
/// sent, stamps its own timestamps once negotiated, and returns exactly what the engine
/// answered, with times. It derefs to its [`Peer`].
pub struct RawPeer<A: App> {
    pub peer: Peer<A>,
    /// Our ISN and the next sequence number we would send.
    pub iss: SeqNumber,
    pub snd_nxt: SeqNumber,
    /// What we acknowledge: the engine's ISN + 1 after the handshake.
    pub rcv_nxt: SeqNumber,
    /// The window field we advertise (unscaled).
    pub window: u16,
    /// Timestamps on our segments (TSval = our millisecond clock) if negotiated.
    pub ts: bool,
    ts_recent: u32,
}

impl<A: App> Deref for RawPeer<A> {
    type Target = Peer<A>;
    fn deref(&self) -> &Peer<A> {
        &self.peer
    }
}

impl<A: App> DerefMut for RawPeer<A> {
    fn deref_mut(&mut self) -> &mut Peer<A> {
        &mut self.peer
    }
}

impl<A: App> RawPeer<A> {
    /// A raw client ([`RAW_PORT`]) in front of a server engine, clock at 1000 s.
    pub fn new(cfg: Config, app: A) -> RawPeer<A> {
        RawPeer {
            peer: Peer::server(cfg, app),
            iss: SeqNumber(0x1000_0000),
            snd_nxt: SeqNumber(0x1000_0000),
            rcv_nxt: SeqNumber(0),
            window: 65_535,
            ts: false,
            ts_recent: 0,
        }
    }

    /// A frame from us to the engine: ACK of RCV.NXT if `flags` has ACK, our window, our
    /// timestamp if negotiated and `options` has none.
    pub fn frame(&self, seq: SeqNumber, flags: Flags, options: Options, payload: &[u8]) -> Vec<u8> {
        let mut s = seg(flags).win(self.window).data(payload);
        s.seq = seq;
        s.options = options;
        if flags.contains(Flags::ACK) {
            s.ack = self.rcv_nxt;
        }
        if self.ts && s.options.timestamp.is_none() {
            s.options.timestamp = Some((self.now.total_millis() as u32, self.ts_recent));
        }
        self.peer.frame(s)
    }

    /// Delivers one frame now; returns what the engine sent in answer.
    pub fn deliver(&mut self, frame: &[u8]) -> Vec<Sent> {
        let at = self.now;
        let replies = self.peer.send_frame(frame);
        replies.into_iter().map(|s| self.heard(at, s)).collect()
    }

    /// A segment the engine sent at `at`: remember its TSval to echo.
    fn heard(&mut self, at: Instant, s: Seg) -> Sent {
        if let Some((tsval, _)) = s.options.timestamp {
            self.ts_recent = tsval;
        }
        Sent::new(at, Dir::ToClient, s)
    }

    /// Sends `payload` at `seq` with ACK (plus `flags`); returns the engine's answers.
    pub fn send_at(&mut self, seq: SeqNumber, flags: Flags, payload: &[u8]) -> Vec<Sent> {
        let f = self.frame(seq, flags | Flags::ACK, Options::default(), payload);
        self.deliver(&f)
    }

    /// Sends the next `payload` in order (advancing SND.NXT).
    pub fn send(&mut self, payload: &[u8]) -> Vec<Sent> {
        let seq = self.snd_nxt;
        self.snd_nxt += payload.len();
        self.send_at(seq, Flags::NONE, payload)
    }

    /// Runs the engine's timers for `d` of virtual time; returns what it sent, with times.
    pub fn advance(&mut self, d: Duration) -> Vec<Sent> {
        let sent = self.peer.run_timers(d);
        sent.into_iter().map(|(at, s)| self.heard(at, s)).collect()
    }

    /// SYN with MSS 1460, SACK-permitted, window scale `wscale` (and timestamps if `ts`), then
    /// the ACK of the SYN-ACK, which the engine does not answer. Returns the SYN-ACK.
    pub fn handshake(&mut self, wscale: Option<u8>, ts: bool) -> Sent {
        let (syn_ack, answer) = self.handshake_answered(wscale, ts);
        recv_nothing!(answer);
        syn_ack
    }

    /// [`RawPeer::handshake`] with a server app that may write at once: returns the SYN-ACK
    /// and what the engine sent in answer to the final ACK.
    pub fn handshake_answered(&mut self, wscale: Option<u8>, ts: bool) -> (Sent, Vec<Sent>) {
        self.handshake_in(wscale, ts, Duration::from_millis(1))
    }

    /// [`RawPeer::handshake_answered`] with the final ACK `rtt` after the SYN-ACK: the
    /// engine's first RTT sample.
    pub fn handshake_in(
        &mut self,
        wscale: Option<u8>,
        ts: bool,
        rtt: Duration,
    ) -> (Sent, Vec<Sent>) {
        let opts = Options {
            mss: Some(1460),
            window_scale: wscale,
            timestamp: ts.then(|| (self.now.total_millis() as u32, 0)),
            sack_permitted: true,
            ..Options::default()
        };
        let syn = self.frame(self.iss, Flags::SYN, opts, &[]);
        let answer = self.deliver(&syn);
        let syn_ack = answer
            .into_iter()
            .find(|s| s.has(Flags::SYN | Flags::ACK))
            .expect("a SYN-ACK");
        assert_eq!(syn_ack.ack, self.iss + 1u32);
        self.ts = ts && syn_ack.options.timestamp.is_some();
        self.snd_nxt = self.iss + 1u32;
        self.rcv_nxt = syn_ack.seq + 1u32;
        self.now = self.now + rtt;
        let answer = self.send(&[]);
        (syn_ack, answer)
    }
}

/// Asserts the per-state gauges: the listed states have these counts, every other state but
/// LISTEN is zero.
pub fn assert_gauges(stats: &xdptcp::stats::Stats, expected: &[(xdptcp::state::State, u64)]) {
    for s in xdptcp::state::State::ALL {
        if *s == xdptcp::state::State::Listen {
            continue;
        }
        let want = expected.iter().find(|(e, _)| e == s).map_or(0, |(_, n)| *n);
        assert_eq!(stats.in_state(*s), want, "gauge {s}: {stats}");
    }
}

#[test]
#[should_panic(expected = "then nothing")]
fn recv_fails_on_a_segment_more_than_expected() {
    let segs = [seg(ACK), seg(ACK)];
    recv!(segs, [|s| s.is(ACK)]);
}

#[test]
#[should_panic(expected = "segment 1 is not")]
fn recv_fails_on_a_segment_that_does_not_match() {
    let segs = [seg(ACK), seg(RST)];
    recv!(segs, [|s| s.is(ACK), |s| s.is(ACK)]);
}

#[test]
#[should_panic(expected = "expected nothing")]
fn recv_nothing_fails_on_any_segment() {
    recv_nothing!([seg(ACK)]);
}
