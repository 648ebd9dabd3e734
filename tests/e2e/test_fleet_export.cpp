// SPDX-License-Identifier: Apache-2.0
// A sensor's delivery to a real ClickHouse (fleet/exporter.h): periods in
// order; a server stopped and started again, a restart with periods left in
// the spool, a batch sent twice: nothing lost, nothing counted twice; a
// full spool drops the oldest, counted.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <thread>

#include "common/addr.h"
#include "fleet/clickhouse.h"
#include "fleet/exporter.h"
#include "fleet/periods.h"
#include "support/clickhouse.h"
#include "support/test_env.h"

using namespace exf::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kT0 = 1765100000000;

// A started ClickHouse with the fleet schema in database "exf".
struct FleetServer {
    Lab lab;
    ClickHouseServer ch{lab};
    exf::fleet::FleetConfig cfg = fleet_client_config(ch, "exf");
    FleetServer()
    {
        ch.start();
        auto init =
            exfilmon_fleet({"init", "--config",
                            write_config(lab.dir() / "fleet.toml", fleet_table(ch.url(), "exf"))});
        INFO(init.err);
        REQUIRE(init.status == 0);
    }
    exf::fleet::ExporterOptions options(size_t max_batches = 100)
    {
        return {lab.dir() / "spool", max_batches, 50ms, 200ms};
    }
    // bytes_out summed per period, read FINAL: "period\tbytes\n"...
    std::string sums() { return ch.query(kSumsSql); }
    static constexpr const char *kSumsSql =
        "SELECT toUInt64(period_start), sum(bytes_out), count() FROM exf.traffic FINAL "
        "GROUP BY period_start ORDER BY period_start";
};

// Period n's rows: two clients, bytes_out 1000 * (n + 1) and 1.
std::string period_rows(int n)
{
    exf::fleet::PeriodTable t(10000, [](const exf::Addr16 &a) {
        return exf::fleet::ClientNames{exf::format_addr(a), "", ""};
    });
    uint64_t at = kT0 + uint64_t(n) * 10000;
    t.add(at, *exf::parse_addr("203.0.113.7"), "api.example.com", "j",
          {1, 1000 * uint64_t(n + 1), 1, 1, 1});
    t.add(at, *exf::parse_addr("203.0.113.8"), "api.example.com", "j", {1, 1, 1, 1, 1});
    return exf::fleet::to_json_rows(t.close_due(at + 10000), "edge-1");
}

std::string expected_sums(std::initializer_list<int> periods)
{
    std::string s;
    for (int n : periods)
        s += std::to_string((kT0 + uint64_t(n) * 10000) / 1000) + "\t" +
             std::to_string(1000 * (n + 1) + 1) + "\t2\n";
    return s;
}

size_t spool_files(const fs::path &dir)
{
    size_t n = 0;
    for (auto &e : fs::directory_iterator(dir))
        n += e.path().extension() == ".jsonl";
    return n;
}

void submit(exf::fleet::Exporter &e, int n) { e.submit(kT0 + uint64_t(n) * 10000, period_rows(n)); }

}  // namespace

TEST_CASE("The fleet exporter sends periods in order and a server outage loses and doubles nothing",
          "[e2e][sanitize][fleet]")
{
    if (!require_clickhouse())
        return;
    FleetServer fs_;
    exf::fleet::Exporter exporter(fs_.cfg, fs_.options());
    exporter.start();
    for (int n : {0, 1, 2})
        submit(exporter, n);
    REQUIRE(exporter.drain(20s));
    CHECK(fs_.sums() == expected_sums({0, 1, 2}));
    CHECK(spool_files(fs_.lab.dir() / "spool") == 0);
    auto s = exporter.stats();
    CHECK(s.batches_sent == 3);
    CHECK(s.rows_sent == 6);
    CHECK(s.last_success_ms > 0);

    fs_.ch.stop();
    for (int n : {3, 4, 5})
        submit(exporter, n);
    // Each waits on disk while the server is away, and failures are counted.
    REQUIRE(eventually([&] {
        auto st = exporter.stats();
        return st.failures >= 2 && spool_files(fs_.lab.dir() / "spool") == 3;
    }));
    CHECK(exporter.stats().spool_depth == 3);
    CHECK(exporter.stats().last_error.find("cannot reach ClickHouse") != std::string::npos);
    fs_.ch.start();
    REQUIRE(exporter.drain(30s));
    CHECK(fs_.sums() == expected_sums({0, 1, 2, 3, 4, 5}));
    CHECK(exporter.stats().last_error.empty());
    CHECK(spool_files(fs_.lab.dir() / "spool") == 0);
}

TEST_CASE("Periods a stopped sensor left in its spool are sent by the next run and count once",
          "[e2e][sanitize][fleet]")
{
    if (!require_clickhouse())
        return;
    FleetServer fs_;
    fs_.ch.stop();
    {
        exf::fleet::Exporter first(fs_.cfg, fs_.options());
        first.start();
        for (int n : {0, 1, 2})
            submit(first, n);
        REQUIRE(eventually([&] { return spool_files(fs_.lab.dir() / "spool") == 3; }));
    }  // stopped with three periods unsent
    fs_.ch.start();
    // Period 1 had in fact landed before the stop (its reply was lost): the
    // next run sends it again.
    exf::fleet::ClickHouse direct(fs_.cfg);
    REQUIRE(direct.insert_json_rows("exf.traffic", period_rows(1)).ok());
    exf::fleet::Exporter second(fs_.cfg, fs_.options());
    second.start();
    REQUIRE(second.drain(30s));
    CHECK(fs_.sums() == expected_sums({0, 1, 2}));
    CHECK(second.stats().batches_sent == 3);
    CHECK(spool_files(fs_.lab.dir() / "spool") == 0);
}

TEST_CASE("A full fleet spool drops the oldest periods and counts them", "[e2e][fleet]")
{
    if (!require_clickhouse())
        return;
    FleetServer fs_;
    fs_.ch.stop();
    // A long backoff: after the first failure the thread waits, so no batch
    // is in flight while the spool fills.
    auto opts = fs_.options(2);
    opts.backoff_min = opts.backoff_max = 2s;
    exf::fleet::Exporter exporter(fs_.cfg, opts);
    exporter.start();
    submit(exporter, 0);
    REQUIRE(eventually([&] { return exporter.stats().failures == 1; }));
    for (int n : {1, 2, 3})
        submit(exporter, n);
    auto s = exporter.stats();
    CHECK(s.dropped_batches == 2);
    CHECK(s.spool_depth == 2);
    fs_.ch.start();
    REQUIRE(exporter.drain(30s));
    CHECK(fs_.sums() == expected_sums({2, 3}));
}
