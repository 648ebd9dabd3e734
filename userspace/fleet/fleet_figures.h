// SPDX-License-Identifier: Apache-2.0
#pragma once
// The fleet's figures for the detector (detect/figures.h): every rule's
// entities summed over all sensors in ClickHouse (fleet/rule_sql.h), so the
// daemon's detector runs the fleet's lifecycle unchanged. Alert records get
// scope "fleet", the number of sensors and each sensor's share of the bytes.
#include <cstdint>
#include <map>
#include <string>

#include "detect/figures.h"
#include "fleet/clickhouse.h"
#include "fleet/fleet_windows.h"
#include "fleet/rule_sql.h"

namespace exf::fleet {

class FleetFigures final : public detect::FigureSource {
public:
    // min_scale: the smallest [sni_overrides] scale (1 when none is lower).
    FleetFigures(ClickHouse &ch, std::string database, double min_scale);

    // Whole hours before this are in traffic_hourly (the rollup's progress).
    void set_rolled_to(uint64_t hour_s) { rolled_to_s_ = hour_s; }

    // Figures from the evaluator's own windows rather than one query per
    // rule ([fleet] evaluation = "memory"); nullptr: from SQL. `fresh`
    // false (the windows could not be brought up to date): every rule is
    // skipped, as a failed read skips it.
    void use_windows(const FleetWindows *windows, bool fresh, const std::string &why)
    {
        windows_ = windows;
        windows_fresh_ = fresh;
        windows_why_ = why;
    }

    bool for_each(const detect::Rule &rule, uint64_t now_ms, const Visit &fn) override;
    // From the windows in memory only: which entities were updated.
    std::optional<detect::SourceMark> mark() const override;
    bool for_each_updated(const detect::Rule &rule, uint64_t now_ms, uint64_t since_ms,
                          const Visit &fn) override;
    std::optional<detect::Figures> find(const detect::Rule &rule, const agg::EntityKey &key,
                                        uint64_t now_ms) override;
    void describe(const detect::Rule &rule, const agg::EntityKey &key, uint64_t now_ms,
                  uint64_t wall_ms, detect::AlertRecord &r) override;

    // The rules whose reads failed since clear_failures(), each with the
    // first failure's reason: a failed rule read skips the rule (its alerts
    // stay as they were), a failed breakdown leaves an alert record without
    // its sensors, SNIs or JA4. The evaluator logs and counts them.
    const std::map<std::string, std::string> &failed_rules() const { return failed_; }
    void clear_failures() { failed_.clear(); }

private:
    struct Entity {
        detect::Figures figures;
        uint64_t first_seen_s = 0;
    };
    struct KeyLess {
        bool operator()(const agg::EntityKey &a, const agg::EntityKey &b) const;
    };
    using Rows = std::map<agg::EntityKey, Entity, KeyLess>;
    std::optional<Rows> read(const detect::Rule &rule, const Span &span,
                             const agg::EntityKey *only);
    std::vector<std::pair<std::string, uint64_t>> breakdown(const detect::Rule &rule,
                                                            const agg::EntityKey &key,
                                                            uint64_t now_ms, Breakdown by,
                                                            size_t limit);
    const Entity *cached(const detect::Rule &rule, const agg::EntityKey &key) const;
    bool windows_ready(const detect::Rule &rule);
    bool for_each_in_windows(const detect::Rule &rule, uint64_t now_ms, uint64_t since_ms,
                             const Visit &fn);

    ClickHouse &ch_;
    std::string db_;
    double min_scale_;
    uint64_t rolled_to_s_ = 0;
    const FleetWindows *windows_ = nullptr;
    bool windows_fresh_ = false;
    std::string windows_why_;
    void failed(const detect::Rule &rule, const Reply &r) { failed_.emplace(rule.name, r.why); }

    std::map<std::string, Rows> by_rule_;  // this evaluation's rows, per rule name
    std::map<std::string, std::string> failed_;
};

}  // namespace exf::fleet
