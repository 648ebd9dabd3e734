/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The maps userspace reads besides the tables: the health counters and the
 * event ring. Apart from maps.h so that the benchmark's hello floor
 * (bpf/hello_floor.bpf.c) has the same two maps without the tables. */
#ifndef EXF_LIB_EVENT_MAPS_H
#define EXF_LIB_EVENT_MAPS_H

#include "exf_common.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, EXF_C__MAX);
	__type(key, __u32);
	__type(value, __u64);
} exf_health SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} exf_events SEC(".maps");

#endif /* EXF_LIB_EVENT_MAPS_H */
