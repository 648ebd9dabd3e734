// SPDX-License-Identifier: Apache-2.0
#pragma once
// The kernel/userspace boundary header, with its layout pinned: a change on
// one side that the other does not expect fails the build here.
#include <linux/types.h>

#include <cstddef>

extern "C" {
#include "exfilmon_shared.h"
}

static_assert(sizeof(exf_flow_key) == 40);
static_assert(offsetof(exf_flow_key, hi_addr) == 16);
static_assert(offsetof(exf_flow_key, lo_port) == 32);
static_assert(offsetof(exf_flow_key, proto) == 36);
static_assert(sizeof(exf_flow) == 80);
static_assert(offsetof(exf_flow, turn) == 68 && offsetof(exf_flow, requests) == 72);
static_assert(offsetof(exf_flow, epoch) == 64);
static_assert(offsetof(exf_flow, pkts) == 16);
static_assert(offsetof(exf_flow, bytes) == 32);
static_assert(offsetof(exf_flow, tcp_seen) == 48);
static_assert(offsetof(exf_flow, client_isn) == 52);
static_assert(offsetof(exf_flow, hello_target) == 56);
static_assert(offsetof(exf_flow, flags) == 60);
// flags, client, kind, hello_segs: the flow's state word (datapath.h), one
// aligned 32-bit word in this byte order.
static_assert(offsetof(exf_flow, client) == 61 && offsetof(exf_flow, kind) == 62);
static_assert(offsetof(exf_flow, hello_segs) == 63);
static_assert(sizeof(exf_client_key) == 16);
static_assert(sizeof(exf_client_stats) == 80);
static_assert(offsetof(exf_client_stats, requests) == 72);
static_assert(offsetof(exf_client_stats, epoch) == 64);
static_assert(offsetof(exf_client_stats, bytes_out) == 40);
static_assert(offsetof(exf_client_stats, first_ns) == 56);
static_assert(sizeof(exf_fc_slot) == 104);
static_assert(offsetof(exf_fc_slot, gen) == 96);
static_assert(sizeof(exf_fc_gen_entry) == 64);
static_assert(offsetof(exf_fc_slot, pkts) == 40);
static_assert(offsetof(exf_fc_slot, tick) == 80);
static_assert(offsetof(exf_fc_slot, used) == 94);
static_assert((EXF_FC_SLOTS & (EXF_FC_SLOTS - 1)) == 0 &&
              (1ull << (64 - EXF_FC_SHIFT)) == EXF_FC_SLOTS);
static_assert(sizeof(exf_event_hdr) == 56);
static_assert(offsetof(exf_event_hdr, ts_ns) == 8);
static_assert(offsetof(exf_event_hdr, key) == 16);
static_assert(offsetof(exf_hello_event, data) == EXF_HELLO_EVENT_HDR_SIZE);
static_assert(sizeof(exf_hello_event) == EXF_HELLO_EVENT_HDR_SIZE + EXF_CHUNK_MAX);
static_assert(sizeof(exf_flow_end_event) == 136);
static_assert(sizeof(exf_change_ctl) == 24);
static_assert(EXF_CHG_CLIENT != 6 && EXF_CHG_CLIENT != 17, "a logged client is no TCP/UDP flow");
static_assert(EXF_HELLO_MAX <= 2 * EXF_CHUNK_MAX * EXF_HELLO_MAX_SEGS);
