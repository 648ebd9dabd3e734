// SPDX-License-Identifier: Apache-2.0
// `exfilmon demo`: the one-command lab runs, shows the alert for the
// exfiltrating client (and nobody else) and leaves nothing behind.
#include <catch2/catch.hpp>

#include <filesystem>
#include <regex>
#include <set>
#include <string>

#include "support/proc.h"
#include "support/test_env.h"

using namespace exf::test;

TEST_CASE("exfilmon demo shows the exfiltrating client's alert and cleans up",
          "[e2e][sanitize][demo]")
{
    if (!require_root())
        return;
    auto r = run_program({exfilmon_binary().string(), "demo"});
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    CHECK(r.out.find("alert open") != std::string::npos);
    std::smatch m;
    REQUIRE(std::regex_search(r.out, m,
                              std::regex(R"(namespaces (exfdemo\d+-srv) and (exfdemo\d+-cli))")));
    // Alerts in the daemon's log: only for the exfiltrating client, both rules.
    std::regex alert(R"(alert open [0-9a-f]{16} rule=(\S+) \S+ client=(\S+))");
    std::set<std::string> rules;
    for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), alert);
         it != std::sregex_iterator(); ++it) {
        CHECK((*it)[2] == "198.51.100.66");
        rules.insert((*it)[1]);
    }
    CHECK(rules == std::set<std::string>{"client-bulk-pull", "client-parallel-connections"});
    // Nothing left: namespaces, the temporary directory.
    CHECK_FALSE(std::filesystem::exists("/run/netns/" + m[1].str()));
    CHECK_FALSE(std::filesystem::exists("/run/netns/" + m[2].str()));
    std::smatch d;
    if (std::regex_search(r.out, d,
                          std::regex(R"(alerts to json (/tmp/exfilmon-demo\.\w+)/alerts\.json)")))
        CHECK_FALSE(std::filesystem::exists(d[1].str()));
}
