// SPDX-License-Identifier: Apache-2.0
#pragma once
// What a sensor sends to the fleet: per period of [fleet] interval, one row
// per (client, API host, JA4) that had traffic (docs/fleet.md, "traffic").
// Periods are aligned to the epoch (a 10 s period starts at a multiple of
// 10 s of wall-clock time), so that every sensor's rows of one period share
// its start. A row's client, subnet and cohort are the aggregator's keys,
// so that each entity of [[rules]] is a sum over rows.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "aggregate/aggregator.h"
#include "common/addr.h"
#include "common/state_codec.h"

namespace exf::fleet {

// The names a client address takes in the rows.
struct ClientNames {
    std::string client;  // "203.0.113.7", "2001:db8:1:2::/64"
    std::string subnet;  // "203.0.113.0/24"
    std::string cohort;  // "" when in none
};
using NameClient = std::function<ClientNames(const Addr16 &client)>;

struct TrafficRow {
    uint64_t period_start_ms = 0;
    uint32_t period_ms = 0;
    ClientNames names;
    std::string sni, ja4;
    agg::Traffic traffic;          // flows_opened: TLS flows opened in the period
    uint32_t peak_concurrent = 0;  // flows open at once, at most, in the period
};

class PeriodTable {
public:
    // period_ms > 0. name_client gives each client address its names; it is
    // called once per row, when the period closes.
    PeriodTable(uint32_t period_ms, NameClient name_client);

    // Traffic, and flows opening and closing, at wall-clock time now_ms.
    // Times that go back (a clock step) count in the open period.
    void add(uint64_t now_ms, const Addr16 &client, std::string_view sni, std::string_view ja4,
             const agg::Traffic &t);
    void flow_opened(uint64_t now_ms, const Addr16 &client, std::string_view sni,
                     std::string_view ja4);
    void flow_closed(uint64_t now_ms, const Addr16 &client, std::string_view sni,
                     std::string_view ja4);

    // The rows of the open period when it ended at or before now_ms (empty
    // otherwise), in a fixed order (client address, SNI, JA4). Each period
    // is returned once; the next one starts at the period now_ms is in.
    // Addresses whose names are the same (a client prefix or cohort changed
    // by a reload within the period) make one row: two rows with one key
    // would count once in the table (docs/fleet.md, "Why the key is the
    // whole row"). Their sums add up, and so do their peaks.
    std::vector<TrafficRow> close_due(uint64_t now_ms);
    uint64_t open_period_start_ms() const { return start_ms_; }
    uint32_t period_ms() const { return period_ms_; }

    // The open period (its start and every key's sums and open flows), for
    // the daemon's state file: restored, counting goes on where it was.
    // restore() throws exf::Error on bad input, changing nothing; the
    // period length stays this table's.
    void save(StateWriter &w) const;
    void restore(StateReader &r);

private:
    using Key = std::tuple<Addr16, std::string, std::string>;
    struct Entry {
        agg::Traffic traffic;
        uint32_t open = 0;  // flows open now
        uint32_t peak = 0;  // ... at most in the open period
        bool traffic_seen = false;
    };
    Entry &at(uint64_t now_ms, const Addr16 &client, std::string_view sni, std::string_view ja4);
    uint64_t period_of(uint64_t ms) const { return ms - ms % period_ms_; }

    uint32_t period_ms_;
    NameClient name_client_;
    uint64_t start_ms_ = 0;  // the open period's start; 0 before any input
    std::map<Key, Entry> entries_;
};

// JSONEachRow lines for <database>.traffic, each row as one object with the
// sensor's name: what fleet/clickhouse inserts.
std::string to_json_rows(const std::vector<TrafficRow> &rows, const std::string &sensor);

}  // namespace exf::fleet
