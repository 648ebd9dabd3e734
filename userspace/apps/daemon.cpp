// SPDX-License-Identifier: Apache-2.0
#include "apps/daemon.h"

#include <linux/capability.h>
#include <net/if.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include "aggregate/aggregator.h"
#include "aggregate/entity_key.h"
#include "apps/daemon_fleet.h"
#include "apps/tls_attribution.h"
#include "capture/bpf_sensor.h"
#include "capture/maps.h"
#include "capture/netdev.h"
#include "capture/tc_attach.h"
#include "common/addr.h"
#include "common/error.h"
#include "common/log.h"
#include "common/periodic.h"
#include "common/privileges.h"
#include "common/text.h"
#include "config/config.h"
#include "config/run_checks.h"
#include "control/control_server.h"
#include "control/metrics_server.h"
#include "control/snapshot.h"
#include "detect/detector.h"
#include "flows/flow_tracker.h"
#include "harvest/drain.h"
#include "harvest/harvest_stage.h"
#include "output/dispatch.h"
#include "output/output.h"
#include "sources/source.h"
#include "state/state_file.h"

namespace exf {

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};

void on_stop(int) { g_stop = true; }
void on_hup(int) { g_reload = true; }

void print_clients(std::vector<ClientRow> rows, const HealthCounters &h, uint64_t events,
                   uint64_t queue_drops, const FlowTrackerStats &ts)
{
    std::sort(rows.begin(), rows.end(),
              [](const auto &a, const auto &b) { return a.stats.bytes_out > b.stats.bytes_out; });
    std::printf("%-39s %10s %10s %14s %14s %10s %10s %10s\n", "client", "tls_flows", "closed",
                "bytes_in", "bytes_out", "pkts_in", "pkts_out", "requests");
    for (auto &r : rows)
        std::printf("%-39s %10llu %10llu %14llu %14llu %10llu %10llu %10llu\n",
                    format_addr(r.key.addr).c_str(), (unsigned long long)r.stats.tls_flows_opened,
                    (unsigned long long)r.stats.tls_flows_closed,
                    (unsigned long long)r.stats.bytes_in, (unsigned long long)r.stats.bytes_out,
                    (unsigned long long)r.stats.pkts_in, (unsigned long long)r.stats.pkts_out,
                    (unsigned long long)r.stats.requests);
    std::printf("-- %zu clients; packets %llu, TLS flows %llu, QUIC flows %llu, events %llu, "
                "ring buffer full %llu, queue drops %llu, ClientHellos parsed %llu, bad events "
                "%llu\n\n",
                rows.size(), (unsigned long long)h[EXF_C_PACKETS],
                (unsigned long long)h[EXF_C_TLS_FLOWS], (unsigned long long)h[EXF_C_QUIC_FLOWS],
                (unsigned long long)events, (unsigned long long)h[EXF_C_RB_FULL],
                (unsigned long long)queue_drops, (unsigned long long)ts.hellos_done,
                (unsigned long long)ts.bad_events);
    std::fflush(stdout);
}

// Bytes from the wire in the log: printable ASCII, the rest as \xNN, at
// most this many.
constexpr size_t kLogFieldMax = 255;

uint64_t monotonic_ms()
{
    return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now().time_since_epoch())
                        .count());
}

// The heaviest API hosts (SNI) over the longest window.
void print_api_hosts(const agg::Aggregator &a, uint64_t now_ms)
{
    const auto &w = a.config().windows_ms;
    if (w.empty())
        return;
    size_t longest = size_t(std::max_element(w.begin(), w.end()) - w.begin());
    std::printf("%-40s %14s %14s %10s %8s   (last %llus)\n", "api_host", "bytes_out", "bytes_in",
                "tls_flows", "clients", (unsigned long long)(w[longest] / 1000));
    for (auto &r : a.top(agg::EntityKind::api_host, longest, agg::SortBy::bytes_out, 10, now_ms))
        std::printf(
            "%-40s %14llu %14llu %10llu %8u\n",
            ascii_escape(agg::format_key(agg::EntityKind::api_host, r.key), kLogFieldMax).c_str(),
            (unsigned long long)r.value.bytes_out, (unsigned long long)r.value.bytes_in,
            (unsigned long long)r.value.tls_flows, r.value.distinct_clients);
    std::printf("\n");
    std::fflush(stdout);
}

