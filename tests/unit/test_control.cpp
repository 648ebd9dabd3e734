// SPDX-License-Identifier: Apache-2.0
// The live view's building blocks: the status and top JSON built from a real
// aggregator and detector, request handling and its errors, the table views'
// sanitizing, the Prometheus text rendering, and the control socket itself
// (mode, one request per connection, limits, stale and live socket files).
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "aggregate/aggregator.h"
#include "common/addr.h"
#include "common/text.h"
#include "control/client.h"
#include "control/control_server.h"
#include "control/snapshot.h"
#include "detect/detector.h"
#include "flows/flow_tracker.h"
#include "support/proc.h"
#include "support/test_env.h"

using namespace exf;
using namespace exf::control;
using nlohmann::json;

namespace {

constexpr uint64_t kMin = 60'000;
constexpr uint64_t kWall = 1'800'000'000'000ull;

// An aggregator with two clients, a detector whose rule fired for one of
// them, no outputs.
struct Fixture {
    SensorState state;
    agg::Aggregator agg;
    detect::Detector det;
    FlowTracker tracker;
    std::vector<std::unique_ptr<output::Output>> outputs;
    uint64_t now = 5 * kMin;

    static agg::AggConfig agg_config()
    {
        agg::AggConfig c;
        c.windows_ms = {kMin, 10 * kMin};
        return c;
    }
    static detect::DetectConfig det_config()
    {
        detect::Rule r;
        r.name = "bulk";
        r.entity = agg::EntityKind::client;
        r.metric = detect::Metric::bytes_out;
        r.window_ms = 10 * kMin;
        r.threshold = 10000;
        r.severity = detect::Severity::critical;
        detect::DetectConfig c;
        c.rules = {r};
        c.host_name = "sensor-1";
        return c;
    }
    Fixture() : agg(agg_config()), det(det_config())
    {
        state.backend = "ebpf";
        state.config_path = "/etc/exfilmon/exfilmon.toml";
        state.interfaces = {{"eth0", 2, kWall}};
        state.start_wall_ms = kWall;
        state.flow_entries = 3;
        state.flow_capacity = 4096;
        state.flow_evictions = 11;
        state.client_evictions = 6;
        state.client_entries = 2;
        state.client_capacity = 1024;
        state.health[EXF_C_PACKETS] = 1234;
        state.health[EXF_C_RB_FULL] = 7;
        state.events_dropped = 5;
        state.events_waited = 9;
        state.events_harvest_drained = 13;
        state.harvest_drain_full = 1;
        agg.add_traffic(kMin, *parse_addr("192.0.2.10"), "api.example.com",
                        {500, 50000, 10, 40, 2, 3});
        agg.add_traffic(2 * kMin, *parse_addr("192.0.2.11"), "evil\x1b[2J\xff.example.com",
                        {300, 2000, 5, 6, 1, 17});
        det.evaluate(agg, now, kWall + now);
    }
    DaemonView view() { return {state, agg, det, tracker, outputs, now, kWall + now}; }
};

json ask(Fixture &f, const std::string &line)
{
    return json::parse(handle_request(line, f.view()));
}

// A client connection made by hand: sends `data`, reads until EOF.
std::string raw_exchange(const std::string &path, const std::string &data)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    REQUIRE(connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)) == 0);
    send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    shutdown(fd, SHUT_WR);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
        out.append(buf, size_t(n));
    close(fd);
    return out;
}

// Serves srv on this thread until fn (run on another thread) returns.
template <typename F>
auto serving(ControlServer &srv, Fixture &f, F fn)
{
    std::atomic<bool> done{false};
    decltype(fn()) result;
    std::thread t([&] {
        result = fn();
        done = true;
    });
    auto handler = [&](std::string_view line) { return handle_request(line, f.view()); };
    while (!done)
        srv.serve(std::chrono::milliseconds(10), handler);
    t.join();
    return result;
}

}  // namespace

