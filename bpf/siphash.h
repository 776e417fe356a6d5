/* SPDX-License-Identifier: (MIT OR Apache-2.0) */
/*
 * SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012) as straight-line
 * BPF: the engine's keyed hash (`siphasher::sip::SipHasher24` in src/tcp/) for messages whose
 * length is a compile-time constant, so clang unrolls every loop and the verifier sees no
 * loop at all (the approach of Linux's tools/testing/selftests/bpf/progs/test_siphash.h).
 *
 * The key is the engine's 16-byte key read as two little-endian words (k0 = bytes 0..8,
 * k1 = bytes 8..16), exactly as `SipHasher24::new_with_key` reads it; message words are
 * little-endian too, and the last block carries the length in its top byte.
 */
#ifndef XDPTCP_SIPHASH_H
#define XDPTCP_SIPHASH_H

#include <linux/types.h>

struct sip_state {
	__u64 v0, v1, v2, v3;
};

#define SIP_ROTL(x, b) (__u64)(((x) << (b)) | ((x) >> (64 - (b))))

static __always_inline void sip_round(struct sip_state *s)
{
	s->v0 += s->v1;
	s->v1 = SIP_ROTL(s->v1, 13);
	s->v1 ^= s->v0;
	s->v0 = SIP_ROTL(s->v0, 32);
	s->v2 += s->v3;
	s->v3 = SIP_ROTL(s->v3, 16);
	s->v3 ^= s->v2;
	s->v0 += s->v3;
	s->v3 = SIP_ROTL(s->v3, 21);
	s->v3 ^= s->v0;
	s->v2 += s->v1;
	s->v1 = SIP_ROTL(s->v1, 17);
	s->v1 ^= s->v2;
	s->v2 = SIP_ROTL(s->v2, 32);
}

/* One message word: c = 2 compression rounds. */
static __always_inline void sip_compress(struct sip_state *s, __u64 m)
{
	s->v3 ^= m;
	sip_round(s);
	sip_round(s);
	s->v0 ^= m;
}

/*
 * SipHash-2-4 of the first `len` bytes of `msg` (a buffer of whole words, zero beyond `len`),
 * `len` a constant below 64.
 */
static __always_inline __u64 siphash24(__u64 k0, __u64 k1, const __u64 *msg, const __u32 len)
{
	struct sip_state s = {
		.v0 = k0 ^ 0x736f6d6570736575ULL,
		.v1 = k1 ^ 0x646f72616e646f6dULL,
		.v2 = k0 ^ 0x6c7967656e657261ULL,
		.v3 = k1 ^ 0x7465646279746573ULL,
	};
	__u64 last;
	__u32 i;

#pragma unroll
	for (i = 0; i < len / 8; i++)
		sip_compress(&s, msg[i]);
	/* The tail bytes are already in place (the rest of the word is zero), little-endian. */
	last = ((__u64)len << 56) | ((len % 8) ? msg[len / 8] : 0);
	sip_compress(&s, last);
	s.v2 ^= 0xff;
	sip_round(&s);
	sip_round(&s);
	sip_round(&s);
	sip_round(&s);
	return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

#endif /* XDPTCP_SIPHASH_H */
