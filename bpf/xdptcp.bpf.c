// SPDX-License-Identifier: (MIT OR Apache-2.0)
/*
 * xdptcp's XDP program: TCP segments for a served (address, port), in a frame addressed to our
 * MAC, go to the AF_XDP socket of the receive queue they arrived on; everything else (ARP,
 * ICMP, other ports, other addresses, other MACs, anything we cannot parse) is XDP_PASS,
 * untouched, to the kernel stack.
 *
 * Under a SYN flood (the queue's `cookie_mode` flag, set by its worker) a SYN is answered right
 * here: the SYN-ACK the engine would send with a SYN cookie (src/tcp/syncookie.rs), built in
 * place and sent back with XDP_TX, before any copy to user space. The cookie, the MSS tables,
 * the timestamp bits and the per-connection timestamp offset are the engine's, bit for bit, so
 * the engine validates the third ACK as one of its own cookies. Tests run random SYNs through
 * this program and through the Rust functions and require identical frames.
 *
 * User space fills `served`, `xsks`, `cookie_keys` and `queues`; the structs below reach Rust
 * through the skeleton's generated types, never mirrored by hand.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>

#include "siphash.h"

#define ETH_P_8021Q_ 0x8100
#define FAMILY_INET 2   /* AF_INET */
#define FAMILY_INET6 10 /* AF_INET6 */
#define IP_FRAG_OFFSET_MASK 0x1fff
#define IP_MF_ 0x2000
#define IP_DF_ 0x4000
#define MAX_QUEUES 64

#define TCPOPT_EOL_ 0
#define TCPOPT_NOP_ 1
#define TCPOPT_MSS_ 2
#define TCPOPT_WINDOW_ 3
#define TCPOPT_SACK_PERM_ 4
#define TCPOPT_SACK_ 5
#define TCPOPT_TIMESTAMP_ 8
#define TCPOPT_FASTOPEN_ 34 /* RFC 7413 */
#define TCPOPT_EXP_ 254     /* RFC 6994: TCP Fast Open's experimental kind among others */
#define TCP_MAX_OPTIONS 40
#define TCP_MAX_WSCALE_ 14

/* src/tcp/syncookie.rs: the cookie's layout and the timestamp bits. */
#define COOKIE_SLOT_SHIFT 26
#define COOKIE_MSS_SHIFT 24
#define COOKIE_MAC_MASK ((1U << COOKIE_MSS_SHIFT) - 1)
#define COOKIE_SLOT_US 64000000ULL /* syncookie::SLOT */
#define COOKIE_NO_TS 0xff
#define TS_BITS_MASK 0x3f
#define TS_WSCALE_NONE 0x0f
#define TS_SACK 0x10
/* src/tcp/isn.rs: the domain tag of the tuple hash (timestamp offsets and cookie MACs). */
#define DOMAIN_TS_OFFSET 2

/* A served endpoint. `addr` all zero means "any address of this family"; `port` zero means
 * "every port of this address" (a load generator receiving on its whole source-port range). */
struct served_key {
	__u8 family;   /* FAMILY_INET or FAMILY_INET6 */
	__u8 pad;      /* always zero: part of the hash key */
	__be16 port;   /* network byte order, as on the wire */
	__u8 addr[16]; /* IPv4 in the first 4 bytes, the rest zero */
};

/* What happened to the frames, per CPU: the one value of the `counters` array. */
struct xdp_counters {
	__u64 redirected;    /* handed to an AF_XDP socket */
	__u64 passed;        /* not ours: to the kernel */
	__u64 malformed;     /* truncated or impossible headers: to the kernel */
	__u64 no_socket;     /* ours, but no socket on this queue: to the kernel */
	__u64 other_mac;     /* TCP for a served endpoint but not to our MAC: to the kernel */
	__u64 cookie_synacks;   /* SYNs answered with a cookie SYN-ACK here (XDP_TX) */
	__u64 syn_bad_checksum; /* cookie mode: SYNs dropped for a bad IP or TCP checksum */
	__u64 syn_malformed;    /* cookie mode: SYNs dropped for bad options, flags or addresses */
	__u64 syn_to_worker;    /* cookie mode: SYNs we do not answer here (IP options, data...) */
	__u64 tx_dropped;       /* XDP_TX frames the driver dropped (tracepoints below) */
	__u64 rst_backscatter;  /* cookie mode: bare RSTs answering our cookie SYN-ACKs, dropped */
	__u64 syn_tx_fallback;  /* cookie mode: SYNs to the worker, our SYN-ACKs being dropped */
	__u64 martian;          /* served, but from a source that is never a peer: dropped */
};

enum counter {
	COUNTER_REDIRECTED,
	COUNTER_PASSED,
	COUNTER_MALFORMED,
	COUNTER_NO_SOCKET,
	COUNTER_OTHER_MAC,
	COUNTER_COOKIE_SYNACKS,
	COUNTER_SYN_BAD_CHECKSUM,
	COUNTER_SYN_MALFORMED,
	COUNTER_SYN_TO_WORKER,
	COUNTER_TX_DROPPED,
	COUNTER_RST_BACKSCATTER,
	COUNTER_SYN_TX_FALLBACK,
	COUNTER_MARTIAN,
};

/* One receive queue, written by its worker (cookie_mode) and by this program (cookies): a
 * BPF_F_MMAPABLE array, so neither side makes a syscall. One cache line per queue. */
struct queue_state {
	__u32 cookie_mode; /* nonzero: answer SYNs on this queue here */
	/* nonzero: the driver drops our SYN-ACKs (a veth peer without NAPI): hand SYNs to the
	 * worker even in cookie mode, whose AF_XDP TX needs nothing of the peer. Set by the
	 * control thread from tx_dropped. */
	__u32 syns_to_worker;
	__u64 cookies;     /* SYN-ACKs sent here for this queue (the worker's flood gauge) */
	__u64 reserved[6];
};

/* The engine's cookie key of one rotation epoch and its timestamp-offset key. */
struct cookie_key {
	__u64 epoch; /* the rotation epoch the key belongs to; ~0: none */
	__u64 mac_k0, mac_k1;
	__u64 ts_k0, ts_k1;
};

