// SPDX-License-Identifier: Apache-2.0
#pragma once
// Reading what changed in the sensor's tables since the previous read,
// through the datapath's change log (struct exf_change_ctl): the cost of a
// read follows the entries that changed, not the size of the tables.
#include <cstdint>
#include <vector>

#include "capture/maps.h"

namespace exf {

class BpfSensor;

struct TableChanges {
    // full: `tables` holds the whole tables (the first read, a log that
    // overflowed, evictions that may have happened, or the periodic full
    // read for flows that went idle). Otherwise it holds the entries that
    // changed, with the flow cache folded in as read_tables does.
    bool full = true;
    Tables tables;
    // Logged entries no longer in the table (evicted, or a 5-tuple reused).
    std::vector<exf_flow_key> flows_gone;
    std::vector<exf_client_key> clients_gone;
    // Entries in the tables: counted at full reads, then followed by the
    // datapath's creation counters (any possible eviction makes the read a
    // full one). Entries created during a full read may be counted twice
    // (evictions then lag, never lead) until a full read of quiet tables.
    uint64_t flow_entries = 0, client_entries = 0;
    // What this read cost, for the benchmarks.
    uint64_t keys_read = 0;
};

class ChangeReader {
public:
    // Full reads come at least every full_every reads (0: only when needed).
    explicit ChangeReader(const BpfSensor &sensor, unsigned full_every = 60);
    ~ChangeReader();
    ChangeReader(const ChangeReader &) = delete;
    ChangeReader &operator=(const ChangeReader &) = delete;

    // Starts a new epoch and reads what changed before it.
    TableChanges read();

private:
    struct LoggedKeys {
        std::vector<exf_flow_key> flows;
        std::vector<exf_client_key> clients;
        bool overflow = false;
    };
    uint32_t next_epoch();
    LoggedKeys logged_keys(uint32_t epoch) const;
    void take_buffer(uint32_t buf, LoggedKeys &keys) const;
    bool full_read_due(const LoggedKeys &keys, uint64_t flows_new, uint64_t clients_new) const;
    void read_full(TableChanges &out);
    void read_changed(const LoggedKeys &keys, TableChanges &out);
    std::vector<uint32_t> touched_slots(const std::vector<exf_flow_key> &flows) const;
    std::vector<exf_fc_slot> read_slots(const std::vector<uint32_t> &slots) const;
    void read_clients_by_key(const std::vector<exf_client_key> &keys, TableChanges &out) const;
    void read_flows_by_key(const std::vector<exf_flow_key> &keys, TableChanges &out) const;
    void fold_cache(TableChanges &out) const;

    const BpfSensor &sensor_;
    unsigned ncpu_;
    unsigned full_every_;
    unsigned since_full_ = 0;
    bool first_ = true;
    bool recount_ = false;           // the last full read's entry counts may be off
    exf_change_ctl *ctl_ = nullptr;  // mapped
    const exf_flow_key *log_ = nullptr;
    size_t ctl_bytes_ = 0, log_bytes_ = 0;
    uint32_t cap_ = 0;
    uint32_t flow_capacity_ = 0, client_capacity_ = 0;
    // Every CPU's flow cache slots as last read (slot * ncpu + cpu; unused
    // where the reads disagreed): a slot changes only with its flow, so
    // only the slots of logged flows are read again.
    std::vector<exf_fc_slot> cache_;
    // The creation counters and entry counts at the last read.
    uint64_t flows_created_ = 0, clients_created_ = 0;
    uint64_t flow_entries_ = 0, client_entries_ = 0;
};

}  // namespace exf
