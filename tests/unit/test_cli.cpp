// SPDX-License-Identifier: Apache-2.0
// The exfilmon binary's command line: exit codes (0 ok, 1 runtime failure,
// 2 usage or configuration error) and messages.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "support/proc.h"
#include "support/temp_dir.h"
#include "support/test_env.h"

using namespace exf::test;

TEST_CASE("exfilmon version and usage errors", "[cli]")
{
    auto bin = exfilmon_binary().string();
    auto v = run_program({bin, "version"});
    CHECK(v.status == 0);
    // The version first (as --version prints it), then what a bug report needs.
    CHECK(v.out.rfind(std::string("exfilmon ") + EXFILMON_VERSION + "\ncommit: ", 0) == 0);
    for (const char *line : {"\nbuild type: ", "\nlibbpf: ", "\nkernel: "})
        CHECK(v.out.find(line) != std::string::npos);
    CHECK(run_program({bin, "--version"}).out ==
          std::string("exfilmon ") + EXFILMON_VERSION + "\n");
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
    CHECK(bad.err == path.string() +
                         ":2:19: flow_table_size: 3 is out of range [1024, 67108864]\n" +
                         path.string() + ":3:9: unknown key 'bogus' in [bpf]\n");
    auto missing = run_program({bin, "check-config", "/nonexistent.toml"});
    CHECK(missing.status == 2);
    CHECK(missing.err == "/nonexistent.toml: cannot read the configuration file: No such file or "
                         "directory\n");
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
    auto dir =
        std::filesystem::temp_directory_path() / ("exf-cli-caps-" + std::to_string(::getpid()));
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
    for (auto *needle :
         {"CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "AmbientCapabilities", "backend = \"pcap\""})
        CHECK(text.find(needle) != std::string::npos);
}

