// SPDX-License-Identifier: (MIT OR Apache-2.0)
/*
 * xdptcp's XDP program: TCP segments for a served (address, port) go to the AF_XDP socket of
 * the receive queue they arrived on; everything else (ARP, ICMP, other ports, other addresses,
 * anything we cannot parse) is XDP_PASS, untouched, to the kernel stack.
 *
 * User space fills `served` and `xsks`; the structs below reach Rust through the skeleton's
 * generated types, never mirrored by hand.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8
#define FAMILY_INET 2   /* AF_INET */
#define FAMILY_INET6 10 /* AF_INET6 */
#define IP_FRAG_OFFSET_MASK 0x1fff

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
	__u64 redirected; /* handed to an AF_XDP socket */
	__u64 passed;     /* not ours: to the kernel */
	__u64 malformed;  /* truncated or impossible headers: to the kernel */
	__u64 no_socket;  /* ours, but no socket on this queue: to the kernel */
};

enum counter {
	COUNTER_REDIRECTED,
	COUNTER_PASSED,
	COUNTER_MALFORMED,
	COUNTER_NO_SOCKET,
};

/* Number of receive queues that have a socket: queues at or above it are never redirected. */
const volatile __u32 xsk_queues = 0;

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
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
	}
	return verdict;
}

/* Returns the ethertype (network order) after at most one 802.1Q/802.1ad tag, or -1. */
static __always_inline int parse_ethhdr(struct hdr_cursor *nh, void *data_end)
{
	struct ethhdr *eth = nh->pos;
	__be16 proto;

	if (eth + 1 > data_end)
		return -1;
	nh->pos = eth + 1;
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q_) || proto == bpf_htons(ETH_P_8021AD_)) {
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

SEC("xdp")
int xdptcp_steer(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct hdr_cursor nh = { .pos = data };
	struct served_key key = {};
	struct ipv6hdr *ip6h;
	struct tcphdr *tcph;
	struct iphdr *iph;
	int proto;
	int verdict;

	proto = parse_ethhdr(&nh, data_end);
	if (proto == -1)
		return count(COUNTER_MALFORMED, XDP_PASS);

	if (proto == bpf_htons(ETH_P_IP)) {
		int ipproto = parse_iphdr(&nh, data_end, &iph);

		if (ipproto == -1)
			return count(COUNTER_MALFORMED, XDP_PASS);
		if (ipproto != IPPROTO_TCP)
			return count(COUNTER_PASSED, XDP_PASS);
		key.family = FAMILY_INET;
		__builtin_memcpy(key.addr, &iph->daddr, 4);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		int nexthdr = parse_ip6hdr(&nh, data_end, &ip6h);

		if (nexthdr == -1)
			return count(COUNTER_MALFORMED, XDP_PASS);
		if (nexthdr != IPPROTO_TCP)
			return count(COUNTER_PASSED, XDP_PASS);
		key.family = FAMILY_INET6;
		__builtin_memcpy(key.addr, &ip6h->daddr, 16);
	} else {
		return count(COUNTER_PASSED, XDP_PASS);
	}

	if (parse_tcphdr(&nh, data_end, &tcph) < 0)
		return count(COUNTER_MALFORMED, XDP_PASS);
	key.port = tcph->dest;
	if (!is_served(&key))
		return count(COUNTER_PASSED, XDP_PASS);

	if (ctx->rx_queue_index >= xsk_queues)
		return count(COUNTER_NO_SOCKET, XDP_PASS);
	/* Falls back to XDP_PASS when no socket is bound at this queue's index. */
	verdict = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	if (verdict == XDP_REDIRECT)
		return count(COUNTER_REDIRECTED, verdict);
	return count(COUNTER_NO_SOCKET, verdict);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
