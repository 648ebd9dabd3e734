// SPDX-License-Identifier: Apache-2.0
// `exfilmon run` with [fleet] against a real ClickHouse (docs/fleet.md,
// "Delivery"): the real binary and BPF programs, periods of 1 s.
//  - One edge host, TLS downloads from three client addresses: for every
//    client, the sums of the traffic table read FINAL equal tcpdump's count
//    of the same packets exactly (bytes and packets each way, TLS flows) and
//    the daemon's own totals (`exfilmon top`); `exfilmon status` and the
//    metrics show the export's counters.
//  - The whole path: two edge hosts with nginx and `exfilmon run`, the fleet
//    evaluator and rsyslog. A pull split over both hosts stays under each
//    host's threshold and raises exactly one fleet alert; the sums stay
//    exact after ClickHouse was stopped for 60 s in the middle of the run
//    and one daemon was killed with SIGKILL and started again with its
//    state file: nothing lost, nothing counted twice.
#include <catch2/catch.hpp>

#include <sys/mount.h>
#include <sys/stat.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
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

namespace {

// The whole path (docs/fleet.md, "Architecture"): two edge hosts, each a
// namespace with nginx and `exfilmon run` exporting to ClickHouse under
// its own sensor name; a client namespace routed to both; a core namespace
// with ClickHouse, rsyslog and the fleet evaluator.
//
//   cli (clients on lo: 192.0.2.0/24)
//     |- 198.51.100.0/28 --- edge-1 (nginx, exfilmon run) --- 198.51.100.32/28 -|
//     |- 198.51.100.16/28 -- edge-2 (nginx, exfilmon run) --- 198.51.100.48/28 -|- core
//                                         ClickHouse on 203.0.113.200, rsyslog, exfilmon fleet
constexpr const char *kPuller = "192.0.2.10";
const std::vector<std::string> kNormal = {"192.0.2.20", "192.0.2.21"};
const std::vector<std::string> kEveryClient = {kPuller, "192.0.2.20", "192.0.2.21"};
constexpr uint64_t kThreshold = 10u << 20;  // the rule's, per host and fleet-wide
constexpr const char *kRules = "[detect]\ninterval = \"1s\"\n"
                               "[[rules]]\nname = \"client-pull\"\nentity = \"client\"\n"
                               "metric = \"bytes_out\"\nwindow = \"10m\"\nthreshold = \"10MiB\"\n"
                               "severity = \"critical\"\n";

struct Edge {
    std::string name, ns;
    Lab::Veth to_cli, to_core;
    std::string addr;  // the API address the clients connect to
    std::filesystem::path cfg, alerts, state_dir;
    std::string sock;
    uint16_t metrics_port = 0;
    std::unique_ptr<NginxServer> nginx;
    Capture cap;
    Process *daemon = nullptr;
    std::filesystem::path out;  // the running daemon's output
    int starts = 0;
};

struct TwoEdgeFleet {
    static constexpr const char *kChAddr = "203.0.113.200";
    Lab lab;
    std::string cli = lab.add_netns("cli"), core = lab.add_netns("core");
    BpffsMount bpffs{lab.dir() / "bpffs"};
    std::array<Edge, 2> edges;
    std::optional<ClickHouseServer> ch;
    std::optional<RsyslogServer> rsyslog;
    std::string fleet_cfg;
    std::filesystem::path fleet_alerts = lab.dir() / "fleet-alerts.jsonl";

    TwoEdgeFleet()
    {
        lab.add_addr(core, "lo", std::string(kChAddr) + "/32");
        for (auto &c : kEveryClient)
            lab.add_addr(cli, "lo", c + "/32");
        for (int i = 0; i < 2; i++)
            wire_edge(i);
        ClickHouseOptions o;
        o.ns = core;
        o.address = kChAddr;
        ch.emplace(lab, o);
        ch->start();
        RsyslogOptions ro;
        ro.ns = core;
        rsyslog.emplace(lab, ro);
        rsyslog->start();
        fleet_cfg = write_config(
            lab.dir() / "fleet.toml",
            fleet_table(ch->url(), "exf") + kRules +
                "[[outputs]]\ntype = \"syslog\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:" +
                std::to_string(rsyslog->port()) +
                "\"\nformat = \"rfc5424\"\n[[outputs]]\ntype = \"json\"\npath = \"" +
                fleet_alerts.string() + "\"\n");
        auto init =
            lab.run(core, {exfilmon_binary().string(), "fleet", "init", "--config", fleet_cfg});
        INFO(init.output);
        REQUIRE(init.ok());
        for (auto &e : edges)
            configure_daemon(e);
    }

