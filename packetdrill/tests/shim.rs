//! The shim without packetdrill: the socket layer and the virtual clock driven the way
//! packetdrill drives them, with packets built and parsed by xdptcp's own wire codecs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use xdptcp::time::Instant;
use xdptcp::wire::SeqNumber;
use xdptcp::wire::ethernet::{self, ETHERTYPE_IPV4};
use xdptcp::wire::tcp::{FastOpenOption, Flags, Options, Repr as TcpRepr};
use xdptcp::wire::{IpRepr, TcpFrame, ipv4};
use xdptcp_packetdrill::flags::{DEFAULT_LOCAL_V4, Options as ShimOptions};
use xdptcp_packetdrill::shim::{EPOCH_MICROS, Received, START, Shim};
use xdptcp_packetdrill::stack::{Errno, FdSource, Stack};

const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const PORT: u16 = 8080;
const PEER_PORT: u16 = 40000;

/// A bare IPv4 packet from the peer to the stack.
fn packet(flags: Flags, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let options = Options {
        mss: flags.contains(Flags::SYN).then_some(1460),
        ..Options::default()
    };
    segment(PEER_PORT, flags, seq, ack, options, payload)
}

/// [`packet`] from the peer's port `port`, with `options`.
fn segment(
    port: u16,
    flags: Flags,
    seq: u32,
    ack: u32,
    options: Options,
    payload: &[u8],
) -> Vec<u8> {
    let frame = TcpFrame {
        eth: ethernet::Repr {
            dst: [0; 6],
            src: [0; 6],
            vlan: None,
            ethertype: ETHERTYPE_IPV4,
        },
        ip: IpRepr::V4(ipv4::Repr {
            src: PEER,
            dst: DEFAULT_LOCAL_V4,
            protocol: 6,
            payload_len: 0,
            ttl: 64,
        }),
        tcp: TcpRepr {
            src_port: port,
            dst_port: PORT,
            seq: SeqNumber(seq),
            ack: SeqNumber(ack),
            flags,
            window: 65535,
            options,
            payload,
        },
    };
    let mut buf = vec![0; frame.buffer_len()];
    frame.emit(&mut buf);
    buf.split_off(ethernet::HEADER_LEN)
}