/* The keys of the current and the next epoch, at index `epoch & 1`, written by the control
 * thread ahead of time: the entry this program reads is never the one being written. */
struct cookie_keys {
	struct cookie_key keys[2];
};

/* Number of receive queues that have a socket: queues at or above it are never redirected. */
const volatile __u32 xsk_queues = 0;
/* Our MAC: frames to any other destination are not ours. */
const volatile __u8 local_mac[6] = {};
/* What the engine puts in its SYN-ACK (tcp::Config). */
const volatile __u16 synack_mss = 1460;    /* the MSS we announce */
const volatile __u16 synack_window = 65535; /* the SYN-ACK's (unscaled) window */
const volatile __u8 synack_wscale = 7;      /* the window scale we offer; 0: none */
const volatile __u8 synack_ttl = 64;
const volatile __u8 use_timestamps = 1;
const volatile __u8 use_sack = 1;
/* The engine's cookie clock: microseconds added to CLOCK_MONOTONIC for slots and epochs. */
const volatile __s64 cookie_clock_offset_us = 0;
/* Length of a key rotation epoch, in microseconds (tcp::Config::cookie_rotation). */
const volatile __u64 cookie_epoch_us = 64000000;
/* Send cookie SYN-ACKs back with bpf_redirect() to the device they came in on rather than
 * XDP_TX: on veth, XDP_TX frames reach a peer without an XDP program of its own only when
 * something else wakes the peer's NAPI, while redirected ones are flushed to it (GRO on the
 * peer is enough). Real NICs keep XDP_TX, their fastest path. */
const volatile __u8 tx_by_redirect = 0;
/* The device the program is attached to, for the XDP_TX tracepoints. */
const volatile __s32 watched_ifindex = 0;
/* Its network namespace (the inode number; 0: any): the tracepoints fire for every device of
 * the host, and each namespace numbers its devices from 1 (every veth of a test is ifindex 2). */
const volatile __u32 watched_netns = 0;
/* Tests only: a fixed CLOCK_MONOTONIC reading in ns instead of bpf_ktime_get_ns(). */
const volatile __u64 fixed_now_ns = 0;
/* Loaded frags-aware (BPF_F_XDP_HAS_FRAGS): a packet may go on beyond data_end in fragments
 * (bpf_xdp_get_buff_len counts them). Headers are parsed from the first buffer only, as
 * before; the redirect hands the whole packet to AF_XDP as a descriptor chain. */
const volatile __u8 multi_buffer = 0;

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	/* Room for a load generator's whole source-port range; not preallocated. */
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct served_key);
	__type(value, __u8);
} served SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdp_counters);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, struct queue_state);
} queues SEC(".maps");

/* Backscatter: a flooder that sends SYNs from its own address has its kernel answer each of
 * our cookie SYN-ACKs with a bare RST (SEQ = our SYN-ACK's ACK, RFC 9293 §3.10.7.1), one for
 * every flood SYN. The engine would only drop them (no connection exists before the third
 * ACK), after a trip through the AF_XDP ring that legit segments need. So each cookie SYN-ACK
 * leaves the RST sequence number it would draw in a per-CPU slot picked by a hash of the
 * tuple (RSS keeps a tuple on one CPU), and a bare RST (no ACK: a host with a socket for the
 * tuple sends RST|ACK when it aborts) carrying exactly that number is dropped here. */
#define BACKSCATTER_SLOTS 65536
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BACKSCATTER_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} backscatter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cookie_keys);
} cookie_keys SEC(".maps");

/* Where the parser stands in the packet. */
struct hdr_cursor {
	void *pos;
};

static __always_inline int count(enum counter which, int verdict)
{
	__u32 zero = 0;
	struct xdp_counters *c = bpf_map_lookup_elem(&counters, &zero);

	if (!c)
		return verdict;
	switch (which) {
	case COUNTER_REDIRECTED:
		c->redirected++;
		break;
	case COUNTER_PASSED:
		c->passed++;
		break;
	case COUNTER_MALFORMED:
		c->malformed++;
		break;
	case COUNTER_NO_SOCKET:
		c->no_socket++;
		break;
	case COUNTER_OTHER_MAC:
		c->other_mac++;
		break;
	case COUNTER_COOKIE_SYNACKS:
		c->cookie_synacks++;
		break;
	case COUNTER_SYN_BAD_CHECKSUM:
		c->syn_bad_checksum++;
		break;
	case COUNTER_SYN_MALFORMED:
		c->syn_malformed++;
		break;
	case COUNTER_SYN_TO_WORKER:
		c->syn_to_worker++;
		break;
	case COUNTER_TX_DROPPED:
		c->tx_dropped++;
		break;
	case COUNTER_RST_BACKSCATTER:
		c->rst_backscatter++;
		break;
	case COUNTER_SYN_TX_FALLBACK:
		c->syn_tx_fallback++;
		break;
	case COUNTER_MARTIAN:
		c->martian++;
		break;
	}
	return verdict;
}

/* Returns the ethertype (network order) after at most one 802.1Q tag, or -1. An 802.1ad
 * service tag (0x88A8, QinQ) is returned as it is, so the frame goes to the kernel untouched:
 * the engine takes single 802.1Q tags only (src/wire/ethernet.rs) and would drop it. */
static __always_inline int parse_ethhdr(struct hdr_cursor *nh, void *data_end)
{
	struct ethhdr *eth = nh->pos;
	__be16 proto;

	if (eth + 1 > data_end)
		return -1;
	nh->pos = eth + 1;
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q_)) {
		/* TCI (2 bytes), then the encapsulated ethertype (2 bytes). */
		__be16 *tag = nh->pos;

		if (tag + 2 > data_end)
			return -1;
		proto = tag[1];
		nh->pos = tag + 2;
	}
	return proto;
}

/* Returns the IP protocol, or -1 when truncated or impossible; -2 for a non-first fragment. */
static __always_inline int parse_iphdr(struct hdr_cursor *nh, void *data_end, struct iphdr **iph)
{
	struct iphdr *h = nh->pos;
	int len;

	if (h + 1 > data_end)
		return -1;
	len = h->ihl * 4;
	if (h->version != 4 || len < (int)sizeof(*h))
		return -1;
	if (nh->pos + len > data_end)
		return -1;
	if (h->frag_off & bpf_htons(IP_FRAG_OFFSET_MASK))
		return -2;
	nh->pos += len;
	*iph = h;
	return h->protocol;
}

