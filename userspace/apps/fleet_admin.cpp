// SPDX-License-Identifier: Apache-2.0
#include "apps/fleet_admin.h"

#include <optional>
#include <ostream>

#include "common/error.h"
#include "config/config.h"
#include "config/run_checks.h"
#include "fleet/clickhouse.h"
#include "fleet/schema.h"

namespace exf {

namespace {

constexpr int kFailedExit = 1;

// The [fleet] settings of the file, or nullopt after printing why not.
std::optional<fleet::FleetConfig> fleet_settings(const std::string &path, std::ostream &err)
{
    auto cfg = load_fleet_config(path, err);
    if (!cfg)
        return std::nullopt;
    return cfg->fleet;
}

int failed(const fleet::Reply &r, std::ostream &err)
{
    err << "exfilmon fleet init: " << r.why << "\n";
    return fleet::is_configuration_failure(r.failure) ? kConfigErrorExit : kFailedExit;
}

// "created" or "exists" for each table; the first failure ends it.
std::optional<fleet::Reply> create_tables(fleet::ClickHouse &ch, const std::string &db,
                                          std::ostream &out)
{
    for (const auto &t : fleet::schema_tables(db)) {
        auto exists = ch.query("EXISTS TABLE " + db + "." + t.name);
        if (!exists.ok())
            return exists;
        if (exists.body.starts_with("1")) {
            out << "exists: table " << db << "." << t.name << "\n";
            continue;
        }
        if (auto created = ch.query(t.create); !created.ok())
            return created;
        out << "created: table " << db << "." << t.name << "\n";
    }
    return std::nullopt;
}

// Records this schema version in a new database; an existing one must
// already hold it.
int record_version(fleet::ClickHouse &ch, const std::string &db, std::ostream &out,
                   std::ostream &err)
{
    auto found = fleet::read_schema_version(ch, db);
    if (!found.ok())
        return failed(found, err);
    std::string version = std::to_string(fleet::kSchemaVersion);
    if (found.body.empty()) {
        auto r = ch.query("INSERT INTO " + db + ".schema_info VALUES (" + version + ")");
        if (!r.ok())
            return failed(r, err);
        out << "recorded: schema version " << version << "\n";
        return 0;
    }
    fleet::Failure why;
    if (auto problem = fleet::schema_problem(ch, db, &why); !problem.empty()) {
        err << "exfilmon fleet init: " << problem << "\n";
        return fleet::is_configuration_failure(why) ? kConfigErrorExit : kFailedExit;
    }
    out << "exists: schema version " << version << "\n";
    return 0;
}

}  // namespace

std::optional<Config> load_fleet_config(const std::string &path, std::ostream &err)
{
    auto res = load_config(path);
    for (auto &i : res.issues)
        err << i.format() << "\n";
    if (!res.ok())
        return std::nullopt;
    if (!res.config.fleet.enabled) {
        err << path << ": no [fleet] table: add one naming the ClickHouse server (docs/fleet.md)\n";
        return std::nullopt;
    }
    return std::move(res.config);
}

int run_fleet_schema(const std::string &config_path, std::ostream &out, std::ostream &err)
{
    auto cfg = fleet_settings(config_path, err);
    if (!cfg)
        return kConfigErrorExit;
    out << fleet::schema_sql(cfg->database);
    return 0;
}

int run_fleet_init(const std::string &config_path, std::ostream &out, std::ostream &err)
{
    auto cfg = fleet_settings(config_path, err);
    if (!cfg)
        return kConfigErrorExit;
    try {
        fleet::ClickHouse ch(*cfg);
        const std::string &db = cfg->database;
        auto r = ch.query("CREATE DATABASE IF NOT EXISTS " + db);
        if (!r.ok())
            return failed(r, err);
        out << "ready: database " << db << " at " << ch.url() << "\n";
        if (auto failure = create_tables(ch, db, out))
            return failed(*failure, err);
        return record_version(ch, db, out, err);
    } catch (const Error &e) {
        err << "exfilmon fleet init: " << e.what() << "\n";
        return kConfigErrorExit;
    }
}

}  // namespace exf
