// SPDX-License-Identifier: Apache-2.0
// A flood of new flows far beyond the flow table, and ClientHellos faster
// than the ring buffer drains, through a running `exfilmon run` with a
// 1024-entry flow table and a 64 KiB ring buffer. The frames run through
// the daemon's own attached programs (BPF_PROG_TEST_RUN on the programs
// tc shows on its interface), so its tables, ring buffer, reader threads,
// harvest and aggregation are the real ones and every frame is certainly
// seen. Everything is asserted through what the daemon reports (`exfilmon
// top`, `exfilmon status`, /metrics), not through map layouts:
//   - every client's TLS flows, bytes and packets in and out are exact,
//     the client whose flows are evicted by the thousand included;
//   - evictions are counted (flows created minus entries) and exported;
//   - with the reader stalled (SIGSTOP), then running behind a flood, the
//     ring fills: each ClientHello event is either received or counted as
//     ring buffer full, exactly, in status and /metrics alike; none is lost
//     in the event queue;
//   - the daemon stays up, and its memory does not grow over the last flood
//     of 50,000 flows (measured after the first flood and the hellos).
#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/daemon_probe.h"
#include "support/netns.h"
#include "support/packet_builder.h"
#include "support/proc.h"
#include "support/servers.h"
#include "support/test_env.h"

using namespace exf;
using namespace exf::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

struct Totals {
    uint64_t flows = 0, bytes_in = 0, bytes_out = 0, pkts_in = 0, pkts_out = 0;
};

// Builds and runs flows through the daemon's programs, keeping per-client
// truth. Every flow is a new 5-tuple on a TLS port.
class Flooder {
public:
    explicit Flooder(const AttachedPrograms &progs) : progs_(progs) {}

    // One TLS flow of `client`: SYN, optionally a ClientHello of hello_len
    // bytes (one segment, so one ring buffer event), one response segment
    // of 1000 bytes.
    void flow(const std::string &client, size_t hello_len = 0)
    {
        unsigned k = next_[client]++;
        FrameSpec c;
        c.src = client;
        c.dst = "198.51.100." + std::to_string(1 + k / 60000);
        c.sport = uint16_t(1024 + k % 60000);
        c.dport = 443;
        c.tcp_flags = SYN;
        c.seq = 1000;
        in(client, c);
        if (hello_len) {
            c.tcp_flags = PSH | ACK;
            c.seq = 1001;
            c.payload = client_hello(hello_len, "api.example.com");
            in(client, c);
            hellos++;
        }
        FrameSpec s;
        s.src = c.dst;
        s.dst = c.src;
        s.sport = c.dport;
        s.dport = c.sport;
        s.tcp_flags = ACK;
        s.seq = 5001;
        s.payload.assign(1000, 0x17);
        auto f = build_frame(s);
        progs_.egress(f);
        frames++;
        auto &t = truth[client];
        t.bytes_out += f.size() - 14;
        t.pkts_out++;
        t.flows++;
        flows++;
    }

    std::map<std::string, Totals> truth;
    uint64_t flows = 0, frames = 0, hellos = 0;

private:
    void in(const std::string &client, const FrameSpec &c)
    {
        auto f = build_frame(c);
        progs_.ingress(f);
        frames++;
        truth[client].bytes_in += f.size() - 14;
        truth[client].pkts_in++;
    }
    const AttachedPrograms &progs_;
    std::map<std::string, unsigned> next_;
};

// SIGCONT on the way out, whatever happens while the daemon is stopped.
struct Stopped {
    pid_t pid;
    explicit Stopped(pid_t p) : pid(p) { ::kill(pid, SIGSTOP); }
    ~Stopped() { ::kill(pid, SIGCONT); }
};

}  // namespace

