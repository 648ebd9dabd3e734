#include "pipeline/daemon.h"

#include <signal.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <thread>

#include "capture/bpf_sensor.h"
#include "capture/maps.h"
#include "capture/netdev.h"
#include "capture/tc_attach.h"
#include "common/addr.h"
#include "common/error.h"
#include "common/log.h"
#include "config/config.h"
#include "aggregate/aggregator.h"
#include "aggregate/entity_key.h"
#include "pipeline/flow_tracker.h"
#include "pipeline/live.h"
#include "pipeline/source.h"

namespace exf {

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};

void on_stop(int) { g_stop = true; }
void on_hup(int) { g_reload = true; }

void print_clients(std::vector<ClientRow> rows, const HealthCounters &h, uint64_t events,
                   uint64_t queue_drops, const FlowTrackerStats &ts)
{
    std::sort(rows.begin(), rows.end(), [](const auto &a, const auto &b) {
        return a.stats.bytes_out > b.stats.bytes_out;
    });
    std::printf("%-39s %10s %10s %14s %14s %10s %10s\n", "client", "tls_flows", "closed",
                "bytes_in", "bytes_out", "pkts_in", "pkts_out");
    for (auto &r : rows)
        std::printf("%-39s %10llu %10llu %14llu %14llu %10llu %10llu\n",
                    format_addr(r.key.addr).c_str(), (unsigned long long)r.stats.tls_flows_opened,
                    (unsigned long long)r.stats.tls_flows_closed,
                    (unsigned long long)r.stats.bytes_in, (unsigned long long)r.stats.bytes_out,
                    (unsigned long long)r.stats.pkts_in, (unsigned long long)r.stats.pkts_out);
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

// Bytes from the wire, printable: anything outside printable ASCII as \xNN.
std::string sanitize_for_log(const std::string &s)
{
    std::string out;
    for (unsigned char c : s.substr(0, 255)) {
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += char(c);
        } else {
            char buf[5];
            std::snprintf(buf, sizeof(buf), "\\x%02x", c);
            out += buf;
        }
    }
    return out;
}

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
        std::printf("%-40s %14llu %14llu %10llu %8u\n",
                    sanitize_for_log(agg::format_key(agg::EntityKind::api_host, r.key)).c_str(),
                    (unsigned long long)r.value.bytes_out, (unsigned long long)r.value.bytes_in,
                    (unsigned long long)r.value.tls_flows, r.value.distinct_clients);
    std::printf("\n");
    std::fflush(stdout);
}

// One harvest: exact per-client deltas from the client table, and per-flow
// deltas to attribute to API hosts the part of each client's traffic whose
// flow's SNI is known; the rest goes to the client's entities alone. A flow
// whose ClientHello is not parsed yet (younger than kHelloWaitNs) is held
// back, together with the same amount of its client's delta, until it is.
class HarvestStage {
public:
    void run(agg::Aggregator &a, LiveSource &src, const FlowTracker &tracker, uint64_t now_ms)
    {
        const uint64_t now_ns = now_ms * 1000000ull;
        auto sni_of = [&](const exf_flow_key &k) -> const std::string * {
            auto *rec = tracker.lookup(k);
            return rec && rec->tls.known && rec->tls.sni && !rec->tls.sni->empty() ? &*rec->tls.sni
                                                                                   : nullptr;
        };
        // Ready: the tracker has decided about the flow's ClientHello (parsed
        // or malformed), or it is too old to still expect one (no hello at
        // all, or a QUIC flow before Initial decryption exists). The kernel's
        // HELLO_DONE flag is not enough: the event may still be queued.
        auto ready = [&](const FlowRow &r) {
            auto *rec = tracker.lookup(r.key);
            return (rec && (rec->hello == HelloState::done || rec->hello == HelloState::malformed)) ||
                   now_ns > r.flow.first_ns + kHelloWaitNs;
        };
        std::map<Addr16, Sums> attributed, pending;
        for (auto &d : flows_.harvest(src.flows(), ready)) {
            Addr16 client;
            std::memcpy(client.data(), flow_client_addr(d.key, d.flow), 16);
            if (d.pending) {
                pending[client].add(d);
                continue;
            }
            const std::string *sni = sni_of(d.key);
            if (!sni)
                continue;  // counted for the client alone, below
            if (d.opened)
                a.flow_opened(now_ms, client, *sni);
            a.add_traffic(now_ms, client, *sni,
                          {d.bytes_in, d.bytes_out, d.pkts_in, d.pkts_out, d.opened ? 1u : 0u});
            if (d.closed)
                a.flow_closed(now_ms, client, *sni);
            attributed[client].add(d);
        }
        std::map<Addr16, Sums> held_next;
        for (auto &c : clients_.harvest(src.clients())) {
            Sums in{c.delta.bytes_in, c.delta.bytes_out, c.delta.pkts_in, c.delta.pkts_out,
                    c.delta.tls_flows_opened};
            if (auto h = held_.find(c.client); h != held_.end()) {
                in.plus(h->second);
                held_.erase(h);
            }
            Sums taken = attributed[c.client];
            taken.plus(pending[c.client]);
            agg::Traffic t{rest(in.bytes_in, taken.bytes_in), rest(in.bytes_out, taken.bytes_out),
                           rest(in.pkts_in, taken.pkts_in), rest(in.pkts_out, taken.pkts_out),
                           rest(in.flows, taken.flows)};
            if (t.bytes_in || t.bytes_out || t.pkts_in || t.pkts_out || t.flows_opened)
                a.add_traffic(now_ms, c.client, "", t);
            if (auto p = pending.find(c.client); p != pending.end())
                held_next[c.client] = p->second;
        }
        // A client with flows still pending and no new traffic keeps its hold.
        for (auto &[client, held] : held_)
            if (pending.count(client) && !held_next.count(client))
                held_next[client] = held;
        held_ = std::move(held_next);
        a.expire(now_ms);
    }

private:
    struct Sums {
        uint64_t bytes_in = 0, bytes_out = 0, pkts_in = 0, pkts_out = 0, flows = 0;
        void add(const FlowDelta &d)
        {
            bytes_in += d.bytes_in;
            bytes_out += d.bytes_out;
            pkts_in += d.pkts_in;
            pkts_out += d.pkts_out;
            flows += d.opened ? 1 : 0;
        }
        void plus(const Sums &o)
        {
            bytes_in += o.bytes_in;
            bytes_out += o.bytes_out;
            pkts_in += o.pkts_in;
            pkts_out += o.pkts_out;
            flows += o.flows;
        }
    };
    static uint64_t rest(uint64_t total, uint64_t minus) { return total > minus ? total - minus : 0; }
    static constexpr uint64_t kHelloWaitNs = 2'000'000'000ull;
    Harvester clients_;
    FlowHarvester flows_;
    std::map<Addr16, Sums> held_;  // reported by the client table, not yet attributed
};