/* Returns the next header of the fixed IPv6 header, or -1 when truncated. */
static __always_inline int parse_ip6hdr(struct hdr_cursor *nh, void *data_end,
					struct ipv6hdr **ip6h)
{
	struct ipv6hdr *h = nh->pos;

	if (h + 1 > data_end)
		return -1;
	if (h->version != 6)
		return -1;
	nh->pos = h + 1;
	*ip6h = h;
	return h->nexthdr;
}

/* Returns 0 with *tcph set, or -1 when the TCP header is truncated or its offset impossible. */
static __always_inline int parse_tcphdr(struct hdr_cursor *nh, void *data_end,
					struct tcphdr **tcph)
{
	struct tcphdr *h = nh->pos;
	int len;

	if (h + 1 > data_end)
		return -1;
	len = h->doff * 4;
	if (len < (int)sizeof(*h))
		return -1;
	if (nh->pos + len > data_end)
		return -1;
	nh->pos += len;
	*tcph = h;
	return 0;
}

/* Exact (address, port) first, then every port of the address, then the family's wildcard
 * address. */
static __always_inline int is_served(struct served_key *key)
{
	__be16 port = key->port;

	if (bpf_map_lookup_elem(&served, key))
		return 1;
	key->port = 0;
	if (bpf_map_lookup_elem(&served, key))
		return 1;
	key->port = port;
	__builtin_memset(key->addr, 0, sizeof(key->addr));
	return bpf_map_lookup_elem(&served, key) != NULL;
}

/* A source that is never a TCP peer: the engine's `martian_source` (src/tcp/engine.rs), so that
 * nothing is ever answered to it. A group source MAC (the I/G bit, broadcast included); IPv4
 * 0.0.0.0/8, 127/8, multicast and limited broadcast (Linux's ip_route_input_slow, "goto
 * martian_source"); IPv6 ::, ::1, multicast (ip6_rcv_core) and ::ffff:0:0/96
 * (tcp_v6_conn_request); and the frame's destination (a LAND attack). No lookup: the other
 * addresses we serve are `own_source`, asked only before we answer a SYN here; every other
 * frame goes to the engine, which drops one from a listener's address itself. `src` and `dst`
 * are the addresses' words as on the wire (IPv4 in the first). */
static __always_inline int martian_source(const struct ethhdr *eth, __u8 family, const __u32 *src,
					  const __u32 *dst)
{
	const __u8 *a = (const __u8 *)src;

	if (eth->h_source[0] & 1)
		return 1;
	if (family == FAMILY_INET) {
		if (a[0] == 0 || a[0] == 127 || (a[0] & 0xf0) == 0xe0 || src[0] == 0xffffffff)
			return 1;
		if (src[0] == dst[0])
			return 1;
	} else {
		if (a[0] == 0xff)
			return 1; /* ff00::/8 */
		if ((src[0] | src[1]) == 0) {
			if (src[2] == bpf_htonl(0xffff))
				return 1; /* ::ffff:0:0/96 */
			if (src[2] == 0 && (src[3] == 0 || src[3] == bpf_htonl(1)))
				return 1; /* :: and ::1 */
		}
		if (src[0] == dst[0] && src[1] == dst[1] && src[2] == dst[2] && src[3] == dst[3])
			return 1;
	}
	return 0;
}

/* A source that is one of our own addresses on this port (fib_validate_source refuses a
 * local source): one lookup, made only for a SYN about to be answered here. An address served
 * on every port (port 0) is a load generator's own source, whose engine answers no segment
 * that matches no connection anyway. */
static __always_inline int own_source(__u8 family, const __u32 *src, __be16 port)
{
	struct served_key own = { .family = family, .port = port };

	__builtin_memcpy(own.addr, src, 16);
	return bpf_map_lookup_elem(&served, &own) != NULL;
}

static __always_inline int to_our_mac(const struct ethhdr *eth)
{
	int i;

#pragma unroll
	for (i = 0; i < 6; i++)
		if (eth->h_dest[i] != local_mac[i])
			return 0;
	return 1;
}

/* The backscatter slot of a tuple: the peer's address words and both ports, mixed. */
static __always_inline __u32 backscatter_slot(const __u32 *peer, int words, __u32 ports)
{
	__u32 h = ports;
	int i;

#pragma unroll
	for (i = 0; i < 4; i++)
		if (i < words)
			h = (h ^ peer[i]) * 0x9e3779b1;
	return (h >> 16) % BACKSCATTER_SLOTS;
}

/* ---- SYN cookies ------------------------------------------------------------------------ */

/* The options of a SYN that matter for a cookie. */
struct syn_options {
	__u8 has_mss, has_ws, has_sack, has_ts;
	__u8 ws;     /* the peer's window scale, clamped to 14 */
	__u16 mss;   /* the peer's MSS */
	__u32 tsval; /* the peer's TSval (host order) */
};

/* What a SYN tells us, copied out of the packet before the packet is rewritten. */
struct syn_info {
	__u8 family;       /* FAMILY_INET or FAMILY_INET6 */
	__u8 l2_len;       /* 14, or 18 with an 802.1Q tag */
	__be32 seq;        /* the SYN's sequence number, as on the wire */
	__be16 sport, dport;
	__u8 src[16], dst[16]; /* addresses as on the wire (IPv4 in the first 4 bytes) */
	__u8 src_mac[6];
};

/* Verdicts of the cookie path besides XDP_TX. */
enum syn_verdict {
	SYN_ANSWERED,     /* rewritten into a SYN-ACK: XDP_TX */
	SYN_TO_WORKER,    /* not one we answer here: on to the engine as usual */
	SYN_BAD_CHECKSUM, /* dropped */
	SYN_MALFORMED,    /* dropped */
};

/* RFC 1071 fold of a partial sum of 32-bit words, complemented: 0 for a header whose
 * checksum is right, the checksum to store for one whose checksum field was zero. */
