// SPDX-License-Identifier: Apache-2.0
#pragma once
// What the fleet evaluator reads from ClickHouse into its windows
// (fleet/fleet_windows.h), each batch once (docs/fleet.md, "Evaluation").
//
// A batch is one sensor's rows of one period. A sensor sends a closed
// period as the same bytes however often it sends it (docs/fleet.md, "What
// is guaranteed"), so a batch is known by (sensor, period start): once read,
// a copy sent again adds nothing. Which batches exist is a cheap read of the
// table's first two key columns, without FINAL; each new batch is then read
// with FINAL, so that a copy not yet merged away counts once.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "fleet/clickhouse.h"
#include "fleet/fleet_windows.h"

namespace exf::fleet {

class BatchFeed {
public:
    BatchFeed(ClickHouse &ch, std::string database);

    // Reads [from_s, to_s) into `windows`: whole hours before raw_from_s
    // from traffic_hourly (which must hold them), the rest from traffic.
    // Periods before raw_from_s are never read again: their batches are in
    // the hours read.
    Reply rebuild(FleetWindows &windows, uint64_t from_s, uint64_t raw_from_s, uint64_t to_s);

    // Reads the batches of periods starting in [since_s, until_s) that
    // were not read yet (a period stamped later, by a sensor whose clock is
    // ahead, is read once its time comes). On a failure, what was read
    // stays read; the rest is read by a later call.
    Reply poll(FleetWindows &windows, uint64_t since_s, uint64_t until_s);

    // Forgets the batches of periods before before_s (they are out of every
    // window; a late copy of one would be dropped by the windows anyway).
    void forget_before(uint64_t before_s);

    uint64_t batches_read() const { return batches_read_; }
    uint64_t rows_read() const { return rows_read_; }

private:
    Reply read_rows(FleetWindows &windows, const std::string &sql, bool note_batches);
    uint64_t batch_id(const std::string &sensor, uint64_t period_s);

    ClickHouse &ch_;
    std::string db_;
    uint64_t floor_s_ = 0;  // periods before it came with the rollup's hours
    std::unordered_map<std::string, uint32_t> sensor_ids_;
    std::unordered_set<uint64_t> read_;  // batch_id of every batch read
    uint64_t batches_read_ = 0, rows_read_ = 0;
};

}  // namespace exf::fleet
