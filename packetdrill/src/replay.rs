//! [`Op`]s applied to a [`Stack`]: how the `shim_calls` fuzz target and the replay of a
//! recorded run ([`crate::ops`]) drive the socket layer.
//!
//! This sits above [`crate::stack`] (which only records [`Op`]s) so that the two do not
//! import each other.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::ops::{Op, PEER_V4, PEER_V6, SOCKOPTS};
use crate::stack::{Fd, How, Stack};

impl Op {
    /// Applies the operation; `socks` holds the descriptors by creation index. Errors are
    /// results like any other: only a panic or a broken invariant is a finding.
    pub fn apply(&self, stack: &mut Stack, socks: &mut Vec<Fd>) {
        let fd = |i: &u8| {
            if socks.is_empty() {
                -1
            } else {
                socks[usize::from(*i) % socks.len()]
            }
        };
        match self {
            Op::Socket { v6, nonblocking } => {
                let domain = if *v6 { libc::AF_INET6 } else { libc::AF_INET };
                let ty = libc::SOCK_STREAM | if *nonblocking { libc::SOCK_NONBLOCK } else { 0 };
                if let Ok(fd) = stack.socket_call(domain, ty, 0) {
                    socks.push(fd);
                }
            }
            Op::Bind { sock, port } => {
                let fd = fd(sock);
                let ip = family_ip(stack, fd, Ipv4Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED);
                let _ = stack.bind(fd, SocketAddr::new(ip, *port));
            }
            Op::Listen { sock } => {
                let _ = stack.listen(fd(sock), 10);
            }
            Op::Accept { sock } => {
                if let Ok((new, _)) = stack.accept(fd(sock)) {
                    socks.push(new);
                }
            }
            Op::Connect { sock, port } => {
                let fd = fd(sock);
                let ip = family_ip(stack, fd, PEER_V4, PEER_V6);
                let _ = stack.connect(fd, SocketAddr::new(ip, *port));
            }
            Op::Recv { sock, len, peek } => {
                let _ = stack.recv(fd(sock), usize::from(*len), *peek);
            }
            Op::Send { sock, len, more } => {
                let data = vec![b'x'; usize::from(*len)];
                let _ = stack.send(fd(sock), &data, *more);
            }
            Op::Close { sock } => {
                let _ = stack.close(fd(sock));
            }
            Op::Shutdown { sock, how } => {
                let _ = stack.shutdown(fd(sock), how_of(*how));
            }
            Op::SetOpt { sock, opt, value } => {
                let (level, name) = SOCKOPTS[usize::from(*opt) % SOCKOPTS.len()];
                let v = option_value(name, *value);
                let _ = stack.setsockopt(fd(sock), level, name, &v);
            }
            Op::Poll { sock } => {
                let fd = fd(sock);
                let _ = (stack.poll_mask(fd), stack.inq(fd), stack.outq(fd));
            }
            Op::Packet(s) => {
                let _ = stack.netdev_send(&s.to_ip());
            }
            Op::Advance { micros } => {
                stack.run_until(stack.now() + Duration::from_micros(u64::from(*micros)));
            }
        }
    }
}

/// `v4` or `v6`, as socket `fd`'s family has it.
fn family_ip(stack: &Stack, fd: Fd, v4: Ipv4Addr, v6: Ipv6Addr) -> IpAddr {
    if stack.is_v6(fd) {
        IpAddr::V6(v6)
    } else {
        IpAddr::V4(v4)
    }
}

/// [`Op::Shutdown`]'s direction (0: SHUT_RD, 1: SHUT_WR, 2: SHUT_RDWR, modulo 3).
fn how_of(how: u8) -> How {
    match how % 3 {
        0 => How::Read,
        1 => How::Write,
        _ => How::Both,
    }
}

/// The option bytes [`Op::SetOpt`]'s `value` stands for.
fn option_value(name: i32, value: i32) -> Vec<u8> {
    // SO_LINGER's two ints travel as onoff | linger << 8.
    if name == libc::SO_LINGER {
        [(value & 1).to_ne_bytes(), (value >> 8).to_ne_bytes()].concat()
    } else {
        value.to_ne_bytes().to_vec()
    }
}
