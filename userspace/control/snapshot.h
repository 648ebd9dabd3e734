// SPDX-License-Identifier: Apache-2.0
#pragma once
// What `exfilmon status`, `exfilmon top` and the metrics endpoint report,
// built from the daemon's state on the daemon's main loop (the aggregator,
// detector, flow tracker and outputs are single-threaded: nothing here
// locks, and nothing here may run on another thread).
//
// Control protocol (control_server.h carries it): one JSON request line,
// one JSON response line, then the daemon closes the connection.
//   {"cmd":"status"}
//   {"cmd":"top","kind":"client","window":"10m","sort":"bytes_out","n":20}
//     kind    client | subnet | sni | client_sni | cohort | host (the rule
//             vocabulary; api_host and client_api_host are accepted too)
//     window  one of the aggregation windows ([aggregate] windows); default
//             10m when configured, else the first
//     sort    bytes_out | bytes_in | tls_flows | concurrent | distinct_clients
//     n       1..1000 rows, default 20
// Responses carry "ok": true, or "ok": false and "error": "<sentence>".
// Times are Unix epoch milliseconds (*_ms). Strings from the wire (SNI) are
// JSON-escaped as they are; bytes that are not UTF-8 become U+FFFD.
//
// status: version, pid, backend, config, started_ms, uptime_s, interfaces
// [{name, ifindex, since_ms}], maps {flows|clients: {entries, capacity}} (at
// the last harvest; also evictions, see SensorState::flow_evictions), health {<kernel counter>: n}
// (capture/maps.h counter_name), events {received, queue_dropped, queue_waited, harvest_drained,
// harvest_drain_full, ringbuf_full}, anomalies
// {<name>: n} (FlowTracker), aggregate {windows, memory_bytes, updates,
// kinds {<kind>: {entities, limit, evictions, expirations}}}, detect {rules,
// evaluations, opened, updated, resolved, summaries, muted, suppressed,
// allowed, open_now, last_eval_us, memory_bytes}, alerts [{id, rule,
// severity, shadow, muted, entity_kind, entity, metric, value, threshold,
// since_ms}], outputs [{index, type, describe, queued, sent, dropped,
// reconnects, spooled, connect_failures, write_errors, connected,
// last_error, spool_file, spool_file_ok, spool_write_errors}], harvest {count, last_duration_s},
// reloads {ok, error}, fleet (null without [fleet]) {clickhouse, database,
// sensor, interval_ms, batches_sent, rows_sent, bytes_sent, failures,
// dropped_periods, spool_depth, spool_write_errors, periods_waiting,
// last_success_ms (0: none yet), last_error ("" after a success)}.
//
// top: kind, window, window_ms, sort, now_ms and rows [{entity, bytes_out,
// bytes_in, tls_flows, peak_concurrent, concurrent, distinct_clients (groups
// only), first_seen_ms, last_seen_ms, top_snis [{sni, bytes_out}], alert
// (bool), alerts [{rule, severity, since_ms}]}], heaviest first (ranked by
// the window's sliding estimate; an entity first seen less than a window ago
// shows its exact figures, as the detector reads them).
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "aggregate/aggregator.h"
#include "capture/maps.h"
#include "detect/detector.h"
#include "fleet/exporter.h"
#include "output/output.h"

namespace exf {
class FlowTracker;
}

