// SPDX-License-Identifier: Apache-2.0
// The fleet evaluator (`exfilmon fleet --config FILE`) against a real
// ClickHouse started by the test, with rows of two edge sensors written
// straight into the traffic table as a sensor writes them
// (fleet/periods.h): a pull split over both hosts, each under the
// threshold, raises exactly one fleet alert naming both sensors with their
// shares, through real outputs (rsyslog and the JSON file); normal clients
// raise nothing; a retried batch changes nothing; a restarted evaluator
// opens nothing twice.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "aggregate/entity_key.h"
#include "common/addr.h"
#include "fleet/clickhouse.h"
#include "fleet/periods.h"
#include "fleet/rule_sql.h"
#include "support/clickhouse.h"
#include "support/servers.h"
#include "support/test_env.h"

using namespace exf::test;
using namespace std::chrono_literals;

namespace {

constexpr uint64_t kMiB = 1048576;
constexpr uint64_t kPeriodMs = 10000;

exf::fleet::ClientNames names_of(const exf::Addr16 &a)
{
    return {exf::format_addr(a),
            exf::agg::format_key(exf::agg::EntityKind::subnet, exf::agg::prefix_key(a, 24)), ""};
}

// One sensor's closed period with these clients' bytes out, as JSON rows.
std::string period_rows(const std::string &sensor, uint64_t start_ms,
                        const std::vector<std::pair<const char *, uint64_t>> &clients)
{
    exf::fleet::PeriodTable periods(kPeriodMs, names_of);
    for (auto &[addr, bytes] : clients)
        periods.add(start_ms, *exf::parse_addr(addr), "api.example.com",
                    "t13d1516h2_8daaf6152771_e5627efa2ab1", {bytes / 100, bytes, 10, 20, 2});
    return exf::fleet::to_json_rows(periods.close_due(start_ms + kPeriodMs), sensor);
}

std::vector<nlohmann::json> json_lines(const std::filesystem::path &p)
{
    std::vector<nlohmann::json> out;
    std::ifstream in(p);
    for (std::string line; std::getline(in, line);)
        if (!line.empty())
            out.push_back(nlohmann::json::parse(line));
    return out;
}

// Two periods from p0 of two sensors: 203.0.113.7 pulls 30 MiB a period
// through each (60 MiB each in all: 60 % of a 100 MiB threshold), ten
// normal clients 2 MiB a period. edge-a's batches are sent twice: a retry
// after a timeout whose insert had landed.
std::vector<std::string> split_pull_batches(uint64_t p0)
{
    std::vector<std::string> out;
    for (uint64_t p : {p0, p0 + kPeriodMs}) {
        auto a = period_rows("edge-a", p,
                             {{"203.0.113.7", 30 * kMiB},
                              {"198.51.100.10", 2 * kMiB},
                              {"198.51.100.11", 2 * kMiB},
                              {"198.51.100.12", 2 * kMiB},
                              {"198.51.100.13", 2 * kMiB},
                              {"198.51.100.14", 2 * kMiB}});
        auto b = period_rows("edge-b", p,
                             {{"203.0.113.7", 30 * kMiB},
                              {"198.51.100.20", 2 * kMiB},
                              {"198.51.100.21", 2 * kMiB},
                              {"198.51.100.22", 2 * kMiB},
                              {"198.51.100.23", 2 * kMiB},
                              {"198.51.100.24", 2 * kMiB}});
        out.insert(out.end(), {a, b, a});
    }
    return out;
}

uint64_t now_ms()
{
    return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count());
}

ProcResult evaluate_once(const std::string &config)
{
    return exfilmon_fleet({"--config", config, "--once"});
}

}  // namespace

