// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * A prototype of the change log's read in the kernel (bench/iter_read.cpp):
 * one BPF iterator run reads a range of the keys in exf_iter_keys from the
 * sensor's exf_flows and exf_clients (the loader reuses the sensor's maps)
 * and writes one struct exf_iter_row each into exf_iter_rows. Both arrays
 * are mapped into userspace: the keys go in and the rows come out without
 * a system call; the read() of the iterator runs the program.
 *
 * A task iterator limited to the reader's own thread runs the program once
 * per read. The map-element iterator (iter/bpf_map_elem), which would run it
 * once per key and write into the seq_file, is refused by this kernel
 * (EPERM before verification; bench/RESULTS.md, "Userspace scale").
 */
#include "lib/exf_common.h"
#include "lib/maps.h"
#include "iter_read.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The context of a task iterator program (only meta is read). */
struct bpf_iter_meta {
	void *seq;
	__u64 session_id;
	__u64 seq_num;
} __attribute__((preserve_access_index));
struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	void *task;
} __attribute__((preserve_access_index));

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* set by the loader */
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct exf_flow_key);
} exf_iter_keys SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* set by the loader */
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct exf_iter_row);
} exf_iter_rows SEC(".maps");

const volatile __u32 exf_iter_ncpu = 1; /* possible CPUs */
/* The client values summed: exf_iter_ncpu, or more to stand in for a
 * machine with more CPUs (CPU c reads this machine's CPU c % ncpu). */
const volatile __u32 exf_iter_sum_cpus = 1;
/* The range of keys the next run reads (set through the mapped .bss). */
__u32 exf_iter_first = 0;
__u32 exf_iter_count = 0;

static __always_inline void max_u64(__u64 *to, __u64 v)
{
	if (v > *to)
		*to = v;
}

/* The per-CPU values summed as sum_client() sums them. */
static __always_inline __u32 read_client(const struct exf_flow_key *k, struct exf_client_stats *s)
{
	struct exf_client_key ck;
	__u32 found = 0;

	__builtin_memcpy(ck.addr, k->lo_addr, sizeof(ck.addr));
	__builtin_memset(s, 0, sizeof(*s));
	for (__u32 cpu = 0; cpu < EXF_ITER_MAX_CPUS && cpu < exf_iter_sum_cpus; cpu++) {
		struct exf_client_stats *v =
		        bpf_map_lookup_percpu_elem(&exf_clients, &ck, cpu % exf_iter_ncpu);
		if (!v)
			break;
		found = 1;
		s->tls_flows_opened += v->tls_flows_opened;
		s->tls_flows_closed += v->tls_flows_closed;
		s->pkts_in += v->pkts_in;
		s->pkts_out += v->pkts_out;
		s->bytes_in += v->bytes_in;
		s->bytes_out += v->bytes_out;
		s->requests += v->requests;
		max_u64(&s->last_ns, v->last_ns);
		max_u64(&s->first_ns, v->first_ns);
	}
	return found;
}

static __always_inline __u32 read_flow(const struct exf_flow_key *k, struct exf_flow *f)
{
	struct exf_flow *v = bpf_map_lookup_elem(&exf_flows, k);

	if (!v) {
		__builtin_memset(f, 0, sizeof(*f));
		return 0;
	}
	__builtin_memcpy(f, v, sizeof(*f));
	f->epoch = 0;
	return 1;
}

static long read_one(__u32 i, void *unused)
{
	__u32 at = exf_iter_first + i;
	struct exf_flow_key *k = bpf_map_lookup_elem(&exf_iter_keys, &at);
	struct exf_iter_row *r = bpf_map_lookup_elem(&exf_iter_rows, &at);

	if (!k || !r)
		return 1;
	r->key = *k;
	if (k->proto == EXF_CHG_CLIENT)
		r->found = read_client(k, &r->v.client);
	else
		r->found = read_flow(k, &r->v.flow);
	return 0;
}

SEC("iter/task")
int exf_iter_read(struct bpf_iter__task *ctx)
{
	__u32 done;

	if (!ctx->task)
		return 0; /* the end of the iteration */
	done = bpf_loop(exf_iter_count, read_one, NULL, 0);
	bpf_seq_write(ctx->meta->seq, &done, sizeof(done));
	return 0;
}

/* Only loaded to tell whether this kernel takes a map-element iterator
 * (bench/iter_read prints the answer). */
SEC("iter/bpf_map_elem")
int exf_iter_elem_probe(void *ctx)
{
	return 0;
}
