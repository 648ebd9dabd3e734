// SPDX-License-Identifier: Apache-2.0
// A real HTTP/3 download through the sensor: Debian's ngtcp2 example server
// (gtlsserver, GnuTLS + nghttp3) serves a file of a few hundred KB over QUIC
// on UDP 443 in one namespace, its example client (gtlsclient) fetches it
// from another, asking for one host name (SNI) with ALPN h3. `exfilmon run`
// on the server's veth must report the client's QUIC flow under that SNI
// with exactly the bytes tcpdump counted on the same interface, and
// `exfilmon replay --flows` of that capture must name the flow QUIC with
// the SNI, ALPN h3 and a JA4 starting "q13" (decrypted client Initials).
//
// The server sends with UDP GSO (ngtcp2's default, up to 64 datagrams a
// sendmsg); with the veth's tx-udp-segmentation off the kernel splits those
// super-packets after tc egress (the sensor counts them GSO-expanded) and
// before tcpdump's tap (which sees wire datagrams): the totals must agree.
#include <catch2/catch.hpp>

#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/addr.h"
#include "support/netns.h"
#include "support/pcap_truth.h"
#include "support/proc.h"
#include "support/servers.h"
#include "support/test_env.h"

using namespace exf;
using namespace exf::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// True when a UDP socket is bound to `port` in ns (/proc/net/udp{,6}).
bool udp_bound(const std::string &ns, uint16_t port)
{
    return in_netns(ns, [&] {
        for (const char *f : {"/proc/thread-self/net/udp", "/proc/thread-self/net/udp6"}) {
            std::istringstream in(slurp(f));
            std::string line;
            std::getline(in, line);  // header
            while (std::getline(in, line)) {
                std::istringstream ls(line);
                std::string sl, local;
                ls >> sl >> local;
                auto colon = local.rfind(':');
                if (colon != std::string::npos &&
                    std::stoul(local.substr(colon + 1), nullptr, 16) == port)
                    return true;
            }
        }
        return false;
    });
}

// Polls `exfilmon top --once --format json ARGS` until pred accepts its
// output (or the timeout passes); returns the last output parsed.
json poll_top(const std::string &sock, const std::vector<std::string> &args,
              const std::function<bool(const json &)> &pred, std::chrono::milliseconds timeout)
{
    std::vector<std::string> argv = {
        exfilmon_binary().string(), "top", "--socket", sock, "--once", "--format", "json"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto r = run_program(argv);
        INFO(r.out << r.err);
        REQUIRE(r.status == 0);
        auto j = json::parse(r.out);
        REQUIRE(j["ok"] == true);
        if (pred(j) || std::chrono::steady_clock::now() > deadline)
            return j;
        std::this_thread::sleep_for(200ms);
    }
}

}  // namespace