    // Edge i's namespace, links, routes, nginx and capture.
    void wire_edge(int i)
    {
        auto &e = edges[size_t(i)];
        e.name = "edge-" + std::to_string(i + 1);
        e.ns = lab.add_netns(e.name);
        e.to_cli = lab.add_veth(e.ns, cli);
        e.to_core = lab.add_veth(e.ns, core);
        auto host = [&](int link, int n) {
            return "198.51.100." + std::to_string(16 * (2 * link + i) + n);
        };
        e.addr = host(0, 1);
        lab.add_addr(e.ns, e.to_cli.a, e.addr + "/28");
        lab.add_addr(cli, e.to_cli.b, host(0, 2) + "/28");
        lab.add_addr(e.ns, e.to_core.a, host(1, 1) + "/28");
        lab.add_addr(core, e.to_core.b, host(1, 2) + "/28");
        lab.add_route(e.ns, "192.0.2.0/24", host(0, 2), false);
        lab.add_route(e.ns, std::string(kChAddr) + "/32", host(1, 2), false);
        // Offloads off: tcpdump sees wire packets, an exact independent count.
        lab.set_offloads(e.ns, e.to_cli.a, false);
        lab.set_offloads(cli, e.to_cli.b, false);
        NginxOptions no;
        no.ipv6 = false;
        no.downloads = {{"6m", 6u << 20}, {"1m", 1u << 20}};
        no.slow_rate = 48u << 10;
        no.name = "nginx-" + e.name;
        e.nginx = std::make_unique<NginxServer>(lab, e.ns, no);
        e.cap = lab.start_capture(e.ns, e.to_cli.a, e.name, "tcp", 128);
    }

    // The daemon's configuration: pinned maps (the kernel counts on while
    // no daemon runs), state file, its own alert log, the same rules as
    // the fleet's, [fleet] under its sensor name with periods of 1 s.
    void configure_daemon(Edge &e)
    {
        e.cfg = lab.dir() / (e.name + ".toml");
        e.alerts = lab.dir() / (e.name + "-alerts.jsonl");
        e.state_dir = lab.dir() / (e.name + "-state");
        e.sock = (lab.dir() / (e.name + ".sock")).string();
        e.metrics_port = free_tcp_port(e.ns, "127.0.0.1");
        write_config(e.cfg, "[bpf]\npin = true\npin_path = \"" + (bpffs.dir / e.name).string() +
                                "\"\nflow_table_size = 4096\n"
                                "[daemon]\nreport_interval = \"0s\"\nharvest_interval = \"200ms\"\n"
                                "state_dir = \"" +
                                e.state_dir.string() +
                                "\"\nstate_interval = \"5s\"\n"
                                "[control]\nsocket = \"" +
                                e.sock + "\"\n[metrics]\nlisten = \"127.0.0.1:" +
                                std::to_string(e.metrics_port) + "\"\n" + kRules +
                                "[[outputs]]\ntype = \"json\"\npath = \"" + e.alerts.string() +
                                "\"\n" + fleet_table(ch->url(), "exf") + "sensor = \"" + e.name +
                                "\"\ninterval = \"1s\"\n");
    }

    void start_daemon(Edge &e)
    {
        e.out = lab.dir() / (e.name + "-daemon" + std::to_string(++e.starts) + ".out");
        e.daemon = &lab.spawn(e.ns,
                              {exfilmon_binary().string(), "run", "--config", e.cfg.string(),
                               "--interface", e.to_cli.a},
                              {lab.dir(), e.out});
        REQUIRE(wait_for(e.out, "attached to " + e.to_cli.a, 20s));
        REQUIRE(wait_for(e.out, "control socket " + e.sock, 5s));
    }

