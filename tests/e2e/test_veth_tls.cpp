// SPDX-License-Identifier: Apache-2.0
// Real TLS traffic through the kernel data path: openssl s_server in a
// server namespace, curl clients (IPv4 and IPv6, several addresses, several
// connections each, some parallel) in a client namespace, a router namespace
// between them, and the sensor (exf::BpfSensor + exf::TcAttachment) on the
// server's veth. The sensor's per-client counters must equal an independent
// count of the same packets, exactly.
//
//   client ns               router ns                      server ns
//   [cli]--veth--[r_cli]  (forwarding)  [r_srv]--veth--[srv]  <- sensor (tc)
//    203.0.113.10/.11      203.0.113.1   192.0.2.254       192.0.2.1  TLS :443 :4433
//    2001:db8:c::10/::11   2001:db8:c::1 2001:db8:5::fe    192.0.2.2  plain :443
//                                                          2001:db8:5::1 TLS :443 :4433
//                                                          192.0.2.1  plain :9000
//
// Why the truths are independent of the sensor:
//  - Offloads off (tso/gso/gro off on every veth): each skb is one wire
//    packet. tcpdump on the sensor's own interface gets its copy from the
//    packet taps (dev_queue_xmit_nit on egress, ptype_all before
//    sch_handle_ingress on ingress), not from tc, and we compute IP-level
//    bytes from the captured IP length fields with libpcap here: same
//    packets, counted by other code.
//  - Offloads on (tso/gso/gro on on the server's veth): TSO super-packets
//    leave the server and GRO merges the client's segments on arrival, so
//    tc and tcpdump there see GSO/GRO super-packets and a capture there is
//    no count of wire packets. The router's client-facing veth has
//    tso/gso/gro off: the
//    kernel segments the server's forwarded TSO super-packets in software
//    before that tap (validate_xmit_skb), and the client (its veth also
//    without tso/gso) sends real MSS segments that arrive there one by one;
//    they are only merged by GRO later, on the server's veth. So tcpdump on
//    the router's client-facing veth sees real wire segments in both
//    directions, counted from their own IP headers, while the sensor must
//    reconstruct them from gso_segs and the super-packet's length. A capture
//    on the server's veth proves GSO/GRO really happened (frames above the
//    MTU; fewer skbs than wire packets).
//  - The server namespace's TCP MIB (/proc/net/snmp InSegs/OutSegs) counts
//    segments in the TCP stack (tcp_skb_pcount for GSO/GRO skbs): a third
//    count for the sum over all TCP flows the sensor tracked.
//  - Flows opened: curl's own %{num_connects} per transfer (plus the plain
//    connections this test makes itself), and the SYNs in the capture.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "capture/bpf_sensor.h"
#include "capture/maps.h"
#include "common/addr.h"
#include "support/addr.h"
#include "support/netns.h"
#include "support/pcap_truth.h"
#include "support/test_env.h"

using namespace std::chrono_literals;
using exf::Addr16;
using namespace exf::test;