TEST_CASE("exfilmon sees an HTTP/3 download over QUIC with its SNI ALPN JA4 and exact bytes",
          "[e2e][quic]")
{
    if (!require_root())
        return;
    const std::string host = "files.example.test";
    const std::string server_ip = "192.0.2.1", client_ip = "192.0.2.20";
    const size_t file_size = 300000;

    Lab lab;
    auto srv = lab.add_netns("srv"), cli = lab.add_netns("cli");
    auto veth = lab.add_veth(srv, cli);
    lab.add_addr(srv, veth.a, server_ip + "/24");
    lab.add_addr(cli, veth.b, client_ip + "/24");
    // Offloads off, UDP segmentation included: tcpdump sees wire packets,
    // an exact independent count.
    lab.set_offloads(srv, veth.a, false);
    lab.set_offloads(cli, veth.b, false);
    lab.run_ok(srv, {"ethtool", "-K", veth.a, "tx-udp-segmentation", "off"});
    lab.run_ok(cli, {"ethtool", "-K", veth.b, "tx-udp-segmentation", "off"});

    auto www = lab.dir() / "www";
    std::filesystem::create_directories(www);
    std::string content(file_size, '\0');
    std::mt19937_64 rng(3);
    for (auto &c : content)
        c = char(rng());
    std::ofstream(www / "big.bin", std::ios::binary) << content;
    auto pki = make_test_pki(lab, lab.dir() / "pki", {host});

    auto srv_log = lab.dir() / "gtlsserver.log";
    auto &server = lab.spawn(srv,
                             {"gtlsserver", "-q", "-d", www.string(), server_ip, "443",
                              pki.key.string(), pki.cert.string()},
                             {lab.dir(), srv_log});
    {
        auto deadline = std::chrono::steady_clock::now() + 15s;
        while (!udp_bound(srv, 443)) {
            INFO(slurp(srv_log));
            REQUIRE(server.running());
            REQUIRE(std::chrono::steady_clock::now() < deadline);
            std::this_thread::sleep_for(20ms);
        }
    }

    auto sock = (lab.dir() / "run" / "control.sock").string();
    auto cfg = lab.dir() / "x.toml";
    std::ofstream(cfg) << "[bpf]\npin = false\nflow_table_size = 4096\n"
                       << "[daemon]\nstate_dir = \"\"\nreport_interval = \"200ms\"\n"
                       << "[control]\nsocket = \"" << sock << "\"\n"
                       << "[metrics]\nenabled = false\n";
    auto cap = lab.start_capture(srv, veth.a, "srv", "udp", 2048);
    auto out = lab.dir() / "daemon.out";
    auto &daemon = lab.spawn(
        srv, {exfilmon_binary().string(), "run", "--config", cfg.string(), "--interface", veth.a},
        {lab.dir(), out});
    {
        INFO(slurp(out));
        REQUIRE(wait_for(out, "attached to " + veth.a, 30s));
        REQUIRE(wait_for(out, "control socket " + sock, 10s));
    }

    // The download: one request, the client exits once its stream closed.
    // gtlsclient (GnuTLS build) sends as SNI the <HOST> argument when it is
    // a name and "localhost" when it is an address (--sni is ignored), so
    // it gets the host name, resolved through an /etc/hosts bind-mounted
    // in its own mount namespace (the Lab gives every child a private one;
    // nothing outside it changes).
    auto hosts = lab.dir() / "hosts";
    std::ofstream(hosts) << server_ip << " " << host << "\n";
    auto dl = lab.dir() / "dl";
    std::filesystem::create_directories(dl);
    auto t0 = std::chrono::steady_clock::now();
    auto got =
        lab.run(cli,
                {"sh", "-c", "mount --bind \"$0\" /etc/hosts && exec \"$@\"", hosts.string(),
                 "gtlsclient", "--exit-on-all-streams-close", "--no-quic-dump", "--no-http-dump",
                 "--download=" + dl.string(), host, "443", "https://" + host + "/big.bin"},
                120s);
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0);
    {
        // The client exits 0 even when it cannot write the file: check it.
        INFO("gtlsclient (" << took.count() << " ms): " << got.output.substr(0, 4000)
                            << "\ngtlsserver: " << slurp(srv_log));
        REQUIRE(got.ok());
        CHECK(got.output.find("Negotiated ALPN is h3") != std::string::npos);
        REQUIRE(slurp(dl / "big.bin") == content);
    }
    std::this_thread::sleep_for(500ms);
    auto st = cap.stop();
    REQUIRE(st.complete());

    // Truth: one UDP flow client:port <-> server:443.
    auto caddr = *parse_addr(client_ip);
    auto truth = read_pcap(cap.pcap, {caddr}, 17);
    REQUIRE(truth.flows.size() == 1);
    const Tuple tuple = truth.flows.begin()->first;
    const FlowTruth flow = truth.flows.begin()->second;
    CHECK(tuple.sport == 443);
    CHECK(tuple.server == *parse_addr(server_ip));
    INFO("truth: bytes_in " << flow.in.bytes << " bytes_out " << flow.out.bytes << " pkts_in "
                            << flow.in.pkts << " pkts_out " << flow.out.pkts << " (client port "
                            << tuple.cport << ")");
    REQUIRE(flow.out.bytes >= file_size);

    // top by client: the QUIC flow's exact bytes once harvested.
    auto top = poll_top(
        sock, {"--kind", "client", "--window", "1h"},
        [&](const json &j) {
            return j["rows"].size() == 1 && j["rows"][0]["bytes_out"] == flow.out.bytes &&
                   j["rows"][0]["bytes_in"] == flow.in.bytes;
        },
        20s);
    {
        INFO("top --kind client: " << top.dump() << "\ndaemon: " << slurp(out));
        CHECK(top["kind"] == "client");
        REQUIRE(top["rows"].size() == 1);
        auto &row = top["rows"][0];
        CHECK(row["entity"] == client_ip);
        CHECK(row["bytes_out"] == flow.out.bytes);
        CHECK(row["bytes_in"] == flow.in.bytes);
        CHECK(row["tls_flows"] == 1);
        REQUIRE(row["top_snis"].size() >= 1);
        CHECK(row["top_snis"][0]["sni"] == host);
    }

    // top by SNI: the host name the client asked for, with the same bytes
    // (the SNI is known once userspace decrypted the client's Initial).
    auto sni = poll_top(
        sock, {"--kind", "sni", "--window", "1h"},
        [&](const json &j) {
            return j["rows"].size() == 1 && j["rows"][0]["bytes_out"] == flow.out.bytes;
        },
        20s);
    {
        INFO("top --kind sni: " << sni.dump() << "\ndaemon: " << slurp(out));
        REQUIRE(sni["rows"].size() == 1);
        auto &row = sni["rows"][0];
        CHECK(row["entity"] == host);
        CHECK(row["bytes_out"] == flow.out.bytes);
        CHECK(row["bytes_in"] == flow.in.bytes);
        CHECK(row["tls_flows"] == 1);
        CHECK(row["distinct_clients"] == 1);
    }

    auto s =
        run_program({exfilmon_binary().string(), "status", "--socket", sock, "--format", "json"});
    {
        INFO(s.out << s.err);
        REQUIRE(s.status == 0);
        auto status = json::parse(s.out);
        CHECK(status["health"]["quic_flows"] == 1);
    }
    CHECK(daemon.stop(SIGTERM, 10s) == 0);

    // replay of the same capture: the flow is QUIC, with SNI, ALPN and JA4
    // from the decrypted client Initial, and the same bytes.
    auto r = run_program(
        {exfilmon_binary().string(), "replay", cap.pcap.string(), "--flows", "--format", "json"});
    INFO("replay: " << r.out << r.err);
    REQUIRE(r.status == 0);
    std::vector<json> flows, clients;
    std::istringstream lines(r.out);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.empty())
            continue;
        auto j = json::parse(line);
        if (j["type"] == "flow")
            flows.push_back(j);
        else if (j["type"] == "client")
            clients.push_back(j);
    }
    REQUIRE(flows.size() == 1);
    auto &f = flows[0];
    CHECK(f["transport"] == "quic");
    CHECK(f["client"] == client_ip);
    CHECK(f["client_port"] == tuple.cport);
    CHECK(f["server"] == server_ip);
    CHECK(f["server_port"] == 443);
    CHECK(f["sni"] == host);
    REQUIRE(f["alpn"].is_array());
    bool h3 = false;
    for (auto &a : f["alpn"])
        h3 = h3 || a == "h3";
    CHECK(h3);
    CHECK(f["tls_version"] == "1.3");
    REQUIRE(f["ja4"].is_string());
    CHECK(f["ja4"].get<std::string>().rfind("q13", 0) == 0);
    CHECK(f["bytes_out"] == flow.out.bytes);
    CHECK(f["bytes_in"] == flow.in.bytes);
    CHECK(f["packets_out"] == flow.out.pkts);
    CHECK(f["packets_in"] == flow.in.pkts);
    REQUIRE(clients.size() == 1);
    CHECK(clients[0]["tls_flows"] == 1);
    CHECK(clients[0]["sni"] == json::array({host}));
}
