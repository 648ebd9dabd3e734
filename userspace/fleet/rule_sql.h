// SPDX-License-Identifier: Apache-2.0
#pragma once
// The SQL the fleet evaluator runs (docs/fleet.md, "Evaluation"): each rule
// as one query over the sums of all sensors, the hourly rollup, retention.
// Every statement reads `FINAL`, so a batch a sensor sent twice counts once,
// and uses only what ClickHouse 18.16 and current releases both accept.
// Times are Unix seconds, hours are whole UTC hours
// (intDiv(toUInt32(t), 3600) * 3600), so the server's time zone changes
// nothing.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "aggregate/entity_key.h"
#include "detect/rules.h"

namespace exf::fleet {

// Windows at least this long read whole hours from traffic_hourly and only
// the ends from traffic.
inline constexpr uint64_t kRollupFromMs = 2 * 3'600'000ull;

// What a rule reads: [from_s, to_s) of period starts. Whole hours in
// [hourly_from_s, hourly_to_s) come from traffic_hourly (empty when
// hourly_from_s == hourly_to_s), the rest from traffic.
struct Span {
    uint64_t from_s = 0, to_s = 0;
    uint64_t hourly_from_s = 0, hourly_to_s = 0;
};
// The span of a rule's window ending at now_ms, when the rollup holds every
// hour before rolled_to_s.
Span rule_span(uint64_t window_ms, uint64_t now_ms, uint64_t rolled_to_s);

// 'text' as a ClickHouse string literal.
std::string sql_quote(std::string_view text);

// The columns a rule's entity is keyed by, as the query returns them: k1,
// k2 (client | subnet | sni | client, sni | cohort | nothing for host).
// The entity's key from them; nullopt for a text the sensors cannot have sent.
std::optional<agg::EntityKey> entity_key(agg::EntityKind kind, const std::string &k1,
                                         const std::string &k2);
// The reverse: k1 and k2 for a key.
std::pair<std::string, std::string> entity_columns(agg::EntityKind kind, const agg::EntityKey &key);

// One rule over the span: per entity of its kind, the tab-separated row
//   k1 k2 bytes_out bytes_in tls_flows peak_concurrent distinct_clients
//   distinct_sensors first_seen_s distinct_subnets requests
// peak_concurrent is the largest per-period sum over sensors (per-hour
// peaks summed in the rollup's hours: an upper bound). With `only`, just
// that entity; otherwise, for a threshold rule without baseline, only the
// entities at or above threshold x min_scale (the smallest SNI override
// scale, 1 when none is lower).
std::string rule_sql(const std::string &db, const detect::Rule &rule, const Span &span,
                     double min_scale, const agg::EntityKey *only = nullptr);

// What one entity's alert says beyond its sums, over the same span: rows of
// "name\tvalue" by descending value then name, at most `limit`:
// per sensor its bytes out, per SNI its bytes out, per JA4 its TLS flows.
enum class Breakdown : uint8_t { sensor, sni, ja4 };
std::string breakdown_sql(const std::string &db, const detect::Rule &rule, const Span &span,
                          const agg::EntityKey &key, Breakdown by, size_t limit);

// Rolls the hour starting at hour_s up into traffic_hourly, version
// `version`: run again, the newer version replaces it under FINAL.
std::string rollup_sql(const std::string &db, uint64_t hour_s, uint32_t version);
// The newest hour in traffic_hourly (0 when empty) and the oldest period in traffic.
std::string last_rolled_hour_sql(const std::string &db);
std::string first_period_sql(const std::string &db);

// The partitions of traffic (days) and traffic_hourly (months) that hold
// nothing at or after cutoff_s: one "table\tpartition_id" row each.
std::string expired_partitions_sql(const std::string &db, uint64_t cutoff_s);
std::string drop_partition_sql(const std::string &db, const std::string &table,
                               const std::string &partition_id);

// The alerts whose newest record is open or update: one row each,
// "id\trule\tentity_kind\tstate\trecord" (record: the JSON the json output sends).
std::string open_alerts_sql(const std::string &db);

// Unescapes one field of ClickHouse's TabSeparated output.
std::string tsv_unescape(std::string_view field);
// Splits TabSeparated output into rows of unescaped fields.
std::vector<std::vector<std::string>> tsv_rows(const std::string &body);

}  // namespace exf::fleet
