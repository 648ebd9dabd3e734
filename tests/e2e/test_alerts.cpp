// SPDX-License-Identifier: Apache-2.0
// Detection end to end: a real nginx API server, 20 ordinary clients, one
// client pulling large responses over many parallel connections, and eight
// addresses of one /24 each below the per-client threshold but together
// above the subnet rule. exfilmon runs on the server side and sends its
// alerts to a real rsyslog over TCP (RFC 5424) and TLS (CEF), and to a JSON
// file. rsyslog is stopped
// for 30 s in the middle: nothing may be lost or duplicated. The ground
// truth is tcpdump's count of the same packets on the server's interface.
// Finally `exfilmon replay` of that capture must raise the same alerts.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <regex>
#include <set>
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

namespace {

struct Sent {
    std::string id, state, rule, entity;
    uint64_t count = 0, bytes_out = 0;
    bool operator<(const Sent &o) const
    {
        return std::tie(id, state, count) < std::tie(o.id, o.state, o.count);
    }
};

// The JSON output's records, in order.
std::vector<Sent> read_json_alerts(const std::filesystem::path &file)
{
    std::vector<Sent> out;
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty())
            continue;
        auto j = nlohmann::json::parse(line);
        const auto &x = j.at("exfilmon");
        out.push_back({j.at("event").at("id"), x.at("state"), j.at("rule").at("name"),
                       x.at("entity"), x.at("count").get<uint64_t>(),
                       x.value("bytes_out", uint64_t(0))});
    }
    return out;
}

// id, state and count from each RFC 5424 message's structured data.
std::vector<Sent> parse_syslog(const std::vector<std::string> &lines)
{
    static const std::regex id(R"( id="([0-9a-f]{16})\")"), state(R"( state="(\w+)\")"),
        count(R"( count="(\d+)\")");
    std::vector<Sent> out;
    for (auto &l : lines) {
        if (l.find("[exfilmon@32473") == std::string::npos)
            continue;
        std::smatch a, b, c;
        REQUIRE(std::regex_search(l, a, id));
        REQUIRE(std::regex_search(l, b, state));
        REQUIRE(std::regex_search(l, c, count));
        out.push_back({a[1], b[1], "", "", std::stoull(c[1]), 0});
    }
    return out;
}

// externalId, act and cnt from each CEF message (sent over TLS).
std::vector<Sent> parse_cef(const std::vector<std::string> &lines)
{
    static const std::regex id(R"( externalId=([0-9a-f]{16}))"), act(R"( act=(\w+))"),
        cnt(R"( cnt=(\d+))");
    std::vector<Sent> out;
    for (auto &l : lines) {
        if (l.find("CEF:0|exfilmon|") == std::string::npos)
            continue;
        std::smatch a, b, c;
        REQUIRE(std::regex_search(l, a, id));
        REQUIRE(std::regex_search(l, b, act));
        REQUIRE(std::regex_search(l, c, cnt));
        out.push_back({a[1], b[1], "", "", std::stoull(c[1]), 0});
    }
    return out;
}

}  // namespace

