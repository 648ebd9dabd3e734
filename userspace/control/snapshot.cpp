// SPDX-License-Identifier: Apache-2.0
#include "control/snapshot.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "aggregate/windows.h"
#include "common/units.h"
#include "flows/flow_tracker.h"

namespace exf::control {

using nlohmann::json;

namespace {

// Every kind, in its enum order.
std::vector<agg::EntityKind> all_kinds()
{
    std::vector<agg::EntityKind> v;
    for (size_t i = 0; i < agg::kEntityKinds; i++)
        v.push_back(agg::EntityKind(i));
    return v;
}
const std::vector<agg::EntityKind> kKinds = all_kinds();

// Aggregator time (monotonic ms) to Unix epoch ms.
uint64_t to_wall(const DaemonView &v, uint64_t t_ms)
{
    return t_ms <= v.now_ms ? v.wall_ms - (v.now_ms - t_ms) : v.wall_ms;
}

size_t entity_limit(const agg::AggConfig &c, agg::EntityKind k) { return c.limit(k); }

std::string key_id(agg::EntityKind k, const agg::EntityKey &key)
{
    std::string s(1, char(k));
    s.append(reinterpret_cast<const char *>(key.addr.data()), key.addr.size());
    s += char(key.prefix);
    s += key.name;
    s += '\0';
    s += key.ja4;
    return s;
}

json error_response(const std::string &msg) { return {{"ok", false}, {"error", msg}}; }

}  // namespace

std::string dump(const json &j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::optional<agg::EntityKind> parse_top_kind(std::string_view s)
{
    if (auto k = detect::parse_rule_entity(s))
        return k;
    return agg::parse_kind(s);
}

std::optional<agg::SortBy> parse_sort(std::string_view s)
{
    for (auto b : {agg::SortBy::bytes_out, agg::SortBy::bytes_in, agg::SortBy::tls_flows,
                   agg::SortBy::requests, agg::SortBy::concurrent, agg::SortBy::distinct_clients,
                   agg::SortBy::distinct_subnets})
        if (s == sort_name(b))
            return b;
    return std::nullopt;
}

std::string top_request_problem(const TopRequest &req)
{
    // Ranking by distinct clients (subnets) is the distinct_clients
    // (distinct_subnets) metric: it exists where a rule may use it.
    auto metric = req.sort == agg::SortBy::distinct_clients   ? detect::Metric::distinct_clients
                  : req.sort == agg::SortBy::distinct_subnets ? detect::Metric::distinct_subnets
                                                              : detect::Metric::bytes_out;
    if (auto why = detect::metric_applies_problem(metric, req.kind); !why.empty())
        return "sort: " + why;
    return {};
}

const char *sort_name(agg::SortBy s)
{
    switch (s) {
    case agg::SortBy::bytes_out: return "bytes_out";
    case agg::SortBy::bytes_in: return "bytes_in";
    case agg::SortBy::tls_flows: return "tls_flows";
    case agg::SortBy::concurrent: return "concurrent";
    case agg::SortBy::distinct_clients: return "distinct_clients";
    case agg::SortBy::distinct_subnets: return "distinct_subnets";
    case agg::SortBy::requests: return "requests";
    }
    return "?";
}

namespace {

json interfaces_json(const SensorState &s)
{
    json ifs = json::array();
    for (auto &i : s.interfaces)
        ifs.push_back({{"name", i.name}, {"ifindex", i.ifindex}, {"since_ms", i.since_ms}});
    return ifs;
}

json maps_json(const SensorState &s)
{
    return {{"flows",
             {{"entries", s.flow_entries},
              {"capacity", s.flow_capacity},
              {"evictions", s.flow_evictions}}},
            {"clients",
             {{"entries", s.client_entries},
              {"capacity", s.client_capacity},
              {"evictions", s.client_evictions}}}};
}

json health_json(const SensorState &s)
{
    json health = json::object();
    for (unsigned i = 0; i < EXF_C__MAX; i++)
        health[std::string(counter_name(i))] = s.health[i];
    return health;
}

json events_json(const SensorState &s)
{
    return {{"received", s.events_received},
            {"queue_dropped", s.events_dropped},
            {"queue_waited", s.events_waited},
            {"harvest_drained", s.events_harvest_drained},
            {"harvest_drain_full", s.harvest_drain_full},
            {"ringbuf_full", s.health[EXF_C_RB_FULL]}};
}

json anomalies_json(const FlowTracker &tracker)
{
    json anomalies = json::object();
    for (auto &[name, n] : tracker.anomalies())
        anomalies[name] = n;
    return anomalies;
}

json aggregate_json(const agg::Aggregator &a)
{
    json windows = json::array(), kinds = json::object();
    for (size_t w = 0; w < a.windows(); w++)
        windows.push_back(agg::window_name(a.window_ms(w)));
    for (auto k : kKinds)
        kinds[agg::kind_name(k)] = {{"entities", a.size(k)},
                                    {"limit", entity_limit(a.config(), k)},
                                    {"evictions", a.evictions(k)},
                                    {"expirations", a.expirations(k)}};
    return {{"windows", windows},
            {"memory_bytes", a.memory_bytes()},
            {"updates", a.updates()},
            {"kinds", kinds},
            {"memberships",
             {{"entries", a.memberships()},
              {"limit", a.config().max_memberships},
              {"evictions", a.membership_evictions()}}}};
}

json detect_json(const detect::Detector &detector)
{
    const auto &d = detector.stats();
    return {{"rules", detector.config().rules.size()},
            {"evaluations", d.evaluations},
            {"opened", d.opened},
            {"updated", d.updated},
            {"resolved", d.resolved},
            {"summaries", d.summaries},
            {"muted", d.muted},
            {"suppressed", d.suppressed},
            {"allowed", d.allowed},
            {"open_now", d.open_now},
            {"last_eval_us", d.last_eval_us},
            {"last_eval_entities", d.last_eval_entities},
            {"memory_bytes", detector.memory_bytes()}};
}

json open_alerts_json(const detect::Detector &detector)
{
    json alerts = json::array();
    for (auto &o : detector.open_alerts())
        alerts.push_back({{"id", o.id},
                          {"rule", o.rule},
                          {"severity", detect::severity_name(o.severity)},
                          {"shadow", o.shadow},
                          {"muted", o.muted},
                          {"entity_kind", detect::rule_entity_name(o.kind)},
                          {"entity", agg::format_key(o.kind, o.key)},
                          {"metric", detect::metric_name(o.metric)},
                          {"value", o.value},
                          {"threshold", o.threshold},
                          {"since_ms", o.opened_wall_ms}});
    return alerts;
}

json output_json(size_t index, const std::string &type, const output::Output &out)
{
    auto st = out.stats();
    return {{"index", index},
            {"type", type},
            {"describe", out.describe()},
            {"queued", st.queued},
            {"sent", st.sent},
            {"dropped", st.dropped},
            {"reconnects", st.reconnects},
            {"spooled", st.spooled_now},
            {"connect_failures", st.connect_failures},
            {"write_errors", st.write_errors},
            {"connected", st.connected},
            {"last_error", st.last_error},
            {"spool_file", st.spool_file.empty() ? json() : json(st.spool_file)},
            {"spool_file_ok", st.spool_file_ok},
            {"spool_write_errors", st.spool_write_errors}};
}

json outputs_json(const DaemonView &v)
{
    const auto &types = v.sensor.output_types;
    json outs = json::array();
    for (size_t i = 0; i < v.outputs.size(); i++)
        outs.push_back(output_json(i, i < types.size() ? types[i] : "", *v.outputs[i]));
    return outs;
}

// null without [fleet].
json fleet_json(const SensorState &s)
{
    if (!s.fleet)
        return nullptr;
    const auto &f = *s.fleet;
    const auto &e = f.exporter;
    return {{"clickhouse", f.clickhouse},
            {"database", f.database},
            {"sensor", f.sensor},
            {"interval_ms", f.interval_ms},
            {"batches_sent", e.batches_sent},
            {"rows_sent", e.rows_sent},
            {"bytes_sent", e.bytes_sent},
            {"failures", e.failures},
            {"dropped_periods", e.dropped_batches},
            {"spool_depth", e.spool_depth},
            {"spool_write_errors", e.spool_write_errors},
            {"periods_waiting", f.periods_waiting},
            {"last_success_ms", e.last_success_ms},
            {"last_error", e.last_error}};
}

}  // namespace

json status_json(const DaemonView &v)
{
    const auto &s = v.sensor;
    json j = {{"ok", true},
              {"version", EXFILMON_VERSION},
              {"pid", ::getpid()},
              {"backend", s.backend},
              {"config", s.config_path.empty() ? json() : json(s.config_path)},
              {"started_ms", s.start_wall_ms},
              {"uptime_s", (v.wall_ms - std::min(v.wall_ms, s.start_wall_ms)) / 1000}};
    j["interfaces"] = interfaces_json(s);
    j["maps"] = maps_json(s);
    j["health"] = health_json(s);
    j["events"] = events_json(s);
    j["anomalies"] = anomalies_json(v.tracker);
    j["aggregate"] = aggregate_json(v.aggregator);
    j["detect"] = detect_json(v.detector);
    j["alerts"] = open_alerts_json(v.detector);
    j["outputs"] = outputs_json(v);
    j["harvest"] = {{"count", s.harvests}, {"last_duration_s", s.last_harvest_s}};
    j["reloads"] = {{"ok", s.reloads_ok}, {"error", s.reloads_error}};
    j["fleet"] = fleet_json(s);
    return j;
}

namespace {

// The window `top` reads: the one asked for, else 10 minutes, else the first.
size_t top_window(const agg::Aggregator &a, const std::string &window)
{
    size_t w = SIZE_MAX;
    if (window.empty()) {
        for (size_t i = 0; i < a.windows() && w == SIZE_MAX; i++)
            if (a.window_ms(i) == 600'000)
                w = i;
        if (w == SIZE_MAX && a.windows())
            w = 0;
    } else if (auto ms = parse_duration_ms(window)) {
        for (size_t i = 0; i < a.windows() && w == SIZE_MAX; i++)
            if (a.window_ms(i) == *ms)
                w = i;
    }
    if (w == SIZE_MAX) {
        std::string have;
        for (size_t i = 0; i < a.windows(); i++)
            have += (i ? ", " : "") + agg::window_name(a.window_ms(i));
        throw std::invalid_argument("window '" + window +
                                    "' is not an aggregation window (configured: " + have + ")");
    }
    return w;
}

using OpenByEntity = std::map<std::string, std::vector<const detect::OpenAlert *>>;

// The entity's open alerts, and for a fingerprint cohort its top clients.
void add_top_extras(json &row, const DaemonView &v, agg::EntityKind kind, const agg::Row &r,
                    const OpenByEntity &open)
{
    const auto &a = v.aggregator;
    if (kind == agg::EntityKind::ja4 || kind == agg::EntityKind::ja4_sni) {
        json clients = json::array();
        if (auto ref = a.find(kind, r.key))
            for (auto &c : ref->top_clients())
                clients.push_back({{"client", agg::format_key(agg::EntityKind::client, c.client)},
                                   {"tls_flows", c.tls_flows}});
        row["top_clients"] = std::move(clients);
    }
    json al = json::array();
    if (auto it = open.find(key_id(kind, r.key)); it != open.end())
        for (auto *o : it->second)
            al.push_back({{"rule", o->rule},
                          {"severity", detect::severity_name(o->severity)},
                          {"shadow", o->shadow},
                          {"since_ms", o->opened_wall_ms}});
    row["alert"] = !al.empty();
    row["alerts"] = std::move(al);
}

json top_row(const DaemonView &v, agg::EntityKind kind, size_t w, agg::Row r,
             const OpenByEntity &open)
{
    const auto &a = v.aggregator;
    // As the detector reads them: an entity first seen less than a window
    // ago has all its traffic inside it, and the two buckets' sum is exact
    // (the sliding estimate would scale part of it down).
    if (r.first_seen_ms + a.window_ms(w) > std::max(v.now_ms, a.clock_ms()))
        if (auto ref = a.find(kind, r.key))
            r.value = ref->value(w, v.now_ms, agg::Estimate::upper);
    json row = {{"entity", agg::format_key(kind, r.key)},
                {"bytes_out", r.value.bytes_out},
                {"bytes_in", r.value.bytes_in},
                {"tls_flows", r.value.tls_flows},
                {"requests", r.value.requests},
                {"peak_concurrent", r.value.peak_concurrent},
                {"concurrent", r.concurrent},
                {"first_seen_ms", to_wall(v, r.first_seen_ms)},
                {"last_seen_ms", to_wall(v, r.last_seen_ms)}};
    if (agg::is_group(kind))
        row["distinct_clients"] = r.value.distinct_clients;
    if (agg::counts_subnets(kind))
        row["distinct_subnets"] = r.value.distinct_subnets;
    json snis = json::array();
    for (auto &sh : a.top_snis(kind, r.key))
        snis.push_back({{"sni", sh.sni}, {"bytes_out", sh.bytes_out}});
    row["top_snis"] = std::move(snis);
    add_top_extras(row, v, kind, r, open);
    return row;
}

}  // namespace

json top_json(const DaemonView &v, const TopRequest &req)
{
    const auto &a = v.aggregator;
    size_t w = top_window(a, req.window);
    // Open alerts by entity (the rule's entity kind is the aggregator's).
    OpenByEntity open;
    auto alerts = v.detector.open_alerts();
    for (auto &o : alerts)
        if (o.kind == req.kind)
            open[key_id(o.kind, o.key)].push_back(&o);
    json rows = json::array();
    for (auto &r : a.top(req.kind, w, req.sort, req.n, v.now_ms))
        rows.push_back(top_row(v, req.kind, w, r, open));
    return {{"ok", true},
            {"kind", detect::rule_entity_name(req.kind)},
            {"window", agg::window_name(a.window_ms(w))},
            {"window_ms", a.window_ms(w)},
            {"sort", sort_name(req.sort)},
            {"now_ms", v.wall_ms},
            {"rows", std::move(rows)}};
}

std::string handle_request(std::string_view line, const DaemonView &v)
{
    json resp;
    try {
        json req = json::parse(line, nullptr, false);
        if (req.is_discarded() || !req.is_object() || !req.contains("cmd") ||
            !req["cmd"].is_string()) {
            resp = error_response("expected one JSON object with \"cmd\": \"status\" or \"top\"");
        } else if (req["cmd"] == "status") {
            resp = status_json(v);
        } else if (req["cmd"] == "top") {
            TopRequest t;
            std::string bad;
            if (auto it = req.find("kind"); it != req.end()) {
                auto k = it->is_string() ? parse_top_kind(it->get<std::string>()) : std::nullopt;
                if (k)
                    t.kind = *k;
                else
                    bad = "kind: expected " + detect::rule_entity_names();
            }
            if (auto it = req.find("window"); it != req.end()) {
                if (it->is_string())
                    t.window = it->get<std::string>();
                else
                    bad = "window: expected a duration like \"10m\"";
            }
            if (auto it = req.find("sort"); it != req.end()) {
                auto s = it->is_string() ? parse_sort(it->get<std::string>()) : std::nullopt;
                if (s)
                    t.sort = *s;
                else
                    bad = "sort: expected bytes_out, bytes_in, tls_flows, requests, concurrent, "
                          "distinct_clients or distinct_subnets";
            }
            if (auto it = req.find("n"); it != req.end()) {
                if (it->is_number_integer() && it->get<int64_t>() >= 1 &&
                    it->get<int64_t>() <= 1000)
                    t.n = size_t(it->get<int64_t>());
                else
                    bad = "n: expected an integer from 1 to 1000";
            }
            if (bad.empty())
                bad = top_request_problem(t);
            resp = bad.empty() ? top_json(v, t) : error_response(bad);
        } else {
            resp = error_response("unknown cmd (expected \"status\" or \"top\")");
        }
    } catch (const std::exception &e) {
        resp = error_response(e.what());
    }
    return dump(resp) + "\n";
}

// ---- metrics ----------------------------------------------------------------

MetricsSnapshot metrics_snapshot(const DaemonView &v)
{
    const auto &s = v.sensor;
    MetricsSnapshot m;
    m.version = EXFILMON_VERSION;
    m.start_wall_ms = s.start_wall_ms;
    m.health = s.health;
    for (auto &[name, n] : v.tracker.anomalies())
        m.anomalies[name] = n;
    m.events_received = s.events_received;
    m.queue_drops = s.events_dropped;
    m.queue_waits = s.events_waited;
    m.harvest_drained = s.events_harvest_drained;
    m.harvest_drain_full = s.harvest_drain_full;
    m.flow_entries = s.flow_entries;
    m.flow_evictions = s.flow_evictions;
    m.client_evictions = s.client_evictions;
    m.flow_capacity = s.flow_capacity;
    m.client_entries = s.client_entries;
    m.client_capacity = s.client_capacity;
    const auto &a = v.aggregator;
    for (auto k : kKinds)
        m.kinds.push_back({agg::kind_name(k), a.size(k), entity_limit(a.config(), k),
                           a.evictions(k), a.expirations(k)});
    // The members behind distinct counts, under their own limit, as a kind.
    m.kinds.push_back({"membership", a.memberships(), a.config().max_memberships,
                       a.membership_evictions(), a.membership_expirations()});
    m.aggregate_memory_bytes = a.memory_bytes();
    m.harvests = s.harvests;
    m.last_harvest_s = s.last_harvest_s;
    const auto &d = v.detector.stats();
    m.evaluations = d.evaluations;
    m.last_eval_s = double(d.last_eval_us) / 1e6;
    m.alerts = s.alerts;
    m.alerts_open = d.open_now;
    for (size_t i = 0; i < v.outputs.size(); i++) {
        auto st = v.outputs[i]->stats();
        m.outputs.push_back({i < s.output_types.size() ? s.output_types[i] : "", st.spooled_now,
                             st.sent, st.dropped, st.reconnects, st.connect_failures,
                             st.write_errors, st.connected, st.spool_write_errors,
                             st.spool_file_ok});
    }
    m.reloads_ok = s.reloads_ok;
    m.reloads_error = s.reloads_error;
    m.fleet = s.fleet;
    return m;
}

namespace {

// Label values: backslash, double quote and newline escaped.
std::string label(std::string_view v)
{
    std::string out;
    for (char c : v) {
        if (c == '\\' || c == '"')
            out += '\\', out += c;
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

class Writer {
public:
    // # HELP and # TYPE once per family, then its samples.
    void family(const char *name, const char *type, const char *help)
    {
        name_ = std::string("exfilmon_") + name;
        out_ += "# HELP " + name_ + " " + help + "\n# TYPE " + name_ + " " + type + "\n";
    }
    void sample(double v, const std::string &labels = "")
    {
        char buf[64];
        if (v == double(uint64_t(v)) && v < 1.8e19)
            std::snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
        else  // 15 digits: a Unix time keeps its milliseconds
            std::snprintf(buf, sizeof(buf), "%.15g", v);
        out_ += name_ + (labels.empty() ? "" : "{" + labels + "}") + " " + buf + "\n";
    }
    void sample(uint64_t v, const std::string &labels = "")
    {
        out_ += name_ + (labels.empty() ? "" : "{" + labels + "}") + " " + std::to_string(v) + "\n";
    }
    std::string take() { return std::move(out_); }

private:
    std::string name_, out_;
};

std::string l(const char *k, std::string_view v)
{
    return std::string(k) + "=\"" + label(v) + "\"";
}

// Each step writes one group of families, in the order the exposition lists them.
void write_process(Writer &w, const MetricsSnapshot &m)
{
    w.family("build_info", "gauge", "exfilmon version (always 1).");
    w.sample(uint64_t(1), l("version", m.version));
    w.family("start_time_seconds", "gauge", "Unix time the daemon started.");
    w.sample(uint64_t(m.start_wall_ms / 1000));  // whole seconds
}

void write_datapath(Writer &w, const MetricsSnapshot &m)
{
    w.family("packets_total", "counter", "Packets the datapath saw (wire segments).");
    w.sample(m.health[EXF_C_PACKETS]);
    w.family("bytes_total", "counter", "IP-level bytes of the packets the datapath parsed.");
    w.sample(m.health[EXF_C_BYTES]);
    w.family("datapath_events_total", "counter",
             "Kernel health counters: parse failures by reason, flows, events, failures.");
    for (unsigned i = 0; i < EXF_C__MAX; i++)
        if (i != EXF_C_PACKETS && i != EXF_C_BYTES)
            w.sample(m.health[i], l("counter", counter_name(i)));
    w.family("parse_anomalies_total", "counter", "ClientHello and event anomalies, by reason.");
    for (auto &[name, n] : m.anomalies)
        w.sample(n, l("reason", name));
}

void write_events(Writer &w, const MetricsSnapshot &m)
{
    w.family("events_total", "counter", "Ring buffer events received.");
    w.sample(m.events_received);
    w.family("ringbuf_drops_total", "counter", "Events lost: ring buffer full in the kernel.");
    w.sample(m.health[EXF_C_RB_FULL]);
    w.family("event_queue_drops_total", "counter", "Events lost: userspace event queue full.");
    w.sample(m.queue_drops);
    w.family("event_queue_waits_total", "counter",
             "Events the ring buffer reader held back in the ring buffer while the event queue "
             "was full (not lost).");
    w.sample(m.queue_waits);
    w.family("event_queue_harvest_drained_total", "counter",
             "Events taken off the event queue while a harvest ran (handed on after it).");
    w.sample(m.harvest_drained);
    w.family("event_queue_harvest_drain_full_total", "counter",
             "Harvests during which the staging buffer for those events reached its limit "
             "(64 MiB) and the ring buffer reader waited.");
    w.sample(m.harvest_drain_full);
}

void write_maps(Writer &w, const MetricsSnapshot &m)
{
    w.family("map_entries", "gauge", "Entries in the datapath's tables at the last harvest.");
    w.sample(m.flow_entries, l("map", "flows"));
    w.sample(m.client_entries, l("map", "clients"));
    w.family("map_evictions_total", "counter",
             "Entries that left the datapath's tables (LRU evictions): entries created minus "
             "entries.");
    w.sample(m.flow_evictions, l("map", "flows"));
    w.sample(m.client_evictions, l("map", "clients"));
    w.family("map_capacity", "gauge", "Size of the datapath's tables.");
    w.sample(m.flow_capacity, l("map", "flows"));
    w.sample(m.client_capacity, l("map", "clients"));
}

// A writer of families with one sample per item: labels(index, item) names
// the sample, get(item) gives its value.
template <class T, class Labels>
auto family_per(Writer &w, const std::vector<T> &items, Labels labels)
{
    return [&w, &items, labels](const char *name, const char *type, const char *help, auto get) {
        w.family(name, type, help);
        for (size_t i = 0; i < items.size(); i++)
            w.sample(uint64_t(get(items[i])), labels(i, items[i]));
    };
}

void write_aggregate(Writer &w, const MetricsSnapshot &m)
{
    using K = MetricsSnapshot::Kind;
    auto per_kind = family_per(w, m.kinds, [](size_t, const K &k) { return l("kind", k.name); });
    per_kind("aggregate_entities", "gauge", "Entities aggregated, by kind.",
             [](const K &k) { return k.entities; });
    per_kind("aggregate_entity_limit", "gauge", "Entity limit by kind (eviction past it).",
             [](const K &k) { return k.limit; });
    per_kind("aggregate_evictions_total", "counter", "Entities evicted at the limit, by kind.",
             [](const K &k) { return k.evictions; });
    per_kind("aggregate_expirations_total", "counter", "Idle entities expired, by kind.",
             [](const K &k) { return k.expirations; });
    w.family("aggregate_memory_bytes", "gauge", "Memory the aggregator allocated.");
    w.sample(m.aggregate_memory_bytes);
}

void write_harvest(Writer &w, const MetricsSnapshot &m)
{
    w.family("harvests_total", "counter", "Harvests of the datapath's tables.");
    w.sample(m.harvests);
    w.family("harvest_duration_seconds", "gauge", "Duration of the last harvest.");
    w.sample(m.last_harvest_s);
}

void write_detect(Writer &w, const MetricsSnapshot &m)
{
    w.family("detect_evaluations_total", "counter", "Rule evaluations.");
    w.sample(m.evaluations);
    w.family("detect_evaluation_duration_seconds", "gauge", "Duration of the last evaluation.");
    w.sample(m.last_eval_s);
    w.family("alerts_total", "counter", "Alert records, by rule, severity and state.");
    for (auto &[k, n] : m.alerts)
        w.sample(n, l("rule", k[0]) + "," + l("severity", k[1]) + "," + l("state", k[2]));
    w.family("alerts_open", "gauge", "Alerts open at the last evaluation.");
    w.sample(m.alerts_open);
}

void write_outputs(Writer &w, const MetricsSnapshot &m)
{
    using O = MetricsSnapshot::Out;
    auto per_output = family_per(w, m.outputs, [](size_t i, const O &o) {
        return l("output", std::to_string(i)) + "," + l("type", o.type);
    });
    per_output("output_spool_depth", "gauge", "Alerts waiting in the output's spool.",
               [](const O &o) { return o.spooled; });
    per_output("output_sent_total", "counter", "Alerts delivered.",
               [](const O &o) { return o.sent; });
    per_output("output_dropped_total", "counter", "Alerts lost (spool full).",
               [](const O &o) { return o.dropped; });
    per_output("output_reconnects_total", "counter", "Reconnections to the collector.",
               [](const O &o) { return o.reconnects; });
    per_output("output_connect_failures_total", "counter", "Failed connection attempts.",
               [](const O &o) { return o.connect_failures; });
    per_output("output_write_errors_total", "counter", "Failed writes (the alert stays spooled).",
               [](const O &o) { return o.write_errors; });
    per_output("output_connected", "gauge", "1 when the output is connected.",
               [](const O &o) { return o.connected ? 1 : 0; });
    per_output("output_spool_write_errors_total", "counter",
               "Spool file writes that failed (disk full, read-only, I/O error); the alerts "
               "stay in memory.",
               [](const O &o) { return o.spool_write_errors; });
    per_output("output_spool_file_ok", "gauge",
               "0 while the spool file cannot be written (alerts in memory only), else 1.",
               [](const O &o) { return o.spool_file_ok ? 1 : 0; });
}

// Only with [fleet].
void write_fleet(Writer &w, const MetricsSnapshot &m)
{
    if (!m.fleet)
        return;
    const auto &e = m.fleet->exporter;
    w.family("fleet_rows_sent_total", "counter", "Rows the fleet export inserted into ClickHouse.");
    w.sample(e.rows_sent);
    w.family("fleet_bytes_sent_total", "counter", "Bytes of rows (JSONEachRow) inserted.");
    w.sample(e.bytes_sent);
    w.family("fleet_periods_sent_total", "counter", "Periods (batches) inserted.");
    w.sample(e.batches_sent);
    w.family("fleet_failures_total", "counter",
             "Inserts that failed (each retry counts); the period stays spooled.");
    w.sample(e.failures);
    w.family("fleet_dropped_periods_total", "counter", "Periods lost: the spool was full.");
    w.sample(e.dropped_batches);
    w.family("fleet_spool_depth", "gauge",
             "Periods waiting to be sent (spool on disk and memory, and closed periods waiting "
             "for the state file).");
    w.sample(e.spool_depth + m.fleet->periods_waiting);
    w.family("fleet_spool_write_errors_total", "counter",
             "Spool file writes that failed (the period waits in memory).");
    w.sample(e.spool_write_errors);
    w.family("fleet_last_success_seconds", "gauge",
             "Unix time of the last insert that succeeded (0: none yet).");
    w.sample(double(e.last_success_ms) / 1000.0);
}

void write_evaluator(Writer &w, const EvaluatorStatus &e)
{
    w.family("fleet_eval_rules", "gauge", "Rules the fleet evaluator evaluates.");
    w.sample(e.rules);
    w.family("fleet_eval_rules_failed", "gauge",
             "Rules whose read failed at the last evaluation (skipped: their alerts left as "
             "they were).");
    w.sample(e.rules_failed);
    w.family("fleet_eval_rule_failures_total", "counter",
             "Rule reads that failed, summed over evaluations.");
    w.sample(e.rule_failures);
    w.family("fleet_eval_last_complete_seconds", "gauge",
             "Unix time of the last evaluation that read every rule (0: none yet).");
    w.sample(double(e.last_complete_ms) / 1000.0);
    w.family("fleet_eval_rolled_up_to_seconds", "gauge",
             "traffic_hourly holds every hour before this Unix time.");
    w.sample(e.rolled_to_s);
    w.family("fleet_eval_alert_rows_waiting", "gauge",
             "Alert records not yet written to the alerts table (sent with the next "
             "evaluation's).");
    w.sample(e.alert_rows_waiting);
    w.family("fleet_eval_last_duration_seconds", "gauge",
             "Wall time of the last evaluation: reads, rollup, rules and outputs.");
    w.sample(e.last_duration_s);
    w.family("fleet_eval_window_entities", "gauge",
             "Entities in the evaluator's windows in memory (evaluation = \"memory\").");
    w.sample(e.window_entities);
    w.family("fleet_eval_window_cells", "gauge",
             "Cells of sums those entities hold (one per period, or per hour once aged).");
    w.sample(e.window_cells);
    w.family("fleet_eval_batches_read_total", "counter",
             "Batches (one sensor's period) read into the windows, each once.");
    w.sample(e.batches_read);
    w.family("fleet_eval_rows_read_total", "counter",
             "Traffic rows read into the windows (rollup hours at start included).");
    w.sample(e.rows_read);
}

void write_reloads(Writer &w, const MetricsSnapshot &m)
{
    w.family("config_reloads_total", "counter", "SIGHUP configuration reloads, by result.");
    w.sample(m.reloads_ok, l("result", "ok"));
    w.sample(m.reloads_error, l("result", "error"));
}

}  // namespace

std::string render_metrics(const MetricsSnapshot &m)
{
    Writer w;
    write_process(w, m);
    if (m.evaluator) {
        write_detect(w, m);
        write_outputs(w, m);
        write_evaluator(w, *m.evaluator);
        return w.take();
    }
    write_datapath(w, m);
    write_events(w, m);
    write_maps(w, m);
    write_aggregate(w, m);
    write_harvest(w, m);
    write_detect(w, m);
    write_outputs(w, m);
    write_reloads(w, m);
    write_fleet(w, m);
    return w.take();
}

}  // namespace exf::control
