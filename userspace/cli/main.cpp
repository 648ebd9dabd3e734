// exfilmon: eBPF sensor for data exfiltration through TLS APIs.
// Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/run_checks.h"
#include "common/units.h"
#include "control/client.h"
#include "apps/daemon.h"
#include "apps/replay.h"


int main(int argc, char **argv)
{
    CLI::App app{"exfilmon: eBPF sensor for data exfiltration through TLS APIs"};
    app.require_subcommand(1);
    app.set_version_flag("--version", std::string("exfilmon ") + EXFILMON_VERSION);

    std::string config_path;
    std::vector<std::string> interfaces;
    bool verbose = false;
    auto *run = app.add_subcommand("run", "attach to interfaces and report per-client TLS traffic");
    run->add_option("-c,--config", config_path, "configuration file (TOML)");
    run->add_option("-i,--interface", interfaces,
                    "interface to monitor (repeatable; default: the default route's)");
    run->add_flag("-v,--verbose", verbose, "debug logging, including libbpf's");

    auto *version = app.add_subcommand("version", "print the version");

    std::vector<std::string> detach_interfaces;
    auto *detach = app.add_subcommand(
        "detach", "remove the tc filters a stopped daemon left attached ([bpf] keep_attached); "
                  "refused on an interface a running daemon uses");
    detach->add_option("-i,--interface", detach_interfaces,
                       "interface (repeatable; default: every interface)");

    std::string demo_script;
    auto *demo = app.add_subcommand(
        "demo", "a throwaway lab in network namespaces: a TLS API server, normal clients and one "
                "exfiltrating client; shows the alert as it fires, then cleans up (root)");
    demo->add_option("--script", demo_script, "the demo script (default: the installed demo.sh)");

    std::string check_path;
    auto *check = app.add_subcommand(
        "check-config", "validate a configuration file; problems as FILE:LINE:COLUMN: message");
    check->add_option("file", check_path, "configuration file (TOML)")->required();

    exf::ReplayOptions replay_opts;
    std::string replay_format = "table", replay_datapath = "auto";
    auto *replay = app.add_subcommand(
        "replay", "run a capture file through the datapath; report per client (and per flow)");
    replay->add_option("file", replay_opts.capture,
                       "capture file (pcap or pcapng; - reads standard input; not compressed)")
        ->required();
    replay->add_option("-c,--config", replay_opts.config_path,
                       "configuration file (TOML): [bpf] TLS ports and table sizes, "
                       "aggregation and [[rules]] (default: the built-in ones)");
    replay->add_option("--format", replay_format, "table (for people) or json (one object a line)")
        ->check(CLI::IsMember({"table", "json"}))
        ->capture_default_str();
    replay->add_flag("--flows", replay_opts.flows, "also report every TLS/QUIC flow");
    replay->add_option("--datapath", replay_datapath,
                       "bpf (the BPF program via BPF_PROG_TEST_RUN: root or CAP_BPF), "
                       "user (its userspace build), auto (bpf when it can be loaded)")
        ->check(CLI::IsMember({"auto", "bpf", "user"}))
        ->capture_default_str();

    // status and top: clients of the running daemon's control socket.
    exf::control::StatusOptions status_opts;
    std::string status_format = "table";
    auto *status = app.add_subcommand(
        "status", "ask the running daemon: interfaces, map occupancy, drops, anomalies, open "
                  "alerts, outputs (exit 1 when it cannot be reached)");
    status->add_option("--socket", status_opts.socket, "control socket of the daemon ([control] socket)")
        ->capture_default_str();
    status->add_option("--format", status_format, "table (for people) or json (one object)")
        ->check(CLI::IsMember({"table", "json"}))
        ->capture_default_str();

    exf::control::TopOptions top_opts;
    std::string top_format = "table", top_interval = "2s";
    auto *top = app.add_subcommand(
        "top", "live view of the heaviest clients, subnets or API hosts over a window, open "
               "alerts marked; q or Ctrl-C quits");
    top->add_option("--socket", top_opts.socket, "control socket of the daemon ([control] socket)")
        ->capture_default_str();
    top->add_option("--kind", top_opts.kind, "what to rank")
        ->check(CLI::IsMember({"client", "subnet", "sni", "client_sni", "cohort", "host"}))
        ->capture_default_str();
    top->add_option("--window", top_opts.window, "one of the daemon's [aggregate] windows")
        ->capture_default_str();
    top->add_option("--sort", top_opts.sort, "ranking")
        ->check(CLI::IsMember({"bytes_out", "bytes_in", "tls_flows", "concurrent", "distinct_clients"}))
        ->capture_default_str();
    top->add_option("-n", top_opts.n, "rows")->check(CLI::Range(1, 1000))->capture_default_str();
    top->add_option("--interval", top_interval, "refresh interval (at least 100ms)")
        ->capture_default_str();
    top->add_flag("--once", top_opts.once, "print one snapshot and exit");
    top->add_option("--format", top_format, "table, or json (with --once: one object for scripts)")
        ->check(CLI::IsMember({"table", "json"}))
        ->capture_default_str();

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }
    if (version->parsed()) {
        std::cout << "exfilmon " << EXFILMON_VERSION << "\n";
        return 0;
    }
    if (demo->parsed()) {
        // The demo is a script (scripts/demo.sh, installed as
        // share/exfilmon/demo.sh); it gets this binary as EXFILMON.
        namespace fs = std::filesystem;
        std::error_code ec;
        fs::path self = fs::read_symlink("/proc/self/exe", ec);
        std::vector<fs::path> candidates;
        if (!demo_script.empty())
            candidates.push_back(demo_script);
        else {
            if (const char *env = std::getenv("EXFILMON_DEMO_SCRIPT"))
                candidates.push_back(env);
            candidates.push_back(self.parent_path().parent_path() / "share/exfilmon/demo.sh");
            candidates.push_back(fs::path(EXFILMON_SOURCE_DIR) / "scripts/demo.sh");
        }
        for (auto &c : candidates) {
            if (!fs::is_regular_file(c, ec))
                continue;
            setenv("EXFILMON", self.c_str(), 1);
            std::string script = c.string();
            execl("/bin/bash", "bash", script.c_str(), static_cast<char *>(nullptr));
            std::cerr << "exfilmon demo: cannot run /bin/bash " << script << ": "
                      << std::strerror(errno) << "\n";
            return 1;
        }
        std::cerr << "exfilmon demo: demo.sh not found (looked for "
                  << (candidates.empty() ? std::string() : candidates.front().string())
                  << " and the installed share/exfilmon/demo.sh); pass --script PATH\n";
        return 2;
    }
    if (run->parsed())
        return exf::run_daemon({config_path, interfaces, verbose});
    if (detach->parsed())
        return exf::run_detach(detach_interfaces, std::cout, std::cerr);
    if (replay->parsed()) {
        replay_opts.format = replay_format == "json" ? exf::ReplayFormat::json : exf::ReplayFormat::table;
        replay_opts.datapath = replay_datapath == "bpf"    ? exf::DatapathChoice::bpf
                               : replay_datapath == "user" ? exf::DatapathChoice::user
                                                           : exf::DatapathChoice::automatic;
        return exf::run_replay(replay_opts, std::cout, std::cerr);
    }
    if (status->parsed()) {
        status_opts.json = status_format == "json";
        return exf::control::run_status(status_opts, std::cout, std::cerr);
    }
    if (top->parsed()) {
        auto ms = exf::parse_duration_ms(top_interval);
        if (!ms || *ms < 100) {
            std::cerr << "top: --interval: expected a duration of at least 100ms, like 2s\n";
            return 2;
        }
        if (top_format == "json" && !top_opts.once) {
            std::cerr << "top: --format json needs --once (one snapshot for scripts)\n";
            return 2;
        }
        top_opts.interval_ms = *ms;
        top_opts.json = top_format == "json";
        return exf::control::run_top(top_opts, std::cout, std::cerr);
    }
    if (check->parsed()) {
        // The checks run makes before attaching (config/run_checks.h).
        auto res = exf::load_config_for_run(check_path);
        for (auto &i : res.issues)
            std::cerr << i.format() << "\n";
        for (auto &w : res.warnings)
            std::cerr << w.format() << "\n";
        if (!res.ok())
            return exf::kConfigErrorExit;
        std::cout << check_path << ": OK\n";
        return 0;
    }
    return 2;
}
