// The exfilmon binary's command line: exit codes (0 ok, 1 runtime failure,
// 2 usage or configuration error) and messages.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "support/proc.h"
#include "support/temp_dir.h"
#include "support/test_env.h"

using namespace exf::test;

TEST_CASE("exfilmon version and usage errors", "[cli]")
{
    auto bin = exfilmon_binary().string();
    auto v = run_program({bin, "version"});
    CHECK(v.status == 0);
    CHECK(v.out == std::string("exfilmon ") + EXFILMON_VERSION + "\n");
    CHECK(run_program({bin}).status == 2);
    CHECK(run_program({bin, "no-such-command"}).status == 2);
    auto help = run_program({bin, "run", "--help"});
    CHECK(help.status == 0);
    CHECK(help.out.find("--interface") != std::string::npos);
}

TEST_CASE("exfilmon check-config reports FILE:LINE:COLUMN and exits 2", "[cli]")
{
    auto bin = exfilmon_binary().string();
    auto ok = run_program({bin, "check-config", (source_dir() / "configs/exfilmon.toml").string()});
    CHECK(ok.status == 0);
    CHECK(ok.out.find(": OK") != std::string::npos);

    auto path = std::filesystem::temp_directory_path() / "exfilmon-check-config-test.toml";
    std::ofstream(path) << "[bpf]\nflow_table_size = 3\nbogus = 1\n";
    auto bad = run_program({bin, "check-config", path.string()});
    std::filesystem::remove(path);
    CHECK(bad.status == 2);
    CHECK(bad.err == path.string() + ":2:19: flow_table_size: 3 is out of range [1024, 67108864]\n" +
                         path.string() + ":3:9: unknown key 'bogus' in [bpf]\n");
    auto missing = run_program({bin, "check-config", "/nonexistent.toml"});
    CHECK(missing.status == 2);
    CHECK(missing.err.find("/nonexistent.toml:0:0: cannot open") != std::string::npos);
    CHECK(run_program({bin, "check-config"}).status == 2);
}

TEST_CASE("exfilmon run with a bad configuration exits 2", "[cli]")
{
    auto bin = exfilmon_binary().string();
    auto path = std::filesystem::temp_directory_path() / "exfilmon-run-bad-config-test.toml";
    std::ofstream(path) << "[capture]\nbackend = \"carrier-pigeon\"\n";
    auto r = run_program({bin, "run", "--config", path.string()});
    std::filesystem::remove(path);
    CHECK(r.status == 2);
    CHECK(r.err.find(":2:11: backend: expected \"ebpf\" or \"pcap\"") != std::string::npos);
}

TEST_CASE("exfilmon run without the capabilities says which ones and how to grant them", "[cli]")
{
    if (!require_root())
        return;
    // An unprivileged user (setpriv drops every capability with the uid).
    auto dir = std::filesystem::temp_directory_path() /
               ("exf-cli-caps-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    using std::filesystem::perms;
    std::filesystem::permissions(dir, perms::owner_all | perms::group_read | perms::group_exec |
                                          perms::others_read | perms::others_exec);
    auto cfg = dir / "x.toml";
    std::ofstream(cfg) << "[bpf]\npin = false\n[control]\nsocket = \"" << (dir / "c.sock").string()
                       << "\"\n[metrics]\nenabled = false\n";
    auto r = run_program({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          "--inh-caps=-all", exfilmon_binary().string(), "run", "--config",
                          cfg.string(), "--interface", "lo"});
    std::filesystem::remove_all(dir);
    INFO(r.out << r.err);
    CHECK(r.status == 1);
    auto text = r.out + r.err;
    for (auto *needle : {"CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "AmbientCapabilities",
                         "backend = \"pcap\""})
        CHECK(text.find(needle) != std::string::npos);
}

TEST_CASE("exfilmon top refuses a ranking its kind does not have with exit 2", "[cli]")
{
    TempDir d("exf-cli-top");
    auto bin = exfilmon_binary().string();
    // Refused before any daemon is asked: the socket need not exist.
    auto socket = (d.path / "none.sock").string();
    auto r = run_program({bin, "top", "--kind", "client", "--sort", "distinct_clients", "--once",
                          "--socket", socket});
    CHECK(r.status == 2);
    CHECK(r.err == "exfilmon top: sort: distinct_clients applies to subnet, cohort, sni and host "
                   "only, not client\n");
    // A group kind is asked for (and the missing daemon is then exit 1).
    auto group = run_program({bin, "top", "--kind", "subnet", "--sort", "distinct_clients", "--once",
                              "--socket", socket});
    CHECK(group.status == 1);
}