/// The TCP header fields of a packet the stack sent: (flags, seq, ack, payload length).
fn fields(ip: &[u8]) -> (Flags, u32, u32, usize) {
    let mut frame = vec![0; ethernet::HEADER_LEN];
    frame[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    frame.extend_from_slice(ip);
    let f = TcpFrame::parse(&frame).expect("the stack sends valid packets");
    (f.tcp.flags, f.tcp.seq.0, f.tcp.ack.0, f.tcp.payload.len())
}

fn listener(s: &mut Stack) -> i32 {
    let fd = s.socket_call(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
    s.bind(fd, SocketAddr::new(IpAddr::V4(DEFAULT_LOCAL_V4), PORT))
        .unwrap();
    s.listen(fd, 10).unwrap();
    fd
}

/// Runs the handshake; returns the stack's ISN.
fn handshake(s: &mut Stack) -> u32 {
    s.netdev_send(&packet(Flags::SYN, 1000, 0, &[])).unwrap();
    let (syn_ack, _) = s.netdev_receive().expect("a SYN-ACK");
    let (flags, isn, ack, _) = fields(&syn_ack);
    assert_eq!(flags, Flags::SYN | Flags::ACK);
    assert_eq!(ack, 1001);
    s.netdev_send(&packet(Flags::ACK, 1001, isn + 1, &[]))
        .unwrap();
    isn
}

fn stack() -> Stack {
    Stack::new(&ShimOptions::default(), FdSource::Counter, START)
}

#[test]
fn a_passive_connection_is_accepted_read_written_and_closed() {
    let mut s = stack();
    let l = listener(&mut s);
    assert_eq!(
        s.accept(l),
        Err(Errno::BLOCK),
        "a blocking socket would wait"
    );
    let isn = handshake(&mut s);
    let (fd, peer) = s.accept(l).unwrap();
    assert_eq!(peer, SocketAddr::new(IpAddr::V4(PEER), PEER_PORT));

    s.netdev_send(&packet(Flags::ACK | Flags::PSH, 1001, isn + 1, b"hello"))
        .unwrap();
    assert_eq!(s.recv(fd, 2, true).unwrap(), b"he", "peek leaves it there");
    assert_eq!(s.recv(fd, 100, false).unwrap(), b"hello");
    assert_eq!(s.recv(fd, 100, false), Err(Errno::BLOCK));

    assert_eq!(s.send(fd, b"world!", false).unwrap(), 6);
    let sent: Vec<_> = std::iter::from_fn(|| s.netdev_receive()).collect();
    let data = sent.iter().map(|(p, _)| fields(p)).find(|f| f.3 == 6);
    assert_eq!(data.map(|f| (f.1, f.2)), Some((isn + 1, 1006)));

    s.close(fd).unwrap();
    let (fin, _) = s.netdev_receive().expect("a FIN");
    assert!(fields(&fin).0.contains(Flags::FIN));
    assert_eq!(s.recv(fd, 1, false), Err(Errno::BADF));
}

#[test]
fn a_reset_is_reported_once_then_the_stream_is_over() {
    let mut s = stack();
    let l = listener(&mut s);
    let isn = handshake(&mut s);
    let (fd, _) = s.accept(l).unwrap();
    s.netdev_send(&packet(Flags::RST, 1001, isn + 1, &[]))
        .unwrap();
    assert_eq!(s.recv(fd, 10, false), Err(Errno(libc::ECONNRESET)));
    assert_eq!(s.recv(fd, 10, false).unwrap(), b"");
    assert_eq!(s.send(fd, b"x", false), Err(Errno(libc::EPIPE)));
}

#[test]
fn what_a_reset_connection_left_unread_is_read_before_the_error() {
    // Linux's tcp_recvmsg returns queued data before the socket's error.
    let mut s = stack();
    let l = listener(&mut s);
    let isn = handshake(&mut s);
    let (fd, _) = s.accept(l).unwrap();
    s.netdev_send(&packet(Flags::ACK | Flags::PSH, 1001, isn + 1, b"hello"))
        .unwrap();
    s.netdev_send(&packet(Flags::RST, 1006, isn + 1, &[]))
        .unwrap();
    assert_eq!(s.recv(fd, 2, true).unwrap(), b"he", "peek leaves it there");
    assert_eq!(s.recv(fd, 3, false).unwrap(), b"hel");
    assert_eq!(s.recv(fd, 10, false).unwrap(), b"lo");
    assert_eq!(s.recv(fd, 10, false), Err(Errno(libc::ECONNRESET)));
    assert_eq!(s.recv(fd, 10, false).unwrap(), b"");
}

#[test]
fn a_disconnect_resets_the_connection_and_the_socket_connects_again_from_a_new_port() {
    let mut s = stack();
    let l = listener(&mut s);
    let isn = handshake(&mut s);
    let (fd, _) = s.accept(l).unwrap();
    s.disconnect(fd).unwrap();
    let (rst, _) = s.netdev_receive().expect("a RST");
    let (flags, seq, ack, _) = fields(&rst);
    assert_eq!((flags, seq, ack), (Flags::RST | Flags::ACK, isn + 1, 1001));
    s.set_nonblocking(fd, true).unwrap();
    let to = SocketAddr::new(IpAddr::V4(PEER), PEER_PORT);
    assert_eq!(s.connect(fd, to), Err(Errno(libc::EINPROGRESS)));
    let (syn, _) = s.netdev_receive().expect("a SYN");
    assert_eq!(fields(&syn).0, Flags::SYN);
    let src_port = u16::from_be_bytes([syn[20], syn[21]]);
    assert_ne!(
        src_port, PORT,
        "an accepted socket gives its port back (no bind())"
    );
}

/// A SYN with data and the Fast Open cookie `cookie` from port `port`.
fn fast_open_syn(port: u16, cookie: &[u8], payload: &[u8]) -> Vec<u8> {
    let options = Options {
        mss: Some(1460),
        fast_open: FastOpenOption::with_cookie(cookie, false),
        ..Options::default()
    };
    segment(port, Flags::SYN, 1000, 0, options, payload)
}

#[test]
fn fast_open_needs_the_server_bit_and_a_queue_as_in_linux() {
    use xdptcp::tcp::fastopen::cookie;
    let opts = ShimOptions::parse("fastopen=0x3,fastopen_key=1-2-3-4").unwrap();
    let key = opts.fastopen_key.unwrap().primary;
    let c = cookie(&key, IpAddr::V4(PEER), IpAddr::V4(DEFAULT_LOCAL_V4));
    let ack_of = |s: &mut Stack, port: u16| {
        s.netdev_send(&fast_open_syn(port, &c, b"early")).unwrap();
        let (syn_ack, _) = s.netdev_receive().expect("a SYN-ACK");
        fields(&syn_ack).2
    };
    let mut s = Stack::new(&opts, FdSource::Counter, START);
    let l = listener(&mut s);
    assert_eq!(
        ack_of(&mut s, 41000),
        1001,
        "no TCP_FASTOPEN: the data is not taken"
    );
    s.setsockopt(
        l,
        libc::IPPROTO_TCP,
        libc::TCP_FASTOPEN,
        &4i32.to_ne_bytes(),
    )
    .unwrap();
    assert_eq!(
        ack_of(&mut s, 41001),
        1006,
        "TCP_FASTOPEN after listen(): taken"
    );
    assert_eq!(
        s.getsockopt(l, libc::IPPROTO_TCP, libc::TCP_FASTOPEN)
            .unwrap(),
        4i32.to_ne_bytes()
    );
    // Without the server bit (Linux's default, 0x1), TCP_FASTOPEN is taken and does nothing.
    let mut s = Stack::new(&ShimOptions::default(), FdSource::Counter, START);
    let l = listener(&mut s);
    s.setsockopt(
        l,
        libc::IPPROTO_TCP,
        libc::TCP_FASTOPEN,
        &4i32.to_ne_bytes(),
    )
    .unwrap();
    assert_eq!(ack_of(&mut s, 41002), 1001);
    assert_eq!(
        s.setsockopt(l, libc::IPPROTO_TCP, libc::TCP_FASTOPEN_KEY, &[0; 3]),
        Err(Errno::INVAL),
        "a key is 16 bytes, or 32 with a backup"
    );
    s.setsockopt(l, libc::IPPROTO_TCP, libc::TCP_FASTOPEN_KEY, &[0; 32])
        .unwrap();
}

#[test]
fn unknown_options_and_descriptors_fail_with_their_errno() {
    let mut s = stack();
    let fd = s.socket_call(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
    assert_eq!(
        s.setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_ULP, &1i32.to_ne_bytes()),
        Err(Errno::NOPROTOOPT)
    );
    assert_eq!(s.recv(99, 1, false), Err(Errno::BADF));
    assert_eq!(
        s.socket_call(libc::AF_UNIX, libc::SOCK_STREAM, 0),
        Err(Errno(libc::EAFNOSUPPORT))
    );
    assert_eq!(
        s.socket_call(libc::AF_INET, libc::SOCK_DGRAM, 0),
        Err(Errno(libc::EPROTONOSUPPORT))
    );
    let sndbuf = |s: &mut Stack, v: i32| {
        s.setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &v.to_ne_bytes())
            .unwrap();
        s.getsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF).unwrap()
    };
    assert_eq!(
        sndbuf(&mut s, 5000),
        10_000i32.to_ne_bytes(),
        "doubled, as Linux does"
    );
    assert_eq!(
        sndbuf(&mut s, 1000),
        4608i32.to_ne_bytes(),
        "no less than Linux's SOCK_MIN_SNDBUF"
    );
}

