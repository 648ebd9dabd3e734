// SPDX-License-Identifier: Apache-2.0
// One datapath source, two builds: the real BPF program (BPF_PROG_TEST_RUN)
// and the same C compiled into userspace must leave identical flow and
// client tables and health counters, and emit identical events, for every
// capture in ../shared/pcaps and for the project's own built frames.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>
#include <sstream>

#include "capture/datapath.h"
#include "capture/pcap_reader.h"
#include "common/addr.h"
#include "support/packet_builder.h"
#include "support/replay.h"
#include "support/test_env.h"

using namespace exf;
using namespace exf::test;

namespace {

struct Snapshot {
    std::vector<std::string> flows, clients;
    std::vector<std::vector<uint8_t>> events;
    HealthCounters health{};
};

std::string flow_line(const FlowRow &r)
{
    // Everything but last/first seen, which both take from the packet time.
    std::ostringstream o;
    o << format_addr(r.key.lo_addr) << ":" << r.key.lo_port << "-" << format_addr(r.key.hi_addr)
      << ":" << r.key.hi_port << "/" << int(r.key.proto) << " kind " << int(r.flow.kind)
      << " client " << int(r.flow.client) << " pkts " << r.flow.pkts[0] << "/" << r.flow.pkts[1]
      << " bytes " << r.flow.bytes[0] << "/" << r.flow.bytes[1] << " tcp " << r.flow.tcp_seen
      << " flags " << int(r.flow.flags) << " isn " << r.flow.client_isn << " hello "
      << r.flow.hello_target << "/" << r.flow.hello_contig << "/" << int(r.flow.hello_segs)
      << " first " << r.flow.first_ns << " last " << r.flow.last_ns;
    return o.str();
}

std::string client_line(const ClientRow &r)
{
    std::ostringstream o;
    o << format_addr(r.key.addr) << " opened " << r.stats.tls_flows_opened << " closed "
      << r.stats.tls_flows_closed << " pkts " << r.stats.pkts_in << "/" << r.stats.pkts_out
      << " bytes " << r.stats.bytes_in << "/" << r.stats.bytes_out << " last " << r.stats.last_ns;
    return o.str();
}

Snapshot snapshot(Datapath &dp, std::vector<std::vector<uint8_t>> events)
{
    Snapshot s;
    for (auto &r : dp.flows())
        s.flows.push_back(flow_line(r));
    for (auto &r : dp.clients())
        s.clients.push_back(client_line(r));
    std::sort(s.flows.begin(), s.flows.end());
    std::sort(s.clients.begin(), s.clients.end());
    s.events = std::move(events);
    s.health = dp.health();
    return s;
}

void compare(const Snapshot &bpf, const Snapshot &user, const std::string &what)
{
    INFO(what);
    CHECK(bpf.flows == user.flows);
    CHECK(bpf.clients == user.clients);
    for (unsigned i = 0; i < EXF_C__MAX; i++) {
        INFO("health counter " << counter_name(i));
        CHECK(bpf.health[i] == user.health[i]);
    }
    REQUIRE(bpf.events.size() == user.events.size());
    for (size_t i = 0; i < bpf.events.size(); i++) {
        INFO("event " << i);
        // The kernel's ring buffer rounds the record up; compare what userspace reads.
        size_t n = std::min(bpf.events[i].size(), user.events[i].size());
        CHECK(std::equal(bpf.events[i].begin(), bpf.events[i].begin() + long(n),
                         user.events[i].begin()));
    }
}

using Frames = std::vector<std::pair<uint64_t, std::vector<uint8_t>>>;

Snapshot run(Datapath &dp, const Frames &frames)
{
    std::vector<std::vector<uint8_t>> events;
    for (auto &[ts, f] : frames) {
        dp.process(f, ts);
        dp.drain_events(
            [&](std::span<const uint8_t> e) { events.emplace_back(e.begin(), e.end()); });
    }
    return snapshot(dp, std::move(events));
}

SensorOptions replay_options()
{
    SensorOptions o;
    o.packet_time = true;
    o.flow_table_size = 65536;
    o.client_table_size = 65536;
    return o;
}

}  // namespace

