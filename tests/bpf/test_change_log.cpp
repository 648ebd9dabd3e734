// SPDX-License-Identifier: Apache-2.0
// The change log (struct exf_change_ctl, capture/changes.h): the harvest
// reads only the entries the datapath logged as changed. Tables rebuilt
// from those reads must equal a full reading of the real program's maps
// after every read: nothing is lost across an epoch bump or an overflow.
#include <catch2/catch.hpp>

#include <bpf/bpf.h>

#include <cstring>
#include <map>
#include <string>

#include "capture/bpf_sensor.h"
#include "capture/changes.h"
#include "capture/maps.h"
#include "capture/test_run.h"
#include "support/packet_builder.h"
#include "support/test_env.h"

using namespace exf;
using namespace exf::test;

namespace {

std::string bytes_of(const void *p, size_t n)
{
    return std::string(static_cast<const char *>(p), n);
}

// The tables as the harvest knows them: rebuilt from ChangeReader reads.
struct Mirror {
    std::map<std::string, exf_flow> flows;
    std::map<std::string, exf_client_stats> clients;

    void apply(const TableChanges &c)
    {
        if (c.full) {
            flows.clear();
            clients.clear();
        }
        for (auto &r : c.tables.flows)
            flows[bytes_of(&r.key, sizeof(r.key))] = r.flow;
        for (auto &r : c.tables.clients)
            clients[bytes_of(&r.key, sizeof(r.key))] = r.stats;
        for (auto &k : c.flows_gone)
            flows.erase(bytes_of(&k, sizeof(k)));
        for (auto &k : c.clients_gone)
            clients.erase(bytes_of(&k, sizeof(k)));
    }
};

// Every count of a full reading equals the mirror's.
void check_equal(const Mirror &m, const Tables &t)
{
    CHECK(m.flows.size() == t.flows.size());
    for (auto &r : t.flows) {
        auto it = m.flows.find(bytes_of(&r.key, sizeof(r.key)));
        REQUIRE(it != m.flows.end());
        for (int d = 0; d < 2; d++) {
            CHECK(it->second.pkts[d] == r.flow.pkts[d]);
            CHECK(it->second.bytes[d] == r.flow.bytes[d]);
        }
        CHECK(it->second.flags == r.flow.flags);
    }
    CHECK(m.clients.size() == t.clients.size());
    for (auto &r : t.clients) {
        auto it = m.clients.find(bytes_of(&r.key, sizeof(r.key)));
        REQUIRE(it != m.clients.end());
        CHECK(it->second.pkts_in == r.stats.pkts_in);
        CHECK(it->second.pkts_out == r.stats.pkts_out);
        CHECK(it->second.bytes_in == r.stats.bytes_in);
        CHECK(it->second.bytes_out == r.stats.bytes_out);
        CHECK(it->second.tls_flows_opened == r.stats.tls_flows_opened);
    }
}

class LogHarness {
public:
    explicit LogHarness(SensorOptions o) : sensor_(with_packet_time(o)), reader_(sensor_, 0) {}

    void send(const FrameSpec &s)
    {
        TestRunOptions o;
        o.tstamp_ns = clock_ns_ += 1000;
        auto r = run_tc_program(sensor_.ingress_fd(), build_frame(s), o);
        REQUIRE(r.err == 0);
    }
    // A TLS flow: handshake and ClientHello (steady from then on: cached).
    void open_tls(FrameSpec c)
    {
        FrameSpec s = reverse(c);
        c.tcp_flags = SYN;
        send(c);
        s.tcp_flags = SYN | ACK;
        s.seq = 5000;
        s.ack = c.seq + 1;
        send(s);
        c.tcp_flags = PSH | ACK;
        c.seq += 1;
        c.payload = client_hello(517);
        send(c);
    }
    void send_data(const FrameSpec &c, int n)
    {
        FrameSpec s = reverse(c);
        s.tcp_flags = ACK;
        s.payload.assign(900, 0x17);
        for (int i = 0; i < n; i++)
            send(s);
    }
    // The next packets fall in a new tick of the flow cache: the slow path.
    void next_tick() { clock_ns_ += 5'000'000; }

