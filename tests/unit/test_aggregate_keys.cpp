// SPDX-License-Identifier: Apache-2.0
// Aggregation entity keys: prefix grouping per family, IPv4-mapped handling,
// SNI normalization, formatting.
#include <catch2/catch.hpp>

#include "aggregate/aggregator.h"
#include "aggregate/entity_key.h"
#include "support/addr.h"

using namespace exf;
using namespace exf::agg;

namespace {
constexpr auto A = exf::test::addr_of;
}  // namespace

TEST_CASE("mask_addr keeps the prefix bits of each family", "[aggregate]")
{
    CHECK(format_addr(mask_addr(A("10.1.2.3"), 24)) == "10.1.2.0");
    CHECK(format_addr(mask_addr(A("10.1.2.3"), 32)) == "10.1.2.3");
    CHECK(format_addr(mask_addr(A("10.1.2.3"), 20)) == "10.1.0.0");
    CHECK(format_addr(mask_addr(A("10.1.255.3"), 20)) == "10.1.240.0");
    // /0 of IPv4 stays IPv4 (the ::ffff: part is not host bits).
    CHECK(format_addr(mask_addr(A("10.1.2.3"), 0)) == "0.0.0.0");
    CHECK(is_v4(mask_addr(A("10.1.2.3"), 0)));
    // Longer than the family: clamped.
    CHECK(format_addr(mask_addr(A("10.1.2.3"), 64)) == "10.1.2.3");
    CHECK(format_addr(mask_addr(A("2001:db8:1:2:3:4:5:6"), 64)) == "2001:db8:1:2::");
    CHECK(format_addr(mask_addr(A("2001:db8:1:2:3:4:5:6"), 48)) == "2001:db8:1::");
    CHECK(format_addr(mask_addr(A("2001:db8:1:2:3:4:5:6"), 56)) == "2001:db8:1::");
    CHECK(format_addr(mask_addr(A("2001:db8:1:2ff:3:4:5:6"), 56)) == "2001:db8:1:200::");
    CHECK(format_addr(mask_addr(A("2001:db8:1:2:3:4:5:6"), 128)) == "2001:db8:1:2:3:4:5:6");
    CHECK(format_addr(mask_addr(A("2001:db8:1:2:3:4:5:6"), 0)) == "::");
}