TEST_CASE("status reports the sensor aggregator detector and open alerts", "[control]")
{
    Fixture f;
    auto s = ask(f, R"({"cmd":"status"})");
    REQUIRE(s["ok"] == true);
    CHECK(s["version"] == EXFILMON_VERSION);
    CHECK(s["backend"] == "ebpf");
    CHECK(s["config"] == "/etc/exfilmon/exfilmon.toml");
    CHECK(s["started_ms"] == kWall);
    CHECK(s["uptime_s"] == 300);
    REQUIRE(s["interfaces"].size() == 1);
    CHECK(s["interfaces"][0] == json({{"name", "eth0"}, {"ifindex", 2}, {"since_ms", kWall}}));
    CHECK(s["maps"]["flows"] == json({{"entries", 3}, {"capacity", 4096}, {"evictions", 11}}));
    CHECK(s["maps"]["clients"] == json({{"entries", 2}, {"capacity", 1024}, {"evictions", 6}}));
    CHECK(s["health"]["packets"] == 1234);
    CHECK(s["health"].size() == EXF_C__MAX);
    CHECK(s["events"]["ringbuf_full"] == 7);
    CHECK(s["events"]["queue_dropped"] == 5);
    CHECK(s["events"]["queue_waited"] == 9);
    CHECK(s["events"]["harvest_drained"] == 13);
    CHECK(s["events"]["harvest_drain_full"] == 1);
    CHECK(s["aggregate"]["windows"] == json({"1m", "10m"}));
    CHECK(s["aggregate"]["kinds"]["client"]["entities"] == 2);
    CHECK(s["aggregate"]["kinds"]["api_host"]["entities"] == 2);
    CHECK(s["aggregate"]["kinds"]["host"]["limit"] == 1);
    CHECK(s["detect"]["evaluations"] == 1);
    CHECK(s["detect"]["open_now"] == 1);
    REQUIRE(s["alerts"].size() == 1);
    auto &a = s["alerts"][0];
    CHECK(a["rule"] == "bulk");
    CHECK(a["severity"] == "critical");
    CHECK(a["entity_kind"] == "client");
    CHECK(a["entity"] == "192.0.2.10");
    CHECK(a["value"] == 50000.0);
    CHECK(a["since_ms"] == kWall + f.now);
    CHECK(a["id"].get<std::string>().size() == 16);
    CHECK(s["outputs"].empty());
    CHECK(s["reloads"] == json({{"ok", 0}, {"error", 0}}));
}

TEST_CASE("top ranks entities with window values first seen top SNIs and alerts", "[control]")
{
    Fixture f;
    auto t = ask(f, R"({"cmd":"top","kind":"client","window":"10m","sort":"bytes_out","n":5})");
    REQUIRE(t["ok"] == true);
    CHECK(t["kind"] == "client");
    CHECK(t["window"] == "10m");
    CHECK(t["window_ms"] == 10 * kMin);
    REQUIRE(t["rows"].size() == 2);
    auto &r0 = t["rows"][0];
    CHECK(r0["entity"] == "192.0.2.10");
    CHECK(r0["bytes_out"] == 50000);
    CHECK(r0["bytes_in"] == 500);
    CHECK(r0["tls_flows"] == 2);
    CHECK(r0["first_seen_ms"] == kWall + kMin);
    CHECK(r0["alert"] == true);
    CHECK(r0["alerts"][0]["rule"] == "bulk");
    CHECK(r0["top_snis"][0]["sni"] == "api.example.com");
    CHECK_FALSE(r0.contains("distinct_clients"));
    CHECK(t["rows"][1]["alert"] == false);

    // The wire's bytes stay in the JSON (escaped; not UTF-8 as U+FFFD).
    auto text = handle_request(R"({"cmd":"top","kind":"sni","sort":"bytes_in","n":2})", f.view());
    CHECK(text.find("\\u001b[2j\xef\xbf\xbd.example.com") != std::string::npos);
    auto sni = json::parse(text);
    CHECK(sni["window"] == "10m");  // the default
    CHECK(sni["kind"] == "sni");
    REQUIRE(sni["rows"].size() == 2);
    CHECK(sni["rows"][0]["entity"] == "api.example.com");
    CHECK(sni["rows"][0]["bytes_in"] == 500);
    CHECK(sni["rows"][0]["distinct_clients"] == 1);
    CHECK(sni["rows"][1]["bytes_in"] == 300);

    auto n1 = ask(f, R"({"cmd":"top","kind":"host","window":"10m","n":1})");
    REQUIRE(n1["rows"].size() == 1);
    CHECK(n1["rows"][0]["entity"] == "host");

    // Ranked by API calls: the client with fewer bytes but more calls first.
    auto calls = ask(f, R"({"cmd":"top","kind":"client","sort":"requests"})");
    REQUIRE(calls["ok"] == true);
    CHECK(calls["sort"] == "requests");
    REQUIRE(calls["rows"].size() == 2);
    CHECK(calls["rows"][0]["entity"] == "192.0.2.11");
    CHECK(calls["rows"][0]["requests"] == 17);
    CHECK(calls["rows"][1]["requests"] == 3);
    auto table = render_top(calls);
    CHECK(table.find("REQUESTS") != std::string::npos);
    CHECK(table.find(" 17 ") != std::string::npos);
}

