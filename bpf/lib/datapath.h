/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The exfilmon datapath: per-packet flow tracking, TLS/QUIC classification,
 * per-client accounting and hello/flow-end events. One source, two builds:
 * bpf/exfilmon.bpf.c compiles it for the kernel; userspace/capture/udatapath.c
 * compiles it for the libpcap backend and the userspace replay path, with
 * the helpers and maps of exf_common.h mapped to userspace implementations.
 * The includer defines the maps (exf_flows, exf_clients, exf_health,
 * exf_events, exf_fcache, exf_fc_gen) and the settings (exf_tls_ports,
 * exf_n_tls_ports, exf_use_pkt_time, exf_request_min_bytes).
 */
#ifndef EXF_LIB_DATAPATH_H
#define EXF_LIB_DATAPATH_H

#include "exf_common.h"
#include "parse.h"

static __always_inline void exf_count(__u32 idx, __u64 n)
{
	__u64 *c = exf_map_lookup(&exf_health, &idx);
	if (c)
		*c += n;
}

static __always_inline int exf_is_tls_port(__u16 port)
{
#pragma unroll
	for (int i = 0; i < EXF_MAX_TLS_PORTS; i++) {
		if ((__u32)i >= exf_n_tls_ports)
			break;
		if (exf_tls_ports[i] == port)
			return 1;
	}
	return 0;
}

static __always_inline __u8 exf_src_side(const struct exf_pkt *p)
{
	return p->dir == EXF_CDIR_LO_TO_HI ? EXF_CLIENT_LO : EXF_CLIENT_HI;
}

/* ---- The flow's state word ----
 * flags, client, kind and hello_segs are one aligned 32-bit word of struct
 * exf_flow (bytes 0..3 of it in that order, little endian). Two CPUs may
 * handle one flow at once (ingress and egress, or two queues): flag bits are
 * set with an atomic OR on the word, and a flow leaves PENDING with a
 * compare-and-swap of it, so that neither loses the other's bits and only
 * one of them classifies the flow (and counts it opened). */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the flow state word (struct exf_flow.flags..hello_segs) is laid out little endian"
#endif
#define EXF_FW_CLIENT_SHIFT 8
#define EXF_FW_KIND_SHIFT 16

typedef __u32 __attribute__((may_alias)) exf_u32_alias;
typedef __u64 __attribute__((may_alias)) exf_u64_alias;

static __always_inline exf_u32_alias *exf_flow_word(struct exf_flow *f)
{
	return (exf_u32_alias *)&f->flags;
}

static __always_inline void exf_flow_set_flags(struct exf_flow *f, __u8 bits)
{
	__sync_fetch_and_or(exf_flow_word(f), (__u32)bits);
}

/* Moves a PENDING flow to kind, with client as its client side. Returns 1
 * on the CPU that did it, 0 when another CPU classified the flow first
 * (then f holds that CPU's verdict). While a flow is PENDING nothing else
 * writes its state word (hello and close handling start with TLS/QUIC),
 * so a failed swap means exactly that. */
static __always_inline int exf_flow_classify(struct exf_flow *f, __u8 kind, __u8 client)
{
	__u32 old = *exf_flow_word(f);
	if (((old >> EXF_FW_KIND_SHIFT) & 0xff) != EXF_KIND_PENDING)
		return 0;
	__u32 want = (old & ~((0xffu << EXF_FW_KIND_SHIFT) | (0xffu << EXF_FW_CLIENT_SHIFT))) |
	             ((__u32)kind << EXF_FW_KIND_SHIFT) | ((__u32)client << EXF_FW_CLIENT_SHIFT);
	return __sync_val_compare_and_swap(exf_flow_word(f), old, want) == old;
}

/* ---- The change log (struct exf_change_ctl in exfilmon_shared.h) ----
 * The harvest reads only the entries logged here. *epoch is the entry's
 * mark: an entry is logged once per epoch (two CPUs may both log it: a
 * duplicate key costs the reader one lookup). Call it before changing the
 * entry. Userspace builds (libpcap backend, replay) read whole tables and
 * have no log. */
static __always_inline struct exf_flow_key *exf_change_slot(__u32 *epoch)
{
#if defined(__bpf__)
	__u32 zero = 0;
	struct exf_change_ctl *ctl = bpf_map_lookup_elem(&exf_change_ctl, &zero);
	if (!ctl)
		return NULL;
	__u32 e = *(volatile __u32 *)&ctl->epoch;
	if (*epoch == e)
		return NULL;
	*epoch = e;
	__u32 b = e % EXF_CHG_BUFS;
	exf_opaque(b); /* the verifier does not follow a remainder's bound */
	if (b >= EXF_CHG_BUFS)
		return NULL;
	/* Counted past cap too: the reader sees the overflow. */
	__u32 i = __sync_fetch_and_add(&ctl->count[b], 1);
	__u32 cap = ctl->cap;
	if (i >= cap)
		return NULL;
	__u32 at = b * cap + i;
	return bpf_map_lookup_elem(&exf_changes, &at);
#else
	(void)epoch;
	return NULL;
#endif
}