namespace {

// ---- addresses (documentation prefixes only) --------------------------------

constexpr const char *kSrvTls4 = "192.0.2.1";    // s_server :443, :4433; plain :9000
constexpr const char *kSrvPlain4 = "192.0.2.2";  // plain TCP sink on :443
constexpr const char *kSrv6 = "2001:db8:5::1";   // s_server :443, :4433
constexpr const char *kRtrSrv4 = "192.0.2.254";
constexpr const char *kRtrSrv6 = "2001:db8:5::fe";
constexpr const char *kRtrCli4 = "203.0.113.1";
constexpr const char *kRtrCli6 = "2001:db8:c::1";
constexpr uint16_t kTlsPort = 443;     // a configured TLS port: every TCP flow counts
constexpr uint16_t kHelloPort = 4433;  // not configured: TLS recognised by ClientHello
constexpr uint16_t kPlainPort = 9000;  // plain TCP: must not be counted

constexpr auto addr16 = exf::test::addr_of;

// ---- pcap truth -------------------------------------------------------------

// ---- plain TCP endpoints (forked children: plain system calls only) ---------

sockaddr_storage sockaddr_of(const std::string &addr, uint16_t port, socklen_t &len)
{
    sockaddr_storage ss{};
    if (addr.find(':') != std::string::npos) {
        auto *s6 = reinterpret_cast<sockaddr_in6 *>(&ss);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        inet_pton(AF_INET6, addr.c_str(), &s6->sin6_addr);
        len = sizeof(*s6);
    } else {
        auto *s4 = reinterpret_cast<sockaddr_in *>(&ss);
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        inet_pton(AF_INET, addr.c_str(), &s4->sin_addr);
        len = sizeof(*s4);
    }
    return ss;
}

// Accepts on every (addr, port); per connection: read to EOF, reply "ok\n", close.
int plain_sink(const std::vector<std::pair<std::string, uint16_t>> &binds)
{
    std::vector<int> lfds;
    for (auto &[a, port] : binds) {
        socklen_t len;
        auto ss = sockaddr_of(a, port, len);
        int fd = socket(ss.ss_family, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (fd < 0 || bind(fd, reinterpret_cast<sockaddr *>(&ss), len) || listen(fd, 64))
            return 2;
        lfds.push_back(fd);
    }
    std::vector<pollfd> pfds;
    for (int fd : lfds)
        pfds.push_back({fd, POLLIN, 0});
    for (;;) {
        if (poll(pfds.data(), pfds.size(), -1) < 0)
            continue;
        for (auto &p : pfds) {
            if (!(p.revents & POLLIN))
                continue;
            int c = accept(p.fd, nullptr, nullptr);
            if (c < 0)
                continue;
            char buf[65536];
            while (read(c, buf, sizeof(buf)) > 0) {}
            (void)!write(c, "ok\n", 3);
            close(c);
        }
    }
}

// Connects from src to dst:port, sends a non-TLS request and `bytes` of
// filler, half-closes, reads the reply to EOF. 0 when the reply was "ok\n".
int plain_client(const std::string &src, const std::string &dst, uint16_t port, size_t bytes)
{
    socklen_t slen, dlen;
    auto s = sockaddr_of(src, 0, slen);
    auto d = sockaddr_of(dst, port, dlen);
    int fd = socket(d.ss_family, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr *>(&s), slen) ||
        connect(fd, reinterpret_cast<sockaddr *>(&d), dlen))
        return 2;
    static const char req[] = "GET / HTTP/1.0\r\n\r\n";
    if (write(fd, req, sizeof(req) - 1) != ssize_t(sizeof(req) - 1))
        return 3;
    static char fill[65536];
    std::memset(fill, 'x', sizeof(fill));
    while (bytes > 0) {
        size_t n = std::min(bytes, sizeof(fill));
        ssize_t w = write(fd, fill, n);
        if (w <= 0)
            return 3;
        bytes -= size_t(w);
    }
    shutdown(fd, SHUT_WR);
    char reply[16];
    size_t got = 0;
    ssize_t r;
    while ((r = read(fd, reply + got, sizeof(reply) - got)) > 0)
        got += size_t(r);
    close(fd);
    return got == 3 && std::memcmp(reply, "ok\n", 3) == 0 ? 0 : 4;
}

// ---- the scenario -----------------------------------------------------------

struct CurlJob {
    std::vector<std::string> urls;
    bool parallel = false;
};
struct PlainJob {
    std::string dst;
    uint16_t port;
    size_t bytes;
    bool tls_port;  // counted as a TLS flow (by port)
};
struct ClientPlan {
    std::string name, addr;
    std::vector<CurlJob> curls;
    std::vector<PlainJob> plains;
};

std::string url(const std::string &host, uint16_t port, const std::string &file)
{
    std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return "https://" + h + (port == 443 ? "" : ":" + std::to_string(port)) + "/" + file;
}

std::vector<ClientPlan> make_plan()
{
    const std::string v4 = kSrvTls4, v6 = kSrv6;
    return {
        {"c4a",
         "203.0.113.10",
         {{{url(v4, 443, "1M.bin"), url(v4, 443, "1M.bin"), url(v4, 443, "1M.bin")}, false},
          {{url(v4, kHelloPort, "1M.bin")}, false}},
         {}},
        {"c4b",
         "203.0.113.11",
         {{{url(v4, 443, "10M.bin"), url(v4, 443, "1M.bin"), url(v4, 443, "1M.bin")}, true}},
         {{kSrvPlain4, kTlsPort, 2u << 20, true}, {kSrvTls4, kPlainPort, 256u << 10, false}}},
        {"c6a",
         "2001:db8:c::10",
         {{{url(v6, 443, "10M.bin")}, false},
          {{url(v6, 443, "1M.bin"), url(v6, 443, "1M.bin")}, true}},
         {}},
        {"c6b",
         "2001:db8:c::11",
         {{{url(v6, kHelloPort, "1M.bin")}, false},
          {{url(v6, 443, "1M.bin"), url(v6, 443, "1M.bin")}, false}},
         {}},
    };
}

void write_random_file(const std::filesystem::path &p, size_t size)
{
    std::mt19937_64 rng(size);
    std::vector<uint64_t> buf((size + 7) / 8);
    for (auto &w : buf)
        w = rng();
    std::ofstream out(p, std::ios::binary);
    out.write(reinterpret_cast<const char *>(buf.data()), std::streamsize(size));
    REQUIRE(out.good());
}

std::string read_file(const std::filesystem::path &p)
{
    std::ifstream in(p);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool tls_server_port(uint16_t port) { return port == kTlsPort || port == kHelloPort; }

void run_scenario(bool offloads)
{
    const auto t0 = std::chrono::steady_clock::now();
    const char *mode = offloads ? "offloads on" : "offloads off";
    exf::test::Lab lab;

    // Topology.
    auto cli = lab.add_netns("cli"), rtr = lab.add_netns("rtr"), srv = lab.add_netns("srv");
    auto cr = lab.add_veth(cli, rtr);  // cr.a: client's, cr.b: router's client-facing
    auto rs = lab.add_veth(rtr, srv);  // rs.a: router's server-facing, rs.b: server's
    const std::string &if_cli = cr.a, &if_rcli = cr.b, &if_rsrv = rs.a, &if_srv = rs.b;
    auto plan = make_plan();
    for (auto &c : plan)
        lab.add_addr(cli, if_cli, c.addr + (c.addr.find(':') != std::string::npos ? "/64" : "/24"));
    lab.add_addr(rtr, if_rcli, std::string(kRtrCli4) + "/24");
    lab.add_addr(rtr, if_rcli, std::string(kRtrCli6) + "/64");
    lab.add_addr(rtr, if_rsrv, std::string(kRtrSrv4) + "/24");
    lab.add_addr(rtr, if_rsrv, std::string(kRtrSrv6) + "/64");
    lab.add_addr(srv, if_srv, std::string(kSrvTls4) + "/24");
    lab.add_addr(srv, if_srv, std::string(kSrvPlain4) + "/24");
    lab.add_addr(srv, if_srv, std::string(kSrv6) + "/64");
    lab.add_route(cli, "default", kRtrCli4, false);
    lab.add_route(cli, "default", kRtrCli6, true);
    lab.add_route(srv, "default", kRtrSrv4, false);
    lab.add_route(srv, "default", kRtrSrv6, true);
    lab.sysctl(rtr, "net.ipv4.ip_forward", "1");
    lab.sysctl(rtr, "net.ipv6.conf.all.forwarding", "1");

    // Offloads. The client's veth and the router's client-facing veth never
    // segment or coalesce, so that link carries wire packets (see the top).
    // The router's server-facing veth has TSO off in both modes: veth only
    // lets a peer's packets into GRO when the sending veth cannot do TSO
    // (veth_skb_is_eligible_for_gro), and with offloads on we want the
    // server's veth to coalesce the client's segments. It still receives the
    // server's TSO super-packets unchanged.
    lab.set_offloads(cli, if_cli, false);
    lab.set_offloads(rtr, if_rcli, false);
    lab.set_offloads(rtr, if_rsrv, false);
    lab.set_offloads(srv, if_srv, offloads);
    // A real queue on the router's server-facing veth: when the server veth's
    // GRO ring is full, veth then pushes back instead of dropping a packet
    // the wire capture has seen but the sensor would not.
    lab.run_ok(rtr, {"tc", "qdisc", "replace", "dev", if_rsrv, "root", "pfifo", "limit", "10000"});

    // Server: throwaway certificate, files of known sizes, TLS servers, plain sink.
    auto www = lab.dir() / "www";
    std::filesystem::create_directories(www);
    write_random_file(www / "1M.bin", 1u << 20);
    write_random_file(www / "10M.bin", 10u << 20);
    auto cert = (lab.dir() / "cert.pem").string(), key = (lab.dir() / "key.pem").string();
    lab.run_ok("", {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=exfilmon-test"});
    auto s_server = [&](const std::string &accept, const std::string &log) {
        lab.spawn(srv,
                  {"openssl", "s_server", "-accept", accept, "-cert", cert, "-key", key, "-WWW"},
                  {www, lab.dir() / log});
    };
    s_server(std::string(kSrvTls4) + ":443", "s_server_v4.log");
    s_server("[" + std::string(kSrv6) + "]:443", "s_server_v6.log");
    s_server(std::to_string(kHelloPort), "s_server_4433.log");  // both families
    lab.spawn_fn(srv, "plain sink", [] {
        return plain_sink({{kSrvPlain4, kTlsPort}, {kSrvTls4, kPlainPort}});
    });
    lab.wait_listening(srv, kTlsPort, 3);
    lab.wait_listening(srv, kHelloPort, 1);
    lab.wait_listening(srv, kPlainPort, 1);

    // Sensor on the server's veth, then the captures.
    exf::BpfSensor sensor(exf::SensorOptions{});
    exf::test::NsTcAttachment attach(srv, sensor, if_srv);
    auto cap_srv = lab.start_capture(srv, if_srv, "srv");
    exf::test::Capture cap_wire;
    if (offloads)
        cap_wire = lab.start_capture(rtr, if_rcli, "wire");
    const uint64_t in0 = exf::test::tcp_mib(srv, "InSegs");
    const uint64_t out0 = exf::test::tcp_mib(srv, "OutSegs");
    const uint64_t retrans0 = exf::test::tcp_mib(srv, "RetransSegs");
    const uint64_t synrtx0 = exf::test::net_counter(srv, "TcpExt", "TCPSynRetrans");
    // Drops on the path, for diagnosis: between the wire capture and the
    // sensor (router's server-facing veth, server's veth) they would make
    // the counts differ legitimately.
    struct Hop {
        std::string ns, ifname;
        exf::test::LinkStats before;
    };
    std::vector<Hop> hops = {
        {cli, if_cli, {}}, {rtr, if_rcli, {}}, {rtr, if_rsrv, {}}, {srv, if_srv, {}}};
    for (auto &h : hops)
        h.before = exf::test::link_stats(h.ns, h.ifname);

    // Traffic: every job of every client at once.
    struct Running {
        size_t client;
        exf::test::Process *proc;
        std::filesystem::path out;
        size_t transfers;
    };
    std::vector<Running> curls;
    std::vector<std::pair<size_t, exf::test::Process *>> plains;
    const auto t_traffic = std::chrono::steady_clock::now();
    for (size_t ci = 0; ci < plan.size(); ci++) {
        auto &c = plan[ci];
        for (size_t j = 0; j < c.curls.size(); j++) {
            auto &job = c.curls[j];
            std::vector<std::string> argv = {"curl",
                                             "-sS",
                                             "--no-progress-meter",
                                             "-k",
                                             "-g",
                                             "--interface",
                                             c.addr,
                                             "--max-time",
                                             "60",
                                             "-w",
                                             "%{num_connects} %{size_download} %{http_code}\\n"};
            if (job.parallel)
                argv.insert(argv.end(), {"-Z", "--parallel-immediate", "--parallel-max", "8"});
            for (auto &u : job.urls)
                argv.insert(argv.end(), {u, "-o", "/dev/null"});
            auto out = lab.dir() / (c.name + "-curl" + std::to_string(j) + ".out");
            curls.push_back({ci, &lab.spawn(cli, argv, {{}, out}), out, job.urls.size()});
        }
        for (auto &pj : c.plains) {
            auto src = c.addr;
            plains.emplace_back(ci, &lab.spawn_fn(cli, "plain client", [src, pj] {
                return plain_client(src, pj.dst, pj.port, pj.bytes);
            }));
        }
    }

    // Expected TLS flows per client: curl's own connection counts plus our
    // plain connections to a TLS port.
    std::map<Addr16, uint64_t> expect_opened;
    for (auto &c : plan)
        expect_opened[addr16(c.addr)] = 0;
    for (auto &r : curls) {
        int rc = r.proc->wait(60s);
        std::string out = read_file(r.out);
        INFO(plan[r.client].name << " `" << r.proc->name() << "`: " << out);
        REQUIRE(rc == 0);
        std::istringstream in(out);
        size_t n = 0;
        std::string line;
        while (std::getline(in, line)) {
            // "-w" lines; skip anything else (parallel mode's progress meter).
            std::istringstream ls(line);
            uint64_t connects, size;
            int code;
            std::string rest;
            if (!(ls >> connects >> size >> code) || (ls >> rest))
                continue;
            CHECK(code == 200);
            CHECK((size == (1u << 20) || size == (10u << 20)));
            expect_opened[addr16(plan[r.client].addr)] += connects;
            n++;
        }
        REQUIRE(n == r.transfers);
    }
    for (auto &[ci, proc] : plains) {
        INFO(plan[ci].name << " plain client");
        REQUIRE(proc->wait(30s) == 0);
    }
    for (auto &c : plan)
        for (auto &pj : c.plains)
            if (pj.tls_port)
                expect_opened[addr16(c.addr)]++;
    const auto t_done = std::chrono::steady_clock::now();

    // Wait until every flow's FIN/RST has passed the sensor.
    auto settled = [&] {
        auto rows = sensor.tables().clients;
        size_t ok = 0;
        for (auto &r : rows) {
            Addr16 a;
            std::memcpy(a.data(), r.key.addr, 16);
            auto it = expect_opened.find(a);
            if (it != expect_opened.end() && r.stats.tls_flows_opened == it->second &&
                r.stats.tls_flows_closed == r.stats.tls_flows_opened)
                ok++;
        }
        return ok == expect_opened.size();
    };
    for (auto deadline = std::chrono::steady_clock::now() + 10s;
         !settled() && std::chrono::steady_clock::now() < deadline;)
        std::this_thread::sleep_for(20ms);
    // Then until no TCP packet has passed for 500 ms (last ACKs, a
    // retransmitted FIN).
    auto tcp_total = [&] {
        uint64_t n = 0;
        for (auto &fr : sensor.tables().flows)
            if (fr.key.proto == IPPROTO_TCP)
                n += fr.flow.pkts[0] + fr.flow.pkts[1];
        return n;
    };
    uint64_t quiet_total = tcp_total();
    for (auto since = std::chrono::steady_clock::now(), deadline = since + 5s;
         std::chrono::steady_clock::now() - since < 500ms &&
         std::chrono::steady_clock::now() < deadline;) {
        std::this_thread::sleep_for(50ms);
        if (uint64_t n = tcp_total(); n != quiet_total) {
            quiet_total = n;
            since = std::chrono::steady_clock::now();
        }
    }
    for (auto *cap : {&cap_srv, &cap_wire}) {
        if (!cap->proc)
            continue;
        auto st = cap->stop();
        INFO("tcpdump " << cap->pcap.filename().string() << ": captured " << st.captured
                        << ", received by filter " << st.received << ", dropped " << st.dropped);
        REQUIRE(st.complete());  // the capture lost nothing
    }
    // No TCP packet passed the sensor while the captures stopped.
    REQUIRE(tcp_total() == quiet_total);

    auto tables = sensor.tables();
    auto &clients = tables.clients;
    auto &flows = tables.flows;
    auto health = exf::read_health(sensor.health_fd());
    std::ostringstream drops;
    drops << "drops on the path (rx/tx):";
    for (auto &h : hops) {
        auto now = exf::test::link_stats(h.ns, h.ifname);
        drops << " " << h.ifname << " " << now.rx_dropped - h.before.rx_dropped << "/"
              << now.tx_dropped - h.before.tx_dropped;
    }
    const uint64_t in_segs = exf::test::tcp_mib(srv, "InSegs") - in0;
    const uint64_t out_segs = exf::test::tcp_mib(srv, "OutSegs") - out0;
    const uint64_t retrans = exf::test::tcp_mib(srv, "RetransSegs") - retrans0;
    const uint64_t synrtx = exf::test::net_counter(srv, "TcpExt", "TCPSynRetrans") - synrtx0;
    lab.stop_all();
    INFO(mode << ": " << drops.str());

    std::set<Addr16> client_set;
    for (auto &c : plan)
        client_set.insert(addr16(c.addr));
    auto truth = read_pcap(offloads ? cap_wire.pcap : cap_srv.pcap, client_set);
    auto srv_view = offloads ? read_pcap(cap_srv.pcap, client_set) : truth;

    for (unsigned i : {EXF_C_FLOW_UPDATE_FAIL, EXF_C_CLIENT_UPDATE_FAIL, EXF_C_RB_FULL,
                       EXF_C_LOAD_FAIL, EXF_C_PULL_FAIL, EXF_C_BAD_TCP, EXF_C_TRUNC_L4}) {
        INFO("health counter " << exf::counter_name(i));
        CHECK(health[i] == 0);
    }

    // Per flow: the sensor's table against the capture (diagnoses mismatches).
    std::map<Tuple, const exf::FlowRow *> sensor_flows;
    uint64_t sensor_tcp_in = 0, sensor_tcp_out = 0;
    for (auto &fr : flows) {
        if (fr.key.proto != IPPROTO_TCP)
            continue;
        Tuple k;
        std::memcpy(k.client.data(), exf::flow_client_addr(fr.key, fr.flow), 16);
        std::memcpy(k.server.data(), exf::flow_server_addr(fr.key, fr.flow), 16);
        k.cport = exf::flow_client_port(fr.key, fr.flow);
        k.sport = exf::flow_server_port(fr.key, fr.flow);
        sensor_flows[k] = &fr;
        unsigned in = exf::flow_in_dir(fr.flow);
        sensor_tcp_in += fr.flow.pkts[in];
        sensor_tcp_out += fr.flow.pkts[in ^ 1];
    }
    uint64_t wire_pkts = 0, plain_port_pkts = 0;
    for (auto &[k, t] : truth.flows) {
        INFO(mode << ": flow " << exf::format_addr(k.client) << ":" << k.cport << " -> "
                  << exf::format_addr(k.server) << ":" << k.sport);
        wire_pkts += t.in.pkts + t.out.pkts;
        auto it = sensor_flows.find(k);
        REQUIRE(it != sensor_flows.end());
        const auto &f = it->second->flow;
        unsigned in = exf::flow_in_dir(f);
        CHECK(f.pkts[in] == t.in.pkts);
        CHECK(f.pkts[in ^ 1] == t.out.pkts);
        CHECK(f.bytes[in] == t.in.bytes);
        CHECK(f.bytes[in ^ 1] == t.out.bytes);
        if (tls_server_port(k.sport)) {
            CHECK(f.kind == EXF_KIND_TLS);
            CHECK((f.flags & EXF_FF_CLOSED) != 0);
        } else {
            CHECK(f.kind == EXF_KIND_OTHER);  // plain traffic on a non-TLS port
            plain_port_pkts += t.in.pkts + t.out.pkts;
        }
    }
    CHECK(sensor_flows.size() == truth.flows.size());
    CHECK(plain_port_pkts > 0);  // the sensor saw that flow and did not count it

    // Per client: the assertions this test is about.
    std::printf("\n[%s] traffic %.2f s, whole scenario so far %.2f s\n", mode,
                std::chrono::duration<double>(t_done - t_traffic).count(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    std::printf("  %-16s %6s %6s %8s %8s %11s %11s\n", "client", "opened", "closed", "pkts_in",
                "pkts_out", "bytes_in", "bytes_out");
    for (auto &c : plan) {
        Addr16 a = addr16(c.addr);
        exf_client_stats s{};
        bool found = false;
        for (auto &r : clients)
            if (std::memcmp(r.key.addr, a.data(), 16) == 0) {
                s = r.stats;
                found = true;
            }
        DirCount tin, tout;
        uint64_t syns = 0;
        for (auto &[k, t] : truth.flows) {
            if (k.client != a || !tls_server_port(k.sport))
                continue;
            tin.pkts += t.in.pkts;
            tin.bytes += t.in.bytes;
            tout.pkts += t.out.pkts;
            tout.bytes += t.out.bytes;
            syns += t.client_syn;
        }
        std::printf("  %-16s %6llu %6llu %8llu %8llu %11llu %11llu\n", c.addr.c_str(),
                    (unsigned long long)s.tls_flows_opened, (unsigned long long)s.tls_flows_closed,
                    (unsigned long long)s.pkts_in, (unsigned long long)s.pkts_out,
                    (unsigned long long)s.bytes_in, (unsigned long long)s.bytes_out);
        INFO(mode << ": client " << c.addr << " truth: connects " << expect_opened[a] << ", SYNs "
                  << syns << ", in " << tin.pkts << " pkts / " << tin.bytes << " B, out "
                  << tout.pkts << " pkts / " << tout.bytes << " B");
        REQUIRE(found);
        CHECK(s.tls_flows_opened == expect_opened[a]);
        CHECK(s.tls_flows_opened == syns);
        CHECK(s.tls_flows_closed == s.tls_flows_opened);
        CHECK(s.pkts_in == tin.pkts);
        CHECK(s.pkts_out == tout.pkts);
        CHECK(s.bytes_in == tin.bytes);
        CHECK(s.bytes_out == tout.bytes);
    }
    CHECK(clients.size() == plan.size());  // nobody else (router, server) counted as client

    // All TCP the server's stack handled went through the sensor's veth, so
    // the sum over every TCP flow the sensor tracked (TLS or not) equals the
    // stack's own counts. OutSegs counts segments (tcp_skb_pcount of a TSO
    // skb) but leaves out data retransmissions (RetransSegs); it counts
    // SYN-ACKs, retransmitted ones too, which RetransSegs also counts
    // (TCPSynRetrans: the server sends no SYNs). InSegs counts skbs, one per
    // GRO super-packet: it equals the wire packets only without GRO, and the
    // inbound frames on the sensor's veth always.
    std::printf("  server TCP MIB: InSegs %llu OutSegs %llu RetransSegs %llu TCPSynRetrans %llu; "
                "sensor TCP in %llu out %llu\n",
                (unsigned long long)in_segs, (unsigned long long)out_segs,
                (unsigned long long)retrans, (unsigned long long)synrtx,
                (unsigned long long)sensor_tcp_in, (unsigned long long)sensor_tcp_out);
    uint64_t srv_in_skbs = 0;
    for (auto &[k, t] : srv_view.flows)
        srv_in_skbs += t.in.pkts;
    CHECK(sensor_tcp_out == out_segs + retrans - synrtx);
    CHECK(in_segs == srv_in_skbs);
    if (!offloads)
        CHECK(sensor_tcp_in == in_segs);
    else
        CHECK(sensor_tcp_in > in_segs);  // GRO merged client segments

    std::printf("  %s\n", drops.str().c_str());
    std::printf("  wire packets %llu (capture %s), skbs on the sensor's veth %llu, "
                "health packets %llu\n",
                (unsigned long long)wire_pkts, offloads ? "router client side" : "sensor veth",
                (unsigned long long)srv_view.tcp_frames, (unsigned long long)health[EXF_C_PACKETS]);
    if (offloads) {
        // GSO/GRO really happened: super-packets above the MTU in both
        // directions on the sensor's veth, fewer skbs than wire packets.
        uint32_t max_in = 0, max_out = 0;
        for (auto &[k, t] : srv_view.flows) {
            max_in = std::max(max_in, t.in.max_ip_len);
            max_out = std::max(max_out, t.out.max_ip_len);
        }
        std::printf("  largest IP packet on the sensor's veth: in %u, out %u\n", max_in, max_out);
        CHECK(max_out > 1500);  // TSO super-packets from the server
        CHECK(max_in > 1500);   // GRO on the server's veth merged client segments
        CHECK(srv_view.tcp_frames < wire_pkts);
    } else {
        uint32_t max_len = 0;
        for (auto &[k, t] : truth.flows)
            max_len = std::max({max_len, t.in.max_ip_len, t.out.max_ip_len});
        CHECK(max_len <= 1500);  // no super-packets: each skb is a wire packet
    }
    CHECK(health[EXF_C_PACKETS] >= wire_pkts);
    std::printf("  scenario %.2f s\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

}  // namespace

TEST_CASE("veth TLS with offloads off: sensor equals tcpdump on its own interface",
          "[e2e][netns][tls]")
{
    if (!exf::test::require_root())
        return;
    run_scenario(false);
}

TEST_CASE("veth TLS with offloads on: sensor expands GSO/GRO to the wire segments a router sees",
          "[e2e][netns][tls]")
{
    if (!exf::test::require_root())
        return;
    run_scenario(true);
}