TEST_CASE("Alerts for exactly the exfiltrating client and the /24 group reach rsyslog",
          "[e2e][alerts]")
{
    if (!require_root())
        return;
    Lab lab;
    auto srv = lab.add_netns("srv"), cli = lab.add_netns("cli");
    auto veth = lab.add_veth(srv, cli);
    for (auto a : {"192.0.2.1/24", "198.51.100.1/24", "203.0.113.1/24"})
        lab.add_addr(srv, veth.a, a);
    const std::string exfil = "192.0.2.50";
    std::vector<std::string> normal, group;
    for (int i = 0; i < 20; i++)
        normal.push_back("203.0.113." + std::to_string(10 + i));
    for (int i = 0; i < 8; i++)
        group.push_back("198.51.100." + std::to_string(20 + i));
    lab.add_addr(cli, veth.b, exfil + "/24");
    for (auto &c : normal)
        lab.add_addr(cli, veth.b, c + "/24");
    for (auto &c : group)
        lab.add_addr(cli, veth.b, c + "/24");
    // Offloads off: tcpdump sees wire packets, an exact independent count.
    lab.set_offloads(srv, veth.a, false);
    lab.set_offloads(cli, veth.b, false);

    NginxOptions no;
    no.ipv6 = false;
    no.downloads = {{"1m", 1u << 20}, {"8m", 8u << 20}};
    NginxServer nginx(lab, srv, no);
    RsyslogOptions ro;
    ro.ns = srv;
    ro.tls = true;
    RsyslogServer rsyslog(lab, ro);
    rsyslog.start();

    // Thresholds scaled to a test: a client pulling 40 MiB in a minute, a
    // /24 pulling 100 MiB, 6 parallel connections. A shadow rule that the
    // exfiltrating client crosses too: logged, never sent.
    auto alerts_json = lab.dir() / "alerts.json";
    auto cfg = lab.dir() / "exfilmon.toml";
    std::ofstream(cfg)
        << "[bpf]\npin = false\nflow_table_size = 8192\n"
           "[daemon]\nstate_dir = \"\"\nreport_interval = \"60s\"\nharvest_interval = \"500ms\"\n"
           "[control]\nsocket = \""
        << (lab.dir() / "control.sock").string()
        << "\"\n"
           "[detect]\ninterval = \"1s\"\nrealert = \"3s\"\nresolve_after = \"5s\"\n"
           "host_name = \"exf-e2e\"\n"
           "[[rules]]\nname = \"client-bulk-pull\"\nentity = \"client\"\n"
           "metric = \"bytes_out\"\nwindow = \"1m\"\nthreshold = \"40MiB\"\n"
           "severity = \"critical\"\n"
           "[[rules]]\nname = \"subnet-bulk-pull\"\nentity = \"subnet\"\n"
           "metric = \"bytes_out\"\nwindow = \"1m\"\nthreshold = \"100MiB\"\n"
           "severity = \"critical\"\n"
           "[[rules]]\nname = \"client-parallel\"\nentity = \"client\"\n"
           "metric = \"concurrent_flows\"\nwindow = \"1m\"\nthreshold = 6\n"
           "[[rules]]\nname = \"client-flows-shadow\"\nentity = \"client\"\n"
           "metric = \"tls_flows\"\nwindow = \"1m\"\nthreshold = 8\nmode = \"shadow\"\n"
           "[[outputs]]\ntype = \"syslog\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:"
        << rsyslog.port()
        << "\"\nformat = \"rfc5424\"\n"
           "[[outputs]]\ntype = \"syslog\"\ntransport = \"tls\"\naddress = \"127.0.0.1:"
        << rsyslog.tls_port() << "\"\nformat = \"cef\"\nca_file = \"" << rsyslog.ca_cert().string()
        << "\"\nserver_name = \"syslog.example.com\"\n"
           "[[outputs]]\ntype = \"json\"\npath = \""
        << alerts_json.string() << "\"\n";
    auto cap = lab.start_capture(srv, veth.a, "srv", "tcp", 128);
    auto out = lab.dir() / "daemon.out";
    auto &daemon = lab.spawn(
        srv, {exfilmon_binary().string(), "run", "--config", cfg.string(), "--interface", veth.a},
        {lab.dir(), out});
    REQUIRE(wait_for(out, "attached to " + veth.a, 20s));

    auto job = [&](const std::string &source, std::vector<std::string> urls, int parallel = 1) {
        CurlJob j;
        j.ns = cli;
        j.source = source;
        j.server = "192.0.2.1";
        j.ca_cert = nginx.ca_cert();
        j.urls = std::move(urls);
        j.parallel = parallel;
        return j;
    };
    auto items = NginxServer::url("api.example.com", "/v1/items");
    // 1. Ordinary clients: a few JSON calls and one 1 MiB download each.
    std::vector<CurlJob> jobs;
    for (auto &c : normal)
        jobs.push_back(job(c, {items, items, items, items, items,
                               NginxServer::url("downloads.example.com", "/download/1m")}));
    for (auto &r : run_curls(lab, jobs))
        REQUIRE(r.ok());
    // 2. The exfiltrating client: ten 8 MiB responses over 10 parallel connections.
    std::vector<std::string> big(10, NginxServer::url("api.example.com", "/download/8m"));
    REQUIRE(run_curl(lab, job(exfil, big, 10)).ok());
    REQUIRE(rsyslog.wait_for_messages(
        [&](const std::vector<std::string> &m) {
            return std::any_of(m.begin(), m.end(), [&](auto &l) {
                return l.find("client-bulk-pull") != std::string::npos &&
                       l.find(exfil) != std::string::npos;
            });
        },
        20s));
    // 3. The collector goes away for 30 s; meanwhile the /24 group pulls
    //    2 x 8 MiB per address (16 MiB each, 128 MiB together).
    auto stopped_at = std::chrono::steady_clock::now();
    rsyslog.stop();
    jobs.clear();
    for (auto &c : group)
        jobs.push_back(job(c, {NginxServer::url("api.example.com", "/download/8m"),
                               NginxServer::url("api.example.com", "/download/8m")}));
    for (auto &r : run_curls(lab, jobs))
        REQUIRE(r.ok());
    std::this_thread::sleep_until(stopped_at + 30s);
    rsyslog.start();

    // 4. Everything resolves once the traffic has left the 1-minute windows.
    std::vector<Sent> sent;
    auto all_resolved = [&] {
        sent = read_json_alerts(alerts_json);
        std::set<std::string> open, resolved;
        for (auto &s : sent)
            (s.state == "resolved" ? resolved : open).insert(s.id);
        return !open.empty() && open == resolved;
    };
    bool done = false;
    for (auto until = std::chrono::steady_clock::now() + 300s;
         !done && std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(1s))
        done = all_resolved();
    INFO(slurp(out));
    REQUIRE(done);
    REQUIRE(daemon.stop(SIGTERM, 15s) == 0);
    auto st = cap.stop();
    REQUIRE(st.complete());

    // Exactly these alerts opened, for nobody else.
    std::set<std::pair<std::string, std::string>> opened;
    std::map<std::string, uint64_t> max_bytes;  // per alert: the largest bytes_out it reported
    for (auto &s : sent) {
        if (s.state == "open")
            CHECK(opened.insert({s.rule, s.entity}).second);
        max_bytes[s.rule + " " + s.entity] =
            std::max(max_bytes[s.rule + " " + s.entity], s.bytes_out);
    }
    CHECK(opened ==
          std::set<std::pair<std::string, std::string>>{{"client-bulk-pull", exfil},
                                                        {"client-parallel", exfil},
                                                        {"subnet-bulk-pull", "198.51.100.0/24"}});
    // The shadow rule was evaluated and logged, never sent.
    CHECK(slurp(out).find("shadow alert open") != std::string::npos);
    for (auto &s : sent)
        CHECK(s.rule != "client-flows-shadow");

    // Byte figures against the server-side truth (within 1%).
    std::set<Addr16> client_addrs{*parse_addr(exfil)};
    for (auto &c : group)
        client_addrs.insert(*parse_addr(c));
    auto truth = read_pcap(cap.pcap, client_addrs);
    uint64_t exfil_out = 0, group_out = 0;
    for (auto &[t, f] : truth.flows)
        (format_addr(t.client) == exfil ? exfil_out : group_out) += f.out.bytes;
    REQUIRE(exfil_out > (80u << 20));
    REQUIRE(group_out > (128u << 20));
    CHECK(double(max_bytes["client-bulk-pull " + exfil]) ==
          Approx(double(exfil_out)).epsilon(0.01));
    CHECK(double(max_bytes["subnet-bulk-pull 198.51.100.0/24"]) ==
          Approx(double(group_out)).epsilon(0.01));

    // rsyslog got every record exactly once through the 30 s outage: RFC
    // 5424 over TCP and CEF over TLS (its certificate verified).
    auto want = sent;
    std::sort(want.begin(), want.end());
    auto messages = rsyslog.messages();
    for (auto [name, received] : {std::pair{"tcp rfc5424", parse_syslog(messages)},
                                  std::pair{"tls cef", parse_cef(messages)}}) {
        INFO(name);
        std::sort(received.begin(), received.end());
        CHECK(received.size() == want.size());
        CHECK(std::adjacent_find(received.begin(), received.end(), [](auto &a, auto &b) {
                  return !(a < b) && !(b < a);
              }) == received.end());
        std::vector<Sent> missing;
        std::set_difference(want.begin(), want.end(), received.begin(), received.end(),
                            std::back_inserter(missing));
        for (auto &m : missing)
            FAIL_CHECK("not delivered to rsyslog: " << m.id << " " << m.state << " " << m.count);
    }

    // Replay of the same capture raises the same alerts, on packet time.
    auto replay_cfg = lab.dir() / "replay.toml";
    {
        std::ifstream in(cfg);
        std::stringstream ss;
        ss << in.rdbuf();
        auto text = ss.str();
        std::ofstream(replay_cfg) << text.substr(0, text.find("[[outputs]]"));
    }
    auto rep = run_program({exfilmon_binary().string(), "replay", cap.pcap.string(), "--config",
                            replay_cfg.string(), "--format", "json"});
    INFO(rep.err);
    REQUIRE(rep.status == 0);
    std::set<std::pair<std::string, std::string>> replayed;
    std::istringstream lines(rep.out);
    std::string line;
    while (std::getline(lines, line)) {
        auto j = nlohmann::json::parse(line);
        if (j.at("type") == "alert" && j.at("exfilmon").at("state") == "open" &&
            !j.at("exfilmon").at("shadow").get<bool>())
            replayed.insert({j.at("rule").at("name").get<std::string>(),
                             j.at("exfilmon").at("entity").get<std::string>()});
    }
    CHECK(replayed == opened);
}