static __always_inline void exf_flow_changed(struct exf_flow *f, const struct exf_flow_key *k)
{
	/* Keys sit at offset 0 of 8-byte aligned structs (exf_fc_index). */
	exf_u64_alias *slot = (exf_u64_alias *)exf_change_slot(&f->epoch);
	const exf_u64_alias *w = (const exf_u64_alias *)k;
	if (!slot)
		return;
	slot[0] = w[0];
	slot[1] = w[1];
	slot[2] = w[2];
	slot[3] = w[3];
	slot[4] = w[4];
}

static __always_inline void exf_client_changed(struct exf_client_stats *s, const __u8 *addr)
{
	exf_u64_alias *slot = (exf_u64_alias *)exf_change_slot(&s->epoch);
	if (!slot)
		return;
	/* addr: a flow key's lo_addr or hi_addr, 8-byte aligned in it. */
	slot[0] = ((const exf_u64_alias *)addr)[0];
	slot[1] = ((const exf_u64_alias *)addr)[1];
	slot[2] = 0;
	slot[3] = 0;
	slot[4] = 0;
}

/* Fill a new flow from its first packet (or a SYN reusing a 5-tuple).
 * Returns 0 if the flow is not tracked (UDP off the TLS ports). */
static __always_inline int exf_flow_init(struct exf_flow *nf, const struct exf_pkt *p, __u64 now)
{
	int src_tls = exf_is_tls_port(p->sport), dst_tls = exf_is_tls_port(p->dport);
	__u8 src = exf_src_side(p), dst = src ^ 3;

	__builtin_memset(nf, 0, sizeof(*nf));
	nf->first_ns = now;
	if (p->proto == EXF_IPPROTO_UDP) {
		if (!src_tls && !dst_tls)
			return 0;
		/* The client sends to the TLS port; if both are, the first sender. */
		nf->client = dst_tls ? src : dst;
		nf->kind = EXF_KIND_PENDING; /* until the client's first datagram */
		return 1;
	}
	if ((p->tcp_flags & (EXF_TCP_SYN | EXF_TCP_ACK)) == EXF_TCP_SYN) {
		nf->client = src;
		nf->client_isn = p->seq + 1;
		nf->flags = EXF_FF_ISN_KNOWN | EXF_FF_ISN_EXACT;
	} else if (p->tcp_flags & EXF_TCP_SYNACK) {
		nf->client = dst;
		nf->client_isn = p->ack;
		nf->flags = EXF_FF_ISN_KNOWN | EXF_FF_ISN_EXACT;
	} else {
		/* First seen mid-stream: the client is the side not on a TLS port;
		 * unknown if neither or both are (then the ClientHello decides). */
		nf->flags = EXF_FF_MIDSTREAM;
		/* No handshake to skip: the client's next payload is a request. */
		nf->turn = EXF_TURN_SERVER;
		if (dst_tls && !src_tls)
			nf->client = src;
		else if (src_tls && !dst_tls)
			nf->client = dst;
	}
	if (src_tls || dst_tls) {
		nf->kind = EXF_KIND_TLS;
		if (nf->client == EXF_CLIENT_UNKNOWN)
			nf->client = src;
	}
	return 1;
}

/* The client's entry, created (with first_ns = now) when missing. */
static __always_inline struct exf_client_stats *exf_client_get(const __u8 *addr, __u64 now)
{
	struct exf_client_key ck;
	struct exf_client_stats *s;

	__builtin_memcpy(ck.addr, addr, 16);
	s = exf_map_lookup(&exf_clients, &ck);
	if (s) {
		exf_client_changed(s, addr);
		return s;
	}
	struct exf_client_stats zero = {};
	zero.first_ns = now;
	/* Another CPU may create it first (EEXIST): then take that one. */
	if (exf_map_update(&exf_clients, &ck, &zero, BPF_NOEXIST) == 0)
		exf_count(EXF_C_CLIENT_NEW, 1);
	s = exf_map_lookup(&exf_clients, &ck);
	if (s)
		exf_client_changed(s, addr);
	else
		exf_count(EXF_C_CLIENT_UPDATE_FAIL, 1);
	return s;
}

static __always_inline const __u8 *exf_client_addr(const struct exf_flow_key *k, __u8 client)
{
	return client == EXF_CLIENT_LO ? k->lo_addr : k->hi_addr;
}

/* ---- Requests: the turns of a flow's exchange (enum exf_turn) ----
 * Only payloads of at least exf_request_min_bytes take a turn: pure ACKs and
 * small control records (HTTP/2 WINDOW_UPDATE, PING, SETTINGS ack, TLS key
 * updates) do not. The client's Finished flight ends the handshake; after
 * it, each client payload that follows a server payload is one request. */

/* The turn after a payload of either side (the same turn: no change). */
static __always_inline __u32 exf_turn_next(__u32 turn, __u8 from_client)
{
	if (from_client) {
		if (turn == EXF_TURN_CLIENT_FIN)
			return EXF_TURN_SERVER;
		return turn == EXF_TURN_SERVER ? EXF_TURN_CLIENT : turn;
	}
	if (turn == EXF_TURN_HANDSHAKE)
		return EXF_TURN_CLIENT_FIN;
	return turn == EXF_TURN_CLIENT ? EXF_TURN_SERVER : turn;
}

