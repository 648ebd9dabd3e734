// SPDX-License-Identifier: Apache-2.0
/* The shared datapath (bpf/lib/datapath.h) compiled for userspace: the same
 * source the tc programs run, with maps and helpers from user_shim.h. */
#include <linux/types.h>

#include "lib/exf_common.h"

static __thread struct exf_uinstance *exf_ucur;

#define exf_flows (exf_ucur->flows)
#define exf_clients (exf_ucur->clients)
#define exf_health (exf_ucur->health)
#define exf_events (exf_ucur->events)
#define exf_fcache (exf_ucur->fcache)
#define exf_fc_gen (exf_ucur->fc_gen)
#define exf_request_min_bytes (exf_ucur->request_min_bytes)
#define exf_tls_ports (exf_ucur->tls_ports)
#define exf_n_tls_ports (exf_ucur->n_tls_ports)
#define exf_use_pkt_time (exf_ucur->use_pkt_time)
#define exf_rb_wake_bytes 0
#define exf_now_ns() (exf_ucur->now_ns)
/* The live tick of the flow cache: the clock in 2^22 ns steps. */
#define exf_ticks() ((exf_ucur->now_ns >> EXF_TICK_SHIFT) + 1)

#include "lib/datapath.h"

void exf_u_handle(struct exf_uinstance *inst, struct exf_uskb *skb)
{
    exf_ucur = inst;
    exf_handle(skb);
    exf_ucur = 0;
}

__u32 exf_u_fc_index(const struct exf_flow_key *k) { return exf_fc_index(k); }
