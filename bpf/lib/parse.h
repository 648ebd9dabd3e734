/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Packet parsing for the tc programs: Ethernet, up to two VLAN tags
 * (802.1Q / 802.1ad), IPv4 (with options) or IPv6 (skipping hop-by-hop,
 * routing, destination-options and fragment headers, and AH), then TCP or UDP.
 * Only the outer headers are parsed: tunnels are not decapsulated.
 *
 * Fragments: a first fragment (offset 0) carries the L4 header and is
 * attributed to its flow with its own IP length; later fragments have no
 * ports, are counted in EXF_C_FRAGMENT and not attributed to any flow.
 *
 * Bytes: IP-level bytes, i.e. the IPv4 total length or the IPv6 payload
 * length + 40. A GSO/GRO super-packet of N segments counts N packets and
 * the bytes the N wire segments carry: its IP bytes plus (N-1) copies of
 * the IP and L4 headers.
 */
#ifndef EXF_LIB_PARSE_H
#define EXF_LIB_PARSE_H

#include "exf_common.h"

#define EXF_ETH_P_IP 0x0800
#define EXF_ETH_P_IPV6 0x86DD
#define EXF_ETH_P_8021Q 0x8100
#define EXF_ETH_P_8021AD 0x88A8
#define EXF_IPPROTO_TCP 6
#define EXF_IPPROTO_UDP 17
#define EXF_MAX_IPV6_EXT 6
/* Bytes made linear before parsing when the skb head is shorter. */
#define EXF_PULL_LEN 192

struct exf_pkt {
	struct exf_flow_key key;
	__u32 seq;         /* TCP sequence number */
	__u32 ack;         /* TCP acknowledgment number */
	__u32 payload_off; /* offset of L4 payload from skb->data */
	__u32 payload_len; /* L4 payload bytes (all segments) */
	__u64 wire_bytes;  /* IP-level bytes on the wire, GSO expanded */
	__u32 segs;        /* wire packets (gso_segs, at least 1) */
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 tcp_flags; /* EXF_TCP_* */
	__u8 dir;       /* enum exf_cdir of this packet */
	__u8 pad;
};

/* Layout of headers as they appear on the wire (no kernel headers needed). */
struct exf_ethhdr {
	__u8 dst[6];
	__u8 src[6];
	__be16 proto;
};
struct exf_vlanhdr {
	__be16 tci;
	__be16 proto;
};
struct exf_iphdr {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u8 saddr[4];
	__u8 daddr[4];
};
struct exf_ipv6hdr {
	__be32 vtcfl;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};
struct exf_tcphdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__u8 doff_res;
	__u8 flags;
	__be16 window;
	__u16 check;
	__u16 urg_ptr;
};
struct exf_udphdr {
	__be16 source;
	__be16 dest;
	__be16 len;
	__u16 check;
};

static __always_inline void exf_v4mapped(__u8 *dst, const __u8 *v4)
{
	__u64 *d = (__u64 *)dst;
	d[0] = 0;
	((__u32 *)dst)[2] = exf_htonl(0x0000ffffu);
	__builtin_memcpy(dst + 12, v4, 4);
}

/* Return 1 if (a, pa) < (b, pb) in the canonical order. */
static __always_inline int exf_endpoint_lt(const __u8 *a, __u16 pa, const __u8 *b, __u16 pb)
{
	__u64 a0 = ((const __u64 *)a)[0], b0 = ((const __u64 *)b)[0];
	__u64 a1 = ((const __u64 *)a)[1], b1 = ((const __u64 *)b)[1];
	if (a0 != b0)
		return a0 < b0;
	if (a1 != b1)
		return a1 < b1;
	return pa < pb;
}

/* What the IP layer tells the rest of the parse. */
struct exf_l3 {
	__u32 ip_len; /* IP-level bytes of the packet */
	__u32 l3_len; /* IP header with its options or extension headers */
	__u8 l4proto;
};

/* The IPv4 header at off; saddr and daddr get its addresses v4-mapped.
 * Returns 0 or the health counter to bump. */