static __always_inline struct exf_fc_gen_entry *exf_turn_gen(__u32 idx)
{
	return exf_map_lookup(&exf_fc_gen, &idx);
}

/* Directions (bit: enum exf_cdir) whose payloads leave the turn as it is. */
static __always_inline __u8 exf_turn_quiet(const struct exf_flow *f, __u32 turn)
{
	__u32 cdir = f->client == EXF_CLIENT_HI ? EXF_CDIR_HI_TO_LO : EXF_CDIR_LO_TO_HI;
	__u8 quiet = 0;

	if (f->kind != EXF_KIND_TLS && f->kind != EXF_KIND_QUIC)
		return 3;
	if (exf_turn_next(turn, 1) == turn)
		quiet |= 1u << cdir;
	if (exf_turn_next(turn, 0) == turn)
		quiet |= 1u << (cdir ^ 1);
	return quiet;
}

/* A payload of at least exf_request_min_bytes from one side: moves the turn
 * (the CPU whose compare-and-swap does it, once) and bumps the generation of
 * the flow's cache index, so that every CPU's cached copy of the turn is
 * stale. Returns 1 when that was a request. */
static __always_inline int exf_take_turn(struct exf_flow *f, __u8 from_client, __u32 idx)
{
	__u32 turn = *(volatile __u32 *)&f->turn;
	__u32 next = exf_turn_next(turn, from_client);

	if (next == turn || __sync_val_compare_and_swap(&f->turn, turn, next) != turn)
		return 0;
	struct exf_fc_gen_entry *g = exf_turn_gen(idx);
	if (g)
		__sync_fetch_and_add(&g->gen, 1);
	if (next != EXF_TURN_CLIENT)
		return 0;
	__sync_fetch_and_add(&f->requests, 1);
	return 1;
}

/* ---- The per-CPU flow cache (struct exf_fc_slot in exfilmon_shared.h) ---- */

/* Flow keys as five 64-bit words. Keys live at offset 0 of 8-byte aligned
 * structs (struct exf_pkt on the stack, struct exf_fc_slot in the map), so
 * these are plain 8-byte loads (a memcpy of the 2-byte aligned struct
 * would be 20 half-word loads in BPF). */
static __always_inline __u32 exf_fc_index(const struct exf_flow_key *k)
{
	const exf_u64_alias *w = (const exf_u64_alias *)k;
	__u64 x = (w[0] ^ w[1]) * 0x9E3779B97F4A7C15ull;
	x = (x ^ w[2] ^ w[3]) * 0x9E3779B97F4A7C15ull;
	x = (x ^ w[4]) * 0x9E3779B97F4A7C15ull;
	return (__u32)(x >> EXF_FC_SHIFT);
}

static __always_inline int exf_key_eq(const struct exf_flow_key *a, const struct exf_flow_key *b)
{
	const exf_u64_alias *x = (const exf_u64_alias *)a, *y = (const exf_u64_alias *)b;
	return !((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4]));
}

/* The cache's tick: packet time in replay, jiffies live. Never 0. */
static __always_inline __u64 exf_tick(EXF_SKB *skb)
{
	if (exf_use_pkt_time)
		return (skb->tstamp >> EXF_TICK_SHIFT) + 1;
	return exf_ticks();
}

/* Move a slot's pending counts into the flow and client tables and free the
 * slot. The slot is marked free and zeroed before the tables are updated, so
 * a concurrent reader may miss these counts for a moment but never sees
 * them twice. */
static __always_inline void exf_fc_flush(struct exf_fc_slot *c, __u64 now)
{
	__u64 pk0 = c->pkts[0], pk1 = c->pkts[1], by0 = c->bytes[0], by1 = c->bytes[1];
	__u64 last = c->last_ns;

	c->used = 0;
	if (!(pk0 | pk1))
		return;
	c->pkts[0] = 0;
	c->pkts[1] = 0;
	c->bytes[0] = 0;
	c->bytes[1] = 0;
	struct exf_flow *f = exf_map_lookup(&exf_flows, &c->key);
	if (f) {
		exf_flow_changed(f, &c->key);
		__sync_fetch_and_add(&f->pkts[0], pk0);
		__sync_fetch_and_add(&f->pkts[1], pk1);
		__sync_fetch_and_add(&f->bytes[0], by0);
		__sync_fetch_and_add(&f->bytes[1], by1);
		if (last > f->last_ns)
			f->last_ns = last;
	}
	if (c->kind != EXF_KIND_TLS && c->kind != EXF_KIND_QUIC)
		return;
	/* Counted for the client even when the flow left the table. */
	struct exf_client_stats *s = exf_client_get(exf_client_addr(&c->key, c->client), now);
	if (!s)
		return;
	if (c->client == EXF_CLIENT_LO) {
		s->pkts_in += pk0;
		s->bytes_in += by0;
		s->pkts_out += pk1;
		s->bytes_out += by1;
	} else {
		s->pkts_in += pk1;
		s->bytes_in += by1;
		s->pkts_out += pk0;
		s->bytes_out += by0;
	}
	if (last > s->last_ns)
		s->last_ns = last;
}