#[test]
fn the_main_threads_clock_moves_on_each_gettimeofday_and_through_usleep() {
    let shim = Shim::new(&ShimOptions::default(), FdSource::Counter);
    let t0 = shim.gettimeofday();
    assert_eq!(t0, EPOCH_MICROS + START.total_micros() as i64 + 1);
    assert_eq!(shim.gettimeofday(), t0 + 1);
    shim.usleep(250_000);
    assert_eq!(shim.gettimeofday(), t0 + 250_002);
}

#[test]
fn netdev_receive_runs_the_clock_to_the_next_timer_or_reports_nothing() {
    let shim = Shim::new(&ShimOptions::default(), FdSource::Counter);
    assert_eq!(shim.netdev_receive(), Received::Nothing, "no timer at all");
    shim.call(|s| {
        listener(s);
        s.netdev_send(&packet(Flags::SYN, 1000, 0, &[])).unwrap();
    });
    let Received::Packet(_, first) = shim.netdev_receive() else {
        panic!("the SYN-ACK")
    };
    // Nothing queued: the clock runs to the SYN-ACK retransmission, 1 s later.
    let Received::Packet(p, again) = shim.netdev_receive() else {
        panic!("the retransmitted SYN-ACK")
    };
    assert_eq!(fields(&p).0, Flags::SYN | Flags::ACK);
    assert_eq!(again - first, Duration::from_secs(1));
}