static __always_inline int exf_parse_ipv4(void *data, void *data_end, __u32 off, __u32 skb_len,
                                          struct exf_l3 *l3, __u8 *saddr, __u8 *daddr)
{
	struct exf_iphdr *iph = data + off;

	if ((void *)(iph + 1) > data_end)
		return EXF_C_TRUNC_L3;
	l3->l3_len = (iph->ver_ihl & 0x0f) * 4;
	if ((iph->ver_ihl >> 4) != 4 || l3->l3_len < sizeof(*iph))
		return EXF_C_BAD_IPV4;
	l3->ip_len = exf_ntohs(iph->tot_len);
	if (l3->ip_len == 0) /* TSO without a length: use the skb's */
		l3->ip_len = skb_len - off;
	if (l3->ip_len < l3->l3_len)
		return EXF_C_BAD_IPV4;
	if (exf_ntohs(iph->frag_off) & 0x1fff)
		return EXF_C_FRAGMENT;
	l3->l4proto = iph->protocol;
	exf_v4mapped(saddr, iph->saddr);
	exf_v4mapped(daddr, iph->daddr);
	return 0;
}

/* Hop-by-hop, routing, destination options, fragment and AH: the IPv6
 * extension headers skipped to reach the L4 header. */
static __always_inline int exf_is_ipv6_ext(__u8 nexthdr)
{
	return nexthdr == 0 || nexthdr == 43 || nexthdr == 60 || nexthdr == 44 || nexthdr == 51;
}

/* Walks up to EXF_MAX_IPV6_EXT extension headers after the IPv6 header at
 * off, adding them to l3_len, until l4proto is the L4 protocol. Returns 0 or
 * the health counter to bump. */
static __always_inline int exf_skip_ipv6_ext(void *data, void *data_end, __u32 off,
                                             struct exf_l3 *l3)
{
#pragma unroll
	for (int i = 0; i < EXF_MAX_IPV6_EXT; i++) {
		__u8 *eh = data + off + l3->l3_len;
		if (!exf_is_ipv6_ext(l3->l4proto))
			break;
		if ((void *)(eh + 8) > data_end)
			return EXF_C_TRUNC_L3;
		if (l3->l4proto == 44) { /* fragment header */
			if (((eh[2] << 8) | eh[3]) & 0xfff8)
				return EXF_C_FRAGMENT;
			l3->l4proto = eh[0];
			l3->l3_len += 8;
		} else if (l3->l4proto == 51) { /* AH */
			l3->l4proto = eh[0];
			l3->l3_len += ((__u32)eh[1] + 2) * 4;
		} else {
			l3->l4proto = eh[0];
			l3->l3_len += ((__u32)eh[1] + 1) * 8;
		}
		if (l3->l3_len > 512)
			return EXF_C_BAD_IPV6_EXT;
	}
	if (exf_is_ipv6_ext(l3->l4proto))
		return EXF_C_BAD_IPV6_EXT;
	return 0;
}

/* The IPv6 header at off and its extension headers; saddr and daddr get its
 * addresses. Returns 0 or the health counter to bump. */
static __always_inline int exf_parse_ipv6(void *data, void *data_end, __u32 off, __u32 skb_len,
                                          struct exf_l3 *l3, __u8 *saddr, __u8 *daddr)
{
	struct exf_ipv6hdr *ip6 = data + off;

	if ((void *)(ip6 + 1) > data_end)
		return EXF_C_TRUNC_L3;
	if ((exf_ntohl(ip6->vtcfl) >> 28) != 6)
		return EXF_C_BAD_IPV6_EXT;
	l3->ip_len = exf_ntohs(ip6->payload_len) + (__u32)sizeof(*ip6);
	if (l3->ip_len == sizeof(*ip6)) /* jumbo / BIG TCP: use the skb's */
		l3->ip_len = skb_len - off;
	l3->l4proto = ip6->nexthdr;
	__builtin_memcpy(saddr, ip6->saddr, 16);
	__builtin_memcpy(daddr, ip6->daddr, 16);
	l3->l3_len = sizeof(*ip6);
	int rc = exf_skip_ipv6_ext(data, data_end, off, l3);
	if (rc)
		return rc;
	if (l3->ip_len < l3->l3_len)
		return EXF_C_BAD_IPV6_EXT;
	return 0;
}

