// SPDX-License-Identifier: Apache-2.0
// Configuration: defaults, the shipped file, and each error message with its
// FILE:LINE:COLUMN.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "common/units.h"
#include "config/config.h"
#include "config/run_checks.h"
#include "support/mounts.h"
#include "support/temp_dir.h"
#include "support/test_env.h"

using namespace exf;

namespace {
std::string only_issue(const std::string &text)
{
    auto r = parse_config(text, "t.toml");
    REQUIRE(r.issues.size() == 1);
    return r.issues[0].format();
}
}  // namespace

TEST_CASE("Sizes and durations", "[config]")
{
    CHECK(parse_size("4MiB") == (4u << 20));
    CHECK(parse_size("500KB") == 500000u);
    CHECK(parse_size("2GiB") == (2ull << 30));
    CHECK(parse_size("1.5KiB") == 1536u);
    CHECK(parse_size("65536") == 65536u);
    CHECK_FALSE(parse_size("4 parsecs"));
    CHECK_FALSE(parse_size(""));
    CHECK_FALSE(parse_size("MiB"));
    CHECK_FALSE(parse_size("99999999999999999999TiB"));
    CHECK(parse_duration_ms("10m") == 600000u);
    CHECK(parse_duration_ms("1h30m") == 5400000u);
    CHECK(parse_duration_ms("500ms") == 500u);
    CHECK(parse_duration_ms("1d") == 86400000u);
    CHECK_FALSE(parse_duration_ms("10"));
    CHECK_FALSE(parse_duration_ms("5 minutes"));
    CHECK_FALSE(parse_duration_ms(""));
}

TEST_CASE("Built-in defaults equal the shipped configs/exfilmon.toml", "[config]")
{
    auto r = load_config((exf::test::source_dir() / "configs" / "exfilmon.toml").string());
    for (auto &i : r.issues)
        FAIL(i.format());
    Config d;
    CHECK(r.config.interfaces == d.interfaces);
    CHECK(r.config.backend == d.backend);
    CHECK(r.config.bpf.flow_table_size == d.bpf.flow_table_size);
    CHECK(r.config.bpf.client_table_size == d.bpf.client_table_size);
    CHECK(r.config.bpf.ringbuf_bytes == d.bpf.ringbuf_bytes);
    CHECK(r.config.bpf.tls_ports == d.bpf.tls_ports);
    CHECK(r.config.bpf.request_min_bytes == d.bpf.request_min_bytes);
    CHECK(r.config.report_interval_ms == d.report_interval_ms);
    CHECK(r.config.harvest_interval_ms == d.harvest_interval_ms);
    CHECK(r.config.event_queue_size == d.event_queue_size);
    CHECK(r.config.bpf.pin == d.bpf.pin);
    CHECK(r.config.bpf.pin_path == d.bpf.pin_path);
    CHECK(r.config.log_level == d.log_level);
    CHECK(r.config.control_socket == d.control_socket);
    CHECK(r.config.control_group == d.control_group);
    CHECK(r.config.metrics_enabled == d.metrics_enabled);
    CHECK(r.config.metrics_host == d.metrics_host);
    CHECK(r.config.metrics_port == d.metrics_port);
    CHECK(r.config.aggregate.windows_ms == d.aggregate.windows_ms);
    CHECK(r.config.aggregate.client_prefix_v4 == d.aggregate.client_prefix_v4);
    CHECK(r.config.aggregate.client_prefix_v6 == d.aggregate.client_prefix_v6);
    CHECK(r.config.aggregate.subnet_prefix_v4 == d.aggregate.subnet_prefix_v4);
    CHECK(r.config.aggregate.subnet_prefix_v6 == d.aggregate.subnet_prefix_v6);
    CHECK(r.config.aggregate.max_clients == d.aggregate.max_clients);
    CHECK(r.config.aggregate.max_subnets == d.aggregate.max_subnets);
    CHECK(r.config.aggregate.max_api_hosts == d.aggregate.max_api_hosts);
    CHECK(r.config.aggregate.max_client_api_hosts == d.aggregate.max_client_api_hosts);
    CHECK(r.config.aggregate.max_cohorts == d.aggregate.max_cohorts);
    CHECK(r.config.cohorts_file.empty());
    // The detection defaults and the shipped rules.
    const auto &a = r.config.detect, &b = d.detect;
    CHECK(a.interval_ms == b.interval_ms);
    CHECK(a.realert_ms == b.realert_ms);
    CHECK(a.resolve_after_ms == b.resolve_after_ms);
    CHECK(a.storm_limit == b.storm_limit);
    CHECK(a.max_open == b.max_open);
    CHECK(a.max_baselines == b.max_baselines);
    CHECK(a.host_name == b.host_name);
    CHECK(a.allow.empty());
    CHECK(a.sni_scale.empty());
    REQUIRE(a.rules.size() == b.rules.size());
    for (size_t i = 0; i < a.rules.size(); i++) {
        INFO("rule " << b.rules[i].name);
        CHECK(a.rules[i].same(b.rules[i]));
    }
    CHECK_FALSE(r.config.outputs_configured);
}

