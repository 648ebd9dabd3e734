// SPDX-License-Identifier: Apache-2.0
// The aggregator: expiry, distinct clients, top-N, iteration, top SNIs,
// eviction, reconfiguration, the memory budget and the entities updated
// since a time.
#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <random>
#include <set>

#include "aggregate/aggregator.h"
#include "support/addr.h"

using namespace exf;
using namespace exf::agg;

namespace {
constexpr auto A = exf::test::addr_of;

Addr16 v4(uint32_t x)
{
    Addr16 a{};
    a[10] = a[11] = 0xff;
    a[12] = uint8_t(x >> 24);
    a[13] = uint8_t(x >> 16);
    a[14] = uint8_t(x >> 8);
    a[15] = uint8_t(x);
    return a;
}

Addr16 v6(uint64_t net, uint64_t host)
{
    Addr16 a{};
    for (int i = 0; i < 8; i++) {
        a[i] = uint8_t(net >> (56 - 8 * i));
        a[8 + i] = uint8_t(host >> (56 - 8 * i));
    }
    return a;
}

Traffic out(uint64_t bytes, uint64_t flows = 0)
{
    Traffic t;
    t.bytes_out = bytes;
    t.flows_opened = flows;
    return t;
}

constexpr uint64_t kMin = 60'000, kHour = 3'600'000, kDay = 86'400'000;
}  // namespace

TEST_CASE("Idle entities expire after the longest window", "[aggregate]")
{
    Aggregator agg;
    agg.add_traffic(0, A("10.0.0.1"), "api.example.com", out(10));
    agg.add_traffic(kHour, A("10.0.1.1"), "api.example.com", out(10));
    CHECK(agg.size(EntityKind::client) == 2);
    CHECK(agg.expire(kDay) == 0);  // idle exactly 24 h: kept
    CHECK(agg.size(EntityKind::client) == 2);
    // 10.0.0.1, its /24 and its client x API host go; the API host stays
    // (10.0.1.1 used it an hour later), the host entity always stays.
    CHECK(agg.expire(kDay + 1) == 3);
    CHECK(agg.size(EntityKind::client) == 1);
    CHECK(agg.size(EntityKind::subnet) == 1);
    CHECK(agg.size(EntityKind::client_api_host) == 1);
    CHECK(agg.size(EntityKind::api_host) == 1);
    CHECK(agg.size(EntityKind::host) == 1);
    CHECK(agg.expirations(EntityKind::client) == 1);
    CHECK_FALSE(agg.find(EntityKind::client, agg.client_key(A("10.0.0.1"))));
    CHECK(agg.expire(kDay + kHour + 1) == 4);
    CHECK(agg.size(EntityKind::client) + agg.size(EntityKind::subnet) +
              agg.size(EntityKind::api_host) + agg.size(EntityKind::client_api_host) ==
          0);
    CHECK(agg.size(EntityKind::host) == 1);
    // A returning client is new.
    agg.add_traffic(2 * kDay, A("10.0.0.1"), "", out(1));
    CHECK(agg.find(EntityKind::client, agg.client_key(A("10.0.0.1")))->first_seen_ms() == 2 * kDay);
}

