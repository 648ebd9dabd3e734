// SPDX-License-Identifier: Apache-2.0
#include "support/clickhouse.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "support/servers.h"
#include "support/test_env.h"

namespace exf::test {

bool require_clickhouse()
{
    return require_root() &&
           require(std::filesystem::exists("/usr/sbin/clickhouse-server"),
                   "clickhouse-server is not installed (scripts/install-deps.sh installs it)");
}

ClickHouseServer::ClickHouseServer(Lab &lab, ClickHouseOptions opts)
    : lab_(lab), opts_(std::move(opts)), dir_(lab.dir() / opts_.name)
{
    namespace fs = std::filesystem;
    for (auto sub : {"data", "tmp", "user_files", "format_schemas", "log"})
        fs::create_directories(dir_ / sub);
    if (opts_.http_port == 0)
        opts_.http_port = free_tcp_port(opts_.ns, opts_.address);
    do
        tcp_port_ = free_tcp_port(opts_.ns, opts_.address);
    while (tcp_port_ == opts_.http_port);
    std::string d = dir_.string();
    // <yandex> is the root element 18.16 reads (current releases accept it).
    write_config(dir_ / "config.xml", "<?xml version=\"1.0\"?>\n<yandex>\n"
                                      "  <logger><level>warning</level><log>" +
                                          d +
                                          "/log/server.log</log>"
                                          "<errorlog>" +
                                          d +
                                          "/log/error.log</errorlog></logger>\n"
                                          "  <listen_host>" +
                                          opts_.address +
                                          "</listen_host>\n"
                                          "  <http_port>" +
                                          std::to_string(opts_.http_port) +
                                          "</http_port>\n"
                                          "  <tcp_port>" +
                                          std::to_string(tcp_port_) +
                                          "</tcp_port>\n"
                                          "  <path>" +
                                          d + "/data/</path>\n  <tmp_path>" + d +
                                          "/tmp/</tmp_path>\n"
                                          "  <user_files_path>" +
                                          d +
                                          "/user_files/</user_files_path>\n"
                                          "  <format_schema_path>" +
                                          d +
                                          "/format_schemas/</format_schema_path>\n"
                                          "  <users_config>" +
                                          d +
                                          "/users.xml</users_config>\n"
                                          "  <default_profile>default</default_profile>\n"
                                          "  <default_database>default</default_database>\n"
                                          "  <mark_cache_size>5368709</mark_cache_size>\n" +
                                          opts_.extra_config + "</yandex>\n");
    auto user = [](const std::string &name, const std::string &password) {
        return "    <" + name + "><password>" + password +
               "</password><networks><ip>::/0</ip></networks>"
               "<profile>default</profile><quota>default</quota></" +
               name + ">\n";
    };
    write_config(dir_ / "users.xml",
                 "<?xml version=\"1.0\"?>\n<yandex>\n"
                 "  <profiles><default><max_memory_usage>2000000000</max_memory_usage>"
                 "</default></profiles>\n  <users>\n" +
                     user("default", "") + user("exfilmon", opts_.password) +
                     "  </users>\n  <quotas><default></default></quotas>\n</yandex>\n");
}

ClickHouseServer::~ClickHouseServer()
{
    try {
        stop(10s);
    } catch (...) {}
}

void ClickHouseServer::start(std::chrono::milliseconds timeout)
{
    if (running())
        throw Error("clickhouse-server already running");
    auto out = dir_ / ("clickhouse-" + std::to_string(++starts_) + ".out");
    proc_ = &lab_.spawn(
        opts_.ns,
        {"/usr/sbin/clickhouse-server", "--config-file=" + (dir_ / "config.xml").string()},
        SpawnOptions{dir_, out});
    try {
        wait_listening_while_running(lab_, opts_.ns, opts_.http_port, 1, *proc_, out, timeout);
    } catch (const Error &e) {
        proc_->stop(SIGKILL, 1s);
        proc_ = nullptr;
        throw Error(std::string(e.what()) +
                    "\nclickhouse error log: " + tail_of(dir_ / "log" / "error.log"));
    }
}

int ClickHouseServer::stop(std::chrono::milliseconds grace)
{
    if (!proc_)
        return -1;
    int st = proc_->stop(SIGTERM, grace);
    proc_ = nullptr;
    return st;
}

bool ClickHouseServer::running() { return proc_ && proc_->running(); }

std::string ClickHouseServer::url() const
{
    return "http://" + opts_.address + ":" + std::to_string(opts_.http_port);
}

std::string ClickHouseServer::query(const std::string &sql) const
{
    auto r = lab_.run(opts_.ns, {"curl", "-sS", "--fail-with-body", "--data-binary", sql, url()});
    if (!r.ok())
        throw Error("ClickHouse query failed: " + sql + ": " + r.output);
    return r.output;
}

std::string fleet_table(const std::string &url, const std::string &database)
{
    return "[fleet]\nclickhouse = \"" + url + "\"\ndatabase = \"" + database + "\"\n";
}

std::string write_config(const std::filesystem::path &path, const std::string &toml)
{
    std::ofstream out(path, std::ios::trunc);
    out << toml;
    out.close();
    if (!out || ::chmod(path.c_str(), 0600) != 0)
        throw Error("cannot write " + path.string());
    return path.string();
}

ProcResult exfilmon_fleet(const std::vector<std::string> &args)
{
    std::vector<std::string> argv = {exfilmon_binary().string(), "fleet"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_program(argv);
}

exf::fleet::FleetConfig fleet_client_config(const ClickHouseServer &ch, const std::string &database)
{
    exf::fleet::FleetConfig cfg;
    cfg.enabled = true;
    cfg.clickhouse = ch.url();
    cfg.database = database;
    return cfg;
}

}  // namespace exf::test