TEST_CASE("Aggregation settings and the cohorts file", "[config]")
{
    auto dir = std::filesystem::temp_directory_path();
    auto cohorts = dir / "exfilmon-test-cohorts.txt";
    std::ofstream(cohorts) << "198.51.100.0/24 partner-a\n2001:db8::/32 partner-b\n";
    auto r = parse_config("[aggregate]\nwindows = [\"30s\", \"2h\"]\nclient_prefix_v6 = 56\n"
                          "subnet_prefix_v6 = 40\ncohorts_file = \"" +
                              cohorts.string() + "\"\n",
                          "t.toml");
    for (auto &i : r.issues)
        FAIL(i.format());
    CHECK(r.config.aggregate.windows_ms == std::vector<uint64_t>{30000, 7200000});
    CHECK(r.config.aggregate.client_prefix_v6 == 56);
    CHECK(r.config.aggregate.subnet_prefix_v6 == 40);
    REQUIRE(r.config.aggregate.cohorts.size() == 2);
    CHECK(r.config.aggregate.cohorts[0].label == "partner-a");

    std::ofstream(cohorts) << "198.51.100.0/24 partner-a\nnot-a-cidr x\n";
    auto bad = parse_config("[aggregate]\ncohorts_file = \"" + cohorts.string() + "\"\n", "t.toml");
    REQUIRE(bad.issues.size() == 1);
    CHECK(bad.issues[0].format().rfind("t.toml:2:16: cohorts_file: " + cohorts.string() + ":2:",
                                       0) == 0);
    std::filesystem::remove(cohorts);

    CHECK(only_issue("[aggregate]\nwindows = [\"1m\", \"1m\"]\n") ==
          "t.toml:2:18: windows: duplicate window");
    CHECK(only_issue("[aggregate]\nwindows = [\"1 minute\"]\n") ==
          "t.toml:2:12: windows: '1 minute' is not a duration (e.g. 500ms, 5s, 10m, 1h)");
    CHECK(only_issue("[aggregate]\nclient_prefix_v4 = 40\n") ==
          "t.toml:2:20: client_prefix_v4: 40 is out of range [8, 32]");
    auto longer = parse_config("[aggregate]\nclient_prefix_v4 = 16\n", "t.toml");
    REQUIRE(longer.issues.size() == 1);
    CHECK(longer.issues[0].format().rfind("t.toml:1:1: [aggregate]: ", 0) == 0);
}

TEST_CASE("Values are read", "[config]")
{
    auto r = parse_config(R"(
[capture]
interfaces = ["eth0", "eth1"]
[bpf]
flow_table_size = 4096
client_table_size = 1024
ringbuf_size = "1MiB"
tls_ports = [443, 9443, 10443]
request_min_bytes = 60
[daemon]
report_interval = "2s"
[log]
level = "debug"
)",
                          "t.toml");
    REQUIRE(r.ok());
    CHECK(r.config.interfaces == std::vector<std::string>{"eth0", "eth1"});
    CHECK(r.config.bpf.flow_table_size == 4096);
    CHECK(r.config.bpf.client_table_size == 1024);
    CHECK(r.config.bpf.ringbuf_bytes == (1u << 20));
    CHECK(r.config.bpf.tls_ports == std::vector<uint16_t>{443, 9443, 10443});
    CHECK(r.config.bpf.request_min_bytes == 60);
    CHECK(r.config.report_interval_ms == 2000);
    CHECK(r.config.log_level == "debug");
}

TEST_CASE("Each configuration error names FILE:LINE:COLUMN", "[config]")
{
    CHECK(only_issue("[bpf]\nflow_tabel_size = 5\n") ==
          "t.toml:2:19: unknown key 'flow_tabel_size' in [bpf]");
    CHECK(only_issue("[bpf]\nflow_table_size = \"big\"\n") ==
          "t.toml:2:19: flow_table_size: expected an integer");
    // A float where an integer belongs, also one no integer type holds
    // (converting that one would be undefined behaviour).
    CHECK(only_issue("[bpf]\nflow_table_size = 4096.0\n") ==
          "t.toml:2:19: flow_table_size: expected an integer");
    CHECK(only_issue("[bpf]\ntls_ports = [443, 1e43]\n") ==
          "t.toml:2:19: tls_ports: expected an integer");
    CHECK(only_issue("[bpf]\nflow_table_size = 10\n") ==
          "t.toml:2:19: flow_table_size: 10 is out of range [1024, 67108864]");
    CHECK(only_issue("[bpf]\nringbuf_size = \"3MiB\"\n") ==
          "t.toml:2:16: ringbuf_size: must be a power of two between 64KiB and 1GiB");
    CHECK(only_issue("[bpf]\nringbuf_size = \"4 lots\"\n") ==
          "t.toml:2:16: ringbuf_size: '4 lots' is not a size (e.g. 4MiB, 500KB, 65536)");
    CHECK(only_issue("[bpf]\ntls_ports = [443, 70000]\n") ==
          "t.toml:2:19: tls_ports: 70000 is out of range [1, 65535]");
    CHECK(only_issue("[bpf]\nrequest_min_bytes = 0\n") ==
          "t.toml:2:21: request_min_bytes: 0 is out of range [1, 65535]");
    CHECK(only_issue("[daemon]\nreport_interval = \"5 minutes\"\n") ==
          "t.toml:2:19: report_interval: '5 minutes' is not a duration (e.g. 500ms, 5s, 10m, 1h)");
    CHECK(only_issue("[log]\nlevel = \"loud\"\n") ==
          "t.toml:2:9: level: expected one of trace, debug, info, warn, error");
    CHECK(only_issue("bpf = 3\n") == "t.toml:1:7: bpf: expected a table [bpf]");
    CHECK(only_issue("[capture]\ninterfaces = \"eth0\"\n") ==
          "t.toml:2:14: interfaces: expected an array of interface names");
    auto syntax = only_issue("[bpf\n");
    CHECK(syntax.rfind("t.toml:1:", 0) == 0);
    auto r = load_config("/nonexistent/exfilmon.toml");
    REQUIRE(r.issues.size() == 1);
    CHECK(r.issues[0].format() == "/nonexistent/exfilmon.toml: cannot read the configuration file: "
                                  "No such file or directory");
}

TEST_CASE("report_interval is 0s (no report) or at least 100ms", "[config]")
{
    auto off = parse_config("[daemon]\nreport_interval = \"0s\"\n", "t.toml");
    CHECK(off.ok());
    CHECK(off.config.report_interval_ms == 0);
    CHECK(parse_config("[daemon]\nreport_interval = \"100ms\"\n", "t.toml")
              .config.report_interval_ms == 100);
    CHECK(only_issue("[daemon]\nreport_interval = \"50ms\"\n") ==
          "t.toml:2:19: report_interval: must be 0s (off) or at least 100ms");
}

