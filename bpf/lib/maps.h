/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* All maps of the exfilmon programs. Sizes here are defaults: the loader
 * sets max_entries from the configuration between open and load. */
#ifndef EXF_LIB_MAPS_H
#define EXF_LIB_MAPS_H

#include "exf_common.h"
#include "event_maps.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct exf_flow_key);
	__type(value, struct exf_flow);
} exf_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 131072);
	__type(key, struct exf_client_key);
	__type(value, struct exf_client_stats);
} exf_clients SEC(".maps");

/* The per-CPU flow cache (see struct exf_fc_slot). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EXF_FC_SLOTS);
	__type(key, __u32);
	__type(value, struct exf_fc_slot);
} exf_fcache SEC(".maps");

/* The turn generations of the flow cache indices (struct exf_fc_gen_entry): one
 * array shared by all CPUs, the only state the fast path reads that another
 * CPU writes. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EXF_FC_SLOTS);
	__type(key, __u32);
	__type(value, struct exf_fc_gen_entry);
} exf_fc_gen SEC(".maps");

/* The change log (struct exf_change_ctl): one control entry, and the
 * buffers of changed keys (EXF_CHG_BUFS * cap; sized by the loader). Both
 * mapped into userspace, which reads them without a system call. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct exf_change_ctl);
} exf_change_ctl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, EXF_CHG_BUFS * 4096);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct exf_flow_key);
} exf_changes SEC(".maps");

#endif /* EXF_LIB_MAPS_H */