static __always_inline __u16 csum_fold32(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* The RFC 1071 sum of `n` 32-bit words at `p` as they lie in memory (a one's-complement sum
 * does not care about byte order, RFC 1071 §2(B)), inline: `n` is a constant and the caller
 * has checked `p + n` against the packet's end. */
static __always_inline __u64 sum_words(const void *p, const int n)
{
	const __u32 *w = p;
	__u64 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < n; i++)
		sum += w[i];
	return sum;
}

/* The sum of both addresses (as on the wire), the part of the TCP pseudo header (RFC 9293
 * §3.1; RFC 8200 §8.1) and of the IPv4 header that a reply shares with the segment it answers:
 * swapping source and destination does not change it. */
static __always_inline __u64 addr_sum(const __u8 *src, const __u8 *dst, __u8 family)
{
	const __u32 *s = (const __u32 *)src, *d = (const __u32 *)dst;

	if (family == FAMILY_INET)
		return (__u64)s[0] + d[0];
	return (__u64)s[0] + s[1] + s[2] + s[3] + d[0] + d[1] + d[2] + d[3];
}

/* The rest of the pseudo header: the TCP length and the protocol. */
static __always_inline __u64 pseudo_rest(__u32 tcp_len)
{
	return bpf_htonl(tcp_len) + bpf_htonl(IPPROTO_TCP);
}

/* The walk over a SYN's options: the TCP header copied to the stack (64 bytes, zero beyond
 * `len`) and what was found so far. */
struct option_walk {
	__u8 hdr[64];
	__u32 at;  /* the next option's offset in hdr */
	__u32 len; /* the TCP header's length */
	__u32 bad; /* an option with an impossible length */
	__u32 fastopen; /* a TCP Fast Open option: the engine answers it (cookie, data) */
	struct syn_options opts;
};

/* One option of the walk (a bpf_loop callback, so the verifier checks it once, not once per
 * iteration): the engine's `Options::parse` (src/wire/tcp.rs), byte for byte: exact lengths
 * for known kinds, unknown kinds skipped, EOL ends, the last occurrence wins. Every index is
 * masked to the buffer so each read is in bounds; the length checks keep the real reads inside
 * the options. Returns 1 to stop. */
static long option_step(__u64 index, void *ctx)
{
	struct option_walk *w = ctx;
	struct syn_options *o = &w->opts;
	__u32 i = w->at;
	__u8 kind, olen;

#define OPT(at) w->hdr[(at) & 63]
	if (i >= w->len)
		return 1;
	kind = OPT(i);
	if (kind == TCPOPT_EOL_)
		return 1;
	if (kind == TCPOPT_NOP_) {
		w->at = i + 1;
		return 0;
	}
	olen = OPT(i + 1);
	if (i + 1 >= w->len || olen < 2 || i + olen > w->len)
		goto bad;
	switch (kind) {
	case TCPOPT_MSS_:
		if (olen != 4)
			goto bad;
		o->has_mss = 1;
		o->mss = ((__u16)OPT(i + 2) << 8) | OPT(i + 3);
		break;
	case TCPOPT_WINDOW_:
		if (olen != 3)
			goto bad;
		o->has_ws = 1;
		o->ws = OPT(i + 2) > TCP_MAX_WSCALE_ ? TCP_MAX_WSCALE_ : OPT(i + 2);
		break;
	case TCPOPT_SACK_PERM_:
		if (olen != 2)
			goto bad;
		o->has_sack = 1;
		break;
	case TCPOPT_SACK_:
		if (olen < 10 || olen > 34 || (olen - 2) % 8)
			goto bad;
		break;
	case TCPOPT_FASTOPEN_:
	case TCPOPT_EXP_:
		w->fastopen = 1;
		break;
	case TCPOPT_TIMESTAMP_:
		if (olen != 10)
			goto bad;
		o->has_ts = 1;
		o->tsval = ((__u32)OPT(i + 2) << 24) | ((__u32)OPT(i + 3) << 16) |
			   ((__u32)OPT(i + 4) << 8) | OPT(i + 5);
		break;
	}
#undef OPT
	w->at = i + olen;
	return 0;
bad:
	w->bad = 1;
	return 1;
}

/* The layout every Linux SYN has (MSS, SACK-permitted, TS, NOP, WS: 20 bytes), read without
 * the walk, as `Options::parse` reads it on its fast path. Returns 1 when it matched. */
static __always_inline int linux_syn_options(const __u8 *h, struct syn_options *o)
{
	if (h[20] != TCPOPT_MSS_ || h[21] != 4 || h[24] != TCPOPT_SACK_PERM_ ||
	    h[25] != 2 || h[26] != TCPOPT_TIMESTAMP_ || h[27] != 10 || h[36] != TCPOPT_NOP_ ||
	    h[37] != TCPOPT_WINDOW_ || h[38] != 3)
		return 0;
	o->has_mss = o->has_ws = o->has_sack = o->has_ts = 1;
	o->mss = ((__u16)h[22] << 8) | h[23];
	o->tsval = ((__u32)h[28] << 24) | ((__u32)h[29] << 16) | ((__u32)h[30] << 8) | h[31];
	o->ws = h[39] > TCP_MAX_WSCALE_ ? TCP_MAX_WSCALE_ : h[39];
	return 1;
}

/* Addresses that are never one end of a connection (the engine's `bad_destination`; sources
 * are martians, dropped before a SYN gets here). */
static __always_inline int bad_address(const __u8 *a, __u8 family)
{
	if (family == FAMILY_INET)
		/* 0.0.0.0/8, 224.0.0.0/4 (multicast) and up to 255.255.255.255 (broadcast). */
		return a[0] == 0 || a[0] >= 224;
	if (a[0] == 0xff)
		return 1; /* ff00::/8 */
	{
		const __u32 *w = (const __u32 *)a;

		return (w[0] | w[1] | w[2] | w[3]) == 0; /* :: */
	}
}

/* src/tcp/syncookie.rs `mac`: SipHash-2-4 under the epoch key of tuple hash | slot | peer ISN
 * | MSS index | TS bits, little-endian, 18 bytes: two message words and the last, built in
 * registers. */