#[test]
fn a_poll_on_the_main_thread_sleeps_through_timers_until_its_timeout() {
    let shim = Shim::new(&ShimOptions::default(), FdSource::Counter);
    let fd = shim.call(|s| {
        let l = listener(s);
        handshake(s);
        while s.netdev_receive().is_some() {}
        let (fd, _) = s.accept(l).unwrap();
        s.send(fd, b"data", false).unwrap();
        assert!(s.netdev_receive().is_some());
        fd
    });
    let start = shim.call(|s| s.now());
    let r = shim.blocking(Some(Duration::from_millis(500)), |s| {
        if s.poll_mask(fd) & libc::EPOLLIN as u32 != 0 {
            Ok(())
        } else {
            Err(Errno::BLOCK)
        }
    });
    assert_eq!(r, Ok(None), "timed out");
    let end = shim.call(|s| s.now());
    assert_eq!(end - start, Duration::from_millis(500));
    // The retransmission fired on the way, at its own instant: the handshake took no time, so
    // the RTO is its 200 ms floor.
    let (p, at) = shim.call(|s| s.netdev_receive()).expect("a retransmission");
    assert_eq!(fields(&p).3, 4);
    assert_eq!(at - start, Duration::from_millis(200));
}

#[test]
fn a_blocking_accept_on_another_thread_wakes_at_the_handshake_and_reports_that_time() {
    let shim = Arc::new(Shim::new(&ShimOptions::default(), FdSource::Counter));
    let l = shim.call(listener);
    let waiter = {
        let shim = Arc::clone(&shim);
        std::thread::spawn(move || {
            let r = shim.blocking(None, |s| s.accept(l));
            (r, shim.gettimeofday())
        })
    };
    // Let the waiter park, as packetdrill waits for its syscall thread to sleep.
    std::thread::sleep(Duration::from_millis(50));
    shim.usleep(100_000);
    let done_at = shim.call(|s| {
        handshake(s);
        s.now()
    });
    // Time moves on at once; the waiter must still report the handshake's instant.
    shim.usleep(300_000);
    let (r, returned_at) = waiter.join().unwrap();
    let (fd, _) = r.unwrap().expect("no timeout");
    assert!(fd > l);
    assert_eq!(
        returned_at,
        EPOCH_MICROS + done_at.total_micros() as i64,
        "the end time is when the call could complete"
    );
    assert_eq!(
        shim.call(|s| s.now()),
        Instant::from_micros(done_at.total_micros() + 300_000)
    );
}

