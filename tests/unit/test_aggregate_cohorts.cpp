// SPDX-License-Identifier: Apache-2.0
// Cohorts: the networks file parser (FILE:LINE: message), longest prefix
// match, and cohort entities in the aggregator.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "aggregate/aggregator.h"
#include "aggregate/cohorts.h"
#include "support/addr.h"

using namespace exf;
using namespace exf::agg;

namespace {
constexpr auto A = exf::test::addr_of;

std::string only_error(const std::string &text)
{
    auto r = parse_cohorts(text, "nets.txt");
    REQUIRE(r.errors.size() == 1);
    return r.errors[0];
}
}  // namespace

TEST_CASE("Cohort files parse rules comments and labels", "[aggregate]")
{
    auto r = parse_cohorts("# offices\n"
                           "10.20.0.0/16      office-berlin\n"
                           "\n"
                           "  2001:db8:42::/48  office-berlin   # same cohort\n"
                           "192.0.2.7 build server\n"
                           "10.0.0.0/8\tcorp\r\n"
                           "::ffff:198.51.100.0/120 mapped\n"
                           "0.0.0.0/0 anything-v4",
                           "nets.txt");
    for (auto &e : r.errors)
        FAIL(e);
    REQUIRE(r.rules.size() == 6);
    CHECK(format_cidr(r.rules[0]) == "10.20.0.0/16");
    CHECK(r.rules[0].label == "office-berlin");
    CHECK(r.rules[0].line == 2);
    CHECK(format_cidr(r.rules[1]) == "2001:db8:42::/48");
    CHECK(r.rules[1].label == "office-berlin");
    CHECK(r.rules[1].line == 4);
    CHECK(format_cidr(r.rules[2]) == "192.0.2.7/32");
    CHECK(r.rules[2].label == "build server");
    CHECK(r.rules[3].label == "corp");
    CHECK(format_cidr(r.rules[4]) == "198.51.100.0/24");  // IPv4-mapped form read as IPv4
    CHECK(r.rules[5].prefix == 0);
    CHECK(r.rules[5].line == 8);
}

TEST_CASE("Cohort file errors carry FILE:LINE", "[aggregate]")
{
    CHECK(only_error("10.0.0.0/8 a\n10.0.0.0/33 b\n") ==
          "nets.txt:2: prefix length 33 out of range 0..32 in '10.0.0.0/33'");
    CHECK(only_error("\n\n10.0.0.0/8\n") ==
          "nets.txt:3: missing label after '10.0.0.0/8' (expected: CIDR label)");
    CHECK(only_error("10.0.0.300/8 x") == "nets.txt:1: invalid address '10.0.0.300'");
    CHECK(only_error("10.0.0.1/8 x") ==
          "nets.txt:1: host bits set in '10.0.0.1/8' (the network is 10.0.0.0/8)");
    CHECK(only_error("2001:db8::/1a x") ==
          "nets.txt:1: invalid prefix length '1a' in '2001:db8::/1a'");
    CHECK(only_error("2001:db8::/129 x") ==
          "nets.txt:1: prefix length 129 out of range 0..128 in '2001:db8::/129'");
    CHECK(only_error("10.0.0.0/8 a\n# c\n10.0.0.0/8 b\n") ==
          "nets.txt:3: network 10.0.0.0/8 already listed on line 1");
    CHECK(only_error("10.0.0.0/8 " + std::string(65, 'x')) ==
          "nets.txt:1: label longer than 64 bytes");
    CHECK(only_error("10.0.0.0/8 caf\xc3\xa9") ==
          "nets.txt:1: label 'caf\xc3\xa9' has non-printable or non-ASCII bytes");
    CHECK(only_error("::ffff:10.0.0.0/90 x") ==
          "nets.txt:1: '::ffff:10.0.0.0/90' mixes IPv4-mapped and IPv6 space (length < 96)");
    CHECK(only_error("10.0.0.0/ x") == "nets.txt:1: invalid prefix length '' in '10.0.0.0/'");
    // All errors are reported, in line order; good lines are kept.
    auto r = parse_cohorts("bad a\n10.1.0.0/16 ok\n10.2.0.0/99 b\n", "f");
    REQUIRE(r.errors.size() == 2);
    CHECK(r.errors[0].rfind("f:1: ", 0) == 0);
    CHECK(r.errors[1].rfind("f:3: ", 0) == 0);
    CHECK(r.rules.size() == 1);
    CHECK_FALSE(r.ok());
}