TEST_CASE("requests rules are read for every entity kind, thresholds and baselines",
          "[config][requests]")
{
    for (const char *kind :
         {"client", "subnet", "sni", "client_sni", "cohort", "host", "ja4", "ja4_sni"}) {
        INFO(kind);
        auto r = parse_config(std::string("[[rules]]\nname = \"calls\"\nentity = \"") + kind +
                                  "\"\nmetric = \"requests\"\nwindow = \"1h\"\n"
                                  "threshold = 20000\n"
                                  "baseline = { factor = 10.0, floor = 5000, learn = \"24h\" }\n",
                              "t.toml");
        REQUIRE(r.ok());
        REQUIRE(r.config.detect.rules.size() == 1);
        const auto &rule = r.config.detect.rules[0];
        CHECK(rule.metric == detect::Metric::requests);
        CHECK(rule.threshold == 20000);
        REQUIRE(rule.baseline);
        CHECK(rule.baseline->floor == 5000);
    }
}

TEST_CASE("Rules allow lists SNI overrides and outputs are read", "[config]")
{
    auto r = parse_config(R"(
[detect]
interval = "2s"
realert = "1m"
resolve_after = "30s"
storm_limit = 5
[[rules]]
name = "client-bulk-pull"
entity = "client"
metric = "bytes_out"
window = "5m"
threshold = "2GiB"
severity = "critical"
sustain = 2
[[rules]]
name = "fanout"
entity = "client_sni"
metric = "concurrent_flows"
window = "1m"
threshold = 32
mode = "shadow"
[[rules]]
name = "baseline"
entity = "sni"
metric = "bytes_out"
window = "1h"
baseline = { factor = 8.0, floor = "200MiB", learn = "24h" }
[[allow]]
cidr = "198.51.100.0/24"
[[allow]]
sni = "*.Backup.example.com"
rules = ["fanout"]
[sni_overrides."downloads.example.com"]
scale = 20.0
[[outputs]]
type = "syslog"
transport = "tcp"
address = "127.0.0.1:6514"
format = "rfc5424"
facility = "auth"
[[outputs]]
type = "json"
path = "-"
)",
                          "t.toml");
    for (auto &i : r.issues)
        FAIL(i.format());
    auto &d = r.config.detect;
    CHECK(d.interval_ms == 2000);
    CHECK(d.realert_ms == 60000);
    CHECK(d.resolve_after_ms == 30000);
    CHECK(d.storm_limit == 5);
    REQUIRE(d.rules.size() == 3);
    CHECK(d.rules[0].threshold == double(2ull << 30));
    CHECK(d.rules[0].severity == detect::Severity::critical);
    CHECK(d.rules[0].sustain == 2);
    CHECK(d.rules[0].window_ms == 300000);
    CHECK(d.rules[1].entity == agg::EntityKind::client_api_host);
    CHECK(d.rules[1].threshold == 32);
    CHECK(d.rules[1].shadow);
    CHECK(d.rules[2].entity == agg::EntityKind::api_host);
    REQUIRE(d.rules[2].baseline);
    CHECK(d.rules[2].baseline->factor == 8.0);
    CHECK(d.rules[2].baseline->floor == double(200ull << 20));
    CHECK(d.rules[2].baseline->learn_ms == 86400000);
    CHECK_FALSE(d.rules[2].threshold);
    // The 5m rule window joined the aggregation windows.
    CHECK(r.config.aggregate.windows_ms ==
          std::vector<uint64_t>{60000, 600000, 3600000, 86400000, 300000});
    REQUIRE(d.allow.size() == 2);
    CHECK(d.allow[0].cidr);
    CHECK(d.allow[1].sni == "*.backup.example.com");
    CHECK(d.allow[1].rules == std::vector<std::string>{"fanout"});
    CHECK(d.sni_scale.at("downloads.example.com") == 20.0);
    REQUIRE(r.config.outputs.size() == 2);
    CHECK(r.config.outputs[0].transport == output::Transport::tcp);
    CHECK(r.config.outputs[0].facility == 4);
    CHECK(r.config.outputs[0].origin == "t.toml:35");
    CHECK(r.config.outputs[1].type == output::OutputType::json);
    CHECK(r.config.outputs[1].path == "-");
    // No rules at all.
    auto none = parse_config("rules = []\n", "t.toml");
    REQUIRE(none.ok());
    CHECK(none.config.detect.rules.empty());
}

