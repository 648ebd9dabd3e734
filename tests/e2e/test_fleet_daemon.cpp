// SPDX-License-Identifier: Apache-2.0
// `exfilmon run` with [fleet] against a real ClickHouse (docs/fleet.md,
// "Delivery"): the real binary and BPF programs, TLS downloads from three
// client addresses, periods of 1 s. For every client, the sums of the
// traffic table read FINAL equal tcpdump's count of the same packets
// exactly (bytes and packets each way, TLS flows) and the daemon's own
// totals (`exfilmon top`); and so they do after ClickHouse was stopped for
// seconds in the middle of the run, and after the daemon was killed with
// SIGKILL in the middle of the run and started again with the same state
// file: nothing lost, nothing counted twice. `exfilmon status` and the
// metrics show the export's counters.
#include <catch2/catch.hpp>

#include <sys/mount.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/addr.h"
#include "support/clickhouse.h"
#include "support/daemon_probe.h"
#include "support/netns.h"
#include "support/pcap_truth.h"
#include "support/proc.h"
#include "support/servers.h"
#include "support/test_env.h"

using namespace exf;
using namespace exf::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

const std::vector<std::string> kClients = {"192.0.2.60", "192.0.2.61", "192.0.2.62"};
constexpr const char *kSni = "api.example.test";

// A private bpffs for the pins (the kernel counts on while no daemon runs).
struct BpffsMount {
    std::filesystem::path dir;
    explicit BpffsMount(std::filesystem::path d) : dir(std::move(d))
    {
        std::filesystem::create_directories(dir);
        REQUIRE(mount("bpf", dir.c_str(), "bpf", 0, nullptr) == 0);
    }
    ~BpffsMount() { umount2(dir.c_str(), MNT_DETACH); }
};

// Per client: what tcpdump saw, what ClickHouse sums, what the daemon counts.
struct Sums {
    uint64_t bytes_in = 0, bytes_out = 0, packets_in = 0, packets_out = 0, flows = 0;
    bool operator==(const Sums &) const = default;
};
using SumsByClient = std::map<std::string, Sums>;

std::ostream &operator<<(std::ostream &o, const SumsByClient &m)
{
    for (auto &[c, s] : m)
        o << c << ": in " << s.bytes_in << " B " << s.packets_in << " p, out " << s.bytes_out
          << " B " << s.packets_out << " p, flows " << s.flows << "\n";
    return o;
}

// The sums of exf.traffic read FINAL (docs/fleet.md) per client, of one
// sensor or ("") of all.
SumsByClient clickhouse_sums_of(const ClickHouseServer &ch, const std::string &sensor = "")
{
    SumsByClient out;
    std::istringstream lines(
        ch.query("SELECT client, sum(bytes_in), sum(bytes_out), sum(packets_in), sum(packets_out), "
                 "sum(tls_flows) FROM exf.traffic FINAL " +
                 (sensor.empty() ? "" : "WHERE sensor = '" + sensor + "' ") +
                 "GROUP BY client ORDER BY client FORMAT TabSeparated"));
    std::string client;
    Sums s;
    while (lines >> client >> s.bytes_in >> s.bytes_out >> s.packets_in >> s.packets_out >> s.flows)
        out[client] = s;
    return out;
}

// A daemon's own totals: bytes and flows per client over the 10m window
// (exact: every client is younger than the window).
SumsByClient daemon_sums_of(const std::string &sock)
{
    auto r = run_program({exfilmon_binary().string(), "top", "--socket", sock, "--once", "--format",
                          "json", "--window", "10m", "-n", "100"});
    SumsByClient out;
    if (r.status != 0)
        return out;
    auto top = json::parse(r.out);
    for (auto &row : top["rows"]) {
        auto &s = out[row["entity"].get<std::string>()];
        s.bytes_in = row["bytes_in"];
        s.bytes_out = row["bytes_out"];
        s.flows = row["tls_flows"];
    }
    return out;
}

// A TLS server (openssl s_server -WWW) in srv, the clients in cli, a
// ClickHouse in srv with the fleet's schema, and the daemon's configuration:
// pinned maps, state file, control socket, metrics, [fleet] with 1 s periods.
struct FleetRig {
    static constexpr size_t kFile = 6u << 20;
    Lab lab;
    std::string srv = lab.add_netns("srv"), cli = lab.add_netns("cli");
    Lab::Veth veth = lab.add_veth(srv, cli);
    BpffsMount bpffs{lab.dir() / "bpffs"};
    ClickHouseServer ch{lab, [this] {
                            ClickHouseOptions o;
                            o.ns = srv;
                            return o;
                        }()};
    std::filesystem::path cfg = lab.dir() / "exfilmon.toml";
    std::filesystem::path state_dir = lab.dir() / "state";
    std::string sock = (lab.dir() / "run" / "control.sock").string();
    uint16_t metrics_port = 0;
    int daemons = 0;