static __always_inline __u32 cookie_mac(const struct cookie_key *k, __u64 tuple_hash, __u32 slot,
					__u32 peer_isn, __u8 mss_idx, __u8 ts)
{
	__u64 m[3] = {
		tuple_hash,
		(__u64)slot | ((__u64)peer_isn << 32),
		(__u64)mss_idx | ((__u64)ts << 8),
	};

	return (__u32)siphash24(k->mac_k0, k->mac_k1, m, 18) & COOKIE_MAC_MASK;
}

/* src/tcp/isn.rs `timestamp_hash`: SipHash-2-4 of DOMAIN_TS_OFFSET | tuple under the timestamp
 * key, with the tuple as FourTuple::pack lays it out (family tag, local address, remote
 * address, local port, remote port). Its low 32 bits are the timestamp offset; all 64 go into
 * the cookie's MAC in place of the tuple, so one SipHash over the tuple serves both. */
static __always_inline __u64 tuple_hash(const struct cookie_key *k, const struct syn_info *si)
{
	/* The message words are built in registers from the addresses as they lie in memory
	 * (little-endian words of wire-order bytes): tag, family, local (dst), remote (src),
	 * ports. */
	const __u32 *d = (const __u32 *)si->dst, *s = (const __u32 *)si->src;
	__u64 head = DOMAIN_TS_OFFSET | (si->family == FAMILY_INET ? 4 : 6) << 8;
	__u64 ports = (__u64)si->dport | (__u64)si->sport << 16;
	__u64 m[5];

	if (si->family == FAMILY_INET) {
		m[0] = head | (__u64)d[0] << 16 | (__u64)(s[0] & 0xffff) << 48;
		m[1] = (s[0] >> 16) | ports << 16;
		return siphash24(k->ts_k0, k->ts_k1, m, 14);
	}
	{
		__u64 d0 = d[0] | (__u64)d[1] << 32, d1 = d[2] | (__u64)d[3] << 32;
		__u64 s0 = s[0] | (__u64)s[1] << 32, s1 = s[2] | (__u64)s[3] << 32;

		m[0] = head | d0 << 16;
		m[1] = d0 >> 48 | d1 << 16;
		m[2] = d1 >> 48 | s0 << 16;
		m[3] = s0 >> 48 | s1 << 16;
		m[4] = s1 >> 48 | ports << 16;
		return siphash24(k->ts_k0, k->ts_k1, m, 38);
	}
}

/* The largest MSS-table entry not above the peer's MSS, else the smallest (make_cookie). */
static __always_inline __u8 mss_index(__u8 family, __u16 peer_mss)
{
	if (family == FAMILY_INET)
		return peer_mss >= 1460 ? 3 : peer_mss >= 1440 ? 2 : peer_mss >= 1300 ? 1 : 0;
	return peer_mss >= 8940 ? 3 : peer_mss >= 1440 ? 2 : peer_mss >= 1420 ? 1 : 0;
}

/* The bytes of the SYN-ACK's TCP options (after the 20-byte header), in the engine's order:
 * MSS; with timestamps SACK-permitted (or NOP NOP), TS; window scale (NOP WS) when offered. */
struct synack_opts {
	__be32 w[5];
};

/* Writes the SYN-ACK over the SYN, from l2_len on; `tcp_len` is 24, 36 or 40 (a constant in
 * each inlined copy, so every store is at a fixed offset the verifier has checked). `addrs` is
 * the sum of both addresses (`addr_sum`).
 *
 * The checksums are RFC 1624's incremental update with the verification folded in: the SYN's
 * IPv4 header and TCP segment (with its pseudo header) were checked to sum to -0, so the
 * update HC' = ~(~HC + ~m + m') of every field that changes comes to the complemented sum of
 * the reply's new fields and of the ones it keeps, the addresses (`addrs`, summed once for the
 * check) and the ports (swapped: the same 16-bit sum). The new fields are summed inline as
 * they are written, a few words in registers, where bpf_csum_diff over the whole header was a
 * helper call each. */
static __always_inline int write_synack(struct xdp_md *ctx, const struct syn_info *si,
					__u32 cookie, const struct synack_opts *o,
					const __u32 tcp_len, __u64 addrs)
{
	const __u32 ip_len = si->family == FAMILY_INET ? 20 : 40;
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 want = si->l2_len + ip_len + tcp_len;
	int delta = (int)want - (int)(data_end - data);
	struct ethhdr *eth;
	struct tcphdr *th;
	void *l3;
	__u64 sum;

	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if (eth + 1 > data_end)
		return -1;
	/* Reply to the sender, from the MAC it sent to (ours); the VLAN tag stays as it came. */
	__builtin_memcpy(eth->h_dest, si->src_mac, 6);
	for (int i = 0; i < 6; i++)
		eth->h_source[i] = local_mac[i]; /* volatile reads: set at load, never folded */
	l3 = data + (si->l2_len == 18 ? 18 : 14);
	if (si->family == FAMILY_INET) {
		struct iphdr *ip = l3;

		if ((void *)ip + 20 + tcp_len > data_end)
			return -1;
		/* src/wire/ipv4.rs `Repr::emit`: TOS 0, ident 0, DF, no options. */
		ip->version = 4;
		ip->ihl = 5;
		ip->tos = 0;
		ip->tot_len = bpf_htons(20 + tcp_len);
		ip->id = 0;
		ip->frag_off = bpf_htons(IP_DF_);
		ip->ttl = synack_ttl;
		ip->protocol = IPPROTO_TCP;
		ip->check = 0;
		__builtin_memcpy(&ip->saddr, si->dst, 4);
		__builtin_memcpy(&ip->daddr, si->src, 4);
		ip->check = csum_fold32(sum_words(ip, 3) + addrs);
		th = (void *)ip + 20;
	} else {
		struct ipv6hdr *ip6 = l3;

		if ((void *)ip6 + 40 + tcp_len > data_end)
			return -1;
		/* src/wire/ipv6.rs `Repr::emit`: traffic class and flow label 0. */
		*(__be32 *)ip6 = bpf_htonl(0x60000000);
		ip6->payload_len = bpf_htons(tcp_len);
		ip6->nexthdr = IPPROTO_TCP;
		ip6->hop_limit = synack_ttl;
		__builtin_memcpy(&ip6->saddr, si->dst, 16);
		__builtin_memcpy(&ip6->daddr, si->src, 16);
		th = (void *)ip6 + 40;
	}
	if ((void *)th + tcp_len > data_end)
		return -1;
	th->source = si->dport;
	th->dest = si->sport;
	th->seq = bpf_htonl(cookie);
	th->ack_seq = bpf_htonl(bpf_ntohl(si->seq) + 1);
	/* Data offset, no reserved bits, SYN and ACK only. */
	*((__be16 *)th + 6) = bpf_htons(((tcp_len / 4) << 12) | 0x12);
	th->window = bpf_htons(synack_window);
	th->check = 0;
	th->urg_ptr = 0;
	__builtin_memcpy((void *)th + 20, o, tcp_len - 20);
	sum = sum_words(th, 5) + addrs + pseudo_rest(tcp_len);
#pragma unroll
	for (int i = 0; i < (tcp_len - 20) / 4; i++)
		sum += o->w[i];
	th->check = csum_fold32(sum);
	return 0;
}

