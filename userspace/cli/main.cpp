// SPDX-License-Identifier: Apache-2.0
// exfilmon: eBPF sensor for data exfiltration through TLS APIs.
// Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.
// Each subcommand is a Command: its options, and what it runs.
#include <CLI/CLI.hpp>
#include <bpf/libbpf.h>
#include <linux/version.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "apps/daemon.h"
#include "apps/fleet_admin.h"
#include "apps/fleet_eval.h"
#include "apps/replay.h"
#include "common/units.h"
#include "config/config.h"
#include "config/run_checks.h"
#include "control/client.h"
#include "exfilmon_build_info.h"

namespace {

namespace fs = std::filesystem;

class Command {
public:
    explicit Command(CLI::App *cmd) : cmd_(cmd) {}
    virtual ~Command() = default;
    bool parsed() const { return cmd_->parsed(); }
    virtual int run() = 0;

protected:
    CLI::App *cmd_;
};

class RunCommand : public Command {
public:
    explicit RunCommand(CLI::App &app)
        : Command(
              app.add_subcommand("run", "attach to interfaces and report per-client TLS traffic"))
    {
        cmd_->add_option("-c,--config", opts_.config_path, "configuration file (TOML)");
        cmd_->add_option("-i,--interface", opts_.interfaces,
                         "interface to monitor (repeatable; default: the default route's)");
        cmd_->add_flag("-v,--verbose", opts_.verbose, "debug logging, including libbpf's");
    }
    int run() override { return exf::run_daemon(opts_); }

private:
    exf::DaemonOptions opts_;
};

class DetachCommand : public Command {
public:
    explicit DetachCommand(CLI::App &app)
        : Command(app.add_subcommand(
              "detach", "remove the tc filters a stopped daemon left attached ([bpf] "
                        "keep_attached); refused on an interface a running daemon uses"))
    {
        cmd_->add_option("-i,--interface", interfaces_,
                         "interface (repeatable; default: every interface)");
    }
    int run() override { return exf::run_detach(interfaces_, std::cout, std::cerr); }

private:
    std::vector<std::string> interfaces_;
};

// What a bug report needs: the version, the commit and build type, and the
// libbpf and kernel interface the binary was built against (and runs on).
class VersionCommand : public Command {
public:
    explicit VersionCommand(CLI::App &app)
        : Command(app.add_subcommand(
              "version", "print the version, git commit, build type, libbpf and kernel features"))
    {}
    int run() override
    {
        std::cout << "exfilmon " << EXFILMON_VERSION << "\n"
                  << "commit: " << EXFILMON_GIT_COMMIT << "\n"
                  << "build type: " << EXFILMON_BUILD_TYPE << "\n"
                  << "libbpf: " << EXFILMON_LIBBPF_BUILD_VERSION << " (built against), "
                  << libbpf_version_string() << " (running)\n"
                  << "kernel: needs BTF and the BPF ring buffer (Linux 5.8+), tc clsact; "
                  << "built against Linux " << (LINUX_VERSION_CODE >> 16) << "."
                  << ((LINUX_VERSION_CODE >> 8) & 0xff)
                  << " headers; this kernel: " << running_kernel() << ", BTF "
                  << (fs::exists("/sys/kernel/btf/vmlinux") ? "yes" : "no") << "\n";
        return 0;
    }

private:
    static std::string running_kernel()
    {
        struct utsname u {};
        return ::uname(&u) == 0 ? u.release : "unknown";
    }
};

// The demo is a script (scripts/demo.sh, installed as share/exfilmon/demo.sh);
// it gets this binary as EXFILMON and the scenario as --scenario NAME.
class DemoCommand : public Command {
public:
    explicit DemoCommand(CLI::App &app)
        : Command(app.add_subcommand(
              "demo",
              "a throwaway lab in network namespaces: a TLS API server, normal clients and "
              "one exfiltrating client; shows the alert as it fires, then cleans up (root)"))
    {
        cmd_->add_option("--script", script_, "the demo script (default: the installed demo.sh)");
        cmd_->add_option("--scenario", scenario_,
                         "bulk-pull: one client pulls 80 MiB (default); distributed: 60 "
                         "addresses over 15 networks call the API with one client stack")
            ->check(CLI::IsMember({"bulk-pull", "distributed"}));
    }
    int run() override
    {
        std::error_code ec;
        fs::path self = fs::read_symlink("/proc/self/exe", ec);
        auto candidates = script_candidates(self);
        for (auto &c : candidates) {
            if (!fs::is_regular_file(c, ec))
                continue;
            setenv("EXFILMON", self.c_str(), 1);
            std::string script = c.string();
            execl("/bin/bash", "bash", script.c_str(), "--scenario", scenario_.c_str(),
                  static_cast<char *>(nullptr));
            std::cerr << "exfilmon demo: cannot run /bin/bash " << script << ": "
                      << std::strerror(errno) << "\n";
            return 1;
        }
        std::cerr << "exfilmon demo: demo.sh not found (looked for "
                  << (candidates.empty() ? std::string() : candidates.front().string())
                  << " and the installed share/exfilmon/demo.sh); pass --script PATH\n";
        return 2;
    }

private:
    std::vector<fs::path> script_candidates(const fs::path &self) const
    {
        if (!script_.empty())
            return {script_};
        std::vector<fs::path> candidates;
        if (const char *env = std::getenv("EXFILMON_DEMO_SCRIPT"))
            candidates.push_back(env);
        candidates.push_back(self.parent_path().parent_path() / "share/exfilmon/demo.sh");
        candidates.push_back(fs::path(EXFILMON_SOURCE_DIR) / "scripts/demo.sh");
        return candidates;
    }
    std::string script_;
    std::string scenario_ = "bulk-pull";
};

// The checks run makes before attaching (config/run_checks.h).
class CheckConfigCommand : public Command {
public:
    explicit CheckConfigCommand(CLI::App &app)
        : Command(app.add_subcommand(
              "check-config",
              "validate a configuration file; problems as FILE:LINE:COLUMN: message"))
    {
        cmd_->add_option("file", path_, "configuration file (TOML)")->required();
    }
    int run() override
    {
        auto res = exf::load_config_for_run(path_);
        for (auto &i : res.issues)
            std::cerr << i.format() << "\n";
        for (auto &w : res.warnings)
            std::cerr << w.format() << "\n";
        if (!res.ok())
            return exf::kConfigErrorExit;
        std::cout << path_ << ": OK\n";
        return 0;
    }

private:
    std::string path_;
};

class ReplayCommand : public Command {
public:
    explicit ReplayCommand(CLI::App &app)
        : Command(app.add_subcommand(
              "replay",
              "run a capture file through the datapath; report per client (and per flow)"))
    {
        cmd_->add_option("file", opts_.capture,
                         "capture file (pcap or pcapng; - reads standard input; not compressed)")
            ->required();
        cmd_->add_option("-c,--config", opts_.config_path,
                         "configuration file (TOML): [bpf] TLS ports and table sizes, "
                         "aggregation and [[rules]] (default: the built-in ones)");
        cmd_->add_option("--format", format_, "table (for people) or json (one object a line)")
            ->check(CLI::IsMember({"table", "json"}))
            ->capture_default_str();
        cmd_->add_flag("--flows", opts_.flows, "also report every TLS/QUIC flow");
        cmd_->add_option("--datapath", datapath_,
                         "user (the datapath's userspace build, the default: the same "
                         "output, proven byte-identical by the parity tests, and faster), "
                         "bpf (the real BPF program via one BPF_PROG_TEST_RUN per packet: "
                         "root or CAP_BPF), auto (bpf when it can be loaded, else user)")
            ->check(CLI::IsMember({"auto", "bpf", "user"}))
            ->capture_default_str();
        cmd_->add_option("--threads", opts_.threads,
                         "1, or 2: the datapath on one thread, the TLS parsing, harvests and "
                         "rules on another (the same output); default 2 when the process may "
                         "run on two CPUs")
            ->check(CLI::Range(1u, 2u));
    }
    int run() override
    {
        opts_.format = format_ == "json" ? exf::ReplayFormat::json : exf::ReplayFormat::table;
        opts_.datapath = datapath_ == "bpf"    ? exf::DatapathChoice::bpf
                         : datapath_ == "user" ? exf::DatapathChoice::user
                                               : exf::DatapathChoice::automatic;
        return exf::run_replay(opts_, std::cout, std::cerr);
    }

private:
    exf::ReplayOptions opts_;
    std::string format_ = "table", datapath_ = "user";
};

// status and top: clients of the running daemon's control socket.
class StatusCommand : public Command {
public:
    explicit StatusCommand(CLI::App &app)
        : Command(app.add_subcommand(
              "status", "ask the running daemon: interfaces, map occupancy, drops, anomalies, "
                        "open alerts, outputs (exit 1 when it cannot be reached)"))
    {
        cmd_->add_option("--socket", opts_.socket,
                         "control socket of the daemon ([control] socket)")
            ->capture_default_str();
        cmd_->add_option("--format", format_, "table (for people) or json (one object)")
            ->check(CLI::IsMember({"table", "json"}))
            ->capture_default_str();
    }
    int run() override
    {
        opts_.json = format_ == "json";
        return exf::control::run_status(opts_, std::cout, std::cerr);
    }

private:
    exf::control::StatusOptions opts_;
    std::string format_ = "table";
};

class TopCommand : public Command {
public:
    explicit TopCommand(CLI::App &app)
        : Command(app.add_subcommand("top", "live view of the heaviest clients, subnets or API "
                                            "hosts over a window, open alerts marked; q or Ctrl-C "
                                            "quits"))
    {
        cmd_->add_option("--socket", opts_.socket,
                         "control socket of the daemon ([control] socket)")
            ->capture_default_str();
        cmd_->add_option("--kind", opts_.kind, "what to rank")
            ->check(CLI::IsMember(
                {"client", "subnet", "sni", "client_sni", "cohort", "host", "ja4", "ja4_sni"}))
            ->capture_default_str();
        cmd_->add_option("--window", opts_.window, "one of the daemon's [aggregate] windows")
            ->capture_default_str();
        cmd_->add_option("--sort", opts_.sort, "ranking")
            ->check(CLI::IsMember({"bytes_out", "bytes_in", "tls_flows", "requests", "concurrent",
                                   "distinct_clients", "distinct_subnets"}))
            ->capture_default_str();
        cmd_->add_option("-n", opts_.n, "rows")->check(CLI::Range(1, 1000))->capture_default_str();
        cmd_->add_option("--interval", interval_, "refresh interval (at least 100ms)")
            ->capture_default_str();
        cmd_->add_flag("--once", opts_.once, "print one snapshot and exit");
        cmd_->add_option("--format", format_,
                         "table, or json (with --once: one object for scripts)")
            ->check(CLI::IsMember({"table", "json"}))
            ->capture_default_str();
    }
    int run() override
    {
        auto ms = exf::parse_duration_ms(interval_);
        if (!ms || *ms < 100) {
            std::cerr << "top: --interval: expected a duration of at least 100ms, like 2s\n";
            return 2;
        }
        if (format_ == "json" && !opts_.once) {
            std::cerr << "top: --format json needs --once (one snapshot for scripts)\n";
            return 2;
        }
        opts_.interval_ms = *ms;
        opts_.json = format_ == "json";
        return exf::control::run_top(opts_, std::cout, std::cerr);
    }

private:
    exf::control::TopOptions opts_;
    std::string format_ = "table", interval_ = "2s";
};

// `exfilmon fleet --config FILE`: the fleet evaluator; `exfilmon fleet
// init|schema`: the fleet's tables in ClickHouse.
class FleetCommand : public Command {
public:
    explicit FleetCommand(CLI::App &app)
        : Command(app.add_subcommand(
              "fleet", "evaluate [[rules]] over all sensors in ClickHouse ([fleet]); init, schema"))
    {
        cmd_->require_subcommand(0, 1);
        cmd_->add_option("-c,--config", eval_.config_path,
                         "configuration file with a [fleet] table");
        cmd_->add_flag("--once", eval_.once, "evaluate once, then exit");
        init_ = cmd_->add_subcommand(
            "init", "create the database, tables and rollups where missing (idempotent)");
        schema_ = cmd_->add_subcommand("schema", "print the SQL that init runs");
        for (auto *sub : {init_, schema_})
            sub->add_option("-c,--config", path_, "configuration file with a [fleet] table")
                ->required();
        cmd_->callback([this] {
            if (!init_->parsed() && !schema_->parsed() && eval_.config_path.empty())
                throw CLI::RequiredError("--config");
        });
    }
    int run() override
    {
        if (schema_->parsed())
            return exf::run_fleet_schema(path_, std::cout, std::cerr);
        if (init_->parsed())
            return exf::run_fleet_init(path_, std::cout, std::cerr);
        return exf::run_fleet_evaluator(eval_, std::cout, std::cerr);
    }

private:
    CLI::App *init_ = nullptr, *schema_ = nullptr;
    std::string path_;
    exf::FleetEvalOptions eval_;
};

int run_cli(int argc, char **argv)
{
    CLI::App app{"exfilmon: eBPF sensor for data exfiltration through TLS APIs"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("exfilmon ") + EXFILMON_VERSION);
    std::vector<std::unique_ptr<Command>> commands;
    commands.push_back(std::make_unique<RunCommand>(app));
    commands.push_back(std::make_unique<DetachCommand>(app));
    commands.push_back(std::make_unique<VersionCommand>(app));
    commands.push_back(std::make_unique<DemoCommand>(app));
    commands.push_back(std::make_unique<CheckConfigCommand>(app));
    commands.push_back(std::make_unique<ReplayCommand>(app));
    commands.push_back(std::make_unique<StatusCommand>(app));
    commands.push_back(std::make_unique<TopCommand>(app));
    commands.push_back(std::make_unique<FleetCommand>(app));
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }
    for (auto &c : commands)
        if (c->parsed())
            return c->run();
    return 2;
}

}  // namespace

int main(int argc, char **argv)
{
    // What no subcommand caught is a bug; still a message, never an abort.
    try {
        return run_cli(argc, argv);
    } catch (const std::exception &e) {
        std::cerr << "exfilmon: " << e.what() << "\n";
        return 1;
    }
}
