// SPDX-License-Identifier: Apache-2.0
// The daemon end to end with several real clients and API hosts: six client
// addresses (IPv4 and IPv6) download from a real TLS server under two host
// names (SNI). The per-client table and the per-API-host table of
// `exfilmon run` must equal the ground truth exactly: tcpdump's count of the
// same packets, each flow assigned to the API host its curl asked for
// (curl reports its local port, which names the flow).
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "common/addr.h"
#include "support/netns.h"
#include "support/pcap_truth.h"
#include "support/proc.h"
#include "support/test_env.h"

using namespace exf;
using namespace exf::test;
using namespace std::chrono_literals;

namespace {

struct Totals {
    unsigned long long flows = 0, bytes_in = 0, bytes_out = 0, pkts_in = 0, pkts_out = 0;
    std::set<std::string> clients;
};

}  // namespace

TEST_CASE("exfilmon run per-client and per-API-host totals equal ground truth", "[e2e][daemon]")
{
    if (!require_root())
        return;
    Lab lab;
    auto srv = lab.add_netns("srv"), cli = lab.add_netns("cli");
    auto veth = lab.add_veth(srv, cli);
    lab.add_addr(srv, veth.a, "192.0.2.1/24");
    lab.add_addr(srv, veth.a, "2001:db8:7::1/64");
    const std::vector<std::string> clients = {"192.0.2.10", "192.0.2.11",     "192.0.2.12",
                                              "192.0.2.13", "2001:db8:7::10", "2001:db8:7::11"};
    for (auto &c : clients)
        lab.add_addr(cli, veth.b, c + (c.find(':') == std::string::npos ? "/24" : "/64"));
    // Offloads off: tcpdump sees wire packets, an exact independent count.
    lab.set_offloads(srv, veth.a, false);
    lab.set_offloads(cli, veth.b, false);

    auto www = lab.dir() / "www";
    std::filesystem::create_directories(www);
    std::mt19937_64 rng(11);
    for (auto [name, size] : {std::pair{"small.json", 2000}, {"big.bin", 600000}}) {
        std::ofstream f(www / name, std::ios::binary);
        for (int i = 0; i < size; i++)
            f.put(char(rng()));
    }
    auto cert = (lab.dir() / "cert.pem").string(), key = (lab.dir() / "key.pem").string();
    lab.run_ok("", {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=exfilmon-test"});
    lab.spawn(srv, {"openssl", "s_server", "-accept", "443", "-cert", cert, "-key", key, "-WWW"},
              {www, lab.dir() / "s_server.log"});
    lab.wait_listening(srv, 443);

    auto cfg = lab.dir() / "exfilmon.toml";
    std::ofstream(cfg) << "[bpf]\npin = false\nflow_table_size = 4096\n[daemon]\n"
                          "state_dir = \"\"\nreport_interval = \"200ms\"\n"
                       << "[control]\nsocket = \"" << (lab.dir() / "control.sock").string()
                       << "\"\n";
    auto cap = lab.start_capture(srv, veth.a, "srv", "tcp", 128);
    auto out = lab.dir() / "daemon.out";
    // On a terminal: its periodic tables are what this test reads.
    auto &daemon = lab.spawn(
        srv, {exfilmon_binary().string(), "run", "--config", cfg.string(), "--interface", veth.a},
        {lab.dir(), out, true});
    REQUIRE(wait_for(out, "attached to " + veth.a, 20s));

    // Each client: a few small API calls on api.example.test and some large
    // downloads on files.example.test; curl prints its local port.
    std::map<std::pair<std::string, uint16_t>, std::string> sni_of_flow;
    for (size_t i = 0; i < clients.size(); i++) {
        bool v6 = clients[i].find(':') != std::string::npos;
        std::string server = v6 ? "[2001:db8:7::1]" : "192.0.2.1";
        std::string server_raw = v6 ? "2001:db8:7::1" : "192.0.2.1";
        for (size_t j = 0; j < 2 + i % 3; j++) {
            bool big = j % 2 == 1;
            std::string host = big ? "files.example.test" : "api.example.test";
            auto port_text = lab.run_ok(
                cli, {"curl", "-sk", "--no-keepalive", "-o", "/dev/null", "--interface", clients[i],
                      "--resolve", host + ":443:" + server_raw, "-w", "%{local_port}",
                      "https://" + host + (big ? "/big.bin" : "/small.json")});
            sni_of_flow[{clients[i], uint16_t(std::stoi(port_text))}] = host;
        }
    }
    std::this_thread::sleep_for(500ms);
    auto st = cap.stop();
    REQUIRE(st.complete());
    REQUIRE(daemon.stop(SIGTERM, 10s) == 0);

    std::set<Addr16> client_addrs;
    for (auto &c : clients)
        client_addrs.insert(*parse_addr(c));
    auto truth = read_pcap(cap.pcap, client_addrs);
    REQUIRE(truth.flows.size() == sni_of_flow.size());
    std::map<std::string, Totals> per_client, per_host;
    for (auto &[t, f] : truth.flows) {
        auto c = format_addr(t.client);
        auto it = sni_of_flow.find({c, t.cport});
        REQUIRE(it != sni_of_flow.end());
        for (auto *tot : {&per_client[c], &per_host[it->second]}) {
            tot->flows++;
            tot->bytes_in += f.in.bytes;
            tot->bytes_out += f.out.bytes;
            tot->pkts_in += f.in.pkts;
            tot->pkts_out += f.out.pkts;
            // Client entities: an IPv6 client is its /64 (the default
            // client_prefix_v6): both IPv6 addresses here are one client.
            tot->clients.insert(c.find(':') == std::string::npos ? c : "2001:db8:7::/64");
        }
    }

    // The daemon's last tables (rows of later reports replace earlier ones).
    std::map<std::string, std::vector<unsigned long long>> rows;
    std::istringstream lines(slurp(out));
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream ls(line);
        std::string name;
        std::vector<unsigned long long> v;
        unsigned long long x;
        if (!(ls >> name))
            continue;
        while (ls >> x)
            v.push_back(x);
        if (v.size() >= 4)
            rows[name] = v;
    }
    INFO(slurp(out));
    for (auto &[c, t] : per_client) {
        INFO("client " << c);
        REQUIRE(rows.count(c));
        auto &r = rows[c];  // flows closed bytes_in bytes_out pkts_in pkts_out requests
        REQUIRE(r.size() == 7);
        CHECK(r[0] == t.flows);
        CHECK(r[1] == t.flows);
        CHECK(r[2] == t.bytes_in);
        CHECK(r[3] == t.bytes_out);
        CHECK(r[4] == t.pkts_in);
        CHECK(r[5] == t.pkts_out);
    }
    for (auto &[h, t] : per_host) {
        INFO("API host " << h);
        REQUIRE(rows.count(h));
        auto &r = rows[h];  // bytes_out bytes_in tls_flows clients
        CHECK(r[0] == t.bytes_out);
        CHECK(r[1] == t.bytes_in);
        CHECK(r[2] == t.flows);
        CHECK(r[3] == t.clients.size());  // distinct clients
    }
    CHECK(per_host.size() == 2);
    CHECK(per_client.size() == clients.size());
}
