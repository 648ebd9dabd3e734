// SPDX-License-Identifier: Apache-2.0
#pragma once
// Per-harvest deltas from the kernel's cumulative counters (read and diff:
// nothing is lost between read and reset because nothing is reset):
//   Harvester: per client, from the client table;
//   FlowHarvester: per TLS/QUIC flow, from the flow table.
// HarvestStage (harvest_stage.h) combines both into aggregator inputs.
#include <cstdint>
#include <functional>
#include <vector>

#include "capture/maps.h"
#include "common/addr.h"
#include "common/dense_map.h"
#include "common/state_codec.h"

namespace exf {

struct ClientDelta {
    Addr16 client;
    exf_client_stats delta;  // counters added since the previous harvest
    exf_client_stats total;  // the kernel's cumulative counters
};

class Harvester {
public:
    // Returns the clients whose counters moved since the previous call. The
    // first call after a start reports the kernel totals as they are: with
    // maps taken over from an earlier run, the caller restores (restore())
    // or primes (HarvestStage::prime) first, so that they are not new.
    std::vector<ClientDelta> harvest(const std::vector<ClientRow> &rows);
    // The same from part of the table: the rows that changed, and the
    // clients known to have left it. The others are as last accounted.
    std::vector<ClientDelta> harvest_changed(const std::vector<ClientRow> &rows,
                                             const std::vector<exf_client_key> &gone);
    size_t tracked() const { return last_.size(); }
    // The counters as accounted, for the state file: restored, the next
    // harvest reports only what the kernel counted since they were saved.
    void save(StateWriter &w) const;
    void restore(StateReader &r);  // throws exf::Error; replaces what is tracked

private:
    struct Last {
        exf_client_stats stats;  // as last accounted
        uint64_t stamp;          // the harvest that last saw the client
    };
    // Accounts one row (stamping it; seen counts the clients stamped);
    // true with d filled when it moved.
    bool account(const ClientRow &r, uint64_t stamp, size_t &seen, ClientDelta &d);
    // Updated in place (no table rebuilt per harvest); clients missing from
    // a harvest's rows are dropped at its end.
    DenseMap<Addr16, Last> last_;
    uint64_t stamp_ = 0;
};

// Per-flow deltas of TLS/QUIC flows from the flow table, for attributing
// traffic to API hosts (SNI). A flow is known by its key and first-seen time
// (a reused 5-tuple is a new flow).
struct FlowDelta {
    exf_flow_key key;
    exf_flow flow;  // the table's current value (gone: the last one read)
    uint64_t bytes_in = 0, bytes_out = 0, pkts_in = 0, pkts_out = 0;
    uint64_t requests = 0;  // client turns (exf_flow.requests)
    bool opened = false;    // first time this flow is seen
    // Its end is new: FIN both ways or RST; or no packet for idle_ns (an
    // idle close); or it left the table (LRU eviction, a reused 5-tuple)
    // without either. Concurrency counts it closed from flow.last_ns.
    bool closed = false;
    bool resumed = false;  // packets again after an idle close: open again (not a new flow)
    bool pending = false;  // not ready: reported again next time
};

class FlowHarvester {
public:
    // ready(row) false: the flow is not attributable yet (its ClientHello is
    // still on its way); its delta is reported with pending = true and kept
    // for the next harvest, so nothing is attributed twice or lost.
    // now_ns (the flows' clock) and idle_ns > 0 enable idle closes.
    std::vector<FlowDelta> harvest(const std::vector<FlowRow> &rows,
                                   const std::function<bool(const FlowRow &)> &ready,
                                   uint64_t now_ns = 0, uint64_t idle_ns = 0);
    // The same from part of the table: the rows that changed, and the flows
    // known to have left it; the others are as last accounted. Idle closes
    // are found among the rows given (a full harvest finds the others).
    std::vector<FlowDelta> harvest_changed(const std::vector<FlowRow> &rows,
                                           const std::vector<exf_flow_key> &gone,
                                           const std::function<bool(const FlowRow &)> &ready,
                                           uint64_t now_ns = 0, uint64_t idle_ns = 0);
    size_t tracked() const { return last_.size(); }
    // As Harvester's: the flows as accounted.
    void save(StateWriter &w) const;
    void restore(StateReader &r);  // throws exf::Error; replaces what is tracked

private:
    struct Seen {
        exf_flow flow;   // as last accounted
        bool closed;     // its end was reported
        bool idle;       // ... as an idle close
        uint64_t stamp;  // the harvest that last saw the flow in the table
    };
    struct Pass;  // one harvest's context (deltas.cpp)
    void account(const FlowRow &r, Pass &pass);
    void end_missing(Pass &pass);
    // Updated in place; flows missing from a harvest's rows (or whose
    // 5-tuple holds a new flow) are ended and dropped during that harvest.
    DenseMap<exf_flow_key, Seen> last_;
    std::vector<FlowRow> pending_;  // reported pending by the last harvest
    uint64_t stamp_ = 0;
};

}  // namespace exf