namespace exf::control {

struct InterfaceInfo {
    std::string name;
    unsigned ifindex = 0;
    uint64_t since_ms = 0;  // Unix epoch ms it was attached
};

// The fleet export's figures ([fleet]; apps/daemon_fleet.h).
struct FleetStatus {
    std::string clickhouse, database, sensor;
    uint64_t interval_ms = 0;
    fleet::ExportStats exporter;
    // Closed periods waiting for the state file to be written before they
    // go to the exporter (0, or 1 for a moment).
    uint64_t periods_waiting = 0;
};

// The fleet evaluator's (`exfilmon fleet`) own figures.
struct EvaluatorStatus {
    uint64_t rules = 0;               // [[rules]] evaluated
    uint64_t rules_failed = 0;        // at the last evaluation: rules with a failed read
    uint64_t rule_failures = 0;       // rule reads failed, summed over evaluations
    uint64_t last_complete_ms = 0;    // wall clock of the last evaluation without one; 0: none
    uint64_t rolled_to_s = 0;         // traffic_hourly holds every hour before this
    uint64_t alert_rows_waiting = 0;  // alert records not yet in the alerts table
    double last_duration_s = 0;       // the last evaluation, everything in it, wall time
    // [fleet] evaluation = "memory": the windows and what was read into them.
    uint64_t window_entities = 0, window_cells = 0;
    uint64_t batches_read = 0, rows_read = 0;
};

// The daemon's own figures, kept by its main loop.
struct SensorState {
    std::string backend;      // ebpf | pcap
    std::string config_path;  // "" : built-in defaults
    std::vector<InterfaceInfo> interfaces;
    uint64_t start_wall_ms = 0;
    // At the last harvest.
    uint64_t flow_entries = 0, flow_capacity = 0;
    uint64_t client_entries = 0, client_capacity = 0;
    // Flow entries that left the flow table: LRU evictions (the datapath
    // deletes a flow only to replace it when a new connection reuses its
    // 5-tuple, and does not count the replacement in flow_new), derived as
    // flows created (health flow_new, read just before the table) minus the
    // entries in the table, never decreasing. It may lag by the flows
    // created during one harvest's read, never count more than were evicted.
    uint64_t flow_evictions = 0;
    // The same for the client table (health client_new minus entries).
    uint64_t client_evictions = 0;
    HealthCounters health{};
    uint64_t events_received = 0, events_dropped = 0;  // event queue
    uint64_t events_waited = 0;  // the ring buffer reader waited for a free slot
    // Events taken off the queue while a harvest ran (run_draining), and
    // harvests during which the staging limit was reached.
    uint64_t events_harvest_drained = 0, harvest_drain_full = 0;
    uint64_t harvests = 0;
    double last_harvest_s = 0;
    uint64_t reloads_ok = 0, reloads_error = 0;
    // Alert records dispatched, by rule, severity and state (shadow included).
    std::map<std::array<std::string, 3>, uint64_t> alerts;
    // One per output, in order: "syslog_unix", "syslog_tcp", ..., "json".
    std::vector<std::string> output_types;
    std::optional<FleetStatus> fleet;  // nullopt: no [fleet]
};

// Everything the snapshots read. References: valid for one call.
struct DaemonView {
    const SensorState &sensor;
    const agg::Aggregator &aggregator;
    const detect::Detector &detector;
    const FlowTracker &tracker;
    const std::vector<std::unique_ptr<output::Output>> &outputs;
    uint64_t now_ms;   // the aggregator's clock (monotonic)
    uint64_t wall_ms;  // Unix epoch ms now
};

nlohmann::json status_json(const DaemonView &v);

struct TopRequest {
    agg::EntityKind kind = agg::EntityKind::client;
    std::string window;  // "" : the default (10m when configured, else the first)
    agg::SortBy sort = agg::SortBy::bytes_out;
    size_t n = 20;
};
// "" when the request can be answered, else why not: a ranking that does not
// exist for the kind ("sort: distinct_clients applies to subnet, cohort, sni
// and host only, not client", the rules' own rule). The window is checked
// against the daemon's by top_json.
std::string top_request_problem(const TopRequest &req);
// Throws std::invalid_argument with a sentence for an unknown window.
nlohmann::json top_json(const DaemonView &v, const TopRequest &req);

// One request line in, one response line out (with its '\n'). Never throws.
std::string handle_request(std::string_view line, const DaemonView &v);

// JSON text, UTF-8 safe (invalid bytes from the wire become U+FFFD).
std::string dump(const nlohmann::json &j);

// "client" | "subnet" | "sni" | "client_sni" | "cohort" | "host" (and the
// aggregator's names); nullopt otherwise.
std::optional<agg::EntityKind> parse_top_kind(std::string_view s);
std::optional<agg::SortBy> parse_sort(std::string_view s);
const char *sort_name(agg::SortBy s);

// ---- metrics ----------------------------------------------------------------

// Numbers only: what the metrics thread may read (under its mutex).
struct MetricsSnapshot {
    std::string version;
    uint64_t start_wall_ms = 0;
    HealthCounters health{};
    std::map<std::string, uint64_t> anomalies;
    uint64_t events_received = 0, queue_drops = 0, queue_waits = 0;
    uint64_t harvest_drained = 0, harvest_drain_full = 0;
    uint64_t flow_entries = 0, flow_capacity = 0, client_entries = 0, client_capacity = 0;
    uint64_t flow_evictions = 0, client_evictions = 0;
    struct Kind {
        std::string name;
        uint64_t entities = 0, limit = 0, evictions = 0, expirations = 0;
    };
    std::vector<Kind> kinds;
    uint64_t aggregate_memory_bytes = 0;
    uint64_t harvests = 0;
    double last_harvest_s = 0;
    uint64_t evaluations = 0;
    double last_eval_s = 0;
    std::map<std::array<std::string, 3>, uint64_t> alerts;  // rule, severity, state
    uint64_t alerts_open = 0;
    struct Out {
        std::string type;
        uint64_t spooled = 0, sent = 0, dropped = 0, reconnects = 0, connect_failures = 0,
                 write_errors = 0;
        bool connected = false;
        uint64_t spool_write_errors = 0;
        bool spool_file_ok = true;
    };
    std::vector<Out> outputs;
    uint64_t reloads_ok = 0, reloads_error = 0;
    std::optional<FleetStatus> fleet;
    // The fleet evaluator's: only the process, detect, alert and output
    // families are rendered beside it (no datapath, no aggregator).
    std::optional<EvaluatorStatus> evaluator;
};

MetricsSnapshot metrics_snapshot(const DaemonView &v);
// Prometheus text exposition format 0.0.4. Names (all prefixed exfilmon_):
//   build_info{version} 1, start_time_seconds,
//   packets_total, bytes_total (IP bytes the datapath parsed),
//   datapath_events_total{counter} (every other kernel health counter:
//     parse failures by reason, flows, events, failures),
//   parse_anomalies_total{reason} (ClientHello and event anomalies),
//   events_total, ringbuf_drops_total, event_queue_drops_total, event_queue_waits_total,
//   event_queue_harvest_drained_total, event_queue_harvest_drain_full_total,
//   map_entries{map}, map_capacity{map} (flows, clients),
//   map_evictions_total{map="flows"|"clients"} (SensorState::flow_evictions, client_evictions),
//   aggregate_entities{kind}, aggregate_entity_limit{kind},
//   aggregate_evictions_total{kind}, aggregate_expirations_total{kind},
//   aggregate_memory_bytes,
//   harvests_total, harvest_duration_seconds (the last),
//   detect_evaluations_total, detect_evaluation_duration_seconds (the last),
//   alerts_total{rule,severity,state}, alerts_open,
//   output_spool_depth{output,type}, output_sent_total, output_dropped_total,
//   output_reconnects_total, output_connect_failures_total,
//   output_write_errors_total, output_connected,
//   output_spool_write_errors_total (spool file writes that failed: disk
//   full, read-only, I/O error), output_spool_file_ok (0 while the spool
//   file cannot be written; 1 when it can or there is none),
//   config_reloads_total{result="ok|error"},
//   with [fleet] only: fleet_rows_sent_total, fleet_bytes_sent_total,
//   fleet_periods_sent_total, fleet_failures_total,
//   fleet_dropped_periods_total, fleet_spool_depth (periods waiting: the
//   spool and those waiting for the state file),
//   fleet_spool_write_errors_total, fleet_last_success_seconds (0: none).
// The fleet evaluator's snapshot (evaluator set) renders build_info,
// start_time_seconds, detect_evaluations_total,
// detect_evaluation_duration_seconds, alerts_total, alerts_open, the
// output_* families and: fleet_eval_rules, fleet_eval_rules_failed (at the
// last evaluation), fleet_eval_rule_failures_total,
// fleet_eval_last_complete_seconds (0: none), fleet_eval_rolled_up_to_seconds,
// fleet_eval_alert_rows_waiting, fleet_eval_last_duration_seconds,
// fleet_eval_window_entities, fleet_eval_window_cells,
// fleet_eval_batches_read_total, fleet_eval_rows_read_total.
std::string render_metrics(const MetricsSnapshot &m);

}  // namespace exf::control
