/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Userspace stand-ins for the BPF helpers and maps the datapath uses, so
 * that datapath.h compiles unchanged into the daemon (libpcap backend and
 * the userspace replay path). Implemented in userspace/capture/user_datapath.
 */
#ifndef EXF_LIB_USER_SHIM_H
#define EXF_LIB_USER_SHIM_H

#include <errno.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The fields of struct __sk_buff the datapath reads. */
struct exf_uskb {
	__u32 len;
	__u32 gso_segs;
	__u64 tstamp;
	long data;
	long data_end;
};

/* A map or ring buffer of one userspace datapath instance. */
struct exf_umap {
	void *impl;
	int kind; /* enum exf_umap_kind */
};

enum exf_umap_kind {
	EXF_UMAP_FLOWS,
	EXF_UMAP_CLIENTS,
	EXF_UMAP_HEALTH,
	EXF_UMAP_EVENTS,
	EXF_UMAP_FCACHE,
	EXF_UMAP_FC_GEN
};

/* The instance the current thread runs (its maps and settings). */
struct exf_uinstance {
	struct exf_umap flows, clients, health, events, fcache, fc_gen;
	__u16 tls_ports[EXF_MAX_TLS_PORTS];
	__u32 n_tls_ports;
	__u8 use_pkt_time;
	__u32 request_min_bytes;
	__u64 now_ns; /* the clock when use_pkt_time is 0 (set by the caller) */
};

void *exf_u_map_lookup(struct exf_umap *m, const void *key);
long exf_u_map_update(struct exf_umap *m, const void *key, const void *val, __u64 flags);
long exf_u_map_delete(struct exf_umap *m, const void *key);
void *exf_u_rb_reserve(struct exf_umap *m, __u64 size);
void exf_u_rb_submit(void *p);
void exf_u_rb_discard(void *p);
/* Runs the datapath on one frame as the given instance. */
void exf_u_handle(struct exf_uinstance *inst, struct exf_uskb *skb);
/* The flow cache slot of a flow key (the kernel's index: the harvest reads
 * the slots of the flows that changed). */
__u32 exf_u_fc_index(const struct exf_flow_key *k);

#ifdef __cplusplus
}
#endif

#ifndef __cplusplus
#define BPF_ANY 0
#define BPF_NOEXIST 1
#define BPF_EXIST 2
#define EXF_SKB struct exf_uskb
#define exf_map_lookup(m, k) exf_u_map_lookup(m, k)
#define exf_map_update(m, k, v, f) exf_u_map_update(m, k, v, f)
#define exf_map_delete(m, k) exf_u_map_delete(m, k)
#define exf_rb_reserve(m, sz, f) exf_u_rb_reserve(m, sz)
#define exf_rb_submit(p, f) exf_u_rb_submit(p)
#define exf_rb_discard(p, f) exf_u_rb_discard(p)
#define exf_pull_data(skb, len) ((void)(skb), (void)(len), 0)
#define exf_rb_avail(m) ((void)(m), 0ull)
#define BPF_RB_NO_WAKEUP 1
#define BPF_RB_FORCE_WAKEUP 2

static inline long exf_load_bytes(const struct exf_uskb *skb, __u32 off, void *to, __u32 len)
{
	if (off > skb->len || len > skb->len - off)
		return -EFAULT;
	memcpy(to, (const char *)skb->data + off, len);
	return 0;
}
#endif

#endif /* EXF_LIB_USER_SHIM_H */
