// SPDX-License-Identifier: Apache-2.0
#include "fleet/schema.h"

namespace exf::fleet {

namespace {

// The columns that tell two rows of a period apart. ReplacingMergeTree
// collapses rows whose ORDER BY is equal, so a batch sent twice (a retry
// after a timeout, a period sent again after a restart) counts once when
// read with FINAL; the key must hold every such column or FINAL would merge
// rows that differ only there.
constexpr const char *kRowKey = "sensor, client, subnet, cohort, sni, ja4";

// The row key's columns, as declared.
constexpr const char *kKeyColumns = R"(
    sensor String,
    client String,
    subnet String,
    cohort String,
    sni String,
    ja4 String,
)";

constexpr const char *kCounters = R"(    bytes_in UInt64,
    bytes_out UInt64,
    packets_in UInt64,
    packets_out UInt64,
    tls_flows UInt64,
    peak_concurrent UInt32,
    requests UInt64)";

std::string traffic(const std::string &db)
{
    return "CREATE TABLE IF NOT EXISTS " + db + R"(.traffic (
    period_start DateTime,
    period_ms UInt32,)" +
           kKeyColumns + kCounters +
           R"(
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(period_start)
ORDER BY (period_start, )" +
           kRowKey + ")";
}

// One row per hour and row key, written by the evaluator from traffic FINAL
// (never by a materialized view: a view counts a retried insert again).
// version orders the rewrites of an hour: the latest wins under FINAL.
std::string traffic_hourly(const std::string &db)
{
    return "CREATE TABLE IF NOT EXISTS " + db + R"(.traffic_hourly (
    hour DateTime,)" +
           kKeyColumns + kCounters +
           R"(,
    version UInt32
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, )" +
           kRowKey + ")";
}

// Each fleet alert record (open, update, resolved) as the outputs send it;
// a restarted evaluator takes the open ones back from here.
std::string alerts(const std::string &db)
{
    return "CREATE TABLE IF NOT EXISTS " + db + R"(.alerts (
    time_ms UInt64,
    id String,
    state String,
    rule String,
    entity_kind String,
    entity String,
    record String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(toDateTime(intDiv(time_ms, 1000)))
ORDER BY (id, time_ms, state))";
}

// What turns a version 1 database into version 2: the requests column
// (rows written before read 0).
std::string upgrade_from_1_sql(const std::string &db)
{
    return "ALTER TABLE " + db + ".traffic ADD COLUMN requests UInt64; ALTER TABLE " + db +
           ".traffic_hourly ADD COLUMN requests UInt64 AFTER peak_concurrent; INSERT INTO " + db +
           ".schema_info VALUES (2)";
}

std::string schema_info(const std::string &db)
{
    return "CREATE TABLE IF NOT EXISTS " + db + ".schema_info (version UInt32) ENGINE = TinyLog";
}

}  // namespace

std::vector<SchemaTable> schema_tables(const std::string &database)
{
    return {{"schema_info", schema_info(database)},
            {"traffic", traffic(database)},
            {"traffic_hourly", traffic_hourly(database)},
            {"alerts", alerts(database)}};
}

std::string schema_sql(const std::string &database)
{
    std::string sql = "CREATE DATABASE IF NOT EXISTS " + database + ";\n";
    for (const auto &t : schema_tables(database))
        sql += "\n" + t.create + ";\n";
    sql += "\nINSERT INTO " + database + ".schema_info VALUES (" + std::to_string(kSchemaVersion) +
           ");\n";
    return sql;
}

std::string database_name_problem(const std::string &name)
{
    if (name.empty())
        return "is empty";
    if (name.size() > 64)
        return "is longer than 64 characters";
    if (name[0] >= '0' && name[0] <= '9')
        return "starts with a digit";
    for (char c : name)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return "may hold only letters, digits and '_'";
    return "";
}

Reply read_schema_version(ClickHouse &ch, const std::string &database)
{
    return ch.query("SELECT max(version) FROM " + database + ".schema_info HAVING count() > 0");
}

std::string schema_problem(ClickHouse &ch, const std::string &database, Failure *failure)
{
    Reply r = read_schema_version(ch, database);
    *failure = r.failure;
    if (!r.ok())
        return r.why;
    std::string found = r.body.substr(0, r.body.find('\n'));
    if (found == std::to_string(kSchemaVersion))
        return "";
    *failure = Failure::no_schema;
    if (found == "1")
        return "database " + database + " at " + ch.url() +
               " has schema version 1, this exfilmon uses " + std::to_string(kSchemaVersion) +
               " (traffic rows carry requests): stop the sensors and the evaluator, run " +
               upgrade_from_1_sql(database) + ", then upgrade them all";
    if (found.empty())
        return "database " + database + " at " + ch.url() +
               " records no schema version: run exfilmon fleet init --config FILE";
    return "database " + database + " at " + ch.url() + " has schema version " + found +
           ", this exfilmon uses " + std::to_string(kSchemaVersion) +
           ": upgrade the sensors and the evaluator together, or name another [fleet] database";
}

}  // namespace exf::fleet
