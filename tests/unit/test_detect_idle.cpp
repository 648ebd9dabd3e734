// SPDX-License-Identifier: Apache-2.0
// The detector skips entities with no update since its last evaluation
// (detector.cpp, visits_all) and must still reach the same verdicts: a
// streak or open alert on an idle entity, a ratio rising while idle, values
// moved by a reconfigured aggregator. Times in ms on the aggregator's clock.
#include <catch2/catch.hpp>

#include <string>

#include "aggregate/aggregator.h"
#include "common/addr.h"
#include "detect/detector.h"

using namespace exf;
using namespace exf::detect;

namespace {

constexpr uint64_t kWall = 1'800'000'000'000ull;
constexpr uint64_t kMin = 60'000;

Addr16 A(const std::string &s) { return *parse_addr(s); }

Rule client_rule(Metric m, uint64_t window_ms, double thr)
{
    Rule r;
    r.name = "r";
    r.entity = agg::EntityKind::client;
    r.metric = m;
    r.window_ms = window_ms;
    r.threshold = thr;
    return r;
}

DetectConfig one_rule(Rule r)
{
    DetectConfig c;
    c.rules = {std::move(r)};
    c.host_name = "sensor-1";
    c.realert_ms = 5 * kMin;
    c.resolve_after_ms = 2 * kMin;
    return c;
}

agg::AggConfig windows()
{
    agg::AggConfig c;
    c.windows_ms = {kMin, 10 * kMin};
    return c;
}

void pull(agg::Aggregator &a, uint64_t now, const std::string &client, uint64_t out,
          uint64_t in = 100)
{
    a.add_traffic(now, A(client), "api.example.com", {in, out, 1, 1, 1});
}

std::vector<AlertRecord> eval(Detector &d, const agg::Aggregator &a, uint64_t now)
{
    return d.evaluate(a, now, kWall + now);
}

}  // namespace

TEST_CASE("An evaluation looks at the entities updated since the last one and those with an alert",
          "[detect]")
{
    agg::Aggregator a(windows());
    Detector d(one_rule(client_rule(Metric::bytes_out, 10 * kMin, 1000)));
    uint64_t t = 1'200'000;
    for (int i = 1; i <= 100; i++)
        pull(a, t, "198.51.100." + std::to_string(i), i == 7 ? 1500 : 500);
    REQUIRE(eval(d, a, t).size() == 1);
    CHECK(d.stats().last_eval_entities == 100);  // the first: every entity

    // Updated at the clock of the last evaluation: looked at again, since
    // an update may come after an evaluation in the same millisecond.
    pull(a, t + 500, "203.0.113.1", 10);
    CHECK(eval(d, a, t + 1000).empty());
    CHECK(d.stats().last_eval_entities == 101);

    pull(a, t + 1500, "203.0.113.2", 10);
    CHECK(eval(d, a, t + 2000).empty());
    // 203.0.113.1 (at the last clock), 203.0.113.2, and the open alert's client.
    CHECK(d.stats().last_eval_entities == 3);

    // The open alert on the idle client still updates, then resolves.
    pull(a, t + 5 * kMin, "203.0.113.3", 10);
    auto r = eval(d, a, t + 5 * kMin);
    REQUIRE(r.size() == 1);
    CHECK(r[0].state == AlertState::update);
    CHECK(r[0].entity == "198.51.100.7");
    // Its 1,500 bytes are then mostly out of the 10-minute window: resolved.
    pull(a, t + 17 * kMin, "203.0.113.4", 10);
    r = eval(d, a, t + 17 * kMin);
    REQUIRE(r.size() == 1);
    CHECK(r[0].state == AlertState::resolved);
}

TEST_CASE("A streak on an idle entity goes on while the rule holds for it", "[detect]")
{
    agg::Aggregator a(windows());
    auto rule = client_rule(Metric::concurrent_flows, kMin, 8);
    rule.sustain = 3;
    Detector d(one_rule(rule));
    uint64_t t = 600'000;
    for (int i = 0; i < 10; i++)
        a.flow_opened(t, A("192.0.2.9"), "api.example.com");  // then idle: ten long flows
    CHECK(eval(d, a, t).empty());
    pull(a, t + 1500, "203.0.113.1", 10);  // other traffic moves the clock on
    CHECK(eval(d, a, t + 2000).empty());
    pull(a, t + 2500, "203.0.113.2", 10);
    auto r = eval(d, a, t + 3000);
    REQUIRE(r.size() == 1);
    CHECK(r[0].entity == "192.0.2.9");
    CHECK(r[0].value == 10);
    CHECK(d.stats().last_eval_entities == 3);  // two updated clients and the streak
}

TEST_CASE(
    "A ratio rising while the entity is idle is still caught, by the entities above min_bytes_out",
    "[detect]")
{
    agg::Aggregator a(windows());
    auto rule = client_rule(Metric::out_in_ratio, kMin, 100);
    rule.min_bytes_out = 1000;
    Detector d(one_rule(rule));
    uint64_t t0 = 600'000;  // a bucket start
    pull(a, t0 + 59'000, "192.0.2.9", 0, 10'000);
    pull(a, t0 + 61'000, "192.0.2.9", 50'000, 10);  // the next bucket
    CHECK(eval(d, a, t0 + 61'000).empty());         // 50,000 / about 9,843
    pull(a, t0 + 100'000, "203.0.113.1", 10);
    CHECK(eval(d, a, t0 + 100'000).empty());  // 50,000 / about 3,343
    pull(a, t0 + 118'000, "203.0.113.2", 10);
    // The earlier bucket's bytes in have nearly rolled off: about 50,000 / 177.
    auto r = eval(d, a, t0 + 119'000);
    REQUIRE(r.size() == 1);
    CHECK(r[0].entity == "192.0.2.9");
    CHECK(r[0].value > 100);
    // The two updated clients, and the one idle client whose bytes out reach
    // min_bytes_out (the others' ratio counts as 0 and cannot rise).
    CHECK(d.stats().last_eval_entities == 3);
}

TEST_CASE("After the aggregator is reconfigured every entity is looked at again", "[detect]")
{
    agg::AggConfig cfg = windows();
    agg::Aggregator a(cfg);
    Detector d(one_rule(client_rule(Metric::bytes_out, 10 * kMin, 1000)));
    uint64_t t = 1'200'000;
    pull(a, t, "2001:db8:1:1::1", 600);
    pull(a, t, "2001:db8:1:2::1", 600);
    CHECK(eval(d, a, t).empty());
    pull(a, t + 500, "203.0.113.1", 10);
    CHECK(eval(d, a, t + 1000).empty());
    // /48 clients: the two /64s become one client of 1,200 bytes, with no update.
    cfg.client_prefix_v6 = 48;
    std::string why;
    REQUIRE(a.reconfigure(cfg, why));
    auto r = eval(d, a, t + 2000);
    REQUIRE(r.size() == 1);
    CHECK(r[0].entity == "2001:db8:1::/48");
    CHECK(r[0].value == 1200);
}