TEST_CASE("bad requests get an error response", "[control]")
{
    Fixture f;
    auto err = [&](const std::string &line) {
        auto r = ask(f, line);
        CHECK(r["ok"] == false);
        return r["error"].get<std::string>();
    };
    CHECK(err("hello") == "expected one JSON object with \"cmd\": \"status\" or \"top\"");
    CHECK(err(R"({"cmd":"reboot"})") == "unknown cmd (expected \"status\" or \"top\")");
    CHECK(err(R"({"cmd":"top","window":"5m"})") ==
          "window '5m' is not an aggregation window (configured: 1m, 10m)");
    CHECK(err(R"({"cmd":"top","kind":"planet"})").rfind("kind: expected", 0) == 0);
    CHECK(err(R"({"cmd":"top","sort":"size"})").rfind("sort: expected", 0) == 0);
    CHECK(err(R"({"cmd":"top","n":0})") == "n: expected an integer from 1 to 1000");
    CHECK(err(R"({"cmd":"top","n":"5"})") == "n: expected an integer from 1 to 1000");
    // Distinct clients exist for groups only, as for rules.
    CHECK(err(R"({"cmd":"top","kind":"client","sort":"distinct_clients"})") ==
          "sort: distinct_clients applies to subnet, sni, cohort, host, ja4 and ja4_sni only, not "
          "client");
    CHECK(err(R"({"cmd":"top","kind":"client_sni","sort":"distinct_clients"})") ==
          "sort: distinct_clients applies to subnet, sni, cohort, host, ja4 and ja4_sni only, not "
          "client_sni");
    CHECK(ask(f, R"({"cmd":"top","kind":"subnet","sort":"distinct_clients"})")["ok"] == true);
}

TEST_CASE("table views sanitize wire strings", "[control]")
{
    CHECK(ascii_escape("api.example.com") == "api.example.com");
    CHECK(ascii_escape("a\x1b[2Jb\\\xff\n") == "a\\x1b[2Jb\\x5c\\xff\\x0a");
    Fixture f;
    auto top = ask(f, R"({"cmd":"top","kind":"client"})");
    auto table = render_top(top);
    CHECK(table.find("192.0.2.10") != std::string::npos);
    CHECK(table.find("! bulk (critical)") != std::string::npos);
    CHECK(table.find("48.8KiB") != std::string::npos);
    auto sni_table = render_top(ask(f, R"({"cmd":"top","kind":"sni"})"));
    CHECK(sni_table.find("evil\\x1b[2j\\xef\\xbf\\xbd.exa") != std::string::npos);
    auto status = render_status(ask(f, R"({"cmd":"status"})"));
    CHECK(status.find("attached:    eth0 (ifindex 2)") != std::string::npos);
    CHECK(status.find("ring buffer full 7") != std::string::npos);
    CHECK(status.find("maps:        flows 3/4096 (0.1%) 11 evicted, clients 2/1024") !=
          std::string::npos);
    // An output whose spool file is failing says so.
    auto st = ask(f, R"({"cmd":"status"})");
    st["outputs"] = json::array({{{"index", 0u},
                                  {"describe", "syslog tcp 192.0.2.1:514 rfc5424"},
                                  {"sent", 3u},
                                  {"spool_file", "/var/lib/exfilmon/spool"},
                                  {"spool_file_ok", false},
                                  {"spool_write_errors", 4u}}});
    auto failing = render_status(st);
    CHECK(
        failing.find("output 0:    syslog tcp 192.0.2.1:514 rfc5424: sent 3, dropped 0, spooled 0, "
                     "reconnects 0, spool file FAILING (4 write errors)\n") != std::string::npos);
    for (auto *t : {&table, &sni_table, &status})
        for (unsigned char c : *t)
            CHECK((c == '\n' || (c >= 0x20 && c < 0x7f)));
}

