// SPDX-License-Identifier: Apache-2.0
#pragma once
// What the detector evaluates rules over: each entity's figures over a
// rule's window. The daemon's come from its own aggregator (the detector
// reads them through Detector::evaluate(const agg::Aggregator &...)); the
// fleet evaluator's are the sums of all sensors, read from ClickHouse
// (fleet/fleet_figures.h). The same detector runs the lifecycle either way.
#include <cstdint>
#include <functional>
#include <optional>

#include "aggregate/aggregator.h"
#include "aggregate/entity_key.h"
#include "detect/alert.h"
#include "detect/rules.h"

namespace exf::detect {

struct Figures {
    agg::WindowValue window;        // over the rule's window
    uint32_t distinct_sensors = 0;  // edge hosts the entity's traffic went through
    uint64_t updated_ms = 0;        // its last update on the source's clock (SourceMark)
};

// Where a source stood at an evaluation, so that the next one may visit
// only the entities updated since (the detector's visits_all).
struct SourceMark {
    uint64_t clock_ms = 0;    // entities updated at or after it count as updated since
    uint64_t generation = 0;  // changes when values may move without an update
};

class FigureSource {
public:
    virtual ~FigureSource() = default;
    using Visit = std::function<void(const agg::EntityKey &, const Figures &)>;
    // Every entity of the rule's kind that may hold the rule, with its
    // figures over the rule's window at now_ms. False when the rule cannot
    // be evaluated now (a window the source does not keep, a failed read):
    // its alerts are then left as they are.
    virtual bool for_each(const Rule &rule, uint64_t now_ms, const Visit &fn) = 0;
    // Where the source stands now; nullopt for a source that cannot tell
    // which entities were updated (the fleet's sums): every evaluation then
    // visits every entity.
    virtual std::optional<SourceMark> mark() const { return std::nullopt; }
    // As for_each, for the entities updated at or after since_ms (a
    // SourceMark's clock) only.
    virtual bool for_each_updated(const Rule &rule, uint64_t now_ms, uint64_t since_ms,
                                  const Visit &fn)
    {
        (void)since_ms;
        return for_each(rule, now_ms, fn);
    }
    // One entity's figures at now_ms; nullopt when the source no longer
    // holds it.
    virtual std::optional<Figures> find(const Rule &rule, const agg::EntityKey &key,
                                        uint64_t now_ms) = 0;
    // What an alert record says beyond the figures: first seen, top SNIs
    // and, for the fleet, its scope, top JA4 and the sensors with their
    // shares. Called only for an entity find() returned.
    virtual void describe(const Rule &rule, const agg::EntityKey &key, uint64_t now_ms,
                          uint64_t wall_ms, AlertRecord &r) = 0;
};

// The value of a rule's metric in these figures.
double metric_value(Metric m, const Figures &f);

}  // namespace exf::detect