/*
 * A SYN (SYN set; ACK, RST and FIN clear) for a served endpoint on a queue in cookie mode:
 * checked as the engine checks it (checksums, options, addresses), then rewritten
 * into the engine's cookie SYN-ACK (src/tcp: `send_cookie_syn_ack`).
 */
static __always_inline enum syn_verdict answer_syn(struct xdp_md *ctx, struct syn_info *si,
						   void *l3, struct tcphdr *th, __u32 tcp_off)
{
	void *data_end = (void *)(long)ctx->data_end;
	__u32 tcp_len = th->doff * 4, zero = 0, slot, bits, ts_now, peer_isn;
	__u32 cookie, ts_bits = COOKIE_NO_TS, bad = 0, fastopen = 0;
	struct syn_options opts = {}, *o = &opts;
	struct cookie_keys *keys;
	struct cookie_key *k, key;
	struct synack_opts out = {};
	__u64 now_us, epoch, sum, addrs, hash;
	__u8 idx, ws_bits, sack;

	if (tcp_len < 20 || tcp_len > 60)
		return SYN_MALFORMED;
	if (si->family == FAMILY_INET) {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > data_end)
			return SYN_MALFORMED;
		/* The engine takes no IP options and no fragments; data on a SYN is its business. */
		if (ip->ihl != 5)
			return SYN_TO_WORKER;
		if (ip->frag_off & bpf_htons(IP_MF_ | IP_FRAG_OFFSET_MASK))
			return SYN_MALFORMED;
		if (bpf_ntohs(ip->tot_len) != 20 + tcp_len)
			return SYN_TO_WORKER;
		if (csum_fold32(sum_words(ip, 5)) != 0)
			return SYN_BAD_CHECKSUM;
		__builtin_memcpy(si->src, &ip->saddr, 4);
		__builtin_memcpy(si->dst, &ip->daddr, 4);
	} else {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > data_end)
			return SYN_MALFORMED;
		if (bpf_ntohs(ip6->payload_len) != tcp_len)
			return SYN_TO_WORKER;
		__builtin_memcpy(si->src, &ip6->saddr, 16);
		__builtin_memcpy(si->dst, &ip6->daddr, 16);
	}
	if (bad_address(si->src, si->family) || bad_address(si->dst, si->family))
		return SYN_MALFORMED;

	/* The two layouts floods and Linux send (no options: 20 bytes; Linux's: 40) are read and
	 * summed in place; any other is copied to the stack and its options walked there. */
	if (tcp_len == 20 && (void *)th + 20 <= data_end) {
		sum = sum_words(th, 5);
	} else if (tcp_len == 40 && (void *)th + 40 <= data_end &&
		   linux_syn_options((const __u8 *)th, o)) {
		sum = sum_words(th, 10);
	} else {
		/* Zeroed here only: the common layouts never touch the 64-byte copy. */
		struct option_walk w = { .at = 20, .len = tcp_len };

		if (bpf_xdp_load_bytes(ctx, tcp_off, w.hdr, tcp_len))
			return SYN_MALFORMED;
		sum = bpf_csum_diff(NULL, 0, (__be32 *)w.hdr, tcp_len, 0);
		bpf_loop(TCP_MAX_OPTIONS, option_step, &w, 0);
		opts = w.opts;
		bad = w.bad;
		fastopen = w.fastopen;
	}
	addrs = addr_sum(si->src, si->dst, si->family);
	if (csum_fold32(sum + addrs + pseudo_rest(tcp_len)) != 0)
		return SYN_BAD_CHECKSUM;
	if (bad)
		return SYN_MALFORMED;
	/* A cookie SYN-ACK would drop a Fast Open SYN's data and cookie: the engine's business
	 * (the two layouts read in place have no Fast Open option). */
	if (fastopen)
		return SYN_TO_WORKER;
	si->seq = th->seq;
	si->sport = th->source;
	si->dport = th->dest;

	/* The coarse clock is enough and cheaper: the TSval only has to be no later than the
	 * engine's clock (CLOCK_MONOTONIC, of which this is a slightly stale reading), and the
	 * engine takes the neighbouring slot and epoch too. */
	now_us = (fixed_now_ns ? fixed_now_ns : bpf_ktime_get_coarse_ns()) / 1000;
	slot = (__u32)((now_us + cookie_clock_offset_us) / COOKIE_SLOT_US);
	epoch = (now_us + cookie_clock_offset_us) / cookie_epoch_us;
	keys = bpf_map_lookup_elem(&cookie_keys, &zero);
	if (!keys)
		return SYN_TO_WORKER;
	k = &keys->keys[epoch & 1];
	/* The control thread keeps the current epoch's key in place; if it fell behind, the
	 * engine (which derives its keys itself) answers. The entry is read as a seqlock whose
	 * sequence is the epoch: the control thread marks it empty before rewriting it and never
	 * rewrites it for the epoch it holds, so keys copied between two reads of the same epoch
	 * are whole (x86 does not reorder loads with loads; the barriers keep the compiler from
	 * doing it); a write under way sends the SYN to the engine. */
	if (*(volatile __u64 *)&k->epoch != epoch)
		return SYN_TO_WORKER;
	barrier();
	key.epoch = epoch;
	key.mac_k0 = k->mac_k0;
	key.mac_k1 = k->mac_k1;
	key.ts_k0 = k->ts_k0;
	key.ts_k1 = k->ts_k1;
	barrier();
	if (*(volatile __u64 *)&k->epoch != epoch)
		return SYN_TO_WORKER;
	k = &key;

	/* send_cookie_syn_ack: the options the handshake settles on. */
	ws_bits = o->has_ws && synack_wscale ? o->ws : TS_WSCALE_NONE;
	sack = use_sack && o->has_sack;
	if (use_timestamps && o->has_ts)
		ts_bits = ws_bits | (sack ? TS_SACK : 0);
	idx = mss_index(si->family, o->has_mss ? o->mss : 536);
	peer_isn = bpf_ntohl(si->seq);
	hash = tuple_hash(k, si);
	cookie = (slot << COOKIE_SLOT_SHIFT) | ((__u32)idx << COOKIE_MSS_SHIFT) |
		 cookie_mac(k, hash, slot, peer_isn, idx, (__u8)ts_bits);

	out.w[0] = bpf_htonl((TCPOPT_MSS_ << 24) | (4 << 16) | synack_mss);
	if (ts_bits == COOKIE_NO_TS) {
		/* Without timestamps, window scale and SACK cannot be carried: offer neither. */
		if (write_synack(ctx, si, cookie, &out, 24, addrs))
			return SYN_MALFORMED;
		return SYN_ANSWERED;
	}
	/* cookie_tsval: our clock plus the tuple's offset (the hash's low 32 bits) with the
	 * option bits in its low 6 bits, never ahead of it. */
	ts_now = (__u32)(now_us / 1000) + (__u32)hash;
	bits = (ts_now & ~(__u32)TS_BITS_MASK) | ts_bits;
	if (bits > ts_now)
		bits -= TS_BITS_MASK + 1;
	out.w[1] = bpf_htonl(sack ? (TCPOPT_SACK_PERM_ << 24) | (2 << 16) | (TCPOPT_TIMESTAMP_ << 8) | 10
				: (TCPOPT_NOP_ << 24) | (TCPOPT_NOP_ << 16) | (TCPOPT_TIMESTAMP_ << 8) | 10);
	out.w[2] = bpf_htonl(bits);
	out.w[3] = bpf_htonl(o->tsval);
	if (o->has_ws && synack_wscale) {
		out.w[4] = bpf_htonl((TCPOPT_NOP_ << 24) | (TCPOPT_WINDOW_ << 16) | (3 << 8) |
				   synack_wscale);
		if (write_synack(ctx, si, cookie, &out, 40, addrs))
			return SYN_MALFORMED;
	} else if (write_synack(ctx, si, cookie, &out, 36, addrs)) {
		return SYN_MALFORMED;
	}
	return SYN_ANSWERED;
}