TEST_CASE("Prometheus text rendering", "[control]")
{
    Fixture f;
    f.state.alerts[{"bulk", "critical", "open"}] = 1;
    f.state.alerts[{"we\"ird\\", "info", "resolved"}] = 2;
    f.state.reloads_ok = 3;
    f.state.harvests = 9;
    f.state.last_harvest_s = 0.0015;
    f.state.output_types = {"syslog_tcp"};
    auto m = metrics_snapshot(f.view());
    m.outputs.push_back({"syslog_tcp", 4, 10, 1, 2, 3, 0, true});
    m.outputs.push_back({"json", 0, 5, 0, 0, 0, 0, true, 6, false});  // its spool file failing
    auto text = render_metrics(m);
    INFO(text);
    for (auto *line :
         {"exfilmon_build_info{version=\"" EXFILMON_VERSION "\"} 1\n",
          "exfilmon_start_time_seconds 1800000000\n",
          "exfilmon_packets_total 1234\n",
          "exfilmon_datapath_events_total{counter=\"ringbuf_full\"} 7\n",
          "exfilmon_ringbuf_drops_total 7\n",
          "exfilmon_event_queue_drops_total 5\n",
          "exfilmon_event_queue_waits_total 9\n",
          "exfilmon_event_queue_harvest_drained_total 13\n",
          "exfilmon_event_queue_harvest_drain_full_total 1\n",
          "exfilmon_map_entries{map=\"flows\"} 3\n",
          "exfilmon_map_evictions_total{map=\"flows\"} 11\n",
          "exfilmon_map_evictions_total{map=\"clients\"} 6\n",
          "exfilmon_map_capacity{map=\"clients\"} 1024\n",
          "exfilmon_aggregate_entities{kind=\"client\"} 2\n",
          "exfilmon_aggregate_evictions_total{kind=\"subnet\"} 0\n",
          "exfilmon_harvests_total 9\n",
          "exfilmon_harvest_duration_seconds 0.0015\n",
          "exfilmon_detect_evaluations_total 1\n",
          "exfilmon_alerts_total{rule=\"bulk\",severity=\"critical\",state=\"open\"} 1\n",
          "exfilmon_alerts_total{rule=\"we\\\"ird\\\\\",severity=\"info\",state=\"resolved\"} 2\n",
          "exfilmon_alerts_open 1\n",
          "exfilmon_output_spool_depth{output=\"0\",type=\"syslog_tcp\"} 4\n",
          "exfilmon_output_sent_total{output=\"0\",type=\"syslog_tcp\"} 10\n",
          "exfilmon_output_connected{output=\"0\",type=\"syslog_tcp\"} 1\n",
          "exfilmon_output_spool_write_errors_total{output=\"0\",type=\"syslog_tcp\"} 0\n",
          "exfilmon_output_spool_file_ok{output=\"0\",type=\"syslog_tcp\"} 1\n",
          "exfilmon_output_spool_write_errors_total{output=\"1\",type=\"json\"} 6\n",
          "exfilmon_output_spool_file_ok{output=\"1\",type=\"json\"} 0\n",
          "exfilmon_config_reloads_total{result=\"ok\"} 3\n",
          "exfilmon_config_reloads_total{result=\"error\"} 0\n"})
        CHECK(text.find(line) != std::string::npos);
    CHECK(text.find("192.0.2") == std::string::npos);  // no per-client series
    // Every sample line is NAME[{LABELS}] VALUE, every family typed once.
    std::regex sample(
        R"(^exfilmon_[a-z_0-9]+(\{[a-z_]+="([^"\\]|\\.)*"(,[a-z_]+="([^"\\]|\\.)*")*\})? [0-9.e+-]+$)");
    std::set<std::string> typed;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.rfind("# TYPE ", 0) == 0) {
            CHECK(typed.insert(line.substr(7, line.find(' ', 7) - 7)).second);
            continue;
        }
        if (line.rfind("# HELP ", 0) == 0)
            continue;
        INFO(line);
        CHECK(std::regex_match(line, sample));
        CHECK(typed.count(line.substr(0, line.find_first_of("{ "))) == 1);
    }
}

