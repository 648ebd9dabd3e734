// SPDX-License-Identifier: Apache-2.0
#include "fleet/fleet_windows.h"

#include <algorithm>

#include "fleet/rule_sql.h"

namespace exf::fleet {

namespace {

constexpr uint32_t kHourS = 3600;

// The entity a row counts for in a kind, as "k1\tk2" (the columns
// rule_sql's kind_columns names); nullopt when it counts for none (no SNI,
// no cohort, no JA4).
std::optional<std::string> entity_name(agg::EntityKind kind, const FleetRow &r)
{
    switch (kind) {
    case agg::EntityKind::client: return r.client + '\t';
    case agg::EntityKind::subnet: return r.subnet + '\t';
    case agg::EntityKind::api_host:
        return r.sni.empty() ? std::nullopt : std::optional(r.sni + '\t');
    case agg::EntityKind::client_api_host:
        return r.sni.empty() ? std::nullopt : std::optional(r.client + '\t' + r.sni);
    case agg::EntityKind::cohort:
        return r.cohort.empty() ? std::nullopt : std::optional(r.cohort + '\t');
    case agg::EntityKind::host: return std::string("\t");
    case agg::EntityKind::ja4: return r.ja4.empty() ? std::nullopt : std::optional(r.ja4 + '\t');
    case agg::EntityKind::ja4_sni:
        return r.ja4.empty() || r.sni.empty() ? std::nullopt : std::optional(r.ja4 + '\t' + r.sni);
    }
    return std::nullopt;
}

std::optional<agg::EntityKey> parse_name(agg::EntityKind kind, const std::string &name)
{
    size_t tab = name.find('\t');
    return entity_key(kind, name.substr(0, tab), name.substr(tab + 1));
}

void seen(std::unordered_map<uint32_t, uint32_t> &members, uint32_t id, uint32_t last_s)
{
    auto [it, added] = members.emplace(id, last_s);
    if (!added)
        it->second = std::max(it->second, last_s);
}

// The members last seen at or after from_s: those with traffic in a window
// that ends now (no sensor sends a period that has not started).
uint32_t count_since(const std::unordered_map<uint32_t, uint32_t> &members, uint64_t from_s)
{
    uint32_t n = 0;
    for (auto &m : members)
        n += m.second >= from_s ? 1 : 0;
    return n;
}

// x * num / den (num <= den), without overflow for the sums an hour cell holds.
uint64_t part_of(uint64_t x, uint64_t num, uint64_t den)
{
    return x / den * num + x % den * num / den;
}

}  // namespace

std::set<agg::EntityKind> rule_kinds(const std::vector<detect::Rule> &rules)
{
    std::set<agg::EntityKind> kinds;
    for (auto &r : rules)
        kinds.insert(r.entity);
    return kinds;
}

FleetWindows::FleetWindows(std::set<agg::EntityKind> kinds, uint64_t fine_s, uint64_t keep_s)
    : kinds_(std::move(kinds)), fine_s_(fine_s), keep_s_(keep_s)
{}

uint32_t FleetWindows::id_of(std::unordered_map<std::string, uint32_t> &ids,
                             const std::string &name)
{
    return ids.emplace(name, uint32_t(ids.size())).first->second;
}

FleetWindows::Cell &FleetWindows::cell_at(Entity &e, uint32_t t_s, bool hour)
{
    // Rows come mostly in time order: look from the back.
    auto it = e.cells.end();
    while (it != e.cells.begin() && (it - 1)->t_s > t_s)
        --it;
    if (it != e.cells.begin() && (it - 1)->t_s == t_s && (it - 1)->hour == hour)
        return *(it - 1);
    Cell c;
    c.t_s = t_s;
    c.hour = hour;
    cells_++;
    return *e.cells.insert(it, c);
}

void FleetWindows::add(const FleetRow &row)
{
    uint32_t last_s = row.hour ? row.t_s + kHourS - 1 : row.t_s;
    uint32_t client = id_of(client_ids_, row.client), subnet = id_of(subnet_ids_, row.subnet),
             sensor = id_of(sensor_ids_, row.sensor);
    for (auto kind : kinds_) {
        auto name = entity_name(kind, row);
        if (!name)
            continue;
        auto [it, created] = by_kind_[kind].by_name.try_emplace(*name);
        Entity &e = it->second;
        if (created)
            e.key = parse_name(kind, *name);
        if (!e.key)
            continue;  // nothing to alert on: a row this version's sensors never write
        Cell &c = cell_at(e, row.t_s, row.hour);
        c.bytes_out += row.bytes_out;
        c.bytes_in += row.bytes_in;
        c.tls_flows += row.tls_flows;
        c.requests += row.requests;
        c.peak += row.peak_concurrent;
        seen(e.clients, client, last_s);
        seen(e.subnets, subnet, last_s);
        seen(e.sensors, sensor, last_s);
    }
}

FleetWindows::Value FleetWindows::value(const Entity &e, uint64_t from_s, uint64_t to_s)
{
    Value v;
    auto &w = v.figures.window;
    // An hour cell that began up to an hour before from_s still counts in part.
    uint64_t earliest = from_s - std::min<uint64_t>(from_s, kHourS - 1);
    auto first = std::lower_bound(e.cells.begin(), e.cells.end(), earliest,
                                  [](const Cell &c, uint64_t t) { return c.t_s < t; });
    bool any = false;
    for (auto it = first; it != e.cells.end() && it->t_s < to_s; ++it) {
        uint64_t start = it->t_s, end = it->hour ? start + kHourS : start + 1;
        if (end <= from_s)
            continue;
        uint64_t covered = std::min(end, to_s) - std::max<uint64_t>(start, from_s);
        uint64_t len = end - start;
        if (!any)
            v.first_seen_s = std::max<uint64_t>(start, from_s);
        any = true;
        w.bytes_out += part_of(it->bytes_out, covered, len);
        w.bytes_in += part_of(it->bytes_in, covered, len);
        w.tls_flows += part_of(it->tls_flows, covered, len);
        w.requests += part_of(it->requests, covered, len);
        w.peak_concurrent = std::max(w.peak_concurrent, it->peak);
    }
    if (!any)
        return v;
    w.distinct_clients = count_since(e.clients, from_s);
    w.distinct_subnets = count_since(e.subnets, from_s);
    v.figures.distinct_sensors = count_since(e.sensors, from_s);
    return v;
}

bool FleetWindows::for_each(agg::EntityKind kind, uint64_t from_s, uint64_t to_s,
                            const Visit &fn) const
{
    if (!keeps(kind))
        return false;
    auto k = by_kind_.find(kind);
    if (k == by_kind_.end())
        return true;
    for (auto &[name, e] : k->second.by_name) {
        if (!e.key)
            continue;
        Value v = value(e, from_s, to_s);
        if (v.first_seen_s)
            fn(*e.key, v);
    }
    return true;
}

std::optional<FleetWindows::Value> FleetWindows::find(agg::EntityKind kind,
                                                      const agg::EntityKey &key, uint64_t from_s,
                                                      uint64_t to_s) const
{
    auto k = by_kind_.find(kind);
    if (k == by_kind_.end())
        return std::nullopt;
    auto [k1, k2] = entity_columns(kind, key);
    auto e = k->second.by_name.find(k1 + '\t' + k2);
    if (e == k->second.by_name.end() || !e->second.key)
        return std::nullopt;
    Value v = value(e->second, from_s, to_s);
    if (!v.first_seen_s)
        return std::nullopt;
    return v;
}

void FleetWindows::merge_into_hours(Entity &e, uint32_t before_s)
{
    std::vector<Cell> merged;
    size_t i = 0;
    for (; i < e.cells.size() && e.cells[i].t_s < before_s; i++) {
        Cell c = e.cells[i];
        uint32_t hour = c.t_s / kHourS * kHourS;
        if (merged.empty() || merged.back().t_s != hour) {
            Cell h;
            h.t_s = hour;
            h.hour = true;
            merged.push_back(h);
        }
        Cell &h = merged.back();
        h.bytes_out += c.bytes_out;
        h.bytes_in += c.bytes_in;
        h.tls_flows += c.tls_flows;
        h.requests += c.requests;
        // A period's peak is its own sum; an hour holds its largest.
        h.peak = std::max(h.peak, c.peak);
    }
    if (merged.size() == i)
        return;  // already whole hours
    merged.insert(merged.end(), e.cells.begin() + long(i), e.cells.end());
    e.cells = std::move(merged);
}

void FleetWindows::drop_before(Entity &e, uint32_t before_s)
{
    auto gone = std::find_if(e.cells.begin(), e.cells.end(), [&](const Cell &c) {
        return (c.hour ? c.t_s + kHourS : c.t_s + 1) > before_s;
    });
    e.cells.erase(e.cells.begin(), gone);
    for (auto *m : {&e.clients, &e.subnets, &e.sensors})
        for (auto it = m->begin(); it != m->end();)
            it = it->second < before_s ? m->erase(it) : std::next(it);
}

void FleetWindows::age(uint64_t now_s)
{
    uint32_t fine_from = uint32_t((now_s - std::min(now_s, fine_s_)) / kHourS * kHourS);
    uint32_t keep_from = uint32_t(now_s - std::min(now_s, keep_s_));
    for (auto &[kind, k] : by_kind_)
        for (auto it = k.by_name.begin(); it != k.by_name.end();) {
            cells_ -= it->second.cells.size();
            merge_into_hours(it->second, fine_from);
            drop_before(it->second, keep_from);
            cells_ += it->second.cells.size();
            it = it->second.cells.empty() ? k.by_name.erase(it) : std::next(it);
        }
}

size_t FleetWindows::entities() const
{
    size_t n = 0;
    for (auto &[kind, k] : by_kind_)
        n += k.by_name.size();
    return n;
}

}  // namespace exf::fleet
