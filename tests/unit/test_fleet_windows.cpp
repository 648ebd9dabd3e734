// SPDX-License-Identifier: Apache-2.0
// The fleet evaluator's windows in memory (fleet/fleet_windows.h): sums per
// entity over a window of period starts, summed over sensors; distinct
// clients, subnets and sensors; period cells merged into hours and dropped
// as they age.
#include <catch2/catch.hpp>

#include "fleet/fleet_windows.h"
#include "fleet/rule_sql.h"

using namespace exf;
using namespace exf::fleet;
using agg::EntityKind;

namespace {

// 2026-12-07 13:00:00 UTC: a whole hour.
constexpr uint32_t kHourStart = 1796648400;

FleetRow row(uint32_t t_s, const std::string &sensor, const std::string &client, uint64_t bytes_out,
             const std::string &sni = "api.example.com")
{
    FleetRow r;
    r.t_s = t_s;
    r.sensor = sensor;
    r.client = client;
    r.subnet = client.substr(0, client.rfind('.')) + ".0/24";
    r.sni = sni;
    r.ja4 = "t13d1516h2_8daaf6152771_02713d6af862";
    r.bytes_out = bytes_out;
    r.bytes_in = bytes_out / 10;
    r.tls_flows = 1;
    r.requests = 2;
    r.peak_concurrent = 1;
    return r;
}

agg::EntityKey client_key(const std::string &text)
{
    return *entity_key(EntityKind::client, text, "");
}

FleetWindows windows(std::set<EntityKind> kinds = {EntityKind::client, EntityKind::subnet,
                                                   EntityKind::api_host})
{
    return FleetWindows(std::move(kinds), {600, 3600, 25 * 3600});
}

}  // namespace

TEST_CASE("A window sums every sensor's rows of the periods that start in it", "[fleet]")
{
    auto w = windows();
    uint32_t t = kHourStart + 600;
    w.add(row(t - 10, "edge-1", "203.0.113.7", 1000));  // before the window
    w.add(row(t, "edge-1", "203.0.113.7", 100));
    w.add(row(t, "edge-2", "203.0.113.7", 200));
    w.add(row(t + 50, "edge-2", "203.0.113.7", 400));
    w.add(row(t + 60, "edge-1", "203.0.113.7", 8000));  // at the window's end: not in it

    auto v = w.find(EntityKind::client, client_key("203.0.113.7"), t, t + 60);
    REQUIRE(v);
    CHECK(v->figures.window.bytes_out == 700);
    CHECK(v->figures.window.bytes_in == 10 + 20 + 40);
    CHECK(v->figures.window.tls_flows == 3);
    CHECK(v->figures.window.requests == 6);
    CHECK(v->figures.window.peak_concurrent == 2);  // both sensors' flows in period t
    CHECK(v->figures.distinct_sensors == 2);
    CHECK(v->first_seen_s == t);
    CHECK_FALSE(w.find(EntityKind::client, client_key("203.0.113.8"), t, t + 60));
    CHECK_FALSE(w.find(EntityKind::client, client_key("203.0.113.7"), t + 61, t + 120));

    // A batch that comes late lands in its own period, between the others.
    w.add(row(t + 20, "edge-3", "203.0.113.7", 30));
    v = w.find(EntityKind::client, client_key("203.0.113.7"), t, t + 60);
    CHECK(v->figures.window.bytes_out == 730);
    CHECK(v->figures.distinct_sensors == 3);
    CHECK(w.find(EntityKind::client, client_key("203.0.113.7"), t + 20, t + 61)
              ->figures.window.bytes_out == 30 + 400 + 8000);
    CHECK(w.find(EntityKind::client, client_key("203.0.113.7"), t - 10, t + 20)
              ->figures.window.bytes_out == 1000 + 300);
}

TEST_CASE("Groups count their distinct clients and subnets in the window only", "[fleet]")
{
    auto w = windows();
    uint32_t t = kHourStart + 1200;
    w.add(row(t - 300, "edge-1", "198.51.100.9", 5));
    w.add(row(t, "edge-1", "203.0.113.7", 5));
    w.add(row(t + 10, "edge-2", "203.0.113.8", 5));
    w.add(row(t + 20, "edge-2", "198.51.100.9", 5, ""));  // no SNI: not the API host's

    std::map<std::string, detect::Figures> sni, subnets;
    w.for_each(EntityKind::api_host, t, t + 60, {}, 0,
               [&](const agg::EntityKey &k, const FleetWindows::Value &v) {
                   sni[agg::format_key(EntityKind::api_host, k)] = v.figures;
               });
    REQUIRE(sni.size() == 1);
    auto &api = sni.begin()->second;
    CHECK(api.window.distinct_clients == 2);
    CHECK(api.window.distinct_subnets == 1);
    CHECK(api.distinct_sensors == 2);
    CHECK(api.window.bytes_out == 10);

    w.for_each(EntityKind::subnet, t, t + 60, {}, 0,
               [&](const agg::EntityKey &k, const FleetWindows::Value &v) {
                   subnets[agg::format_key(EntityKind::subnet, k)] = v.figures;
               });
    REQUIRE(subnets.size() == 2);
    CHECK(subnets["203.0.113.0/24"].window.distinct_clients == 2);
    CHECK(subnets["198.51.100.0/24"].window.bytes_out == 5);  // the row before t is out
    CHECK_FALSE(w.for_each(EntityKind::cohort, t, t + 60, {}, 0, [](auto &, auto &) {}));

    // Without the distinct counts asked for, they are not counted.
    w.for_each(EntityKind::subnet, t, t + 60, {false, false}, 0,
               [&](const agg::EntityKey &, const FleetWindows::Value &v) {
                   CHECK(v.figures.window.distinct_clients == 0);
                   CHECK(v.figures.window.peak_concurrent == 0);
               });
}

