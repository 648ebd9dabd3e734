// SPDX-License-Identifier: Apache-2.0
// The exfilmon binary itself: `exfilmon run` attaches inside a namespace,
// reports real TLS clients, and on SIGTERM/SIGINT detaches only its own
// filters, leaving a clsact qdisc and filters it did not create in place.
#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "support/netns.h"
#include "support/proc.h"
#include "support/test_env.h"

using namespace exf::test;
using namespace std::chrono_literals;

namespace {

void run_daemon_scenario(bool foreign_qdisc, int stop_signal)
{
    Lab lab;
    auto srv = lab.add_netns("srv"), cli = lab.add_netns("cli");
    auto veth = lab.add_veth(srv, cli);
    lab.add_addr(srv, veth.a, "192.0.2.1/24");
    lab.add_addr(cli, veth.b, "192.0.2.50/24");
    if (foreign_qdisc) {
        lab.run_ok(srv, {"tc", "qdisc", "add", "dev", veth.a, "clsact"});
        // Another tool's filter: a tc BPF program (the only classifier this
        // kernel is sure to have).
        lab.run_ok(srv, {"tc", "filter", "add", "dev", veth.a, "ingress", "pref", "7", "bpf", "da",
                         "obj", EXF_EMPTY_BPF_OBJ, "sec", "tc"});
    }
    auto cert = (lab.dir() / "cert.pem").string(), key = (lab.dir() / "key.pem").string();
    lab.run_ok("", {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=exfilmon-test"});
    lab.spawn(
        srv,
        {"openssl", "s_server", "-accept", "192.0.2.1:443", "-cert", cert, "-key", key, "-www"},
        {lab.dir(), lab.dir() / "s_server.log"});
    lab.wait_listening(srv, 443);

    auto cfg = lab.dir() / "exfilmon.toml";
    std::ofstream(cfg) << "[daemon]\nstate_dir = \"\"\nreport_interval = \"200ms\"\n"
                       << "[bpf]\nflow_table_size = 4096\npin = false\n"
                       << "[control]\nsocket = \"" << (lab.dir() / "control.sock").string()
                       << "\"\n";
    auto out = lab.dir() / "exfilmon.out";
    // On a terminal: its periodic tables are what this test reads.
    auto &daemon = lab.spawn(
        srv, {exfilmon_binary().string(), "run", "--config", cfg.string(), "--interface", veth.a},
        {lab.dir(), out, true});
    REQUIRE(wait_for(out, "attached to " + veth.a, 20s));
    // A host name, so that curl sends it as SNI.
    for (int i = 0; i < 3; i++)
        lab.run_ok(cli, {"curl", "-sk", "--no-keepalive", "-o", "/dev/null", "--resolve",
                         "api.example.test:443:192.0.2.1", "https://api.example.test/"});
    // The per-client table shows the client with its 3 TLS flows, all closed.
    bool seen = false;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!seen && std::chrono::steady_clock::now() < deadline) {
        std::istringstream lines(slurp(out));
        std::string line;
        while (std::getline(lines, line)) {
            std::istringstream ls(line);
            std::string addr;
            unsigned long long flows = 0, closed = 0, bin = 0, bout = 0;
            if (ls >> addr >> flows >> closed >> bin >> bout && addr == "192.0.2.50" &&
                flows == 3 && closed == 3 && bin > 0 && bout > bin)
                seen = true;
        }
        std::this_thread::sleep_for(100ms);
    }
    INFO(slurp(out));
    CHECK(seen);
    // The ring buffer events reached the flow tracker: each connection's
    // ClientHello was reassembled and parsed.
    CHECK(wait_for(out, "ClientHellos parsed 3, bad events 0", 5s));

    int status = daemon.stop(stop_signal, 10s);
    CHECK(status == 0);
    // The API host (SNI) table after the last harvest: all three flows and
    // all the client's bytes belong to api.example.test.
    unsigned long long c_in = 0, c_out = 0, h_out = 0, h_in = 0, h_flows = 0, h_clients = 0;
    {
        std::istringstream lines(slurp(out));
        std::string line;
        while (std::getline(lines, line)) {
            std::istringstream ls(line);
            std::string name;
            unsigned long long a = 0, b = 0, c = 0, d = 0, e = 0;
            if (!(ls >> name >> a >> b >> c >> d))
                continue;
            if (name == "192.0.2.50" && ls >> e) {
                c_in = c;
                c_out = d;
            } else if (name == "api.example.test") {
                h_out = a;
                h_in = b;
                h_flows = c;
                h_clients = d;
            }
        }
    }
    CHECK(h_flows == 3);
    CHECK(h_clients == 1);
    CHECK(h_out == c_out);
    CHECK(h_in == c_in);
    CHECK(c_out > 0);

    CHECK(slurp(out).find("detached from " + veth.a) != std::string::npos);
    auto ingress = lab.run_ok(srv, {"tc", "filter", "show", "dev", veth.a, "ingress"});
    auto egress = lab.run_ok(srv, {"tc", "filter", "show", "dev", veth.a, "egress"});
    auto qdisc = lab.run_ok(srv, {"tc", "qdisc", "show", "dev", veth.a});
    CHECK(ingress.find("exf_tc") == std::string::npos);
    CHECK(egress.find("exf_tc") == std::string::npos);
    if (foreign_qdisc) {
        CHECK(qdisc.find("clsact") != std::string::npos);
        CHECK(ingress.find("exf_empty.bpf.o") != std::string::npos);
    } else {
        CHECK(qdisc.find("clsact") == std::string::npos);
    }
}

}  // namespace

TEST_CASE("exfilmon run reports clients and detaches cleanly on SIGTERM", "[e2e][sanitize][daemon]")
{
    if (!require_root())
        return;
    run_daemon_scenario(false, SIGTERM);
}

TEST_CASE("exfilmon run keeps a clsact qdisc and filters it did not create", "[e2e][daemon]")
{
    if (!require_root())
        return;
    run_daemon_scenario(true, SIGINT);
}

// The periodic client and API host tables are for a person at a terminal: a
// pipe (or file) and systemd's journal never get them, "0s" turns them off,
// and each one starts with the time it was taken.
TEST_CASE("exfilmon run prints its periodic report only on a terminal, timestamped",
          "[e2e][sanitize][daemon]")
{
    if (!require_root())
        return;
    Lab lab;
    auto srv = lab.add_netns("srv"), cli = lab.add_netns("cli");
    auto veth = lab.add_veth(srv, cli);
    auto config = [&](const std::string &interval) {
        auto cfg = lab.dir() / ("report-" + interval + ".toml");
        std::ofstream(cfg) << "[daemon]\nstate_dir = \"\"\nreport_interval = \"" << interval
                           << "\"\n[bpf]\nflow_table_size = 4096\npin = false\n"
                           << "[control]\nsocket = \""
                           << (lab.dir() / (interval + ".sock")).string() << "\"\n";
        return cfg.string();
    };
    const std::vector<std::string> run = {exfilmon_binary().string(), "run", "--interface", veth.a,
                                          "--config"};
    auto with = [](std::vector<std::string> a, const std::vector<std::string> &b) {
        a.insert(a.end(), b.begin(), b.end());
        return a;
    };
    // About a second of a daemon on a terminal (SpawnOptions::terminal).
    int runs = 0;
    auto on_terminal = [&](const std::vector<std::string> &argv) {
        auto out = lab.dir() / ("terminal-" + std::to_string(++runs) + ".out");
        auto &d = lab.spawn(srv, argv, {lab.dir(), out, true});
        REQUIRE(wait_for(out, "attached to " + veth.a, 20s));
        std::this_thread::sleep_for(1s);
        CHECK(d.stop(SIGTERM, 10s) == 0);
        return slurp(out);
    };
    const std::string report = "clients; packets ";  // each report's summary line
    auto count = [](const std::string &text, const std::string &needle) {
        size_t n = 0;
        for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
            n++;
        return n;
    };

    // Stdout a pipe: no report.
    auto piped =
        lab.run(srv, with({"timeout", "-s", "TERM", "4"}, with(run, {config("200ms")})), 30s);
    INFO("pipe: " << piped.output);
    CHECK(piped.output.find("attached to " + veth.a) != std::string::npos);
    CHECK(piped.output.find("detached from " + veth.a) != std::string::npos);
    CHECK(count(piped.output, report) == 0);

    // A terminal: reports, each under a "== TIME ==" line.
    auto tty = on_terminal(with(run, {config("200ms")}));
    INFO("terminal: " << tty);
    CHECK(count(tty, report) >= 3);
    std::regex stamp(R"(== \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} ==)");
    auto stamps =
        std::distance(std::sregex_iterator(tty.begin(), tty.end(), stamp), std::sregex_iterator());
    CHECK(size_t(stamps) == count(tty, report));
    CHECK(tty.find("== ") < tty.find(report));

    // A terminal under systemd (either variable), and "0s": no report.
    for (auto *var : {"INVOCATION_ID=5b4c1d0e2f3a4b5c6d7e8f9a0b1c2d3e", "JOURNAL_STREAM=8:12345"}) {
        auto systemd = on_terminal(with({"/usr/bin/env", var}, with(run, {config("200ms")})));
        INFO(var << ": " << systemd);
        CHECK(count(systemd, report) == 0);
    }
    auto off = on_terminal(with(run, {config("0s")}));
    INFO("0s: " << off);
    CHECK(count(off, report) == 0);
}
