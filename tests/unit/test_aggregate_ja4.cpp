// SPDX-License-Identifier: Apache-2.0
// Fingerprint cohorts (ja4, ja4_sni) and distinct subnets, through the real
// aggregator: what they count, their top clients, their limit and evictions,
// the state file.
#include <catch2/catch.hpp>

#include "aggregate/aggregator.h"
#include "common/state_codec.h"
#include "support/addr.h"

using namespace exf;
using namespace exf::agg;

namespace {
constexpr auto A = exf::test::addr_of;
constexpr const char *kCurl = "t13d4907h2_0d8feac7bc37_7395dae3b2f3";
constexpr const char *kPython = "t13d1812h1_85036bcba153_b26ce05bbdd6";
constexpr uint64_t kMin = 60'000;

Traffic flow(uint64_t bytes_out)
{
    Traffic t;
    t.bytes_out = bytes_out;
    t.bytes_in = 100;
    t.flows_opened = 1;
    return t;
}

// The value of an entity over the 10 min window (the default's second).
WindowValue ten_min(const Aggregator &a, EntityKind k, const EntityKey &key, uint64_t now)
{
    return a.value(k, key, 1, now, Estimate::upper);
}
}  // namespace

TEST_CASE("ja4 and ja4_sni count every client presenting the fingerprint", "[aggregate][ja4]")
{
    Aggregator a;
    // Six clients of one stack over three IPv4 /24s and two IPv6 /48s.
    const char *group[] = {"192.0.2.1",   "192.0.2.2",     "198.51.100.7",
                           "203.0.113.9", "2001:db8:1::5", "2001:db8:2::5"};
    for (const char *c : group)
        a.add_traffic(1000, A(c), "api.example.com", flow(5000), kPython);
    a.add_traffic(1000, A("192.0.2.1"), "api.example.com", flow(70), kPython);  // again
    a.add_traffic(1000, A("192.0.2.50"), "api.example.com", flow(9000), kCurl);
    a.add_traffic(1000, A("192.0.2.51"), "other.example.com", flow(1), kPython);

    auto py = ten_min(a, EntityKind::ja4, a.ja4_key(kPython), 2000);
    CHECK(py.tls_flows == 8);
    CHECK(py.bytes_out == 6 * 5000 + 70 + 1);
    CHECK(py.distinct_clients == 7);
    CHECK(py.distinct_subnets == 5);  // 192.0.2.0/24 once

    auto py_api = ten_min(a, EntityKind::ja4_sni, a.ja4_key(kPython, "API.example.com"), 2000);
    CHECK(py_api.tls_flows == 7);
    CHECK(py_api.distinct_clients == 6);
    CHECK(py_api.distinct_subnets == 5);

    auto curl = ten_min(a, EntityKind::ja4, a.ja4_key(kCurl), 2000);
    CHECK(curl.distinct_clients == 1);
    CHECK(curl.distinct_subnets == 1);
    CHECK(a.size(EntityKind::ja4) == 2);
    CHECK(a.size(EntityKind::ja4_sni) == 3);

    // Without a JA4 nothing is a fingerprint's.
    a.add_traffic(1000, A("203.0.113.77"), "api.example.com", flow(1));
    CHECK(a.size(EntityKind::ja4) == 2);

    // Its heaviest clients by TLS flows opened (space saving keeps a client
    // with more than a quarter of the flows), its key and its API hosts.
    for (int i = 0; i < 5; i++)
        a.add_traffic(1000, A("192.0.2.1"), "api.example.com", flow(1), kPython);
    auto ref = a.find(EntityKind::ja4, a.ja4_key(kPython));
    REQUIRE(ref);
    auto top = ref->top_clients();
    REQUIRE(top.size() == 4);
    CHECK(format_key(EntityKind::client, top[0].client) == "192.0.2.1");
    CHECK(top[0].tls_flows >= 7);
    CHECK(format_key(EntityKind::ja4, ref->key()) == kPython);
    auto snis = ref->top_snis();
    REQUIRE(snis.size() == 2);
    CHECK(snis[0].sni == "api.example.com");
    CHECK(format_key(EntityKind::ja4_sni, a.ja4_key(kPython, "api.example.com")) ==
          std::string(kPython) + " -> api.example.com");
}