TEST_CASE("The fleet evaluator's metrics: its own families, the detector's and the outputs', "
          "nothing of a datapath",
          "[control][fleet]")
{
    MetricsSnapshot m;
    m.version = EXFILMON_VERSION;
    m.start_wall_ms = 1'800'000'000'000;
    m.evaluations = 12;
    m.last_eval_s = 0.25;
    m.alerts[{"fleet-pull", "critical", "open"}] = 1;
    m.alerts_open = 1;
    m.outputs.push_back({"json", 0, 1, 0, 0, 0, 0, true});
    EvaluatorStatus e;
    e.rules = 9;
    e.rules_failed = 6;
    e.rule_failures = 42;
    e.last_complete_ms = 1'800'000'123'456;
    e.rolled_to_s = 1'800'000'000 - 3600;
    e.alert_rows_waiting = 2;
    e.last_duration_s = 0.0125;
    e.window_entities = 20000;
    e.window_cells = 7'000'000;
    e.batches_read = 1234;
    e.rows_read = 987654;
    m.evaluator = e;
    auto text = render_metrics(m);
    INFO(text);
    for (auto *line :
         {"exfilmon_build_info{version=\"" EXFILMON_VERSION "\"} 1\n",
          "exfilmon_start_time_seconds 1800000000\n", "exfilmon_detect_evaluations_total 12\n",
          "exfilmon_detect_evaluation_duration_seconds 0.25\n",
          "exfilmon_alerts_total{rule=\"fleet-pull\",severity=\"critical\",state=\"open\"} 1\n",
          "exfilmon_alerts_open 1\n", "exfilmon_output_sent_total{output=\"0\",type=\"json\"} 1\n",
          "exfilmon_fleet_eval_rules 9\n", "exfilmon_fleet_eval_rules_failed 6\n",
          "exfilmon_fleet_eval_rule_failures_total 42\n",
          "exfilmon_fleet_eval_last_complete_seconds 1800000123.456\n",
          "exfilmon_fleet_eval_rolled_up_to_seconds 1799996400\n",
          "exfilmon_fleet_eval_alert_rows_waiting 2\n",
          "exfilmon_fleet_eval_last_duration_seconds 0.0125\n",
          "exfilmon_fleet_eval_window_entities 20000\n",
          "exfilmon_fleet_eval_window_cells 7000000\n",
          "exfilmon_fleet_eval_batches_read_total 1234\n",
          "exfilmon_fleet_eval_rows_read_total 987654\n"})
        CHECK(text.find(line) != std::string::npos);
    for (auto *absent : {"exfilmon_packets_total", "exfilmon_harvests_total", "exfilmon_map_",
                         "exfilmon_aggregate_", "exfilmon_events_total", "exfilmon_fleet_rows_"})
        CHECK(text.find(absent) == std::string::npos);
}