TEST_CASE("The fleet evaluator raises one alert for a pull split over two sensors, once",
          "[e2e][sanitize][fleet]")
{
    if (!require_clickhouse())
        return;
    Lab lab;
    ClickHouseServer ch(lab);
    ch.start();
    RsyslogServer rsyslog(lab, {});
    rsyslog.start();
    auto alerts_json = lab.dir() / "fleet-alerts.json";
    auto config = write_config(
        lab.dir() / "fleet.toml",
        fleet_table(ch.url(), "exf_eval") +
            "[detect]\ninterval = \"1s\"\n"
            "[[rules]]\nname = \"fleet-client-pull\"\nentity = \"client\"\n"
            "metric = \"bytes_out\"\nwindow = \"10m\"\nthreshold = \"100MiB\"\n"
            "severity = \"critical\"\n"
            "[[outputs]]\ntype = \"syslog\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:" +
            std::to_string(rsyslog.port()) +
            "\"\nformat = \"rfc5424\"\n"
            "[[outputs]]\ntype = \"json\"\npath = \"" +
            alerts_json.string() + "\"\n");
    auto init = exfilmon_fleet({"init", "--config", config});
    INFO(init.out << init.err);
    REQUIRE(init.status == 0);

    // Two periods of each sensor in the last minutes (split_pull_batches).
    exf::fleet::ClickHouse client(fleet_client_config(ch, "exf_eval"));
    uint64_t now = uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
    uint64_t p0 = now / kPeriodMs * kPeriodMs - 120'000;
    for (auto &batch : split_pull_batches(p0))
        REQUIRE(client.insert_json_rows("exf_eval.traffic", batch).ok());
    CHECK(ch.query("SELECT sensor, sum(bytes_out) FROM exf_eval.traffic FINAL WHERE client = "
                   "'203.0.113.7' GROUP BY sensor ORDER BY sensor") ==
          "edge-a\t62914560\nedge-b\t62914560\n");

    auto first = evaluate_once(config);
    INFO(first.out << first.err);
    REQUIRE(first.status == 0);
    REQUIRE(rsyslog.wait_for_count(1));

    auto alerts = json_lines(alerts_json);
    REQUIRE(alerts.size() == 1);
    auto &x = alerts[0]["exfilmon"];
    CHECK(x["state"] == "open");
    CHECK(x["scope"] == "fleet");
    CHECK(x["client"] == "203.0.113.7");
    CHECK(x["bytes_out"] == 120 * kMiB);  // the retried batch counted once
    CHECK(x["distinct_sensors"] == 2);
    REQUIRE(x["sensors"].size() == 2);
    CHECK(x["sensors"][0]["name"] == "edge-a");
    CHECK(x["sensors"][0]["bytes_out"] == 60 * kMiB);
    CHECK(x["sensors"][0]["share"] == 0.5);
    CHECK(x["sensors"][1]["name"] == "edge-b");
    CHECK(x["sensors"][1]["share"] == 0.5);
    CHECK(alerts[0]["rule"]["name"] == "fleet-client-pull");
    std::string id = alerts[0]["event"]["id"];

    auto syslog = rsyslog.messages();
    REQUIRE(syslog.size() == 1);
    CHECK(syslog[0].find("OPEN [exfilmon@32473 id=\"" + id + "\"") != std::string::npos);
    CHECK(syslog[0].find(" scope=\"fleet\" distinct_sensors=\"2\" sensor=\"edge-a 62914560 0.5\" "
                         "sensor=\"edge-b 62914560 0.5\"") != std::string::npos);
    CHECK(ch.query("SELECT id, state, rule FROM exf_eval.alerts FINAL") ==
          id + "\topen\tfleet-client-pull\n");
    // docs/fleet.md's query for the alerts open now.
    CHECK(ch.query("SELECT id, rule, argMax(entity, time_ms) AS last_entity, argMax(state, "
                   "time_ms) AS last_state FROM exf_eval.alerts FINAL GROUP BY id, rule HAVING "
                   "last_state IN ('open', 'update') ORDER BY id") ==
          id + "\tfleet-client-pull\t203.0.113.7\topen\n");

    // Started again (once, then as a service for a few intervals): the open
    // alert carries on under its ID; nothing opens twice.
    auto second = evaluate_once(config);
    INFO(second.out << second.err);
    REQUIRE(second.status == 0);
    CHECK((second.out + second.err).find("1 open alerts taken back") != std::string::npos);
    auto &svc = lab.spawn("", {exfilmon_binary().string(), "fleet", "--config", config});
    std::this_thread::sleep_for(3500ms);
    CHECK(svc.stop(SIGTERM, 10s) == 0);
    std::this_thread::sleep_for(500ms);
    CHECK(json_lines(alerts_json).size() == 1);
    CHECK(rsyslog.messages().size() == 1);
    CHECK(ch.query("SELECT count() FROM exf_eval.alerts FINAL WHERE state = 'open'") == "1\n");
}

