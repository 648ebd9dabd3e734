// SPDX-License-Identifier: Apache-2.0
#include "fleet/rule_sql.h"

#include <algorithm>
#include <cmath>

#include "aggregate/cohorts.h"
#include "common/text.h"

namespace exf::fleet {

namespace {

constexpr uint64_t kHourS = 3600;

std::string at(uint64_t s) { return "toDateTime(" + std::to_string(s) + ")"; }

// The rows of the span, from traffic and (whole hours) traffic_hourly, as
// one set of columns: t (period or hour start), the row key, the sums.
std::string source(const std::string &db, const Span &sp)
{
    const std::string cols = "sensor, client, subnet, cohort, sni, ja4, bytes_in, bytes_out, "
                             "tls_flows, peak_concurrent";
    auto raw = [&](uint64_t from, uint64_t to) {
        return "(period_start >= " + at(from) + " AND period_start < " + at(to) + ")";
    };
    bool hourly = sp.hourly_from_s < sp.hourly_to_s;
    std::string where =
        hourly ? raw(sp.from_s, sp.hourly_from_s) + " OR " + raw(sp.hourly_to_s, sp.to_s)
               : raw(sp.from_s, sp.to_s);
    std::string sql =
        "SELECT period_start AS t, " + cols + " FROM " + db + ".traffic FINAL WHERE " + where;
    if (hourly)
        sql += " UNION ALL SELECT hour AS t, " + cols + " FROM " + db +
               ".traffic_hourly FINAL WHERE hour >= " + at(sp.hourly_from_s) + " AND hour < " +
               at(sp.hourly_to_s);
    return sql;
}

struct KindColumns {
    const char *k1, *k2, *filter;
};

KindColumns kind_columns(agg::EntityKind kind)
{
    switch (kind) {
    case agg::EntityKind::client: return {"client", "''", "1"};
    case agg::EntityKind::subnet: return {"subnet", "''", "1"};
    case agg::EntityKind::api_host: return {"sni", "''", "sni != ''"};
    case agg::EntityKind::client_api_host: return {"client", "sni", "sni != ''"};
    case agg::EntityKind::cohort: return {"cohort", "''", "cohort != ''"};
    case agg::EntityKind::host: return {"''", "''", "1"};
    case agg::EntityKind::ja4: return {"ja4", "''", "ja4 != ''"};
    case agg::EntityKind::ja4_sni: return {"ja4", "sni", "ja4 != '' AND sni != ''"};
    }
    return {"''", "''", "0"};
}

// The span's rows keyed by the rule's entity (k1, k2), optionally one entity's only.
std::string keyed(const std::string &db, agg::EntityKind kind, const Span &sp,
                  const agg::EntityKey *only)
{
    auto c = kind_columns(kind);
    std::string where = c.filter;
    if (only) {
        auto [k1, k2] = entity_columns(kind, *only);
        where += " AND k1 = " + sql_quote(k1) + " AND k2 = " + sql_quote(k2);
    }
    return std::string("SELECT ") + c.k1 + " AS k1, " + c.k2 +
           " AS k2, t, sensor, client, subnet, sni, ja4, bytes_in, bytes_out, tls_flows, "
           "peak_concurrent FROM (" +
           source(db, sp) + ") WHERE " + where;
}

// The metric over the outer query's columns.
std::string metric_expr(const detect::Rule &rule)
{
    switch (rule.metric) {
    case detect::Metric::bytes_out: return "bytes_out";
    case detect::Metric::bytes_in: return "bytes_in";
    case detect::Metric::tls_flows: return "tls_flows";
    case detect::Metric::requests: return "requests";
    case detect::Metric::concurrent_flows: return "peak_concurrent";
    case detect::Metric::distinct_clients: return "distinct_clients";
    case detect::Metric::distinct_subnets: return "distinct_subnets";
    case detect::Metric::distinct_sensors: return "distinct_sensors";
    case detect::Metric::out_in_ratio: return "bytes_out / greatest(bytes_in, 1)";
    }
    return "0";
}

// Only the entities that can hold a threshold rule; baseline rules learn
// from every entity, so they read them all.
std::string having(const detect::Rule &rule, double min_scale)
{
    if (!rule.threshold || rule.baseline)
        return "";
    double limit = *rule.threshold * std::min(1.0, min_scale);
    std::string h = " HAVING " + metric_expr(rule) + " >= " + format_number(limit);
    if (rule.metric == detect::Metric::out_in_ratio)
        h += " AND bytes_out >= " + format_number(rule.min_bytes_out);
    return h;
}

std::string addr_text(const agg::EntityKey &key)
{
    return agg::format_key(agg::EntityKind::client, key);
}

std::optional<agg::EntityKey> prefix_from(const std::string &text)
{
    std::string why;
    auto net = agg::parse_cidr(text, why);
    if (!net)
        return std::nullopt;
    return agg::prefix_key(net->addr, net->prefix);
}

}  // namespace

Span rule_span(uint64_t window_ms, uint64_t now_ms, uint64_t rolled_to_s)
{
    Span sp;
    sp.to_s = now_ms / 1000;
    sp.from_s = sp.to_s - std::min(sp.to_s, window_ms / 1000);
    if (window_ms < kRollupFromMs)
        return sp;
    uint64_t first_whole = (sp.from_s + kHourS - 1) / kHourS * kHourS;
    uint64_t last_whole = std::min(rolled_to_s, sp.to_s / kHourS * kHourS);
    if (first_whole < last_whole) {
        sp.hourly_from_s = first_whole;
        sp.hourly_to_s = last_whole;
    }
    return sp;
}

std::string sql_quote(std::string_view text)
{
    std::string out = "'";
    for (char c : text) {
        if (c == '\\' || c == '\'')
            out += '\\';
        if (c == '\0') {
            out += "\\0";
            continue;
        }
        out += c;
    }
    return out + "'";
}

std::optional<agg::EntityKey> entity_key(agg::EntityKind kind, const std::string &k1,
                                         const std::string &k2)
{
    switch (kind) {
    case agg::EntityKind::client:
    case agg::EntityKind::subnet: return prefix_from(k1);
    case agg::EntityKind::api_host:
    case agg::EntityKind::cohort:
        if (k1.empty())
            return std::nullopt;
        return agg::name_key(k1);
    case agg::EntityKind::client_api_host: {
        auto c = prefix_from(k1);
        if (!c || k2.empty())
            return std::nullopt;
        c->name = k2;
        return c;
    }
    case agg::EntityKind::host: return agg::host_key();
    case agg::EntityKind::ja4:
        if (k1.empty())
            return std::nullopt;
        return agg::ja4_key(k1);
    case agg::EntityKind::ja4_sni:
        if (k1.empty() || k2.empty())
            return std::nullopt;
        return agg::ja4_key(k1, k2);
    }
    return std::nullopt;
}

std::pair<std::string, std::string> entity_columns(agg::EntityKind kind, const agg::EntityKey &key)
{
    switch (kind) {
    case agg::EntityKind::client:
    case agg::EntityKind::subnet: return {addr_text(key), ""};
    case agg::EntityKind::api_host:
    case agg::EntityKind::cohort: return {key.name, ""};
    case agg::EntityKind::client_api_host: return {addr_text(key), key.name};
    case agg::EntityKind::host: return {"", ""};
    case agg::EntityKind::ja4: return {key.ja4, ""};
    case agg::EntityKind::ja4_sni: return {key.ja4, key.name};
    }
    return {"", ""};
}

std::string rule_sql(const std::string &db, const detect::Rule &rule, const Span &span,
                     double min_scale, const agg::EntityKey *only)
{
    // Per entity and period (or hour) first: the concurrent flows of one
    // period add up over sensors and keys; the largest period is the peak.
    std::string per_period =
        "SELECT k1, k2, t, sum(bytes_out) AS o, sum(bytes_in) AS i, sum(tls_flows) AS f, "
        "sum(peak_concurrent) AS c, groupUniqArray(client) AS cl, groupUniqArray(sensor) AS se, "
        "groupUniqArray(subnet) AS sn "
        "FROM (" +
        keyed(db, rule.entity, span, only) + ") GROUP BY k1, k2, t";
    return "SELECT k1, k2, sum(o) AS bytes_out, sum(i) AS bytes_in, sum(f) AS tls_flows, "
           "max(c) AS peak_concurrent, uniqExactArray(cl) AS distinct_clients, "
           "uniqExactArray(se) AS distinct_sensors, toUInt32(min(t)) AS first_seen, "
           "uniqExactArray(sn) AS distinct_subnets FROM (" +
           per_period + ") GROUP BY k1, k2" + (only ? "" : having(rule, min_scale)) +
           " FORMAT TabSeparated";
}

std::string breakdown_sql(const std::string &db, const detect::Rule &rule, const Span &span,
                          const agg::EntityKey &key, Breakdown by, size_t limit)
{
    const char *name = by == Breakdown::sensor ? "sensor" : by == Breakdown::sni ? "sni" : "ja4";
    const char *value = by == Breakdown::ja4 ? "tls_flows" : "bytes_out";
    return std::string("SELECT ") + name + " AS name, sum(" + value + ") AS v FROM (" +
           keyed(db, rule.entity, span, &key) + ") WHERE name != '' GROUP BY name " +
           "ORDER BY v DESC, name LIMIT " + std::to_string(limit) + " FORMAT TabSeparated";
}

std::string rollup_sql(const std::string &db, uint64_t hour_s, uint32_t version)
{
    return "INSERT INTO " + db +
           ".traffic_hourly SELECT toDateTime(intDiv(toUInt32(period_start), 3600) * 3600) AS "
           "hour, sensor, client, subnet, cohort, sni, ja4, sum(bytes_in), sum(bytes_out), "
           "sum(packets_in), sum(packets_out), sum(tls_flows), max(peak_concurrent), toUInt32(" +
           std::to_string(version) + ") FROM " + db +
           ".traffic FINAL WHERE period_start >= " + at(hour_s) + " AND period_start < " +
           at(hour_s + kHourS) + " GROUP BY hour, sensor, client, subnet, cohort, sni, ja4";
}

std::string last_rolled_hour_sql(const std::string &db)
{
    return "SELECT toUInt32(max(hour)) FROM " + db + ".traffic_hourly";
}

std::string first_period_sql(const std::string &db)
{
    return "SELECT toUInt32(min(period_start)) FROM " + db + ".traffic";
}

std::string expired_partitions_sql(const std::string &db, uint64_t cutoff_s)
{
    return "SELECT DISTINCT table, partition_id FROM system.parts WHERE database = " +
           sql_quote(db) +
           " AND active AND match(partition_id, '^[0-9]+$') AND ((table = 'traffic' AND "
           "toUInt32OrZero(partition_id) < toYYYYMMDD(" +
           at(cutoff_s) +
           ")) OR (table = 'traffic_hourly' AND toUInt32OrZero(partition_id) < toYYYYMM(" +
           at(cutoff_s) + "))) ORDER BY table, partition_id FORMAT TabSeparated";
}

std::string drop_partition_sql(const std::string &db, const std::string &table,
                               const std::string &partition_id)
{
    // 18.16 takes a day partition only by its ID ('20261207'), not by value.
    return "ALTER TABLE " + db + "." + table + " DROP PARTITION ID " + sql_quote(partition_id);
}

std::string open_alerts_sql(const std::string &db)
{
    return "SELECT id, rule, entity_kind, argMax(state, time_ms) AS last_state, "
           "argMax(record, time_ms) FROM " +
           db +
           ".alerts FINAL GROUP BY id, rule, entity_kind HAVING last_state IN ('open', 'update') "
           "ORDER BY id FORMAT TabSeparated";
}

std::string tsv_unescape(std::string_view field)
{
    std::string out;
    for (size_t i = 0; i < field.size(); i++) {
        char c = field[i];
        if (c != '\\' || i + 1 == field.size()) {
            out += c;
            continue;
        }
        switch (char e = field[++i]) {
        case 't': out += '\t'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case '0': out += '\0'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        default: out += e; break;  // \\ \' and the rest: the character itself
        }
    }
    return out;
}

std::vector<std::vector<std::string>> tsv_rows(const std::string &body)
{
    std::vector<std::vector<std::string>> rows;
    size_t pos = 0;
    while (pos < body.size()) {
        size_t end = body.find('\n', pos);
        if (end == std::string::npos)
            end = body.size();
        std::string_view line(body.data() + pos, end - pos);
        std::vector<std::string> fields;
        size_t f = 0;
        while (true) {
            size_t tab = line.find('\t', f);
            fields.push_back(tsv_unescape(
                line.substr(f, tab == std::string_view::npos ? std::string_view::npos : tab - f)));
            if (tab == std::string_view::npos)
                break;
            f = tab + 1;
        }
        rows.push_back(std::move(fields));
        pos = end + 1;
    }
    return rows;
}

}  // namespace exf::fleet