SEC("xdp")
int xdptcp_steer(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct hdr_cursor nh = { .pos = data };
	struct served_key key = {};
	struct queue_state *qs;
	struct ipv6hdr *ip6h;
	struct tcphdr *tcph;
	struct iphdr *iph;
	struct ethhdr *eth = data;
	__u32 queue = ctx->rx_queue_index;
	void *l3;
	int proto;
	int verdict;

	__u32 peer[4] = {}, local[4] = {};
	int peer_words = 0;

	proto = parse_ethhdr(&nh, data_end);
	if (proto == -1)
		return count(COUNTER_MALFORMED, XDP_PASS);
	l3 = nh.pos;

	if (proto == bpf_htons(ETH_P_IP)) {
		int ipproto = parse_iphdr(&nh, data_end, &iph);

		if (ipproto == -1)
			return count(COUNTER_MALFORMED, XDP_PASS);
		if (ipproto != IPPROTO_TCP)
			return count(COUNTER_PASSED, XDP_PASS);
		key.family = FAMILY_INET;
		__builtin_memcpy(key.addr, &iph->daddr, 4);
		__builtin_memcpy(peer, &iph->saddr, 4);
		__builtin_memcpy(local, &iph->daddr, 4);
		peer_words = 1;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		int nexthdr = parse_ip6hdr(&nh, data_end, &ip6h);

		if (nexthdr == -1)
			return count(COUNTER_MALFORMED, XDP_PASS);
		if (nexthdr != IPPROTO_TCP)
			return count(COUNTER_PASSED, XDP_PASS);
		key.family = FAMILY_INET6;
		__builtin_memcpy(key.addr, &ip6h->daddr, 16);
		__builtin_memcpy(peer, &ip6h->saddr, 16);
		__builtin_memcpy(local, &ip6h->daddr, 16);
		peer_words = 4;
	} else {
		return count(COUNTER_PASSED, XDP_PASS);
	}

	if (parse_tcphdr(&nh, data_end, &tcph) < 0)
		return count(COUNTER_MALFORMED, XDP_PASS);
	key.port = tcph->dest;
	if (!is_served(&key))
		return count(COUNTER_PASSED, XDP_PASS);
	if (!to_our_mac(eth))
		return count(COUNTER_OTHER_MAC, XDP_PASS);
	/* Never answered, by us or by the kernel (which would drop it as a martian too). */
	if (martian_source(eth, key.family, peer, local))
		return count(COUNTER_MARTIAN, XDP_DROP);

	if (queue >= xsk_queues || queue >= MAX_QUEUES)
		return count(COUNTER_NO_SOCKET, XDP_PASS);

	qs = bpf_map_lookup_elem(&queues, &queue);
	if (qs && qs->cookie_mode && tcph->rst && !tcph->ack && !tcph->syn) {
		__u32 slot = backscatter_slot(peer, peer_words,
					      ((__u32)tcph->source << 16) | tcph->dest);
		__u32 *expect = bpf_map_lookup_elem(&backscatter, &slot);

		if (expect && *expect == bpf_ntohl(tcph->seq))
			return count(COUNTER_RST_BACKSCATTER, XDP_DROP);
	}
	if (qs && qs->cookie_mode && qs->syns_to_worker && tcph->syn && !tcph->ack)
		count(COUNTER_SYN_TX_FALLBACK, 0);
	else if (multi_buffer && qs && qs->cookie_mode && tcph->syn && !tcph->ack &&
		 bpf_xdp_get_buff_len(ctx) != (__u64)(data_end - data))
		/* A SYN never needs fragments: the cookie path rewrites the first buffer in place and
		 * trims the tail, so a SYN with any goes to the engine, which reads it whole. */
		count(COUNTER_SYN_TO_WORKER, 0);
	else if (qs && qs->cookie_mode && tcph->syn && !tcph->ack) {
		struct syn_info si = {
			.family = key.family,
			.l2_len = (__u8)(l3 - data),
		};

		/* SYN+FIN and SYN+RST are no segment any TCP sends: the engine drops them too. */
		if (tcph->rst || tcph->fin)
			return count(COUNTER_SYN_MALFORMED, XDP_DROP);
		if (own_source(key.family, peer, tcph->dest))
			return count(COUNTER_MARTIAN, XDP_DROP);
		__builtin_memcpy(si.src_mac, eth->h_source, 6);
		switch (answer_syn(ctx, &si, l3, tcph, (__u32)((void *)tcph - data))) {
		case SYN_ANSWERED: {
			__u32 slot = backscatter_slot(peer, peer_words,
						      ((__u32)si.sport << 16) | si.dport);
			__u32 *expect = bpf_map_lookup_elem(&backscatter, &slot);

			if (expect)
				*expect = bpf_ntohl(si.seq) + 1;
			__sync_fetch_and_add(&qs->cookies, 1);
			if (tx_by_redirect)
				return count(COUNTER_COOKIE_SYNACKS,
					     bpf_redirect(ctx->ingress_ifindex, 0));
			return count(COUNTER_COOKIE_SYNACKS, XDP_TX);
		}
		case SYN_BAD_CHECKSUM:
			return count(COUNTER_SYN_BAD_CHECKSUM, XDP_DROP);
		case SYN_MALFORMED:
			return count(COUNTER_SYN_MALFORMED, XDP_DROP);
		case SYN_TO_WORKER:
			count(COUNTER_SYN_TO_WORKER, 0);
			break;
		}
	}

	/* Falls back to XDP_PASS when no socket is bound at this queue's index. */
	verdict = bpf_redirect_map(&xsks, queue, XDP_PASS);
	if (verdict == XDP_REDIRECT)
		return count(COUNTER_REDIRECTED, verdict);
	return count(COUNTER_NO_SOCKET, verdict);
}