// The periodic tables are for a person watching `exfilmon run` in a terminal:
// not for a pipe, a file or the journal (systemd sets INVOCATION_ID, and
// JOURNAL_STREAM when stdout is the journal), where they would bury the log.
bool report_to_terminal()
{
    return isatty(STDOUT_FILENO) && !std::getenv("INVOCATION_ID") && !std::getenv("JOURNAL_STREAM");
}

// One report: a local-time header, then the client and API host tables.
void print_report(LiveSource &source, uint64_t events, const FlowTracker &tracker,
                  const agg::Aggregator &aggregator)
{
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    char when[40];
    std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S%z", &tm);
    std::printf("== %s ==\n", when);
    print_clients(source.clients(), source.health(), events, source.events_dropped(),
                  tracker.stats());
    print_api_hosts(aggregator, monotonic_ms());
}

uint64_t wall_ms()
{
    return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count());
}

// The outputs of a configuration; without [[outputs]], syslog on /dev/log.
std::vector<output::OutputConfig> output_configs(const Config &cfg)
{
    return output::output_configs(cfg.outputs, cfg.outputs_configured);
}

bool same_output(const output::OutputConfig &a, const output::OutputConfig &b)
{
    return a.type == b.type && a.transport == b.transport && a.address == b.address &&
           a.format == b.format && a.facility == b.facility && a.app_name == b.app_name &&
           a.ca_file == b.ca_file && a.server_name == b.server_name && a.cert_file == b.cert_file &&
           a.key_file == b.key_file && a.spool_size == b.spool_size &&
           a.spool_file == b.spool_file && a.path == b.path;
}

bool same_bpf(const SensorOptions &a, const SensorOptions &b)
{
    return a.flow_table_size == b.flow_table_size && a.client_table_size == b.client_table_size &&
           a.ringbuf_bytes == b.ringbuf_bytes && a.tls_ports == b.tls_ports && a.pin == b.pin &&
           a.pin_path == b.pin_path && a.request_min_bytes == b.request_min_bytes;
}

// SIGHUP: an invalid file is rejected with its messages and the running
// configuration stays; settings of the loaded programs ([bpf], interfaces)
// need a restart and are kept; the rest applies at once.
bool reload(const std::string &path, Config &cfg)
{
    if (path.empty()) {
        spdlog::info("SIGHUP: no configuration file to reload (running on built-in defaults)");
        return false;
    }
    auto res = load_config_for_run(path, NameLookup::skip);
    if (!res.ok()) {
        for (auto &i : res.issues)
            spdlog::error("{}", i.format());
        spdlog::error("SIGHUP: configuration rejected ({} problem{}); the running configuration "
                      "stays in force",
                      res.issues.size(), res.issues.size() == 1 ? "" : "s");
        return false;
    }
    Config next = res.config;
    if (!same_bpf(next.bpf, cfg.bpf)) {
        spdlog::warn("SIGHUP: [bpf] settings changed: they apply to the loaded programs and maps "
                     "and need a restart; keeping the running ones");
        next.bpf = cfg.bpf;
        next.bpf.keep_attached = res.config.bpf.keep_attached;  // read at stop only
    }
    if (next.backend != cfg.backend) {
        spdlog::warn("SIGHUP: [capture] backend changed: restart to switch backends");
        next.backend = cfg.backend;
    }
    if (next.interfaces != cfg.interfaces) {
        spdlog::warn("SIGHUP: [capture] interfaces changed: restart to attach to the new list");
        next.interfaces = cfg.interfaces;
    }
    if (next.control_socket != cfg.control_socket || next.control_group != cfg.control_group ||
        next.metrics_enabled != cfg.metrics_enabled || next.metrics_host != cfg.metrics_host ||
        next.metrics_port != cfg.metrics_port) {
        spdlog::warn("SIGHUP: [control] or [metrics] changed: restart to apply");
        next.control_socket = cfg.control_socket;
        next.control_group = cfg.control_group;
        next.metrics_enabled = cfg.metrics_enabled;
        next.metrics_host = cfg.metrics_host;
        next.metrics_port = cfg.metrics_port;
    }
    if (next.state_dir != cfg.state_dir) {
        spdlog::warn("SIGHUP: [daemon] state_dir changed: restart to apply");
        next.state_dir = cfg.state_dir;
    }
    if (!(next.fleet == cfg.fleet)) {
        spdlog::warn("SIGHUP: [fleet] changed: restart to apply");
        next.fleet = cfg.fleet;
    }
    if (next.log_level != cfg.log_level)
        spdlog::set_level(spdlog::level::from_str(next.log_level));
    cfg = next;
    spdlog::info("SIGHUP: configuration reloaded from {}", path);
    return true;
}

