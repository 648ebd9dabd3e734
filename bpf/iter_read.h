/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The rows iter_read.bpf.c writes for bench/iter_read.cpp: one per
 * key asked for, in the order asked. */
#ifndef EXF_BENCH_ITER_READ_H
#define EXF_BENCH_ITER_READ_H

#include "exfilmon_shared.h"

#define EXF_ITER_MAX_CPUS 128 /* the per-CPU sum's bound (the verifier's) */

struct exf_iter_row {
	struct exf_flow_key key; /* as asked (a client: proto EXF_CHG_CLIENT) */
	__u32 found;             /* 0: not in the table */
	__u32 pad;
	union {
		struct exf_flow flow;           /* epoch zeroed, as flow_row() */
		struct exf_client_stats client; /* summed over CPUs, as sum_client() */
	} v;
}; /* 128 bytes */

#endif /* EXF_BENCH_ITER_READ_H */
