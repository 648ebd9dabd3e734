// SPDX-License-Identifier: Apache-2.0
// The fleet evaluator's windows in memory (fleet/batch_feed.h,
// fleet/fleet_windows.h) against a real ClickHouse: read at start from the
// rollup's hours and the raw periods, then batch by batch, they hold
// exactly what `traffic FINAL` sums, per client and per API host: a batch
// sent twice counts once, a batch sent late is read by the next sweep, and
// a fresh start reads the same figures again.
#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "common/addr.h"
#include "fleet/batch_feed.h"
#include "fleet/clickhouse.h"
#include "fleet/periods.h"
#include "fleet/rule_sql.h"
#include "support/clickhouse.h"
#include "support/test_env.h"

using namespace exf::test;
using exf::agg::EntityKind;

namespace {

constexpr uint64_t kHourS = 3600;

struct Sums {
    uint64_t bytes_out = 0, tls_flows = 0, requests = 0, sensors = 0, clients = 0;
    bool operator==(const Sums &) const = default;
};
using ByEntity = std::map<std::string, Sums>;

std::ostream &operator<<(std::ostream &os, const ByEntity &m)
{
    for (auto &[k, s] : m)
        os << k << ": " << s.bytes_out << " B, " << s.tls_flows << " flows, " << s.requests
           << " calls, " << s.sensors << " sensors, " << s.clients << " clients\n";
    return os;
}

// One sensor's batch of one period: a few clients of a pool of 40, each
// with its own bytes; some rows without an SNI.
std::string batch(const std::string &sensor, uint64_t period_s, std::mt19937 &rng)
{
    std::vector<exf::fleet::TrafficRow> rows;
    std::uniform_int_distribution<int> client(0, 39), bytes(1, 1 << 20);
    std::set<int> chosen;
    for (int i = 0; i < 6; i++)
        chosen.insert(client(rng));
    for (int c : chosen) {
        exf::fleet::TrafficRow r;
        r.period_start_ms = period_s * 1000;
        r.period_ms = 10000;
        std::string addr = (c < 20 ? "203.0.113." : "198.51.100.") + std::to_string(c % 20 + 1);
        r.names = {addr, addr.substr(0, addr.rfind('.')) + ".0/24", ""};
        r.sni = c % 7 == 0 ? "" : c % 2 ? "api.example.com" : "models.example.com";
        r.ja4 = "t13d1516h2_8daaf6152771_e5627efa2ab1";
        r.traffic = {uint64_t(bytes(rng)) / 50, uint64_t(bytes(rng)), 5, 9, 1 + uint64_t(c % 3), 2};
        r.peak_concurrent = 1;
        rows.push_back(r);
    }
    return exf::fleet::to_json_rows(rows, sensor);
}

// What traffic FINAL sums over [from_s, to_s), per entity of the kind.
ByEntity sql_sums(const ClickHouseServer &ch, EntityKind kind, uint64_t from_s, uint64_t to_s)
{
    std::string key = kind == EntityKind::client ? "client" : "sni";
    std::string body = ch.query(
        "SELECT " + key +
        ", sum(bytes_out), sum(tls_flows), sum(requests), uniqExact(sensor), uniqExact(client) "
        "FROM exf.traffic FINAL WHERE period_start >= toDateTime(" +
        std::to_string(from_s) + ") AND period_start < toDateTime(" + std::to_string(to_s) +
        ") AND " + key + " != '' GROUP BY " + key + " FORMAT TabSeparated");
    ByEntity out;
    for (auto &f : exf::fleet::tsv_rows(body))
        if (f.size() == 6)
            out[f[0]] = {std::stoull(f[1]), std::stoull(f[2]), std::stoull(f[3]), std::stoull(f[4]),
                         std::stoull(f[5])};
    return out;
}

ByEntity window_sums(const exf::fleet::FleetWindows &w, EntityKind kind, uint64_t from_s,
                     uint64_t to_s)
{
    ByEntity out;
    w.for_each(kind, from_s, to_s, {}, 0,
               [&](const exf::agg::EntityKey &k, const exf::fleet::FleetWindows::Value &v) {
                   auto &x = v.figures.window;
                   out[exf::agg::format_key(kind, k)] = {
                       x.bytes_out, x.tls_flows, x.requests, v.figures.distinct_sensors,
                       kind == EntityKind::client ? 1 : x.distinct_clients};
               });
    return out;
}

uint64_t now_s()
{
    return uint64_t(std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count());
}

}  // namespace

