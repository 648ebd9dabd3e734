// SPDX-License-Identifier: Apache-2.0
#pragma once
// `exfilmon fleet --config FILE`: the fleet evaluator (docs/fleet.md,
// "Evaluation"). Every [detect] interval it evaluates the configuration's
// [[rules]] over the sums of all sensors in ClickHouse, through the
// daemon's detector and [[outputs]]; writes each alert record to the alerts
// table too; rolls closed hours up into traffic_hourly; drops partitions
// older than [fleet] retention. Started again, it takes the alerts still
// open back from the alerts table.
// Exit status: 0 after SIGINT/SIGTERM (or one evaluation with once), 1 when
// ClickHouse cannot be reached at start, 2 for a configuration error (the
// file, a refused user, a missing schema or another schema version).
#include <iosfwd>
#include <string>

namespace exf {

struct FleetEvalOptions {
    std::string config_path;
    bool once = false;  // one evaluation, then exit (a check, a cron job)
};

int run_fleet_evaluator(const FleetEvalOptions &opts, std::ostream &out, std::ostream &err);

}  // namespace exf
