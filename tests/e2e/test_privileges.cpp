// SPDX-License-Identifier: Apache-2.0
// The daemon as the service unit starts it: an unprivileged user holding
// only the unit's ambient capabilities (configs/exfilmon.service: User=,
// AmbientCapabilities=). It loads, attaches, counts a real TLS download, and
// every one of its threads ends with CAP_BPF and CAP_NET_ADMIN only.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/netns.h"
#include "support/proc.h"
#include "support/servers.h"
#include "support/test_env.h"

using namespace exf::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr uid_t kNobody = 65534;  // Debian's nobody / nogroup

// What the unit grants (CapabilityBoundingSet= and AmbientCapabilities=
// without CAP_NET_RAW, which only the libpcap backend needs).
// RUNTIME_DIRECTORY: what systemd passes for RuntimeDirectory= (the user's
// own; the attach locks go there).
const std::vector<std::string> kAsServiceUser = {"setpriv",
                                                 "--reuid=65534",
                                                 "--regid=65534",
                                                 "--clear-groups",
                                                 "--inh-caps=-all,+bpf,+perfmon,+net_admin",
                                                 "--ambient-caps=-all,+bpf,+perfmon,+net_admin",
                                                 "--bounding-set=-all,+bpf,+perfmon,+net_admin"};

}  // namespace

TEST_CASE(
    "As an unprivileged user with the unit's ambient capabilities the daemon attaches and counts",
    "[e2e][sanitize][daemon][privileges]")
{
    if (!require_root())
        return;
    Lab lab;
    auto srv = lab.add_netns("srv"), cli = lab.add_netns("cli");
    auto veth = lab.add_veth(srv, cli);
    lab.add_addr(srv, veth.a, "192.0.2.1/24");
    lab.add_addr(cli, veth.b, "192.0.2.10/24");
    NginxOptions web;
    web.downloads = {{"50k", 50000}};
    NginxServer nginx(lab, srv, web);

    // The service user's own directory (what StateDirectory= and
    // RuntimeDirectory= give it): socket, alerts and its configuration.
    std::filesystem::permissions(lab.dir(), std::filesystem::perms::owner_all |
                                                std::filesystem::perms::group_exec |
                                                std::filesystem::perms::others_exec);
    auto home = lab.dir() / "svc";
    std::filesystem::create_directories(home);
    REQUIRE(::chown(home.c_str(), kNobody, kNobody) == 0);
    auto sock = (home / "control.sock").string();
    auto cfg = home / "exfilmon.toml";
    std::ofstream(cfg) << "[bpf]\npin = false\nflow_table_size = 4096\n[daemon]\nstate_dir = \"\"\n"
                          "report_interval = \"1h\"\nharvest_interval = \"200ms\"\n"
                          "[control]\nsocket = \""
                       << sock << "\"\n[metrics]\nlisten = \"127.0.0.1:9464\"\n"
                       << "[[outputs]]\ntype = \"json\"\npath = \""
                       << (home / "alerts.jsonl").string() << "\"\n";
    auto out = lab.dir() / "daemon.out";
    auto argv = kAsServiceUser;
    argv.insert(argv.end(),
                {"env", "RUNTIME_DIRECTORY=" + home.string(), exfilmon_binary().string(), "run",
                 "--config", cfg.string(), "--interface", veth.a});
    auto &daemon = lab.spawn(srv, argv, {lab.dir(), out});
    REQUIRE(wait_for(out, "attached to " + veth.a, 20s));
    REQUIRE(wait_for(out, "capabilities dropped", 10s));
    INFO(slurp(out));
    // Without CAP_SETPCAP the bounding set stays as the unit set it.
    check_least_privilege(daemon.pid(), 4, "0000008000001000", "000000c000001000");
    {
        std::ifstream st("/proc/" + std::to_string(daemon.pid()) + "/status");
        std::string line;
        while (std::getline(st, line))
            if (line.rfind("Uid:", 0) == 0)
                CHECK(line == "Uid:\t65534\t65534\t65534\t65534");
    }

    CurlJob job;
    job.ns = cli;
    job.server = "192.0.2.1";
    job.ca_cert = nginx.ca_cert();
    job.urls = {NginxServer::url("api.example.com", "/download/50k")};
    REQUIRE(run_curl(lab, job).ok());
    uint64_t flows = 0, bytes_out = 0;
    std::string last_top;
    for (auto until = std::chrono::steady_clock::now() + 15s;
         std::chrono::steady_clock::now() < until && flows == 0;
         std::this_thread::sleep_for(200ms)) {
        auto r = run_program({exfilmon_binary().string(), "top", "--socket", sock, "--once",
                              "--format", "json", "--window", "1h"});
        last_top = r.out + r.err;
        REQUIRE(r.status == 0);
        auto top = json::parse(r.out);
        for (auto &row : top["rows"])
            if (row["entity"] == "192.0.2.10") {
                flows = row["tls_flows"].get<uint64_t>();
                bytes_out = row["bytes_out"].get<uint64_t>();
            }
    }
    CHECK(daemon.stop() == 0);
    INFO(slurp(out));
    INFO(last_top);
    CHECK(flows == 1);
    CHECK(bytes_out > 50000);
}
