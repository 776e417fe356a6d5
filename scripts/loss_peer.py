#!/usr/bin/env python3
"""Kernel-TCP peers for scripts/loss.sh: a client that runs echo or upload transfers and
reports per-transfer times as JSON, and a kernel server (echo or discard) to compare with.

    loss_peer.py client echo   ADDR PORT --transfers N --size BYTES --concurrency C --timeout S
    loss_peer.py client upload ADDR PORT --size BYTES --timeout S
    loss_peer.py server echo|discard ADDR PORT --cc reno|bbr

One thread, non-blocking sockets, `selectors`: 25 concurrent transfers cost the client no
threads. Every echoed byte is compared with what was sent (byte-exact or counted as an error).
The server sets TCP_CONGESTION on its listening socket (accepted sockets inherit it) and reads
and writes in 256 KiB chunks, so the kernel's TCP, not Python, is what is measured.
"""

import argparse
import json
import selectors
import socket
import sys
import time

CHUNK = 256 * 1024


def pattern(size):
    """The bytes a transfer sends: a repeating, position-dependent pattern."""
    block = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(65536))
    reps = size // len(block) + 1
    return memoryview((block * reps)[:size])


def family(addr):
    """AF_INET6 for an IPv6 address (it has a colon), else AF_INET."""
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def percentile(values, p):
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


class Transfer:
    """One connection: connect, send `data` (then shut down writing), read until EOF."""

    def __init__(self, sel, addr, data, echo):
        self.sel = sel
        self.data = data
        self.echo = echo
        self.sent = 0
        self.recv = bytearray()
        self.start = time.monotonic()
        self.end = None
        self.error = None
        self.sock = socket.socket(family(addr[0]), socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.sock.connect_ex(addr)
        sel.register(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self)

    def _events(self):
        ev = selectors.EVENT_READ
        if self.sent < len(self.data):
            ev |= selectors.EVENT_WRITE
        return ev

    def handle(self, mask):
        try:
            if mask & selectors.EVENT_WRITE and self.sent < len(self.data):
                n = self.sock.send(self.data[self.sent:self.sent + CHUNK])
                self.sent += n
                if self.sent == len(self.data):
                    self.sock.shutdown(socket.SHUT_WR)
                self.sel.modify(self.sock, self._events(), self)
            if mask & selectors.EVENT_READ:
                b = self.sock.recv(CHUNK)
                if not b:
                    self.finish()
                elif self.echo:
                    self.recv += b
                else:
                    self.fail("unexpected data from a discard server")
        except BlockingIOError:
            pass
        except OSError as e:
            self.fail(str(e))

    def finish(self):
        if self.echo and bytes(self.recv) != bytes(self.data):
            self.fail("echo mismatch: got %d of %d bytes" % (len(self.recv), len(self.data)))
            return
        if self.sent != len(self.data):
            self.fail("EOF before everything was sent")
            return
        self.end = time.monotonic()
        self.close()

    def fail(self, why):
        self.error = why
        self.end = time.monotonic()
        self.close()

    def close(self):
        try:
            self.sel.unregister(self.sock)
        except (KeyError, ValueError):
            pass
        self.sock.close()


def run_client(args):
    addr = (args.addr, args.port)
    data = pattern(args.size)
    echo = args.mode == "echo"
    transfers = args.transfers if echo else 1
    concurrency = args.concurrency if echo else 1
    sel = selectors.DefaultSelector()
    started = time.monotonic()
    deadline = started + args.timeout
    pending = transfers
    active = []
    done = []
    while (pending or active) and time.monotonic() < deadline:
        while pending and len(active) < concurrency:
            active.append(Transfer(sel, addr, data, echo))
            pending -= 1
        for key, mask in sel.select(timeout=0.1):
            key.data.handle(mask)
        still = []
        for t in active:
            (done if t.end is not None else still).append(t)
        active = still
    total = time.monotonic() - started
    for t in active:
        t.fail("timed out after %ss" % args.timeout)
        done.append(t)
    times = [t.end - t.start for t in done if t.error is None]
    errors = [t.error for t in done if t.error is not None] + ["not started"] * pending
    out = {
        "mode": args.mode,
        "transfers": transfers,
        "size": args.size,
        "concurrency": concurrency,
        "completed": len(times),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "total_s": total,
        "p50_s": percentile(times, 50),
        "p99_s": percentile(times, 99),
        "max_s": max(times) if times else None,
        # Application bytes moved per second (both directions for echo).
        "goodput_mib_s": (len(times) * args.size * (2 if echo else 1)) / total / 2**20
        if total > 0 else None,
    }
    print(json.dumps(out))
    return 0 if not errors else 1


def run_server(args):
    lsock = socket.socket(family(args.addr), socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, args.cc.encode())
    lsock.bind((args.addr, args.port))
    lsock.listen(1024)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    # Per connection: bytes received and not yet echoed back, and whether the peer closed.
    state = {}
    buf = bytearray(CHUNK)
    view = memoryview(buf)

    def events(s):
        pend, _ = state[s]
        return selectors.EVENT_WRITE if pend else selectors.EVENT_READ

    def close(s):
        sel.unregister(s)
        del state[s]
        s.close()

    while True:
        for key, mask in sel.select():
            s = key.fileobj
            if key.data is None:
                try:
                    c, _ = lsock.accept()
                except BlockingIOError:
                    continue
                c.setblocking(False)
                state[c] = [bytearray(), False]
                sel.register(c, selectors.EVENT_READ, c)
                continue
            pend, eof = state[s]
            try:
                if mask & selectors.EVENT_READ:
                    n = s.recv_into(view)
                    if n == 0:
                        state[s][1] = eof = True
                    elif args.mode == "echo":
                        pend += view[:n]
                if mask & selectors.EVENT_WRITE and pend:
                    n = s.send(pend)
                    del pend[:n]
            except BlockingIOError:
                pass
            except OSError:
                close(s)
                continue
            if eof and not pend:
                close(s)
            else:
                sel.modify(s, events(s), s)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("role", choices=["client", "server"])
    p.add_argument("mode", choices=["echo", "upload", "discard"])
    p.add_argument("addr")
    p.add_argument("port", type=int)
    p.add_argument("--transfers", type=int, default=100)
    p.add_argument("--size", type=int, default=256 * 1024)
    p.add_argument("--concurrency", type=int, default=25)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--cc", default="reno")
    args = p.parse_args()
    if args.role == "client":
        if args.mode == "discard":
            p.error("the client modes are echo and upload")
        return run_client(args)
    if args.mode == "upload":
        p.error("the server modes are echo and discard")
    return run_server(args)


if __name__ == "__main__":
    sys.exit(main())