TEST_CASE("The fleet export's figures in status, its table and the metrics, and none without it",
          "[control][fleet]")
{
    Fixture f;
    auto off = ask(f, R"({"cmd":"status"})");
    CHECK(off.contains("fleet"));
    CHECK(off["fleet"].is_null());
    CHECK(render_status(off).find("fleet:") == std::string::npos);
    CHECK(render_metrics(metrics_snapshot(f.view())).find("exfilmon_fleet_") == std::string::npos);

    FleetStatus fl{"http://192.0.2.5:8123", "exf", "edge-1", 10000, {}, 1};
    fl.exporter.batches_sent = 4;
    fl.exporter.rows_sent = 40;
    fl.exporter.bytes_sent = 4096;
    fl.exporter.failures = 2;
    fl.exporter.dropped_batches = 1;
    fl.exporter.spool_depth = 3;
    fl.exporter.last_success_ms = kWall + 789;  // its milliseconds stay in the metric
    fl.exporter.last_error = "cannot reach ClickHouse at http://192.0.2.5:8123";
    f.state.fleet = fl;
    auto s = ask(f, R"({"cmd":"status"})");
    CHECK(s["fleet"] == json({{"clickhouse", "http://192.0.2.5:8123"},
                              {"database", "exf"},
                              {"sensor", "edge-1"},
                              {"interval_ms", 10000},
                              {"batches_sent", 4},
                              {"rows_sent", 40},
                              {"bytes_sent", 4096},
                              {"failures", 2},
                              {"dropped_periods", 1},
                              {"spool_depth", 3},
                              {"spool_write_errors", 0},
                              {"periods_waiting", 1},
                              {"last_success_ms", kWall + 789},
                              {"last_error", "cannot reach ClickHouse at http://192.0.2.5:8123"}}));
    CHECK(render_status(s).find(
              "fleet:       http://192.0.2.5:8123 database exf as edge-1: sent 40 rows (4.0KiB) in "
              "4 periods, spooled 4, failures 2, dropped 1, last success 2027-01-15T08:00:00Z, "
              "last error: cannot reach ClickHouse at http://192.0.2.5:8123\n") !=
          std::string::npos);
    auto text = render_metrics(metrics_snapshot(f.view()));
    INFO(text);
    for (auto *line :
         {"exfilmon_fleet_rows_sent_total 40\n", "exfilmon_fleet_bytes_sent_total 4096\n",
          "exfilmon_fleet_periods_sent_total 4\n", "exfilmon_fleet_failures_total 2\n",
          "exfilmon_fleet_dropped_periods_total 1\n", "exfilmon_fleet_spool_depth 4\n",
          "exfilmon_fleet_spool_write_errors_total 0\n",
          "exfilmon_fleet_last_success_seconds 1800000000.789\n"})
        CHECK(text.find(line) != std::string::npos);
}

TEST_CASE("control socket serves one request per connection root only", "[control]")
{
    Fixture f;
    auto dir = std::filesystem::temp_directory_path() / ("exf-control-" + std::to_string(getpid()));
    std::filesystem::remove_all(dir);
    auto path = (dir / "sub" / "control.sock").string();
    {
        ControlServer srv(path, "");
        struct stat st {};
        REQUIRE(stat(path.c_str(), &st) == 0);
        CHECK(S_ISSOCK(st.st_mode));
        CHECK((st.st_mode & 0777) == 0600);
        REQUIRE(stat((dir / "sub").c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0755);

        std::string error;
        int code = 0;
        auto r = serving(srv, f, [&] { return request(path, {{"cmd", "status"}}, error, code); });
        REQUIRE(r);
        CHECK((*r)["interfaces"][0]["name"] == "eth0");
        auto bad = serving(srv, f, [&] {
            return request(path, {{"cmd", "top"}, {"window", "7m"}}, error, code);
        });
        CHECK_FALSE(bad);
        CHECK(code == 2);
        CHECK(error.find("window '7m'") != std::string::npos);
        // A last line without newline is answered too; a too long one is refused.
        auto nonl = serving(srv, f, [&] { return raw_exchange(path, R"({"cmd":"status"})"); });
        CHECK(json::parse(nonl)["ok"] == true);
        auto big = serving(srv, f, [&] { return raw_exchange(path, std::string(5000, ' ')); });
        CHECK(big == "{\"ok\":false,\"error\":\"request longer than 4096 bytes\"}\n");
        // A live daemon's socket is not taken over.
        CHECK_THROWS_WITH(ControlServer(path, ""),
                          Catch::Contains("another exfilmon is serving it"));
        CHECK_THROWS_WITH(ControlServer(path + "x", "no-such-group-exf"),
                          Catch::Contains("group 'no-such-group-exf' does not exist"));
    }
    CHECK_FALSE(std::filesystem::exists(path));  // removed on close
    // A socket file nobody serves (a crashed daemon's) is replaced; with a
    // group (root's: chown needs root here) the mode is 0660.
    if (geteuid() == 0) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strcpy(a.sun_path, path.c_str());
        REQUIRE(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)) == 0);
        close(fd);
        ControlServer srv(path, "root");
        struct stat st {};
        REQUIRE(stat(path.c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0660);
    }
    std::string error;
    int code = 0;
    CHECK_FALSE(request(path, {{"cmd", "status"}}, error, code));
    CHECK(code == 1);
    CHECK(error.find("is exfilmon running?") != std::string::npos);
    std::filesystem::remove_all(dir);
}

