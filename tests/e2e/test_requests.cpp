// SPDX-License-Identifier: Apache-2.0
// Requests counted in the kernel (docs/datapath.md, "Requests") against the
// truth: nginx's access log. nginx (HTTP/1.1 and HTTP/2 on one TLS port) in
// a server namespace, curl clients in a client namespace, the sensor
// (exf::BpfSensor + exf::TcAttachment) on the server's veth with its
// offloads on, so ingress runs through GRO as on a real host. Each case is
// one curl process from its own address, one keep-alive connection, so the
// sensor's per-client count compares with the log's records of that
// address.
//
// The same packets, captured on that veth, replayed by `exfilmon replay
// --format json` (the userspace build of the datapath) give the same
// "requests" per client.
//
// Sequential request-response traffic must be within 5 % of the log.
// Concurrent HTTP/2 streams are counted by turn, not by stream, so they
// must come out below the log: that case asserts the direction only.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "capture/bpf_sensor.h"
#include "capture/maps.h"
#include "common/addr.h"
#include "support/netns.h"
#include "support/proc.h"
#include "support/servers.h"
#include "support/test_env.h"

using namespace std::chrono_literals;
using exf::test::CurlJob;
using exf::test::Lab;
using exf::test::NginxOptions;
using exf::test::NginxServer;

namespace {

struct Case {
    std::string name;
    std::string source;  // the client address of this case
    bool http2 = false;
    std::vector<std::string> urls;
    int parallel = 1;
    std::vector<std::string> extra_args;
    bool sequential = true;  // false: concurrent streams, counted low (parallel > 1)
};

Case make_case(std::string name, std::string source, bool http2, std::vector<std::string> urls,
               std::vector<std::string> extra_args = {}, int parallel = 1)
{
    Case c;
    c.name = std::move(name);
    c.source = std::move(source);
    c.http2 = http2;
    c.urls = std::move(urls);
    c.extra_args = std::move(extra_args);
    c.parallel = parallel;
    c.sequential = parallel == 1;
    return c;
}

std::vector<std::string> repeat(const std::string &url, int n)
{
    std::vector<std::string> v;
    for (int i = 0; i < n; i++)
        v.push_back(url + (url.find('?') == std::string::npos ? "?i=" : "&i=") + std::to_string(i));
    return v;
}

// Requests of many sizes: query strings from a few bytes to 3 KB, and
// responses from 16 B to 300 KB.
std::vector<std::string> mixed_urls(int n)
{
    std::vector<std::string> v;
    const char *paths[] = {"/v1/status", "/v1/items", "/download/300k"};
    for (int i = 0; i < n; i++) {
        size_t q = size_t((i * 397) % 3000);
        v.push_back(NginxServer::url("api.example.com", paths[i % 3]) +
                    "?q=" + std::string(q, char('a' + i % 26)) + "&i=" + std::to_string(i));
    }
    return v;
}

}  // namespace