// Interfaces to attach: --interface, else the configuration's, else the
// default route's (nullopt: none found).
std::optional<std::vector<std::string>> interfaces_to_attach(const DaemonOptions &opts,
                                                             const Config &cfg)
{
    auto interfaces = opts.interfaces.empty() ? cfg.interfaces : opts.interfaces;
    if (interfaces.empty()) {
        auto dflt = default_route_interface();
        if (!dflt)
            return std::nullopt;
        interfaces.push_back(*dflt);
    }
    return interfaces;
}

void install_signal_handlers()
{
    struct sigaction sa {};
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, nullptr);
}

// The live pipeline, wired: source -> flow tracker -> harvest -> aggregator
// -> detector -> outputs, with the state file, the control socket, the
// metrics endpoint and the fleet export ([fleet]) beside it. Construction
// opens everything that needs privileges; run() drops them, starts the
// threads and loops until a stop signal. Everything here runs on the main
// thread, except the source's reader, the outputs' senders, the fleet
// exporter's sender and the metrics server (which get copies).
class Daemon {
public:
    Daemon(const DaemonOptions &opts, Config cfg, const std::vector<std::string> &interfaces)
        : opts_(opts), cfg_(std::move(cfg)),
          source_(cfg_.backend == "pcap" ? make_pcap_source(cfg_, interfaces)
                                         : make_ebpf_source(cfg_, interfaces)),
          aggregator_(cfg_.aggregate), detector_(cfg_.detect), out_cfgs_(output_configs(cfg_)),
          outputs_(output::open_outputs(out_cfgs_)),  // their threads start after the drop
          saved_state_(cfg_.state_dir),
          state_ctx_{opts.config_path.empty()
                         ? std::string()
                         : std::filesystem::absolute(opts.config_path).string(),
                     source_->tables_identity(), source_->tables_carried_over(), cfg_.aggregate,
                     cfg_.detect},
          harvest_every_(cfg_.harvest_interval_ms), eval_every_(cfg_.detect.interval_ms),
          save_every_(cfg_.state_interval_ms), report_every_(cfg_.report_interval_ms),
          maintain_every_(1000)
    {
        describe_sensor(interfaces);
        tracker_.set_on_tls_meta([this](const FlowRecord &r) {
            // SNI and ALPN come from the wire: logged through the sanitizer.
            spdlog::debug("TLS flow {}: sni {} ja4 {}", r.id,
                          r.tls.sni ? ascii_escape(*r.tls.sni, kLogFieldMax) : std::string("-"),
                          r.tls.ja4);
            attribute_tls(detector_, aggregator_, r);
        });
        if (cfg_.fleet.enabled)
            fleet_ = std::make_unique<FleetExport>(
                cfg_.fleet, saved_state_.enabled() ? cfg_.state_dir : std::string(), aggregator_);
        // Counts, windows and alerts from before a restart (never the
        // lifetime totals of taken-over maps as new traffic).
        StateFleetPart fleet_part{[this](std::string_view b) { fleet_->restore_state(b); },
                                  fleet_.get()};
        saved_state_.start_from_state(state_ctx_, *source_, aggregator_, detector_, harvest_,
                                      tracker_, monotonic_ms(), fleet_ ? &fleet_part : nullptr);
        open_control();
    }

    void run()
    {
        drop_privileges_and_start();
        loop();
        stop();
    }

private:
    void describe_sensor(const std::vector<std::string> &interfaces)
    {
        state_.start_wall_ms = wall_ms();
        state_.backend = cfg_.backend;
        state_.config_path = opts_.config_path;
        for (auto &ifname : interfaces)
            state_.interfaces.push_back({ifname, if_nametoindex(ifname.c_str()), wall_ms()});
        state_.flow_capacity = cfg_.bpf.flow_table_size;
        state_.client_capacity = cfg_.bpf.client_table_size;
        state_.output_types = output::output_types(out_cfgs_);
    }