TEST_CASE(
    "The fleet evaluator names the fix for a dead server, a refused user and a missing schema",
    "[e2e][sanitize][fleet]")
{
    if (!require_clickhouse())
        return;
    Lab lab;
    ClickHouseServer ch(lab);
    ch.start();
    auto config = [&](const std::string &name, const std::string &fleet) {
        return write_config(lab.dir() / (name + ".toml"),
                            "[fleet]\n" + fleet + "[[outputs]]\ntype = \"json\"\npath = \"" +
                                (lab.dir() / "a.json").string() + "\"\n");
    };
    auto url = "clickhouse = \"" + ch.url() + "\"\n";

    auto no_schema = evaluate_once(config("none", url + "database = \"exf_none\"\n"));
    CHECK(no_schema.status == 2);
    CHECK(no_schema.err.find("run exfilmon fleet init --config FILE") != std::string::npos);

    auto pw = write_config(lab.dir() / "pw", "wrong\n");
    auto refused = evaluate_once(
        config("refused", url + "user = \"exfilmon\"\npassword_file = \"" + pw + "\"\n"));
    CHECK(refused.status == 2);
    CHECK(refused.err.find("check [fleet] user and password_file") != std::string::npos);

    auto bad_url = evaluate_once(config("url", "clickhouse = \"ftp://127.0.0.1\"\n"));
    CHECK(bad_url.status == 2);
    CHECK(bad_url.err.find("clickhouse: 'ftp://127.0.0.1': expected http://HOST[:PORT]") !=
          std::string::npos);

    REQUIRE(
        exfilmon_fleet({"init", "--config", config("v", url + "database = \"exf_v\"\n")}).status ==
        0);
    ch.query("INSERT INTO exf_v.schema_info VALUES (7)");
    auto other = evaluate_once(config("v", url + "database = \"exf_v\"\n"));
    CHECK(other.status == 2);
    CHECK(other.err.find("has schema version 7, this exfilmon uses 2") != std::string::npos);

    auto short_retention = evaluate_once(
        config("ret", url + "retention = \"1d\"\n[[rules]]\nname = \"long\"\nentity = \"client\"\n"
                            "metric = \"bytes_out\"\nwindow = \"7d\"\nthreshold = \"1GiB\"\n"));
    CHECK(short_retention.status == 2);
    CHECK(short_retention.err.find("raise retention to at least the longest window") !=
          std::string::npos);

    ch.stop();
    auto dead = evaluate_once(config("dead", url));
    CHECK(dead.status == 1);
    CHECK(dead.err.find("cannot reach ClickHouse at " + ch.url()) != std::string::npos);
}

