// SPDX-License-Identifier: Apache-2.0
#pragma once
// The detection stage: evaluates the rules (detect/rules.h) against the
// aggregator at every evaluation and runs each alert's lifecycle.
//
// Lifecycle, per (rule, entity):
//   * the condition must hold for `sustain` consecutive evaluations; then the
//     alert opens (state open) with a new alert ID (16 hex digits, stable
//     through its updates and its resolution);
//   * while it holds, an update is sent at most every `realert`, with the
//     current figures and how many evaluations it held (count);
//   * once it has been false for `resolve_after` (or the entity expired), it
//     is resolved; a later crossing opens a new alert with a new ID.
//   One alert per (rule, entity) at a time: never a duplicate open.
//   Storms: when more than `storm_limit` alerts of one rule would open in one
//   evaluation, the heaviest storm_limit open as usual and the rest are
//   tracked muted (never sent, resolved silently); one summary record counts
//   them (suppressed) and names the heaviest. Beyond `max_open` tracked
//   alerts, new ones are only counted (stats().suppressed).
//   Allow-listed entities are evaluated but never alert (stats().allowed).
//   Shadow rules go through the same lifecycle; their records carry
//   shadow = true and the caller logs them instead of sending them.
//
// Baselines: per rule and entity, an EWMA of the window's value, folded once
// per window length (the first evaluation in each new fixed bucket of the
// window takes the sliding value then, i.e. about the last full window;
// missed windows fold as zeros), alpha = min(1, window / learn). The level is
// "learned" once the entity has been sampled for `learn`. While an alert of
// the rule is open for the entity the level is not updated, so the pull being
// alerted on does not become the norm.
//
// Values: the window's sliding estimate (aggregate/windows.h), except for an
// entity first seen less than one window ago: all its traffic is inside the
// window and the sum of the two buckets is exact.
//
// Clocks: now_ms is the aggregator's (monotonic live, packet time in replay);
// wall_ms the Unix time to stamp records with (the same as now_ms in replay).
//
// Single-threaded, like the aggregator: call everything from its thread.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "aggregate/aggregator.h"
#include "common/addr.h"
#include "detect/alert.h"
#include "detect/figures.h"
#include "detect/rules.h"

namespace exf {
class StateReader;
class StateWriter;
}  // namespace exf

namespace exf::detect {

struct DetectStats {
    uint64_t evaluations = 0;
    uint64_t opened = 0, updated = 0, resolved = 0;  // records produced (shadow included)
    uint64_t summaries = 0;
    uint64_t muted = 0;         // alerts left out of storms (counted in summaries)
    uint64_t suppressed = 0;    // not tracked: max_open reached
    uint64_t allowed = 0;       // crossings by allow-listed entities (evaluations)
    uint64_t open_now = 0;      // alerts open at the last evaluation
    uint64_t last_eval_us = 0;  // duration of the last evaluation
    // Entities the last evaluation looked at, summed over the rules: those
    // updated since the evaluation before, and those with an alert or
    // streak, unless every entity was due (detector.cpp, visits_all).
    uint64_t last_eval_entities = 0;
};

// An alert open now, for the live view (`exfilmon status`, `top`).
struct OpenAlert {
    std::string id;
    std::string rule;
    Severity severity = Severity::warning;
    bool shadow = false;                             // a shadow rule's: logged, never sent
    bool muted = false;                              // left out of a storm (counted in its summary)
    agg::EntityKind kind = agg::EntityKind::client;  // the rule's entity
    agg::EntityKey key;
    Metric metric = Metric::bytes_out;
    double value = 0, threshold = 0;  // at the last evaluation it held
    uint64_t opened_wall_ms = 0;      // Unix epoch ms it opened
    uint32_t count = 0;               // resume(): evaluations it held so far (0 taken as 1)
};

class Detector {
public:
    // Throws exf::Error when validate(cfg) finds problems.
    explicit Detector(DetectConfig cfg);
    ~Detector();
    Detector(Detector &&) noexcept;
    Detector &operator=(Detector &&) noexcept;

    // A new configuration: alerts and baselines of rules kept under the same
    // name, entity, metric and window carry on (thresholds, severity and
    // the rest take the new values); the others are dropped (their open
    // alerts are resolved at the next evaluation). When invalid: nothing
    // changes, false is returned and why holds the first problem.
    bool reconfigure(DetectConfig cfg, std::string &why);
    const DetectConfig &config() const;

    // A flow's ClientHello is known: tally its JA4 for the client's entities
    // (client, subnet, cohort, host, and with an SNI the API host and client x
    // API host), for the records' top JA4 lists.
    void on_tls(const agg::Aggregator &a, uint64_t now_ms, const Addr16 &client,
                std::string_view sni, std::string_view ja4);

    // Evaluates every rule now; returns the records to emit, in order.
    std::vector<AlertRecord> evaluate(const agg::Aggregator &a, uint64_t now_ms, uint64_t wall_ms);
    // The same over figures from elsewhere: the fleet's sums of all sensors
    // (fleet/fleet_figures.h). A rule the source cannot read now is skipped,
    // its alerts left as they are.
    std::vector<AlertRecord> evaluate(FigureSource &src, uint64_t now_ms, uint64_t wall_ms);

    // An alert a previous run opened (the fleet evaluator reads them back
    // from its alerts table): tracked as open, with its ID, under the rule of
    // that name, entity and metric, so that it is updated and resolved and
    // never opened twice. It resolves after resolve_after unless it holds
    // again. False when no such rule is configured or the entity is tracked
    // already.
    bool resume(const OpenAlert &a, uint64_t now_ms);

    // --- state file (state/state_file.h) ---------------------------------
    // Alerts (open with their IDs, and pending ones), baselines. Restored,
    // they carry on under the rules of the same name, entity, metric and
    // window (as reconfigure() does); the open alerts of rules no longer
    // configured resolve at the next evaluation. The JA4 tallies and the
    // statistics start over. Throws exf::Error on bad input, changing nothing.
    void save_state(StateWriter &w) const;
    void restore_state(StateReader &r);

    const DetectStats &stats() const;
    size_t memory_bytes() const;
    // Every alert open now (muted and shadow ones included), by rule in
    // configuration order, oldest first within a rule. Read-only; O(tracked).
    std::vector<OpenAlert> open_alerts() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace exf::detect
