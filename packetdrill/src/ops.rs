//! Socket calls and packets as a compact byte string: what the `shim_calls` fuzz target
//! decodes and applies to a [`Stack`](crate::stack::Stack) ([`crate::replay`]), and what a
//! packetdrill run records when `XDPTCP_SHIM_RECORD=FILE` is set (so our scripts seed the
//! fuzzer's corpus).
//!
//! Every byte string decodes to some sequence of operations (tags are taken modulo their
//! count, short fields are zero-filled), so a fuzzer's mutations always mean something.
//! Sockets are named by their creation index (`socket()` and `accept()` results, in order),
//! not by descriptor number, so a recording replays on any stack.

use std::net::{Ipv4Addr, Ipv6Addr};

use xdptcp::wire::SeqNumber;
use xdptcp::wire::ethernet::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use xdptcp::wire::tcp::{Flags, Options, Repr as TcpRepr};
use xdptcp::wire::{IpRepr, TcpFrame, ipv4, ipv6};

use crate::flags::{DEFAULT_LOCAL_V4, DEFAULT_LOCAL_V6};

/// The peer's addresses in replays (packetdrill's usual `--remote_ip`).
pub const PEER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The IPv6 peer.
pub const PEER_V6: Ipv6Addr = Ipv6Addr::new(0xfd3d, 0xfa7b, 0xd17d, 0, 0, 0, 0, 1);

/// One TCP segment from the peer, checksums filled when it is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Over IPv6.
    pub v6: bool,
    /// Ports.
    pub src_port: u16,
    /// Ports.
    pub dst_port: u16,
    /// SEG.SEQ.
    pub seq: u32,
    /// SEG.ACK.
    pub ack: u32,
    /// Control bits.
    pub flags: u8,
    /// The window field.
    pub window: u16,
    /// MSS option, if any.
    pub mss: Option<u16>,
    /// Window scale option, if any.
    pub wscale: Option<u8>,
    /// SACK-permitted.
    pub sack_permitted: bool,
    /// Timestamps, if any.
    pub timestamp: Option<(u32, u32)>,
    /// Payload.
    pub payload: Vec<u8>,
}

/// One operation on a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `socket(AF_INET[6], SOCK_STREAM[|SOCK_NONBLOCK], 0)`.
    Socket {
        /// AF_INET6.
        v6: bool,
        /// SOCK_NONBLOCK.
        nonblocking: bool,
    },
    /// `bind()` to the unspecified address of the socket's family.
    Bind {
        /// Creation index.
        sock: u8,
        /// Port.
        port: u16,
    },
    /// `listen()`.
    Listen {
        /// Creation index.
        sock: u8,
    },
    /// `accept()`.
    Accept {
        /// Creation index.
        sock: u8,
    },
    /// `connect()` to the peer.
    Connect {
        /// Creation index.
        sock: u8,
        /// The peer's port.
        port: u16,
    },
    /// `recv()`.
    Recv {
        /// Creation index.
        sock: u8,
        /// Buffer size.
        len: u16,
        /// MSG_PEEK.
        peek: bool,
    },
    /// `send()` of `len` bytes.
    Send {
        /// Creation index.
        sock: u8,
        /// Bytes.
        len: u16,
        /// With `MSG_MORE`.
        more: bool,
    },
    /// `close()`.
    Close {
        /// Creation index.
        sock: u8,
    },
    /// `shutdown()` (0: SHUT_RD, 1: SHUT_WR, 2: SHUT_RDWR).
    Shutdown {
        /// Creation index.
        sock: u8,
        /// Direction.
        how: u8,
    },
    /// `setsockopt()` of one of the options in [`SOCKOPTS`].
    SetOpt {
        /// Creation index.
        sock: u8,
        /// Index into [`SOCKOPTS`].
        opt: u8,
        /// The `int` value.
        value: i32,
    },
    /// `poll()` and `ioctl(FIONREAD)` / `SIOCOUTQ`.
    Poll {
        /// Creation index.
        sock: u8,
    },
    /// A packet from the peer.
    Packet(Box<Segment>),
    /// The clock moves on, timers firing.
    Advance {
        /// Microseconds.
        micros: u32,
    },
}

/// The socket options [`Op::SetOpt`] chooses from: (level, name).
pub const SOCKOPTS: [(i32, i32); 14] = [
    (libc::SOL_SOCKET, libc::SO_REUSEADDR),
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
    (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
    (libc::IPPROTO_TCP, libc::TCP_NODELAY),
    (libc::SOL_SOCKET, libc::SO_SNDBUF),
    (libc::SOL_SOCKET, libc::SO_LINGER),
    (libc::IPPROTO_TCP, libc::TCP_CORK),
    (libc::SOL_SOCKET, libc::SO_RCVBUF),
    (libc::IPPROTO_TCP, libc::TCP_MAXSEG),
    (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT),
    (libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT),
    (libc::IPPROTO_TCP, libc::TCP_INQ),
];

/// Reads fields off the front of a byte string, zeros once it runs out.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a.to_vec()
    }
}

