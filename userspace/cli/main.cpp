// exfilmon: eBPF sensor for data exfiltration through TLS APIs.
// Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.
#include <CLI/CLI.hpp>

#include <poll.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>

#include "capture/bpf_sensor.h"
#include "capture/events.h"
#include "capture/maps.h"
#include "capture/netdev.h"
#include "capture/tc_attach.h"
#include "common/addr.h"
#include "common/error.h"
#include "common/log.h"
#include "config/config.h"

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop = true; }

void print_clients(int clients_fd, const exf::HealthCounters &h, uint64_t events)
{
    auto rows = exf::read_clients(clients_fd);
    std::sort(rows.begin(), rows.end(), [](const auto &a, const auto &b) {
        return a.stats.bytes_out > b.stats.bytes_out;
    });
    std::printf("%-39s %10s %10s %14s %14s %10s %10s\n", "client", "tls_flows", "closed",
                "bytes_in", "bytes_out", "pkts_in", "pkts_out");
    for (auto &r : rows)
        std::printf("%-39s %10llu %10llu %14llu %14llu %10llu %10llu\n",
                    exf::format_addr(r.key.addr).c_str(),
                    (unsigned long long)r.stats.tls_flows_opened,
                    (unsigned long long)r.stats.tls_flows_closed,
                    (unsigned long long)r.stats.bytes_in, (unsigned long long)r.stats.bytes_out,
                    (unsigned long long)r.stats.pkts_in, (unsigned long long)r.stats.pkts_out);
    std::printf("-- %zu clients; packets %llu, TLS flows %llu, QUIC flows %llu, events %llu, "
                "ring buffer full %llu\n\n",
                rows.size(), (unsigned long long)h[EXF_C_PACKETS],
                (unsigned long long)h[EXF_C_TLS_FLOWS], (unsigned long long)h[EXF_C_QUIC_FLOWS],
                (unsigned long long)events, (unsigned long long)h[EXF_C_RB_FULL]);
    std::fflush(stdout);
}

int cmd_run(const std::string &config_path, std::vector<std::string> interfaces, bool verbose)
{
    exf::Config cfg;
    if (!config_path.empty()) {
        auto res = exf::load_config(config_path);
        for (auto &i : res.issues)
            std::cerr << i.format() << "\n";
        if (!res.ok())
            return 2;
        cfg = res.config;
    }
    exf::init_logging(verbose ? "debug" : cfg.log_level);
    exf::route_libbpf_logs(verbose);
    if (interfaces.empty())
        interfaces = cfg.interfaces;
    if (interfaces.empty()) {
        auto dflt = exf::default_route_interface();
        if (!dflt) {
            spdlog::error("no interface given and no default route found: use --interface IF");
            return 2;
        }
        interfaces.push_back(*dflt);
    }

    struct sigaction sa{};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    try {
        exf::BpfSensor sensor(cfg.bpf);
        std::vector<std::unique_ptr<exf::TcAttachment>> attached;
        for (auto &ifname : interfaces)
            attached.push_back(std::make_unique<exf::TcAttachment>(sensor, ifname));
        uint64_t events = 0;
        exf::EventReader reader(sensor.events_fd(), [&](std::span<const uint8_t>) { events++; });
        auto next = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(cfg.report_interval_ms);
        while (!g_stop) {
            reader.poll(200);
            if (std::chrono::steady_clock::now() >= next) {
                print_clients(sensor.clients_fd(), exf::read_health(sensor.health_fd()), events);
                next += std::chrono::milliseconds(cfg.report_interval_ms);
            }
        }
        reader.drain();
        print_clients(sensor.clients_fd(), exf::read_health(sensor.health_fd()), events);
        spdlog::info("stopping");
    } catch (const exf::Error &e) {
        spdlog::error("{}", e.what());
        return 1;
    }
    return 0;
}

}  // namespace

int main(int argc, char **argv)
{
    CLI::App app{"exfilmon: eBPF sensor for data exfiltration through TLS APIs"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("exfilmon ") + EXFILMON_VERSION);

    std::string config_path;
    std::vector<std::string> interfaces;
    bool verbose = false;
    auto *run = app.add_subcommand("run", "attach to interfaces and report per-client TLS traffic");
    run->add_option("-c,--config", config_path, "configuration file (TOML)")->check(CLI::ExistingFile);
    run->add_option("-i,--interface", interfaces,
                    "interface to monitor (repeatable; default: the default route's)");
    run->add_flag("-v,--verbose", verbose, "debug logging, including libbpf's");

    auto *version = app.add_subcommand("version", "print the version");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }
    if (version->parsed()) {
        std::cout << "exfilmon " << EXFILMON_VERSION << "\n";
        return 0;
    }
    if (run->parsed())
        return cmd_run(config_path, interfaces, verbose);
    return 2;
}