TEST_CASE("The fleet evaluator rolls closed hours up once, reads long windows from them and drops "
          "expired days",
          "[e2e][sanitize][fleet]")
{
    if (!require_clickhouse())
        return;
    Lab lab;
    ClickHouseServer ch(lab);
    ch.start();
    auto alerts_json = lab.dir() / "fleet-alerts.json";
    auto config =
        write_config(lab.dir() / "fleet.toml",
                     fleet_table(ch.url(), "exf_roll") +
                         "retention = \"30d\"\n"
                         "[[rules]]\nname = \"fleet-day-pull\"\nentity = \"client\"\n"
                         "metric = \"bytes_out\"\nwindow = \"24h\"\nthreshold = \"100MiB\"\n"
                         "[[outputs]]\ntype = \"json\"\npath = \"" +
                         alerts_json.string() + "\"\n");
    REQUIRE(exfilmon_fleet({"init", "--config", config}).status == 0);
    exf::fleet::ClickHouse client(fleet_client_config(ch, "exf_roll"));

    // 203.0.113.9 pulls 20 MiB through each sensor in each of three closed
    // hours (120 MiB in the day, no hour near the threshold); 192.0.2.50's
    // traffic is 40 days old, past the retention.
    const uint64_t hour_ms = 3'600'000;
    uint64_t this_hour = now_ms() / hour_ms * hour_ms;
    for (uint64_t h = 5; h >= 3; h--)
        for (const char *sensor : {"edge-a", "edge-b"})
            REQUIRE(client
                        .insert_json_rows("exf_roll.traffic",
                                          period_rows(sensor, this_hour - h * hour_ms + 600'000,
                                                      {{"203.0.113.9", 20 * kMiB}}))
                        .ok());
    REQUIRE(client
                .insert_json_rows(
                    "exf_roll.traffic",
                    period_rows("edge-a", this_hour - 40 * 24 * hour_ms, {{"192.0.2.50", kMiB}}))
                .ok());

    // A third sensor's hour that only the rollup holds: a long window that
    // reads the rollup counts it.
    REQUIRE(client
                .insert_json_rows("exf_roll.traffic_hourly",
                                  nlohmann::json{{"hour", (this_hour - 8 * hour_ms) / 1000},
                                                 {"sensor", "edge-c"},
                                                 {"client", "203.0.113.9"},
                                                 {"subnet", "203.0.113.0/24"},
                                                 {"cohort", ""},
                                                 {"sni", "api.example.com"},
                                                 {"ja4", ""},
                                                 {"bytes_in", 0},
                                                 {"bytes_out", 30 * kMiB},
                                                 {"packets_in", 0},
                                                 {"packets_out", 0},
                                                 {"tls_flows", 0},
                                                 {"peak_concurrent", 0},
                                                 {"version", 1}}
                                          .dump() +
                                      "\n")
                .ok());

    auto run = evaluate_once(config);
    INFO(run.out << run.err);
    REQUIRE(run.status == 0);
    CHECK(run.out.find("retention: dropped exf_roll.traffic partition") != std::string::npos);
    CHECK(ch.query("SELECT count() FROM exf_roll.traffic WHERE client = '192.0.2.50'") == "0\n");
    const std::string hourly = "SELECT count(), sum(bytes_out), uniqExact(hour) FROM "
                               "exf_roll.traffic_hourly FINAL WHERE client = '203.0.113.9' "
                               "AND sensor != 'edge-c'";
    CHECK(ch.query(hourly) == "6\t125829120\t3\n");

    auto alerts = json_lines(alerts_json);
    REQUIRE(alerts.size() == 1);
    CHECK(alerts[0]["exfilmon"]["bytes_out"] == 150 * kMiB);
    CHECK(alerts[0]["exfilmon"]["distinct_sensors"] == 3);

    // An hour rolled up again (a rerun, a later version) replaces its rows.
    REQUIRE(client
                .query(exf::fleet::rollup_sql("exf_roll", (this_hour - 4 * hour_ms) / 1000,
                                              uint32_t(now_ms() / 1000) + 1))
                .ok());
    CHECK(ch.query(hourly) == "6\t125829120\t3\n");
    auto again = evaluate_once(config);
    REQUIRE(again.status == 0);
    CHECK(ch.query(hourly) == "6\t125829120\t3\n");
    CHECK(json_lines(alerts_json).size() == 1);
}

namespace {

// A configuration for the evaluator over `database` at `url`, with the
// split-pull rule and a JSON file output.
std::string split_pull_config(Lab &lab, const std::string &name, const std::string &url,
                              const std::string &database, const std::filesystem::path &json)
{
    return write_config(lab.dir() / (name + ".toml"),
                        fleet_table(url, database) +
                            "[[rules]]\nname = \"fleet-client-pull\"\nentity = \"client\"\n"
                            "metric = \"bytes_out\"\nwindow = \"10m\"\nthreshold = \"100MiB\"\n"
                            "[[outputs]]\ntype = \"json\"\npath = \"" +
                            json.string() + "\"\n");
}

void fleet_init(const std::string &config)
{
    auto r = exfilmon_fleet({"init", "--config", config});
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
}

// What must be equal between two evaluators' alerts.
nlohmann::json alert_gist(const nlohmann::json &a)
{
    auto &x = a["exfilmon"];
    return {a["rule"]["name"],     x["state"],  x["entity"], x["bytes_out"], x["tls_flows"],
            x["distinct_sensors"], x["sensors"]};
}

}  // namespace

