// SPDX-License-Identifier: Apache-2.0
// An interface that disappears while attached, and comes back: the daemon
// logs it, keeps counting on the other interface, and attaches again when the
// configured interface returns (same name, new ifindex). All of it after the
// daemon dropped every capability but CAP_BPF and CAP_NET_ADMIN.
#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/netns.h"
#include "support/proc.h"
#include "support/test_env.h"

using namespace exf::test;
using namespace std::chrono_literals;
using nlohmann::json;

TEST_CASE("An interface that disappears and returns is attached again with least privilege",
          "[e2e][sanitize][daemon][interfaces]")
{
    if (!require_root())
        return;
    Lab lab;
    auto srv = lab.add_netns("srv"), cli = lab.add_netns("cli");
    auto v1 = lab.add_veth(srv, cli), v2 = lab.add_veth(srv, cli);
    lab.add_addr(srv, v1.a, "192.0.2.1/24");
    lab.add_addr(cli, v1.b, "192.0.2.10/24");
    auto setup_v2 = [&] {
        lab.add_addr(srv, v2.a, "198.51.100.1/24");
        lab.add_addr(cli, v2.b, "198.51.100.10/24");
    };
    setup_v2();

    auto www = lab.dir() / "www";
    std::filesystem::create_directories(www);
    {
        std::ofstream f(www / "data.bin", std::ios::binary);
        std::mt19937_64 rng(5);
        for (int i = 0; i < 50000; i++)
            f.put(char(rng()));
    }
    auto cert = (lab.dir() / "cert.pem").string(), key = (lab.dir() / "key.pem").string();
    lab.run_ok("", {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=exfilmon-test"});
    lab.spawn(srv, {"openssl", "s_server", "-accept", "443", "-cert", cert, "-key", key, "-WWW"},
              {www, lab.dir() / "s_server.log"});
    lab.wait_listening(srv, 443);

    auto sock = (lab.dir() / "control.sock").string();
    auto cfg = lab.dir() / "exfilmon.toml";
    std::ofstream(cfg) << "[bpf]\npin = false\nflow_table_size = 4096\n[daemon]\nstate_dir = \"\"\n"
                          "report_interval = \"1h\"\nharvest_interval = \"200ms\"\n"
                          "[control]\nsocket = \""
                       << sock << "\"\n[metrics]\nlisten = \"127.0.0.1:9464\"\n"
                       << "[[outputs]]\ntype = \"json\"\npath = \""
                       << (lab.dir() / "alerts.jsonl").string() << "\"\n";
    auto out = lab.dir() / "daemon.out";
    auto &daemon = lab.spawn(srv,
                             {exfilmon_binary().string(), "run", "--config", cfg.string(),
                              "--interface", v1.a, "--interface", v2.a},
                             {lab.dir(), out});
    REQUIRE(wait_for(out, "attached to " + v2.a, 20s));
    // Least privilege: once attached only CAP_BPF and CAP_NET_ADMIN remain
    // (effective, permitted, bounding set); re-attaching and counting below
    // run on just those.
    REQUIRE(wait_for(out, "capabilities dropped", 10s));
    // Every thread: the ring buffer reader, the output and the metrics
    // server threads too (capset acts on one thread only).
    check_least_privilege(daemon.pid(), 4, "0000008000001000");  // CAP_BPF (39), CAP_NET_ADMIN (12)

    auto fetch = [&](const std::string &from, const std::string &to) {
        lab.run_ok(cli, {"curl", "-sk", "--no-keepalive", "-o", "/dev/null", "--interface", from,
                         "https://" + to + "/data.bin"});
    };
    // TLS flows per client, as `exfilmon top` reports them once harvested.
    std::string last_top;
    auto flows_of = [&](const std::string &client) -> uint64_t {
        auto r = run_program({exfilmon_binary().string(), "top", "--socket", sock, "--once",
                              "--format", "json", "--window", "1h"});
        last_top = r.out + r.err;
        REQUIRE(r.status == 0);
        auto top = json::parse(r.out);
        for (auto &row : top["rows"])
            if (row["entity"] == client)
                return row["tls_flows"].get<uint64_t>();
        return 0;
    };
    auto wait_flows = [&](const std::string &client, uint64_t n) {
        for (auto until = std::chrono::steady_clock::now() + 15s;
             std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(200ms))
            if (flows_of(client) == n)
                return true;
        return false;
    };

    fetch("192.0.2.10", "192.0.2.1");
    fetch("198.51.100.10", "198.51.100.1");
    INFO(slurp(out));
    if (!wait_flows("192.0.2.10", 1) || !wait_flows("198.51.100.10", 1))
        FAIL("top: " << last_top);

    // The second interface goes away: logged; the first keeps counting.
    lab.run_ok(srv, {"ip", "link", "del", v2.a});
    REQUIRE(wait_for(out, "interface " + v2.a, 10s));
    CHECK(slurp(out).find("disappeared") != std::string::npos);
    fetch("192.0.2.10", "192.0.2.1");
    if (!wait_flows("192.0.2.10", 2))
        FAIL_CHECK("top: " << last_top);

    // It comes back under the same name: attached again, counted again.
    lab.run_ok(srv,
               {"ip", "link", "add", v2.a, "type", "veth", "peer", "name", v2.b, "netns", cli});
    lab.run_ok(srv, {"ip", "link", "set", v2.a, "up"});
    lab.run_ok(cli, {"ip", "link", "set", v2.b, "up"});
    setup_v2();
    REQUIRE(wait_for(out, "interface " + v2.a + " is back", 10s));
    lab.wait_listening(srv, 443);
    fetch("198.51.100.10", "198.51.100.1");
    if (!wait_flows("198.51.100.10", 2))
        FAIL_CHECK(
            "top: " << last_top << "\ndaemon: " << slurp(out) << "\nstatus: "
                    << run_program({exfilmon_binary().string(), "status", "--socket", sock}).out);
    CHECK(daemon.stop(SIGTERM, 10s) == 0);
}