TEST_CASE("IPv6 clients group by /64 and IPv4 clients by /32 by default", "[aggregate]")
{
    Aggregator agg;
    Traffic t;
    t.bytes_out = 100;
    agg.add_traffic(1000, A("2001:db8:1:2::1"), "", t);
    agg.add_traffic(1000, A("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "", t);  // same /64
    agg.add_traffic(1000, A("2001:db8:1:3::1"), "", t);                   // next /64
    agg.add_traffic(1000, A("10.0.0.1"), "", t);
    agg.add_traffic(1000, A("10.0.0.2"), "", t);
    CHECK(agg.size(EntityKind::client) == 4);
    auto k = agg.client_key(A("2001:db8:1:2:ffff::9"));
    CHECK(format_key(EntityKind::client, k) == "2001:db8:1:2::/64");
    CHECK(agg.value(EntityKind::client, k, 0, 1000).bytes_out == 200);
    CHECK(format_key(EntityKind::client, agg.client_key(A("10.0.0.1"))) == "10.0.0.1");
    CHECK(agg.value(EntityKind::client, agg.client_key(A("10.0.0.1")), 0, 1000).bytes_out == 100);
}

TEST_CASE("Subnets are /24 and /48 by default", "[aggregate]")
{
    Aggregator agg;
    Traffic t;
    t.bytes_out = 10;
    agg.add_traffic(5, A("10.0.0.1"), "", t);
    agg.add_traffic(5, A("10.0.0.200"), "", t);
    agg.add_traffic(5, A("10.0.1.1"), "", t);
    agg.add_traffic(5, A("2001:db8:1:2::1"), "", t);
    agg.add_traffic(5, A("2001:db8:1:ffff::1"), "", t);
    agg.add_traffic(5, A("2001:db8:2::1"), "", t);
    CHECK(agg.size(EntityKind::subnet) == 4);
    auto s4 = agg.subnet_key(A("10.0.0.77"));
    CHECK(format_key(EntityKind::subnet, s4) == "10.0.0.0/24");
    CHECK(agg.value(EntityKind::subnet, s4, 0, 5).bytes_out == 20);
    auto s6 = agg.subnet_key(A("2001:db8:1:1234::"));
    CHECK(format_key(EntityKind::subnet, s6) == "2001:db8:1::/48");
    CHECK(agg.value(EntityKind::subnet, s6, 0, 5).bytes_out == 20);
    CHECK(agg.value(EntityKind::subnet, s6, 0, 5).distinct_clients == 2);
}

TEST_CASE("Client and subnet prefixes are configurable", "[aggregate]")
{
    AggConfig cfg;
    cfg.client_prefix_v4 = 30;
    cfg.client_prefix_v6 = 56;
    cfg.subnet_prefix_v4 = 16;
    cfg.subnet_prefix_v6 = 32;
    Aggregator agg(cfg);
    Traffic t;
    t.bytes_out = 1;
    agg.add_traffic(1, A("10.9.0.1"), "", t);
    agg.add_traffic(1, A("10.9.0.3"), "", t);  // same /30
    agg.add_traffic(1, A("10.9.0.4"), "", t);  // next /30
    agg.add_traffic(1, A("2001:db8:0:12::1"), "", t);
    agg.add_traffic(1, A("2001:db8:0:ff::1"), "", t);  // same /56
    CHECK(agg.size(EntityKind::client) == 3);
    CHECK(format_key(EntityKind::client, agg.client_key(A("10.9.0.2"))) == "10.9.0.0/30");
    CHECK(agg.value(EntityKind::client, agg.client_key(A("10.9.0.2")), 0, 1).bytes_out == 2);
    CHECK(format_key(EntityKind::client, agg.client_key(A("2001:db8:0:12::1"))) == "2001:db8::/56");
    CHECK(agg.size(EntityKind::subnet) == 2);
    CHECK(format_key(EntityKind::subnet, agg.subnet_key(A("10.9.200.1"))) == "10.9.0.0/16");
    CHECK(agg.value(EntityKind::subnet, agg.subnet_key(A("10.9.200.1")), 0, 1).distinct_clients ==
          2);
    CHECK(format_key(EntityKind::subnet, agg.subnet_key(A("2001:db8:7::1"))) == "2001:db8::/32");
}

TEST_CASE("A subnet prefix longer than the client prefix is rejected", "[aggregate]")
{
    AggConfig cfg;
    cfg.client_prefix_v6 = 48;
    cfg.subnet_prefix_v6 = 56;
    CHECK(cfg.validate().size() == 1);
    CHECK_THROWS_WITH(
        Aggregator(cfg),
        Catch::Contains("IPv6 subnet prefix /56 is longer than the client prefix /48"));
    AggConfig bad;
    bad.windows_ms = {60000, 60000};
    bad.client_prefix_v4 = 33;
    bad.max_api_hosts = size_t(1) << 21;
    CHECK(bad.validate().size() == 3);
    bad.windows_ms.clear();
    CHECK_FALSE(bad.validate().empty());
}

TEST_CASE("IPv4-mapped addresses are IPv4 and other IPv6 is not", "[aggregate]")
{
    Aggregator agg;
    Traffic t;
    t.bytes_out = 7;
    // ::ffff:10.0.0.1 is the same client as 10.0.0.1 (the 16-byte form).
    agg.add_traffic(1, A("::ffff:10.0.0.1"), "", t);
    agg.add_traffic(1, A("10.0.0.1"), "", t);
    CHECK(agg.size(EntityKind::client) == 1);
    CHECK(agg.value(EntityKind::client, agg.client_key(A("10.0.0.1")), 0, 1).bytes_out == 14);
    // IPv4-compatible / NAT64 forms are plain IPv6: grouped by /64.
    agg.add_traffic(1, A("64:ff9b::a00:1"), "", t);
    agg.add_traffic(1, A("64:ff9b::a00:2"), "", t);
    CHECK(agg.size(EntityKind::client) == 2);
    CHECK(format_key(EntityKind::client, agg.client_key(A("64:ff9b::a00:1"))) == "64:ff9b::/64");
    // An IPv4 /24 subnet never meets an IPv6 key.
    CHECK(is_v4(agg.subnet_key(A("10.0.0.1")).addr));
    CHECK_FALSE(is_v4(agg.subnet_key(A("64:ff9b::a00:1")).addr));
}

TEST_CASE("SNIs are lowercased and capped at 255 bytes", "[aggregate]")
{
    CHECK(normalize_sni("API.Example.COM") == "api.example.com");
    std::string longname(300, 'A');
    CHECK(normalize_sni(longname) == std::string(255, 'a'));
    Aggregator agg;
    Traffic t;
    t.bytes_out = 3;
    agg.add_traffic(1, A("10.0.0.1"), "Api.Example.com", t);
    agg.add_traffic(1, A("10.0.0.1"), "api.example.COM", t);
    agg.add_traffic(1, A("10.0.0.1"), longname, t);
    CHECK(agg.size(EntityKind::api_host) == 2);
    CHECK(agg.value(EntityKind::api_host, agg.api_host_key("API.EXAMPLE.COM"), 0, 1).bytes_out ==
          6);
    CHECK(agg.value(EntityKind::api_host, agg.api_host_key(longname), 0, 1).bytes_out == 3);
    auto pair = agg.client_api_key(A("10.0.0.1"), "api.example.com");
    CHECK(format_key(EntityKind::client_api_host, pair) == "10.0.0.1 -> api.example.com");
    CHECK(agg.value(EntityKind::client_api_host, pair, 0, 1).bytes_out == 6);
}

TEST_CASE("Kinds have names", "[aggregate]")
{
    for (size_t i = 0; i < kEntityKinds; i++) {
        auto k = static_cast<EntityKind>(i);
        CHECK(parse_kind(kind_name(k)) == k);
    }
    CHECK_FALSE(parse_kind("planet"));
    CHECK(format_key(EntityKind::host, host_key()) == "host");
    CHECK(format_key(EntityKind::cohort, name_key("office")) == "office");
}

TEST_CASE("AggConfig::validate holds the bounds the configuration file states", "[aggregate]")
{
    // One home for each limit (aggregate/limits.h): what [aggregate] refuses,
    // the library refuses too.
    auto problems = [](auto change) {
        AggConfig c;
        change(c);
        return c.validate().size();
    };
    CHECK(problems([](AggConfig &) {}) == 0);
    CHECK(problems([](AggConfig &c) { c.windows_ms = {500}; }) == 1);
    CHECK(problems([](AggConfig &c) { c.windows_ms = {kWindowMs.lo, kWindowMs.hi}; }) == 0);
    CHECK(problems([](AggConfig &c) { c.subnet_prefix_v4 = 4; }) == 1);
    CHECK(problems([](AggConfig &c) { c.subnet_prefix_v6 = 8; }) == 1);
    CHECK(problems([](AggConfig &c) { c.max_clients = kMaxClients.hi + 1; }) == 1);
    CHECK(problems([](AggConfig &c) { c.max_client_api_hosts = kMaxClientApiHosts.hi + 1; }) == 1);
    CHECK(problems([](AggConfig &c) { c.max_clients = kMaxClients.hi; }) == 0);
}