TEST_CASE("Rule and output errors name FILE:LINE:COLUMN", "[config]")
{
    const std::string head = "[[rules]]\nname = \"r\"\nentity = \"client\"\n";
    CHECK(only_issue(head + "metric = \"bytes\"\nthreshold = 5\n") ==
          "t.toml:4:10: metric: expected bytes_out, bytes_in, tls_flows, requests, "
          "concurrent_flows, distinct_clients, distinct_subnets, out_in_ratio or "
          "distinct_sensors");
    CHECK(only_issue(head + "metric = \"requests\"\nthreshold = \"20MiB\"\n") ==
          "t.toml:5:13: threshold: requests takes a count (an integer)");
    CHECK(only_issue(head + "metric = \"bytes_out\"\nthreshold = \"2 gigs\"\n") ==
          "t.toml:5:13: threshold: '2 gigs' is not a size (e.g. 4MiB, 500KB, 65536)");
    CHECK(only_issue(head + "metric = \"tls_flows\"\nthreshold = \"20MiB\"\n") ==
          "t.toml:5:13: threshold: tls_flows takes a count (an integer)");
    CHECK(only_issue(head + "metric = \"distinct_clients\"\nthreshold = 5\n") ==
          "t.toml:4:10: metric: distinct_clients applies to subnet, sni, cohort, host, ja4 and "
          "ja4_sni only, not "
          "client");
    CHECK(only_issue(head + "metric = \"bytes_out\"\n") ==
          "t.toml:1:1: [[rules]]: 'r' needs a threshold, a baseline or both");
    CHECK(only_issue(head + "metric = \"bytes_out\"\nthreshold = 5\nthresold = 6\n") ==
          "t.toml:6:12: unknown key 'thresold' in [[rules]]");
    CHECK(only_issue(head + "metric = \"bytes_out\"\nthreshold = 5\nseverity = \"high\"\n") ==
          "t.toml:6:12: severity: expected info, warning or critical");
    CHECK(only_issue(head + "metric = \"bytes_out\"\nthreshold = 5\nwindow = \"10 min\"\n") ==
          "t.toml:6:10: window: '10 min' is not a duration (e.g. 500ms, 5s, 10m, 1h)");
    CHECK(only_issue(head + "metric = \"bytes_out\"\nbaseline = { factor = 0.5 }\n") ==
          "t.toml:5:23: factor: must be greater than 1");
    CHECK(only_issue(head + "metric = \"bytes_out\"\nthreshold = 5\n" + head +
                     "metric = \"bytes_out\"\nthreshold = 5\n") ==
          "t.toml:7:8: name: another rule is already named 'r'");
    CHECK(only_issue("[[allow]]\ncidr = \"198.51.100.0/33\"\n")
              .rfind("t.toml:2:8: cidr: '198.51.100.0/33': ", 0) == 0);
    CHECK(only_issue("[[allow]]\ncomment = \"x\"\n") ==
          "t.toml:1:1: [[allow]]: give exactly one of cidr, sni or cohort");
    CHECK(only_issue("[[allow]]\ncidr = \"192.0.2.0/24\"\nrules = [\"nope\"]\n") ==
          "t.toml:1:1: rules: no rule is named 'nope'");
    CHECK(only_issue("[sni_overrides.\"a.example\"]\nscale = 0\n") ==
          "t.toml:2:9: scale: must be greater than 0");
    CHECK(only_issue("[[outputs]]\ntransport = \"tcp\"\n") ==
          "t.toml:1:1: [[outputs]]: a tcp syslog output needs an address (host:port)");
    CHECK(only_issue("[[outputs]]\ntransport = \"tcp\"\naddress = \"collector\"\n") ==
          "t.toml:3:11: address: expected host:port (or [IPv6]:port)");
    CHECK(only_issue("[[outputs]]\nformat = \"leef\"\n") ==
          "t.toml:2:10: format: expected rfc5424, rfc5424-json, cef or rfc3164");
    CHECK(only_issue("[[outputs]]\nfacility = \"local9\"\n") ==
          "t.toml:2:12: facility: 'local9' is not a syslog facility (e.g. local0, auth, daemon)");
    CHECK(only_issue("[[outputs]]\ntransport = \"tls\"\naddress = \"127.0.0.1:6514\"\n") ==
          "t.toml:1:1: [[outputs]]: a tls output needs ca_file (the CA the collector's certificate "
          "chains to)");
    CHECK(only_issue("[[outputs]]\ntype = \"json\"\nformat = \"cef\"\n") ==
          "t.toml:3:10: format: only for syslog outputs");
    CHECK(only_issue("[detect]\ninterval = \"5ms\"\n") ==
          "t.toml:2:12: interval: must be between 100ms and 1m");
}

TEST_CASE("Control socket and metrics settings and their errors", "[config]")
{
    Config d;
    CHECK(d.control_socket == "/run/exfilmon/control.sock");
    CHECK(d.control_group.empty());
    CHECK(d.metrics_enabled);
    CHECK(d.metrics_host == "127.0.0.1");
    CHECK(d.metrics_port == 9464);

    auto r = parse_config("[control]\nsocket = \"/tmp/x/c.sock\"\ngroup = \"exfilmon\"\n"
                          "[metrics]\nlisten = \"[::1]:9100\"\n",
                          "t.toml");
    for (auto &i : r.issues)
        FAIL(i.format());
    CHECK(r.config.control_socket == "/tmp/x/c.sock");
    CHECK(r.config.control_group == "exfilmon");
    CHECK(r.config.metrics_host == "::1");
    CHECK(r.config.metrics_port == 9100);
    auto off = parse_config("[metrics]\nenabled = false\nlisten = \"0.0.0.0:1\"\n", "t.toml");
    REQUIRE(off.ok());
    CHECK_FALSE(off.config.metrics_enabled);
    CHECK(off.config.metrics_host == "0.0.0.0");
    CHECK(off.config.metrics_port == 1);

    CHECK(only_issue("[control]\nsocket = \"run/c.sock\"\n") ==
          "t.toml:2:10: socket: expected an absolute path of at most 107 bytes");
    CHECK(only_issue("[control]\nsocket = \"/" + std::string(107, 'a') + "\"\n") ==
          "t.toml:2:10: socket: expected an absolute path of at most 107 bytes");
    CHECK(only_issue("[control]\nsocket = 5\n") == "t.toml:2:10: socket: expected a string");
    CHECK(only_issue("[control]\ngroup = \"a b\"\n") ==
          "t.toml:2:9: group: expected a group name (\"\": root only)");
    CHECK(only_issue("[control]\nmode = \"0666\"\n") ==
          "t.toml:2:8: unknown key 'mode' in [control]");
    CHECK(only_issue("[metrics]\nenabled = \"no\"\n") ==
          "t.toml:2:11: enabled: expected true or false");
    for (auto bad : {"localhost:9464", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "::1:9464",
                     "[127.0.0.1]:80", "127.0.0.1:http"})
        CHECK(
            only_issue(std::string("[metrics]\nlisten = \"") + bad + "\"\n") ==
            "t.toml:2:10: listen: expected ADDRESS:PORT like \"127.0.0.1:9464\" or \"[::1]:9464\"");
    CHECK(only_issue("control = 1\n") == "t.toml:1:11: control: expected a table [control]");
}

