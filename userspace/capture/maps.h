#pragma once
// Reading the sensor's maps from userspace.
#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "capture/shared_layout.h"

namespace exf {

struct ClientRow {
    exf_client_key key;
    exf_client_stats stats;  // summed over CPUs; last_ns is the max
};

struct FlowRow {
    exf_flow_key key;
    exf_flow flow;
};

using HealthCounters = std::array<uint64_t, EXF_C__MAX>;

// Whole per-client table, per-CPU values summed. Uses bpf_map_lookup_batch,
// falling back to key iteration where batching is unsupported.
std::vector<ClientRow> read_clients(int map_fd);
std::vector<FlowRow> read_flows(int map_fd);
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
