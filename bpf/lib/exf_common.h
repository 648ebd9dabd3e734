/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Types and byte-order helpers shared by the BPF build and the userspace
 * build of the same parser sources. */
#ifndef EXF_LIB_COMMON_H
#define EXF_LIB_COMMON_H

#if defined(__bpf__)
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#define exf_ntohs(x) bpf_ntohs(x)
#define exf_ntohl(x) bpf_ntohl(x)
#define exf_htonl(x) bpf_htonl(x)
/* The datapath's view of the packet, maps and helpers (see datapath.h). */
#define EXF_SKB struct __sk_buff
#define exf_map_lookup(m, k) bpf_map_lookup_elem(m, k)
#define exf_map_update(m, k, v, f) bpf_map_update_elem(m, k, v, f)
#define exf_map_delete(m, k) bpf_map_delete_elem(m, k)
#define exf_rb_reserve(m, sz, f) bpf_ringbuf_reserve(m, sz, f)
#define exf_rb_submit(p, f) bpf_ringbuf_submit(p, f)
#define exf_rb_discard(p, f) bpf_ringbuf_discard(p, f)
#define exf_rb_avail(m) bpf_ringbuf_query(m, BPF_RB_AVAIL_DATA)
#define exf_load_bytes(skb, off, to, len) bpf_skb_load_bytes(skb, off, to, len)
#define exf_pull_data(skb, len) bpf_skb_pull_data(skb, len)
#define exf_now_ns() bpf_ktime_get_coarse_ns()
/* The live tick of the flow cache: jiffies (inlined by the JIT, no call). */
#define exf_ticks() bpf_jiffies64()
#else
#include <linux/types.h>
#include <arpa/inet.h>
#include <string.h>
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#ifndef __noinline
#define __noinline __attribute__((noinline))
#endif
#define exf_ntohs(x) ntohs(x)
#define exf_ntohl(x) ntohl(x)
#define exf_htonl(x) htonl(x)
#endif

/* Makes the compiler forget what it knows about var, so that a bounds check
 * right after it stays in the program for the verifier to see. */
#define exf_opaque(var) asm volatile("" : "+r"(var))

#include "../exfilmon_shared.h"

#if !defined(__bpf__)
#include "user_shim.h"
#endif

#endif /* EXF_LIB_COMMON_H */