bool same_bpf(const SensorOptions &a, const SensorOptions &b)
{
    return a.flow_table_size == b.flow_table_size && a.client_table_size == b.client_table_size &&
           a.ringbuf_bytes == b.ringbuf_bytes && a.tls_ports == b.tls_ports && a.pin == b.pin &&
           a.pin_path == b.pin_path;
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
    auto res = load_config(path);
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
    }
    if (next.backend != cfg.backend) {
        spdlog::warn("SIGHUP: [capture] backend changed: restart to switch backends");
        next.backend = cfg.backend;
    }
    if (next.interfaces != cfg.interfaces) {
        spdlog::warn("SIGHUP: [capture] interfaces changed: restart to attach to the new list");
        next.interfaces = cfg.interfaces;
    }
    if (next.log_level != cfg.log_level)
        spdlog::set_level(spdlog::level::from_str(next.log_level));
    cfg = next;
    spdlog::info("SIGHUP: configuration reloaded from {}", path);
    return true;
}

}  // namespace

int run_daemon(const DaemonOptions &opts)
{
    Config cfg;
    if (!opts.config_path.empty()) {
        auto res = load_config(opts.config_path);
        for (auto &i : res.issues)
            std::cerr << i.format() << "\n";
        if (!res.ok())
            return 2;
        cfg = res.config;
    }
    init_logging(opts.verbose ? "debug" : cfg.log_level);
    route_libbpf_logs(opts.verbose);
    std::vector<std::string> interfaces = opts.interfaces.empty() ? cfg.interfaces : opts.interfaces;
    if (interfaces.empty()) {
        auto dflt = default_route_interface();
        if (!dflt) {
            spdlog::error("no interface given and no default route found: use --interface IF");
            return 2;
        }
        interfaces.push_back(*dflt);
    }

    struct sigaction sa{};
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, nullptr);

    try {
        auto source = cfg.backend == "pcap" ? make_pcap_source(cfg, interfaces)
                                            : make_ebpf_source(cfg, interfaces);
        HarvestStage harvest;
        agg::Aggregator aggregator(cfg.aggregate);
        FlowTracker tracker;
        tracker.set_on_tls_meta([](const FlowRecord &r) {
            // SNI and ALPN come from the wire: logged through the sanitizer.
            spdlog::debug("TLS flow {}: sni {} ja4 {}", r.id,
                          r.tls.sni ? sanitize_for_log(*r.tls.sni) : std::string("-"), r.tls.ja4);
        });
        auto on_event = [&tracker](std::span<const uint8_t> e) { tracker.on_event(e); };
        uint64_t events = 0;
        using clock = std::chrono::steady_clock;
        auto next_harvest = clock::now();
        auto next_report = clock::now() + std::chrono::milliseconds(cfg.report_interval_ms);
        while (!g_stop) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            if (g_reload.exchange(false)) {
                // Windows, prefixes, cohorts and limits change in place,
                // keeping the counters that can be kept.
                std::string why;
                if (reload(opts.config_path, cfg) && !aggregator.reconfigure(cfg.aggregate, &why))
                    spdlog::error("SIGHUP: aggregation settings not applied: {}", why);
                // New intervals apply from now, not after the old ones ran out.
                next_report = std::min(next_report, clock::now() + std::chrono::milliseconds(
                                                                       cfg.report_interval_ms));
                next_harvest = std::min(next_harvest, clock::now() + std::chrono::milliseconds(
                                                                         cfg.harvest_interval_ms));
            }
            events += source->pop_events(on_event);
            auto now = clock::now();
            if (now >= next_harvest) {
                harvest.run(aggregator, *source, tracker, monotonic_ms());
                next_harvest = now + std::chrono::milliseconds(cfg.harvest_interval_ms);
            }
            if (now >= next_report) {
                print_clients(source->clients(), source->health(), events,
                              source->events_dropped(), tracker.stats());
                print_api_hosts(aggregator, monotonic_ms());
                next_report = now + std::chrono::milliseconds(cfg.report_interval_ms);
            }
        }
        events += source->pop_events(on_event);
        harvest.run(aggregator, *source, tracker, monotonic_ms());
        print_clients(source->clients(), source->health(), events, source->events_dropped(),
                      tracker.stats());
        print_api_hosts(aggregator, monotonic_ms());
        spdlog::info("stopping");
    } catch (const Error &e) {
        spdlog::error("{}", e.what());
        return 1;
    }
    return 0;
}

}  // namespace exf
