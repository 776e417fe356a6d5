#!/usr/bin/env python3
"""The connect-close client of bench.sh's `tfo` and `tfo-off` rows: one HTTP request per
connection, one connection at a time, for DURATION seconds (wrk cannot do TCP Fast Open).

With --fastopen the request goes out with sendto(MSG_FASTOPEN): the kernel puts it in the SYN
once it holds the server's cookie (the first connection fetches it); without, connect() then
send(). Each connection's latency runs from just before the first call to the last byte of the
answer (its Content-Length read: the server's FIN is not waited for), so the two modes differ by
Fast Open alone. Prints one JSON object in `xdptcp load`'s shape (connections, elapsed_s,
errors, request_latency, percentiles) plus `syn_data`: the connections whose SYN data the server
acknowledged (TCP_INFO's TCPI_OPT_SYN_DATA), which bench.sh checks."""
import argparse
import json
import socket
import time

TCPI_OPT_SYN_DATA = 32
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"


def read_answer(s):
    """Reads one HTTP response (head, then Content-Length bytes); True if it is a 200."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            return False
        body += chunk
    return head.startswith(b"HTTP/1.1 200")


def percentile(sorted_us, p):
    if not sorted_us:
        return None
    i = min(len(sorted_us) - 1, int(round(p / 100 * (len(sorted_us) - 1))))
    return sorted_us[i]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", required=True, help="the server's address")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--fastopen", action="store_true", help="sendto(MSG_FASTOPEN)")
    a = ap.parse_args()
    family = socket.AF_INET6 if ":" in a.target else socket.AF_INET
    addr = (a.target, a.port)
    latencies, errors, syn_data = [], 0, 0
    start = time.monotonic()
    while time.monotonic() - start < a.duration:
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            t0 = time.perf_counter_ns()
            # Blocking calls: a timeout would make the socket non-blocking, and sendto with
            # MSG_FASTOPEN would then say EINPROGRESS instead of waiting for the handshake.
            if a.fastopen:
                s.sendto(REQUEST, socket.MSG_FASTOPEN, addr)
            else:
                s.connect(addr)
                s.sendall(REQUEST)
            s.settimeout(2)
            ok = read_answer(s)
            t1 = time.perf_counter_ns()
            info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
            syn_data += bool(info[5] & TCPI_OPT_SYN_DATA)
            if ok:
                latencies.append((t1 - t0) / 1000)
            else:
                errors += 1
        except OSError:
            errors += 1
        finally:
            s.close()
    elapsed = time.monotonic() - start
    lat = sorted(latencies)
    points = [0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100]
    print(json.dumps({
        "mode": "fastopen" if a.fastopen else "connect",
        "connections": len(lat),
        "elapsed_s": elapsed,
        "errors": errors,
        "syn_data": syn_data,
        "request_latency": {
            "min_us": percentile(lat, 0), "p50_us": percentile(lat, 50),
            "p90_us": percentile(lat, 90), "p99_us": percentile(lat, 99),
            "p999_us": percentile(lat, 99.9), "max_us": percentile(lat, 100),
        },
        "percentiles": [[p, percentile(lat, p)] for p in points if lat],
    }))


if __name__ == "__main__":
    main()
