// SPDX-License-Identifier: Apache-2.0
// What a sensor sends to the fleet: rows per period and (client, API host,
// JA4), periods aligned to the epoch, each closed once, peak concurrency
// carried across periods, and JSON rows whose fields are the traffic
// table's columns.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <regex>
#include <set>
#include <sstream>

#include "common/addr.h"
#include "common/error.h"
#include "common/state_codec.h"
#include "fleet/periods.h"
#include "fleet/schema.h"

using namespace exf;
using exf::fleet::PeriodTable;

namespace {

Addr16 addr(const char *text)
{
    auto a = parse_addr(text);
    REQUIRE(a);
    return *a;
}

fleet::ClientNames names(const Addr16 &a)
{
    return {format_addr(a), "net-of-" + format_addr(a), "cohort-x"};
}

agg::Traffic bytes(uint64_t in, uint64_t out, uint64_t flows = 0) { return {in, out, 1, 2, flows}; }

constexpr uint64_t kT0 = 1765100003000;  // 3 s into a 10 s period

}  // namespace

TEST_CASE("Fleet periods: one row per client API host and JA4, each period closed once", "[fleet]")
{
    PeriodTable t(10000, names);
    auto c1 = addr("203.0.113.7"), c2 = addr("2001:db8::1");
    t.add(kT0, c1, "api.example.com", "ja4-a", bytes(10, 100, 1));
    t.add(kT0 + 1000, c1, "api.example.com", "ja4-a", bytes(5, 50));
    t.add(kT0 + 2000, c1, "api.example.com", "ja4-b", bytes(1, 1, 1));
    t.add(kT0 + 3000, c2, "", "", bytes(7, 7));
    CHECK(t.open_period_start_ms() == 1765100000000);

    CHECK(t.close_due(kT0 + 6999).empty());  // the period ends at +7000
    auto rows = t.close_due(kT0 + 7000);
    REQUIRE(rows.size() == 3);
    // In order: client address (IPv4 as ::ffff: sorts before 2001:db8::),
    // then SNI, then JA4.
    CHECK(rows[0].names.client == "203.0.113.7");
    CHECK(rows[0].names.cohort == "cohort-x");
    CHECK(rows[0].ja4 == "ja4-a");
    CHECK(rows[0].traffic.bytes_out == 150);
    CHECK(rows[0].traffic.bytes_in == 15);
    CHECK(rows[0].traffic.pkts_out == 4);
    CHECK(rows[0].traffic.flows_opened == 1);
    CHECK(rows[1].ja4 == "ja4-b");
    CHECK(rows[1].traffic.bytes_out == 1);
    CHECK(rows[2].names.client == "2001:db8::1");
    CHECK(rows[2].sni.empty());
    for (auto &r : rows) {
        CHECK(r.period_start_ms == 1765100000000);
        CHECK(r.period_ms == 10000);
    }
    // Closed once; the next period holds only what came after.
    CHECK(t.close_due(kT0 + 7000).empty());
    t.add(kT0 + 8000, c1, "api.example.com", "ja4-a", bytes(1, 2));
    CHECK(t.close_due(kT0 + 16999).empty());
    auto next = t.close_due(kT0 + 17000);
    REQUIRE(next.size() == 1);
    CHECK(next[0].period_start_ms == 1765100010000);
    CHECK(next[0].traffic.bytes_out == 2);
}

TEST_CASE("Fleet periods: peak concurrency within a period and carried into the next", "[fleet]")
{
    PeriodTable t(10000, names);
    auto c = addr("198.51.100.9");
    auto open = [&](uint64_t at) { t.flow_opened(at, c, "api.example.com", "j"); };
    auto close = [&](uint64_t at) { t.flow_closed(at, c, "api.example.com", "j"); };
    open(kT0);
    open(kT0 + 1);
    open(kT0 + 2);
    close(kT0 + 3);
    close(kT0 + 4);
    t.add(kT0 + 5, c, "api.example.com", "j", bytes(1, 1, 3));
    auto rows = t.close_due(kT0 + 7000);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].peak_concurrent == 3);

    // One flow is still open: the next period's peak starts from it, but a
    // period without traffic sends no row.
    CHECK(t.close_due(kT0 + 17000).empty());
    open(kT0 + 18000);
    t.add(kT0 + 18000, c, "api.example.com", "j", bytes(1, 1, 1));
    rows = t.close_due(kT0 + 27000);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].peak_concurrent == 2);
    // More closes than flows open (flows opened before the sensor started)
    // do not wrap below zero.
    close(kT0 + 28000);
    close(kT0 + 28001);
    close(kT0 + 28002);
    open(kT0 + 28003);
    t.add(kT0 + 28003, c, "api.example.com", "j", bytes(1, 1, 1));
    rows = t.close_due(kT0 + 37000);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].peak_concurrent == 2);  // the two carried in were open at its start
    t.add(kT0 + 38000, c, "api.example.com", "j", bytes(1, 1));
    rows = t.close_due(kT0 + 47000);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].peak_concurrent == 1);
}

