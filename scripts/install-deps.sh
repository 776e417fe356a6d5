#!/usr/bin/env bash
# Installs every system package the build, the tests, the demo and the benchmarks need.
# Debian/Ubuntu, as root. Safe to run again.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: must run as root (apt-get install)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# tshark's package asks whether non-root users may capture: no.
echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
apt-get update -q
apt-get install -y -q --no-install-recommends \
    clang llvm m4 libelf-dev zlib1g-dev libpcap-dev pkg-config make gcc libc6-dev linux-libc-dev \
    iproute2 ethtool iptables iputils-ping procps psmisc systemd \
    curl wrk nginx-light hping3 nmap netcat-openbsd tcpdump tshark \
    python3 python3-scapy python3-prometheus-client \
    bison flex git

rustup component add rustfmt clippy >/dev/null 2>&1 || true
# scripts/fuzz.sh (and so test.sh) runs the cargo-fuzz targets.
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
