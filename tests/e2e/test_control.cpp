// SPDX-License-Identifier: Apache-2.0
// The live view and the metrics against a running daemon: `exfilmon run` in a
// lab namespace with its control socket and metrics listener in the lab
// (unique per test), real TLS traffic, then `exfilmon status` and `exfilmon
// top --once --format json` must name the interface and report the client
// with exactly the bytes tcpdump counted; /metrics (fetched with curl inside
// the namespace) must carry the same figures; and a user other than root
// must be refused by the 0600 socket.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <fstream>
#include <regex>
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

// The value of one sample line "NAME{LABELS} VALUE" (or "NAME VALUE"); -1
// when absent.
double metric(const std::string &text, const std::string &series)
{
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line))
        if (line.rfind(series + " ", 0) == 0)
            return std::stod(line.substr(series.size() + 1));
    return -1;
}

}  // namespace

TEST_CASE("exfilmon status and top report the interface the client bytes and the metrics",
          "[e2e][sanitize][control]")
{
    if (!require_root())
        return;
    Lab lab;
    auto srv = lab.add_netns("srv"), cli = lab.add_netns("cli");
    auto veth = lab.add_veth(srv, cli);
    lab.add_addr(srv, veth.a, "192.0.2.1/24");
    lab.add_addr(cli, veth.b, "192.0.2.50/24");
    // Offloads off: tcpdump sees wire packets, an exact independent count.
    lab.set_offloads(srv, veth.a, false);
    lab.set_offloads(cli, veth.b, false);
    auto cert = (lab.dir() / "cert.pem").string(), key = (lab.dir() / "key.pem").string();
    lab.run_ok("", {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=exfilmon-test"});
    lab.spawn(
        srv,
        {"openssl", "s_server", "-accept", "192.0.2.1:443", "-cert", cert, "-key", key, "-www"},
        {lab.dir(), lab.dir() / "s_server.log"});
    lab.wait_listening(srv, 443);

    auto sock = (lab.dir() / "run" / "control.sock").string();
    uint16_t port = free_tcp_port(srv, "127.0.0.1");
    auto cfg = lab.dir() / "exfilmon.toml";
    std::ofstream(cfg) << "[bpf]\npin = false\nflow_table_size = 4096\n"
                       << "[daemon]\nstate_dir = \"\"\nreport_interval = \"200ms\"\n"
                       << "[control]\nsocket = \"" << sock << "\"\n"
                       << "[metrics]\nlisten = \"127.0.0.1:" << port << "\"\n";
    auto cap = lab.start_capture(srv, veth.a, "srv", "tcp", 128);
    auto out = lab.dir() / "daemon.out";
    auto &daemon = lab.spawn(
        srv, {exfilmon_binary().string(), "run", "--config", cfg.string(), "--interface", veth.a},
        {lab.dir(), out});
    REQUIRE(wait_for(out, "attached to " + veth.a, 20s));
    REQUIRE(wait_for(out, "control socket " + sock, 5s));

    for (int i = 0; i < 3; i++)
        lab.run_ok(cli, {"curl", "-sk", "--no-keepalive", "-o", "/dev/null", "--resolve",
                         "api.example.test:443:192.0.2.1", "https://api.example.test/"});
    std::this_thread::sleep_for(500ms);
    auto st = cap.stop();
    REQUIRE(st.complete());
    auto truth = read_pcap(cap.pcap, {*parse_addr("192.0.2.50")});
    REQUIRE(truth.flows.size() == 3);
    uint64_t bytes_in = 0, bytes_out = 0;
    for (auto &[t, f] : truth.flows) {
        bytes_in += f.in.bytes;
        bytes_out += f.out.bytes;
    }

    auto bin = exfilmon_binary().string();
    // top: the client with its exact bytes once the last harvest took them in.
    json row;
    std::string last_top;
    auto deadline = std::chrono::steady_clock::now() + 15s;
    for (;;) {
        auto r = run_program({bin, "top", "--socket", sock, "--once", "--format", "json"});
        last_top = r.out + r.err;
        INFO(last_top);
        REQUIRE(r.status == 0);
        auto top = json::parse(r.out);
        REQUIRE(top["ok"] == true);
        CHECK(top["kind"] == "client");
        CHECK(top["window"] == "10m");
        if (top["rows"].size() == 1 && top["rows"][0]["bytes_out"] == bytes_out)
            row = top["rows"][0];
        if (!row.is_null() || std::chrono::steady_clock::now() > deadline)
            break;
        std::this_thread::sleep_for(200ms);
    }
    INFO(slurp(out));
    INFO("truth: bytes_in " << bytes_in << " bytes_out " << bytes_out
                            << "; last top: " << last_top);
    REQUIRE_FALSE(row.is_null());
    CHECK(row["entity"] == "192.0.2.50");
    CHECK(row["bytes_out"] == bytes_out);
    CHECK(row["bytes_in"] == bytes_in);
    CHECK(row["tls_flows"] == 3);
    CHECK(row["alert"] == false);
    CHECK(row["top_snis"][0]["sni"] == "api.example.test");
    auto sni = run_program({bin, "top", "--socket", sock, "--once", "--format", "json", "--kind",
                            "sni", "--window", "1h", "--sort", "tls_flows", "-n", "5"});
    REQUIRE(sni.status == 0);
    auto sj = json::parse(sni.out);
    REQUIRE(sj["rows"].size() == 1);
    CHECK(sj["rows"][0]["entity"] == "api.example.test");
    CHECK(sj["rows"][0]["bytes_out"] == bytes_out);
    CHECK(sj["rows"][0]["distinct_clients"] == 1);
    // The fingerprint cohort of curl's three flows, and its x API host.
    for (const char *kind : {"ja4", "ja4_sni"}) {
        auto fp = run_program({bin, "top", "--socket", sock, "--once", "--format", "json", "--kind",
                               kind, "--window", "1h", "--sort", "distinct_subnets"});
        INFO(kind << ": " << fp.out << fp.err);
        REQUIRE(fp.status == 0);
        auto fj = json::parse(fp.out);
        CHECK(fj["kind"] == kind);
        REQUIRE(fj["rows"].size() == 1);
        const auto &fr = fj["rows"][0];
        CHECK(fr["entity"].get<std::string>().rfind("t13", 0) == 0);  // TCP, TLS 1.3
        CHECK(fr["bytes_out"] == bytes_out);
        CHECK(fr["tls_flows"] == 3);
        CHECK(fr["distinct_clients"] == 1);
        CHECK(fr["distinct_subnets"] == 1);
        REQUIRE(fr["top_clients"].size() == 1);
        CHECK(fr["top_clients"][0]["client"] == "192.0.2.50");
        CHECK(fr["top_clients"][0]["tls_flows"] == 3);
    }
    auto table = run_program({bin, "top", "--socket", sock, "--once"});
    CHECK(table.status == 0);
    CHECK(table.out.find("192.0.2.50") != std::string::npos);

    // status: the interface, the maps, the counters. A full read of the
    // tables that overlapped the client's creation may count it twice until
    // the next read of quiet tables (capture/changes.h), a harvest later.
    json status;
    deadline = std::chrono::steady_clock::now() + 5s;
    for (;;) {
        auto s = run_program({bin, "status", "--socket", sock, "--format", "json"});
        INFO(s.out << s.err);
        REQUIRE(s.status == 0);
        status = json::parse(s.out);
        if (status["maps"]["clients"]["entries"] == 1 ||
            std::chrono::steady_clock::now() > deadline)
            break;
        std::this_thread::sleep_for(200ms);
    }
    INFO(status.dump());
    REQUIRE(status["interfaces"].size() == 1);
    CHECK(status["interfaces"][0]["name"] == veth.a);
    auto ifindex = lab.run_ok(srv, {"cat", "/sys/class/net/" + veth.a + "/ifindex"});
    CHECK(status["interfaces"][0]["ifindex"] == std::stoul(ifindex));
    CHECK(status["backend"] == "ebpf");
    CHECK(status["config"] == cfg.string());
    CHECK(status["pid"] == daemon.pid());
    CHECK(status["health"]["tls_flows"] == 3);
    CHECK(status["health"]["packets"].get<uint64_t>() >= st.captured);
    CHECK(status["maps"]["clients"]["entries"] == 1);
    CHECK(status["maps"]["clients"]["capacity"] == 131072);
    CHECK(status["maps"]["flows"]["capacity"] == 4096);
    CHECK(status["events"]["queue_dropped"] == 0);
    CHECK(status["aggregate"]["kinds"]["client"]["entities"] == 1);
    CHECK(status["aggregate"]["kinds"]["ja4"]["entities"] == 1);
    CHECK(status["aggregate"]["kinds"]["ja4_sni"]["entities"] == 1);
    CHECK(status["aggregate"]["kinds"]["ja4"]["evictions"] == 0);
    CHECK(status["aggregate"]["memberships"]["entries"].get<uint64_t>() >= 1);
    CHECK(status["alerts"].empty());
    CHECK(status["outputs"].size() == 1);  // the default: syslog on /dev/log
    auto human = run_program({bin, "status", "--socket", sock});
    CHECK(human.status == 0);
    CHECK(human.out.find("attached:    " + veth.a) != std::string::npos);

    // A reload, counted in the metrics.
    kill(daemon.pid(), SIGHUP);
    REQUIRE(wait_for(out, "SIGHUP: configuration reloaded", 5s));

    // /metrics from inside the daemon's namespace.
    std::string text;
    deadline = std::chrono::steady_clock::now() + 10s;
    do {
        std::this_thread::sleep_for(300ms);
        text = lab.run_ok(srv,
                          {"curl", "-sf", "http://127.0.0.1:" + std::to_string(port) + "/metrics"});
    } while (metric(text, "exfilmon_config_reloads_total{result=\"ok\"}") != 1 &&
             std::chrono::steady_clock::now() < deadline);
    INFO(text);
    CHECK(metric(text, "exfilmon_build_info{version=\"" EXFILMON_VERSION "\"}") == 1);
    CHECK(metric(text, "exfilmon_config_reloads_total{result=\"ok\"}") == 1);
    CHECK(metric(text, "exfilmon_packets_total") >= double(st.captured));
    CHECK(metric(text, "exfilmon_datapath_events_total{counter=\"tls_flows\"}") == 3);
    CHECK(metric(text, "exfilmon_map_entries{map=\"clients\"}") == 1);
    CHECK(metric(text, "exfilmon_map_capacity{map=\"flows\"}") == 4096);
    CHECK(metric(text, "exfilmon_aggregate_entities{kind=\"client\"}") == 1);
    CHECK(metric(text, "exfilmon_event_queue_drops_total") == 0);
    CHECK(metric(text, "exfilmon_harvests_total") >= 1);
    CHECK(metric(text, "exfilmon_detect_evaluations_total") >= 1);
    CHECK(metric(text, "exfilmon_alerts_open") == 0);
    CHECK(metric(text, "exfilmon_output_dropped_total{output=\"0\",type=\"syslog_unix\"}") >= 0);
    CHECK(metric(text, "exfilmon_start_time_seconds") > 1.7e9);
    CHECK(text.find("192.0.2.50") == std::string::npos);  // no per-client series

    // The socket is root's: another user is refused, and told why.
    struct stat sb {};
    REQUIRE(stat(sock.c_str(), &sb) == 0);
    CHECK((sb.st_mode & 0777) == 0600);
    chmod(lab.dir().c_str(), 0711);  // the path is traversable: only the socket's mode stops it
    auto denied = lab.run("", {"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                               bin, "status", "--socket", sock});
    INFO(denied.output);
    CHECK(denied.status == 1);
    CHECK(denied.output.find("Permission denied") != std::string::npos);
    CHECK(denied.output.find("run as root") != std::string::npos);
    // And with no daemon there: exit 1, naming the likely causes.
    auto none = run_program({bin, "status", "--socket", (lab.dir() / "nothing.sock").string()});
    CHECK(none.status == 1);
    CHECK(none.err.find("is exfilmon running?") != std::string::npos);

    REQUIRE(daemon.stop(SIGTERM, 10s) == 0);
    CHECK_FALSE(std::filesystem::exists(sock));
}
