// SPDX-License-Identifier: Apache-2.0
#pragma once
// Reading the sensor's maps from userspace.
#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "capture/shared_layout.h"
#include "common/dense_map.h"

namespace exf {

struct ClientRow {
    exf_client_key key;
    exf_client_stats stats;  // summed over CPUs; last_ns and first_ns are the max
};

struct FlowRow {
    exf_flow_key key;
    exf_flow flow;
};

using HealthCounters = std::array<uint64_t, EXF_C__MAX>;

// The sensor's counts: the flow and client tables with the flow cache's
// pending counts added (see struct exf_fc_slot). This, not the raw tables,
// is what every reader uses.
struct Tables {
    std::vector<FlowRow> flows;
    std::vector<ClientRow> clients;
};

// Reads the client table, then the flow table, then the flow cache (twice:
// before and after the tables; a slot is added only when both reads agree
// on its flow and tick, so a slot being rewritten is never half-read). A
// flush by the kernel between the reads can hide a slot's pending counts
// from one read (they show at the next), never count them twice. The
// client table is read first: a flow then holds at least what its client
// shows (see harvest/harvest_stage.h).
Tables read_tables(int flows_fd, int clients_fd, int fcache_fd);

// The raw tables. Whole per-client table, per-CPU values summed. Uses
// bpf_map_lookup_batch, falling back to key iteration where batching is
// unsupported.
std::vector<ClientRow> read_clients(int map_fd);
std::vector<FlowRow> read_flows(int map_fd);
// Every CPU's used flow-cache slots.
std::vector<exf_fc_slot> read_fcache(int map_fd);
// Every slot of every CPU, at index slot * ncpu + cpu.
std::vector<exf_fc_slot> read_fcache_all(int map_fd);
// Two reads of one slot agree: same flow and tick, counts not gone back.
bool stable_slot(const exf_fc_slot &before, const exf_fc_slot &after);
// Adds used slots' pending counts (and last times) to their flows, when
// present, and, for TLS/QUIC flows, to their clients (creating rows for
// clients missing from the table), as the kernel does when it flushes.
void fold_fcache(Tables &t, std::span<const exf_fc_slot> slots);

// The steps of fold_fcache, for readers of part of the tables
// (capture/changes.h). Indexes the slots (at most EXF_FC_SLOTS per CPU), not
// the tables: each table row is then one lookup in a small index.
class CacheFold {
public:
    explicit CacheFold(std::span<const exf_fc_slot> slots);  // slots outlive this
    void add_to_flows(std::vector<FlowRow> &flows) const;
    // Each client's pending counts are added once, to its first row.
    void add_to_clients(std::vector<ClientRow> &clients);
    // A row for a client the slots name and the rows lack; false if none.
    bool add_missing_client(std::vector<ClientRow> &clients, const exf_client_key &k);
    // The clients the slots name, in the order their slots come.
    const std::vector<exf_client_key> &clients_in_order() const { return client_order_; }

private:
    void chain_flow(uint32_t slot);
    void sum_client(const exf_fc_slot &c);
    struct ClientSums {
        exf_client_stats add{};
        bool in_table = false;
    };
    std::span<const exf_fc_slot> slots_;
    DenseMap<exf_flow_key, uint32_t> flow_slots_;  // key -> first slot + 1 (chained by next_)
    std::vector<uint32_t> next_;
    DenseMap<exf_client_key, ClientSums> client_sums_;
    std::vector<exf_client_key> client_order_;
};

unsigned possible_cpus();  // throws exf::Error
// A client's row from its per-CPU values (last_ns and first_ns: the max).
ClientRow sum_client(const exf_client_key &k, const exf_client_stats *per_cpu, unsigned ncpu);
// A flow's row from its table value.
FlowRow flow_row(const exf_flow_key &k, const exf_flow &f);
// Zeroes every slot of every CPU (test and replay resets).
void clear_fcache(int map_fd);
HealthCounters read_health(int map_fd);
std::string_view counter_name(unsigned idx);

// Client address and in/out direction helpers for a flow.
const uint8_t *flow_client_addr(const exf_flow_key &k, const exf_flow &f);
const uint8_t *flow_server_addr(const exf_flow_key &k, const exf_flow &f);
uint16_t flow_client_port(const exf_flow_key &k, const exf_flow &f);
uint16_t flow_server_port(const exf_flow_key &k, const exf_flow &f);
// Index into exf_flow.pkts/bytes of the client-to-server direction.
inline unsigned flow_in_dir(const exf_flow &f)
{
    return f.client == EXF_CLIENT_HI ? EXF_CDIR_HI_TO_LO : EXF_CDIR_LO_TO_HI;
}

}  // namespace exf
