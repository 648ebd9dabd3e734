// SPDX-License-Identifier: Apache-2.0
#pragma once
// ClickHouse for the fleet's end-to-end tests (needs root): Debian's
// clickhouse-server in a Lab, with its own data directory on loopback (or
// a lab namespace's) ports, queried over HTTP; and the [fleet]
// configurations and `exfilmon fleet` commands the tests run against it.
//
//   exf::test::Lab lab;
//   ClickHouseServer ch(lab);                                   // not started
//   ch.start();                                                 // /ping answers
//   auto cfg = write_config(lab.dir() / "fleet.toml", fleet_table(ch.url(), "exf"));
//   REQUIRE(exfilmon_fleet({"init", "--config", cfg}).status == 0);
//   ch.query("SELECT count() FROM exf.traffic FINAL");          // "0\n"
//   exf::fleet::ClickHouse client(fleet_client_config(ch, "exf"));
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "fleet/fleet_config.h"
#include "support/netns.h"
#include "support/proc.h"

namespace exf::test {

struct ClickHouseOptions {
    std::string ns;  // "" : the test's own namespace
    std::string address = "127.0.0.1";
    uint16_t http_port = 0;  // 0: a free port
    // A second user, "exfilmon", with this password (the "default" user has
    // none), for the tests of authentication.
    std::string password = "exf-test-password";
    std::string name = "clickhouse";  // subdirectory of lab.dir()
    // More of config.xml, inside <yandex> (a Distributed table's
    // <remote_servers>, for example).
    std::string extra_config;
};

// The gate of every ClickHouse test (test_env.h's rule): root, and Debian's
// clickhouse-server installed (scripts/install-deps.sh).
bool require_clickhouse();

// Debian's clickhouse-server with a configuration of its own: loopback
// ports, data, logs and users under lab.dir()/name, nothing of /etc or
// /var touched. Stopped (SIGTERM, then SIGKILL) by stop() or the destructor.
class ClickHouseServer {
public:
    // Picks the ports and writes the configuration; does not start.
    ClickHouseServer(Lab &lab, ClickHouseOptions opts = {});
    ~ClickHouseServer();  // stop(), never throws
    ClickHouseServer(const ClickHouseServer &) = delete;
    ClickHouseServer &operator=(const ClickHouseServer &) = delete;

    // Starts it and waits until /ping answers (throws with its log
    // otherwise). The data directory is kept across restarts.
    void start(std::chrono::milliseconds timeout = 60s);
    int stop(std::chrono::milliseconds grace = 20s);
    bool running();

    // "http://127.0.0.1:PORT"
    std::string url() const;
    // Its native protocol port (what another server's <remote_servers> names).
    uint16_t tcp_port() const { return tcp_port_; }
    const ClickHouseOptions &options() const { return opts_; }
    // Runs one statement as "default" over HTTP (curl, from the server's
    // namespace); returns the answer, throws exf::Error with it on failure.
    std::string query(const std::string &sql) const;

private:
    Lab &lab_;
    ClickHouseOptions opts_;
    std::filesystem::path dir_;
    uint16_t tcp_port_ = 0;
    Process *proc_ = nullptr;
    unsigned starts_ = 0;
};

// "[fleet]\nclickhouse = \"URL\"\ndatabase = \"DATABASE\"\n": the table
// every fleet configuration of the tests starts with.
std::string fleet_table(const std::string &url, const std::string &database);

// Writes a configuration file with mode 0600 (exfilmon refuses one others
// can write); returns its path. Throws exf::Error.
std::string write_config(const std::filesystem::path &path, const std::string &toml);

// `exfilmon fleet ARGS...` (e.g. {"init", "--config", FILE}).
ProcResult exfilmon_fleet(const std::vector<std::string> &args);

// What exf::fleet::ClickHouse needs to reach `database` on ch.
exf::fleet::FleetConfig fleet_client_config(const ClickHouseServer &ch,
                                            const std::string &database);

}  // namespace exf::test
