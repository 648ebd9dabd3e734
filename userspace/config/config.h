#pragma once
// exfilmon's configuration: one TOML file (configs/exfilmon.toml), every key
// optional, the same defaults built in. Problems are reported as
// FILE:LINE:COLUMN: message.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "aggregate/aggregator.h"
#include "capture/bpf_sensor.h"
#include "detect/rules.h"
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
    // The state kept across restarts (pipeline/state_file.h); "" keeps none.
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
    // [detect], [[rules]], [[allow]], [sni_overrides."name"]. Every rule's
    // window is added to aggregate.windows_ms when not already there.
    detect::DetectConfig detect;
    // [[outputs]]; none configured: alerts go to syslog on /dev/log
    // (RFC 5424) only when the daemon runs, never in replay.
    std::vector<output::OutputConfig> outputs;
    bool outputs_configured = false;
};

struct ConfigIssue {
    std::string file;
    uint32_t line = 0, column = 0;
    std::string message;
    std::string format() const;  // FILE:LINE:COLUMN: message
};

struct ConfigResult {
    Config config;
    std::vector<ConfigIssue> issues;
    bool ok() const { return issues.empty(); }
};

ConfigResult parse_config(std::string_view text, const std::string &source_name);
ConfigResult load_config(const std::string &path);

// Why a file the daemon trusts (configuration, cohorts) must be refused: it,
// or its directory unless sticky, is writable by others. "" when it is not.
std::string writable_by_others(const std::string &path);

// Every key the parser accepts, as "[table] key" ("[[rules]] name",
// "[[rules]] baseline.factor", "[sni_overrides.\"NAME\"] scale"), sorted:
// docs/configuration.md documents exactly these (tested).
std::vector<std::string> config_keys();

}  // namespace exf