/* The TCP header's flag byte as EXF_TCP_* bits. */
static __always_inline __u8 exf_tcp_flags(__u8 f)
{
	__u8 tf = 0;

	if (f & 0x02)
		tf |= EXF_TCP_SYN;
	if (f & 0x10)
		tf |= EXF_TCP_ACK;
	if (f & 0x01)
		tf |= EXF_TCP_FIN;
	if (f & 0x04)
		tf |= EXF_TCP_RST;
	if ((f & 0x12) == 0x12)
		tf |= EXF_TCP_SYNACK;
	return tf;
}

/* The TCP header at l4_off: ports, sequence numbers and flags into *p, its
 * length into *l4_hdr. Returns 0 or the health counter to bump. */
static __always_inline int exf_parse_tcp(void *data, void *data_end, __u32 l4_off,
                                         const struct exf_l3 *l3, struct exf_pkt *p, __u32 *l4_hdr)
{
	struct exf_tcphdr *th = data + l4_off;

	if ((void *)(th + 1) > data_end)
		return EXF_C_TRUNC_L4;
	*l4_hdr = (th->doff_res >> 4) * 4;
	if (*l4_hdr < sizeof(*th) || l3->l3_len + *l4_hdr > l3->ip_len)
		return EXF_C_BAD_TCP;
	p->sport = exf_ntohs(th->source);
	p->dport = exf_ntohs(th->dest);
	p->seq = exf_ntohl(th->seq);
	p->ack = exf_ntohl(th->ack_seq);
	p->tcp_flags = exf_tcp_flags(th->flags);
	return 0;
}

/* The UDP header at l4_off: its ports into *p, its length into *l4_hdr.
 * Returns 0 or the health counter to bump. */
static __always_inline int exf_parse_udp(void *data, void *data_end, __u32 l4_off,
                                         const struct exf_l3 *l3, struct exf_pkt *p, __u32 *l4_hdr)
{
	struct exf_udphdr *uh = data + l4_off;

	if ((void *)(uh + 1) > data_end)
		return EXF_C_TRUNC_L4;
	*l4_hdr = sizeof(*uh);
	if (l3->l3_len + *l4_hdr > l3->ip_len)
		return EXF_C_BAD_UDP;
	p->sport = exf_ntohs(uh->source);
	p->dport = exf_ntohs(uh->dest);
	p->seq = 0;
	p->ack = 0;
	p->tcp_flags = 0;
	return 0;
}

/* The packet's wire packets, wire bytes and payload length (the file's
 * header says how a super-packet counts). off: where the IP header starts. */
static __always_inline void exf_pkt_sizes(struct exf_pkt *p, __u32 skb_len, __u32 gso_segs,
                                          __u32 off, const struct exf_l3 *l3, __u32 l4_hdr)
{
	__u32 segs = gso_segs > 1 ? gso_segs : 1;

	/* l3_len + l4_hdr is spelt out each time: summed once into a variable,
	 * the verifier's bounds on the results came out wider and it checked
	 * 4% more instructions (tests/bpf/test_verifier.cpp prints the count). */
	p->segs = segs;
	if (segs > 1) {
		/* Super-packet: its IP header's length may be stale; trust the skb. */
		__u32 super = skb_len > off ? skb_len - off : 0;
		if (super < l3->l3_len + l4_hdr)
			super = l3->l3_len + l4_hdr;
		p->payload_len = super - l3->l3_len - l4_hdr;
		p->wire_bytes = (__u64)super + (__u64)(segs - 1) * (l3->l3_len + l4_hdr);
	} else {
		p->payload_len = l3->ip_len - l3->l3_len - l4_hdr;
		p->wire_bytes = l3->ip_len;
	}
}

