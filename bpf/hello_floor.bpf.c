// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The floor of a ClientHello packet's cost (bench/bpf_cost.sh, RESULTS.md):
 * only what the sensor must do with that packet and no program can skip,
 * handing its payload to userspace in a ring buffer event. No parsing beyond the
 * benchmark's fixed Ethernet + IPv4 or IPv6 + TCP frames without options, no
 * flow or client table, no clock, no event header but type and length:
 * reserve a hello event of the sensor's two sizes in a ring of the sensor's
 * size, copy the payload into it with bpf_skb_load_bytes, submit without a
 * wakeup (the sensor's case when the reader is not far behind). The same map
 * names as the sensor, so bpf_cost runs it with --object/--compare, and its
 * health counter shows one event per hello. Not a sensor: it counts nothing
 * and takes every payload, hello or not. */
#include "lib/exf_common.h"
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include "lib/event_maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Ethernet + IPv4 or IPv6 + TCP, no options: the benchmark's frames. */
#define FLOOR_OFF_V4 (14 + 20 + 20)
#define FLOOR_OFF_V6 (14 + 40 + 20)

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&exf_health, &idx);
	if (v)
		*v += 1;
}

SEC("tc")
int exf_tc_ingress(struct __sk_buff *skb)
{
	struct exf_hello_event *e;
	__u32 off = skb->protocol == bpf_htons(ETH_P_IPV6) ? FLOOR_OFF_V6 : FLOOR_OFF_V4;
	__u32 n;
	long err;

	if (skb->len <= off)
		return TC_ACT_OK;
	n = skb->len - off;
	if (n <= EXF_CHUNK_SMALL) {
		e = bpf_ringbuf_reserve(&exf_events, EXF_HELLO_EVENT_HDR_SIZE + EXF_CHUNK_SMALL, 0);
		if (!e)
			goto full;
		exf_opaque(n);
		if (n > EXF_CHUNK_SMALL)
			n = EXF_CHUNK_SMALL;
		err = bpf_skb_load_bytes(skb, off, e->data, n);
	} else {
		e = bpf_ringbuf_reserve(&exf_events, sizeof(*e), 0);
		if (!e)
			goto full;
		if (n > EXF_CHUNK_MAX)
			n = EXF_CHUNK_MAX;
		err = bpf_skb_load_bytes(skb, off, e->data, n & (2 * EXF_CHUNK_MAX - 1));
	}
	if (err) {
		bpf_ringbuf_discard(e, 0);
		count(EXF_C_LOAD_FAIL);
		return TC_ACT_OK;
	}
	e->hdr.type = EXF_EV_HELLO;
	e->hdr.len = n;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	count(EXF_C_HELLO_EVENTS);
	return TC_ACT_OK;
full:
	count(EXF_C_RB_FULL);
	return TC_ACT_OK;
}
