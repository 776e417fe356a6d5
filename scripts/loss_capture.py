#!/usr/bin/env python3
"""Summarises the captures of `scripts/loss.sh --capture` (tshark): per capture, the server's
data frames, its retransmissions and how long after the original each went out (tshark's
tcp.analysis.rto), so the recovery of two servers on the same lossy run can be compared: a
retransmission within an RTT or two is SACK/RACK/TLP work, one 200 ms or more later is a
retransmission timeout.

    loss_capture.py PORT CAPTURE.pcap...
"""

import subprocess
import sys

BUCKETS = [(0.05, "<50ms"), (0.2, "50-200ms"), (0.5, "200-500ms"), (1.5, "0.5-1.5s"),
           (float("inf"), ">1.5s")]


def fields(pcap, display, *names):
    cmd = ["tshark", "-r", pcap, "-Y", display, "-T", "fields"]
    for n in names:
        cmd += ["-e", n]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def main():
    port = sys.argv[1]
    print("| capture | data frames | retransmitted | of which within 50 ms | "
          + " | ".join(b for _, b in BUCKETS[1:]) + " | timeouts (≥200 ms) per 100 frames |")
    print("| --- | ---: | ---: | ---: |" + " ---: |" * (len(BUCKETS) - 1) + " ---: |")
    for pcap in sys.argv[2:]:
        data = fields(pcap, "tcp.srcport==%s && tcp.len>0" % port, "tcp.len")
        retx = fields(pcap, "tcp.srcport==%s && tcp.analysis.retransmission" % port,
                      "tcp.analysis.rto")
        counts = [0] * len(BUCKETS)
        for (rto,) in retx:
            d = float(rto) if rto else 0.0
            counts[next(i for i, (lim, _) in enumerate(BUCKETS) if d < lim)] += 1
        slow = sum(counts[2:])
        name = pcap.rsplit("/", 1)[-1]
        print("| %s | %d | %d | %s | %.1f |" % (
            name, len(data), len(retx), " | ".join(str(c) for c in counts),
            100.0 * slow / max(1, len(data))))


if __name__ == "__main__":
    main()