TEST_CASE("distinct_subnets of sni, cohort and host, and none for subnets and clients",
          "[aggregate][ja4]")
{
    AggConfig cfg;
    std::string why;
    cfg.cohorts = {{A("192.0.2.0"), 23, "lab", 0}, {A("2001:db8::"), 32, "lab", 0}};
    Aggregator a(cfg);
    for (const char *c :
         {"192.0.2.1", "192.0.3.1", "192.0.3.2", "2001:db8:1::1", "2001:db8:1::2", "2001:db8:2::1"})
        a.add_traffic(1000, A(c), "api.example.com", flow(10));
    CHECK(ten_min(a, EntityKind::api_host, a.api_host_key("api.example.com"), 2000)
              .distinct_subnets == 4);
    CHECK(ten_min(a, EntityKind::cohort, a.cohort_key("lab"), 2000).distinct_subnets == 4);
    CHECK(ten_min(a, EntityKind::host, host_key(), 2000).distinct_subnets == 4);
    // 2001:db8:1::1 and ::2 are one client entity (/64).
    CHECK(ten_min(a, EntityKind::host, host_key(), 2000).distinct_clients == 5);
    CHECK(ten_min(a, EntityKind::subnet, a.subnet_key(A("192.0.3.1")), 2000).distinct_subnets == 0);
    CHECK(ten_min(a, EntityKind::client, a.client_key(A("192.0.3.1")), 2000).distinct_subnets == 0);

    // The window slides: a subnet seen 2 windows ago is no longer counted.
    a.add_traffic(30 * kMin, A("192.0.2.9"), "api.example.com", flow(10));
    CHECK(ten_min(a, EntityKind::host, host_key(), 30 * kMin).distinct_subnets == 1);
    // Ranked by it.
    auto rows = a.top(EntityKind::api_host, 2, SortBy::distinct_subnets, 5, 30 * kMin);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].value.distinct_subnets == 4);  // the 1 h window still holds all four
}

TEST_CASE("fingerprint kinds and memberships are bounded and their evictions counted",
          "[aggregate][ja4]")
{
    AggConfig cfg;
    cfg.max_ja4 = 3;
    cfg.max_ja4_snis = 4;
    cfg.max_memberships = 50;
    Aggregator a(cfg);
    for (int i = 0; i < 40; i++) {
        std::string ja4 = "t13d1516h2_8daaf6152771_" + std::to_string(100000000000 + i);
        a.add_traffic(1000 + uint64_t(i), A("192.0.2." + std::to_string(i + 1)), "api.example.com",
                      flow(10), ja4);
    }
    CHECK(a.size(EntityKind::ja4) == 3);
    CHECK(a.size(EntityKind::ja4_sni) == 4);
    CHECK(a.evictions(EntityKind::ja4) == 37);
    CHECK(a.evictions(EntityKind::ja4_sni) == 36);
    CHECK(a.memberships() <= 50);
    CHECK(a.membership_evictions() > 0);
    // One client of many subnets, all under one fingerprint: evicting its
    // memberships takes them out of the count, never below 0.
    for (int i = 0; i < 100; i++)
        a.add_traffic(2000, A("2001:db8:" + std::to_string(i + 1) + "::1"), "api.example.com",
                      flow(1), kPython);
    auto v = ten_min(a, EntityKind::ja4, a.ja4_key(kPython), 2000);
    CHECK(v.distinct_clients <= 50);
    CHECK(v.distinct_subnets <= 50);
    CHECK(v.distinct_clients + v.distinct_subnets <= 50);
    CHECK(v.tls_flows == 100);
}

TEST_CASE("fingerprint entities and their distinct counts survive the state file",
          "[aggregate][ja4]")
{
    Aggregator a;
    for (const char *c : {"192.0.2.1", "198.51.100.1", "2001:db8:1::1"})
        a.add_traffic(1000, A(c), "api.example.com", flow(10), kPython);
    StateWriter w;
    a.save_state(w);
    Aggregator b;
    StateReader r(w.bytes());
    b.restore_state(r);
    auto v = ten_min(b, EntityKind::ja4_sni, b.ja4_key(kPython, "api.example.com"), 2000);
    CHECK(v.distinct_clients == 3);
    CHECK(v.distinct_subnets == 3);
    // The same clients again: counted once (their memberships came back).
    for (const char *c : {"192.0.2.1", "198.51.100.1", "2001:db8:1::1"})
        b.add_traffic(1500, A(c), "api.example.com", flow(10), kPython);
    v = ten_min(b, EntityKind::ja4, b.ja4_key(kPython), 2000);
    CHECK(v.distinct_clients == 3);
    CHECK(v.distinct_subnets == 3);
    CHECK(v.tls_flows == 6);
}
