// SPDX-License-Identifier: Apache-2.0
// HarvestStage with the userspace build of the datapath (the BPF program's
// C source) and a real FlowTracker: what reaches the aggregator.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "aggregate/aggregator.h"
#include "capture/datapath.h"
#include "flows/flow_tracker.h"
#include "harvest/harvest_stage.h"
#include "support/addr.h"
#include "support/packet_builder.h"

using namespace exf;
using namespace exf::test;

namespace {

struct Rig {
    std::unique_ptr<Datapath> dp;
    FlowTracker tracker;
    agg::Aggregator agg;
    HarvestStage stage;
    uint64_t ts = 1'700'000'000'000'000'000ull;

    explicit Rig(size_t tracker_records)
        : dp(make_user_datapath([] {
              SensorOptions o;
              o.packet_time = true;
              o.flow_table_size = 4096;
              o.client_table_size = 256;
              o.ringbuf_bytes = 1 << 20;
              return o;
          }())),
          tracker([&] {
              FlowTrackerOptions o;
              o.max_flows = tracker_records;
              return o;
          }())
    {}

    void send(FrameSpec s, bool from_server = false)
    {
        if (from_server) {
            std::swap(s.src, s.dst);
            std::swap(s.sport, s.dport);
        }
        Bytes f = build_frame(s);
        // The datapath wants the Ethernet header at 2 mod 4, as in the kernel.
        std::vector<uint8_t> buf(f.size() + 2);
        std::memcpy(buf.data() + 2, f.data(), f.size());
        ts += 1'000'000;  // 1 ms apart
        dp->process({buf.data() + 2, f.size()}, ts);
        dp->drain_events([&](std::span<const uint8_t> e) { tracker.on_event(e); });
    }

    // SYN, SYN-ACK, ACK, then a ClientHello naming sni.
    void open(uint16_t sport, const std::string &sni)
    {
        FrameSpec s;
        s.sport = sport;
        s.tcp_flags = SYN;
        send(s);
        s.tcp_flags = SYN | ACK;
        send(s, true);
        s.tcp_flags = ACK;
        s.seq = 1001;
        send(s);
        s.tcp_flags = PSH | ACK;
        s.payload = client_hello(517, sni);
        send(s);
    }

    // A 1000-byte response from the server on the flow of sport.
    void response(uint16_t sport)
    {
        FrameSpec s;
        s.sport = sport;
        s.tcp_flags = PSH | ACK;
        s.payload = Bytes(1000, 0x17);
        send(s, true);
    }

    // A 120-byte request from the client on the flow of sport (the size of
    // an HTTP/1.1 GET under TLS: above request_min_bytes).
    void request(uint16_t sport)
    {
        FrameSpec s;
        s.sport = sport;
        s.tcp_flags = PSH | ACK;
        s.payload = Bytes(120, 0x17);
        send(s);
    }

    agg::WindowValue client() const
    {
        return agg.value(agg::EntityKind::client, agg.client_key(addr_of(FrameSpec{}.src)), 0,
                         ts / 1'000'000);
    }

    void harvest()
    {
        auto t = dp->tables();
        stage.run(agg, t.flows, t.clients, tracker, ts / 1'000'000);
    }

    uint64_t flow_bytes_out(uint16_t sport) const
    {
        for (const auto &r : dp->flows())
            if (r.key.lo_port == sport || r.key.hi_port == sport)
                return r.flow.bytes[flow_in_dir(r.flow) ^ 1];
        return 0;
    }

    agg::WindowValue api_host(const std::string &sni) const
    {
        return agg.value(agg::EntityKind::api_host, agg.api_host_key(sni), 0, ts / 1'000'000);
    }
};

}  // namespace

TEST_CASE("Harvest: a busy long-lived flow keeps its API host past the tracker's record bound",
          "[pipeline][harvest]")
{
    // 5 tracker records; each round the long flow answers, 2 short flows to
    // another API host open, and the stage harvests. 12 rounds create 24
    // short records: 20 evictions. Without touch() the long flow's record,
    // the first created, goes in round 2 and its later bytes count for the
    // client alone; touched by every harvest that saw its traffic, it is
    // never the least recently active record.
    Rig rig(5);
    const uint16_t long_port = 40000;
    rig.open(long_port, "bulk.example");
    rig.harvest();
    uint16_t port = 41000;
    for (int round = 0; round < 12; round++) {
        rig.response(long_port);
        rig.open(port++, "short.example");
        rig.open(port++, "short.example");
        rig.harvest();
    }
    CHECK(rig.tracker.stats().evicted == 25 - 5);
    // Every byte the server sent on the long flow is attributed to its API
    // host: none went to the client alone for want of an SNI.
    uint64_t sent = rig.flow_bytes_out(long_port);
    CHECK(sent > 12 * 1000);
    CHECK(rig.api_host("bulk.example").bytes_out == sent);
    CHECK(rig.api_host("bulk.example").tls_flows == 1);
}

TEST_CASE("Flow tracker: touch() makes a record the last to be evicted", "[pipeline][tracker]")
{
    Rig rig(3);
    rig.open(40001, "a.example");
    rig.open(40002, "b.example");
    rig.open(40003, "c.example");
    auto key_of = [&](uint16_t sport) {
        for (const auto &r : rig.dp->flows())
            if (r.key.lo_port == sport || r.key.hi_port == sport)
                return r.key;
        FAIL("no flow for port " << sport);
        return exf_flow_key{};
    };
    const exf_flow_key a = key_of(40001), b = key_of(40002), c = key_of(40003);
    rig.tracker.touch(a);  // a: most recently active; b is now the oldest
    rig.open(40004, "d.example");
    CHECK(rig.tracker.stats().evicted == 1);
    CHECK(rig.tracker.lookup(a) != nullptr);
    CHECK(rig.tracker.lookup(b) == nullptr);
    CHECK(rig.tracker.lookup(c) != nullptr);
    // Touching an unknown key changes nothing.
    rig.tracker.touch(b);
    CHECK(rig.tracker.size() == 3);
    rig.open(40005, "e.example");  // c is the oldest now
    CHECK(rig.tracker.lookup(c) == nullptr);
    CHECK(rig.tracker.lookup(a) != nullptr);
}

TEST_CASE("Harvest: the datapath's request counts reach the client's and the API host's windows",
          "[pipeline][harvest][requests]")
{
    Rig rig(16);
    const uint16_t port = 40000;
    rig.open(port, "api.example");
    rig.response(port);  // the server's handshake flight
    rig.request(port);   // the client's Finished: not a request
    rig.harvest();
    uint64_t kernel = 0;
    for (int i = 0; i < 5; i++) {
        rig.response(port);
        rig.request(port);
        if (i == 2)
            rig.harvest();  // a harvest between requests: counted once each
    }
    rig.response(port);
    rig.harvest();
    for (const auto &r : rig.dp->clients())
        kernel += r.stats.requests;
    CHECK(kernel == 5);
    CHECK(rig.client().requests == kernel);
    CHECK(rig.api_host("api.example").requests == kernel);
    CHECK(rig.agg.value(agg::EntityKind::host, agg::host_key(), 0, rig.ts / 1'000'000).requests ==
          kernel);
}