TEST_CASE("Fleet JSON rows carry exactly the traffic table's columns", "[fleet]")
{
    PeriodTable t(10000, names);
    auto calls = bytes(3, 4, 1);
    calls.requests = 5;
    t.add(kT0, addr("203.0.113.7"), "api.example.com\xff", "ja4-a", calls);
    t.add(kT0 + 1, addr("203.0.113.7"), "api.example.com\xff", "ja4-a", calls);
    t.flow_opened(kT0, addr("203.0.113.7"), "api.example.com\xff", "ja4-a");
    auto text = fleet::to_json_rows(t.close_due(kT0 + 7000), "edge-1");
    REQUIRE(std::count(text.begin(), text.end(), '\n') == 1);
    auto j = nlohmann::json::parse(text);

    // The columns of CREATE TABLE ... traffic (...): one "name Type" a line.
    std::set<std::string> columns, fields;
    for (auto &table : fleet::schema_tables("db"))
        if (table.name == "traffic") {
            std::istringstream in(table.create);
            std::regex column(R"(^    ([a-z_][a-z0-9_]*) [A-Z][A-Za-z0-9]*,?$)");
            std::smatch m;
            for (std::string line; std::getline(in, line);)
                if (std::regex_match(line, m, column))
                    columns.insert(m[1]);
        }
    for (auto &[k, v] : j.items())
        fields.insert(k);
    CHECK(columns.size() == 15);
    CHECK(fields == columns);
    CHECK(j["period_start"] == 1765100000);
    CHECK(j["sensor"] == "edge-1");
    CHECK(j["bytes_out"] == 8);
    CHECK(j["tls_flows"] == 2);
    CHECK(j["requests"] == 10);
    CHECK(j["peak_concurrent"] == 1);
    // A byte that is not UTF-8 is replaced, not a reason to lose the row.
    CHECK(j["sni"] == "api.example.com\xef\xbf\xbd");
}

TEST_CASE("Fleet periods: addresses with the same names make one row, sums and peaks added",
          "[fleet]")
{
    // Two addresses named as one client (a prefix shortened by a reload
    // within the period): two rows would share the table's key and count
    // once there.
    PeriodTable t(10000, [](const Addr16 &) {
        return fleet::ClientNames{"2001:db8::/56", "", ""};
    });
    auto a = addr("2001:db8::1"), b = addr("2001:db8:0:1::1");
    t.flow_opened(kT0, a, "api.example.com", "j");
    t.add(kT0, a, "api.example.com", "j", bytes(1, 100, 1));
    t.flow_opened(kT0, b, "api.example.com", "j");
    t.add(kT0, b, "api.example.com", "j", bytes(2, 200, 1));
    t.add(kT0, b, "other.example.com", "j", bytes(3, 300));
    auto rows = t.close_due(kT0 + 7000);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].sni == "api.example.com");
    CHECK(rows[0].traffic.bytes_out == 300);
    CHECK(rows[0].traffic.bytes_in == 3);
    CHECK(rows[0].traffic.pkts_out == 4);
    CHECK(rows[0].traffic.flows_opened == 2);
    CHECK(rows[0].peak_concurrent == 2);
    CHECK(rows[1].sni == "other.example.com");
    CHECK(rows[1].traffic.bytes_out == 300);
}

TEST_CASE("Fleet periods: the open period carries on through the state file", "[fleet]")
{
    PeriodTable t(10000, names);
    auto c = addr("198.51.100.9");
    t.flow_opened(kT0, c, "api.example.com", "j");
    t.flow_opened(kT0, c, "api.example.com", "j");
    t.flow_closed(kT0, c, "api.example.com", "j");
    t.add(kT0, c, "api.example.com", "j", bytes(5, 50, 2));
    t.add(kT0, addr("2001:db8::7"), "", "", bytes(1, 1));
    StateWriter w;
    t.save(w);

    PeriodTable back(10000, names);
    StateReader r(w.bytes());
    back.restore(r);
    CHECK(r.done());
    CHECK(back.open_period_start_ms() == t.open_period_start_ms());
    back.add(kT0 + 1000, c, "api.example.com", "j", bytes(1, 10));
    t.add(kT0 + 1000, c, "api.example.com", "j", bytes(1, 10));
    auto want = fleet::to_json_rows(t.close_due(kT0 + 7000), "edge-1");
    auto got = fleet::to_json_rows(back.close_due(kT0 + 7000), "edge-1");
    CHECK(got == want);
    CHECK(got.find("\"bytes_out\":60") != std::string::npos);
    CHECK(got.find("\"peak_concurrent\":2") != std::string::npos);
    // The flow still open is carried into the next period.
    back.add(kT0 + 8000, c, "api.example.com", "j", bytes(1, 1));
    auto next = back.close_due(kT0 + 17000);
    REQUIRE(next.size() == 1);
    CHECK(next[0].peak_concurrent == 1);

    // Bad bytes: an error, the table unchanged.
    std::string cut = w.bytes().substr(0, w.bytes().size() - 3);
    StateReader bad(cut);
    PeriodTable keep(10000, names);
    CHECK_THROWS_AS(keep.restore(bad), Error);
    CHECK(keep.open_period_start_ms() == 0);
}