TEST_CASE("load_cohorts reads a file and names it in errors", "[aggregate]")
{
    auto dir = std::filesystem::temp_directory_path() / ("exf-cohorts-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    auto path = (dir / "networks").string();
    {
        std::ofstream f(path);
        f << "10.0.0.0/8 corp\nnot-a-cidr x\n";
    }
    auto r = load_cohorts(path);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0] == path + ":2: invalid address 'not-a-cidr'");
    CHECK(r.rules.size() == 1);
    auto missing = load_cohorts((dir / "nope").string());
    REQUIRE(missing.errors.size() == 1);
    CHECK(missing.errors[0] ==
          (dir / "nope").string() + ": cannot read: No such file or directory");
    std::filesystem::remove_all(dir);
}

TEST_CASE("Cohorts match the longest prefix per family", "[aggregate]")
{
    auto r = parse_cohorts("10.0.0.0/8 corp\n"
                           "10.20.0.0/16 berlin\n"
                           "10.20.30.0/24 berlin-lab\n"
                           "10.20.30.40 printer\n"
                           "2001:db8::/32 v6corp\n"
                           "2001:db8:42::/48 berlin\n"
                           "::/0 any-v6\n",
                           "n");
    REQUIRE(r.ok());
    CohortMatcher m(r.rules);
    CHECK(m.rules() == 7);
    CHECK(m.labels() == 6);  // berlin is shared
    auto label = [&](const char *a) -> std::string {
        auto l = m.match(A(a));
        return l ? m.label(*l) : "-";
    };
    CHECK(label("10.1.2.3") == "corp");
    CHECK(label("10.20.1.1") == "berlin");
    CHECK(label("10.20.30.1") == "berlin-lab");
    CHECK(label("10.20.30.40") == "printer");
    CHECK(label("10.20.30.41") == "berlin-lab");
    CHECK(label("11.0.0.1") == "-");  // ::/0 is IPv6 only
    CHECK(label("2001:db8:42:1::5") == "berlin");
    CHECK(label("2001:db8:43::5") == "v6corp");
    CHECK(label("2001:db9::1") == "any-v6");
    CHECK(m.memory_bytes() > 0);
    CohortMatcher empty;
    CHECK_FALSE(empty.match(A("10.0.0.1")));
}

TEST_CASE("Cohort entities aggregate their clients", "[aggregate]")
{
    AggConfig cfg;
    cfg.cohorts =
        parse_cohorts("10.20.0.0/16 berlin\n2001:db8:42::/48 berlin\n10.20.30.0/24 lab\n", "n")
            .rules;
    Aggregator agg(cfg);
    Traffic t;
    t.bytes_out = 100;
    t.flows_opened = 1;
    agg.add_traffic(1000, A("10.20.1.1"), "api.example.com", t);
    agg.add_traffic(1000, A("10.20.1.2"), "api.example.com", t);
    agg.add_traffic(1000, A("2001:db8:42:7::1"), "other.example.com", t);
    agg.add_traffic(1000, A("10.20.30.5"), "api.example.com", t);  // lab, not berlin
    agg.add_traffic(1000, A("192.0.2.1"), "api.example.com", t);   // no cohort
    CHECK(agg.size(EntityKind::cohort) == 2);
    auto berlin = agg.value(EntityKind::cohort, agg.cohort_key("berlin"), 0, 1000);
    CHECK(berlin.bytes_out == 300);
    CHECK(berlin.tls_flows == 3);
    CHECK(berlin.distinct_clients == 3);
    CHECK(agg.value(EntityKind::cohort, agg.cohort_key("lab"), 0, 1000).distinct_clients == 1);
    CHECK(agg.cohort_of(A("10.20.30.5")) == "lab");
    CHECK_FALSE(agg.cohort_of(A("192.0.2.1")));
    auto snis = agg.top_snis(EntityKind::cohort, agg.cohort_key("berlin"));
    REQUIRE(snis.size() == 2);
    CHECK(snis[0].sni == "api.example.com");
    CHECK(snis[0].bytes_out == 200);
    CHECK(snis[1].sni == "other.example.com");
}