    FleetRig()
    {
        lab.add_addr(srv, veth.a, "192.0.2.1/24");
        for (auto &c : kClients)
            lab.add_addr(cli, veth.b, c + "/24");
        // Offloads off: tcpdump sees wire packets, an exact independent count.
        lab.set_offloads(srv, veth.a, false);
        lab.set_offloads(cli, veth.b, false);
        start_tls_server();
        ch.start();
        metrics_port = free_tcp_port(srv, "127.0.0.1");
        write_config(
            cfg, "[bpf]\npin = true\npin_path = \"" + (bpffs.dir / "exfilmon").string() +
                     "\"\nflow_table_size = 4096\n"
                     "[daemon]\nreport_interval = \"0s\"\nharvest_interval = \"200ms\"\n"
                     "state_dir = \"" +
                     state_dir.string() +
                     "\"\nstate_interval = \"5s\"\n"
                     "[control]\nsocket = \"" +
                     sock + "\"\n[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_port) +
                     "\"\n[[outputs]]\ntype = \"json\"\npath = \"" +
                     (lab.dir() / "alerts.jsonl").string() + "\"\n" + fleet_table(ch.url(), "exf") +
                     "sensor = \"edge-1\"\ninterval = \"1s\"\n");
        auto init = lab.run(srv, {exfilmon_binary().string(), "fleet", "init", "--config", cfg});
        INFO(init.output);
        REQUIRE(init.ok());
    }

    void start_tls_server()
    {
        auto www = lab.dir() / "www";
        std::filesystem::create_directories(www);
        std::ofstream f(www / "big.bin", std::ios::binary);
        std::mt19937_64 rng(11);
        std::vector<uint64_t> buf(kFile / 8);
        for (auto &w : buf)
            w = rng();
        f.write(reinterpret_cast<const char *>(buf.data()), long(kFile));
        f.close();
        auto cert = (lab.dir() / "cert.pem").string(), key = (lab.dir() / "key.pem").string();
        lab.run_ok("", {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days",
                        "2", "-subj", "/CN=exfilmon-test"});
        lab.spawn(
            srv,
            {"openssl", "s_server", "-accept", "192.0.2.1:443", "-cert", cert, "-key", key, "-WWW"},
            {www, lab.dir() / "s_server.log"});
        lab.wait_listening(srv, 443);
    }

    // Returns the daemon and its output file.
    std::pair<Process *, std::filesystem::path> start_daemon()
    {
        auto out = lab.dir() / ("daemon" + std::to_string(++daemons) + ".out");
        auto &d = lab.spawn(
            srv,
            {exfilmon_binary().string(), "run", "--config", cfg.string(), "--interface", veth.a},
            {lab.dir(), out});
        REQUIRE(wait_for(out, "attached to " + veth.a, 20s));
        REQUIRE(wait_for(out, "control socket " + sock, 5s));
        return {&d, out};
    }

    // One curl per client, each fetching the file `per_client` times in
    // parallel at `rate` per connection.
    std::vector<Process *> downloads(int per_client, const std::string &rate)
    {
        std::vector<Process *> curls;
        for (auto &c : kClients) {
            // No session resumption: every connection of a client offers
            // the same ClientHello, one JA4.
            std::vector<std::string> argv = {"curl",
                                             "-sk",
                                             "--no-sessionid",
                                             "--interface",
                                             c,
                                             "--parallel",
                                             "--parallel-immediate",
                                             "--limit-rate",
                                             rate,
                                             "--resolve",
                                             std::string(kSni) + ":443:192.0.2.1"};
            for (int i = 0; i < per_client; i++)
                argv.insert(argv.end(),
                            {"-o", "/dev/null", "https://" + std::string(kSni) + "/big.bin"});
            curls.push_back(&lab.spawn(cli, argv, {lab.dir(), lab.dir() / ("curl-" + c + ".log")}));
        }
        return curls;
    }

    SumsByClient clickhouse_sums() const { return clickhouse_sums_of(ch); }
    SumsByClient daemon_sums() const { return daemon_sums_of(sock); }

    std::string metrics()
    {
        return lab.run_ok(
            srv, {"curl", "-sf", "http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics"});
    }
};

