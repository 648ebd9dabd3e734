// SPDX-License-Identifier: Apache-2.0
#include "detect/rules.h"

#include <set>
#include <vector>

namespace exf::detect {

const char *metric_name(Metric m)
{
    switch (m) {
    case Metric::bytes_out: return "bytes_out";
    case Metric::bytes_in: return "bytes_in";
    case Metric::tls_flows: return "tls_flows";
    case Metric::concurrent_flows: return "concurrent_flows";
    case Metric::distinct_clients: return "distinct_clients";
    case Metric::out_in_ratio: return "out_in_ratio";
    case Metric::distinct_sensors: return "distinct_sensors";
    case Metric::distinct_subnets: return "distinct_subnets";
    case Metric::requests: return "requests";
    }
    return "?";
}

std::string metric_names()
{
    std::string s;
    size_t n = std::size(kMetrics);
    for (size_t i = 0; i < n; i++)
        s += (i == 0 ? "" : i + 1 == n ? " or " : ", ") + std::string(metric_name(kMetrics[i]));
    return s;
}

std::optional<Metric> parse_metric(std::string_view s)
{
    for (auto m : kMetrics)
        if (s == metric_name(m))
            return m;
    return std::nullopt;
}

const char *rule_entity_name(agg::EntityKind k)
{
    switch (k) {
    case agg::EntityKind::client: return "client";
    case agg::EntityKind::subnet: return "subnet";
    case agg::EntityKind::api_host: return "sni";
    case agg::EntityKind::client_api_host: return "client_sni";
    case agg::EntityKind::cohort: return "cohort";
    case agg::EntityKind::host: return "host";
    case agg::EntityKind::ja4: return "ja4";
    case agg::EntityKind::ja4_sni: return "ja4_sni";
    }
    return "?";
}

std::optional<agg::EntityKind> parse_rule_entity(std::string_view s)
{
    for (size_t i = 0; i < agg::kEntityKinds; i++)
        if (s == rule_entity_name(agg::EntityKind(i)))
            return agg::EntityKind(i);
    return std::nullopt;
}

namespace {

// "a, b and c" of the kinds pred holds for, in rule vocabulary.
std::string kinds_where(bool (*pred)(agg::EntityKind), const char *last_sep)
{
    std::vector<std::string> names;
    for (size_t i = 0; i < agg::kEntityKinds; i++)
        if (pred(agg::EntityKind(i)))
            names.push_back(rule_entity_name(agg::EntityKind(i)));
    std::string s;
    for (size_t i = 0; i < names.size(); i++)
        s += (i == 0 ? "" : i + 1 == names.size() ? last_sep : ", ") + names[i];
    return s;
}

bool any_kind(agg::EntityKind) { return true; }

}  // namespace

std::string rule_entity_names() { return kinds_where(any_kind, " or "); }

bool metric_applies(Metric m, agg::EntityKind k)
{
    switch (m) {
    case Metric::distinct_clients: return agg::is_group(k);
    case Metric::distinct_subnets: return agg::counts_subnets(k);
    default: return true;
    }
}

std::string metric_applies_problem(Metric m, agg::EntityKind k)
{
    if (metric_applies(m, k))
        return {};
    auto pred = m == Metric::distinct_clients ? agg::is_group : agg::counts_subnets;
    return std::string(metric_name(m)) + " applies to " + kinds_where(pred, " and ") +
           " only, not " + rule_entity_name(k);
}

std::optional<Severity> parse_severity(std::string_view s)
{
    for (auto v : {Severity::info, Severity::warning, Severity::critical})
        if (s == severity_name(v))
            return v;
    return std::nullopt;
}

bool Rule::same(const Rule &o) const
{
    auto base_eq = [](const std::optional<Baseline> &a, const std::optional<Baseline> &b) {
        return a.has_value() == b.has_value() &&
               (!a ||
                (a->factor == b->factor && a->floor == b->floor && a->learn_ms == b->learn_ms));
    };
    return name == o.name && entity == o.entity && metric == o.metric && window_ms == o.window_ms &&
           threshold == o.threshold && base_eq(baseline, o.baseline) && severity == o.severity &&
           sustain == o.sustain && shadow == o.shadow && min_bytes_out == o.min_bytes_out;
}

std::vector<Rule> default_rules()
{
    constexpr double MiB = 1024.0 * 1024, GiB = 1024 * MiB;
    using K = agg::EntityKind;
    auto rule = [](const char *name, K e, Metric m, uint64_t window_ms, std::optional<double> thr,
                   Severity sev) {
        Rule r;
        r.name = name;
        r.entity = e;
        r.metric = m;
        r.window_ms = window_ms;
        r.threshold = thr;
        r.severity = sev;
        return r;
    };
    std::vector<Rule> v;
    v.push_back(rule("client-bulk-pull", K::client, Metric::bytes_out, 600'000, 2 * GiB,
                     Severity::critical));
    v.push_back(rule("client-daily-pull", K::client, Metric::bytes_out, 86'400'000, 20 * GiB,
                     Severity::warning));
    v.push_back(rule("client-parallel-connections", K::client, Metric::concurrent_flows, 60'000, 64,
                     Severity::warning));
    auto burst = rule("client-connection-burst", K::client, Metric::tls_flows, 60'000, 600,
                      Severity::warning);
    burst.sustain = 3;
    v.push_back(burst);
    auto base = rule("client-above-baseline", K::client, Metric::bytes_out, 3'600'000, std::nullopt,
                     Severity::warning);
    base.baseline = Baseline{10.0, 1 * GiB, 86'400'000};
    v.push_back(base);
    auto ratio = rule("client-response-ratio", K::client, Metric::out_in_ratio, 600'000, 1000,
                      Severity::info);
    ratio.min_bytes_out = 512 * MiB;
    v.push_back(ratio);
    v.push_back(rule("subnet-bulk-pull", K::subnet, Metric::bytes_out, 600'000, 8 * GiB,
                     Severity::critical));
    auto spread = rule("subnet-spread-pull", K::subnet, Metric::distinct_clients, 600'000, 32,
                       Severity::info);
    spread.shadow = true;
    v.push_back(spread);
    v.push_back(rule("cohort-bulk-pull", K::cohort, Metric::bytes_out, 3'600'000, 50 * GiB,
                     Severity::warning));
    auto calls = rule("fingerprint-cohort-calls", K::ja4_sni, Metric::requests, 3'600'000,
                      std::nullopt, Severity::warning);
    calls.baseline = Baseline{10.0, 20'000, 86'400'000};
    v.push_back(calls);
    return v;
}

std::vector<std::string> validate(const DetectConfig &c)
{
    std::vector<std::string> out;
    std::set<std::string> names;
    for (auto &r : c.rules) {
        std::string who = "rule '" + r.name + "'";
        if (r.name.empty())
            out.push_back("a rule without a name");
        else if (!names.insert(r.name).second)
            out.push_back(who + ": another rule has the same name");
        if (!r.threshold && !r.baseline)
            out.push_back(who + ": needs a threshold, a baseline or both");
        if (auto why = metric_applies_problem(r.metric, r.entity); !why.empty())
            out.push_back(who + ": " + why);
        if (r.window_ms == 0)
            out.push_back(who + ": window must be positive");
        if (r.sustain == 0)
            out.push_back(who + ": sustain must be at least 1");
        if (r.baseline && (r.baseline->factor <= 0 || r.baseline->learn_ms == 0))
            out.push_back(who + ": baseline factor and learn must be positive");
    }
    if (c.interval_ms == 0)
        out.push_back("[detect] interval must be positive");
    if (c.storm_limit == 0)
        out.push_back("[detect] storm_limit must be at least 1");
    return out;
}

}  // namespace exf::detect