#[test]
fn init_fills_every_function_pointer_and_sockets_are_real_descriptors() {
    use std::mem::MaybeUninit;
    use xdptcp_packetdrill::ffi::{PacketdrillInterface, packetdrill_interface_init};
    let mut ifc = MaybeUninit::<PacketdrillInterface>::uninit();
    let flags = c"syncookies=always";
    // Safety: a valid flags string and a struct to fill, as packetdrill passes them.
    let ifc = unsafe {
        packetdrill_interface_init(flags.as_ptr(), ifc.as_mut_ptr());
        ifc.assume_init()
    };
    let pointers = [
        ifc.free.is_some(),
        ifc.socket.is_some(),
        ifc.bind.is_some(),
        ifc.listen.is_some(),
        ifc.accept.is_some(),
        ifc.connect.is_some(),
        ifc.read.is_some(),
        ifc.readv.is_some(),
        ifc.recv.is_some(),
        ifc.recvfrom.is_some(),
        ifc.recvmsg.is_some(),
        ifc.write.is_some(),
        ifc.writev.is_some(),
        ifc.send.is_some(),
        ifc.sendto.is_some(),
        ifc.sendmsg.is_some(),
        ifc.fcntl.is_some(),
        ifc.ioctl.is_some(),
        ifc.close.is_some(),
        ifc.shutdown.is_some(),
        ifc.getsockopt.is_some(),
        ifc.setsockopt.is_some(),
        ifc.poll.is_some(),
        ifc.netdev_send.is_some(),
        ifc.netdev_receive.is_some(),
        ifc.usleep.is_some(),
        ifc.gettimeofday.is_some(),
        ifc.epoll_create.is_some(),
        ifc.epoll_ctl.is_some(),
        ifc.epoll_wait.is_some(),
        ifc.pipe.is_some(),
        ifc.splice.is_some(),
    ];
    assert!(
        pointers.iter().all(|p| *p),
        "packetdrill NULL-checks none of them"
    );
    assert!(!ifc.userdata.is_null());
    // Safety: the pointers and userdata init just made, used as packetdrill uses them.
    unsafe {
        let fd = (ifc.socket.unwrap())(ifc.userdata, libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        assert!(libc::fcntl(fd, libc::F_GETFD) >= 0, "a real descriptor");
        assert_eq!((ifc.close.unwrap())(ifc.userdata, fd), 0);
        assert_eq!((ifc.close.unwrap())(ifc.userdata, fd), -1);
        assert_eq!(*libc::__errno_location(), libc::EBADF);
        (ifc.free.unwrap())(ifc.userdata);
    }
}

#[test]
fn another_threads_gettimeofday_moves_the_clock_too() {
    // packetdrill's syscall thread spins on gettimeofday until a blocking call's start time
    // while the main thread waits for it: time must move for it as well.
    let shim = Arc::new(Shim::new(&ShimOptions::default(), FdSource::Counter));
    let other = Arc::clone(&shim);
    let (a, b) = std::thread::spawn(move || (other.gettimeofday(), other.gettimeofday()))
        .join()
        .unwrap();
    assert_eq!(b, a + 1);
}

#[test]
fn a_recorded_run_replays_to_the_same_packets() {
    use xdptcp_packetdrill::ops::Op;
    let run = |s: &mut Stack| {
        let l = listener(s);
        let isn = handshake(s);
        let (fd, _) = s.accept(l).unwrap();
        s.netdev_send(&packet(Flags::ACK | Flags::PSH, 1001, isn + 1, b"request"))
            .unwrap();
        s.recv(fd, 100, false).unwrap();
        // Recordings keep the length of what is sent, and replay it as x bytes.
        s.send(fd, b"xxxxx", false).unwrap();
        s.run_until(s.now() + Duration::from_millis(300));
        s.close(fd).unwrap();
    };
    let mut recorded = stack();
    recorded.start_recording();
    run(&mut recorded);
    let sent: Vec<_> = std::iter::from_fn(|| recorded.netdev_receive()).collect();
    let ops = Op::decode_all(&recorded.take_recording().unwrap());
    assert!(ops.len() > 8, "{ops:?}");

    let mut replay = stack();
    let mut socks = Vec::new();
    for op in &ops {
        op.apply(&mut replay, &mut socks);
    }
    let again: Vec<_> = std::iter::from_fn(|| replay.netdev_receive()).collect();
    // The run's handshake took the SYN-ACK off its queue; the replay's is still there.
    assert_eq!(fields(&again[0].0).0, Flags::SYN | Flags::ACK);
    assert_eq!(again[1..], sent, "the same packets at the same instants");
}
