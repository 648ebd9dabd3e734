// SPDX-License-Identifier: Apache-2.0
// The fleet benchmark's generated rows (bench/fleet_rows.h): the figures
// docs/fleet.md's sizing derives from assume this shape.
#include <catch2/catch.hpp>
#include <map>
#include <set>

#include "../../bench/fleet_rows.h"

using exf::bench::FleetSpec;

TEST_CASE("The fleet benchmark's sensors each send their clients once a minute, named as the "
          "daemon names them",
          "[fleet][bench]")
{
    FleetSpec f;
    f.sensors = 3;
    f.clients = 600;
    f.pool = 1000;
    auto namer = exf::bench::fleet_namer();
    const uint64_t minute = 1796649900;  // a whole minute
    for (uint32_t s = 0; s < f.sensors; s++) {
        std::map<std::string, int> seen;  // client -> periods of the minute it is in
        for (uint64_t p = minute; p < minute + 60; p += f.period_s) {
            auto rows = exf::bench::period_rows(f, namer, s, p);
            CHECK(rows.size() == f.clients * f.period_s / 60);
            for (auto &r : rows) {
                CHECK(r.period_start_ms == p * 1000);
                CHECK(r.period_ms == f.period_s * 1000);
                CHECK(r.traffic.bytes_out >= 20000);
                CHECK(r.traffic.flows_opened >= 1);
                seen[r.names.client]++;
            }
        }
        CHECK(seen.size() == f.clients);
        for (auto &[client, periods] : seen)
            CHECK(periods == 1);
    }
    // The names the aggregator gives: IPv4 /32 in a /24, IPv6 /64 in a /48,
    // the cohorts of the model.
    auto v4 = exf::bench::client_names(namer, exf::bench::client_addr(1));
    CHECK(v4.client == "198.51.100.10");
    CHECK(v4.subnet == "198.51.100.0/24");
    CHECK(v4.cohort == "partner-a");
    auto v6 = exf::bench::client_names(namer, exf::bench::client_addr(0x1234));
    CHECK(v6.client == "2001:db8:1234::/64");
    CHECK(v6.subnet == "2001:db8:1234::/48");
    CHECK(v6.cohort == "partner-b");
}

TEST_CASE("The fleet benchmark's puller takes its bytes per 10 minutes spread over every sensor",
          "[fleet][bench]")
{
    FleetSpec f;
    f.sensors = 4;
    f.clients = 60;
    f.pool = 120;
    f.pull_bytes = 3ull << 30;
    f.pull_from_s = 1796649600;
    f.end_s = f.pull_from_s + 1200;
    auto namer = exf::bench::fleet_namer();
    uint64_t total = 0;
    std::set<uint32_t> sensors;
    for (uint64_t p = f.pull_from_s - 60; p < f.end_s + 60; p += f.period_s)
        for (uint32_t s = 0; s < f.sensors; s++)
            for (auto &r : exf::bench::period_rows(f, namer, s, p))
                if (r.names.client == exf::bench::kPuller) {
                    CHECK(p >= f.pull_from_s);
                    CHECK(p < f.end_s);
                    total += r.traffic.bytes_out;
                    sensors.insert(s);
                }
    CHECK(sensors.size() == f.sensors);
    // 20 minutes: twice the bytes per 10 minutes, to within the rounding.
    CHECK(total <= 2 * f.pull_bytes);
    CHECK(total > 2 * f.pull_bytes - 1000);
}
