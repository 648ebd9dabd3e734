// The harvester turns cumulative per-client counters into deltas.
#include <catch2/catch.hpp>

#include <cstring>

#include "common/addr.h"
#include "pipeline/live.h"

using namespace exf;

namespace {
ClientRow row(const char *addr, uint64_t opened, uint64_t bytes_out, uint64_t bytes_in = 0)
{
    ClientRow r{};
    auto a = *parse_addr(addr);
    std::memcpy(r.key.addr, a.data(), 16);
    r.stats.tls_flows_opened = opened;
    r.stats.bytes_out = bytes_out;
    r.stats.bytes_in = bytes_in;
    r.stats.pkts_out = bytes_out / 1000;
    return r;
}
}  // namespace

TEST_CASE("Harvester reports deltas of cumulative counters", "[pipeline]")
{
    Harvester h;
    auto d = h.harvest({row("192.0.2.1", 1, 5000), row("2001:db8::1", 2, 100)});
    REQUIRE(d.size() == 2);  // the first harvest reports the totals as they are
    d = h.harvest({row("192.0.2.1", 1, 5000), row("2001:db8::1", 3, 900)});
    REQUIRE(d.size() == 1);  // unchanged clients report nothing
    CHECK(format_addr(d[0].client) == "2001:db8::1");
    CHECK(d[0].delta.tls_flows_opened == 1);
    CHECK(d[0].delta.bytes_out == 800);
    CHECK(d[0].total.bytes_out == 900);
    // An entry evicted by the kernel's LRU and created again starts from
    // zero: its whole value is new, never a negative delta.
    d = h.harvest({row("192.0.2.1", 1, 300)});
    REQUIRE(d.size() == 1);
    CHECK(d[0].delta.bytes_out == 300);
    CHECK(h.tracked() == 1);
    // A client that disappeared and comes back counts from its new total.
    d = h.harvest({row("192.0.2.1", 1, 300), row("2001:db8::1", 1, 50)});
    REQUIRE(d.size() == 1);
    CHECK(d[0].delta.bytes_out == 50);
}
