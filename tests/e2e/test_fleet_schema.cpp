// SPDX-License-Identifier: Apache-2.0
// The fleet's tables in a real ClickHouse (Debian's clickhouse-server,
// started by the test on loopback): `exfilmon fleet init` creates them once
// and names the fix for each way it can fail; the schema counts a batch
// sent twice once.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <fstream>

#include "common/addr.h"
#include "fleet/clickhouse.h"
#include "fleet/periods.h"
#include "fleet/schema.h"
#include "support/clickhouse.h"
#include "support/servers.h"
#include "support/test_env.h"

using namespace exf::test;

namespace {

// A configuration file with this [fleet] table (mode 0600).
std::string fleet_config(Lab &lab, const std::string &name, const std::string &fleet_keys)
{
    return write_config(lab.dir() / (name + ".toml"), "[fleet]\n" + fleet_keys);
}

ProcResult fleet(const std::string &sub, const std::string &config)
{
    return exfilmon_fleet({sub, "--config", config});
}

}  // namespace

TEST_CASE("fleet init creates the database and tables once and a second run changes nothing",
          "[e2e][sanitize][fleet]")
{
    if (!require_clickhouse())
        return;
    Lab lab;
    ClickHouseServer ch(lab);
    ch.start();
    auto cfg = write_config(lab.dir() / "fleet.toml", fleet_table(ch.url(), "exf_init"));
    auto first = fleet("init", cfg);
    INFO(first.out << first.err);
    REQUIRE(first.status == 0);
    for (auto t : {"schema_info", "traffic", "traffic_hourly", "alerts"})
        CHECK(first.out.find(std::string("created: table exf_init.") + t) != std::string::npos);
    CHECK(first.out.find("recorded: schema version 2") != std::string::npos);
    CHECK(ch.query("SHOW TABLES FROM exf_init") ==
          "alerts\nschema_info\ntraffic\ntraffic_hourly\n");

    auto second = fleet("init", cfg);
    INFO(second.out << second.err);
    REQUIRE(second.status == 0);
    CHECK(second.out.find("created") == std::string::npos);
    CHECK(second.out.find("exists: table exf_init.traffic\n") != std::string::npos);
    CHECK(second.out.find("exists: schema version 2") != std::string::npos);
    CHECK(ch.query("SELECT count(), max(version) FROM exf_init.schema_info") == "1\t2\n");

    // What `fleet schema` prints is what init ran: a DBA applying it by hand
    // to a fresh database gets the same tables.
    auto sql = fleet("schema", cfg);
    REQUIRE(sql.status == 0);
    CHECK(sql.out == exf::fleet::schema_sql("exf_init"));
}

