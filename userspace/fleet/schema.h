// SPDX-License-Identifier: Apache-2.0
#pragma once
// The fleet's tables in ClickHouse, as SQL both Debian's 18.16 and current
// releases accept (docs/fleet.md, "Schema"). The version is kept in
// schema_info: a sensor or evaluator meeting another version refuses to
// write, naming it, instead of writing rows the tables do not mean.
#include <cstdint>
#include <string>
#include <vector>

#include "fleet/clickhouse.h"

namespace exf::fleet {

// 2: traffic rows carry requests.
inline constexpr uint32_t kSchemaVersion = 2;

struct SchemaTable {
    std::string name;    // without the database
    std::string create;  // CREATE TABLE IF NOT EXISTS db.name ...
};

// The database's tables in the order they are created.
std::vector<SchemaTable> schema_tables(const std::string &database);
// Everything `exfilmon fleet schema` prints: the database, the tables and
// the version row, one statement per paragraph, each ending in ';'.
std::string schema_sql(const std::string &database);
// "" when `name` can be a database name in the SQL above unquoted: letters,
// digits and '_', not starting with a digit; else the problem.
std::string database_name_problem(const std::string &name);

// The schema version the database records: a Reply that failed (no
// database, no schema_info: Failure::no_schema), or its body "N\n" ("" when
// none is recorded).
Reply read_schema_version(ClickHouse &ch, const std::string &database);
// "" when the database holds this exfilmon's schema; else the sentence
// naming what is found and the fix, and *failure why (no_schema for a
// missing or another version; the reply's failure otherwise).
std::string schema_problem(ClickHouse &ch, const std::string &database, Failure *failure);

}  // namespace exf::fleet