    // The control socket and the metrics endpoint: when either cannot start
    // (socket served by another daemon, port in use) the sensor runs on
    // without it.
    void open_control()
    {
        try {
            ctl_ =
                std::make_unique<control::ControlServer>(cfg_.control_socket, cfg_.control_group);
            spdlog::info("control socket {} ({})", cfg_.control_socket,
                         cfg_.control_group.empty() ? "root only"
                                                    : "root and group " + cfg_.control_group);
        } catch (const Error &e) {
            spdlog::error("{}; `exfilmon status` and `top` are unavailable", e.what());
        }
        if (!cfg_.metrics_enabled)
            return;
        try {
            metrics_ =
                std::make_unique<control::MetricsServer>(cfg_.metrics_host, cfg_.metrics_port);
            spdlog::info("metrics on http://{}/metrics",
                         format_host_port(cfg_.metrics_host, std::to_string(cfg_.metrics_port)));
        } catch (const Error &e) {
            spdlog::error("{}", e.what());
        }
    }

    // Attached, pinned, sockets open: from here on only CAP_BPF (the bpf()
    // calls on the maps) and CAP_NET_ADMIN (attaching a returning interface,
    // detaching at exit) are needed; the rest is dropped. No thread runs
    // yet: those started here inherit only what is kept.
    void drop_privileges_and_start()
    {
        if (cfg_.backend == "ebpf")
            spdlog::info("{}", keep_only_capabilities({CAP_BPF, CAP_NET_ADMIN}));
        else
            spdlog::info("{}", keep_only_capabilities({}));
        for (auto &o : outputs_)
            o->start();
        if (fleet_)
            fleet_->start();
        source_->start();
        if (metrics_)
            metrics_->start();
    }

    void loop()
    {
        const uint64_t start = monotonic_ms();
        harvest_every_.start(start, true);
        eval_every_.start(start);
        save_every_.start(start);
        report_every_.start(start);
        maintain_every_.start(start);
        while (!g_stop) {
            if (ctl_)
                ctl_->serve(std::chrono::milliseconds(50), [this](std::string_view line) {
                    return control::handle_request(line, view());
                });
            else
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            if (g_reload.exchange(false))
                reload_now();
            pop_events();
            run_due_steps(monotonic_ms());
            step_fleet();
        }
    }

    // A period that closed is written into the state file at once (the
    // regular save then waits a whole interval again), and handed to the
    // exporter once that write ended (apps/daemon_fleet.h).
    void step_fleet()
    {
        if (!fleet_)
            return;
        if (fleet_->wants_state_save() && !saved_state_.writing()) {
            save_state(false);
            save_every_.start(monotonic_ms());
        }
        uint64_t finished = saved_state_.finished();  // collects a write that ended
        fleet_->hand_over(finished, saved_state_.written());
    }

    void run_due_steps(uint64_t now)
    {
        if (harvest_every_.due(now))
            harvest_now();
        if (maintain_every_.due(now))
            follow_interfaces();
        // Right after a harvest when both are due: the freshest figures.
        if (eval_every_.due(now))
            evaluate_now();
        // The aggregator changes only in harvests: any moment between two
        // is a consistent state.
        if (save_every_.due(now))
            save_state(false);
        if (report_every_.due(now) && report_on())
            print_report(*source_, events_, tracker_, aggregator_);
    }

    // A clean stop: the last events, harvest and evaluation, the state, the
    // outputs' last alerts; with pins the kernel goes on counting.
    void stop()
    {
        pop_events();
        harvest_now();
        evaluate_now();
        save_state(true);
        if (report_on())
            print_report(*source_, events_, tracker_, aggregator_);
        for (auto &o : outputs_)
            if (!o->flush(2000))
                spdlog::warn("stopping: {} alert(s) not delivered to {}", o->stats().spooled_now,
                             o->describe());
        if (fleet_) {
            uint64_t finished = saved_state_.finished();  // collects a write that ended
            fleet_->stop(finished, saved_state_.written(), std::chrono::seconds(2));
        }
        if (cfg_.bpf.pin && cfg_.bpf.keep_attached)
            source_->leave_attached();
        spdlog::info("stopping");
    }