TEST_CASE("Requests counted in the kernel are within 5 % of nginx's access log", "[e2e][requests]")
{
    if (!exf::test::require_root())
        return;
    Lab lab;
    auto srv = lab.add_netns("srv"), cli = lab.add_netns("cli");
    auto veth = lab.add_veth(srv, cli);
    lab.add_addr(srv, veth.a, "198.51.100.1/24");
    lab.set_offloads(srv, veth.a, true);

    const std::string status = NginxServer::url("api.example.com", "/v1/status");
    const std::string items = NginxServer::url("api.example.com", "/v1/items");
    std::vector<Case> cases = {
        make_case("HTTP/1.1 keep-alive, 300 small requests", "198.51.100.10", false,
                  repeat(status, 300)),
        make_case("HTTP/2 sequential, 300 small requests", "198.51.100.11", true,
                  repeat(status, 300)),
        make_case("HTTP/1.1 chunked (gzip) 6 KB JSON, 200 requests", "198.51.100.12", false,
                  repeat(items, 200), {"--compressed"}),
        make_case("HTTP/2 gzip 6 KB JSON, 200 requests", "198.51.100.13", true, repeat(items, 200),
                  {"--compressed"}),
        make_case("HTTP/1.1 mixed request and response sizes, 150 requests", "198.51.100.14", false,
                  mixed_urls(150)),
        make_case("HTTP/2 mixed request and response sizes, 150 requests", "198.51.100.15", true,
                  mixed_urls(150)),
        make_case("HTTP/2 10 concurrent streams, 200 requests", "198.51.100.16", true,
                  repeat(status, 200), {"--no-progress-meter"}, 10),
    };
    for (auto &c : cases)
        lab.add_addr(cli, veth.b, c.source + "/24");

    exf::BpfSensor sensor(exf::SensorOptions{});
    exf::test::NsTcAttachment attach(srv, sensor, veth.a);
    NginxOptions opts;
    opts.http2 = true;  // both: curl picks with ALPN
    opts.ipv6 = false;
    opts.gzip = true;
    opts.items_json_bytes = 6000;
    opts.downloads = {{"300k", 300000}};
    NginxServer nginx(lab, srv, opts);
    auto cap = lab.start_capture(srv, veth.a, "srv", "tcp port 443");

    std::vector<CurlJob> jobs;
    size_t want = 0;
    for (auto &c : cases) {
        CurlJob j;
        j.ns = cli;
        j.source = c.source;
        j.server = "198.51.100.1";
        j.ca_cert = nginx.ca_cert();
        j.urls = c.urls;
        j.http2 = c.http2;
        j.parallel = c.parallel;
        j.extra_args = c.extra_args;
        j.parallel_immediate = false;  // HTTP/2: concurrent streams on one connection
        jobs.push_back(j);
        want += c.urls.size();
    }
    auto results = exf::test::run_curls(lab, jobs, 300s);
    REQUIRE(results.size() == jobs.size());
    for (size_t i = 0; i < results.size(); i++) {
        INFO(cases[i].name << ": curl output:\n" << results[i].output);
        REQUIRE(results[i].ok());
    }
    REQUIRE(nginx.wait_for_requests(want));
    auto truth = exf::test::totals_by_client(nginx.access_log());
    auto st = cap.stop();
    REQUIRE(st.complete());
    auto replay = exf::test::run_program(
        {exf::test::exfilmon_binary().string(), "replay", cap.pcap.string(), "--format", "json"});
    INFO("replay stderr: " << replay.err);
    REQUIRE(replay.status == 0);
    std::map<std::string, uint64_t> replayed;
    std::istringstream lines(replay.out);
    for (std::string line; std::getline(lines, line);) {
        auto j = nlohmann::json::parse(line);
        if (j["type"] == "client")
            replayed[j["client"].get<std::string>()] = j["requests"].get<uint64_t>();
    }

    std::map<std::string, uint64_t> counted;
    for (const auto &r : sensor.tables().clients)
        counted[exf::format_addr(r.key.addr)] = r.stats.requests;
    for (auto &c : cases) {
        const auto &t = truth[c.source];
        uint64_t got = counted[c.source];
        double ratio = t.requests ? double(got) / double(t.requests) : 0;
        // For bench/RESULTS.md (bench/results_table.py reads these lines).
        std::printf("REQUESTS case=\"%s\" connections=%zu log=%llu counted=%llu ratio=%.4f\n",
                    c.name.c_str(), t.client_ports.size(), (unsigned long long)t.requests,
                    (unsigned long long)got, ratio);
        INFO(c.name << ": log " << t.requests << ", counted " << got);
        CHECK(t.requests == c.urls.size());
        CHECK(replayed[c.source] == got);
        if (c.sequential) {
            CHECK(t.client_ports.size() == 1);  // one keep-alive connection
            CHECK(ratio >= 0.95);
            CHECK(ratio <= 1.05);
        } else {
            CHECK(got < t.requests);
        }
    }
}