/* After the slow path: cache the flow if nothing but counting is left to do
 * for its packets. A slot another flow used in this tick is left to it. */
static __always_inline void exf_fc_install(struct exf_fc_slot *c, const struct exf_pkt *p,
                                           const struct exf_flow *f, __u32 idx, __u64 tick,
                                           __u64 now)
{
	if (f->flags & EXF_FF_CLOSED)
		return;
	if (p->tcp_flags & (EXF_TCP_SYN | EXF_TCP_FIN | EXF_TCP_RST))
		return;
	if (f->kind == EXF_KIND_TLS || f->kind == EXF_KIND_QUIC) {
		if (!(f->flags & EXF_FF_HELLO_DONE))
			return;
	} else if (f->kind != EXF_KIND_OTHER) {
		return;
	}
	if (c->used) {
		if (c->tick == tick)
			return;
		exf_fc_flush(c, now);
	}
	struct exf_fc_gen_entry *g = exf_turn_gen(idx);
	if (!g)
		return;
	/* The generation before the turn: a change in between makes the slot
	 * stale at once, never wrong. */
	c->gen = *(volatile __u32 *)&g->gen;
	asm volatile("" ::: "memory");
	c->quiet = exf_turn_quiet(f, *(volatile __u32 *)&f->turn);
	c->key = p->key;
	c->last_ns = now;
	c->tick = tick;
	c->tcp_seen = f->tcp_seen;
	c->client = f->client;
	c->kind = f->kind;
	c->used = 1;
}

/* The packet leaves its flow's turn as this CPU's slot knows it: too small
 * to take a turn, or from a side whose payloads leave the cached turn as it
 * is, with no turn change since the slot was installed. */
static __always_inline int exf_fc_turn_kept(const struct exf_fc_slot *c, const struct exf_pkt *p,
                                            __u32 d, __u32 idx)
{
	if (p->payload_len < exf_request_min_bytes)
		return 1;
	if (!(c->quiet & (1u << d)))
		return 0;
	const struct exf_fc_gen_entry *g = exf_turn_gen(idx);
	return g && *(volatile const __u32 *)&g->gen == c->gen;
}

/* Waking the reader costs an inter-processor interrupt per event (about 6 us
 * on a VM, where it traps to the hypervisor). The daemon reads the ring on a
 * short timer anyway, so events are submitted without a wakeup unless the
 * ring is filling up. */