// tcpdump's count per client: bytes and packets each way, TLS flows.
SumsByClient truth_of(const Capture &cap, const std::vector<std::string> &of = kClients)
{
    std::set<Addr16> clients;
    for (auto &c : of)
        clients.insert(*parse_addr(c));
    auto truth = read_pcap(cap.pcap, clients);
    SumsByClient out;
    for (auto &[t, f] : truth.flows) {
        auto &s = out[format_addr(t.client)];
        s.bytes_in += f.in.bytes;
        s.bytes_out += f.out.bytes;
        s.packets_in += f.in.pkts;
        s.packets_out += f.out.pkts;
        s.flows += f.client_syn ? 1 : 0;
    }
    return out;
}

// Bytes and flows only (what `exfilmon top` shows).
SumsByClient without_packets(SumsByClient m)
{
    for (auto &[c, s] : m)
        s.packets_in = s.packets_out = 0;
    return m;
}

void wait_all(const std::vector<Process *> &curls)
{
    for (auto *c : curls)
        REQUIRE(c->wait(60s) == 0);
}

}  // namespace

TEST_CASE("Fleet export: ClickHouse's sums per client equal tcpdump's and the daemon's exactly",
          "[e2e][fleet]")
{
    if (!require_clickhouse())
        return;
    FleetRig rig;
    auto cap = rig.lab.start_capture(rig.srv, rig.veth.a, "srv", "tcp", 128);
    auto [d, out] = rig.start_daemon();
    // Two connections at once per client, for 2 s or so.
    wait_all(rig.downloads(2, "3M"));
    std::this_thread::sleep_for(300ms);  // the last ACKs
    auto st = cap.stop();
    REQUIRE(st.complete());
    auto truth = truth_of(cap);
    REQUIRE(truth.size() == kClients.size());
    for (auto &[c, s] : truth)
        CHECK(s.flows == 2);

    SumsByClient got;
    bool equal = eventually([&] { return (got = rig.clickhouse_sums()) == truth; }, 20s);
    INFO(slurp(out));
    INFO("truth:\n" << truth << "ClickHouse:\n" << got);
    CHECK(equal);
    SumsByClient own;
    CHECK(eventually([&] { return (own = rig.daemon_sums()) == without_packets(truth); }, 5s));
    INFO("daemon:\n" << own);
    CHECK(own == without_packets(got));

    // The rows carry the API host and the JA4 the flow tracker found, and
    // the two connections each client had open at once.
    auto rows = rig.ch.query("SELECT DISTINCT sensor, sni, ja4 FROM exf.traffic FINAL "
                             "FORMAT TabSeparated");
    INFO(rows);
    CHECK(std::regex_match(rows,
                           std::regex("edge-1\tapi\\.example\\.test\tt1[23]d\\w+_\\w+_\\w+\n")));
    CHECK(rig.ch.query("SELECT max(peak_concurrent) FROM exf.traffic FINAL") == "2\n");
    // Periods of 1 s, aligned to the epoch: several of them.
    CHECK(std::stoul(rig.ch.query("SELECT uniqExact(period_start) FROM exf.traffic")) >= 2);
    CHECK(rig.ch.query("SELECT DISTINCT period_ms FROM exf.traffic") == "1000\n");

    // status and the metrics: what was sent, nothing waiting, no failure.
    auto inserted = std::stoull(rig.ch.query("SELECT count() FROM exf.traffic"));
    json f;
    REQUIRE(eventually(
        [&] {
            f = daemon_status(rig.sock)["fleet"];
            return f["rows_sent"] == inserted && f["spool_depth"] == 0;
        },
        5s));
    INFO(f.dump());
    CHECK(f["clickhouse"] == rig.ch.url());
    CHECK(f["database"] == "exf");
    CHECK(f["sensor"] == "edge-1");
    CHECK(f["interval_ms"] == 1000);
    CHECK(f["failures"] == 0);
    CHECK(f["dropped_periods"] == 0);
    CHECK(f["periods_waiting"] == 0);
    CHECK(f["bytes_sent"].get<uint64_t>() > inserted * 100);
    CHECK(f["batches_sent"].get<uint64_t>() >= 2);
    CHECK(f["last_success_ms"].get<uint64_t>() > 1.7e12);
    CHECK(f["last_error"] == "");
    auto human = run_program({exfilmon_binary().string(), "status", "--socket", rig.sock});
    CHECK(human.out.find("fleet:       " + rig.ch.url() + " database exf as edge-1: sent " +
                         std::to_string(inserted) + " rows") != std::string::npos);
    std::string text;
    REQUIRE(eventually(
        [&] {
            text = rig.metrics();
            return metric_value(text, "exfilmon_fleet_rows_sent_total") == double(inserted);
        },
        5s));
    INFO(text);
    CHECK(metric_value(text, "exfilmon_fleet_bytes_sent_total") == double(f["bytes_sent"]));
    CHECK(metric_value(text, "exfilmon_fleet_failures_total") == 0);
    CHECK(metric_value(text, "exfilmon_fleet_spool_depth") == 0);
    CHECK(metric_value(text, "exfilmon_fleet_dropped_periods_total") == 0);
    CHECK(metric_value(text, "exfilmon_fleet_last_success_seconds") > 1.7e9);
    CHECK(d->stop(SIGTERM, 10s) == 0);
}