const TAGS: u8 = 14;

impl Op {
    /// Decodes every operation in `bytes`.
    pub fn decode_all(bytes: &[u8]) -> Vec<Op> {
        let mut r = Reader(bytes);
        let mut ops = Vec::new();
        while !r.0.is_empty() {
            ops.push(Op::decode(&mut r));
        }
        ops
    }

    fn decode(r: &mut Reader<'_>) -> Op {
        let tag = r.u8() % TAGS;
        match tag {
            0 => {
                let b = r.u8();
                Op::Socket {
                    v6: b & 1 != 0,
                    nonblocking: b & 2 != 0,
                }
            }
            1 => Op::Bind {
                sock: r.u8(),
                port: r.u16(),
            },
            2 => Op::Listen { sock: r.u8() },
            3 => Op::Accept { sock: r.u8() },
            4 => Op::Connect {
                sock: r.u8(),
                port: r.u16(),
            },
            5 => {
                let sock = r.u8();
                let len = r.u16();
                Op::Recv {
                    sock,
                    len,
                    peek: r.u8() & 1 != 0,
                }
            }
            6 | 13 => Op::Send {
                sock: r.u8(),
                len: r.u16(),
                more: tag == 13,
            },
            7 => Op::Close { sock: r.u8() },
            8 => Op::Shutdown {
                sock: r.u8(),
                how: r.u8(),
            },
            9 => Op::SetOpt {
                sock: r.u8(),
                opt: r.u8(),
                value: r.u32() as i32,
            },
            10 => Op::Poll { sock: r.u8() },
            11 => {
                let b = r.u8();
                let mut s = Segment {
                    v6: b & 1 != 0,
                    src_port: r.u16(),
                    dst_port: r.u16(),
                    seq: r.u32(),
                    ack: r.u32(),
                    flags: r.u8(),
                    window: r.u16(),
                    mss: None,
                    wscale: None,
                    sack_permitted: b & 8 != 0,
                    timestamp: None,
                    payload: Vec::new(),
                };
                if b & 2 != 0 {
                    s.mss = Some(r.u16());
                }
                if b & 4 != 0 {
                    s.wscale = Some(r.u8());
                }
                if b & 16 != 0 {
                    s.timestamp = Some((r.u32(), r.u32()));
                }
                let len = usize::from(r.u16()).min(4096);
                s.payload = r.bytes(len);
                Op::Packet(Box::new(s))
            }
            _ => Op::Advance { micros: r.u32() },
        }
    }

    /// Appends the encoding of this operation to `out` (decoding it gives it back).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Op::Socket { v6, nonblocking } => {
                out.extend([0, u8::from(*v6) | u8::from(*nonblocking) << 1]);
            }
            Op::Bind { sock, port } => {
                out.extend([1, *sock]);
                out.extend(port.to_be_bytes());
            }
            Op::Listen { sock } => out.extend([2, *sock]),
            Op::Accept { sock } => out.extend([3, *sock]),
            Op::Connect { sock, port } => {
                out.extend([4, *sock]);
                out.extend(port.to_be_bytes());
            }
            Op::Recv { sock, len, peek } => {
                out.extend([5, *sock]);
                out.extend(len.to_be_bytes());
                out.push(u8::from(*peek));
            }
            Op::Send { sock, len, more } => {
                out.extend([if *more { 13 } else { 6 }, *sock]);
                out.extend(len.to_be_bytes());
            }
            Op::Close { sock } => out.extend([7, *sock]),
            Op::Shutdown { sock, how } => out.extend([8, *sock, *how]),
            Op::SetOpt { sock, opt, value } => {
                out.extend([9, *sock, *opt]);
                out.extend(value.to_be_bytes());
            }
            Op::Poll { sock } => out.extend([10, *sock]),
            Op::Packet(s) => {
                let b = u8::from(s.v6)
                    | u8::from(s.mss.is_some()) << 1
                    | u8::from(s.wscale.is_some()) << 2
                    | u8::from(s.sack_permitted) << 3
                    | u8::from(s.timestamp.is_some()) << 4;
                out.extend([11, b]);
                out.extend(s.src_port.to_be_bytes());
                out.extend(s.dst_port.to_be_bytes());
                out.extend(s.seq.to_be_bytes());
                out.extend(s.ack.to_be_bytes());
                out.push(s.flags);
                out.extend(s.window.to_be_bytes());
                if let Some(m) = s.mss {
                    out.extend(m.to_be_bytes());
                }
                if let Some(w) = s.wscale {
                    out.push(w);
                }
                if let Some((v, e)) = s.timestamp {
                    out.extend(v.to_be_bytes());
                    out.extend(e.to_be_bytes());
                }
                let len = s.payload.len().min(4096);
                out.extend((len as u16).to_be_bytes());
                out.extend(&s.payload[..len]);
            }
            Op::Advance { micros } => {
                out.push(12);
                out.extend(micros.to_be_bytes());
            }
        }
    }
}

