// The exfilmon binary itself: `exfilmon run` attaches inside a namespace,
// reports real TLS clients, and on SIGTERM/SIGINT detaches only its own
// filters, leaving a clsact qdisc and filters it did not create in place.
#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
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
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days",
                    "2", "-subj", "/CN=exfilmon-test"});
    lab.spawn(srv, {"openssl", "s_server", "-accept", "192.0.2.1:443", "-cert", cert, "-key", key,
                    "-www"},
              {lab.dir(), lab.dir() / "s_server.log"});
    lab.wait_listening(srv, 443);

    auto cfg = lab.dir() / "exfilmon.toml";
    std::ofstream(cfg) << "[daemon]\nreport_interval = \"200ms\"\n[bpf]\nflow_table_size = 4096\n"
                       << "pin = false\n";
    auto out = lab.dir() / "exfilmon.out";
    auto &daemon = lab.spawn(srv, {exfilmon_binary().string(), "run", "--config", cfg.string(),
                                   "--interface", veth.a},
                             {lab.dir(), out});
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

TEST_CASE("exfilmon run reports clients and detaches cleanly on SIGTERM", "[e2e][daemon]")
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
