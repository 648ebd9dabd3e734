// SPDX-License-Identifier: Apache-2.0
// The SQL each [[rules]] entry turns into for the fleet evaluator: which
// table and span it reads (FINAL always; whole hours from the rollup for
// long windows), how it keys the entity, what it filters, and the
// statements for the rollup, retention and the alerts table.
#include <catch2/catch.hpp>

#include "aggregate/entity_key.h"
#include "common/addr.h"
#include "fleet/rule_sql.h"

using namespace exf;
using namespace exf::fleet;

namespace {

bool has(const std::string &sql, const std::string &part)
{
    return sql.find(part) != std::string::npos;
}

size_t count(const std::string &sql, const std::string &part)
{
    size_t n = 0;
    for (size_t p = sql.find(part); p != std::string::npos; p = sql.find(part, p + 1))
        n++;
    return n;
}

detect::Rule rule(agg::EntityKind kind, detect::Metric m, uint64_t window_ms,
                  std::optional<double> threshold)
{
    detect::Rule r;
    r.name = "r";
    r.entity = kind;
    r.metric = m;
    r.window_ms = window_ms;
    r.threshold = threshold;
    return r;
}

// 2026-12-07 13:25:30 UTC.
constexpr uint64_t kNowMs = 1796649930000;
constexpr uint64_t kNowS = kNowMs / 1000;
constexpr uint64_t kHour = 3600;

}  // namespace

