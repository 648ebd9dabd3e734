// SPDX-License-Identifier: Apache-2.0
// `exfilmon demo`: the one-command lab runs, shows the alert for the
// exfiltrating client (and nobody else) or, with --scenario distributed,
// for the group's fingerprint cohort (and nobody else), and leaves nothing
// behind.
#include <catch2/catch.hpp>

#include <filesystem>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "support/proc.h"
#include "support/test_env.h"

using namespace exf::test;

namespace {

// (rule, entity) of every "alert open" line of the daemon's log the demo shows.
std::vector<std::pair<std::string, std::string>> opened_alerts(const std::string &out)
{
    std::regex alert(R"(alert open [0-9a-f]{16} rule=(\S+) \S+ \w+=(\S+))");
    std::vector<std::pair<std::string, std::string>> v;
    for (auto it = std::sregex_iterator(out.begin(), out.end(), alert);
         it != std::sregex_iterator(); ++it)
        v.push_back({(*it)[1], (*it)[2]});
    return v;
}

// Nothing left: the namespaces and the temporary directory the demo named.
void check_cleaned_up(const std::string &out)
{
    std::smatch m;
    REQUIRE(std::regex_search(out, m,
                              std::regex(R"(namespaces (exfdemo\d+-srv) and (exfdemo\d+-cli))")));
    CHECK_FALSE(std::filesystem::exists("/run/netns/" + m[1].str()));
    CHECK_FALSE(std::filesystem::exists("/run/netns/" + m[2].str()));
    std::smatch d;
    REQUIRE(std::regex_search(
        out, d, std::regex(R"(alerts to json (/tmp/exfilmon-demo\.\w+)/alerts\.json)")));
    CHECK_FALSE(std::filesystem::exists(d[1].str()));
}

}  // namespace

TEST_CASE("exfilmon demo shows the exfiltrating client's alert and cleans up",
          "[e2e][sanitize][demo]")
{
    if (!require_root())
        return;
    auto r = run_program({exfilmon_binary().string(), "demo"});
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    CHECK(r.out.find("alert open") != std::string::npos);
    // Alerts in the daemon's log: only for the exfiltrating client, both rules.
    std::set<std::string> rules;
    for (auto &[rule, client] : opened_alerts(r.out)) {
        CHECK(client == "198.51.100.66");
        rules.insert(rule);
    }
    CHECK(rules == std::set<std::string>{"client-bulk-pull", "client-parallel-connections"});
    check_cleaned_up(r.out);
}

TEST_CASE("exfilmon demo --scenario distributed shows the fingerprint cohort's alert and cleans up",
          "[e2e][demo]")
{
    if (!require_root())
        return;
    auto r = run_program({exfilmon_binary().string(), "demo", "--scenario", "distributed"});
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    CHECK(r.out.find("group done: 60 members made 30 calls each") != std::string::npos);
    // One alert, the group's ja4_sni cohort: no client, no subnet.
    auto opened = opened_alerts(r.out);
    REQUIRE(opened.size() == 1);
    CHECK(opened[0].first == "fingerprint-cohort-calls");
    CHECK(
        std::regex_match(opened[0].second, std::regex(R"(t13d\d{4}00_[0-9a-f]{12}_[0-9a-f]{12})")));
    // exfilmon top's row for that cohort: 62 clients (the group and two
    // honest scripts) from 16 subnets, its alert marked.
    CHECK(std::regex_search(
        r.out, std::regex(opened[0].second + R"( ->~ .* 62 +16 .*! fingerprint-cohort-calls)")));
    check_cleaned_up(r.out);
}
