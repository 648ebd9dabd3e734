// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * exfilmon tc programs: count per-client TLS/QUIC flows, packets and bytes
 * in both directions, and hand the first client bytes of each TLS flow (the
 * ClientHello, or QUIC Initial datagrams) to userspace through a ring buffer.
 * A sensor never drops nor decides: both programs always return
 * TC_ACT_UNSPEC, so the packet continues through any other tc filters on
 * the hook (TC_ACT_OK would end the chain and skip them) and is then
 * delivered as usual.
 */
#include "lib/exf_common.h"
#include <linux/pkt_cls.h>
#include "lib/maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by the loader between open and load. */
const volatile __u16 exf_tls_ports[EXF_MAX_TLS_PORTS] = {443, 8443};
const volatile __u32 exf_n_tls_ports = 2;
/* Replay: take time from skb->tstamp (the capture's packet time). */
const volatile __u8 exf_use_pkt_time = 0;
/* Wake the ring buffer reader when more than this is waiting (half the ring). */
const volatile __u64 exf_rb_wake_bytes = 2 * 1024 * 1024;
/* The smallest payload that takes a turn ([bpf] request_min_bytes). */
const volatile __u32 exf_request_min_bytes = EXF_REQUEST_MIN_BYTES;

#include "lib/datapath.h"

SEC("tc")
int exf_tc_ingress(struct __sk_buff *skb)
{
	exf_handle(skb);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int exf_tc_egress(struct __sk_buff *skb)
{
	exf_handle(skb);
	return TC_ACT_UNSPEC;
}
