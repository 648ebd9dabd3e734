// SPDX-License-Identifier: Apache-2.0
#include "fleet/fleet_figures.h"

#include <algorithm>
#include <tuple>

namespace exf::fleet {

namespace {

constexpr size_t kMaxSensors = 16;  // AlertRecord::sensors
constexpr size_t kTop = 4;          // top SNIs and JA4, as the daemon's records

uint64_t number(const std::string &s)
{
    try {
        return std::stoull(s);
    } catch (...) {
        return 0;
    }
}

// Whether an entity with these figures can hold the rule: what rule_sql's
// HAVING keeps. A threshold rule without a baseline needs its threshold
// (times the smallest SNI override scale below 1); a baseline rule learns
// from every entity. An open alert below it is read with find().
bool may_hold(const detect::Rule &rule, const detect::Figures &f, double min_scale)
{
    if (!rule.threshold || rule.baseline)
        return true;
    if (rule.metric == detect::Metric::out_in_ratio &&
        double(f.window.bytes_out) < rule.min_bytes_out)
        return false;
    return detect::metric_value(rule.metric, f) >= *rule.threshold * std::min(1.0, min_scale);
}

}  // namespace

bool FleetFigures::KeyLess::operator()(const agg::EntityKey &a, const agg::EntityKey &b) const
{
    return std::tie(a.addr, a.prefix, a.name) < std::tie(b.addr, b.prefix, b.name);
}

FleetFigures::FleetFigures(ClickHouse &ch, std::string database, double min_scale)
    : ch_(ch), db_(std::move(database)), min_scale_(min_scale)
{}

std::optional<FleetFigures::Rows> FleetFigures::read(const detect::Rule &rule, const Span &span,
                                                     const agg::EntityKey *only)
{
    Reply r = ch_.query(rule_sql(db_, rule, span, min_scale_, only));
    if (!r.ok()) {
        failed(rule, r);
        return std::nullopt;
    }
    Rows rows;
    for (auto &f : tsv_rows(r.body)) {
        if (f.size() < 11)
            continue;
        auto key = entity_key(rule.entity, f[0], f[1]);
        if (!key)
            continue;  // a row no sensor of this version writes: nothing to alert on
        Entity e;
        auto &w = e.figures.window;
        w.bytes_out = number(f[2]);
        w.bytes_in = number(f[3]);
        w.tls_flows = number(f[4]);
        w.peak_concurrent = uint32_t(std::min<uint64_t>(number(f[5]), UINT32_MAX));
        w.distinct_clients = uint32_t(std::min<uint64_t>(number(f[6]), UINT32_MAX));
        e.figures.distinct_sensors = uint32_t(std::min<uint64_t>(number(f[7]), UINT32_MAX));
        e.first_seen_s = number(f[8]);
        w.distinct_subnets = uint32_t(std::min<uint64_t>(number(f[9]), UINT32_MAX));
        w.requests = number(f[10]);
        rows.emplace(std::move(*key), e);
    }
    return rows;
}

bool FleetFigures::windows_ready(const detect::Rule &rule)
{
    if (!windows_fresh_)
        failed_.emplace(rule.name, windows_why_);
    return windows_fresh_;
}

bool FleetFigures::for_each_in_windows(const detect::Rule &rule, uint64_t now_ms, uint64_t since_ms,
                                       const Visit &fn)
{
    if (!windows_ready(rule))
        return false;
    auto span = rule_span(rule.window_ms, now_ms, rolled_to_s_);
    FleetWindows::Need need;
    need.peak = rule.metric == detect::Metric::concurrent_flows;
    need.distinct = rule.metric == detect::Metric::distinct_clients ||
                    rule.metric == detect::Metric::distinct_subnets ||
                    rule.metric == detect::Metric::distinct_sensors;
    return windows_->for_each(rule.entity, span.from_s, span.to_s, need, since_ms,
                              [&](const agg::EntityKey &key, const FleetWindows::Value &v) {
                                  if (may_hold(rule, v.figures, min_scale_))
                                      fn(key, v.figures);
                              });
}

std::optional<detect::SourceMark> FleetFigures::mark() const
{
    if (!windows_)
        return std::nullopt;
    return detect::SourceMark{windows_->clock_ms(), windows_->generation()};
}

bool FleetFigures::for_each_updated(const detect::Rule &rule, uint64_t now_ms, uint64_t since_ms,
                                    const Visit &fn)
{
    if (windows_)
        return for_each_in_windows(rule, now_ms, since_ms, fn);
    return for_each(rule, now_ms, fn);
}

bool FleetFigures::for_each(const detect::Rule &rule, uint64_t now_ms, const Visit &fn)
{
    if (windows_)
        return for_each_in_windows(rule, now_ms, 0, fn);
    by_rule_.erase(rule.name);
    auto rows = read(rule, rule_span(rule.window_ms, now_ms, rolled_to_s_), nullptr);
    if (!rows)
        return false;
    auto &kept = by_rule_.insert_or_assign(rule.name, std::move(*rows)).first->second;
    for (auto &[key, e] : kept)
        fn(key, e.figures);
    return true;
}

const FleetFigures::Entity *FleetFigures::cached(const detect::Rule &rule,
                                                 const agg::EntityKey &key) const
{
    auto r = by_rule_.find(rule.name);
    if (r == by_rule_.end())
        return nullptr;
    auto e = r->second.find(key);
    return e == r->second.end() ? nullptr : &e->second;
}

std::optional<detect::Figures> FleetFigures::find(const detect::Rule &rule,
                                                  const agg::EntityKey &key, uint64_t now_ms)
{
    if (windows_) {
        auto span = rule_span(rule.window_ms, now_ms, rolled_to_s_);
        auto v = windows_->find(rule.entity, key, span.from_s, span.to_s);
        return v ? std::optional(v->figures) : std::nullopt;
    }
    if (auto *e = cached(rule, key))
        return e->figures;
    // Below the rule's threshold (left out of its read): this entity alone.
    auto rows = read(rule, rule_span(rule.window_ms, now_ms, rolled_to_s_), &key);
    if (!rows || rows->empty())
        return std::nullopt;
    by_rule_[rule.name].insert(*rows->begin());
    return rows->begin()->second.figures;
}

std::vector<std::pair<std::string, uint64_t>> FleetFigures::breakdown(const detect::Rule &rule,
                                                                      const agg::EntityKey &key,
                                                                      uint64_t now_ms, Breakdown by,
                                                                      size_t limit)
{
    auto span = rule_span(rule.window_ms, now_ms, rolled_to_s_);
    Reply r = ch_.query(breakdown_sql(db_, rule, span, key, by, limit));
    std::vector<std::pair<std::string, uint64_t>> out;
    if (!r.ok()) {
        failed(rule, r);
        return out;
    }
    for (auto &f : tsv_rows(r.body))
        if (f.size() >= 2)
            out.emplace_back(f[0], number(f[1]));
    return out;
}

void FleetFigures::describe(const detect::Rule &rule, const agg::EntityKey &key, uint64_t now_ms,
                            uint64_t, detect::AlertRecord &r)
{
    r.scope = "fleet";
    if (windows_) {
        auto span = rule_span(rule.window_ms, now_ms, rolled_to_s_);
        if (auto v = windows_->find(rule.entity, key, span.from_s, span.to_s)) {
            r.distinct_sensors = v->figures.distinct_sensors;
            r.first_seen_ms = v->first_seen_s * 1000;
        }
    } else if (auto *e = cached(rule, key)) {
        r.distinct_sensors = e->figures.distinct_sensors;
        r.first_seen_ms = e->first_seen_s * 1000;
    }
    for (auto &[name, bytes] : breakdown(rule, key, now_ms, Breakdown::sensor, kMaxSensors))
        r.sensors.push_back({name, bytes, r.bytes_out ? double(bytes) / double(r.bytes_out) : 0.0});
    if (rule.entity == agg::EntityKind::api_host ||
        rule.entity == agg::EntityKind::client_api_host) {
        r.top_snis.push_back({key.name, r.bytes_out});
    } else {
        for (auto &[name, bytes] : breakdown(rule, key, now_ms, Breakdown::sni, kTop))
            r.top_snis.push_back({name, bytes});
    }
    for (auto &[name, flows] : breakdown(rule, key, now_ms, Breakdown::ja4, kTop))
        r.top_ja4.push_back({name, flows});
}

}  // namespace exf::fleet