TEST_CASE("Expiry follows the longest configured window", "[aggregate]")
{
    AggConfig cfg;
    cfg.windows_ms = {10'000, 60'000};
    Aggregator agg(cfg);
    agg.add_traffic(0, A("10.0.0.1"), "", out(1));
    CHECK(agg.expire(60'000) == 0);
    CHECK(agg.expire(60'001) == 2);  // client and subnet
}

// expire() skips its sweep while nothing can be idle long enough: each
// entity must still go at the first expire() after its longest window.
TEST_CASE("Each entity expires at the first expiry after its longest window, sweep or not",
          "[aggregate]")
{
    AggConfig cfg;
    cfg.windows_ms = {60'000};
    Aggregator agg(cfg);
    agg.add_traffic(0, A("192.0.2.1"), "", out(1));
    CHECK(agg.expire(30'000) == 0);
    agg.add_traffic(40'000, A("198.51.100.1"), "", out(1));
    CHECK(agg.expire(50'000) == 0);
    CHECK(agg.expire(60'001) == 2);  // 192.0.2.1 and its subnet
    CHECK(agg.size(EntityKind::client) == 1);
    CHECK(agg.expire(100'000) == 0);
    agg.add_traffic(100'000, A("203.0.113.1"), "", out(1));
    CHECK(agg.expire(100'001) == 2);  // 198.51.100.1, idle 60,001 ms
    CHECK(agg.expire(160'000) == 0);
    CHECK(agg.expire(160'001) == 2);
    CHECK(agg.size(EntityKind::client) == 0);
    CHECK(agg.expirations(EntityKind::client) == 3);
}

TEST_CASE("Distinct clients count each client once per window", "[aggregate]")
{
    Aggregator agg;
    auto sub = agg.subnet_key(A("10.5.5.0"));
    for (int round = 0; round < 3; round++)
        for (int i = 1; i <= 10; i++)
            agg.add_traffic(1000 + round, v4(0x0a050500 + i), "", out(1));
    CHECK(agg.value(EntityKind::subnet, sub, 0, 1000).distinct_clients == 10);
    CHECK(agg.value(EntityKind::host, host_key(), 0, 1000).distinct_clients == 10);
    // Next minute bucket: 4 of them again, plus 1 new.
    for (int i = 1; i <= 5; i++)
        agg.add_traffic(kMin + 1000, v4(0x0a050500 + i + (i == 5 ? 100 : 0)), "", out(1));
    // 1m window: 5 now, 6 only in the previous bucket.
    CHECK(agg.value(EntityKind::subnet, sub, 0, kMin + 1000, Estimate::lower).distinct_clients ==
          5);
    CHECK(agg.value(EntityKind::subnet, sub, 0, kMin + 1000, Estimate::upper).distinct_clients ==
          11);
    CHECK(agg.value(EntityKind::subnet, sub, 0, kMin + 1000).distinct_clients ==
          5 + 6 * 58'999 / 60'000);
    // 10m window: all 11 in one bucket.
    CHECK(agg.value(EntityKind::subnet, sub, 1, kMin + 1000).distinct_clients == 11);
    CHECK(agg.value(EntityKind::host, host_key(), 3, kMin + 1000).distinct_clients == 11);
    // Later, only the 1h/24h windows remember them.
    CHECK(agg.value(EntityKind::subnet, sub, 1, 30 * kMin).distinct_clients == 0);
    CHECK(agg.value(EntityKind::subnet, sub, 2, 30 * kMin).distinct_clients == 11);
    // Clients have no distinct count; API hosts count their clients.
    agg.add_traffic(2 * kMin, A("10.5.5.1"), "api.example.com", out(1));
    agg.add_traffic(2 * kMin, A("10.5.5.2"), "api.example.com", out(1));
    agg.add_traffic(2 * kMin, A("10.5.5.2"), "API.example.com", out(1));
    CHECK(agg.value(EntityKind::api_host, agg.api_host_key("api.example.com"), 0, 2 * kMin)
              .distinct_clients == 2);
    CHECK(agg.value(EntityKind::client, agg.client_key(A("10.5.5.1")), 0, 2 * kMin)
              .distinct_clients == 0);
}

TEST_CASE("Distinct clients stay within their bound under random traffic", "[aggregate]")
{
    std::mt19937_64 rng(3);
    AggConfig cfg;
    cfg.windows_ms = {5'000, 50'000};
    Aggregator agg(cfg);
    std::vector<std::pair<uint64_t, uint32_t>> seen;  // time, client
    uint64_t t = 0;
    for (int i = 0; i < 3000; i++) {
        t += rng() % 300;
        uint32_t c = uint32_t(rng() % 64);
        agg.add_traffic(t, v4(0x0a000000 + c), "", out(1));
        seen.push_back({t, c});
        if (i % 7)
            continue;
        uint64_t q = t + rng() % 1000;
        for (size_t w = 0; w < 2; w++) {
            uint64_t L = cfg.windows_ms[w];
            std::set<uint32_t> exact;
            for (auto &[st, cl] : seen)
                if (st + L > q)
                    exact.insert(cl);
            auto lo =
                agg.value(EntityKind::host, host_key(), w, q, Estimate::lower).distinct_clients;
            auto s = agg.value(EntityKind::host, host_key(), w, q).distinct_clients;
            auto hi =
                agg.value(EntityKind::host, host_key(), w, q, Estimate::upper).distinct_clients;
            INFO("q=" << q << " w=" << w);
            REQUIRE(lo <= exact.size());
            REQUIRE(exact.size() <= hi);
            REQUIRE(lo <= s);
            REQUIRE(s <= hi);
        }
    }
    // Expiry keeps the counts consistent: after everyone expired, nothing is left.
    agg.expire(t + 50'001);
    CHECK(agg.size(EntityKind::client) == 0);
    CHECK(
        agg.value(EntityKind::host, host_key(), 1, t + 50'001, Estimate::upper).distinct_clients ==
        0);
}

TEST_CASE("top() sorts by each metric and breaks ties", "[aggregate]")
{
    Aggregator agg;
    // bytes_out: c3 > c1 > c2; bytes_in: c2 first; flows: c1 first.
    Traffic t1 = out(500, 9), t2 = out(100, 1), t3 = out(900, 2);
    t1.bytes_in = 10;
    t2.bytes_in = 1000;
    t3.bytes_in = 20;
    agg.add_traffic(100, A("10.0.0.1"), "a.example", t1);
    agg.add_traffic(100, A("10.0.0.2"), "a.example", t2);
    agg.add_traffic(100, A("10.0.0.3"), "b.example", t3);
    agg.flow_opened(100, A("10.0.0.2"), "a.example");
    agg.flow_opened(100, A("10.0.0.2"), "a.example");
    agg.flow_opened(100, A("10.0.0.1"), "a.example");
    auto names = [&](const std::vector<Row> &rows, EntityKind k) {
        std::vector<std::string> v;
        for (auto &r : rows)
            v.push_back(format_key(k, r.key));
        return v;
    };
    using V = std::vector<std::string>;
    CHECK(names(agg.top(EntityKind::client, 0, SortBy::bytes_out, 10, 100), EntityKind::client) ==
          V{"10.0.0.3", "10.0.0.1", "10.0.0.2"});
    CHECK(names(agg.top(EntityKind::client, 0, SortBy::bytes_out, 2, 100), EntityKind::client) ==
          V{"10.0.0.3", "10.0.0.1"});
    CHECK(names(agg.top(EntityKind::client, 0, SortBy::bytes_in, 1, 100), EntityKind::client) ==
          V{"10.0.0.2"});
    CHECK(names(agg.top(EntityKind::client, 0, SortBy::tls_flows, 3, 100), EntityKind::client) ==
          V{"10.0.0.1", "10.0.0.3", "10.0.0.2"});
    // Concurrent: c2 (2) then c1 (1); c3 has none and is left out.
    CHECK(names(agg.top(EntityKind::client, 0, SortBy::concurrent, 3, 100), EntityKind::client) ==
          V{"10.0.0.2", "10.0.0.1"});
    CHECK(names(agg.top(EntityKind::api_host, 0, SortBy::bytes_out, 3, 100),
                EntityKind::api_host) == V{"b.example", "a.example"});
    CHECK(names(agg.top(EntityKind::api_host, 0, SortBy::distinct_clients, 3, 100),
                EntityKind::api_host) == V{"a.example", "b.example"});
    auto rows = agg.top(EntityKind::client_api_host, 0, SortBy::bytes_out, 1, 100);
    REQUIRE(rows.size() == 1);
    CHECK(format_key(EntityKind::client_api_host, rows[0].key) == "10.0.0.3 -> b.example");
    CHECK(rows[0].value.bytes_out == 900);
    CHECK(rows[0].first_seen_ms == 100);
    // Ties on the metric: more bytes out first, then the older entity.
    agg.add_traffic(200, A("10.0.0.9"), "", out(900, 2));
    auto tie = agg.top(EntityKind::client, 0, SortBy::tls_flows, 4, 200);
    REQUIRE(tie.size() == 4);
    CHECK(format_key(EntityKind::client, tie[1].key) == "10.0.0.3");
    CHECK(format_key(EntityKind::client, tie[2].key) == "10.0.0.9");
    // Unknown window or n = 0: empty.
    CHECK(agg.top(EntityKind::client, 9, SortBy::bytes_out, 5, 100).empty());
    CHECK(agg.top(EntityKind::client, 0, SortBy::bytes_out, 0, 100).empty());
    CHECK(agg.value(EntityKind::client, agg.client_key(A("10.0.0.1")), 9, 100) == WindowValue{});
}

TEST_CASE("top() over many clients matches a full sort", "[aggregate]")
{
    std::mt19937_64 rng(11);
    Aggregator agg;
    std::map<uint32_t, uint64_t> bytes;
    for (int i = 0; i < 5000; i++) {
        uint32_t c = uint32_t(rng() % 2000);
        uint64_t b = rng() % 100000;
        agg.add_traffic(1000, v4(0x0b000000 + c), "", out(b));
        bytes[c] += b;
    }
    std::vector<uint64_t> sorted;
    for (auto &[c, b] : bytes)
        if (b)
            sorted.push_back(b);
    std::sort(sorted.rbegin(), sorted.rend());
    auto rows = agg.top(EntityKind::client, 1, SortBy::bytes_out, 25, 1000);
    REQUIRE(rows.size() == 25);
    for (size_t i = 0; i < 25; i++)
        CHECK(rows[i].value.bytes_out == sorted[i]);
}

TEST_CASE("for_each visits every entity with its metadata", "[aggregate]")
{
    Aggregator agg;
    agg.add_traffic(10, A("10.0.0.1"), "x.example", out(5));
    agg.add_traffic(20, A("10.0.0.2"), "x.example", out(6));
    agg.add_traffic(30, A("10.0.0.1"), "y.example", out(7));
    std::map<std::string, std::pair<uint64_t, uint64_t>> seen;
    agg.for_each(EntityKind::client, [&](const EntityRef &r) {
        CHECK(r.kind() == EntityKind::client);
        seen[format_key(r.kind(), r.key())] = {r.first_seen_ms(), r.last_seen_ms()};
        CHECK(r.value(0, 30).bytes_out > 0);
    });
    CHECK(seen.size() == 2);
    CHECK(seen["10.0.0.1"] == std::make_pair<uint64_t, uint64_t>(10, 30));
    CHECK(seen["10.0.0.2"] == std::make_pair<uint64_t, uint64_t>(20, 20));
    size_t pairs = 0;
    agg.for_each(EntityKind::client_api_host, [&](const EntityRef &) { pairs++; });
    CHECK(pairs == 3);
    size_t hosts = 0;
    agg.for_each(EntityKind::host, [&](const EntityRef &r) {
        hosts++;
        CHECK(r.first_seen_ms() == 10);
        CHECK(r.value(3, 30).bytes_out == 18);
    });
    CHECK(hosts == 1);
}

TEST_CASE("Top SNIs keep the 4 heaviest per client subnet and host", "[aggregate]")
{
    Aggregator agg;
    auto c = A("10.7.0.1");
    agg.add_traffic(1, c, "a.example", out(10 << 10));
    agg.add_traffic(1, c, "b.example", out(50 << 10));
    agg.add_traffic(1, c, "c.example", out(20 << 10));
    agg.add_traffic(1, c, "d.example", out(5 << 10));
    agg.add_traffic(1, c, "a.example", out(30 << 10));  // a: 40 KiB
    // A fifth SNI displaces the lightest (d, 5 KiB) and inherits its weight.
    agg.add_traffic(1, c, "e.example", out(100 << 10));
    auto snis = agg.top_snis(EntityKind::client, agg.client_key(c));
    REQUIRE(snis.size() == 4);
    CHECK(snis[0].sni == "e.example");
    CHECK(snis[0].bytes_out == 105 << 10);  // over-count by at most the displaced 5 KiB
    CHECK(snis[1].sni == "b.example");
    CHECK(snis[2].sni == "a.example");
    CHECK(snis[2].bytes_out == 40 << 10);
    CHECK(snis[3].sni == "c.example");
    auto sub = agg.top_snis(EntityKind::subnet, agg.subnet_key(c));
    REQUIRE(sub.size() == 4);
    CHECK(sub[0].sni == "e.example");
    CHECK(agg.top_snis(EntityKind::host, host_key()).size() == 4);
    CHECK(agg.top_snis(EntityKind::api_host, agg.api_host_key("a.example")).empty());
    // Small responses count at least 1 KiB each.
    agg.add_traffic(2, A("10.7.0.2"), "tiny.example", out(3));
    auto tiny = agg.top_snis(EntityKind::client, agg.client_key(A("10.7.0.2")));
    REQUIRE(tiny.size() == 1);
    CHECK(tiny[0].bytes_out == 1024);
}

TEST_CASE("Limits evict the least recently updated entities", "[aggregate]")
{
    AggConfig cfg;
    cfg.max_clients = 100;
    cfg.max_api_hosts = 8;
    Aggregator agg(cfg);
    for (uint32_t i = 0; i < 100; i++)
        agg.add_traffic(1000 + i, v4(0x0a000000 + i), "", out(1));
    CHECK(agg.size(EntityKind::client) == 100);
    CHECK(agg.evictions(EntityKind::client) == 0);
    for (uint32_t i = 100; i < 150; i++)
        agg.add_traffic(5000 + i, v4(0x0a000000 + i), "", out(1));
    CHECK(agg.size(EntityKind::client) == 100);
    CHECK(agg.evictions(EntityKind::client) == 50);
    // The newest are all kept (each eviction picks the oldest of a sample).
    for (uint32_t i = 100; i < 150; i++)
        CHECK(agg.find(EntityKind::client, agg.client_key(v4(0x0a000000 + i))));
    // Distinct counts forget evicted clients (the /24 holds 150 addresses).
    auto d =
        agg.value(EntityKind::subnet, agg.subnet_key(v4(0x0a000000)), 0, 5150, Estimate::upper);
    CHECK(d.distinct_clients == 100);
    // API hosts: evicting one makes the ids held by clients stale, never wrong.
    for (int i = 0; i < 20; i++)
        agg.add_traffic(6000 + i, v4(0x0a000001), "h" + std::to_string(i) + ".example", out(2048));
    CHECK(agg.size(EntityKind::api_host) == 8);
    CHECK(agg.evictions(EntityKind::api_host) == 12);
    for (auto &s : agg.top_snis(EntityKind::client, agg.client_key(v4(0x0a000001))))
        CHECK(agg.find(EntityKind::api_host, agg.api_host_key(s.sni)));
}

TEST_CASE("reconfigure keeps counters of windows that stay", "[aggregate]")
{
    Aggregator agg;
    auto c = A("10.0.0.1");
    auto key = agg.client_key(c);
    agg.add_traffic(1000, c, "api.example.com", out(100, 1));
    agg.add_traffic(1000, A("10.0.0.2"), "", out(1));
    AggConfig cfg;
    cfg.windows_ms = {kDay, 5 * kMin, kMin};  // 24h and 1m stay (moved), 5m is new
    std::string why;
    REQUIRE(agg.reconfigure(cfg, why));
    REQUIRE(agg.windows() == 3);
    CHECK(agg.window_ms(0) == kDay);
    CHECK(agg.value(EntityKind::client, key, 0, 1000).bytes_out == 100);
    CHECK(agg.value(EntityKind::client, key, 1, 1000).bytes_out == 0);  // new: counts from now on
    CHECK(agg.value(EntityKind::client, key, 2, 1000).bytes_out == 100);
    CHECK(agg.value(EntityKind::api_host, agg.api_host_key("api.example.com"), 0, 1000).bytes_out ==
          100);
    // Distinct clients are rebuilt for every window, new ones included.
    CHECK(agg.value(EntityKind::host, host_key(), 1, 1000).distinct_clients == 2);
    CHECK(agg.value(EntityKind::host, host_key(), 0, 1000).distinct_clients == 2);
    agg.add_traffic(2000, c, "", out(1));
    CHECK(agg.value(EntityKind::client, key, 1, 2000).bytes_out == 1);
    CHECK(agg.value(EntityKind::client, key, 0, 2000).bytes_out == 101);
    CHECK(agg.value(EntityKind::host, host_key(), 1, 2000).distinct_clients == 2);
}

TEST_CASE("reconfigure to shorter prefixes merges entities and longer ones start new",
          "[aggregate]")
{
    Aggregator agg;
    for (int i = 1; i <= 4; i++) {
        agg.add_traffic(1000, v4(0x0a000000 + uint32_t(i)), "api.example.com", out(10));
        agg.add_traffic(1000, v6(0x20010db800000000ull + uint64_t(i), 1), "", out(1));
    }
    agg.flow_opened(1000, v4(0x0a000001), "");
    agg.flow_opened(1000, v4(0x0a000002), "");
    CHECK(agg.size(EntityKind::client) == 8);
    AggConfig cfg;
    cfg.client_prefix_v4 = 24;
    cfg.client_prefix_v6 = 48;
    cfg.subnet_prefix_v4 = 16;
    cfg.subnet_prefix_v6 = 32;
    std::string why;
    REQUIRE(agg.reconfigure(cfg, why));
    CHECK(agg.size(EntityKind::client) == 2);
    auto k4 = agg.client_key(v4(0x0a000077));
    CHECK(format_key(EntityKind::client, k4) == "10.0.0.0/24");
    auto v = agg.value(EntityKind::client, k4, 0, 1000);
    CHECK(v.bytes_out == 40);
    CHECK(v.peak_concurrent == 2);
    CHECK(agg.find(EntityKind::client, k4)->concurrent() == 2);
    CHECK(agg.value(EntityKind::client, agg.client_key(v6(0x20010db800000009ull, 5)), 0, 1000)
              .bytes_out == 4);
    CHECK(agg.size(EntityKind::client_api_host) == 1);
    CHECK(agg.value(EntityKind::client_api_host,
                    agg.client_api_key(v4(0x0a000001), "api.example.com"), 0, 1000)
              .bytes_out == 40);
    CHECK(agg.size(EntityKind::subnet) == 2);
    CHECK(format_key(EntityKind::subnet, agg.subnet_key(v4(0x0a000001))) == "10.0.0.0/16");
    auto s = agg.value(EntityKind::subnet, agg.subnet_key(v4(0x0a000001)), 0, 1000);
    CHECK(s.bytes_out == 40);
    CHECK(s.distinct_clients == 1);  // the 4 clients are one /24 client now
    // Back to longer prefixes: old entities keep their keys; new traffic
    // creates /32 clients and /24 subnets next to them.
    AggConfig dflt;
    REQUIRE(agg.reconfigure(dflt, why));
    agg.add_traffic(2000, v4(0x0a000001), "", out(5));
    CHECK(agg.size(EntityKind::client) == 3);
    CHECK(agg.value(EntityKind::client, agg.client_key(v4(0x0a000001)), 0, 2000).bytes_out == 5);
    CHECK(agg.value(EntityKind::client, k4, 0, 2000).bytes_out == 40);
    CHECK(agg.value(EntityKind::subnet, agg.subnet_key(v4(0x0a000001)), 0, 2000).distinct_clients ==
          1);
    // Everything still expires.
    agg.expire(2000 + kDay + 1);
    CHECK(agg.size(EntityKind::client) == 0);
    CHECK(agg.size(EntityKind::subnet) == 0);
}

TEST_CASE("reconfigure changes cohorts and limits and rejects bad configurations", "[aggregate]")
{
    AggConfig cfg;
    cfg.cohorts = parse_cohorts("10.0.0.0/8 corp\n", "n").rules;
    Aggregator agg(cfg);
    for (uint32_t i = 0; i < 10; i++)
        agg.add_traffic(1000 + i, v4(0x0a000000 + i), "", out(1));
    CHECK(agg.value(EntityKind::cohort, agg.cohort_key("corp"), 0, 1010).distinct_clients == 10);
    // corp shrinks to 10.0.0.0/29 (8 clients), 10.0.0.8/29 becomes lab.
    AggConfig next = cfg;
    next.cohorts = parse_cohorts("10.0.0.0/29 corp\n10.0.0.8/29 lab\n", "n").rules;
    next.max_clients = 6;
    std::string why;
    REQUIRE(agg.reconfigure(next, why));
    CHECK(agg.size(EntityKind::client) == 6);
    CHECK(agg.evictions(EntityKind::client) == 4);
    auto corp = agg.value(EntityKind::cohort, agg.cohort_key("corp"), 0, 1010);
    CHECK(corp.bytes_out == 10);  // counters kept
    auto lab_clients = agg.find(EntityKind::client, agg.client_key(v4(0x0a000008))) ? 1u : 0u;
    lab_clients += agg.find(EntityKind::client, agg.client_key(v4(0x0a000009))) ? 1u : 0u;
    CHECK(corp.distinct_clients == 6 - lab_clients);
    CHECK_FALSE(agg.find(EntityKind::cohort, agg.cohort_key("lab")));  // from the next update on
    agg.add_traffic(1020, v4(0x0a000009), "", out(1));
    CHECK(agg.value(EntityKind::cohort, agg.cohort_key("lab"), 0, 1020).distinct_clients == 1);
    // Invalid: nothing changes.
    AggConfig bad = next;
    bad.subnet_prefix_v4 = 31;
    bad.client_prefix_v4 = 30;
    CHECK_FALSE(agg.reconfigure(bad, why));
    CHECK(why == "IPv4 subnet prefix /31 is longer than the client prefix /30");
    CHECK(agg.config().client_prefix_v4 == 32);
    CHECK(agg.size(EntityKind::client) == 6);
}

TEST_CASE("Memory stays within 288 bytes per client at 100k clients", "[aggregate]")
{
    Aggregator agg;
    const uint32_t n = 100'000;
    for (uint32_t i = 0; i < n; i++) {
        Traffic t = out(1000 + i, 1);
        if (i % 2)
            agg.add_traffic(1000 + i / 100, v4(0x0a000000 + i), "", t);
        else  // IPv6 clients, each its own /64 inside a few /48s
            agg.add_traffic(1000 + i / 100,
                            v6(0x20010db800000000ull + (uint64_t(i % 8) << 16) + i, i), "", t);
    }
    REQUIRE(agg.size(EntityKind::client) == n);
    double client_table = double(agg.memory_bytes(EntityKind::client)) / n;
    double total = double(agg.memory_bytes()) / n;
    INFO("client table " << client_table << " B/client, total " << total << " B/client");
    // 256 before window cells counted requests (8 bytes per window).
    CHECK(client_table <= 288);
    CHECK(total <= 288);
    // With an API host per client the client table stays the same size; the
    // client x API host entities come on top, capped by max_client_api_hosts.
    size_t before = agg.memory_bytes(EntityKind::client);
    for (uint32_t i = 0; i < 1000; i++)
        agg.add_traffic(3000, v4(0x0a000000 + 2 * i + 1), "api.example.com", out(1));
    CHECK(agg.memory_bytes(EntityKind::client) == before);
    CHECK(agg.size(EntityKind::client_api_host) == 1000);
    // Expiring everyone releases the slab.
    agg.expire(3000 + kDay + 1);
    CHECK(agg.size(EntityKind::client) == 0);
    CHECK(agg.memory_bytes(EntityKind::client) < 4096);
}

TEST_CASE("Incremental distinct counts equal a full recount under churn", "[aggregate]")
{
    // reconfigure() with the same configuration recounts every group from
    // its members' last-seen times: the incremental counts must agree.
    std::mt19937_64 rng(99);
    AggConfig cfg;
    cfg.windows_ms = {2'000, 20'000, 200'000};
    cfg.max_clients = 300;
    cfg.max_subnets = 6;
    cfg.max_api_hosts = 5;
    cfg.max_client_api_hosts = 200;
    cfg.cohorts = parse_cohorts("10.0.0.0/22 a\n10.0.4.0/22 b\n2001:db8::/33 c\n", "n").rules;
    Aggregator agg(cfg);
    auto snapshot = [&](uint64_t q) {
        std::vector<uint32_t> v;
        for (auto k :
             {EntityKind::subnet, EntityKind::cohort, EntityKind::host, EntityKind::api_host})
            agg.for_each(k, [&](const EntityRef &r) {
                for (size_t w = 0; w < 3; w++) {
                    v.push_back(r.value(w, q, Estimate::lower).distinct_clients);
                    v.push_back(r.value(w, q, Estimate::upper).distinct_clients);
                }
            });
        return v;
    };
    uint64_t t = 0;
    for (int round = 0; round < 40; round++) {
        for (int i = 0; i < 500; i++) {
            t += 1 + rng() % 120;
            uint32_t c = uint32_t(rng() % 600);
            Addr16 a = (c % 3) ? v4(0x0a000000 + c * 7)
                               : v6(0x20010db800000000ull + (uint64_t(c) << 20), c);
            std::string sni = (rng() % 4) ? "s" + std::to_string(rng() % 9) + ".example" : "";
            switch (rng() % 5) {
            case 0: agg.flow_opened(t, a, sni); break;
            case 1: agg.flow_closed(t, a, sni); break;
            default: agg.add_traffic(t, a, sni, out(rng() % 5000, 1)); break;
            }
            if (rng() % 200 == 0)
                agg.expire(t);
        }
        auto before = snapshot(t);
        std::string why;
        REQUIRE(agg.reconfigure(cfg, why));
        auto after = snapshot(t);
        INFO("round " << round);
        REQUIRE(before == after);
    }
    CHECK(agg.evictions(EntityKind::client) > 0);
    CHECK(agg.evictions(EntityKind::subnet) > 0);
    CHECK(agg.evictions(EntityKind::api_host) > 0);
    CHECK(agg.evictions(EntityKind::client_api_host) > 0);
}

TEST_CASE("Random reconfiguration conserves totals in a window that stays", "[aggregate]")
{
    // All traffic falls in one 1h bucket and the 1h window is in every
    // configuration, with limits high enough that nothing is evicted: merges,
    // re-keys, reshapes and cohort changes must keep every byte somewhere.
    std::mt19937_64 rng(5);
    std::vector<AggConfig> cfgs(4);
    cfgs[0].windows_ms = {kHour};
    cfgs[1].windows_ms = {kMin, kHour, kDay};
    cfgs[1].client_prefix_v4 = 28;
    cfgs[1].client_prefix_v6 = 56;
    cfgs[1].subnet_prefix_v4 = 20;
    cfgs[2].windows_ms = {kDay, 10 * kMin, kHour};
    cfgs[2].cohorts = parse_cohorts("10.0.0.0/12 a\n2001:db8::/32 b\n10.0.0.0/20 c\n", "n").rules;
    cfgs[3].client_prefix_v6 = 48;
    cfgs[3].subnet_prefix_v6 = 40;
    cfgs[3].subnet_prefix_v4 = 16;
    cfgs[3].cohorts = parse_cohorts("10.0.0.0/8 a\n", "n").rules;
    Aggregator agg(cfgs[0]);
    uint64_t total = 0, with_sni = 0, t = 0;
    auto hour_index = [&] {
        for (size_t w = 0; w < agg.windows(); w++)
            if (agg.window_ms(w) == kHour)
                return w;
        FAIL("no 1h window");
        return size_t(0);
    };
    auto sum = [&](EntityKind k) {
        uint64_t s = 0;
        size_t w = hour_index();
        agg.for_each(k, [&](const EntityRef &r) { s += r.value(w, t, Estimate::upper).bytes_out; });
        return s;
    };
    for (int round = 0; round < 30; round++) {
        for (int i = 0; i < 300; i++) {
            t += rng() % 100;
            uint32_t c = uint32_t(rng() % 5000);
            Addr16 a = (c & 1) ? v4(0x0a000000 + c * 13)
                               : v6(0x20010db800000000ull + (uint64_t(c) << 4), c);
            std::string sni = (rng() % 3) ? "s" + std::to_string(rng() % 20) + ".example" : "";
            uint64_t b = rng() % 10000;
            agg.add_traffic(t, a, sni, out(b));
            if (rng() % 4 == 0)
                agg.flow_opened(t, a, sni);
            total += b;
            with_sni += sni.empty() ? 0 : b;
        }
        std::string why;
        REQUIRE(agg.reconfigure(cfgs[rng() % cfgs.size()], why));
        INFO("round " << round);
        REQUIRE(sum(EntityKind::host) == total);
        REQUIRE(sum(EntityKind::client) == total);
        REQUIRE(sum(EntityKind::subnet) == total);
        REQUIRE(sum(EntityKind::api_host) == with_sni);
        REQUIRE(sum(EntityKind::client_api_host) == with_sni);
        REQUIRE(agg.memory_bytes() > 0);
    }
    REQUIRE(t < kHour);
}

namespace {
// The clients for_each_active_since() visits, each with the number of visits.
std::map<std::string, int> visited_since(const Aggregator &agg, uint64_t since)
{
    std::map<std::string, int> seen;
    agg.for_each_active_since(EntityKind::client, since,
                              [&](const EntityRef &r) { seen[format_key(r.kind(), r.key())]++; });
    return seen;
}

// The clients last updated at or after since, from a pass over all of them.
std::map<std::string, int> updated_since(const Aggregator &agg, uint64_t since)
{
    std::map<std::string, int> seen;
    agg.for_each(EntityKind::client, [&](const EntityRef &r) {
        if (r.last_seen_ms() >= since)
            seen[format_key(r.kind(), r.key())]++;
    });
    return seen;
}
}  // namespace

TEST_CASE("for_each_active_since visits each updated entity once across eviction, slot reuse "
          "and compaction",
          "[aggregate]")
{
    AggConfig cfg;
    cfg.max_clients = 8;
    Aggregator agg(cfg);
    auto ip = [](uint32_t i) { return v4(0xc0000200 + i); };  // 192.0.2.i
    for (uint32_t i = 1; i <= 8; i++)
        agg.add_traffic(1000, ip(i), "", out(1));
    CHECK(visited_since(agg, 1000).size() == 8);  // the first read passes over the table
    CHECK(visited_since(agg, 1001).empty());
    // Updated at several milliseconds since: visited once.
    agg.add_traffic(2000, ip(1), "", out(1));
    agg.add_traffic(2001, ip(1), "", out(1));
    agg.add_traffic(2002, ip(2), "", out(1));
    CHECK(visited_since(agg, 1001) ==
          std::map<std::string, int>{{"192.0.2.1", 1}, {"192.0.2.2", 1}});
    // New clients evict idle ones and take their slots: the evicted are
    // gone, the new ones visited once.
    agg.add_traffic(3000, ip(9), "", out(1));
    agg.add_traffic(3000, ip(1), "", out(1));
    agg.add_traffic(3001, ip(10), "", out(1));
    REQUIRE(agg.evictions(EntityKind::client) == 2);
    auto seen = visited_since(agg, 2001);
    CHECK(seen == updated_since(agg, 2001));
    CHECK(seen == std::map<std::string, int>{
                      {"192.0.2.1", 1}, {"192.0.2.10", 1}, {"192.0.2.2", 1}, {"192.0.2.9", 1}});
    // A slot freed and taken again within one millisecond, both times
    // updated then: its entity is visited once, the evicted one not at all.
    for (uint32_t i : {1, 2, 9, 10})
        agg.add_traffic(4000, ip(i), "", out(1));
    for (uint32_t i = 11; i <= 14; i++)
        agg.add_traffic(4000, ip(i), "", out(1));
    for (uint32_t i = 15; i <= 17; i++)  // each evicts one of those updated at 4000
        agg.add_traffic(4000, ip(i), "", out(1));
    REQUIRE(agg.evictions(EntityKind::client) == 9);
    seen = visited_since(agg, 4000);
    CHECK(seen.size() == 8);
    CHECK(seen == updated_since(agg, 4000));
    // A read for an earlier time than the read before passes over the table.
    CHECK(visited_since(agg, 2000) == updated_since(agg, 2000));

    // Compaction moves entities to other slots.
    Aggregator big;
    for (uint32_t i = 0; i < 4000; i++)
        big.add_traffic(1000, v4(0x0a000000 + i), "", out(1));
    CHECK(visited_since(big, 1000).size() == 4000);
    for (uint32_t i = 3000; i < 3100; i++)  // near the end of the slab
        big.add_traffic(1000 + kDay, v4(0x0a000000 + i), "", out(1));
    CHECK(big.expire(1001 + kDay) > 0);  // the rest expire: the table compacts
    REQUIRE(big.size(EntityKind::client) == 100);
    big.add_traffic(2000 + kDay, v4(0x0a000000 + 3050), "", out(1));
    seen = visited_since(big, 1000 + kDay);  // noted before they moved
    CHECK(seen.size() == 100);
    CHECK(seen == updated_since(big, 1000 + kDay));
    seen = visited_since(big, 1001 + kDay);
    CHECK(seen == std::map<std::string, int>{{"10.0.11.234", 1}});
    CHECK(seen == updated_since(big, 1001 + kDay));
}

// What the detector relies on to follow the traffic, not the tables: a read
// of the few entities updated since costs them, not a pass over the kind.
TEST_CASE("for_each_active_since costs the entities updated, not the table", "[aggregate]")
{
    Aggregator agg;
    const uint32_t n = 100'000;
    for (uint32_t i = 0; i < n; i++)
        agg.add_traffic(1000, v4(0x0a000000 + i), "", out(1));
    agg.for_each_active_since(EntityKind::client, 1000, [](const EntityRef &) {});
    for (uint32_t i = 0; i < n; i += n / 10)
        agg.add_traffic(2000, v4(0x0a000000 + i), "", out(1));
    using Clock = std::chrono::steady_clock;
    auto fastest = [](int reps, auto &&f) {
        auto best = Clock::duration::max();
        for (int r = 0; r < reps; r++) {
            auto t0 = Clock::now();
            f();
            best = std::min(best, Clock::now() - t0);
        }
        return double(std::chrono::duration_cast<std::chrono::nanoseconds>(best).count());
    };
    size_t updated = 0, all = 0;
    double updated_ns = fastest(20, [&] {
        updated = 0;
        agg.for_each_active_since(EntityKind::client, 1001, [&](const EntityRef &) { updated++; });
    });
    double table_ns = fastest(5, [&] {
        all = 0;
        agg.for_each(EntityKind::client, [&](const EntityRef &r) { all += r.last_seen_ms() > 0; });
    });
    INFO("10 updated of " << n << ": " << updated_ns << " ns; a pass over the table: " << table_ns
                          << " ns");
    CHECK(updated == 10);
    CHECK(all == n);
    CHECK(updated_ns * 20 < table_ns);
}