TEST_CASE("The [fleet] table: absent no export, its values and their errors", "[config][fleet]")
{
    Config d;
    CHECK_FALSE(d.fleet.enabled);
    auto r = parse_config("[fleet]\n", "t.toml");
    REQUIRE(r.ok());
    CHECK(r.config.fleet.enabled);
    CHECK(r.config.fleet.clickhouse == "http://127.0.0.1:8123");
    CHECK(r.config.fleet.database == "exfilmon");
    CHECK(r.config.fleet.user == "default");
    CHECK(r.config.fleet.interval_ms == 10000);
    CHECK(r.config.fleet.timeout_ms == 10000);
    CHECK(r.config.fleet.evaluate_in_memory);

    auto set =
        parse_config("[fleet]\nclickhouse = \"https://[2001:db8::5]:8443/\"\n"
                     "database = \"edge_fleet\"\nuser = \"exfilmon\"\n"
                     "password_file = \"/etc/exfilmon/ch.pw\"\nsensor = \"edge-7\"\n"
                     "interval = \"30s\"\nca_file = \"/etc/exfilmon/ca.pem\"\ntimeout = \"2m\"\n"
                     "evaluation = \"sql\"\n",
                     "t.toml");
    for (auto &i : set.issues)
        FAIL(i.format());
    auto &f = set.config.fleet;
    CHECK(f.clickhouse == "https://[2001:db8::5]:8443/");
    CHECK(f.database == "edge_fleet");
    CHECK(f.user == "exfilmon");
    CHECK(f.password_file == "/etc/exfilmon/ch.pw");
    CHECK(f.sensor == "edge-7");
    CHECK(f.interval_ms == 30000);
    CHECK(f.ca_file == "/etc/exfilmon/ca.pem");
    CHECK(f.timeout_ms == 120000);
    CHECK_FALSE(f.evaluate_in_memory);

    CHECK(only_issue("[fleet]\nclickhouse = \"127.0.0.1:8123\"\n") ==
          "t.toml:2:14: clickhouse: '127.0.0.1:8123': expected http://HOST[:PORT] or "
          "https://HOST[:PORT]");
    CHECK(only_issue("[fleet]\nclickhouse = \"http://h:70000\"\n") ==
          "t.toml:2:14: clickhouse: 'http://h:70000': port 70000 is outside 1..65535");
    CHECK(only_issue("[fleet]\ndatabase = \"exf-fleet\"\n") ==
          "t.toml:2:12: database: 'exf-fleet' may hold only letters, digits and '_'");
    CHECK(only_issue("[fleet]\npassword_file = \"ch.pw\"\n") ==
          "t.toml:2:17: password_file: expected an absolute path");
    CHECK(only_issue("[fleet]\npassword = \"x\"\n") ==
          "t.toml:2:12: unknown key 'password' in [fleet]");
    CHECK(only_issue("[fleet]\ninterval = \"500ms\"\n") ==
          "t.toml:2:12: interval: must be between 1s and 1h");
    CHECK(only_issue("[fleet]\ntimeout = \"20m\"\n") ==
          "t.toml:2:11: timeout: must be between 1s and 10m");
    CHECK(only_issue("[fleet]\nevaluation = \"fast\"\n") ==
          "t.toml:2:14: evaluation: 'fast': expected \"memory\" or \"sql\"");
    CHECK(only_issue("[fleet]\nuser = \"\"\n") == "t.toml:2:8: user: must be 1 to 64 characters");
}