impl Segment {
    /// The bare IP datagram, checksums filled, from the peer to the stack's usual address.
    pub fn to_ip(&self) -> Vec<u8> {
        let ip = if self.v6 {
            IpRepr::V6(ipv6::Repr {
                src: PEER_V6,
                dst: DEFAULT_LOCAL_V6,
                next_header: 6,
                payload_len: 0,
                hop_limit: 64,
            })
        } else {
            IpRepr::V4(ipv4::Repr {
                src: PEER_V4,
                dst: DEFAULT_LOCAL_V4,
                protocol: 6,
                payload_len: 0,
                ttl: 64,
            })
        };
        let frame = TcpFrame {
            eth: ethernet::Repr {
                dst: [0; 6],
                src: [0; 6],
                vlan: None,
                ethertype: if self.v6 {
                    ETHERTYPE_IPV6
                } else {
                    ETHERTYPE_IPV4
                },
            },
            ip,
            tcp: TcpRepr {
                src_port: self.src_port,
                dst_port: self.dst_port,
                seq: SeqNumber(self.seq),
                ack: SeqNumber(self.ack),
                flags: Flags(self.flags),
                window: self.window,
                options: Options {
                    mss: self.mss,
                    window_scale: self.wscale,
                    sack_permitted: self.sack_permitted,
                    timestamp: self.timestamp,
                    ..Options::default()
                },
                payload: &self.payload,
            },
        };
        let mut buf = vec![0; frame.buffer_len()];
        frame.emit(&mut buf);
        buf.split_off(ethernet::HEADER_LEN)
    }

    /// The segment of a bare IP datagram packetdrill injected, if it is TCP that parses.
    pub fn from_ip(ip: &[u8]) -> Option<Segment> {
        let ethertype = match ip.first()? >> 4 {
            4 => ETHERTYPE_IPV4,
            6 => ETHERTYPE_IPV6,
            _ => return None,
        };
        let mut frame = vec![0u8; ethernet::HEADER_LEN];
        frame[12..14].copy_from_slice(&ethertype.to_be_bytes());
        frame.extend_from_slice(ip);
        let f = TcpFrame::parse(&frame).ok()?;
        let o = f.tcp.options;
        Some(Segment {
            v6: ethertype == ETHERTYPE_IPV6,
            src_port: f.tcp.src_port,
            dst_port: f.tcp.dst_port,
            seq: f.tcp.seq.0,
            ack: f.tcp.ack.0,
            flags: f.tcp.flags.0,
            window: f.tcp.window,
            mss: o.mss,
            wscale: o.window_scale,
            sack_permitted: o.sack_permitted,
            timestamp: o.timestamp,
            payload: f.tcp.payload.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_encodes_to_bytes_that_decode_to_it() {
        let ops = vec![
            Op::Socket {
                v6: true,
                nonblocking: true,
            },
            Op::Bind {
                sock: 0,
                port: 8080,
            },
            Op::Listen { sock: 0 },
            Op::Accept { sock: 0 },
            Op::Connect { sock: 1, port: 80 },
            Op::Recv {
                sock: 1,
                len: 100,
                peek: true,
            },
            Op::Send {
                sock: 1,
                len: 7,
                more: false,
            },
            Op::Close { sock: 1 },
            Op::Shutdown { sock: 1, how: 2 },
            Op::SetOpt {
                sock: 0,
                opt: 3,
                value: -5,
            },
            Op::Poll { sock: 0 },
            Op::Packet(Box::new(Segment {
                v6: false,
                src_port: 1,
                dst_port: 2,
                seq: 3,
                ack: 4,
                flags: 0x12,
                window: 5,
                mss: Some(1460),
                wscale: Some(7),
                sack_permitted: true,
                timestamp: Some((9, 10)),
                payload: b"abc".to_vec(),
            })),
            Op::Advance { micros: 40_000 },
        ];
        let mut bytes = Vec::new();
        for op in &ops {
            op.encode(&mut bytes);
        }
        assert_eq!(Op::decode_all(&bytes), ops);
    }

    #[test]
    fn a_built_segment_parses_back_with_valid_checksums() {
        let s = Segment {
            v6: true,
            src_port: 40000,
            dst_port: 8080,
            seq: 7,
            ack: 0,
            flags: Flags::SYN.0,
            window: 65535,
            mss: Some(1460),
            wscale: None,
            sack_permitted: false,
            timestamp: None,
            payload: Vec::new(),
        };
        assert_eq!(Segment::from_ip(&s.to_ip()), Some(s));
    }

    #[test]
    fn arbitrary_bytes_decode_without_panicking() {
        for seed in 0..200u32 {
            let bytes: Vec<u8> = (0..64u32).map(|i| (seed * 31 + i * 17) as u8).collect();
            let _ = Op::decode_all(&bytes);
        }
    }
}
