// SPDX-License-Identifier: Apache-2.0
// The harvester turns cumulative per-client counters into deltas.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "common/addr.h"
#include "harvest/deltas.h"
#include "sources/event_queue.h"

using namespace exf;

namespace {
ClientRow row(const char *addr, uint64_t opened, uint64_t bytes_out, uint64_t bytes_in = 0,
              uint64_t first_ns = 1)
{
    ClientRow r{};
    r.stats.first_ns = first_ns;
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
    // An entry evicted by the kernel's LRU and created again (a new
    // creation time) starts from zero: its whole value is new.
    d = h.harvest({row("192.0.2.1", 1, 300, 0, 7)});
    REQUIRE(d.size() == 1);
    CHECK(d[0].delta.bytes_out == 300);
    CHECK(h.tracked() == 1);
    // A client that disappeared and comes back counts from its new total.
    d = h.harvest({row("192.0.2.1", 1, 300, 0, 7), row("2001:db8::1", 1, 50, 0, 9)});
    REQUIRE(d.size() == 1);
    CHECK(d[0].delta.bytes_out == 50);
}

TEST_CASE(
    "Harvester: a reading below the previous one of the same entry is a late count, not a reset",
    "[pipeline]")
{
    // Counts on their way from the flow cache to the tables can be missed
    // by one reading (maps.h read_tables). The same entry (same creation
    // time) reading lower reports nothing, and later readings report only
    // what passes the highest reading: nothing twice, nothing lost.
    Harvester h;
    auto d = h.harvest({row("192.0.2.1", 2, 5000, 700)});
    REQUIRE(d.size() == 1);
    d = h.harvest({row("192.0.2.1", 2, 4000, 700)});
    CHECK(d.empty());
    d = h.harvest({row("192.0.2.1", 2, 6600, 800)});
    REQUIRE(d.size() == 1);
    CHECK(d[0].delta.bytes_out == 1600);
    CHECK(d[0].delta.pkts_out == 1);
    CHECK(d[0].delta.bytes_in == 100);
    CHECK(d[0].delta.tls_flows_opened == 0);
    // A row only the flow cache knows (no table entry yet: creation time
    // 0) then its table entry: not a reset either.
    d = h.harvest({row("192.0.2.1", 2, 6600, 800), row("192.0.2.2", 0, 3000, 0, 0)});
    REQUIRE(d.size() == 1);
    CHECK(d[0].delta.bytes_out == 3000);
    d = h.harvest({row("192.0.2.1", 2, 6600, 800), row("192.0.2.2", 0, 4500, 0, 42)});
    REQUIRE(d.size() == 1);
    CHECK(d[0].delta.bytes_out == 1500);
}

namespace {
FlowRow flow_row(uint16_t client_port, uint64_t first_ns, uint64_t last_ns, uint64_t bytes_out,
                 bool fin = false)
{
    FlowRow r{};
    auto c = *parse_addr("192.0.2.7"), s = *parse_addr("192.0.2.1");
    std::memcpy(r.key.lo_addr, s.data(), 16);
    std::memcpy(r.key.hi_addr, c.data(), 16);
    r.key.lo_port = 443;
    r.key.hi_port = client_port;
    r.key.proto = 6;
    r.flow.kind = EXF_KIND_TLS;
    r.flow.client = EXF_CLIENT_HI;
    r.flow.first_ns = first_ns;
    r.flow.last_ns = last_ns;
    r.flow.pkts[EXF_CDIR_LO_TO_HI] = bytes_out / 1000;
    r.flow.bytes[EXF_CDIR_LO_TO_HI] = bytes_out;
    r.flow.pkts[EXF_CDIR_HI_TO_LO] = 1;
    r.flow.bytes[EXF_CDIR_HI_TO_LO] = 100;
    if (fin)
        r.flow.flags |= EXF_FF_CLOSED;
    return r;
}
const FlowDelta *find(const std::vector<FlowDelta> &d, uint16_t port)
{
    for (auto &x : d)
        if (x.key.hi_port == port)
            return &x;
    return nullptr;
}
}  // namespace

TEST_CASE("Flow harvester: opens and ends including idle and vanished flows", "[pipeline]")
{
    constexpr uint64_t s = 1'000'000'000ull, idle = 120 * s;
    FlowHarvester h;
    auto ready = [](const FlowRow &) { return true; };
    auto d = h.harvest({flow_row(1000, 1 * s, 2 * s, 5000), flow_row(1001, 1 * s, 2 * s, 7000)},
                       ready, 3 * s, idle);
    REQUIRE(d.size() == 2);
    CHECK(find(d, 1000)->opened);
    CHECK(find(d, 1000)->bytes_out == 5000);
    CHECK_FALSE(find(d, 1000)->closed);
    // 1000 ends with FIN; 1001 leaves the table (evicted) without one.
    d = h.harvest({flow_row(1000, 1 * s, 4 * s, 6000, true)}, ready, 5 * s, idle);
    REQUIRE(d.size() == 2);
    CHECK(find(d, 1000)->closed);
    CHECK(find(d, 1000)->bytes_out == 1000);
    CHECK_FALSE(find(d, 1000)->opened);
    CHECK(find(d, 1001)->closed);
    CHECK(find(d, 1001)->bytes_out == 0);
    CHECK(find(d, 1001)->flow.last_ns == 2 * s);
    // Nothing new: nothing reported (the FIN is not repeated).
    CHECK(h.harvest({flow_row(1000, 1 * s, 4 * s, 6000, true)}, ready, 6 * s, idle).empty());

    // A flow idle for longer than idle_ns counts as closed, once; packets
    // again: resumed (not a new flow); the 5-tuple reused: the old one ends.
    FlowHarvester g;
    g.harvest({flow_row(2000, 1 * s, 2 * s, 100)}, ready, 2 * s, idle);
    CHECK(g.harvest({flow_row(2000, 1 * s, 2 * s, 100)}, ready, 100 * s, idle).empty());
    d = g.harvest({flow_row(2000, 1 * s, 2 * s, 100)}, ready, 123 * s, idle);
    REQUIRE(d.size() == 1);
    CHECK(d[0].closed);
    CHECK(g.harvest({flow_row(2000, 1 * s, 2 * s, 100)}, ready, 124 * s, idle).empty());
    d = g.harvest({flow_row(2000, 1 * s, 125 * s, 3100)}, ready, 126 * s, idle);
    REQUIRE(d.size() == 1);
    CHECK(d[0].resumed);
    CHECK_FALSE(d[0].opened);
    CHECK_FALSE(d[0].closed);
    CHECK(d[0].bytes_out == 3000);
    d = g.harvest({flow_row(2000, 200 * s, 200 * s, 10)}, ready, 201 * s, idle);
    REQUIRE(d.size() == 2);
    int opened = 0, closed = 0;
    for (auto &x : d) {
        opened += x.opened;
        closed += x.closed && x.flow.first_ns == 1 * s;
    }
    CHECK(opened == 1);
    CHECK(closed == 1);
}

TEST_CASE(
    "Flow harvester: a flow reading below its previous reading reports nothing until it passes it",
    "[pipeline]")
{
    constexpr uint64_t s = 1'000'000'000ull;
    FlowHarvester h;
    auto ready = [](const FlowRow &) { return true; };
    auto d = h.harvest({flow_row(3000, 1 * s, 2 * s, 9000)}, ready, 3 * s);
    REQUIRE(d.size() == 1);
    CHECK(d[0].bytes_out == 9000);
    // The same flow (same first-seen time) lower: late counts, not a new flow.
    CHECK(h.harvest({flow_row(3000, 1 * s, 2 * s, 8000)}, ready, 4 * s).empty());
    d = h.harvest({flow_row(3000, 1 * s, 5 * s, 12000)}, ready, 6 * s);
    REQUIRE(d.size() == 1);
    CHECK_FALSE(d[0].opened);
    CHECK(d[0].bytes_out == 3000);
}

// The ring buffer reader's queue: with a stop flag the producer waits for
// the consumer instead of dropping (the ring buffer holds what arrives
// meanwhile); without one, or once stop is set, a full queue drops and counts.
TEST_CASE("EventQueue waits for the consumer while the queue is full", "[pipeline]")
{
    EventQueue q(4);
    std::atomic<bool> stop{false};
    constexpr int kEvents = 200;
    std::thread producer([&] {
        for (int i = 0; i < kEvents; i++) {
            uint8_t e[3] = {uint8_t(i), uint8_t(i >> 8), 0xab};
            q.push(e, &stop);
        }
    });
    std::vector<int> got;
    while (got.size() < size_t(kEvents)) {
        // A slow consumer: the queue is full most of the time.
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        size_t n = q.pop_all([&](std::span<const uint8_t> e) {
            REQUIRE(e.size() == 3);
            CHECK(e[2] == 0xab);
            got.push_back(e[0] | e[1] << 8);
        });
        CHECK(n <= 4);  // at most one queue's worth per call
    }
    producer.join();
    CHECK(q.received() == kEvents);
    CHECK(q.dropped() == 0);
    CHECK(q.waited() > 0);
    for (int i = 0; i < kEvents; i++)
        REQUIRE(got[size_t(i)] == i);  // all of them, in order

    // Full, no stop flag: dropped at once and counted.
    uint8_t e[1] = {1};
    for (int i = 0; i < 4; i++)
        CHECK(q.push(e));
    CHECK_FALSE(q.push(e));
    CHECK(q.dropped() == 1);
    // Full, stop set while waiting: the wait ends, the event is dropped.
    std::thread late([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        stop = true;
    });
    CHECK_FALSE(q.push(e, &stop));
    late.join();
    CHECK(q.dropped() == 2);
    CHECK(q.waited() > 1);
    size_t n = q.pop_all([](std::span<const uint8_t>) {});
    CHECK(n == 4);
}

TEST_CASE("Flow harvester: a change read reports a pending flow again and ends a flow gone from "
          "the table",
          "[pipeline]")
{
    constexpr uint64_t s = 1'000'000'000ull, idle = 120 * s;
    FlowHarvester h;
    bool hello_parsed = false;
    auto ready = [&](const FlowRow &) { return hello_parsed; };
    auto a = flow_row(3000, 1 * s, 2 * s, 5000), b = flow_row(3001, 1 * s, 2 * s, 700);
    auto d = h.harvest_changed({a, b}, {}, ready, 3 * s, idle);
    REQUIRE(d.size() == 2);
    CHECK(find(d, 3000)->pending);
    // Nothing logged since: a pending flow is reported again (its client's
    // bytes stay held) until it is ready, as a full harvest does.
    d = h.harvest_changed({}, {}, ready, 4 * s, idle);
    REQUIRE(d.size() == 2);
    CHECK(find(d, 3000)->pending);
    hello_parsed = true;
    d = h.harvest_changed({}, {}, ready, 5 * s, idle);
    REQUIRE(d.size() == 2);
    CHECK_FALSE(find(d, 3000)->pending);
    CHECK(find(d, 3000)->opened);
    CHECK(find(d, 3000)->bytes_out == 5000);
    CHECK(h.harvest_changed({}, {}, ready, 6 * s, idle).empty());
    // A logged flow gone from the table ends, at its last packet; the
    // other, not logged, stays as accounted.
    d = h.harvest_changed({}, {b.key}, ready, 7 * s, idle);
    REQUIRE(d.size() == 1);
    CHECK(find(d, 3001)->closed);
    CHECK(find(d, 3001)->flow.last_ns == 2 * s);
    CHECK(h.tracked() == 1);
}