TEST_CASE("fleet init names the fix for a dead server, a refused user and another schema version",
          "[e2e][sanitize][fleet]")
{
    if (!require_clickhouse())
        return;
    Lab lab;
    ClickHouseServer ch(lab);
    ch.start();
    auto pw = lab.dir() / "password";
    auto write_password = [&](const std::string &text, mode_t mode) {
        std::ofstream(pw) << text << "\n";
        ::chmod(pw.c_str(), mode);
    };
    auto user_config = "clickhouse = \"" + ch.url() +
                       "\"\nuser = \"exfilmon\"\npassword_file = \"" + pw.string() + "\"\n";

    SECTION("nobody listens at the URL: exit 1, naming the URL and the key")
    {
        auto r = fleet("init", fleet_config(lab, "dead",
                                            "clickhouse = \"http://127.0.0.1:" +
                                                std::to_string(free_tcp_port("")) + "\"\n"));
        CHECK(r.status == 1);
        CHECK(r.err.find("cannot reach ClickHouse at http://127.0.0.1:") != std::string::npos);
        CHECK(r.err.find("[fleet] clickhouse") != std::string::npos);
    }
    SECTION("a wrong password: exit 2, naming the user and the keys; the right one works")
    {
        write_password("not-the-password", 0600);
        auto r = fleet("init", fleet_config(lab, "user", user_config));
        CHECK(r.status == 2);
        CHECK(r.err.find("refused user 'exfilmon'") != std::string::npos);
        CHECK(r.err.find("[fleet] user and password_file") != std::string::npos);
        write_password(ch.options().password, 0600);
        auto ok = fleet("init", fleet_config(lab, "user", user_config));
        INFO(ok.err);
        CHECK(ok.status == 0);
    }
    SECTION("a password file others can write is refused like the configuration")
    {
        write_password(ch.options().password, 0666);
        auto r = fleet("init", fleet_config(lab, "user", user_config));
        CHECK(r.status == 2);
        CHECK(r.err.find("password_file " + pw.string()) != std::string::npos);
        CHECK(r.err.find("writable by others") != std::string::npos);
    }
    SECTION("a database holding another schema version: exit 2, nothing written")
    {
        ch.query("CREATE DATABASE exf_other");
        ch.query("CREATE TABLE exf_other.schema_info (version UInt32) ENGINE = TinyLog");
        ch.query("INSERT INTO exf_other.schema_info VALUES (99)");
        auto r = fleet("init",
                       write_config(lab.dir() / "other.toml", fleet_table(ch.url(), "exf_other")));
        CHECK(r.status == 2);
        CHECK(r.err.find("has schema version 99, this exfilmon uses 2") != std::string::npos);
        CHECK(ch.query("SELECT count() FROM exf_other.schema_info") == "1\n");
    }
    SECTION("a version 1 database: exit 2 with the statements that upgrade it, which do")
    {
        auto cfg =
            fleet_config(lab, "old", "clickhouse = \"" + ch.url() + "\"\ndatabase = \"exf_old\"\n");
        // What version 1 created: these tables without the requests column.
        ch.query("CREATE DATABASE exf_old");
        for (auto &t : exf::fleet::schema_tables("exf_old")) {
            std::string create = t.create;
            if (auto col = create.find(",\n    requests UInt64"); col != std::string::npos)
                create.erase(col, std::string(",\n    requests UInt64").size());
            ch.query(create);
        }
        ch.query("INSERT INTO exf_old.schema_info VALUES (1)");
        auto r = fleet("init", cfg);
        CHECK(r.status == 2);
        const std::string run = "run ";
        auto at = r.err.find(run);
        REQUIRE(at != std::string::npos);
        auto end = r.err.find(", then upgrade them all", at);
        REQUIRE(end != std::string::npos);
        std::string statements = r.err.substr(at + run.size(), end - at - run.size());
        CHECK(statements.find("ALTER TABLE exf_old.traffic ADD COLUMN requests UInt64") == 0);
        for (size_t from = 0, semi; from < statements.size(); from = semi + 2) {
            semi = statements.find("; ", from);
            if (semi == std::string::npos)
                semi = statements.size();
            ch.query(statements.substr(from, semi - from));
        }
        auto again = fleet("init", cfg);
        INFO(again.err);
        CHECK(again.status == 0);
        CHECK(again.out.find("exists: schema version 2") != std::string::npos);
    }
    SECTION("no [fleet] table: exit 2")
    {
        auto r = fleet("init", write_config(lab.dir() / "empty.toml", "[log]\nlevel = \"info\"\n"));
        CHECK(r.status == 2);
        CHECK(r.err.find("no [fleet] table") != std::string::npos);
    }
}

