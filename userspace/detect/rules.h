// SPDX-License-Identifier: Apache-2.0
#pragma once
// Detection rules: data, not code. Each [[rules]] table of the configuration
// becomes a Rule; [[allow]] tables exempt clients, subnets, API hosts or
// cohorts; [sni_overrides."name"] scales thresholds for one API host; the
// [detect] table holds the evaluation and alert-lifecycle settings.
// docs/alerts.md describes every key and the reasoning behind the defaults.
//
// The rule vocabulary names entities as admins think of them; they map onto
// the aggregator's kinds (aggregate/entity_key.h):
//   client -> client, subnet -> subnet, sni -> api_host,
//   client_sni -> client_api_host, cohort -> cohort, host -> host,
//   ja4 -> ja4 (a fingerprint cohort), ja4_sni -> ja4_sni.
//
// Metrics, over the rule's window (a sliding estimate: aggregate/windows.h):
//   bytes_out          server to client bytes: the exfiltration direction
//   bytes_in           client to server bytes
//   tls_flows          TLS flows opened (fan-out: many short connections)
//   requests           API calls: client turns counted by the datapath
//                      without decryption (docs/datapath.md, "Requests")
//   concurrent_flows   peak concurrent flows (fan-out: parallel connections)
//   distinct_clients   clients seen (groups: subnet, cohort, sni, host, ja4,
//                      ja4_sni)
//   distinct_subnets   subnets those clients came from (sni, cohort, host,
//                      ja4, ja4_sni)
//   out_in_ratio       bytes_out / max(bytes_in, 1) (responses far larger
//                      than requests), considered only once bytes_out reaches
//                      the rule's min_bytes_out
//   distinct_sensors   edge hosts (sensors) the entity's traffic went
//                      through: the fleet evaluator's sums; one sensor's
//                      own rules read 1 for an entity with traffic
//
// A rule fires for an entity when its value reaches `threshold` (scaled by
// the entity's SNI override) or, for baseline rules, once the entity's level
// has been learned for `learn`, when the value exceeds both `floor` and
// `factor` times the learned level (an EWMA over past windows, time constant
// `learn`). With both, either fires.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aggregate/cohorts.h"
#include "aggregate/entity_key.h"
#include "detect/alert.h"

namespace exf::detect {

enum class Metric : uint8_t {
    bytes_out,
    bytes_in,
    tls_flows,
    concurrent_flows,
    distinct_clients,
    out_in_ratio,
    distinct_sensors,
    distinct_subnets,
    requests,  // last: state files store metrics by number
};
// Every metric, in the order they are listed to users.
inline constexpr Metric kMetrics[] = {
    Metric::bytes_out,        Metric::bytes_in,         Metric::tls_flows,
    Metric::requests,         Metric::concurrent_flows, Metric::distinct_clients,
    Metric::distinct_subnets, Metric::out_in_ratio,     Metric::distinct_sensors};
const char *metric_name(Metric m);
// "bytes_out, bytes_in, ... or out_in_ratio": for messages.
std::string metric_names();
std::optional<Metric> parse_metric(std::string_view s);
// Whether the metric's thresholds are sizes ("2GiB"), counts or ratios.
inline bool metric_is_size(Metric m) { return m == Metric::bytes_out || m == Metric::bytes_in; }
inline bool metric_is_ratio(Metric m) { return m == Metric::out_in_ratio; }

// "client", "subnet", "sni", "client_sni", "cohort", "host", "ja4", "ja4_sni".
const char *rule_entity_name(agg::EntityKind k);
std::optional<agg::EntityKind> parse_rule_entity(std::string_view s);
// "client, subnet, sni, client_sni, cohort, host, ja4 or ja4_sni": for messages.
std::string rule_entity_names();
// distinct_clients only exists for groups (agg::is_group), distinct_subnets
// for groups but subnet (agg::counts_subnets).
bool metric_applies(Metric m, agg::EntityKind k);
// "" when it applies, else the sentence saying where it does (rules, and
// `exfilmon top --sort`): "distinct_clients applies to subnet, sni, cohort,
// host, ja4 and ja4_sni only, not client".
std::string metric_applies_problem(Metric m, agg::EntityKind k);

std::optional<Severity> parse_severity(std::string_view s);

struct Baseline {
    double factor = 8.0;             // fire above factor x the learned level
    double floor = 0;                // and above this (same unit as the metric)
    uint64_t learn_ms = 86'400'000;  // time constant, and how long before it may fire
};

struct Rule {
    std::string name;
    agg::EntityKind entity = agg::EntityKind::client;
    Metric metric = Metric::bytes_out;
    uint64_t window_ms = 600'000;
    std::optional<double> threshold;
    std::optional<Baseline> baseline;
    Severity severity = Severity::warning;
    uint32_t sustain = 1;            // consecutive evaluations the condition must hold
    bool shadow = false;             // mode = "shadow": evaluated and logged, never sent
    double min_bytes_out = 1048576;  // out_in_ratio only
    uint32_t line = 0;               // where it is in the configuration (messages)

    // Same settings (line ignored).
    bool same(const Rule &o) const;
};

// Exempt from alerts (still counted). An entry names one thing: a CIDR
// (clients inside it; subnets inside it), an SNI ("api.example.com" or
// "*.example.com": that API host and its client x API host entities) or a
// cohort label. `rules` limits it to some rules (empty: all).
struct AllowEntry {
    std::optional<agg::CohortRule> cidr;
    std::string sni;
    std::string cohort;
    std::vector<std::string> rules;
};

// The built-in rules, the same as configs/exfilmon.toml ships (its comments
// give the reasoning): used when the configuration has no [[rules]].
std::vector<Rule> default_rules();

struct DetectConfig {
    std::vector<Rule> rules = default_rules();
    std::vector<AllowEntry> allow;
    // Lowercased SNI ("name" or "*.suffix") -> threshold scale (sni and
    // client_sni rules; floors of baseline rules too).
    std::map<std::string, double> sni_scale;
    uint64_t interval_ms = 1000;          // evaluation interval
    uint64_t realert_ms = 300'000;        // updates of an open alert at most this often
    uint64_t resolve_after_ms = 120'000;  // false this long: resolved
    uint32_t storm_limit = 20;            // new alerts per rule and evaluation; more: one summary
    uint32_t max_open = 100'000;          // alerts (open or pending) tracked at most
    uint32_t max_baselines = 1u << 20;    // learned levels kept per rule
    std::string host_name;                // "" : gethostname()
};

// Problems across rules (duplicate names, metric not for the entity, neither
// threshold nor baseline), one sentence each with the rule's name.
std::vector<std::string> validate(const DetectConfig &c);

}  // namespace exf::detect