TEST_CASE("Fleet export: ClickHouse stopped in the middle of the run loses and doubles nothing",
          "[e2e][fleet]")
{
    if (!require_clickhouse())
        return;
    FleetRig rig;
    auto cap = rig.lab.start_capture(rig.srv, rig.veth.a, "srv", "tcp", 128);
    auto [d, out] = rig.start_daemon();
    auto curls = rig.downloads(1, "1M");  // about 6 s
    std::this_thread::sleep_for(1500ms);
    rig.ch.stop(0ms);  // killed
    // Periods close, fail to go out and wait in the spool.
    json f;
    bool spooled = eventually(
        [&] {
            f = daemon_status(rig.sock)["fleet"];
            return f["failures"].get<uint64_t>() >= 2 && f["spool_depth"].get<uint64_t>() >= 2;
        },
        10s);
    INFO(f.dump());
    REQUIRE(spooled);
    CHECK(f["last_error"].get<std::string>().find("cannot reach ClickHouse") != std::string::npos);
    size_t files = 0;
    for (auto &e : std::filesystem::directory_iterator(rig.state_dir / "fleet-spool"))
        files += e.path().extension() == ".jsonl";
    CHECK(files >= 2);
    // The metrics are published at each harvest.
    CHECK(eventually(
        [&] { return metric_value(rig.metrics(), "exfilmon_fleet_failures_total") >= 2; }, 3s));
    std::this_thread::sleep_for(2s);
    rig.ch.start();
    wait_all(curls);
    std::this_thread::sleep_for(300ms);
    auto st = cap.stop();
    REQUIRE(st.complete());
    auto truth = truth_of(cap);
    REQUIRE(truth.size() == kClients.size());
    SumsByClient got;
    bool equal = eventually([&] { return (got = rig.clickhouse_sums()) == truth; }, 40s);
    INFO(slurp(out));
    INFO("truth:\n" << truth << "ClickHouse:\n" << got);
    CHECK(equal);
    CHECK(eventually([&] { return daemon_status(rig.sock)["fleet"]["spool_depth"] == 0; }, 5s));
    CHECK(rig.daemon_sums() == without_packets(truth));
    CHECK(d->stop(SIGTERM, 10s) == 0);
}

TEST_CASE("Fleet export: SIGKILL in the middle of the run then a restart loses and doubles nothing",
          "[e2e][fleet]")
{
    if (!require_clickhouse())
        return;
    FleetRig rig;
    auto cap = rig.lab.start_capture(rig.srv, rig.veth.a, "srv", "tcp", 128);
    auto [d1, out1] = rig.start_daemon();
    auto curls = rig.downloads(1, "1M");  // about 6 s
    // Killed after a few periods were sent, while the next ones count.
    REQUIRE(eventually([&] { return daemon_status(rig.sock)["fleet"]["rows_sent"] >= 3; }, 10s));
    std::this_thread::sleep_for(700ms);
    d1->stop(SIGKILL);
    std::this_thread::sleep_for(1500ms);  // the kernel counts on, no daemon
    auto [d2, out2] = rig.start_daemon();
    CHECK(wait_for(out2, "state restored from", 5s));
    wait_all(curls);
    std::this_thread::sleep_for(300ms);
    auto st = cap.stop();
    REQUIRE(st.complete());
    auto truth = truth_of(cap);
    REQUIRE(truth.size() == kClients.size());
    SumsByClient got;
    bool equal = eventually([&] { return (got = rig.clickhouse_sums()) == truth; }, 20s);
    INFO("daemon 1:\n" << slurp(out1) << "daemon 2:\n" << slurp(out2));
    INFO("truth:\n" << truth << "ClickHouse:\n" << got);
    CHECK(equal);
    CHECK(rig.daemon_sums() == without_packets(truth));
    CHECK(d2->stop(SIGTERM, 10s) == 0);
}