TEST_CASE("a silent client does not hold the control socket", "[control]")
{
    Fixture f;
    auto path = (std::filesystem::temp_directory_path() /
                 ("exf-control-silent-" + std::to_string(getpid()) + ".sock"))
                    .string();
    ControlServer srv(path, "");
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    REQUIRE(connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)) == 0);
    auto handler = [&](std::string_view line) { return handle_request(line, f.view()); };
    auto t0 = std::chrono::steady_clock::now();
    srv.serve(std::chrono::milliseconds(10), handler);
    CHECK(srv.connections() == 1);
    // Each serve() returns within its timeout; the connection goes at its deadline.
    while (srv.connections() && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)) {
        auto s0 = std::chrono::steady_clock::now();
        srv.serve(std::chrono::milliseconds(50), handler);
        CHECK(std::chrono::steady_clock::now() - s0 < std::chrono::milliseconds(500));
    }
    CHECK(srv.connections() == 0);
    CHECK(std::chrono::steady_clock::now() - t0 >= ControlServer::kConnectionTimeout);
    char c;
    CHECK(recv(fd, &c, 1, 0) == 0);  // closed by the server
    close(fd);
}

TEST_CASE("a request sent in time is answered after a daemon stall longer than the timeout",
          "[control]")
{
    // The daemon's loop calls serve() between harvests; a harvest of a full
    // flow table can take longer than the per-connection timeout. A client
    // that asked in time must get its answer, not a reset.
    Fixture f;
    auto path = (std::filesystem::temp_directory_path() /
                 ("exf-control-stall-" + std::to_string(getpid()) + ".sock"))
                    .string();
    ControlServer srv(path, "");
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    REQUIRE(connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)) == 0);
    auto handler = [&](std::string_view line) { return handle_request(line, f.view()); };
    srv.serve(std::chrono::milliseconds(10), handler);  // accepted
    REQUIRE(srv.connections() == 1);
    std::string req = "{\"cmd\":\"status\"}\n";
    REQUIRE(send(fd, req.data(), req.size(), MSG_NOSIGNAL) == ssize_t(req.size()));
    std::this_thread::sleep_for(ControlServer::kConnectionTimeout + std::chrono::milliseconds(500));
    srv.serve(std::chrono::milliseconds(10), handler);  // after the "stall"
    std::string out;
    char buf[65536];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
        out.append(buf, size_t(n));
    CHECK(n == 0);  // answered, then closed: not reset
    REQUIRE_FALSE(out.empty());
    CHECK(json::parse(out)["ok"] == true);
    CHECK(srv.connections() == 0);
    close(fd);
}

TEST_CASE("exfilmon status and top exit codes without a daemon", "[control]")
{
    auto bin = exf::test::exfilmon_binary().string();
    auto none = exf::test::run_program({bin, "status", "--socket", "/nonexistent/exfilmon.sock"});
    CHECK(none.status == 1);
    CHECK(none.err.find("cannot connect to /nonexistent/exfilmon.sock") != std::string::npos);
    CHECK(none.err.find("is exfilmon running?") != std::string::npos);
    auto top =
        exf::test::run_program({bin, "top", "--once", "--socket", "/nonexistent/exfilmon.sock"});
    CHECK(top.status == 1);
    CHECK(exf::test::run_program({bin, "top", "--format", "json"}).status == 2);
    CHECK(exf::test::run_program({bin, "top", "--interval", "5"}).status == 2);
    CHECK(exf::test::run_program({bin, "top", "--kind", "planet"}).status == 2);
    CHECK(exf::test::run_program({bin, "top", "-n", "0"}).status == 2);
    CHECK(exf::test::run_program({bin, "status", "--format", "xml"}).status == 2);
    auto help = exf::test::run_program({bin, "top", "--help"});
    CHECK(help.status == 0);
    CHECK(help.out.find("--once") != std::string::npos);
}