namespace {

// One row of docs/configuration.md: "[section] key" and its type column.
struct DocRow {
    std::string key, type;
};

// The "[section]" a "## [section] ..." heading names; "" for other headings.
std::string heading_section(const std::string &line)
{
    auto b = line.find('['), e = line.rfind(']');
    return b == std::string::npos ? "" : line.substr(b, e - b + 1);
}

// The document's tables: "## [section]" headings, then rows "| `key` | type | ...".
std::vector<DocRow> documented_rows()
{
    std::ifstream in(exf::test::source_dir() / "docs" / "configuration.md");
    REQUIRE(in);
    std::vector<DocRow> rows;
    std::string line, section;
    while (std::getline(in, line)) {
        if (line.rfind("## ", 0) == 0) {
            section = heading_section(line);
            continue;
        }
        if (section.empty() || line.rfind("| `", 0) != 0)
            continue;
        auto e = line.find('`', 3);
        // The type column: between the second and third unescaped '|'.
        std::vector<size_t> bars;
        for (size_t i = 0; i < line.size(); i++)
            if (line[i] == '|' && (i == 0 || line[i - 1] != '\\'))
                bars.push_back(i);
        REQUIRE(bars.size() >= 3);
        auto type = line.substr(bars[1] + 1, bars[2] - bars[1] - 1);
        type = type.substr(type.find_first_not_of(' '));
        type = type.substr(0, type.find_last_not_of(' ') + 1);
        rows.push_back({section + " " + line.substr(3, e - 3), type});
    }
    return rows;
}

// A document setting that key to `value` (TOML), as the last line, with what
// else its table needs to be valid. Issues on that last line are about the
// value; issues elsewhere (a udp output without address) are not.
std::string document_with(const std::string &key, const std::string &value)
{
    auto sp = key.find(' ');
    std::string section = key.substr(0, sp), name = key.substr(sp + 1);
    auto rest = [&](std::vector<std::pair<std::string, std::string>> base) {
        std::string s;
        for (auto &[k, v] : base)
            if (k != name)
                s += k + " = " + v + "\n";
        return s;
    };
    if (section == "[[rules]]") {
        std::string base = "[[rules]]\n" + rest({{"name", "\"r\""},
                                                 {"entity", "\"subnet\""},
                                                 {"metric", "\"bytes_out\""},
                                                 {"threshold", "1"}});
        if (name.rfind("baseline.", 0) == 0)
            return base + "baseline = { " + name.substr(9) + " = " + value + " }\n";
        return base + name + " = " + value + "\n";
    }
    if (section == "[[allow]]") {
        bool names_one = name == "cidr" || name == "sni" || name == "cohort";
        return "[[allow]]\n" + std::string(names_one ? "" : "cidr = \"198.51.100.0/24\"\n") + name +
               " = " + value + "\n";
    }
    if (section == "[sni_overrides.\"NAME\"]")
        return "[sni_overrides.\"api.example.com\"]\n" + name + " = " + value + "\n";
    if (section == "[[outputs]]") {
        std::string base = name == "path" ? "type = \"json\"\n" : "";
        if (name == "ca_file" || name == "server_name" || name == "cert_file" || name == "key_file")
            base = "transport = \"tls\"\naddress = \"127.0.0.1:6514\"\n" +
                   rest({{"ca_file", "\"/etc/ssl/certs/ca-certificates.crt\""}});
        return "[[outputs]]\n" + base + name + " = " + value + "\n";
    }
    return section + "\n" + name + " = " + value + "\n";
}

// Whether the parser takes `value` for the key: no issue on its line.
bool accepts(const std::string &key, const std::string &value)
{
    auto doc = document_with(key, value);
    auto last_line = uint32_t(std::count(doc.begin(), doc.end(), '\n'));
    auto r = parse_config(doc, "doc.toml");
    for (auto &i : r.issues)
        if (i.line == last_line) {
            UNSCOPED_INFO(key << " = " << value << ": " << i.format());
            return false;
        }
    UNSCOPED_INFO(key << " = " << value << ": accepted");
    return true;
}

std::string quoted(const std::string &s) { return "\"" + s + "\""; }
std::string ms(uint64_t v) { return quoted(std::to_string(v) + "ms"); }

template <typename Fn>
std::string array_of(uint64_t n, Fn element)
{
    std::string s = "[";
    for (uint64_t i = 0; i < n; i++)
        s += (i ? ", " : "") + element(i);
    return s + "]";
}

// Checks the key against its documented type: the bounds are accepted, just
// outside them is refused, and so is a value of another type. Types without
// bounds (paths, names, CIDRs) get the wrong-type check only.
void check_documented_type(const DocRow &row)
{
    INFO(row.key << " documented as: " << row.type);
    const auto &key = row.key;
    const auto &type = row.type;
    std::smatch m;
    auto re = [&](const char *pattern) { return std::regex_match(type, m, std::regex(pattern)); };
    auto n = [&](int i) { return uint64_t(std::stoull(m[i].str())); };
    auto size_of = [&](int i) {
        auto v = parse_size(m[i].str());
        REQUIRE(v);
        return *v;
    };
    auto dur_of = [&](int i) {
        auto v = parse_duration_ms(m[i].str());
        REQUIRE(v);
        return *v;
    };
    if (re("boolean")) {
        CHECK(accepts(key, "true"));
        CHECK(accepts(key, "false"));
        CHECK_FALSE(accepts(key, "1"));
        return;
    }
    // Every other type refuses a boolean.
    CHECK_FALSE(accepts(key, "true"));
    if (re("integer (\\d+)\\.\\.(\\d+)")) {
        CHECK(accepts(key, std::to_string(n(1))));
        CHECK(accepts(key, std::to_string(n(2))));
        if (n(1) > 0)
            CHECK_FALSE(accepts(key, std::to_string(n(1) - 1)));
        CHECK_FALSE(accepts(key, std::to_string(n(2) + 1)));
        CHECK_FALSE(accepts(key, quoted(std::to_string(n(1)))));
    } else if (re("size, power of two, (\\S+)\\.\\.(\\S+)")) {
        CHECK(accepts(key, quoted(m[1].str())));
        CHECK(accepts(key, std::to_string(size_of(2))));
        CHECK_FALSE(accepts(key, std::to_string(size_of(1) / 2)));
        CHECK_FALSE(accepts(key, std::to_string(size_of(2) * 2)));
        CHECK_FALSE(accepts(key, std::to_string(size_of(1) + 1)));
    } else if (re("duration (\\S+)\\.\\.(\\S+)")) {
        CHECK(accepts(key, ms(dur_of(1))));
        CHECK(accepts(key, quoted(m[2].str())));
        if (dur_of(1) > 0)
            CHECK_FALSE(accepts(key, ms(dur_of(1) - 1)));
        CHECK_FALSE(accepts(key, ms(dur_of(2) + 1)));
        CHECK_FALSE(accepts(key, std::to_string(dur_of(1))));
    } else if (re("duration >= (\\S*\\d\\S*)")) {
        CHECK(accepts(key, quoted(m[1].str())));
        CHECK(accepts(key, quoted("30d")));
        CHECK_FALSE(accepts(key, ms(dur_of(1) - 1)));
    } else if (re("number > (\\S+)")) {
        double lo = std::stod(m[1].str());
        CHECK_FALSE(accepts(key, std::to_string(lo)));
        CHECK(accepts(key, std::to_string(lo + 0.001)));
        CHECK_FALSE(accepts(key, "\"2\""));
    } else if (re("string, (\\d+)\\.\\.(\\d+) chars")) {
        CHECK(accepts(key, quoted(std::string(n(1), 'a'))));
        CHECK(accepts(key, quoted(std::string(n(2), 'a'))));
        if (n(1) > 0)
            CHECK_FALSE(accepts(key, quoted(std::string(n(1) - 1, 'a'))));
        CHECK_FALSE(accepts(key, quoted(std::string(n(2) + 1, 'a'))));
    } else if (re("array of (\\d+)\\.\\.(\\d+) ports")) {
        auto port = [](uint64_t i) { return std::to_string(1000 + i); };
        CHECK(accepts(key, array_of(n(1), port)));
        CHECK(accepts(key, array_of(n(2), port)));
        if (n(1) > 0)
            CHECK_FALSE(accepts(key, array_of(n(1) - 1, port)));
        CHECK_FALSE(accepts(key, array_of(n(2) + 1, port)));
        CHECK(accepts(key, "[1, 65535]"));
        CHECK_FALSE(accepts(key, "[0]"));
        CHECK_FALSE(accepts(key, "[65536]"));
        CHECK_FALSE(accepts(key, "[443, 443]"));
    } else if (re("array of (\\d+)\\.\\.(\\d+) durations, (\\S+)\\.\\.(\\S+)")) {
        auto window = [](uint64_t i) { return quoted(std::to_string(i + 1) + "m"); };
        CHECK(accepts(key, array_of(n(1), window)));
        CHECK(accepts(key, array_of(n(2), window)));
        if (n(1) > 0)
            CHECK_FALSE(accepts(key, array_of(n(1) - 1, window)));
        CHECK_FALSE(accepts(key, array_of(n(2) + 1, window)));
        CHECK(accepts(key, "[" + ms(dur_of(3)) + ", " + quoted(m[4].str()) + "]"));
        CHECK_FALSE(accepts(key, "[" + ms(dur_of(3) - 1) + "]"));
        CHECK_FALSE(accepts(key, "[" + ms(dur_of(4) + 1) + "]"));
    } else if (type.find("\\|") != std::string::npos) {
        // `a` \| `b` or `"a"` \| `"b"`: each is taken, another word is not.
        std::regex item("`\"?([a-z0-9_-]+)\"?`");
        size_t values = 0;
        for (std::sregex_iterator it(type.begin(), type.end(), item), end; it != end;
             ++it, ++values)
            CHECK(accepts(key, quoted((*it)[1].str())));
        CHECK(values >= 2);
        CHECK_FALSE(accepts(key, quoted("no-such-value")));
    } else if (re("size")) {
        CHECK(accepts(key, quoted("1MiB")));
        CHECK(accepts(key, "0"));
        CHECK_FALSE(accepts(key, "-1"));
        CHECK_FALSE(accepts(key, quoted("4 parsecs")));
    } else {
        // Free-form (a path, a name, a CIDR, a threshold in the metric's
        // unit). Every integer key has bounds: the document gives them.
        CHECK(type.rfind("integer", 0) != 0);
    }
}

// The "[section] key" entries of exfilmon.toml(5) (its scdoc source): under
// each "## [section]" heading, a line "*key* (type; default)" per key.
std::set<std::string> man_page_keys()
{
    std::ifstream in(exf::test::source_dir() / "docs" / "man" / "exfilmon.toml.5.scd");
    REQUIRE(in);
    static const std::regex term(R"(^\*([a-z0-9_.]+)\* \()");
    std::set<std::string> keys;
    std::string line, section;
    std::smatch m;
    while (std::getline(in, line)) {
        if (line.rfind("## ", 0) == 0)
            section = heading_section(line);
        else if (!section.empty() && std::regex_search(line, m, term))
            keys.insert(section + " " + m[1].str());
    }
    return keys;
}

// A reference (docs/configuration.md, the man page) lists every key the
// parser accepts and no other.
void check_documents_exactly_the_parser_keys(const std::set<std::string> &documented)
{
    auto accepted = config_keys();
    std::set<std::string> keys(accepted.begin(), accepted.end());
    REQUIRE(keys.size() > 50);
    for (auto &k : keys) {
        INFO("accepted, not documented: " << k);
        CHECK_FALSE(documented.count(k) == 0);
    }
    for (auto &k : documented) {
        INFO("documented, not accepted: " << k);
        CHECK_FALSE(keys.count(k) == 0);
    }
    std::string all;
    for (auto &k : keys)
        all += k + "\n";
    INFO(all);
    CHECK(documented == keys);
}

}  // namespace

