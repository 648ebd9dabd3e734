// SPDX-License-Identifier: Apache-2.0
#pragma once
// `exfilmon fleet schema` and `exfilmon fleet init`: the fleet's tables in
// ClickHouse ([fleet] of the configuration; docs/fleet.md). Exit status 0
// when done, 1 when ClickHouse cannot be reached or refuses, 2 for a
// configuration error (no [fleet] table, a bad key, a refused user, a
// database holding another schema version).
#include <iosfwd>
#include <optional>
#include <string>

#include "config/config.h"

namespace exf {

// The configuration of `path` when it loads and has a [fleet] table; else
// nullopt after printing why (exit 2).
std::optional<Config> load_fleet_config(const std::string &path, std::ostream &err);

// Prints the SQL `init` runs, for a DBA to apply by hand.
int run_fleet_schema(const std::string &config_path, std::ostream &out, std::ostream &err);
// Creates the database, the tables and the version row where missing,
// printing what it did for each; running it again changes nothing.
int run_fleet_init(const std::string &config_path, std::ostream &out, std::ostream &err);

}  // namespace exf
