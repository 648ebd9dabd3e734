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

void seen(std::unordered_map<uint64_t, uint32_t> &members, uint64_t id, uint32_t last_s)
{
    auto [it, added] = members.emplace(id, last_s);
    if (!added)
        it->second = std::max(it->second, last_s);
}

// The members last seen at or after from_s: those with traffic in a window
// that ends now (no sensor sends a period that has not started).
uint32_t count_since(const std::unordered_map<uint64_t, uint32_t> &members, uint64_t from_s)
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

FleetWindows::Sums part_of(const FleetWindows::Sums &x, uint64_t num, uint64_t den)
{
    return {part_of(x.bytes_out, num, den), part_of(x.bytes_in, num, den),
            part_of(x.tls_flows, num, den), part_of(x.requests, num, den)};
}

}  // namespace

FleetWindows::Sums &FleetWindows::Sums::operator+=(const Sums &o)
{
    bytes_out += o.bytes_out;
    bytes_in += o.bytes_in;
    tls_flows += o.tls_flows;
    requests += o.requests;
    return *this;
}

FleetWindows::Sums FleetWindows::Sums::operator-(const Sums &o) const
{
    return {bytes_out - o.bytes_out, bytes_in - o.bytes_in, tls_flows - o.tls_flows,
            requests - o.requests};
}

std::set<agg::EntityKind> rule_kinds(const std::vector<detect::Rule> &rules)
{
    std::set<agg::EntityKind> kinds;
    for (auto &r : rules)
        kinds.insert(r.entity);
    return kinds;
}

FleetWindows::FleetWindows(std::set<agg::EntityKind> kinds, Spans spans)
    : kinds_(std::move(kinds)), spans_(spans)
{}

size_t FleetWindows::cell_at(Entity &e, uint32_t t_s, uint32_t len_s)
{
    // Rows come mostly in time order: look from the back.
    size_t i = e.cells.size();
    while (i > 0 && e.cells[i - 1].t_s > t_s)
        i--;
    if (i > 0 && e.cells[i - 1].t_s == t_s && e.cells[i - 1].len_s == len_s)
        return i - 1;
    Cell c;
    c.t_s = t_s;
    c.len_s = len_s;
    c.total = i > 0 ? e.cells[i - 1].total : e.dropped;
    e.cells.insert(e.cells.begin() + long(i), c);
    cells_++;
    return i;
}

void FleetWindows::add(const FleetRow &row)
{
    uint32_t last_s = row.hour ? row.t_s + kHourS - 1 : row.t_s;
    std::hash<std::string> hash;
    uint64_t client = hash(row.client), subnet = hash(row.subnet), sensor = hash(row.sensor);
    Sums sums{row.bytes_out, row.bytes_in, row.tls_flows, row.requests};
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
        e.updated_ms = clock_ms_;
        size_t i = cell_at(e, row.t_s, row.hour ? kHourS : 1);
        e.cells[i].peak += row.peak_concurrent;
        for (size_t j = i; j < e.cells.size(); j++)
            e.cells[j].total += sums;
        seen(e.clients, client, last_s);
        seen(e.subnets, subnet, last_s);
        seen(e.sensors, sensor, last_s);
    }
}

FleetWindows::Value FleetWindows::value(const Entity &e, uint64_t from_s, uint64_t to_s, Need need)
{
    Value v;
    auto by_time = [](const Cell &c, uint64_t t) { return c.t_s < t; };
    auto lo = std::lower_bound(e.cells.begin(), e.cells.end(), from_s, by_time);
    // A minute or an hour that began before from_s counts in part.
    if (lo != e.cells.begin() && (lo - 1)->t_s + (lo - 1)->len_s > from_s)
        --lo;
    auto hi = std::lower_bound(lo, e.cells.end(), to_s, by_time);
    if (lo == hi)
        return v;
    auto own = [&](std::vector<Cell>::const_iterator c) {
        return c->total - (c == e.cells.begin() ? e.dropped : (c - 1)->total);
    };
    Sums sums = (hi - 1)->total - (lo == e.cells.begin() ? e.dropped : (lo - 1)->total);
    if (lo->t_s < from_s)
        sums = sums - part_of(own(lo), from_s - lo->t_s, lo->len_s);
    if (auto last = hi - 1; last->t_s + last->len_s > to_s)
        sums = sums - part_of(own(last), last->t_s + last->len_s - to_s, last->len_s);
    auto &w = v.figures.window;
    w.bytes_out = sums.bytes_out;
    w.bytes_in = sums.bytes_in;
    w.tls_flows = sums.tls_flows;
    w.requests = sums.requests;
    v.first_seen_s = std::max<uint64_t>(lo->t_s, from_s);
    v.figures.updated_ms = e.updated_ms;
    if (need.peak)
        for (auto c = lo; c != hi; ++c)
            w.peak_concurrent = std::max(w.peak_concurrent, c->peak);
    if (need.distinct) {
        w.distinct_clients = count_since(e.clients, from_s);
        w.distinct_subnets = count_since(e.subnets, from_s);
        v.figures.distinct_sensors = count_since(e.sensors, from_s);
    }
    return v;
}