TEST_CASE("docs/configuration.md documents exactly the keys the parser accepts", "[config]")
{
    std::set<std::string> documented;
    for (auto &row : documented_rows())
        documented.insert(row.key);
    check_documents_exactly_the_parser_keys(documented);
}

TEST_CASE("The exfilmon.toml(5) man page documents exactly the keys the parser accepts "
          "(as docs/configuration.md)",
          "[config]")
{
    check_documents_exactly_the_parser_keys(man_page_keys());
}

TEST_CASE("docs/configuration.md gives each key the type and range the parser takes", "[config]")
{
    auto rows = documented_rows();
    REQUIRE(rows.size() > 50);
    for (auto &row : rows)
        check_documented_type(row);
}

TEST_CASE("A configuration file writable by others is refused", "[config]")
{
    auto dir =
        std::filesystem::temp_directory_path() / ("exf-cfg-perm-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
    auto f = dir / "x.toml";
    std::ofstream(f) << "[log]\nlevel = \"info\"\n";
    std::filesystem::permissions(f, std::filesystem::perms::owner_read |
                                        std::filesystem::perms::owner_write);
    CHECK(load_config(f.string()).ok());
    std::filesystem::permissions(f, std::filesystem::perms::others_write,
                                 std::filesystem::perm_options::add);
    auto r = load_config(f.string());
    REQUIRE(r.issues.size() == 1);
    CHECK(r.issues[0].format() == f.string() + ": the file is writable by others (mode 0602): "
                                               "refusing it; remove that permission (chmod o-w)");
    // A world-writable directory without the sticky bit is refused too.
    std::filesystem::permissions(f, std::filesystem::perms::owner_read |
                                        std::filesystem::perms::owner_write);
    std::filesystem::permissions(dir, std::filesystem::perms::all);
    r = load_config(f.string());
    REQUIRE(r.issues.size() == 1);
    CHECK(r.issues[0].message.find("its directory") == 0);
    std::filesystem::remove_all(dir);
}

TEST_CASE("A TLS port listed twice is an error", "[config]")
{
    CHECK(only_issue("[bpf]\ntls_ports = [443, 8443, 443]\n") ==
          "t.toml:2:25: tls_ports: 443 is listed twice");
}

TEST_CASE("A file that cannot be the configuration says why, not FILE:0:0", "[config]")
{
    exf::test::TempDir d("exf-cfg-file");
    auto r = load_config(d.path.string());
    REQUIRE(r.issues.size() == 1);
    CHECK(r.issues[0].format() ==
          d.path.string() + ": cannot read the configuration file: Is a directory");
    r = load_config((d.path / "none.toml").string());
    REQUIRE(r.issues.size() == 1);
    CHECK(r.issues[0].format() ==
          (d.path / "none.toml").string() +
              ": cannot read the configuration file: No such file or directory");
}

TEST_CASE("load_config_for_run makes run's checks and reports them at their keys", "[config]")
{
    exf::test::TempDir d("exf-cfg-run");
    auto dir = d.path.string();
    // Directories that exist: accepted, and checking creates nothing.
    auto ok = d.write("ok.toml", "[[outputs]]\ntype = \"json\"\npath = \"" + dir +
                                     "/alerts.json\"\n"
                                     "spool_file = \"" +
                                     dir + "/spool\"\n");
    auto r = load_config_for_run(ok);
    for (auto &i : r.issues)
        FAIL(i.format());
    CHECK(r.warnings.empty());
    CHECK_FALSE(std::filesystem::exists(d.path / "alerts.json"));
    CHECK_FALSE(std::filesystem::exists(d.path / "spool"));

    // The second output's problems, at the second output's keys.
    auto bad = d.write("bad.toml", "[[outputs]]\ntype = \"json\"\n\n[[outputs]]\ntype = \"json\"\n"
                                   "path = \"" +
                                       dir + "\"\nspool_file = \"" + dir +
                                       "/no/spool\"\n"
                                       "[control]\ngroup = \"exf-no-such-group\"\n");
    r = load_config_for_run(bad);
    REQUIRE(r.issues.size() == 3);
    CHECK(r.issues[0].format() == bad + ":6:8: path " + dir + ": Is a directory");
    CHECK(r.issues[1].format() == bad + ":7:14: spool_file " + dir + "/no/spool: its directory " +
                                      dir + "/no: No such file or directory");
    CHECK(r.issues[2].format() == bad + ":9:9: group 'exf-no-such-group' does not exist");
    // load_config (replay, and the parse) does not look at the host.
    CHECK(load_config(bad).ok());

    // A name that does not resolve (.invalid never does): a warning.
    auto dns = d.write("dns.toml",
                       "[[outputs]]\ntransport = \"udp\"\naddress = \"collector.invalid:514\"\n");
    r = load_config_for_run(dns);
    CHECK(r.ok());
    REQUIRE(r.warnings.size() == 1);
    CHECK(r.warnings[0].format().rfind(
              dns + ":3:11: warning: address collector.invalid:514: resolve collector.invalid: ",
              0) == 0);

    // Addresses are checked by the parser itself: SIGHUP and replay refuse them too.
    CHECK(only_issue("[[outputs]]\ntransport = \"udp\"\naddress = \"127.0.0.1:99999\"\n") ==
          "t.toml:3:11: address 127.0.0.1:99999: bad port '99999'");
    CHECK(only_issue("[[outputs]]\ntransport = \"tcp\"\naddress = \"256.1.1.1:514\"\n") ==
          "t.toml:3:11: address 256.1.1.1:514: 256.1.1.1 is not an IPv4 address");
}

TEST_CASE("A spool_file on a read-only file system is a warning, a json path there an error",
          "[config]")
{
    if (!exf::test::require_root())
        return;
    exf::test::TempDir d("exf-cfg-ro");
    exf::test::TmpfsMount disk(d.path / "disk", 64 * 1024);
    disk.set_read_only(true);
    auto ro = disk.dir().string();
    // The output runs with its spool in memory and retries (output/spool.h):
    // said, not refused.
    auto spool =
        d.write("spool.toml", "[[outputs]]\ntype = \"json\"\nspool_file = \"" + ro + "/spool\"\n");
    auto r = load_config_for_run(spool);
    CHECK(r.ok());
    REQUIRE(r.warnings.size() == 1);
    CHECK(r.warnings[0].format() ==
          spool + ":3:14: warning: spool_file " + ro + "/spool: its directory " + ro +
              ": Read-only file system (alerts are kept in memory until it can "
              "be written)");
    // A json output cannot write its alerts at all.
    auto json =
        d.write("json.toml", "[[outputs]]\ntype = \"json\"\npath = \"" + ro + "/alerts.json\"\n");
    r = load_config_for_run(json);
    REQUIRE(r.issues.size() == 1);
    CHECK(r.issues[0].format() == json + ":3:8: path " + ro + "/alerts.json: its directory " + ro +
                                      ": Read-only file system");
}

TEST_CASE("A cohorts file writable by others is refused like the configuration file", "[config]")
{
    // A cohort label can exempt clients from rules: whoever writes the file
    // could exempt themselves.
    auto dir =
        std::filesystem::temp_directory_path() / ("exf-cohort-perm-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
    auto cohorts = dir / "cohorts.txt";
    std::ofstream(cohorts) << "198.51.100.0/24 partner\n";
    std::filesystem::permissions(cohorts, std::filesystem::perms::owner_read |
                                              std::filesystem::perms::owner_write);
    const std::string text = "[aggregate]\ncohorts_file = \"" + cohorts.string() + "\"\n";
    CHECK(parse_config(text, "x.toml").ok());
    std::filesystem::permissions(cohorts, std::filesystem::perms::others_write,
                                 std::filesystem::perm_options::add);
    auto r = parse_config(text, "x.toml");
    REQUIRE(r.issues.size() == 1);
    CHECK(r.issues[0].format() == "x.toml:2:16: cohorts_file " + cohorts.string() +
                                      ": the file is writable by others (mode 0602): refusing it; "
                                      "remove that permission (chmod o-w)");
    std::filesystem::remove_all(dir);
}
