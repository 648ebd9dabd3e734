// SPDX-License-Identifier: Apache-2.0
#pragma once
// The fleet's windows in the evaluator's memory (docs/fleet.md,
// "Evaluation"): every traffic row read once from ClickHouse (BatchFeed)
// is added here, per entity of the kinds the rules read, so that an
// evaluation reads no SQL at all.
//
// Per entity, cells of sums keyed by time, in three resolutions: one cell
// per period start (every sensor's rows of that period add up in it, as
// the SQL's GROUP BY did) for the last `exact_s`, so that a window that
// short is summed exactly; one cell per minute until `fine_s`; one per hour
// until `keep_s`. A window counts a minute or an hour cell it covers in
// part for the part it covers (the daemon's sliding estimate,
// docs/aggregation.md). Each cell holds the entity's running total up to
// it, so a window's sums cost two binary searches whatever its length.
// Distinct clients, subnets and sensors are each member's last time seen:
// a member counts when that time is in the window.
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "aggregate/entity_key.h"
#include "detect/figures.h"

namespace exf::fleet {

// One row of traffic (or of traffic_hourly: `hour`), the columns rules read.
struct FleetRow {
    uint32_t t_s = 0;  // its period's (or hour's) start
    bool hour = false;
    std::string sensor, client, subnet, cohort, sni, ja4;
    uint64_t bytes_in = 0, bytes_out = 0, tls_flows = 0, requests = 0;
    uint32_t peak_concurrent = 0;
};

class FleetWindows {
public:
    // How long cells keep each resolution (exact_s <= fine_s <= keep_s).
    struct Spans {
        uint64_t exact_s = 600;   // one cell per period
        uint64_t fine_s = 3600;   // then one per minute
        uint64_t keep_s = 90000;  // then one per hour; dropped after
    };
    // kinds: the entity kinds the rules read.
    FleetWindows(std::set<agg::EntityKind> kinds, Spans spans);

    // Rows added from now on are stamped updated at this time (the
    // evaluator's clock, ms): what for_each's since_ms compares with.
    void set_clock(uint64_t ms) { clock_ms_ = ms; }
    uint64_t clock_ms() const { return clock_ms_; }
    // Changes when values may move without an update: age() merges cells,
    // and a window's part of a merged cell differs from its periods'.
    uint64_t generation() const { return generation_; }

    void add(const FleetRow &row);

    // What a window's figures must hold beyond the sums: the peak of
    // concurrent flows, the distinct counts (each costs a pass over the
    // cells or the members).
    struct Need {
        bool peak = true, distinct = true;
    };
    struct Value {
        detect::Figures figures;
        uint64_t first_seen_s = 0;  // the first cell in the window
    };
    using Visit = std::function<void(const agg::EntityKey &, const Value &)>;
    // Every entity of the kind with traffic in [from_s, to_s) and updated at
    // or after since_ms; false for a kind not kept.
    bool for_each(agg::EntityKind kind, uint64_t from_s, uint64_t to_s, Need need,
                  uint64_t since_ms, const Visit &fn) const;
    std::optional<Value> find(agg::EntityKind kind, const agg::EntityKey &key, uint64_t from_s,
                              uint64_t to_s) const;

    // Merges cells into minutes and hours as they age, and drops those
    // older than keep_s, at now_s.
    void age(uint64_t now_s);

    bool keeps(agg::EntityKind kind) const { return kinds_.count(kind) > 0; }
    size_t entities() const;
    size_t cells() const { return cells_; }

    // bytes out, bytes in, TLS flows, requests.
    struct Sums {
        uint64_t bytes_out = 0, bytes_in = 0, tls_flows = 0, requests = 0;
        Sums &operator+=(const Sums &o);
        Sums operator-(const Sums &o) const;
    };

private:
    struct Cell {
        uint32_t t_s = 0;
        uint32_t len_s = 1;  // 1: a period start; 60: a minute; 3600: an hour
        uint32_t peak = 0;   // concurrent flows: the period's sum over sensors and keys
        Sums total;          // the entity's running total, this cell included
    };
    // Member (its name's 64-bit hash: no table of names that would grow with
    // every client ever seen; two names colliding is about n^2 / 2^65) ->
    // the last second it was seen in (an hour cell's last).
    using Members = std::unordered_map<uint64_t, uint32_t>;
    struct Entity {
        std::optional<agg::EntityKey> key;  // nullopt: a name no sensor writes
        std::vector<Cell> cells;            // by t_s
        Sums dropped;                       // the running total before cells[0]
        uint64_t updated_ms = 0;            // the clock when a row last came
        Members clients, subnets, sensors;
    };
    struct Kind {
        std::unordered_map<std::string, Entity> by_name;  // "k1\tk2"
    };

    size_t cell_at(Entity &e, uint32_t t_s, uint32_t len_s);
    static Value value(const Entity &e, uint64_t from_s, uint64_t to_s, Need need);
    static void coarsen(Entity &e, uint32_t before_s, uint32_t unit_s);
    static void drop_before(Entity &e, uint32_t before_s);

    std::set<agg::EntityKind> kinds_;
    Spans spans_;
    std::unordered_map<agg::EntityKind, Kind> by_kind_;
    size_t cells_ = 0;
    uint64_t clock_ms_ = 0, generation_ = 0;
};

// The entity kinds a set of rules reads.
std::set<agg::EntityKind> rule_kinds(const std::vector<detect::Rule> &rules);

}  // namespace exf::fleet