/*
 * Parse one frame. Returns 0 when the packet is TCP or UDP and *p is
 * filled; otherwise the health counter to bump (the packet passes untouched).
 * data/data_end and skb_len describe the frame; gso_segs is skb's.
 * Inlined for the first parse of every packet (a BPF-to-BPF call costs
 * about 6 ns here); exf_parse below, a subprogram verified once, for the
 * rare parse again after a pull.
 */
static __always_inline int exf_parse_inl(void *data, void *data_end, __u32 skb_len, __u32 gso_segs,
                                         struct exf_pkt *p)
{
	struct exf_ethhdr *eth = data;
	__u32 off = sizeof(*eth);
	__u16 proto;
	__u8 saddr[16], daddr[16];
	struct exf_l3 l3;
	__u32 l4_hdr;
	int rc;

	if ((void *)(eth + 1) > data_end)
		return EXF_C_TRUNC_L2;
	proto = exf_ntohs(eth->proto);
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != EXF_ETH_P_8021Q && proto != EXF_ETH_P_8021AD)
			break;
		struct exf_vlanhdr *vh = data + off;
		if ((void *)(vh + 1) > data_end)
			return EXF_C_TRUNC_L2;
		proto = exf_ntohs(vh->proto);
		off += sizeof(*vh);
	}
	if (proto == EXF_ETH_P_8021Q || proto == EXF_ETH_P_8021AD)
		return EXF_C_VLAN_TOO_DEEP;

	if (proto == EXF_ETH_P_IP)
		rc = exf_parse_ipv4(data, data_end, off, skb_len, &l3, saddr, daddr);
	else if (proto == EXF_ETH_P_IPV6)
		rc = exf_parse_ipv6(data, data_end, off, skb_len, &l3, saddr, daddr);
	else
		rc = EXF_C_NOT_IP;
	if (rc)
		return rc;

	__u32 l4_off = off + l3.l3_len;
	if (l3.l4proto == EXF_IPPROTO_TCP)
		rc = exf_parse_tcp(data, data_end, l4_off, &l3, p, &l4_hdr);
	else if (l3.l4proto == EXF_IPPROTO_UDP)
		rc = exf_parse_udp(data, data_end, l4_off, &l3, p, &l4_hdr);
	else
		rc = EXF_C_OTHER_L4;
	if (rc)
		return rc;

	p->proto = l3.l4proto;
	p->payload_off = l4_off + l4_hdr;
	exf_pkt_sizes(p, skb_len, gso_segs, off, &l3, l4_hdr);

	/* Canonical key: the lower endpoint first. It, like the VLAN walk above,
	 * stays in this function: moved into a helper, each changed clang's
	 * register allocation enough that the verifier's count went from 310,000
	 * to 410,000 (VLANs) or past its 1,000,000 limit (key, which clang then
	 * built in stack memory instead of registers). */
	__builtin_memset(&p->key, 0, sizeof(p->key));
	p->key.proto = l3.l4proto;
	if (exf_endpoint_lt(saddr, p->sport, daddr, p->dport)) {
		__builtin_memcpy(p->key.lo_addr, saddr, 16);
		__builtin_memcpy(p->key.hi_addr, daddr, 16);
		p->key.lo_port = p->sport;
		p->key.hi_port = p->dport;
		p->dir = EXF_CDIR_LO_TO_HI;
	} else {
		__builtin_memcpy(p->key.lo_addr, daddr, 16);
		__builtin_memcpy(p->key.hi_addr, saddr, 16);
		p->key.lo_port = p->dport;
		p->key.hi_port = p->sport;
		p->dir = EXF_CDIR_HI_TO_LO;
	}
	return 0;
}

static __noinline int exf_parse(void *data, void *data_end, __u32 skb_len, __u32 gso_segs,
                                struct exf_pkt *p)
{
	return exf_parse_inl(data, data_end, skb_len, gso_segs, p);
}

#endif /* EXF_LIB_PARSE_H */
