// SPDX-License-Identifier: Apache-2.0
// A group spread over many networks (issue 19's scenario), end to end: a
// real nginx streams answers of a few KB as server-sent events (one chunk
// each) over TLS and HTTP/1.1 keep-alive; 60 addresses over 15 subnets (12
// IPv6 /48s and the three IPv4 documentation /24s) call it through one
// client stack (Python's http.client over ssl, scripts/api-calls.py), each
// member below every client and subnet rule. Around them, honest traffic:
// curl clients, a browser-like stack (curl with Chrome's cipher suites,
// groups and h2), a heavy client downloading 6 MiB (a thousand times the
// others), and two honest Python scripts with the group's very
// fingerprint calling 4 times a second before and during the pull: the
// level the cohort rule learns.
//
// The real daemon runs configs/exfilmon.toml's rules, read from the file
// and scaled to seconds of traffic:
//  - byte thresholds, floors and min_bytes_out divided by 64 (2 GiB
//    becomes 32 MiB, 512 MiB 8 MiB: the heavy client's 6 MiB stays below
//    each, as a heavy honest client does); counts and windows as shipped
//    (the seconds of traffic fall inside every window);
//  - the fingerprint cohort rule's window by 1800 (1 h becomes 2 s); its
//    learning time to 6 s, not 48 s, to keep the test short (the level
//    follows faster: each window weighs 1/3, not 1/24; the group, 60 times
//    the honest scripts' rate, crosses it all the same); its floor set as
//    docs/tuning.md says, above the busiest window of the honest cohorts
//    that burst: a round of the curl or the browser-like clients is 40 to
//    45 calls in one window, while their learned levels decay between
//    rounds (the time-scaled 11 would let them fire: a floor is the
//    deployment's own number, not the shipped one's scale).
// Exactly one alert may reach rsyslog and the JSON output: the group's
// ja4_sni cohort, naming its fingerprint, its 62 clients (the group and the
// two honest scripts), its 16 subnets and top clients from the cohort.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/netns.h"
#include "support/proc.h"
#include "support/servers.h"
#include "support/shipped_rules.h"
#include "support/test_env.h"

using namespace exf;
using namespace exf::test;
using namespace std::chrono_literals;