bool FleetWindows::for_each(agg::EntityKind kind, uint64_t from_s, uint64_t to_s, Need need,
                            uint64_t since_ms, const Visit &fn) const
{
    if (!keeps(kind))
        return false;
    auto k = by_kind_.find(kind);
    if (k == by_kind_.end())
        return true;
    for (auto &[name, e] : k->second.by_name) {
        if (!e.key || e.updated_ms < since_ms)
            continue;
        Value v = value(e, from_s, to_s, need);
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
    Value v = value(e->second, from_s, to_s, Need{});
    if (!v.first_seen_s)
        return std::nullopt;
    return v;
}

void FleetWindows::coarsen(Entity &e, uint32_t before_s, uint32_t unit_s)
{
    bool due = false;
    for (auto c = e.cells.begin(); c != e.cells.end() && c->t_s < before_s && !due; ++c)
        due = c->len_s < unit_s;
    if (!due)
        return;
    // Own sums in `total` while merging; running totals again at the end.
    std::vector<Cell> out;
    Sums before = e.dropped;
    for (const Cell &c : e.cells) {
        Cell own = c;
        own.total = c.total - before;
        before = c.total;
        if (c.t_s < before_s && c.len_s < unit_s) {
            uint32_t t = c.t_s / unit_s * unit_s;
            if (out.empty() || out.back().t_s != t || out.back().len_s != unit_s) {
                Cell merged;
                merged.t_s = t;
                merged.len_s = unit_s;
                out.push_back(merged);
            }
            out.back().total += own.total;
            // A period's peak is its own sum; a longer cell holds its largest.
            out.back().peak = std::max(out.back().peak, own.peak);
        } else {
            out.push_back(own);
        }
    }
    Sums running = e.dropped;
    for (Cell &c : out) {
        running += c.total;
        c.total = running;
    }
    e.cells = std::move(out);
}

void FleetWindows::drop_before(Entity &e, uint32_t before_s)
{
    auto gone = std::find_if(e.cells.begin(), e.cells.end(),
                             [&](const Cell &c) { return c.t_s + c.len_s > before_s; });
    if (gone != e.cells.begin())
        e.dropped = (gone - 1)->total;
    e.cells.erase(e.cells.begin(), gone);
    for (auto *m : {&e.clients, &e.subnets, &e.sensors})
        for (auto it = m->begin(); it != m->end();)
            it = it->second < before_s ? m->erase(it) : std::next(it);
}

void FleetWindows::age(uint64_t now_s)
{
    auto floor_to = [&](uint64_t span_s, uint64_t unit_s) {
        return uint32_t((now_s - std::min(now_s, span_s)) / unit_s * unit_s);
    };
    uint32_t minutes_before = floor_to(spans_.exact_s, 60);
    uint32_t hours_before = floor_to(spans_.fine_s, kHourS);
    uint32_t keep_from = uint32_t(now_s - std::min(now_s, spans_.keep_s));
    generation_++;
    for (auto &[kind, k] : by_kind_)
        for (auto it = k.by_name.begin(); it != k.by_name.end();) {
            Entity &e = it->second;
            cells_ -= e.cells.size();
            coarsen(e, minutes_before, 60);
            coarsen(e, hours_before, kHourS);
            drop_before(e, keep_from);
            cells_ += e.cells.size();
            it = e.cells.empty() ? k.by_name.erase(it) : std::next(it);
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