TEST_CASE("Datapath parity on built frames including malformed ones", "[bpf][parity]")
{
    if (!require_root())
        return;
    // A deterministic mix: TLS sessions both families, VLANs, QUIC, plain TCP,
    // and random truncations and corruptions of them.
    Frames frames;
    std::mt19937 rng(42);
    uint64_t ts = 1'000'000'000;
    for (int i = 0; i < 300; i++) {
        FrameSpec s;
        bool v6 = i % 3 == 0;
        s.src = v6 ? "2001:db8::" + std::to_string(i % 17 + 1)
                   : "192.0.2." + std::to_string(i % 23 + 1);
        s.dst = v6 ? "2001:db8:1::1" : "198.51.100.1";
        s.sport = uint16_t(30000 + i % 40);
        s.dport = (i % 5 == 0) ? 4433 : (i % 7 == 0 ? 80 : 443);
        if (i % 4 == 0)
            s.vlans = {{0x8100, 9}};
        int kind = int(rng() % 6);
        if (kind == 0) {
            s.tcp_flags = SYN;
        } else if (kind == 1) {
            s.tcp_flags = PSH | ACK;
            s.payload = client_hello(200 + rng() % 1500);
        } else if (kind == 2) {
            std::swap(s.src, s.dst);
            std::swap(s.sport, s.dport);
            s.payload.assign(rng() % 1400, 0x17);
        } else if (kind == 3) {
            s.proto = 17;
            s.payload = quic_initial(1200 + rng() % 100);
        } else if (kind == 4) {
            s.tcp_flags = (rng() % 2) ? (FIN | ACK) : RST;
        } else {
            s.payload.assign(rng() % 200, uint8_t(rng()));
        }
        auto f = build_frame(s);
        if (rng() % 4 == 0)
            f.resize(14 + rng() % (f.size() - 14));  // truncated
        if (rng() % 8 == 0 && f.size() > 30)
            f[14 + rng() % (f.size() - 14)] ^= uint8_t(1 + rng() % 255);  // corrupted
        frames.emplace_back(ts, std::move(f));
        ts += 1000;
    }
    auto bpf = make_bpf_test_run_datapath(replay_options());
    auto user = make_user_datapath(replay_options());
    auto a = run(*bpf, frames), b = run(*user, frames);
    CHECK(a.flows.size() > 50);
    CHECK(a.events.size() > 20);
    compare(a, b, "built frames");
}

// The shared-capture test below replays capture after capture through one
// load of each build, reset in between: a reset must leave what a fresh
// datapath would, in the kernel's maps as in the userspace build.
TEST_CASE("A reset datapath counts the next frames as a fresh one does", "[bpf][parity]")
{
    if (!require_root())
        return;
    Frames first, second;
    uint64_t ts = 1'000'000'000;
    for (int i = 0; i < 40; i++) {
        FrameSpec s;
        s.src = "192.0.2." + std::to_string(i % 7 + 1);
        s.dst = "198.51.100.1";
        s.sport = uint16_t(41000 + i % 5);
        s.tcp_flags = i % 5 == 0 ? SYN : PSH | ACK;
        if (i % 5 == 1)
            s.payload = client_hello(300);
        (i < 20 ? first : second).emplace_back(ts += 1000, build_frame(s));
    }
    first.emplace_back(ts += 1000, std::vector<uint8_t>(10, 0));  // a health counter
    for (auto make :
         {make_bpf_test_run_datapath, +[](SensorOptions o) { return make_user_datapath(o); }}) {
        auto used = make(replay_options()), fresh = make(replay_options());
        auto before = run(*used, first);
        REQUIRE(!before.flows.empty());
        used->reset();
        compare(run(*used, second), run(*fresh, second), used->name());
    }
}

TEST_CASE("Datapath parity on every shared capture", "[bpf][parity][pcap]")
{
    if (!require_root())
        return;
    auto dir = shared_pcaps();
    if (dir.empty())
        return;
    auto captures = find_captures(dir);
    REQUIRE(captures.size() > 100);
    size_t flows = 0;
    // One load of each (the verifier takes a second), reset between captures.
    auto bpf = make_bpf_test_run_datapath(replay_options());
    auto user = make_user_datapath(replay_options());
    for (auto &rel : captures) {
        Frames frames;
        PcapReader reader((dir / rel).string());
        Packet p;
        while (reader.next(p))
            if (p.frame.size() >= 14)
                frames.emplace_back(p.ts_ns, p.frame);
        bpf->reset();
        user->reset();
        auto a = run(*bpf, frames), b = run(*user, frames);
        flows += a.flows.size();
        compare(a, b, rel);
    }
    CHECK(flows > 1176);
}