TEST_CASE("A two-shard Distributed fleet sharded by client raises the same alerts as one server",
          "[e2e][sanitize][fleet]")
{
    if (!require_clickhouse())
        return;
    Lab lab;
    auto options = [](const char *name, std::string extra = "") {
        ClickHouseOptions o;
        o.name = name;
        o.extra_config = std::move(extra);
        return o;
    };
    ClickHouseServer shard1(lab, options("shard1"));
    ClickHouseServer shard2(lab, options("shard2"));
    auto replica = [](const ClickHouseServer &s) {
        return "<shard><replica><host>127.0.0.1</host><port>" + std::to_string(s.tcp_port()) +
               "</port></replica></shard>";
    };
    ClickHouseServer front(lab, options("front", "  <remote_servers><exf_two_shards>" +
                                                     replica(shard1) + replica(shard2) +
                                                     "</exf_two_shards></remote_servers>\n"));
    shard1.start();
    shard2.start();
    front.start();
    auto one_json = lab.dir() / "one.json", two_json = lab.dir() / "two.json";
    // Each shard holds its part in exf_local; the front's exf_fleet reads them
    // through Distributed tables (docs/fleet.md, "A larger fleet"); exf_one
    // on the front is the single server to compare with.
    for (auto *s : {&shard1, &shard2})
        fleet_init(split_pull_config(lab, "local", s->url(), "exf_local", one_json));
    auto one = split_pull_config(lab, "one", front.url(), "exf_one", one_json);
    auto two = split_pull_config(lab, "two", front.url(), "exf_fleet", two_json);
    fleet_init(one);
    fleet_init(two);
    for (std::string t : {"traffic", "traffic_hourly"}) {
        front.query("CREATE TABLE exf_fleet." + t + "_all AS exf_fleet." + t +
                    " ENGINE = Distributed(exf_two_shards, exf_local, " + t +
                    ", cityHash64(client))");
        front.query("DROP TABLE exf_fleet." + t);
        front.query("RENAME TABLE exf_fleet." + t + "_all TO exf_fleet." + t);
    }

    uint64_t p0 = now_ms() / kPeriodMs * kPeriodMs - 120'000;
    exf::fleet::ClickHouse client(fleet_client_config(front, "exf_fleet"));
    std::set<std::string> distinct_rows;
    for (auto &batch : split_pull_batches(p0)) {
        REQUIRE(client.insert_json_rows("exf_one.traffic", batch).ok());
        REQUIRE(client.insert_json_rows("exf_fleet.traffic", batch).ok());
        std::istringstream lines(batch);
        for (std::string line; std::getline(lines, line);)
            distinct_rows.insert(line);
    }
    // The Distributed table forwards to the shards in the background (and
    // the shards merge the retried copies away at their own pace).
    const std::string all = "SELECT count() FROM exf_fleet.traffic FINAL";
    const std::string want = std::to_string(distinct_rows.size()) + "\n";
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (front.query(all) != want && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(200ms);
    REQUIRE(front.query(all) == want);
    // Both shards hold rows, and each client's rows are on one shard only.
    CHECK(shard1.query("SELECT count() > 0 FROM exf_local.traffic") == "1\n");
    CHECK(shard2.query("SELECT count() > 0 FROM exf_local.traffic") == "1\n");
    const std::string pull = "SELECT count() FROM exf_local.traffic WHERE client = '203.0.113.7'";
    CHECK((shard1.query(pull) == "0\n") != (shard2.query(pull) == "0\n"));

    for (auto *cfg : {&one, &two}) {
        auto r = evaluate_once(*cfg);
        INFO(r.out << r.err);
        REQUIRE(r.status == 0);
    }
    auto a1 = json_lines(one_json), a2 = json_lines(two_json);
    REQUIRE(a1.size() == 1);
    REQUIRE(a2.size() == 1);
    CHECK(alert_gist(a2[0]) == alert_gist(a1[0]));
    CHECK(a2[0]["exfilmon"]["bytes_out"] == 120 * kMiB);
    CHECK(a2[0]["exfilmon"]["sensors"].size() == 2);
}

namespace {

// One sample of the evaluator's /metrics (a family without labels); -1 when
// the endpoint or the sample is not there.
double scrape(uint16_t port, const std::string &name)
{
    auto r = run_program(
        {"/usr/bin/curl", "-sf", "http://127.0.0.1:" + std::to_string(port) + "/metrics"});
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);)
        if (line.rfind(name + " ", 0) == 0)
            return std::stod(line.substr(name.size() + 1));
    return -1;
}