    void pop_events()
    {
        events_ +=
            source_->pop_events([this](std::span<const uint8_t> e) { tracker_.on_event(e); });
    }

    // The live view and the metrics read the single-threaded state from this
    // thread only: the control socket is served here, and the metrics thread
    // gets copies (publish()).
    control::DaemonView view()
    {
        state_.events_received = source_->events_received();
        state_.events_dropped = source_->events_dropped();
        state_.events_waited = source_->events_waited();
        if (fleet_)
            state_.fleet = fleet_->status();
        return {state_, aggregator_, detector_, tracker_, outputs_, monotonic_ms(), wall_ms()};
    }

    void publish()
    {
        if (metrics_)
            metrics_->publish(control::metrics_snapshot(view()));
    }

    // While the harvest runs, a helper thread keeps taking events off the
    // queue (the ring buffer reader need not wait); they reach the tracker
    // after it, as if they had waited in the queue.
    void harvest_now()
    {
        auto d = run_draining([this] { harvest_tables(); },
                              [this](const EventFn &fn) { return source_->pop_events(fn); },
                              [this](std::span<const uint8_t> e) { tracker_.on_event(e); },
                              kHarvestDrainBytes);
        events_ += d.staged;
        state_.events_harvest_drained += d.staged;
        if (d.limit_reached) {
            state_.harvest_drain_full++;
            spdlog::warn("harvest took {:.2f} s: {} events ({} MiB) taken off the queue "
                         "meanwhile, then the staging limit was reached and the ring buffer "
                         "reader waited",
                         state_.last_harvest_s, d.staged, d.staged_bytes >> 20);
        }
    }

    void harvest_tables()
    {
        auto t0 = std::chrono::steady_clock::now();
        // Created so far, read before the tables: created minus the entries
        // then read never exceeds the evictions (those created in between
        // are in the table, not in this count).
        auto before = source_->health();
        // What changed since the last harvest, clients before flows: see
        // HarvestStage::run (owed_).
        auto changes = source_->changes();
        state_.health = source_->health();
        state_.flow_entries = changes.flow_entries;
        state_.client_entries = changes.client_entries;
        // The datapath never deletes a flow or client entry: those created
        // and no longer in the table were evicted (LRU). Read a moment
        // apart, the figure may lag (never lead): it never goes back.
        count_evictions(before[EXF_C_FLOW_NEW], state_.flow_entries, state_.flow_evictions);
        count_evictions(before[EXF_C_CLIENT_NEW], state_.client_entries, state_.client_evictions);
        harvest_.run(aggregator_, changes, tracker_, monotonic_ms(), fleet_.get());
        state_.harvests++;
        state_.last_harvest_s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        publish();
    }

    static void count_evictions(uint64_t created, uint64_t entries, uint64_t &evictions)
    {
        if (created > entries)
            evictions = std::max(evictions, created - entries);
    }

    void evaluate_now()
    {
        // The aggregator's clock to now first: the evaluation's mark (the
        // clock) is then past the last harvest's updates, and the next
        // evaluation looks only at what later harvests update (all stamped
        // later: monotonic time), not at that harvest's entities again.
        uint64_t now = monotonic_ms();
        aggregator_.expire(now);
        auto records = detector_.evaluate(aggregator_, now, wall_ms());
        for (auto &r : records)
            state_
                .alerts[{r.rule, detect::severity_name(r.severity), detect::state_name(r.state)}]++;
        output::dispatch(records, outputs_);
        publish();
    }

    void save_state(bool wait)
    {
        if (!saved_state_.enabled())
            return;
        std::string fleet = fleet_ ? fleet_->save_state() : std::string();
        uint64_t save = wait
                            ? saved_state_.save_and_wait(state_ctx_, aggregator_, detector_,
                                                         harvest_, monotonic_ms(), wall_ms(), fleet)
                            : saved_state_.save(state_ctx_, aggregator_, detector_, harvest_,
                                                monotonic_ms(), wall_ms(), fleet);
        if (fleet_)
            fleet_->state_save_started(save);
    }