    exf_change_ctl ctl()
    {
        uint32_t zero = 0;
        exf_change_ctl c{};
        REQUIRE(bpf_map_lookup_elem(sensor_.change_ctl_fd(), &zero, &c) == 0);
        return c;
    }
    void set_epoch(uint32_t e)
    {
        auto c = ctl();
        c.epoch = e;
        uint32_t zero = 0;
        REQUIRE(bpf_map_update_elem(sensor_.change_ctl_fd(), &zero, &c, BPF_ANY) == 0);
    }

    // One harvest's read, applied to the mirror and checked against a full
    // reading.
    TableChanges harvest()
    {
        auto c = reader_.read();
        mirror_.apply(c);
        check_equal(mirror_, sensor_.tables());
        return c;
    }

private:
    static SensorOptions with_packet_time(SensorOptions o)
    {
        o.packet_time = true;
        return o;
    }
    CpuPin pin_;  // one CPU: one flow cache
    BpfSensor sensor_;
    ChangeReader reader_;
    Mirror mirror_;
    uint64_t clock_ns_ = 1'000'000'000;
};

}  // namespace

TEST_CASE("Change log: a change by a CPU that read the epoch before the bump is read by the next "
          "harvest",
          "[bpf]")
{
    if (!require_root())
        return;
    LogHarness h(SensorOptions{});
    REQUIRE(h.harvest().full);  // the first read is a full one
    FrameSpec c;
    c.src = "192.0.2.30";
    c.sport = 42000;
    h.open_tls(c);
    h.send_data(c, 3);
    uint32_t e = h.ctl().epoch;
    auto first = h.harvest();  // epoch e ends: the flow and its client are read
    REQUIRE_FALSE(first.full);
    CHECK(first.tables.flows.size() == 1);
    CHECK(first.tables.clients.size() == 1);
    // A CPU that read epoch e just before the bump changes the flow (and
    // its client) after that harvest: both carry mark e, so it logs nothing.
    h.set_epoch(e);
    h.next_tick();
    h.send_data(c, 4);  // slow path: the cached counts and these into the tables
    h.send_data(c, 2);  // fast path: pending in the flow cache
    h.set_epoch(e + 1);
    auto second = h.harvest();  // reads epoch e's log again: nothing lost
    CHECK_FALSE(second.full);
    // Quiet from here: a third read finds nothing and stays exact.
    auto third = h.harvest();
    CHECK(third.tables.flows.empty());
    CHECK(third.keys_read == 0);
}

TEST_CASE("Change log: more changes than the log holds fall back to a full read and lose nothing",
          "[bpf]")
{
    if (!require_root())
        return;
    SensorOptions o;
    // Room in the flow table for far more than the flows sent: no eviction
    // is possible, so only the overflow makes the read a full one.
    o.flow_table_size = 65536;
    o.client_table_size = 8192;
    REQUIRE(change_log_capacity(o) == 9216);
    LogHarness h(o);
    REQUIRE(h.harvest().full);
    // 10,000 new TLS flows in one epoch: each logs its key (and the first
    // flow of each client the client), more than the 9,216 a buffer holds.
    for (int i = 0; i < 10000; i++) {
        FrameSpec c;
        c.src = "198.51.100." + std::to_string(1 + i % 200);
        c.dst = "203.0.113.1";
        c.sport = uint16_t(20000 + i);
        c.tcp_flags = SYN;
        h.send(c);
    }
    CHECK(h.ctl().count[h.ctl().epoch % EXF_CHG_BUFS] > 9216);
    auto over = h.harvest();
    CHECK(over.full);
    CHECK(over.tables.flows.size() == 10000);
    // The overflowed buffer is read a second time at the next harvest: a
    // full read again, then change reads resume.
    CHECK(h.harvest().full);
    FrameSpec c;
    c.src = "198.51.100.7";
    c.dst = "203.0.113.1";
    c.sport = 20006;
    h.send_data(c, 2);
    auto after = h.harvest();
    CHECK_FALSE(after.full);
    CHECK(after.tables.flows.size() == 1);
}