size_t count_of(const std::string &text, const std::string &needle)
{
    size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
        n++;
    return n;
}

}  // namespace

TEST_CASE("The fleet evaluator's metrics follow ClickHouse going away and coming back, and its "
          "log says each once",
          "[e2e][fleet]")
{
    if (!require_clickhouse())
        return;
    Lab lab;
    ClickHouseServer ch(lab);
    ch.start();
    uint16_t port = free_tcp_port("", "127.0.0.1");
    auto rule = [](const char *name) {
        return std::string("[[rules]]\nname = \"") + name +
               "\"\nentity = \"client\"\nmetric = \"bytes_out\"\nwindow = \"10m\"\n"
               "threshold = \"100MiB\"\n";
    };
    auto config = write_config(
        lab.dir() / "fleet.toml",
        fleet_table(ch.url(), "exf_health") + "timeout = \"2s\"\n[detect]\ninterval = \"500ms\"\n" +
            "[metrics]\nlisten = \"127.0.0.1:" + std::to_string(port) + "\"\n" + rule("pull-a") +
            rule("pull-b") + "[[outputs]]\ntype = \"json\"\npath = \"" +
            (lab.dir() / "alerts.json").string() + "\"\n");
    REQUIRE(exfilmon_fleet({"init", "--config", config}).status == 0);
    auto log = lab.dir() / "fleet.log";
    auto &svc =
        lab.spawn("", {exfilmon_binary().string(), "fleet", "--config", config}, {lab.dir(), log});
    auto evaluations = [&] { return scrape(port, "exfilmon_detect_evaluations_total"); };
    REQUIRE(eventually([&] { return evaluations() >= 2; }, 20s));
    CHECK(scrape(port, "exfilmon_fleet_eval_rules") == 2);
    CHECK(scrape(port, "exfilmon_fleet_eval_rules_failed") == 0);
    CHECK(scrape(port, "exfilmon_fleet_eval_rule_failures_total") == 0);
    double complete = scrape(port, "exfilmon_fleet_eval_last_complete_seconds");
    CHECK(complete > 0);

    REQUIRE(ch.stop() == 0);
    REQUIRE(eventually([&] { return scrape(port, "exfilmon_fleet_eval_rules_failed") == 2; }, 20s));
    double down_from = evaluations();
    double last_complete = scrape(port, "exfilmon_fleet_eval_last_complete_seconds");
    REQUIRE(eventually([&] { return evaluations() >= down_from + 6; }, 30s));
    CHECK(scrape(port, "exfilmon_fleet_eval_rule_failures_total") >= 2 * 6);
    CHECK(scrape(port, "exfilmon_fleet_eval_last_complete_seconds") == last_complete);

    ch.start();
    REQUIRE(eventually([&] { return scrape(port, "exfilmon_fleet_eval_rules_failed") == 0; }, 30s));
    CHECK(scrape(port, "exfilmon_fleet_eval_last_complete_seconds") > last_complete);
    CHECK(svc.stop(SIGTERM, 10s) == 0);

    // Six and more evaluations failed, two rule reads each. The log names
    // a cause when it changes, not at each evaluation: a server on its way
    // down may first answer with an error or drop the connection before it
    // refuses them, so there may be a few causes, never the same one twice
    // in a row; and one line for the recovery.
    auto said = slurp(log);
    INFO(said);
    std::vector<std::string> warned;
    std::istringstream lines(said);
    for (std::string line; std::getline(lines, line);)
        if (auto at = line.find("fleet: rule reads: "); at != std::string::npos)
            warned.push_back(line.substr(at));
    CHECK(std::any_of(warned.begin(), warned.end(), [](const std::string &w) {
        return w.rfind("fleet: rule reads: 2 of 2 rules (pull-a, pull-b): cannot reach ClickHouse",
                       0) == 0;
    }));
    CHECK(warned.size() < 6);
    for (size_t i = 1; i < warned.size(); i++)
        CHECK(warned[i] != warned[i - 1]);
    CHECK(count_of(said, "fleet: rule reads works again") == 1);
}