TEST_CASE("README's command table lists every subcommand and the quick start runs the demo",
          "[cli]")
{
    auto help = run_program({exfilmon_binary().string(), "--help"});
    REQUIRE(help.status == 0);
    std::vector<std::string> subcommands;
    {
        std::istringstream lines(help.out.substr(help.out.find("Subcommands:")));
        std::string line, name;
        std::getline(lines, line);
        while (std::getline(lines, line) && std::istringstream(line) >> name)
            subcommands.push_back(name);
    }
    REQUIRE(subcommands.size() >= 7);
    std::ifstream in(source_dir() / "README.md");
    std::string readme((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const auto &s : subcommands) {
        INFO(s);
        CHECK(readme.find("| `exfilmon " + s) != std::string::npos);
    }
    // The quick start: after `run`, the demo, as a command to type.
    auto quick = readme.substr(0, readme.find("## Commands"));
    CHECK(quick.find("exfilmon demo\n```") != std::string::npos);
}

namespace {

// A configuration `run` could start with on lo without touching the host's
// daemon: no pins, no metrics port, a control socket of its own.
std::string isolated(const TempDir &d, const std::string &bpf, const std::string &control,
                     const std::string &rest)
{
    return "[bpf]\npin = false\n" + bpf + "[metrics]\nenabled = false\n[control]\nsocket = \"" +
           (d.path / "c.sock").string() + "\"\n" + control + rest;
}

// An empty pcap capture: replay runs to the end at once.
std::string empty_capture(const TempDir &d)
{
    const unsigned char header[24] = {0xd4, 0xc3, 0xb2, 0xa1, 2,    0,    4, 0, 0, 0, 0, 0,
                                      0,    0,    0,    0,    0xff, 0xff, 0, 0, 1, 0, 0, 0};
    return d.write("empty.pcap",
                   std::string(reinterpret_cast<const char *>(header), sizeof header));
}

struct BadConfig {
    const char *what;
    std::string path;     // the configuration file (or directory)
    std::string message;  // in stderr, with its FILE:LINE:COLUMN when it has one
    bool replay_too;  // replay reads it too (replay sends no alerts: no [[outputs]], no [control])
};

}  // namespace

// Each of these would otherwise pass check-config and then fail or degrade
// under run (exit 1, or a daemon without its socket or with an output that
// can never deliver), or have replay read a directory as an empty file.
TEST_CASE("check-config and run and replay refuse the same configurations with exit 2", "[cli]")
{
    TempDir d("exf-cli-config");
    auto bin = exfilmon_binary().string();
    auto file = [&](const std::string &name, const std::string &text) {
        return d.write(name, text);
    };
    const std::string no_dir = (d.path / "no").string();
    std::vector<BadConfig> cases = {
        {"a port out of range",
         file("port.toml",
              isolated(d, "", "",
                       "[[outputs]]\ntransport = \"udp\"\naddress = \"127.0.0.1:99999\"\n")),
         "port.toml:9:11: address 127.0.0.1:99999: bad port '99999'", true},
        {"a dotted quad that is no address, bad port too",
         file("quad-port.toml",
              isolated(d, "", "",
                       "[[outputs]]\ntransport = \"udp\"\naddress = \"256.1.1.1:99999\"\n")),
         "quad-port.toml:9:11: address 256.1.1.1:99999: 256.1.1.1 is not an IPv4 address", true},
        {"a dotted quad that is no address",
         file("quad.toml",
              isolated(d, "", "",
                       "[[outputs]]\ntransport = \"tcp\"\naddress = \"256.1.1.1:514\"\n")),
         "quad.toml:9:11: address 256.1.1.1:514: 256.1.1.1 is not an IPv4 address", true},
        {"spool_file in a missing directory",
         file("spool.toml",
              isolated(d, "", "",
                       "[[outputs]]\ntransport = \"udp\"\naddress = \"127.0.0.1:514\"\n"
                       "spool_file = \"" +
                           no_dir + "/spool\"\n")),
         "spool.toml:10:14: spool_file " + no_dir + "/spool: its directory " + no_dir +
             ": No such file or directory",
         false},
        {"a json path in a missing directory",
         file("json.toml",
              isolated(d, "", "",
                       "[[outputs]]\ntype = \"json\"\npath = \"" + no_dir + "/alerts.json\"\n")),
         "json.toml:9:8: path " + no_dir + "/alerts.json: its directory " + no_dir +
             ": No such file or directory",
         false},
        {"a control group that does not exist",
         file("group.toml",
              isolated(d, "", "group = \"exf-no-such-group-" + std::to_string(::getpid()) + "\"\n",
                       "")),
         "group.toml:7:9: group 'exf-no-such-group-" + std::to_string(::getpid()) +
             "' does not exist",
         false},
        {"a TLS port listed twice",
         file("ports.toml", isolated(d, "tls_ports = [443, 443]\n", "", "")),
         "ports.toml:3:19: tls_ports: 443 is listed twice", true},
        {"a directory", (d.path / "dir.toml").string(),
         (d.path / "dir.toml").string() + ": cannot read the configuration file: Is a directory",
         true},
    };
    std::filesystem::create_directory(d.path / "dir.toml");
    auto capture = empty_capture(d);
    for (auto &c : cases) {
        INFO(c.what);
        auto check = run_program({bin, "check-config", c.path});
        CHECK(check.status == 2);
        CHECK(check.err.find(c.message) != std::string::npos);
        CHECK(check.out.empty());
        INFO(check.err);
        // Refused before anything is attached: no root needed to see it. A
        // daemon that started anyway is stopped by timeout (exit 124).
        auto run = run_program(
            {"/usr/bin/timeout", "20", bin, "run", "--config", c.path, "--interface", "lo"});
        INFO(run.err);
        CHECK(run.status == 2);
        CHECK(run.err.find(c.message) != std::string::npos);
        if (!c.replay_too)
            continue;
        auto replay =
            run_program({bin, "replay", capture, "--config", c.path, "--datapath", "user"});
        INFO(replay.err);
        CHECK(replay.status == 2);
        CHECK(replay.err.find(c.message) != std::string::npos);
    }
}

TEST_CASE("check-config says why a file is refused and warns of a name that does not resolve",
          "[cli]")
{
    TempDir d("exf-cli-config");
    auto bin = exfilmon_binary().string();
    auto f = d.write("x.toml", "[log]\nlevel = \"info\"\n");
    std::filesystem::permissions(f, std::filesystem::perms::others_write,
                                 std::filesystem::perm_options::add);
    auto shared = run_program({bin, "check-config", f});
    CHECK(shared.status == 2);
    CHECK(shared.err == f + ": the file is writable by others (mode 0646): refusing it; remove "
                            "that permission (chmod o-w)\n");
    auto run = run_program({bin, "run", "--config", f, "--interface", "lo"});
    CHECK(run.status == 2);
    CHECK(run.err == shared.err);

    // .invalid never resolves (RFC 6761): said, not refused, since the
    // output retries and a name may resolve later.
    auto unresolved = d.write(
        "dns.toml", "[[outputs]]\ntransport = \"tcp\"\naddress = \"collector.invalid:6514\"\n");
    auto r = run_program({bin, "check-config", unresolved});
    CHECK(r.status == 0);
    CHECK(r.out == unresolved + ": OK\n");
    CHECK(r.err.rfind(
              unresolved +
                  ":3:11: warning: address collector.invalid:6514: resolve collector.invalid: ",
              0) == 0);
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
    CHECK(r.err == "exfilmon top: sort: distinct_clients applies to subnet, sni, cohort, host, "
                   "ja4 and ja4_sni only, not client\n");
    // A group kind is asked for (and the missing daemon is then exit 1).
    auto group = run_program({bin, "top", "--kind", "subnet", "--sort", "distinct_clients",
                              "--once", "--socket", socket});
    CHECK(group.status == 1);
}

TEST_CASE("exfilmon demo --scenario: a known name reaches the script, another is refused", "[cli]")
{
    auto bin = exfilmon_binary().string();
    TempDir dir;
    auto script = dir.path / "demo.sh";
    std::ofstream(script) << "echo \"args: $*\"\n";
    auto dflt = run_program({bin, "demo", "--script", script.string()});
    CHECK(dflt.status == 0);
    CHECK(dflt.out == "args: --scenario bulk-pull\n");
    auto dist =
        run_program({bin, "demo", "--script", script.string(), "--scenario", "distributed"});
    CHECK(dist.status == 0);
    CHECK(dist.out == "args: --scenario distributed\n");
    auto bad = run_program({bin, "demo", "--script", script.string(), "--scenario", "distributd"});
    CHECK(bad.status == 2);
    CHECK(bad.out.empty());
    CHECK(bad.err.find("--scenario: distributd not in {bulk-pull,distributed}") !=
          std::string::npos);
}
