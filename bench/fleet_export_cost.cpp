// SPDX-License-Identifier: Apache-2.0
// The sensor's added cost of the fleet export at N clients: the daemon's
// own export (apps/daemon_fleet.h FleetExport: period table, naming, row
// text, the exporter's thread and its inserts into a real ClickHouse) fed
// what a harvest hands it, every harvest interval, for N active clients,
// in rounds that alternate with the same loop feeding nothing (the B of
// the pair). Per round: process CPU (every thread) over the wall time, and
// the RSS the export holds at its end. Run by bench/fleet.sh --sensor.
//
//   fleet_export_cost --url URL --database DB [--clients N] [--seconds S]
//                     [--rounds R] [--period S] [--change PCT]
//
// --change: the share of the clients with traffic in each harvest
// (default 100: every client, every second; the worst case).
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "apps/daemon_fleet.h"
#include "bench_util.h"
#include "fleet_rows.h"

namespace {

struct Options {
    std::string url, database = "exfilmon";
    uint32_t clients = 100000, seconds = 35, rounds = 3, period_s = 10;
    double change = 100;
};

double cpu_s()
{
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double wall_s()
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

struct Round {
    double cpu_pct = 0;  // of one core
    double rss_mib = 0;  // RSS at the end of the round
    uint64_t rows = 0;   // rows sent (export rounds)
};

// One round: every harvest interval, the clients with traffic handed to
// sink (nullptr: the same loop, handing nothing).
Round run_round(const Options &o, const std::vector<exf::Addr16> &addrs, exf::FleetExport *sink)
{
    static const char *snis[] = {"api.example.com", "files.example.com", "auth.example.com"};
    const std::string ja4 = "t13d1516h2_8daaf6152771_b186095e22b6";
    double c0 = cpu_s(), w0 = wall_s();
    uint64_t step = uint64_t(100 / std::max(o.change, 0.01));
    for (uint32_t h = 0; h < o.seconds; h++) {
        auto next = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        uint64_t now_ms = uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
        volatile uint64_t fed = 0;
        if (sink)
            sink->harvest_begins(now_ms);
        for (size_t i = h % step; i < addrs.size(); i += step) {
            exf::agg::Traffic t;
            t.bytes_out = 20000 + i % 5000;
            t.bytes_in = 2000 + i % 300;
            t.pkts_out = t.bytes_out / 1400 + 1;
            t.pkts_in = 3;
            const char *sni = snis[i % 3];
            if (sink) {
                if (h == 0)
                    sink->flow_opened(addrs[i], sni, ja4);
                sink->add_traffic(addrs[i], sni, ja4, t);
            }
            fed = fed + t.bytes_out;
        }
        if (sink)
            sink->hand_over(0, 0);
        std::this_thread::sleep_until(next);
    }
    Round r;
    r.cpu_pct = (cpu_s() - c0) / (wall_s() - w0) * 100;
    r.rss_mib = double(exf::bench::rss_bytes()) / 1048576;
    if (sink)
        r.rows = sink->status().exporter.rows_sent;
    return r;
}

}  // namespace

int main(int argc, char **argv)
{
    Options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string a = argv[i], v = argv[i + 1];
        if (a == "--url")
            o.url = v;
        else if (a == "--database")
            o.database = v;
        else if (a == "--clients")
            o.clients = uint32_t(std::stoul(v));
        else if (a == "--seconds")
            o.seconds = uint32_t(std::stoul(v));
        else if (a == "--rounds")
            o.rounds = uint32_t(std::stoul(v));
        else if (a == "--period")
            o.period_s = uint32_t(std::stoul(v));
        else if (a == "--change")
            o.change = std::stod(v);
        else {
            std::fprintf(stderr, "fleet_export_cost: unknown option %s\n", a.c_str());
            return 2;
        }
    }
    if (o.url.empty() || argc % 2 == 0) {
        std::fprintf(stderr, "usage: fleet_export_cost --url URL --database DB [--clients N] "
                             "[--seconds S] [--rounds R] [--period S] [--change PCT]\n");
        return 2;
    }
    auto namer = exf::bench::fleet_namer();
    std::vector<exf::Addr16> addrs;
    for (uint32_t i = 0; i < o.clients; i++)
        addrs.push_back(exf::bench::client_addr(i));
    exf::fleet::FleetConfig cfg;
    cfg.enabled = true;
    cfg.clickhouse = o.url;
    cfg.database = o.database;
    cfg.sensor = "edge-bench";
    cfg.interval_ms = o.period_s * 1000;
    for (uint32_t r = 0; r < o.rounds; r++) {
        // A then B, B then A: the order alternates round by round.
        for (int k = 0; k < 2; k++) {
            bool with = (r + k) % 2 == 0;
            double rss0 = double(exf::bench::rss_bytes()) / 1048576;
            Round res;
            if (with) {
                exf::FleetExport fleet(cfg, "", namer);
                fleet.start();
                res = run_round(o, addrs, &fleet);
                fleet.stop(0, 0, std::chrono::seconds(5));
            } else {
                res = run_round(o, addrs, nullptr);
            }
            std::printf("FLEET_EXPORT round=%u fleet=%d clients=%u change_pct=%g seconds=%u "
                        "cpu_pct=%.2f rss_mib=%.1f rss_added_mib=%.1f rows_sent=%llu\n",
                        r, int(with), o.clients, o.change, o.seconds, res.cpu_pct, res.rss_mib,
                        res.rss_mib - rss0, (unsigned long long)res.rows);
            std::fflush(stdout);
        }
    }
    return 0;
}