namespace {

constexpr const char *kCohortRule = "fingerprint-cohort-calls";
constexpr const char *kApiHost = "api.example.com";
// The cohort rule's floor here: calls in its 2 s window (see the top).
constexpr double kCohortFloor = 100;

// The scenario's client addresses.
struct Population {
    std::vector<std::string> group;           // the 60 members
    std::vector<std::string> honest_scripts;  // the group's stack, honest
    std::vector<std::string> curl_clients;    // ordinary curl
    std::vector<std::string> browsers;        // browser-like
    std::string heavy = "198.51.100.9";       // large downloads (curl)
};

Population make_population()
{
    Population p;
    for (int i = 0; i < 4; i++)
        for (auto net : {"192.0.2.", "198.51.100.", "203.0.113."})
            p.group.push_back(net + std::to_string(40 + i));
    for (int n = 0; n < 12; n++)  // /48s 2001:db8:10:: ... 2001:db8:1b::, four /64s each
        for (int c = 1; c <= 4; c++) {
            char a[64];
            std::snprintf(a, sizeof(a), "2001:db8:%x:%x::10", 0x10 + n, c);
            p.group.push_back(a);
        }
    p.honest_scripts = {"192.0.2.30", "2001:db8:60:1::10"};
    for (int i = 0; i < 8; i++)
        p.curl_clients.push_back("203.0.113." + std::to_string(10 + i));
    for (int i = 0; i < 4; i++)
        p.browsers.push_back("2001:db8:5" + std::to_string(i) + ":1::10");
    return p;
}

// The subnet (/24, /48) and client entity (/32, /64) of an address, at the
// shipped prefixes, as alerts print them.
std::string subnet_of(const std::string &a)
{
    if (a.find(':') == std::string::npos)
        return a.substr(0, a.rfind('.')) + ".0/24";
    auto parts = a.substr(0, a.find("::"));  // "2001:db8:10:1"
    return parts.substr(0, parts.rfind(':')) + "::/48";
}
std::string client_entity(const std::string &a)
{
    return a.find(':') == std::string::npos ? a : a.substr(0, a.find("::")) + "::/64";
}

// The shipped rules scaled to a few seconds of traffic (see the top).
std::string scaled_rules()
{
    auto rules = shipped_rules();
    bool cohort_rule = false;
    for (auto &r : rules) {
        if (detect::metric_is_size(r.metric)) {
            if (r.threshold)
                *r.threshold /= 64;
            if (r.baseline)
                r.baseline->floor /= 64;
        }
        r.min_bytes_out /= 64;
        if (r.name == kCohortRule) {
            cohort_rule = true;
            REQUIRE(r.metric == detect::Metric::requests);
            REQUIRE(r.window_ms == 3'600'000);
            REQUIRE(r.baseline);
            r.window_ms = 2000;
            r.baseline->floor = kCohortFloor;
            r.baseline->learn_ms = 6000;
        }
    }
    REQUIRE(cohort_rule);
    return rules_toml(rules);
}

// One record of the JSON output: state, rule and the cohort fields.
struct JsonAlert {
    std::string state, rule, entity_kind, entity, ja4;
    double value = 0, threshold = 0, baseline = 0;
    uint64_t distinct_clients = 0, distinct_subnets = 0;
    uint64_t requests = 0, bytes_per_request = 0;
    std::vector<std::string> top_clients;
};

std::vector<JsonAlert> read_json_alerts(const std::filesystem::path &file)
{
    std::vector<JsonAlert> out;
    std::istringstream in(slurp(file));
    for (std::string line; std::getline(in, line);) {
        auto j = nlohmann::json::parse(line);
        const auto &x = j.at("exfilmon");
        JsonAlert a;
        a.state = x.at("state");
        a.rule = j.at("rule").at("name");
        a.entity_kind = x.at("entity_kind");
        a.entity = x.at("entity");
        a.ja4 = x.value("ja4", "");
        a.value = x.at("value");
        a.threshold = x.at("threshold");
        a.baseline = x.value("baseline", 0.0);
        a.distinct_clients = x.value("distinct_clients", uint64_t(0));
        a.distinct_subnets = x.value("distinct_subnets", uint64_t(0));
        a.requests = x.value("requests", uint64_t(0));
        a.bytes_per_request = x.value("bytes_per_request", uint64_t(0));
        for (auto &c : x.value("top_clients", nlohmann::json::array()))
            a.top_clients.push_back(c.at("client"));
        out.push_back(a);
    }
    return out;
}

// An RFC 5424 structured-data parameter's values (repeated ones in order).
std::vector<std::string> sd_values(const std::string &msg, const std::string &name)
{
    std::vector<std::string> v;
    std::regex re(" " + name + R"(="([^"]*)\")");
    for (auto it = std::sregex_iterator(msg.begin(), msg.end(), re); it != std::sregex_iterator();
         ++it)
        v.push_back((*it)[1]);
    return v;
}

// scripts/api-calls.py from `sources`: one thread and one keep-alive TLS
// connection each, `requests` calls of /v1/stream, `interval` s apart;
// `first_calls` (if given) says "first calls answered" once each source had
// its first answer.
std::vector<std::string> api_calls(const std::vector<std::string> &sources,
                                   const std::filesystem::path &ca, int requests, double interval,
                                   const std::filesystem::path &first_calls = {})
{
    std::vector<std::string> argv = {
        "python3",    (source_dir() / "scripts" / "api-calls.py").string(),
        "--server4",  "192.0.2.1",
        "--server6",  "2001:db8::1",
        "--host",     kApiHost,
        "--cafile",   ca.string(),
        "--path",     "/v1/stream",
        "--requests", std::to_string(requests),
        "--interval", std::to_string(interval)};
    for (auto &s : sources) {
        argv.push_back("--source");
        argv.push_back(s);
    }
    if (!first_calls.empty()) {
        argv.push_back("--first-calls-file");
        argv.push_back(first_calls.string());
    }
    return argv;
}

// curl from `source`, HTTP/1.1; browser-like: Chrome's cipher suites and
// groups, h2.
CurlJob curl_job(const std::string &ns, const std::filesystem::path &ca, const std::string &source,
                 std::vector<std::string> urls, bool browser = false)
{
    CurlJob j;
    j.ns = ns;
    j.source = source;
    j.server = source.find(':') != std::string::npos ? "2001:db8::1" : "192.0.2.1";
    j.ca_cert = ca;
    j.urls = std::move(urls);
    if (browser) {
        j.http2 = true;
        j.extra_args = {"--ciphers",
                        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
                        "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:AES128-GCM-SHA256:"
                        "AES256-GCM-SHA384:AES128-SHA:AES256-SHA",
                        "--curves", "X25519:P-256:P-384"};
    }
    return j;
}

// The ordinary clients' calls (curl, browser-like) and, with `heavy`, the
// heavy client's 3 x 2 MiB.
void ordinary_round(Lab &lab, const std::string &ns, const std::filesystem::path &ca,
                    const Population &pop, bool heavy)
{
    auto items = NginxServer::url(kApiHost, "/v1/items");
    auto stream = NginxServer::url(kApiHost, "/v1/stream");
    std::vector<CurlJob> jobs;
    for (auto &c : pop.curl_clients)
        jobs.push_back(curl_job(ns, ca, c, {items, stream, items, stream, items}));
    for (auto &b : pop.browsers)
        jobs.push_back(curl_job(ns, ca, b, std::vector<std::string>(10, items), true));
    if (heavy)
        jobs.push_back(
            curl_job(ns, ca, pop.heavy,
                     std::vector<std::string>(3, NginxServer::url(kApiHost, "/download/2m"))));
    for (auto &r : run_curls(lab, jobs)) {
        INFO(r.output);
        REQUIRE(r.ok());
    }
}

std::string daemon_config(const Lab &lab, const RsyslogServer &rsyslog,
                          const std::filesystem::path &alerts_json)
{
    std::ostringstream c;
    c << "[bpf]\npin = false\n"
         "[daemon]\nreport_interval = \"0s\"\nharvest_interval = \"200ms\"\nstate_dir = \"\"\n"
         "[control]\nsocket = \""
      << (lab.dir() / "control.sock").string()
      << "\"\n[metrics]\nenabled = false\n"
         "[detect]\ninterval = \"200ms\"\nrealert = \"1s\"\nhost_name = \"exf-e2e\"\n"
      << scaled_rules() << "[[outputs]]\ntype = \"syslog\"\ntransport = \"tcp\"\naddress = \""
      << rsyslog.address() << ":" << rsyslog.port()
      << "\"\nformat = \"rfc5424\"\n"
         "[[outputs]]\ntype = \"json\"\npath = \""
      << alerts_json.string() << "\"\n";
    return c.str();
}

// The JA4 of the API host's cohort whose top clients include one of
// `clients`, in `exfilmon top --kind ja4_sni --format json` rows ("" when
// none does, several joined by ' ').
std::string fingerprint_of(const nlohmann::json &top, const std::vector<std::string> &clients)
{
    std::set<std::string> wanted;
    for (auto &c : clients)
        wanted.insert(client_entity(c));
    std::string found;
    for (auto &row : top.at("rows")) {
        auto entity = row.at("entity").get<std::string>();
        if (!entity.ends_with(std::string(" -> ") + kApiHost))
            continue;
        for (auto &c : row.at("top_clients"))
            if (wanted.count(c.at("client").get<std::string>())) {
                found += (found.empty() ? "" : " ") + entity.substr(0, entity.find(' '));
                break;
            }
    }
    return found;
}

nlohmann::json top_cohorts(const std::filesystem::path &socket)
{
    auto r = run_program({exfilmon_binary().string(), "top", "--socket", socket.string(), "--kind",
                          "ja4_sni", "--window", "10m", "--once", "--format", "json", "-n", "20"});
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    return nlohmann::json::parse(r.out);
}

// The one "open" RFC 5424 message rsyslog received carries the JSON
// output's alert: rule, kind, fingerprint, distinct clients and subnets,
// top clients of the cohort.
void check_syslog_alert(const RsyslogServer &rsyslog, const JsonAlert &alert,
                        const std::set<std::string> &cohort_clients)
{
    std::vector<std::string> open;
    for (auto &m : rsyslog.messages())
        if (m.find("[exfilmon@32473") != std::string::npos &&
            m.find(" state=\"open\"") != std::string::npos)
            open.push_back(m);
    REQUIRE(open.size() == 1);
    const auto &msg = open.front();
    using V = std::vector<std::string>;
    CHECK(sd_values(msg, "rule") == V{kCohortRule});
    CHECK(sd_values(msg, "entity_kind") == V{"ja4_sni"});
    CHECK(sd_values(msg, "ja4") == V{alert.ja4});
    CHECK(sd_values(msg, "distinct_clients") == V{std::to_string(alert.distinct_clients)});
    CHECK(sd_values(msg, "distinct_subnets") == V{std::to_string(alert.distinct_subnets)});
    CHECK(sd_values(msg, "requests") == V{std::to_string(alert.requests)});
    CHECK(sd_values(msg, "bytes_per_request") == V{std::to_string(alert.bytes_per_request)});
    auto tops = sd_values(msg, "top_client");  // "CLIENT FLOWS"
    CHECK(tops.size() == alert.top_clients.size());
    for (auto &t : tops)
        CHECK(cohort_clients.count(t.substr(0, t.find(' '))) == 1);
}

}  // namespace

TEST_CASE("A group over 15 networks with one client stack raises one alert: its ja4_sni cohort",
          "[e2e][cohorts]")
{
    if (!require_root())
        return;
    auto started = std::chrono::steady_clock::now();
    Lab lab;
    auto srv = lab.add_netns("srv"), cli = lab.add_netns("cli");
    auto veth = lab.add_veth(srv, cli);
    for (auto a : {"192.0.2.1/24", "198.51.100.1/24", "203.0.113.1/24", "2001:db8::1/32"})
        lab.add_addr(srv, veth.a, a);
    auto pop = make_population();
    for (auto *list : {&pop.group, &pop.honest_scripts, &pop.curl_clients, &pop.browsers})
        for (auto &a : *list)
            lab.add_addr(cli, veth.b, a + (a.find(':') != std::string::npos ? "/32" : "/24"));
    lab.add_addr(cli, veth.b, pop.heavy + "/24");

    NginxOptions no;
    no.http2 = true;  // the browser-like clients ask for h2; the others HTTP/1.1
    no.stream_events = 8;
    no.stream_event_bytes = 400;
    no.downloads = {{"2m", 2u << 20}};
    NginxServer nginx(lab, srv, no);
    RsyslogOptions ro;
    ro.ns = srv;
    RsyslogServer rsyslog(lab, ro);
    rsyslog.start();
    auto alerts_json = lab.dir() / "alerts.json", cfg = lab.dir() / "exfilmon.toml";
    std::ofstream(cfg) << daemon_config(lab, rsyslog, alerts_json);
    auto out = lab.dir() / "daemon.out";
    auto &daemon = lab.spawn(
        srv, {exfilmon_binary().string(), "run", "--config", cfg.string(), "--interface", veth.a},
        {lab.dir(), out});
    REQUIRE(wait_for(out, "attached to " + veth.a, 20s));

    // Honest scripts with the group's stack: 4 calls a second each, from
    // before the cohort's level is learned until after the pull.
    const auto &ca = nginx.ca_cert();
    auto first_calls = lab.dir() / "honest.first";
    auto &honest = lab.spawn(cli, api_calls(pop.honest_scripts, ca, 44, 0.25, first_calls),
                             {lab.dir(), lab.dir() / "honest.out"});
    REQUIRE(wait_for(first_calls, "first calls answered", 20s));
    auto honest_started = std::chrono::steady_clock::now();
    ordinary_round(lab, cli, ca, pop, false);
    // The group starts once the honest cohort's level is learned (6 s after
    // its first calls, with a margin), while ordinary clients go on.
    std::this_thread::sleep_until(honest_started + 7500ms);
    auto group_started = std::chrono::steady_clock::now();
    auto &group =
        lab.spawn(cli, api_calls(pop.group, ca, 30, 0.1), {lab.dir(), lab.dir() / "group.out"});
    ordinary_round(lab, cli, ca, pop, true);
    INFO("group: " << slurp(lab.dir() / "group.out"));
    REQUIRE(group.wait(60s) == 0);
    std::chrono::duration<double> group_secs = std::chrono::steady_clock::now() - group_started;
    INFO("honest scripts: " << slurp(lab.dir() / "honest.out"));
    REQUIRE(honest.wait(60s) == 0);
    REQUIRE(nginx.wait_for_requests(pop.group.size() * 30 + pop.honest_scripts.size() * 44));

    // Every member's calls reached nginx over one keep-alive connection.
    auto truth = totals_by_client(nginx.access_log());
    for (auto &m : pop.group) {
        INFO(m);
        CHECK(truth[m].requests == 30);
        CHECK(truth[m].client_ports.size() == 1);
    }
    INFO(slurp(out));
    REQUIRE(rsyslog.wait_for_messages(
        [](const std::vector<std::string> &lines) {
            return std::any_of(lines.begin(), lines.end(), [](auto &l) {
                return l.find("state=\"open\"") != std::string::npos &&
                       l.find(kCohortRule) != std::string::npos;
            });
        },
        10s));
    // Evaluations after the last traffic: any other alert would be out now.
    std::this_thread::sleep_for(1500ms);
    auto cohorts = top_cohorts(lab.dir() / "control.sock");
    REQUIRE(daemon.stop(SIGTERM, 15s) == 0);

    std::set<std::string> cohort_clients, cohort_subnets;
    uint64_t cohort_calls = 0;  // nginx's count
    for (auto *list : {&pop.group, &pop.honest_scripts})
        for (auto &a : *list) {
            cohort_clients.insert(client_entity(a));
            cohort_subnets.insert(subnet_of(a));
            cohort_calls += truth[a].requests;
        }
    REQUIRE(cohort_clients.size() == 62);
    REQUIRE(cohort_subnets.size() == 16);

    // Exactly one alert opened, in the JSON output and at rsyslog: the
    // group's ja4_sni cohort.
    auto sent = read_json_alerts(alerts_json);
    std::vector<JsonAlert> opened;
    std::ostringstream all;
    for (auto &a : sent) {
        all << a.state << " " << a.rule << " " << a.entity << "\n";
        if (a.state == "open")
            opened.push_back(a);
    }
    INFO("alerts sent:\n" << all.str());
    REQUIRE(opened.size() == 1);
    const auto &alert = opened.front();
    CHECK(alert.rule == kCohortRule);
    CHECK(alert.entity_kind == "ja4_sni");
    CHECK(std::regex_match(alert.ja4, std::regex(R"(t13d\d{4}00_[0-9a-f]{12}_[0-9a-f]{12})")));
    CHECK(alert.entity == alert.ja4 + " -> " + kApiHost);
    CHECK(alert.value > alert.threshold);
    // The calls are the rule's value; each brought a streamed answer: its
    // body, plus headers, chunk framing, TLS records and TCP/IP headers.
    CHECK(double(alert.requests) == alert.value);
    CHECK(alert.bytes_per_request >= nginx.stream_body().size());
    CHECK(alert.bytes_per_request <= 2 * nginx.stream_body().size());
    // (the JSON output rounds both to 5 significant digits)
    CHECK(alert.threshold == Approx(std::max(kCohortFloor, 10 * alert.baseline)).epsilon(0.001));
    // The three stacks' fingerprints differ (exfilmon top's cohorts, by
    // their top clients): Python's has no ALPN ("00"), curl's "h1",
    // the browser-like one "h2".
    std::string curl_ja4 = fingerprint_of(cohorts, pop.curl_clients),
                browser_ja4 = fingerprint_of(cohorts, pop.browsers);
    CHECK(fingerprint_of(cohorts, pop.group) == alert.ja4);
    CHECK(curl_ja4.substr(8, 3) == "h1_");
    CHECK(browser_ja4.substr(8, 3) == "h2_");
    CHECK(std::set<std::string>{alert.ja4, curl_ja4, browser_ja4}.size() == 3);

    // At open the figures may hold part of the group (the rule can cross
    // before every member has called); its updates then show all of it,
    // never more calls than nginx served the cohort (2 s windows hold
    // part of them), top clients from the cohort only.
    CHECK(alert.distinct_clients > pop.honest_scripts.size());
    CHECK(alert.distinct_subnets > 2);
    CHECK_FALSE(alert.top_clients.empty());
    uint64_t max_clients = 0, max_subnets = 0;
    double max_calls = 0;
    for (auto &a : sent) {
        CHECK(a.rule == kCohortRule);
        max_calls = std::max(max_calls, a.value);
        max_clients = std::max(max_clients, a.distinct_clients);
        max_subnets = std::max(max_subnets, a.distinct_subnets);
        for (auto &c : a.top_clients)
            CHECK(cohort_clients.count(c) == 1);
    }
    CHECK(max_calls <= double(cohort_calls));
    CHECK(max_clients == cohort_clients.size());
    CHECK(max_subnets == cohort_subnets.size());
    check_syslog_alert(rsyslog, alert, cohort_clients);

    std::printf("DISTRIBUTED group=%zu subnets=%zu group_seconds=%.2f wall_seconds=%.1f "
                "max_calls_2s=%.0f cohort_calls=%llu bytes_per_request=%llu "
                "stream_body=%zu distinct_clients=%llu distinct_subnets=%llu ja4=%s\n",
                pop.group.size(), cohort_subnets.size(), group_secs.count(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
                max_calls, (unsigned long long)cohort_calls,
                (unsigned long long)alert.bytes_per_request, nginx.stream_body().size(),
                (unsigned long long)max_clients, (unsigned long long)max_subnets,
                alert.ja4.c_str());
}