/* ---- SYN-ACKs the driver could not send -------------------------------------------------
 * A driver that drops XDP_TX (or self-redirected) frames says so only through tracepoints:
 * veth when its peer has no NAPI to receive them (xdp_bulk_tx or xdp_devmap_xmit with drops
 * and an error), NICs when their XDP TX ring is full (xdp_exception). Counted here so that
 * `serve` can tell the operator. */

/* The fields of the kernel's net_device read here (its ifindex and namespace); their offsets
 * are relocated against the running kernel's BTF (CO-RE), and the tracepoints below are
 * BTF-typed (tp_btf), so neither needs tracefs (which `ip netns exec` does not mount). */
struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net *net;
} __attribute__((preserve_access_index)) possible_net_t;

struct net_device {
	int ifindex;
	possible_net_t nd_net;
} __attribute__((preserve_access_index));

struct bpf_prog;

static __always_inline void count_tx_dropped(const struct net_device *dev, int n)
{
	__u32 zero = 0;
	struct xdp_counters *c;

	if (n <= 0 || dev->ifindex != watched_ifindex)
		return;
	if (watched_netns && dev->nd_net.net->ns.inum != watched_netns)
		return;
	c = bpf_map_lookup_elem(&counters, &zero);
	if (c)
		c->tx_dropped += n;
}

/* include/trace/events/xdp.h: TP_PROTO(const struct net_device *dev, int sent, int drops,
 * int err), fired when a bulk of XDP_TX frames is flushed. */
SEC("tp_btf/xdp_bulk_tx")
int BPF_PROG(count_bulk_tx, const struct net_device *dev, int sent, int drops, int err)
{
	count_tx_dropped(dev, drops);
	return 0;
}

/* TP_PROTO(const struct net_device *from_dev, const struct net_device *to_dev, int sent,
 * int drops, int err): a bulk of redirected frames flushed (our SYN-ACKs with
 * tx_by_redirect). */
SEC("tp_btf/xdp_devmap_xmit")
int BPF_PROG(count_devmap_xmit, const struct net_device *from_dev,
	     const struct net_device *to_dev, int sent, int drops, int err)
{
	count_tx_dropped(to_dev, drops);
	return 0;
}

/* TP_PROTO(const struct net_device *dev, const struct bpf_prog *xdp, const void *tgt, int err,
 * enum bpf_map_type map_type, u32 map_id, u32 index): a redirect without a map (ours, to the
 * device itself) that failed at once (veth: the peer has no NAPI, so no ndo_xdp_xmit). */
SEC("tp_btf/xdp_redirect_err")
int BPF_PROG(count_redirect_err, const struct net_device *dev, const struct bpf_prog *xdp,
	     const void *tgt, int err, int map_type, __u32 map_id, __u32 index)
{
	/* Redirects into the XSKMAP (a full AF_XDP ring) come here too, with their map type;
	 * ours to the device itself have none (BPF_MAP_TYPE_UNSPEC). */
	if (map_type == BPF_MAP_TYPE_UNSPEC)
		count_tx_dropped(dev, 1);
	return 0;
}

/* TP_PROTO(const struct net_device *dev, const struct bpf_prog *xdp, u32 act). */
SEC("tp_btf/xdp_exception")
int BPF_PROG(count_exception, const struct net_device *dev, const struct bpf_prog *xdp, __u32 act)
{
	if (act == XDP_TX)
		count_tx_dropped(dev, 1);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