TEST_CASE("Flood: new flows beyond the flow table and hellos beyond the ring buffer keep exact "
          "per-client counts with drops and evictions counted and memory bounded",
          "[e2e][sanitize][daemon][flood]")
{
    if (!require_root())
        return;
    Lab lab;
    auto srv = lab.add_netns("srv"), peer = lab.add_netns("peer");
    // A veth without addresses or IPv6: no packet but ours reaches the programs.
    for (auto &ns : {srv, peer}) {
        lab.sysctl(ns, "net.ipv6.conf.all.disable_ipv6", "1");
        lab.sysctl(ns, "net.ipv6.conf.default.disable_ipv6", "1");
    }
    const std::string ifname = lab.add_veth(srv, peer).a;

    auto sock = (lab.dir() / "control.sock").string();
    uint16_t port = free_tcp_port(srv, "127.0.0.1");
    auto cfg = lab.dir() / "exfilmon.toml";
    std::ofstream(cfg)
        << "rules = []\n"
        << "[bpf]\npin = false\nflow_table_size = 1024\nringbuf_size = \"64KiB\"\n"
        << "[daemon]\nstate_dir = \"\"\nreport_interval = \"1h\"\nharvest_interval = \"200ms\"\n"
        << "[control]\nsocket = \"" << sock << "\"\n"
        << "[metrics]\nlisten = \"127.0.0.1:" << port << "\"\n"
        << "[[outputs]]\ntype = \"json\"\npath = \"" << (lab.dir() / "alerts.json").string()
        << "\"\n";
    // ASan keeps freed memory in a quarantine of 256 MiB that fills as the
    // daemon runs: a small one, so that RSS shows what the daemon holds.
    std::string asan = std::getenv("ASAN_OPTIONS") ? std::getenv("ASAN_OPTIONS") : "";
    if (built_with_asan)
        ::setenv("ASAN_OPTIONS",
                 (asan + (asan.empty() ? "" : ":") + "quarantine_size_mb=4").c_str(), 1);
    auto out = lab.dir() / "daemon.out";
    auto &daemon = lab.spawn(
        srv, {exfilmon_binary().string(), "run", "--config", cfg.string(), "--interface", ifname},
        {lab.dir(), out});
    if (built_with_asan)
        ::setenv("ASAN_OPTIONS", asan.c_str(), 1);
    REQUIRE(wait_for(out, "attached to " + ifname, 20s));
    REQUIRE(wait_for(out, "control socket " + sock, 5s));
    INFO(slurp(out));
    AttachedPrograms progs(lab, srv, ifname);
    Flooder flood(progs);

    const std::string heavy = "192.0.2.50";  // a fifth of all flows
    std::vector<std::string> others;
    for (int i = 1; i <= 200; i++)
        others.push_back("203.0.113." + std::to_string(i));
    size_t turn = 0;
    auto burst = [&](int n, size_t hello_len) {
        for (int i = 0; i < n; i++)
            flood.flow(i % 5 == 0 ? heavy : others[turn++ % others.size()], hello_len);
    };
    // The daemon took in everything sent so far: two harvests after now.
    auto settle = [&] {
        uint64_t h0 = daemon_status(sock)["harvest"]["count"];
        auto until = std::chrono::steady_clock::now() + 30s;
        while (daemon_status(sock)["harvest"]["count"].get<uint64_t>() < h0 + 2) {
            REQUIRE(std::chrono::steady_clock::now() < until);
            std::this_thread::sleep_for(50ms);
        }
    };

    // 1. 50,000 new flows: the flow table holds 1024.
    burst(50000, 0);
    settle();

    // 2. The reader stalls (SIGSTOP) while 3,000 flows send a ClientHello
    //    each: the 64 KiB ring takes about a hundred of those events.
    {
        Stopped stalled(daemon.pid());
        burst(3000, 300);
    }
    // ... and 3,000 more with the reader running, as fast as the kernel
    // takes them (whatever the ring cannot hold is counted, below).
    burst(3000, 300);
    settle();
    // The flow tracker now holds the flows whose hello arrived.
    uint64_t rss1 = rss_bytes(daemon.pid());

    // 3. 50,000 more new flows.
    burst(50000, 0);
    settle();
    uint64_t rss2 = rss_bytes(daemon.pid());

    // Every client exact, as `exfilmon top` shows it (the 10m window: all
    // of it, each client first seen less than a window ago). Flows whose
    // hello was dropped wait up to 2 s for it before their bytes go to the
    // client alone: polled until then.
    auto bin = exfilmon_binary().string();
    json rows;
    auto exact = [&] {
        auto r = run_program({bin, "top", "--socket", sock, "--once", "--format", "json", "--kind",
                              "client", "-n", "1000"});
        REQUIRE(r.status == 0);
        rows = json::parse(r.out)["rows"];
        if (rows.size() != flood.truth.size())
            return false;
        for (auto &row : rows) {
            auto it = flood.truth.find(row["entity"].get<std::string>());
            if (it == flood.truth.end() || row["bytes_out"] != it->second.bytes_out ||
                row["bytes_in"] != it->second.bytes_in || row["tls_flows"] != it->second.flows)
                return false;
        }
        return true;
    };
    auto until = std::chrono::steady_clock::now() + 30s;
    while (!exact() && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(200ms);
    REQUIRE(rows.size() == flood.truth.size());
    for (auto &row : rows) {
        auto client = row["entity"].get<std::string>();
        INFO(client);
        REQUIRE(flood.truth.count(client) == 1);
        auto &t = flood.truth[client];
        CHECK(row["tls_flows"] == t.flows);
        CHECK(row["bytes_in"] == t.bytes_in);
        CHECK(row["bytes_out"] == t.bytes_out);
    }
    auto &h = flood.truth[heavy];
    CHECK(h.flows == 21200);  // twenty times the flow table: evicted again and again

    // Kernel figures and what the daemon made of them.
    auto st = daemon_status(sock);
    INFO(st.dump());
    auto &health = st["health"];
    CHECK(health["packets"] == flood.frames);
    CHECK(health["flow_new"] == flood.flows);
    CHECK(health["tls_flows"] == flood.flows);
    CHECK(health["flow_update_fail"] == 0);
    CHECK(health["client_update_fail"] == 0);
    uint64_t entries = st["maps"]["flows"]["entries"];
    CHECK(entries <= 1024);
    CHECK(st["maps"]["flows"]["capacity"] == 1024);
    CHECK(st["maps"]["flows"]["evictions"] == flood.flows - entries);
    CHECK(st["maps"]["clients"]["entries"] == flood.truth.size());
    CHECK(health["client_new"] == flood.truth.size());
    CHECK(st["maps"]["clients"]["evictions"] == 0);
    // Each hello event was either handed to the daemon or counted lost.
    uint64_t hello_events = health["hello_events"], rb_full = health["ringbuf_full"];
    CHECK(flood.hellos == 6000);
    CHECK(hello_events + rb_full == flood.hellos);
    CHECK(rb_full > 0);
    CHECK(st["events"]["ringbuf_full"] == rb_full);
    CHECK(st["events"]["received"] == hello_events);
    CHECK(st["events"]["queue_dropped"] == 0);
    CHECK(health["end_events"] == 0);

    // The same in /metrics.
    auto metrics =
        lab.run_ok(srv, {"curl", "-sf", "http://127.0.0.1:" + std::to_string(port) + "/metrics"});
    CHECK(metric_value(metrics, "exfilmon_ringbuf_drops_total") == double(rb_full));
    CHECK(metric_value(metrics, "exfilmon_datapath_events_total{counter=\"ringbuf_full\"}") ==
          double(rb_full));
    CHECK(metric_value(metrics, "exfilmon_event_queue_drops_total") == 0);
    CHECK(metric_value(metrics, "exfilmon_map_evictions_total{map=\"flows\"}") ==
          double(flood.flows - entries));
    CHECK(metric_value(metrics, "exfilmon_map_evictions_total{map=\"clients\"}") == 0);
    CHECK(metric_value(metrics, "exfilmon_packets_total") == double(flood.frames));

    // Up, and no bigger after the last 50,000 flows than before them.
    std::fprintf(stderr,
                 "flood: %llu flows, %llu evicted; %llu of %llu hello events lost (ring full); "
                 "daemon RSS %.1f MiB after 56,000 flows, %.1f MiB after 106,000\n",
                 (unsigned long long)flood.flows, (unsigned long long)(flood.flows - entries),
                 (unsigned long long)rb_full, (unsigned long long)flood.hellos,
                 double(rss1) / 1048576, double(rss2) / 1048576);
    CHECK(rss1 > 0);
    CHECK(rss2 <= rss1 + (8u << 20));
    CHECK(daemon.running());
    CHECK(daemon.stop(SIGTERM, 15s) == 0);
}