    // One download by `client` from edge e (path: /download/NAME at full
    // speed, /slow/NAME at NginxOptions::slow_rate).
    Process *download(const Edge &e, const std::string &client, const std::string &path)
    {
        return &lab.spawn(cli,
                          {"curl", "-sS", "--fail", "--cacert", e.nginx->ca_cert().string(),
                           "--interface", client, "--resolve", "api.example.com:443:" + e.addr,
                           "-o", "/dev/null", NginxServer::url("api.example.com", path)},
                          {lab.dir(), lab.dir() / ("curl-" + client + "-" + e.name + ".log")});
    }

    std::string metrics(const Edge &e)
    {
        return lab.run_ok(
            e.ns,
            {"curl", "-sf", "http://127.0.0.1:" + std::to_string(e.metrics_port) + "/metrics"});
    }

    std::string daemon_outputs(const Edge &e)
    {
        std::string all;
        for (int n = 1; n <= e.starts; n++)
            all += slurp(lab.dir() / (e.name + "-daemon" + std::to_string(n) + ".out"));
        return all;
    }
};

}  // namespace

TEST_CASE("The fleet catches a pull split over two edge hosts that neither sees, and ClickHouse's "
          "sums stay exact through a 60 s outage and a SIGKILL",
          "[e2e][fleet]")
{
    if (!require_clickhouse())
        return;
    TwoEdgeFleet f;
    // Plain references: clang before 16 cannot capture a structured binding.
    auto &e1 = f.edges[0];
    auto &e2 = f.edges[1];
    f.start_daemon(e1);
    f.start_daemon(e2);

    // The puller takes 6 MiB through each host (60 % of the threshold on
    // each, 120 % of it fleet-wide); the normal clients 1 MiB through each
    // at 48 KiB/s (about 21 s), to run on through the kill and into the
    // outage below.
    std::vector<Process *> curls, normal;
    for (auto *e : {&e1, &e2}) {
        curls.push_back(f.download(*e, kPuller, "/download/6m"));
        for (auto &c : kNormal)
            normal.push_back(f.download(*e, c, "/slow/1m"));
    }
    wait_all(curls);

    // The puller's periods are in ClickHouse: the evaluator, started now,
    // raises exactly one fleet alert naming both sensors.
    std::map<std::string, uint64_t> pulled;  // per sensor
    for (auto *e : {&e1, &e2}) {
        INFO(e->name);
        REQUIRE(eventually(
            [&] {
                auto own = daemon_sums_of(e->sock)[kPuller];
                auto got = clickhouse_sums_of(*f.ch, e->name)[kPuller];
                pulled[e->name] = got.bytes_out;
                got.packets_in = got.packets_out = 0;  // `exfilmon top` has none
                return own.flows == 1 && got == own;
            },
            10s));
        CHECK(pulled[e->name] > kThreshold / 2);
        CHECK(pulled[e->name] < kThreshold);
        CHECK(daemon_status(e->sock)["fleet"]["rows_sent"] >= 3);
    }
    auto &eval = f.lab.spawn(f.core, {exfilmon_binary().string(), "fleet", "--config", f.fleet_cfg},
                             {f.lab.dir(), f.lab.dir() / "fleet-eval.out"});
    REQUIRE(f.rsyslog->wait_for_count(1));

    // edge-1 killed while the normal clients download through it; the
    // kernel counts on with no daemon; a new one restores the state file.
    e1.daemon->stop(SIGKILL);
    std::this_thread::sleep_for(1500ms);
    f.start_daemon(e1);
    CHECK(wait_for(e1.out, "state restored from", 5s));
    // It delivers while ClickHouse is up: the closed period the state held
    // is handed over again (and counts once), then the new ones.
    CHECK(eventually([&] { return daemon_status(e1.sock)["fleet"]["batches_sent"] >= 1; }, 5s));

    // ClickHouse killed for 60 s while both hosts still count: periods
    // close, fail to go out and wait in each sensor's spool.
    auto stopped_at = std::chrono::steady_clock::now();
    f.ch->stop(0ms);
    for (auto *e : {&e1, &e2}) {
        INFO(e->name);
        json st;
        size_t files = 0;  // the exporter writes a period there soon after it closed
        bool spooled = eventually(
            [&] {
                st = daemon_status(e->sock)["fleet"];
                files = 0;
                for (auto &entry :
                     std::filesystem::directory_iterator(e->state_dir / "fleet-spool"))
                    files += entry.path().extension() == ".jsonl";
                return st["failures"].get<uint64_t>() >= 2 &&
                       st["spool_depth"].get<uint64_t>() >= 2 && files >= 2;
            },
            10s);
        INFO(st.dump() << "\nspool files: " << files);
        INFO(f.daemon_outputs(*e));
        REQUIRE(spooled);
        CHECK(st["last_error"].get<std::string>().find("cannot reach ClickHouse") !=
              std::string::npos);
        CHECK(eventually(
            [&] { return metric_value(f.metrics(*e), "exfilmon_fleet_failures_total") >= 2; }, 3s));
    }
    for (auto *c : normal)
        CHECK(c->running());  // the outage began while they counted
    wait_all(normal);
    std::this_thread::sleep_until(stopped_at + 60s);
    f.ch->start();

    // Per sensor and client, ClickHouse's sums equal tcpdump's count on that
    // host's link and the daemon's own totals exactly.
    std::this_thread::sleep_for(300ms);  // the last ACKs
    for (auto *e : {&e1, &e2}) {
        INFO(e->name);
        auto cap = e->cap.stop();
        REQUIRE(cap.complete());
        auto truth = truth_of(e->cap, kEveryClient);
        REQUIRE(truth.size() == kEveryClient.size());
        for (auto &[c, s] : truth)
            CHECK(s.flows == 1);
        SumsByClient got;
        bool equal =
            eventually([&] { return (got = clickhouse_sums_of(*f.ch, e->name)) == truth; }, 40s);
        INFO(f.daemon_outputs(*e));
        INFO("truth:\n" << truth << "ClickHouse:\n" << got);
        CHECK(equal);
        CHECK(got[kPuller].bytes_out == pulled[e->name]);
        CHECK(eventually([&] { return daemon_status(e->sock)["fleet"]["spool_depth"] == 0; }, 5s));
        CHECK(daemon_sums_of(e->sock) == without_packets(truth));
        // Neither host alerts: the same rule sees 60 % on each.
        CHECK(slurp(e->alerts).empty());
        CHECK(e->daemon->stop(SIGTERM, 10s) == 0);
    }

    // Exactly one fleet alert, for the puller, naming both sensors with
    // their bytes; through the outage the evaluator opened nothing again.
    std::this_thread::sleep_for(2500ms);  // evaluations over the complete sums
    CHECK(eval.running());
    CHECK(eval.stop(SIGTERM, 10s) == 0);
    INFO(slurp(f.lab.dir() / "fleet-eval.out"));
    auto syslog = f.rsyslog->messages();
    REQUIRE(syslog.size() == 1);
    INFO(syslog[0]);
    CHECK(syslog[0].find(" client=\"" + std::string(kPuller) + "\"") != std::string::npos);
    CHECK(syslog[0].find(" scope=\"fleet\" distinct_sensors=\"2\" sensor=") != std::string::npos);
    for (auto &[sensor, bytes] : pulled)  // in the order of their bytes
        CHECK(std::regex_search(syslog[0], std::regex(" sensor=\"" + sensor + " " +
                                                      std::to_string(bytes) + " 0\\.\\d+\"")));
    std::vector<json> alerts;
    std::istringstream lines(slurp(f.fleet_alerts));
    for (std::string line; std::getline(lines, line);)
        alerts.push_back(json::parse(line));
    REQUIRE(alerts.size() == 1);
    auto &x = alerts[0]["exfilmon"];
    CHECK(x["state"] == "open");
    CHECK(x["scope"] == "fleet");
    CHECK(x["client"] == kPuller);
    CHECK(x["bytes_out"] == pulled["edge-1"] + pulled["edge-2"]);
    CHECK(x["distinct_sensors"] == 2);
    std::map<std::string, uint64_t> named;
    for (auto &s : x["sensors"])
        named[s["name"]] = s["bytes_out"];
    CHECK(named == pulled);
    CHECK(f.ch->query("SELECT count() FROM exf.alerts FINAL") == "1\n");
}