TEST_CASE("A short window reads traffic FINAL over its span, keyed by the rule's entity", "[fleet]")
{
    auto r = rule(agg::EntityKind::client, detect::Metric::bytes_out, 600'000, 104857600);
    auto span = rule_span(r.window_ms, kNowMs, kNowS / kHour * kHour);
    CHECK(span.from_s == kNowS - 600);
    CHECK(span.to_s == kNowS);
    CHECK(span.hourly_from_s == span.hourly_to_s);
    auto sql = rule_sql("exf", r, span, 1.0);
    CHECK(has(sql, "FROM exf.traffic FINAL WHERE (period_start >= toDateTime(" +
                       std::to_string(kNowS - 600) + ") AND period_start < toDateTime(" +
                       std::to_string(kNowS) + "))"));
    CHECK_FALSE(has(sql, "traffic_hourly"));
    CHECK(has(sql, "SELECT client AS k1, '' AS k2"));
    CHECK(has(sql, "GROUP BY k1, k2 HAVING bytes_out >= 104857600 FORMAT TabSeparated"));
    // Concurrency adds up per period over sensors; the largest period is the peak.
    CHECK(has(sql, "arrayReduce('max', tupleElement(sumMap([t], [toUInt64(c)]), 2)) AS "
                   "peak_concurrent"));
    CHECK(has(sql, "uniqExact(sensor) AS distinct_sensors"));
}

TEST_CASE("A long window reads whole rolled-up hours from traffic_hourly and the ends from traffic",
          "[fleet]")
{
    auto r = rule(agg::EntityKind::subnet, detect::Metric::bytes_out, 86'400'000, 5e9);
    uint64_t rolled_to = kNowS / kHour * kHour - kHour;  // the last closed hour is not in yet
    auto span = rule_span(r.window_ms, kNowMs, rolled_to);
    uint64_t first_whole = (kNowS - 86400 + kHour - 1) / kHour * kHour;
    CHECK(span.hourly_from_s == first_whole);
    CHECK(span.hourly_to_s == rolled_to);
    auto sql = rule_sql("exf", r, span, 1.0);
    CHECK(has(sql, "(period_start >= toDateTime(" + std::to_string(kNowS - 86400) +
                       ") AND period_start < toDateTime(" + std::to_string(first_whole) + "))"));
    CHECK(has(sql, " OR (period_start >= toDateTime(" + std::to_string(rolled_to) +
                       ") AND period_start < toDateTime(" + std::to_string(kNowS) + "))"));
    CHECK(has(sql, "UNION ALL SELECT hour AS t, sensor, client, subnet, cohort, sni, ja4, "
                   "bytes_in, bytes_out, tls_flows, peak_concurrent, requests FROM "
                   "exf.traffic_hourly FINAL "
                   "WHERE hour >= toDateTime(" +
                       std::to_string(first_whole) + ") AND hour < toDateTime(" +
                       std::to_string(rolled_to) + ")"));
    CHECK(count(sql, "FINAL") == 2);
    CHECK(has(sql, "SELECT subnet AS k1, '' AS k2"));

    // Nothing rolled up yet: all of it from traffic.
    auto raw = rule_span(r.window_ms, kNowMs, 0);
    CHECK(raw.hourly_from_s == raw.hourly_to_s);
    CHECK_FALSE(has(rule_sql("exf", r, raw, 1.0), "traffic_hourly"));
}

TEST_CASE("Each entity kind keys and filters its rows, and each metric its HAVING", "[fleet]")
{
    auto span = rule_span(600'000, kNowMs, 0);
    auto sql_of = [&](agg::EntityKind k, detect::Metric m, double thr) {
        return rule_sql("exf", rule(k, m, 600'000, thr), span, 1.0);
    };
    CHECK(has(sql_of(agg::EntityKind::api_host, detect::Metric::tls_flows, 50),
              "SELECT sni AS k1, '' AS k2"));
    CHECK(has(sql_of(agg::EntityKind::api_host, detect::Metric::tls_flows, 50), "WHERE sni != ''"));
    CHECK(has(sql_of(agg::EntityKind::api_host, detect::Metric::tls_flows, 50),
              "HAVING tls_flows >= 50"));
    CHECK(has(sql_of(agg::EntityKind::client_api_host, detect::Metric::bytes_in, 10),
              "SELECT client AS k1, sni AS k2"));
    CHECK(has(sql_of(agg::EntityKind::cohort, detect::Metric::distinct_clients, 40),
              "WHERE cohort != ''"));
    CHECK(has(sql_of(agg::EntityKind::cohort, detect::Metric::distinct_clients, 40),
              "HAVING distinct_clients >= 40"));
    CHECK(has(sql_of(agg::EntityKind::host, detect::Metric::concurrent_flows, 900),
              "SELECT '' AS k1, '' AS k2"));
    CHECK(has(sql_of(agg::EntityKind::host, detect::Metric::concurrent_flows, 900),
              "HAVING peak_concurrent >= 900"));
    CHECK(has(sql_of(agg::EntityKind::client, detect::Metric::distinct_sensors, 3),
              "HAVING distinct_sensors >= 3"));
    // Requests add up over periods, sensors and keys, for every kind.
    for (size_t k = 0; k < agg::kEntityKinds; k++) {
        auto calls = sql_of(agg::EntityKind(k), detect::Metric::requests, 20000);
        CHECK(has(calls, "requests AS rq FROM ("));
        CHECK(has(calls, "sum(rq) AS requests FROM ("));
        CHECK(has(calls, "HAVING requests >= 20000"));
    }

    auto ratio = rule(agg::EntityKind::client, detect::Metric::out_in_ratio, 600'000, 50);
    CHECK(has(rule_sql("exf", ratio, span, 1.0),
              "HAVING bytes_out / greatest(bytes_in, 1) >= 50 AND bytes_out >= 1048576"));

    // An SNI override below 1 lowers the filter, so a scaled entity is read.
    auto sni = rule(agg::EntityKind::api_host, detect::Metric::bytes_out, 600'000, 1000);
    CHECK(has(rule_sql("exf", sni, span, 0.25), "HAVING bytes_out >= 250"));
    CHECK(has(rule_sql("exf", sni, span, 4.0), "HAVING bytes_out >= 1000"));

    // A baseline learns from every entity: no HAVING.
    auto base = rule(agg::EntityKind::client, detect::Metric::bytes_out, 600'000, std::nullopt);
    base.baseline = detect::Baseline{};
    CHECK_FALSE(has(rule_sql("exf", base, span, 1.0), "HAVING"));
}

TEST_CASE("One entity's read and breakdowns name it with its text quoted", "[fleet]")
{
    auto span = rule_span(600'000, kNowMs, 0);
    auto r = rule(agg::EntityKind::client_api_host, detect::Metric::bytes_out, 600'000, 1);
    auto key = *entity_key(agg::EntityKind::client_api_host, "203.0.113.7", "it's\\x.example");
    auto one = rule_sql("exf", r, span, 1.0, &key);
    CHECK(has(one, "AND k1 = '203.0.113.7' AND k2 = 'it\\'s\\\\x.example'"));
    CHECK_FALSE(has(one, "HAVING"));
    auto sensors = breakdown_sql("exf", r, span, key, Breakdown::sensor, 16);
    CHECK(has(sensors, "SELECT sensor AS name, sum(bytes_out) AS v"));
    CHECK(has(sensors, "ORDER BY v DESC, name LIMIT 16"));
    CHECK(has(breakdown_sql("exf", r, span, key, Breakdown::ja4, 4),
              "SELECT ja4 AS name, sum(tls_flows) AS v"));
}

TEST_CASE("Entity keys and their columns round-trip for every kind", "[fleet]")
{
    using K = agg::EntityKind;
    struct Case {
        K kind;
        const char *k1, *k2;
    } cases[] = {{K::client, "203.0.113.7", ""},
                 {K::client, "2001:db8:1:2::/64", ""},
                 {K::subnet, "203.0.113.0/24", ""},
                 {K::api_host, "api.example.com", ""},
                 {K::client_api_host, "203.0.113.7", "api.example.com"},
                 {K::cohort, "proxy-net-a", ""},
                 {K::host, "", ""}};
    for (auto &c : cases) {
        auto key = entity_key(c.kind, c.k1, c.k2);
        REQUIRE(key);
        auto [k1, k2] = entity_columns(c.kind, *key);
        CHECK(k1 == c.k1);
        CHECK(k2 == c.k2);
    }
    CHECK(entity_key(K::client, "203.0.113.7", "")->prefix == 32);
    CHECK_FALSE(entity_key(K::client, "not an address", ""));
    CHECK_FALSE(entity_key(K::api_host, "", ""));
    CHECK_FALSE(entity_key(K::client_api_host, "203.0.113.7", ""));
}

TEST_CASE("The rollup, retention and alerts statements", "[fleet]")
{
    uint64_t hour = kNowS / kHour * kHour - kHour;
    auto roll = rollup_sql("exf", hour, 42);
    CHECK(has(roll, "INSERT INTO exf.traffic_hourly SELECT toDateTime(intDiv(toUInt32("
                    "period_start), 3600) * 3600) AS hour"));
    CHECK(has(roll, "max(peak_concurrent), sum(requests), toUInt32(42) FROM exf.traffic FINAL "
                    "WHERE period_start "
                    ">= toDateTime(" +
                        std::to_string(hour) + ") AND period_start < toDateTime(" +
                        std::to_string(hour + kHour) + ")"));
    CHECK(has(roll, "GROUP BY hour, sensor, client, subnet, cohort, sni, ja4"));

    auto expired = expired_partitions_sql("exf", 1000);
    CHECK(has(expired, "FROM system.parts WHERE database = 'exf' AND active"));
    CHECK(has(expired, "toUInt32OrZero(partition_id) < toYYYYMMDD(toDateTime(1000))"));
    CHECK(has(expired, "toUInt32OrZero(partition_id) < toYYYYMM(toDateTime(1000))"));
    CHECK(drop_partition_sql("exf", "traffic", "20261101") ==
          "ALTER TABLE exf.traffic DROP PARTITION ID '20261101'");

    auto open = open_alerts_sql("exf");
    CHECK(has(open, "argMax(state, time_ms) AS last_state"));
    CHECK(has(open, "FROM exf.alerts FINAL GROUP BY id, rule, entity_kind HAVING last_state IN "
                    "('open', 'update')"));
}

TEST_CASE("TabSeparated output is split into unescaped fields", "[fleet]")
{
    auto rows = tsv_rows("a\\tb\tc\\\\d\n\t\\n\n");
    REQUIRE(rows.size() == 2);
    CHECK(rows[0] == std::vector<std::string>{"a\tb", "c\\d"});
    CHECK(rows[1] == std::vector<std::string>{"", "\n"});
    CHECK(tsv_rows("").empty());
}