TEST_CASE("Aged period cells become minutes, then hours, counted in part at a window's old end, "
          "then dropped",
          "[fleet]")
{
    auto w = windows({EntityKind::client});
    for (uint32_t t = kHourStart; t < kHourStart + 3600; t += 10)
        w.add(row(t, "edge-1", "203.0.113.7", 10));  // 3,600 bytes in the hour
    w.add(row(kHourStart + 2 * 3600, "edge-1", "203.0.113.7", 1));
    auto key = client_key("203.0.113.7");
    uint64_t cells = w.cells();
    CHECK(cells == 361);

    // 20 minutes after the hour, its periods (older than exact_s, 10 min)
    // are minutes.
    w.age(kHourStart + 3600 + 1200);
    CHECK(w.cells() == 60 + 1);
    auto minutes = w.find(EntityKind::client, key, kHourStart + 30, kHourStart + 3600);
    REQUIRE(minutes);
    CHECK(minutes->figures.window.bytes_out == 3600 - 30);  // half of the first minute's 60
    CHECK(minutes->figures.window.peak_concurrent == 1);

    // Three hours later the first hour is older than fine_s (1 h): one cell;
    // the last period is a minute.
    uint64_t now = kHourStart + 3 * 3600;
    w.age(now);
    CHECK(w.cells() == 2);
    // A window from the hour's middle reads half of it.
    auto half = w.find(EntityKind::client, key, kHourStart + 1800, now);
    REQUIRE(half);
    CHECK(half->figures.window.bytes_out == 1800 + 1);
    auto whole = w.find(EntityKind::client, key, kHourStart, now);
    CHECK(whole->figures.window.bytes_out == 3600 + 1);
    CHECK(whole->figures.window.peak_concurrent == 1);
    // A late row of that hour joins it.
    w.add(row(kHourStart + 5, "edge-2", "203.0.113.7", 400));
    w.age(now);
    CHECK(w.cells() == 2);
    CHECK(w.find(EntityKind::client, key, kHourStart, now)->figures.window.bytes_out == 4001);
    CHECK(w.find(EntityKind::client, key, kHourStart, now)->figures.distinct_sensors == 2);

    // Past keep_s (25 h) everything is dropped, the entity with it.
    w.age(kHourStart + 3 * 3600 + 25 * 3600);
    CHECK(w.cells() == 0);
    CHECK(w.entities() == 0);
}

TEST_CASE("A name no sensor writes is kept out of every rule", "[fleet]")
{
    auto w = windows({EntityKind::client});
    w.add(row(kHourStart, "edge-1", "not-an-address", 10));
    bool visited = false;
    CHECK(w.for_each(EntityKind::client, kHourStart, kHourStart + 60, {}, 0,
                     [&](auto &, auto &) { visited = true; }));
    CHECK_FALSE(visited);
}

TEST_CASE("Only the entities a row came to since a time are visited, and ageing says values moved",
          "[fleet]")
{
    auto w = windows({EntityKind::client});
    uint32_t t = kHourStart;
    w.set_clock(1000);
    w.add(row(t, "edge-1", "203.0.113.7", 10));
    w.set_clock(2000);
    w.add(row(t, "edge-1", "203.0.113.8", 10));
    std::vector<std::string> seen;
    auto visit = [&](const agg::EntityKey &k, const FleetWindows::Value &v) {
        seen.push_back(agg::format_key(EntityKind::client, k));
        CHECK(v.figures.updated_ms >= 1000);
    };
    w.for_each(EntityKind::client, t, t + 60, {}, 2000, visit);
    CHECK(seen == std::vector<std::string>{"203.0.113.8"});
    seen.clear();
    w.for_each(EntityKind::client, t, t + 60, {}, 0, visit);
    CHECK(seen.size() == 2);
    CHECK(w.find(EntityKind::client, client_key("203.0.113.7"), t, t + 60)->figures.updated_ms ==
          1000);
    uint64_t g = w.generation();
    w.age(t + 60);
    CHECK(w.generation() != g);
}