TEST_CASE("The fleet evaluator's windows hold what traffic FINAL sums: copies count once, late "
          "batches are swept in, a fresh start reads the same",
          "[e2e][sanitize][fleet]")
{
    if (!require_clickhouse())
        return;
    Lab lab;
    ClickHouseServer ch(lab);
    ch.start();
    auto cfg = write_config(lab.dir() / "fleet.toml", fleet_table(ch.url(), "exf"));
    REQUIRE(exfilmon_fleet({"init", "--config", cfg}).status == 0);
    exf::fleet::ClickHouse client(fleet_client_config(ch, "exf"));
    std::mt19937 rng(7);
    auto send = [&](const std::string &sensor, uint64_t period_s) {
        auto rows = batch(sensor, period_s, rng);
        REQUIRE(client.insert_json_rows("exf.traffic", rows).ok());
        return rows;
    };

    // Three hours of history: the oldest hour rolled up, as the evaluator
    // does, the two after it raw; every third batch sent twice.
    uint64_t now = now_s(), hour0 = now / kHourS * kHourS - 3 * kHourS;
    std::vector<std::string> sensors = {"edge-a", "edge-b", "edge-c"};
    std::vector<std::string> sent;
    for (uint64_t p = hour0; p < now - 60; p += 290)
        for (auto &s : sensors) {
            sent.push_back(send(s, p / 10 * 10));
            if (sent.size() % 3 == 0)
                REQUIRE(client.insert_json_rows("exf.traffic", sent.back()).ok());
        }
    REQUIRE(client.query(exf::fleet::rollup_sql("exf", hour0, 1)).ok());

    exf::fleet::FleetWindows w({EntityKind::client, EntityKind::api_host},
                               {4 * kHourS, 4 * kHourS, 4 * kHourS});
    exf::fleet::BatchFeed feed(client, "exf");
    uint64_t to = now_s() + 1;
    REQUIRE(feed.rebuild(w, hour0, hour0 + kHourS, to).ok());
    for (auto kind : {EntityKind::client, EntityKind::api_host}) {
        INFO("kind " << exf::agg::kind_name(kind));
        auto want = sql_sums(ch, kind, hour0, to);
        REQUIRE(want.size() >= (kind == EntityKind::client ? 30u : 2u));
        CHECK(window_sums(w, kind, hour0, to) == want);
        // A window that starts inside the raw periods.
        CHECK(window_sums(w, kind, hour0 + 5000, to) == sql_sums(ch, kind, hour0 + 5000, to));
    }

    // New batches, and one 40 minutes late.
    uint64_t recent = (now_s() - 20) / 10 * 10, late = recent - 2400;
    for (auto &s : sensors)
        send(s, recent);
    send("edge-d", late);
    uint64_t read_before = feed.batches_read();
    send("edge-a", recent + 600);  // a sensor whose clock is 10 minutes ahead
    REQUIRE(feed.poll(w, recent - 120, recent + 10).ok());
    CHECK(feed.batches_read() == read_before + 3);  // the late one is not among them
    REQUIRE(feed.poll(w, recent - 2 * kHourS, recent + 10).ok());
    CHECK(feed.batches_read() == read_before + 4);
    // Batches sent again (the same bytes, as a sensor resends) add nothing.
    for (size_t i = sent.size() / 2; i < sent.size(); i += 5)
        REQUIRE(client.insert_json_rows("exf.traffic", sent[i]).ok());
    REQUIRE(feed.poll(w, hour0, recent + 10).ok());
    CHECK(feed.batches_read() == read_before + 4);
    REQUIRE(feed.poll(w, hour0, recent + 610).ok());  // its time has come
    CHECK(feed.batches_read() == read_before + 5);

    to = recent + 610;
    exf::fleet::FleetWindows fresh({EntityKind::client, EntityKind::api_host},
                                   {4 * kHourS, 4 * kHourS, 4 * kHourS});
    exf::fleet::BatchFeed fresh_feed(client, "exf");
    REQUIRE(fresh_feed.rebuild(fresh, hour0, hour0 + kHourS, to).ok());
    for (auto kind : {EntityKind::client, EntityKind::api_host}) {
        INFO("kind " << exf::agg::kind_name(kind));
        auto want = sql_sums(ch, kind, hour0, to);
        CHECK(window_sums(w, kind, hour0, to) == want);
        CHECK(window_sums(w, kind, recent - 60, to) == sql_sums(ch, kind, recent - 60, to));
        CHECK(window_sums(fresh, kind, hour0, to) == want);
    }
}