static __always_inline __u64 exf_wake_flags(void)
{
	if (exf_rb_avail(&exf_events) > exf_rb_wake_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

static __always_inline void exf_hdr_fill(struct exf_event_hdr *h, __u16 type,
                                         const struct exf_pkt *p, const struct exf_flow *f,
                                         __u64 now)
{
	h->type = type;
	h->len = 0;
	h->kind = f->kind;
	h->client = f->client;
	h->reason = 0;
	h->was_closed = 0;
	h->ts_ns = now;
	h->key = p->key;
}

/* Copy n payload bytes starting at payload offset poff into a hello event. */
static __always_inline void exf_emit_hello(EXF_SKB *skb, const struct exf_pkt *p,
                                           const struct exf_flow *f, __u32 poff, __u32 n, __u32 seq,
                                           __u32 offset, __u64 now)
{
	struct exf_hello_event *e;
	__u32 start = p->payload_off + poff;

	/* A frame cut short (a capture's snaplen) holds less than the IP length says. */
	if (start >= skb->len)
		return;
	if (n > skb->len - start)
		n = skb->len - start;
	if (n == 0)
		return;
	if (n <= EXF_CHUNK_SMALL) {
		e = exf_rb_reserve(&exf_events, EXF_HELLO_EVENT_HDR_SIZE + EXF_CHUNK_SMALL, 0);
		if (!e) {
			exf_count(EXF_C_RB_FULL, 1);
			return;
		}
		/* Not a power of two, so the bound is a compare, kept by exf_opaque. */
		exf_opaque(n);
		if (n > EXF_CHUNK_SMALL)
			n = EXF_CHUNK_SMALL;
		if (exf_load_bytes(skb, start, e->data, n))
			goto fail;
	} else {
		e = exf_rb_reserve(&exf_events, sizeof(*e), 0);
		if (!e) {
			exf_count(EXF_C_RB_FULL, 1);
			return;
		}
		if (n > EXF_CHUNK_MAX)
			n = EXF_CHUNK_MAX;
		if (exf_load_bytes(skb, start, e->data, n & (2 * EXF_CHUNK_MAX - 1)))
			goto fail;
	}
	exf_hdr_fill(&e->hdr, EXF_EV_HELLO, p, f, now);
	e->hdr.len = n;
	e->seq = seq;
	e->offset = offset;
	exf_rb_submit(e, exf_wake_flags());
	exf_count(EXF_C_HELLO_EVENTS, 1);
	return;
fail:
	exf_rb_discard(e, 0);
	exf_count(EXF_C_LOAD_FAIL, 1);
}

static __always_inline void exf_emit_end(const struct exf_pkt *p, const struct exf_flow *f,
                                         __u8 reason, __u8 was_closed, __u64 now)
{
	struct exf_flow_end_event *e = exf_rb_reserve(&exf_events, sizeof(*e), 0);
	if (!e) {
		exf_count(EXF_C_RB_FULL, 1);
		return;
	}
	exf_hdr_fill(&e->hdr, EXF_EV_FLOW_END, p, f, now);
	e->hdr.reason = reason;
	e->hdr.was_closed = was_closed;
	e->flow = *f;
	e->flow.epoch = 0; /* the harvest's change mark: not part of what is sent */
	exf_rb_submit(e, exf_wake_flags());
	exf_count(EXF_C_END_EVENTS, 1);
}

/* Is the payload a TLS handshake record carrying a ClientHello?
 * hdr receives the first 9 payload bytes. */
static __always_inline int exf_load_head(EXF_SKB *skb, const struct exf_pkt *p, __u8 *hdr, __u32 n)
{
	if (p->payload_len < n || p->payload_off + n > skb->len)
		return -1;
	if (exf_load_bytes(skb, p->payload_off, hdr, n)) {
		exf_count(EXF_C_LOAD_FAIL, 1);
		return -1;
	}
	return 0;
}

static __always_inline int exf_is_client_hello(const __u8 *h)
{
	return h[0] == 0x16 && h[1] == 0x03 && h[2] <= 0x04 && h[5] == 0x01;
}

/* TCP: hand the client's first payload bytes to userspace, segment by
 * segment with sequence numbers, until the ClientHello's record (or
 * EXF_HELLO_MAX bytes) is covered or EXF_HELLO_MAX_SEGS segments were sent. */
static __always_inline void exf_tcp_hello(EXF_SKB *skb, const struct exf_pkt *p, struct exf_flow *f,
                                          __u64 now)
{
	__u8 h[9];
	/* Flag bits this packet sets, with one atomic OR at the end (the
	 * server's side may set EXF_FF_CLOSED at the same time). */
	__u8 flags = f->flags, set = 0;

	if (!(flags & EXF_FF_ISN_KNOWN)) {
		f->client_isn = p->seq;
		set |= EXF_FF_ISN_KNOWN;
	}
	__u32 offset = p->seq - f->client_isn;
	if (offset >= EXF_HELLO_MAX)
		goto out;
	if (offset == 0 && !(flags & EXF_FF_TARGET_SET)) {
		__u32 target = EXF_NON_HELLO_PEEK;
		if (exf_load_head(skb, p, h, sizeof(h)) == 0 && exf_is_client_hello(h)) {
			__u32 reclen = ((__u32)h[3] << 8) | h[4];
			__u32 hslen = ((__u32)h[6] << 16) | ((__u32)h[7] << 8) | h[8];
			/* Whole handshake in the first record: that record; otherwise
			 * (split over records) as much as we take. */
			target = hslen + 4 <= reclen ? 5 + reclen : EXF_HELLO_MAX;
			if (target > EXF_HELLO_MAX)
				target = EXF_HELLO_MAX;
		}
		f->hello_target = target;
		set |= EXF_FF_TARGET_SET;
	}
	__u8 target_set = (flags | set) & EXF_FF_TARGET_SET;
	__u32 end = target_set ? f->hello_target : EXF_HELLO_MAX;
	__u32 n = 0;
	if (offset < end) {
		n = end - offset;
		if (n > p->payload_len)
			n = p->payload_len;
		__u32 first = n > EXF_CHUNK_MAX ? EXF_CHUNK_MAX : n;
		exf_emit_hello(skb, p, f, 0, first, p->seq, offset, now);
		if (n > EXF_CHUNK_MAX)
			exf_emit_hello(skb, p, f, EXF_CHUNK_MAX, n - EXF_CHUNK_MAX,
			               p->seq + EXF_CHUNK_MAX, offset + EXF_CHUNK_MAX, now);
	}
	if (offset <= f->hello_contig && offset + n > f->hello_contig)
		f->hello_contig = offset + n;
	f->hello_segs++;
	if ((target_set && f->hello_contig >= f->hello_target) ||
	    f->hello_segs >= EXF_HELLO_MAX_SEGS)
		set |= EXF_FF_HELLO_DONE;
out:
	if (set)
		exf_flow_set_flags(f, set);
}

/* QUIC: hand the client's first long-header datagrams to userspace. */
static __always_inline void exf_quic_hello(EXF_SKB *skb, const struct exf_pkt *p,
                                           struct exf_flow *f, __u8 first_byte, __u64 now)
{
	if (!(first_byte & 0x80)) { /* short header: the handshake is over */
		exf_flow_set_flags(f, EXF_FF_HELLO_DONE);
		return;
	}
	exf_emit_hello(skb, p, f, 0, p->payload_len, f->hello_segs, 0, now);
	if (++f->hello_segs >= EXF_QUIC_MAX_DGRAMS)
		exf_flow_set_flags(f, EXF_FF_HELLO_DONE);
}

/* A new flow's entry, inserted if missing. Returns the entry, or NULL when
 * the flow is not tracked or the table refused it. *created is 1 on the CPU
 * whose insert made the entry: another CPU may insert it first (EEXIST), and
 * then this one takes that entry. count_new: count it in EXF_C_FLOW_NEW
 * (not for a reused 5-tuple, whose entry replaces the one it ended). */
static __always_inline struct exf_flow *exf_flow_create(const struct exf_pkt *p, __u64 now,
                                                        int count_new, __u32 gen, __u8 *created_tls)
{
	struct exf_flow nf;

	if (!exf_flow_init(&nf, p, now))
		return NULL;
	nf.tcp_seen = gen;
	if (exf_map_update(&exf_flows, &p->key, &nf, BPF_NOEXIST) == 0) {
		if (count_new)
			exf_count(EXF_C_FLOW_NEW, 1);
		*created_tls = nf.kind == EXF_KIND_TLS;
	}
	struct exf_flow *f = exf_map_lookup(&exf_flows, &p->key);
	if (!f)
		exf_count(EXF_C_FLOW_UPDATE_FAIL, 1);
	return f;
}

/* A SYN opening a new connection on the 5-tuple of f: f closed, or f's
 * client ISN known exactly and not this one. */
static __always_inline int exf_is_reuse(const struct exf_pkt *p, const struct exf_flow *f)
{
	return (p->tcp_flags & (EXF_TCP_SYN | EXF_TCP_ACK)) == EXF_TCP_SYN &&
	       ((f->flags & EXF_FF_CLOSED) ||
	        ((f->flags & EXF_FF_ISN_EXACT) && p->seq + 1 != f->client_isn));
}

/* Ends the flow whose 5-tuple a new connection reuses and removes its entry
 * (the new connection gets a fresh one: its entry is never rewritten in
 * place under other CPUs' atomic adds). seen: f->tcp_seen, read before the
 * reuse was decided. The CPU whose compare-and-swap sets EXF_TCP_REUSED in
 * that very value does it, once; it fails when another CPU claimed the
 * flow, or when the entry is already the new connection's (the next
 * generation). The close is counted unless a FIN/RST already was
 * (EXF_TCP_CLOSE_COUNTED, claimed in the same swap). */
static __always_inline void exf_flow_end_reuse(const struct exf_pkt *p, struct exf_flow *f,
                                               __u32 seen, __u64 now)
{
	__u32 prev = seen;

	/* A second try when only a TCP flag bit arrived in between. */
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if ((prev & EXF_TCP_REUSED) || ((prev ^ seen) & EXF_TCP_GEN_MASK))
			return;
		seen = prev;
		prev = __sync_val_compare_and_swap(&f->tcp_seen, seen,
		                                   seen | EXF_TCP_REUSED | EXF_TCP_CLOSE_COUNTED);
		if (prev == seen)
			break;
	}
	if (prev != seen)
		return;
	if (f->kind == EXF_KIND_TLS) {
		__u8 was_closed = !!(prev & EXF_TCP_CLOSE_COUNTED);
		exf_emit_end(p, f, EXF_END_REUSE, was_closed, now);
		if (!was_closed) {
			struct exf_client_stats *s =
			        exf_client_get(exf_client_addr(&p->key, f->client), now);
			if (s)
				s->tls_flows_closed++;
		}
	}
	exf_count(EXF_C_FLOW_REUSE, 1);
	exf_map_delete(&exf_flows, &p->key);
}

/* The packet's flow entry: the one in the table, or a fresh one when there
 * is none or this SYN reuses the 5-tuple of an earlier connection. NULL when
 * the flow is not tracked or the table refused it. *created_tls: this CPU
 * inserted the entry as a TLS flow (exf_flow_create). */
static __always_inline struct exf_flow *exf_flow_get(const struct exf_pkt *p, __u64 now,
                                                     __u8 *created_tls)
{
	__u8 reused = 0;
	__u32 gen = 0;
	struct exf_flow *f = exf_map_lookup(&exf_flows, &p->key);

	if (f && (p->tcp_flags & (EXF_TCP_SYN | EXF_TCP_ACK)) == EXF_TCP_SYN) {
		/* tcp_seen first, by an atomic (fully ordered) read: the checks
		 * then see this generation of the entry or a later one, which
		 * the claim tells apart (exf_flow_end_reuse). */
		__u32 seen = __sync_val_compare_and_swap(&f->tcp_seen, 0, 0);
		if (exf_is_reuse(p, f)) {
			exf_flow_end_reuse(p, f, seen, now);
			f = NULL;
			reused = 1;
			gen = (seen + EXF_TCP_GEN_ONE) & EXF_TCP_GEN_MASK;
		}
	}
	if (!f)
		f = exf_flow_create(p, now, !reused, gen, created_tls);
	return f;
}

/* Counts the packet in its flow's direction and notes its TCP flags. */
static __always_inline void exf_flow_add_pkt(struct exf_flow *f, const struct exf_pkt *p, __u64 now)
{
	__u32 d = p->dir & 1;

	exf_flow_changed(f, &p->key);
	__sync_fetch_and_add(&f->pkts[d], p->segs);
	__sync_fetch_and_add(&f->bytes[d], p->wire_bytes);
	f->last_ns = now;
	if (p->tcp_flags) {
		__u32 bits = (__u32)p->tcp_flags << (d * 8);
		/* Read first: most packets add no new flag, and a read costs less than an atomic.
		 */
		if ((f->tcp_seen & bits) != bits)
			__sync_fetch_and_or(&f->tcp_seen, bits);
	}
}

/* What a packet of a PENDING flow decides: TCP by the first payload (a
 * ClientHello makes the flow TLS, its sender the client), UDP by the client's
 * first datagram (a QUIC long header). Returns the kind, EXF_KIND_PENDING
 * while nothing is decided; *client gets the client side; head receives the
 * first payload bytes read (up to 9). */
static __always_inline __u8 exf_pending_verdict(EXF_SKB *skb, const struct exf_pkt *p,
                                                const struct exf_flow *f, __u8 src,
                                                __u8 from_client, __u8 *client, __u8 *head)
{
	if (p->proto == EXF_IPPROTO_TCP) {
		if (p->payload_len == 0 || (!from_client && f->client != EXF_CLIENT_UNKNOWN))
			return EXF_KIND_PENDING;
		if (exf_load_head(skb, p, head, 9) == 0 && exf_is_client_hello(head)) {
			*client = src;
			return EXF_KIND_TLS;
		}
		return EXF_KIND_OTHER;
	}
	if (!from_client)
		return EXF_KIND_PENDING;
	/* QUIC long header: first bit set and a non-zero version. */
	if (exf_load_head(skb, p, head, 5) == 0 && (head[0] & 0x80) &&
	    (head[1] | head[2] | head[3] | head[4]))
		return EXF_KIND_QUIC;
	return EXF_KIND_OTHER;
}

/* Classifies a PENDING flow when this packet decides its kind. *newly: this
 * CPU classified it TLS or QUIC (and counts it opened); *from_client follows
 * the classification's client side. */
static __always_inline void exf_flow_settle(EXF_SKB *skb, const struct exf_pkt *p,
                                            struct exf_flow *f, __u8 src, __u8 *head, __u8 *newly,
                                            __u8 *from_client)
{
	__u8 client = f->client;
	__u8 kind = exf_pending_verdict(skb, p, f, src, *from_client, &client, head);

	if (kind == EXF_KIND_PENDING)
		return;
	/* The loser of a race goes on with the winner's verdict. */
	*newly = exf_flow_classify(f, kind, client) && kind != EXF_KIND_OTHER;
	*from_client = f->client == src;
}

/* Adds the packet to its client's totals. A flow just counted opened brings
 * every packet it had so far: they were counted in the flow alone while it
 * was PENDING. */
static __always_inline void exf_client_add_pkt(struct exf_client_stats *s, const struct exf_flow *f,
                                               const struct exf_pkt *p, __u8 newly,
                                               __u8 from_client, __u64 now)
{
	if (newly) {
		__u32 in = f->client == EXF_CLIENT_LO ? EXF_CDIR_LO_TO_HI : EXF_CDIR_HI_TO_LO;
		s->tls_flows_opened++;
		s->pkts_in += f->pkts[in];
		s->bytes_in += f->bytes[in];
		s->pkts_out += f->pkts[in ^ 1];
		s->bytes_out += f->bytes[in ^ 1];
	} else if (from_client) {
		s->pkts_in += p->segs;
		s->bytes_in += p->wire_bytes;
	} else {
		s->pkts_out += p->segs;
		s->bytes_out += p->wire_bytes;
	}
	s->last_ns = now;
}

/* A TLS flow ends at an RST, or at the FIN that completes both sides' FINs.
 * The CPU whose atomic OR sets EXF_TCP_CLOSE_COUNTED closes it: counts it
 * in the client's totals (s, when there is one) and sends its end event. */
static __always_inline void exf_tcp_close(const struct exf_pkt *p, struct exf_flow *f,
                                          struct exf_client_stats *s, __u64 now)
{
	if (!(p->tcp_flags & (EXF_TCP_FIN | EXF_TCP_RST)) || (f->flags & EXF_FF_CLOSED))
		return;
	__u32 seen = f->tcp_seen;
	__u8 reason = 0;
	if (p->tcp_flags & EXF_TCP_RST)
		reason = EXF_END_RST;
	else if ((seen & EXF_TCP_FIN) && (seen & (EXF_TCP_FIN << 8)))
		reason = EXF_END_FIN;
	if (!reason ||
	    (__sync_fetch_and_or(&f->tcp_seen, EXF_TCP_CLOSE_COUNTED) & EXF_TCP_CLOSE_COUNTED))
		return;
	exf_flow_set_flags(f, EXF_FF_CLOSED);
	if (s)
		s->tls_flows_closed++;
	exf_emit_end(p, f, reason, 0, now);
}

/* Everything but the cached fast path: flow lookup or creation, 5-tuple
 * reuse, classification, client totals, hello and flow-end events. Returns
 * the flow, or NULL when it is not tracked. Each one-time transition (flow
 * created, classified, closed, ended by reuse) is claimed atomically, so
 * that it happens once when two CPUs handle the flow at the same moment. */
static __always_inline struct exf_flow *exf_slow(EXF_SKB *skb, struct exf_pkt *p, __u32 idx,
                                                 __u64 now)
{
	__u8 src = exf_src_side(p);
	__u8 newly = 0;
	__u8 head[9];
	struct exf_flow *f = exf_flow_get(p, now, &newly);

	if (!f)
		return NULL;
	exf_flow_add_pkt(f, p, now);
	__u8 from_client = f->client == src;
	if (f->kind == EXF_KIND_PENDING)
		exf_flow_settle(skb, p, f, src, head, &newly, &from_client);
	if (f->kind != EXF_KIND_TLS && f->kind != EXF_KIND_QUIC)
		return f;

	struct exf_client_stats *s = exf_client_get(exf_client_addr(&p->key, f->client), now);
	if (s)
		exf_client_add_pkt(s, f, p, newly, from_client, now);
	if (newly)
		exf_count(f->kind == EXF_KIND_TLS ? EXF_C_TLS_FLOWS : EXF_C_QUIC_FLOWS, 1);
	/* The client's payloads up to its hello's end are the hello, no turn. */
	if (p->payload_len >= exf_request_min_bytes &&
	    (!from_client || (f->flags & EXF_FF_HELLO_DONE)) &&
	    exf_take_turn(f, from_client, idx) && s)
		s->requests++;

	if (p->proto == EXF_IPPROTO_TCP) {
		if (from_client && p->payload_len > 0 && !(f->flags & EXF_FF_HELLO_DONE))
			exf_tcp_hello(skb, p, f, now);
		exf_tcp_close(p, f, s, now);
	} else if (from_client && !(f->flags & EXF_FF_HELLO_DONE)) {
		/* The datagram that made the flow QUIC has its first byte in head. */
		if (!newly && exf_load_head(skb, p, head, 1))
			return f;
		exf_quic_hello(skb, p, f, head[0], now);
	}
	return f;
}

static __always_inline void exf_handle(EXF_SKB *skb)
{
	struct exf_pkt p;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 len = skb->len;
	__u32 want = len < EXF_PULL_LEN ? len : EXF_PULL_LEN;
	int rc = exf_parse_inl(data, data_end, len, skb->gso_segs, &p);

	if ((rc == EXF_C_TRUNC_L2 || rc == EXF_C_TRUNC_L3 || rc == EXF_C_TRUNC_L4) &&
	    data + want > data_end) {
		/* Headers beyond the linear part: make them linear and parse
		 * again. Only then: a pull may unclone and reallocate the skb
		 * head, far too costly for every packet (TCP egress skbs keep
		 * their payload in frags, which payload reads handle). */
		if (exf_pull_data(skb, want))
			exf_count(EXF_C_PULL_FAIL, 1);
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		rc = exf_parse(data, data_end, len, skb->gso_segs, &p);
	}
	if (rc) {
		exf_count(EXF_C_PACKETS, skb->gso_segs > 1 ? skb->gso_segs : 1);
		exf_count(rc, 1);
		return;
	}
	exf_count(EXF_C_PACKETS, p.segs);
	exf_count(EXF_C_BYTES, p.wire_bytes);
	/* UDP off the TLS ports is never tracked (exf_flow_init): no lookups. */
	if (p.proto == EXF_IPPROTO_UDP && !exf_is_tls_port(p.sport) && !exf_is_tls_port(p.dport))
		return;

	/* Fast path: a steady flow already cached on this CPU for this tick. */
	__u32 d = p.dir & 1;
	__u64 tick = exf_tick(skb);
	__u32 idx = exf_fc_index(&p.key);
	struct exf_fc_slot *c = exf_map_lookup(&exf_fcache, &idx);
	int mine = c && c->used && exf_key_eq(&c->key, &p.key);
	if (mine && c->tick == tick && !(p.tcp_flags & (EXF_TCP_SYN | EXF_TCP_FIN | EXF_TCP_RST))) {
		__u32 bits = (__u32)p.tcp_flags << (d * 8);
		if ((c->tcp_seen & bits) == bits && exf_fc_turn_kept(c, &p, d, idx)) {
			c->pkts[d] += p.segs;
			c->bytes[d] += p.wire_bytes;
			if (exf_use_pkt_time)
				c->last_ns = skb->tstamp;
			return;
		}
	}

	__u64 now = exf_use_pkt_time ? skb->tstamp : exf_now_ns();
	/* The flow's cached counts go to the tables before anything else
	 * (its end event, a reuse) reads them. */
	if (mine)
		exf_fc_flush(c, now);
	struct exf_flow *f = exf_slow(skb, &p, idx, now);
	if (f && c)
		exf_fc_install(c, &p, f, idx, tick, now);
}

#endif /* EXF_LIB_DATAPATH_H */