TEST_CASE("A batch the fleet table receives twice counts once when read with FINAL",
          "[e2e][sanitize][fleet]")
{
    if (!require_clickhouse())
        return;
    Lab lab;
    ClickHouseServer ch(lab);
    ch.start();
    REQUIRE(fleet("init", write_config(lab.dir() / "once.toml", fleet_table(ch.url(), "exf_once")))
                .status == 0);
    exf::fleet::ClickHouse client(fleet_client_config(ch, "exf_once"));
    // Rows as a sensor makes them (fleet/periods.h), so that the JSON and the
    // table are checked against each other.
    exf::fleet::PeriodTable periods(10000, [](const exf::Addr16 &a) {
        return exf::fleet::ClientNames{exf::format_addr(a), "203.0.113.0/24", ""};
    });
    auto add = [&](uint64_t at_ms, const char *client_addr, const std::string &ja4,
                   uint64_t bytes_out) {
        periods.add(at_ms, *exf::parse_addr(client_addr), "api.example.com", ja4,
                    {100, bytes_out, 2, 3, 1});
    };
    const uint64_t t0 = 1765100000000;
    // Rows that differ only in the client or the JA4 are distinct rows.
    add(t0, "203.0.113.7", "t13d1516h2_8daaf6152771_e5627efa2ab1", 1000);
    add(t0, "203.0.113.7", "t13d1517h2_8daaf6152771_b6f405a00624", 2000);
    add(t0, "203.0.113.8", "t13d1516h2_8daaf6152771_e5627efa2ab1", 4000);
    std::string batch = exf::fleet::to_json_rows(periods.close_due(t0 + 10000), "edge-1");
    REQUIRE(client.insert_json_rows("exf_once.traffic", batch).ok());
    // The same batch again (a retry after a timeout), then a later period.
    REQUIRE(client.insert_json_rows("exf_once.traffic", batch).ok());
    add(t0 + 10000, "203.0.113.7", "x", 8000);
    REQUIRE(client
                .insert_json_rows("exf_once.traffic",
                                  exf::fleet::to_json_rows(periods.close_due(t0 + 20000), "edge-1"))
                .ok());

    CHECK(ch.query("SELECT sum(bytes_out), count() FROM exf_once.traffic FINAL") == "15000\t4\n");
    CHECK(ch.query("SELECT client, sum(bytes_out) FROM exf_once.traffic FINAL GROUP BY client "
                   "ORDER BY client") == "203.0.113.7\t11000\n203.0.113.8\t4000\n");
    // Without FINAL the retried batch is there twice until parts merge: the
    // reason every fleet query reads FINAL.
    CHECK(ch.query("SELECT sum(bytes_out) FROM exf_once.traffic") == "22000\n");

    // A batch with a bad row is refused whole, naming the problem.
    add(t0 + 20000, "203.0.113.9", "y", 1);
    auto bad = client.insert_json_rows(
        "exf_once.traffic", exf::fleet::to_json_rows(periods.close_due(t0 + 30000), "edge-1") +
                                "{\"period_start\":\"x\"}\n");
    CHECK_FALSE(bad.ok());
    CHECK(bad.failure == exf::fleet::Failure::refused);
    CHECK(ch.query("SELECT count() FROM exf_once.traffic FINAL WHERE client = '203.0.113.9'") ==
          "0\n");
}

// At the benchmark's size a rule read can outlast the client's timeout
// (docs/fleet.md, "Sizing"): the server must stop it too, not keep it
// running beside the evaluator's next attempts.
TEST_CASE("A read longer than the client's timeout is stopped by the server as well",
          "[e2e][fleet]")
{
    if (!require_clickhouse())
        return;
    Lab lab;
    ClickHouseServer ch(lab);
    ch.start();
    auto cfg = fleet_client_config(ch, "default");
    cfg.timeout_ms = 1500;  // [fleet] timeout: the server's limit is its whole seconds
    exf::fleet::ClickHouse client(cfg);
    const std::string probe = "exf_timeout_probe";
    auto r =
        client.query("SELECT sum(cityHash64(number)) AS " + probe + " FROM numbers(100000000000)");
    INFO(r.why << "\n" << r.body);
    CHECK_FALSE(r.ok());
    CHECK(r.body.find("Code: 159") != std::string::npos);  // TIMEOUT_EXCEEDED, from the server
    CHECK(r.why == "ClickHouse at " + ch.url() +
                       " stopped a statement at 1 s ([fleet] timeout; raise it for a large fleet: "
                       "docs/fleet.md, \"Sizing\")");
    const std::string running = "SELECT count() FROM system.processes WHERE query LIKE '%" + probe +
                                "%' AND query NOT LIKE '%system.processes%'";
    CHECK(eventually([&] { return ch.query(running) == "0\n"; }, 3s));
}