    // Interfaces that went away or came back.
    void follow_interfaces()
    {
        if (!source_->maintain())
            return;
        for (auto &i : state_.interfaces)
            if (unsigned idx = if_nametoindex(i.name.c_str()); idx != i.ifindex) {
                i.ifindex = idx;
                i.since_ms = wall_ms();
            }
    }

    // SIGHUP: windows, prefixes, cohorts and limits change in place, keeping
    // the counters that can be kept; outputs are replaced when they changed;
    // new intervals apply from now, not after the old ones ran out.
    void reload_now()
    {
        bool reloaded = reload(opts_.config_path, cfg_);
        if (!opts_.config_path.empty())
            (reloaded ? state_.reloads_ok : state_.reloads_error)++;
        if (reloaded) {
            std::string why;
            if (!aggregator_.reconfigure(cfg_.aggregate, why))
                spdlog::error("SIGHUP: aggregation settings not applied: {}", why);
            if (!detector_.reconfigure(cfg_.detect, why))
                spdlog::error("SIGHUP: detection rules not applied: {}", why);
            replace_changed_outputs();
        }
        uint64_t now = monotonic_ms();
        report_every_.set_interval(cfg_.report_interval_ms, now);
        harvest_every_.set_interval(cfg_.harvest_interval_ms, now);
        eval_every_.set_interval(cfg_.detect.interval_ms, now);
        save_every_.set_interval(cfg_.state_interval_ms, now);
    }

    void replace_changed_outputs()
    {
        auto next_outs = output_configs(cfg_);
        bool same = next_outs.size() == out_cfgs_.size();
        for (size_t i = 0; same && i < next_outs.size(); i++)
            same = same_output(next_outs[i], out_cfgs_[i]);
        if (same)
            return;
        // The old outputs deliver what they hold (2 s at most) and release
        // their spool files first.
        outputs_.clear();
        try {
            outputs_ = output::start_outputs(next_outs);
            out_cfgs_ = next_outs;
            state_.output_types = output::output_types(out_cfgs_);
        } catch (const Error &e) {
            spdlog::error("SIGHUP: outputs not changed: {}", e.what());
            outputs_ = output::start_outputs(out_cfgs_);
        }
    }

    // report_interval = "0s" turns the report off (also by a reload).
    bool report_on() const { return to_terminal_ && cfg_.report_interval_ms > 0; }

    const DaemonOptions &opts_;
    Config cfg_;
    control::SensorState state_;
    std::unique_ptr<LiveSource> source_;
    HarvestStage harvest_;
    agg::Aggregator aggregator_;
    detect::Detector detector_;
    std::vector<output::OutputConfig> out_cfgs_;
    std::vector<std::unique_ptr<output::Output>> outputs_;
    FlowTracker tracker_;
    StateFile saved_state_;
    const StateContext state_ctx_;
    std::unique_ptr<control::ControlServer> ctl_;
    std::unique_ptr<control::MetricsServer> metrics_;
    std::unique_ptr<FleetExport> fleet_;  // [fleet]: after the aggregator it names clients by
    uint64_t events_ = 0;
    Periodic harvest_every_, eval_every_, save_every_, report_every_, maintain_every_;
    const bool to_terminal_ = report_to_terminal();
};

}  // namespace

int run_daemon(const DaemonOptions &opts)
{
    // Everything run would refuse, before anything is attached (check-config
    // runs the same checks).
    auto loaded = load_config_for_run(opts.config_path);
    for (auto &i : loaded.issues)
        std::cerr << i.format() << "\n";
    for (auto &w : loaded.warnings)
        std::cerr << w.format() << "\n";
    if (!loaded.ok())
        return kConfigErrorExit;
    init_logging(opts.verbose ? "debug" : loaded.config.log_level);
    route_libbpf_logs(opts.verbose);
    auto interfaces = interfaces_to_attach(opts, loaded.config);
    if (!interfaces) {
        spdlog::error("no interface given and no default route found: use --interface IF");
        return kConfigErrorExit;
    }
    install_signal_handlers();
    try {
        Daemon(opts, loaded.config, *interfaces).run();
    } catch (const Error &e) {
        spdlog::error("{}", e.what());
        return 1;
    }
    return 0;
}

}  // namespace exf
