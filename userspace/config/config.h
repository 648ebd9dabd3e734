// SPDX-License-Identifier: Apache-2.0
#pragma once
// exfilmon's configuration: one TOML file (configs/exfilmon.toml), every key
// optional, the same defaults built in. Problems are reported as
// FILE:LINE:COLUMN: message.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "aggregate/aggregator.h"
#include "capture/bpf_sensor.h"
#include "detect/rules.h"
#include "fleet/fleet_config.h"
#include "output/output.h"

namespace exf {

struct Config {
    Config() { bpf.pin = true; }
    // [capture]
    std::vector<std::string> interfaces;  // empty: the default route's interface
    std::string backend = "ebpf";         // ebpf | pcap
    // [bpf]
    SensorOptions bpf;
    // [aggregate]
    agg::AggConfig aggregate;
    std::string cohorts_file;  // "" : no cohorts
    // [daemon]
    uint64_t report_interval_ms = 5000;  // 0: no report (only in a terminal anyway)
    uint64_t harvest_interval_ms = 1000;
    uint32_t event_queue_size = 4096;  // ring buffer -> aggregator queue, events
    // The state kept across restarts (state/state_file.h); "" keeps none.
    std::string state_dir = "/var/lib/exfilmon";
    uint64_t state_interval_ms = 15000;
    // [log]
    std::string log_level = "info";
    // [control]: the local socket of `exfilmon status` and `top`
    // (control/control_server.h). Mode 0600 (root only), or 0660 with
    // control_group as its group when set.
    std::string control_socket = "/run/exfilmon/control.sock";
    std::string control_group;
    // [metrics]: the Prometheus endpoint (control/metrics.h); listen =
    // "HOST:PORT" ("[v6]:PORT"), HOST an address literal.
    bool metrics_enabled = true;
    std::string metrics_host = "127.0.0.1";
    uint16_t metrics_port = 9464;
    // listen was given: `exfilmon fleet` otherwise serves on
    // kFleetEvaluatorMetricsPort, so that it and a sensor can share a host.
    bool metrics_listen_set = false;
    static constexpr uint16_t kFleetEvaluatorMetricsPort = 9465;
    // [detect], [[rules]], [[allow]], [sni_overrides."name"]. Every rule's
    // window is added to aggregate.windows_ms when not already there.
    detect::DetectConfig detect;
    // [[outputs]]; none configured: alerts go to syslog on /dev/log
    // (RFC 5424) only when the daemon runs, never in replay.
    std::vector<output::OutputConfig> outputs;
    bool outputs_configured = false;
    // [fleet]: traffic summaries to ClickHouse, fleet-wide rules
    // (docs/fleet.md); absent, nothing is exported.
    fleet::FleetConfig fleet;
};

struct ConfigIssue {
    std::string file;
    uint32_t line = 0, column = 0;  // line 0: the whole file
    std::string message;
    bool warning = false;  // in ConfigResult::warnings
    // FILE:LINE:COLUMN: message; about the whole file, FILE: message;
    // "warning: " before the message of a warning.
    std::string format() const;
};

struct ConfigResult {
    Config config;
    std::vector<ConfigIssue> issues;  // errors: the configuration is refused
    // Said, not refused: a collector name that does not resolve now (it may
    // at run time; the output keeps retrying).
    std::vector<ConfigIssue> warnings;
    std::string file;
    // Where each table and key was read, for checks made after parsing
    // (config/run_checks.h): "[control]", "[control] group", and with the
    // index for arrays of tables, "[[outputs]]#0", "[[outputs]]#0 address".
    std::map<std::string, std::pair<uint32_t, uint32_t>> positions;  // line, column
    bool ok() const { return issues.empty(); }
    // An issue at that key, else at its table, else about the whole file.
    ConfigIssue at(const std::string &key, std::string message) const;
};

ConfigResult parse_config(std::string_view text, const std::string &source_name);
// The file must be readable, not a directory, and neither it nor its
// directory writable by others (common/files.h); then parse_config. These
// refusals are issues about the whole file (line 0) saying why.
ConfigResult load_config(const std::string &path);

// Every key the parser accepts, as "[table] key" ("[[rules]] name",
// "[[rules]] baseline.factor", "[sni_overrides.\"NAME\"] scale"), sorted:
// docs/configuration.md documents exactly these (tested).
std::vector<std::string> config_keys();

}  // namespace exf
