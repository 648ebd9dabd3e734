// SPDX-License-Identifier: Apache-2.0
// scale: userspace scale and cost growth (issue 6, benchmarks 5 and 6), with
// the real BPF programs (BpfSensor: the embedded exfilmon.bpf.o, loaded, not
// attached) and the daemon's real userspace classes (EventQueue,
// EventConsumer, FlowTracker, Detector, Aggregator, HarvestStage,
// read_tables). bench/scale.sh runs the whole set and prints the tables.
//
//   scale events  [--seconds S] [--rate FLOWS/S] [--loop daemon|tight]
//                 [--drain FLOWS] [--clients C] [--prefill-clients N]
//                 [--prefill-flows M] [--queue Q] [--ring BYTES] [--hello BYTES]
//                 [--harvest-drain on|off]
//       Events through ring buffer -> EventConsumer thread -> EventQueue ->
//       main thread -> FlowTracker::on_event (-> Detector::on_tls, as the
//       daemon wires it). One producer thread, pinned to CPU 0, runs
//       distinct TLS flows through the ingress program by BPF_PROG_TEST_RUN:
//       SYN, a ClientHello (a hello event), RST (a flow-end event): two
//       events per flow. Concurrent (default): producer and consumer run
//       together for S seconds, the producer as fast as it can (--rate 0)
//       or paced; the consumer is the daemon's main loop (--loop daemon:
//       wait 50 ms as ControlServer::serve does, pop the queue, harvest
//       and evaluate once a second; the harvest drains the queue
//       meanwhile unless --harvest-drain off) or a tight loop (pop as soon as there
//       is anything; no harvest). --drain F: the producer first fills the
//       ring buffer (sized for it) with F flows, no consumer running; then
//       the consumer starts and the time to process them is the consumer
//       side's capacity. --prefill-*: the flow and client tables hold M
//       flows of N clients first (see `table`), so the daemon loop's
//       harvests are those of a table that size.
//
//   scale table   --clients N --flows M [--runs R] [--change PCT]
//                 [--samples S] [--rounds R2] [--no-sni] [--reader full|changes]
//       Fills the real flow and client maps with M flows of N clients
//       (bpf_map_update_batch; values patterned on a flow the program
//       itself created), feeds the FlowTracker the ClientHellos of the
//       newest min(M, 65536) TLS flows (its default capacity), then times
//       harvests as the daemon's harvest_now() does them: read_tables (the
//       kernel read), HarvestStage::run (FlowHarvester, Harvester,
//       aggregator), and the rule evaluation that follows. First harvest
//       (fresh HarvestStage, Aggregator, Detector; R times), steady state
//       with nothing changed (R times), and with PCT % of the flows (and
//       their clients) changed before each (R times; --reader changes:
//       the steady harvests read the change log as the eBPF source does,
//       and the changes are client data packets run through the program,
//       which logs them). Wall and thread CPU
//       time, RSS, memory per client. Then the kernel's established-packet
//       cost with these tables: BPF_PROG_TEST_RUN of client data packets
//       of S distinct flows picked at random from the table (each once per
//       round, so every packet misses the per-CPU flow cache and looks its
//       flow and client up in tables that size), paired with the empty
//       program run on the same frame, R2 rounds; and one flow re-run in
//       the kernel (repeat; the flow-cache fast path), as bpf_cost does.
//
// Every result is a `SCALE key=value ...` line; medians over the runs.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "aggregate/aggregator.h"
#include "baseline/empty_program.h"
#include "capture/bpf_sensor.h"
#include "capture/changes.h"
#include "capture/maps.h"
#include "capture/test_run.h"
#include "common/addr.h"
#include "common/error.h"
#include "common/log.h"
#include "config/config.h"
#include "detect/detector.h"
#include "flows/flow_tracker.h"
#include "harvest/deltas.h"
#include "harvest/drain.h"
#include "harvest/harvest_stage.h"
#include "sources/event_queue.h"
#include "support/packet_builder.h"

#include "bench_util.h"

namespace {

using exf::bench::median;
using exf::bench::rss_bytes;

using Clock = std::chrono::steady_clock;
using exf::Addr16;
using exf::test::Bytes;
using exf::test::FrameSpec;
using exf::test::TcpFlag;

// ---- utilities ---------------------------------------------------------------

double vmax(const std::vector<double> &v)
{
    return v.empty() ? NAN : *std::max_element(v.begin(), v.end());
}

double vmin(const std::vector<double> &v)
{
    return v.empty() ? NAN : *std::min_element(v.begin(), v.end());
}

double clock_s(clockid_t id)
{
    timespec ts{};
    clock_gettime(id, &ts);
    return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}
double thread_cpu_s() { return clock_s(CLOCK_THREAD_CPUTIME_ID); }
double process_cpu_s() { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }
double now_s() { return clock_s(CLOCK_MONOTONIC); }
// The daemon's clocks: monotonic_ms() (steady_clock) for the aggregator; the
// kernel stamps flows with bpf_ktime_get_coarse_ns (CLOCK_MONOTONIC base).
uint64_t mono_ns()
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}
uint64_t mono_ms() { return mono_ns() / 1000000; }
uint64_t wall_ms()
{
    return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count());
}

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed = 0x9e3779b97f4a7c15ull) : s(seed) {}
    uint64_t next()
    {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        return s;
    }
    uint64_t below(uint64_t n) { return n ? next() % n : 0; }
};

uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

uint32_t pow2_at_least(uint64_t n)
{
    uint64_t p = 1;
    while (p < n)
        p <<= 1;
    return uint32_t(p);
}

void pin_to(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

std::string fmt(double v, int prec = 1)
{
    if (std::isnan(v))
        return "-";
    char b[64];
    std::snprintf(b, sizeof b, "%.*f", prec, v);
    return b;
}

// ---- addresses, keys, frames -------------------------------------------------

// Client c: IPv4 (even c) 10.0.0.0/8 consecutive, IPv6 (odd c) one /64 each
// under 2001:db8::/32: every client is its own client entity.
bool client_v6(uint64_t c) { return c & 1; }

Addr16 v4_mapped(uint32_t x)
{
    Addr16 a{};
    a[10] = a[11] = 0xff;
    a[12] = uint8_t(x >> 24);
    a[13] = uint8_t(x >> 16);
    a[14] = uint8_t(x >> 8);
    a[15] = uint8_t(x);
    return a;
}

Addr16 client_addr(uint64_t c)
{
    uint64_t i = c / 2;
    if (!client_v6(c))
        return v4_mapped(0x0a000000u + uint32_t(i) + 1);
    Addr16 a{};
    uint64_t net = 0x20010db800000000ull | ((i + 1) & 0xffffffffull);
    for (int k = 0; k < 8; k++)
        a[size_t(k)] = uint8_t(net >> (56 - 8 * k));
    a[15] = 0x10;
    return a;
}

// Servers 0..127 of each family (0..63: table fills, 64..127: the events
// producer, so that its 5-tuples never meet a prefilled flow).
constexpr unsigned kServers = 128;
Addr16 server_addr(unsigned k, bool v6)
{
    if (!v6)
        return v4_mapped(0xc6336400u + 1 + k);  // 198.51.100.(1+k)
    Addr16 a{};
    const uint8_t p[] = {0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff};
    std::memcpy(a.data(), p, sizeof p);
    a[14] = uint8_t((k + 1) >> 8);
    a[15] = uint8_t(k + 1);
    return a;
}

std::string sni_of_server(unsigned k) { return "api" + std::to_string(k % 64) + ".example.com"; }

// The program's canonical order (bpf/lib/parse.h exf_endpoint_lt): the
// addresses as two native-endian 64-bit words, then the port.
bool endpoint_lt(const Addr16 &a, uint16_t pa, const Addr16 &b, uint16_t pb)
{
    uint64_t a0, a1, b0, b1;
    std::memcpy(&a0, a.data(), 8);
    std::memcpy(&a1, a.data() + 8, 8);
    std::memcpy(&b0, b.data(), 8);
    std::memcpy(&b1, b.data() + 8, 8);
    if (a0 != b0)
        return a0 < b0;
    if (a1 != b1)
        return a1 < b1;
    return pa < pb;
}

exf_flow_key make_key(const Addr16 &cli, uint16_t cport, const Addr16 &srv, uint16_t sport,
                      uint8_t proto, uint8_t &client_side)
{
    exf_flow_key k{};
    k.proto = proto;
    if (endpoint_lt(cli, cport, srv, sport)) {
        std::memcpy(k.lo_addr, cli.data(), 16);
        std::memcpy(k.hi_addr, srv.data(), 16);
        k.lo_port = cport;
        k.hi_port = sport;
        client_side = EXF_CLIENT_LO;
    } else {
        std::memcpy(k.lo_addr, srv.data(), 16);
        std::memcpy(k.hi_addr, cli.data(), 16);
        k.lo_port = sport;
        k.hi_port = cport;
        client_side = EXF_CLIENT_HI;
    }
    return k;
}

std::string addr_text(const Addr16 &a, bool v6)
{
    if (!v6)
        return std::to_string(a[12]) + "." + std::to_string(a[13]) + "." + std::to_string(a[14]) +
               "." + std::to_string(a[15]);
    return exf::format_addr(a);
}

constexpr uint32_t kClientIsn = 1000, kServerIsn = 5000;

// Client-to-server frames per family and server, built once by the tests'
// builder; a flow's frames are these with the client address and port
// written in (the program checks no checksum).
class FrameKit {
public:
    explicit FrameKit(size_t hello_len) : hello_len_(hello_len)
    {
        for (int v6 = 0; v6 < 2; v6++)
            for (unsigned k = 0; k < kServers; k++) {
                Addr16 cli = client_addr(v6 ? 1 : 0), srv = server_addr(k, v6);
                FrameSpec s;
                s.src = addr_text(cli, v6);
                s.dst = addr_text(srv, v6);
                s.sport = 40000;
                s.dport = 443;
                Set &t = sets_[v6][k];
                s.tcp_flags = TcpFlag::SYN;
                s.seq = kClientIsn;
                t.syn = exf::test::build_frame(s);
                s.tcp_flags = TcpFlag::PSH | TcpFlag::ACK;
                s.seq = kClientIsn + 1;
                s.ack = kServerIsn + 1;
                s.payload = exf::test::client_hello(hello_len, sni_of_server(k));
                t.hello = exf::test::build_frame(s);
                s.seq = uint32_t(kClientIsn + 1 + hello_len);
                s.payload.assign(10, 0x17);
                t.data = exf::test::build_frame(s);
                s.payload.clear();
                s.tcp_flags = TcpFlag::RST | TcpFlag::ACK;
                t.rst = exf::test::build_frame(s);
                s.dport = 80;  // a non-TLS flow's data
                s.tcp_flags = TcpFlag::PSH | TcpFlag::ACK;
                s.payload.assign(10, 'G');
                t.data80 = exf::test::build_frame(s);
            }
        // The offsets written below, checked against what the builder wrote.
        for (int v6 = 0; v6 < 2; v6++) {
            const Bytes &f = sets_[v6][0].syn;
            Addr16 cli = client_addr(v6 ? 1 : 0);
            size_t off = v6 ? 22 : 26, n = v6 ? 16 : 4, po = v6 ? 54 : 34;
            if (f.size() < po + 2 || std::memcmp(f.data() + off, cli.data() + 16 - n, n) != 0 ||
                f[po] != (40000 >> 8) || f[po + 1] != (40000 & 255))
                throw exf::Error("frame layout is not the one expected");
        }
    }
    enum Kind { syn, hello, data, rst, data80 };
    // The frame of kind for client c (its address family) and port, to server k.
    const Bytes &frame(Kind kind, uint64_t c, uint16_t cport, unsigned k)
    {
        bool v6 = client_v6(c);
        const Set &t = sets_[v6][k % kServers];
        const Bytes &tpl = kind == syn     ? t.syn
                           : kind == hello ? t.hello
                           : kind == data  ? t.data
                           : kind == rst   ? t.rst
                                           : t.data80;
        buf_.assign(tpl.begin(), tpl.end());
        write(buf_, c, cport);
        return buf_;
    }
    static void write(Bytes &f, uint64_t c, uint16_t cport)
    {
        bool v6 = client_v6(c);
        Addr16 a = client_addr(c);
        if (v6)
            std::memcpy(f.data() + 22, a.data(), 16);
        else
            std::memcpy(f.data() + 26, a.data() + 12, 4);
        size_t po = v6 ? 54 : 34;
        f[po] = uint8_t(cport >> 8);
        f[po + 1] = uint8_t(cport);
    }
    size_t hello_len() const { return hello_len_; }

private:
    struct Set {
        Bytes syn, hello, data, rst, data80;
    };
    Set sets_[2][kServers];
    Bytes buf_;
    size_t hello_len_;
};

void run_frame(int fd, const Bytes &f, uint32_t repeat = 1, uint32_t *dur = nullptr)
{
    exf::TestRunOptions o;
    o.repeat = repeat;
    auto r = exf::run_tc_program(fd, f, o);
    if (r.err)
        throw exf::Error("BPF_PROG_TEST_RUN: " + std::string(std::strerror(-r.err)), -r.err);
    if (dur)
        *dur = r.duration_ns;
}

// ---- the sensor and its tables ---------------------------------------------

int ncpus()
{
    int n = libbpf_num_possible_cpus();
    if (n <= 0)
        exf::throw_errno("count possible CPUs", n);
    return n;
}

// A TLS flow in the state the program leaves it after SYN, SYN-ACK, ACK, a
// ClientHello and data both ways, as the program itself wrote it.
struct Template {
    exf_flow flow;
};

Template make_template(exf::BpfSensor &s)
{
    Addr16 cli = v4_mapped(0xc00002fa), srv = v4_mapped(0xc6336401);  // 192.0.2.250, 198.51.100.1
    FrameSpec c, v;
    c.src = "192.0.2.250";
    c.dst = "198.51.100.1";
    c.sport = 39999;
    c.dport = 443;
    v.src = c.dst;
    v.dst = c.src;
    v.sport = 443;
    v.dport = 39999;
    c.tcp_flags = TcpFlag::SYN;
    c.seq = kClientIsn;
    run_frame(s.ingress_fd(), exf::test::build_frame(c));
    v.tcp_flags = TcpFlag::SYN | TcpFlag::ACK;
    v.seq = kServerIsn;
    v.ack = kClientIsn + 1;
    run_frame(s.egress_fd(), exf::test::build_frame(v));
    c.tcp_flags = TcpFlag::ACK;
    c.seq = kClientIsn + 1;
    c.ack = kServerIsn + 1;
    run_frame(s.ingress_fd(), exf::test::build_frame(c));
    c.tcp_flags = TcpFlag::PSH | TcpFlag::ACK;
    c.payload = exf::test::client_hello(517);
    run_frame(s.ingress_fd(), exf::test::build_frame(c));
    v.tcp_flags = TcpFlag::PSH | TcpFlag::ACK;
    v.seq = kServerIsn + 1;
    v.ack = kClientIsn + 1 + 517;
    v.payload.assign(1000, 0x17);
    run_frame(s.egress_fd(), exf::test::build_frame(v));
    uint8_t side;
    exf_flow_key key = make_key(cli, 39999, srv, 443, 6, side);
    Template t{};
    if (bpf_map_lookup_elem(s.flows_fd(), &key, &t.flow) != 0)
        exf::throw_errno("look the template flow up (canonical key differs from the program's?)",
                         errno);
    if (t.flow.kind != EXF_KIND_TLS || !(t.flow.flags & EXF_FF_HELLO_DONE) || t.flow.client != side)
        throw exf::Error("template flow not in the expected state");
    // Out of the tables again; the flow cache holds nothing of it (the
    // last packet was a slow-path one, installed; clear to be exact).
    bpf_map_delete_elem(s.flows_fd(), &key);
    exf_client_key ck{};
    std::memcpy(ck.addr, cli.data(), 16);
    bpf_map_delete_elem(s.clients_fd(), &ck);
    exf::clear_fcache(s.fcache_fd());
    return t;
}

// Canonical-direction byte halves of tcp_seen swapped (bit 31 kept).
uint32_t swap_seen(uint32_t s)
{
    return (s & 0x80000000u) | ((s & 0xffu) << 8) | ((s >> 8) & 0xffu);
}

struct FilledFlow {
    exf_flow_key key;
    uint32_t client;  // client index
    uint16_t cport;
    uint8_t server;
    uint8_t side;
    bool tls, closed;
};

struct Filled {
    std::vector<FilledFlow> flows;
    std::vector<exf_flow> values;           // as written
    std::vector<exf_client_stats> clients;  // per client, as written (summed)
};

// The fill: M flows over N clients (flow j: client j % N, so every client
// has M/N flows), 64 servers per family. The first flow of each client is
// an open TLS flow; of the others, by a hash of j, 10 % are not TLS (port
// 80, kind OTHER) and 20 % of the TLS ones closed (FIN both ways). First
// seen 10 s to 10 min ago, last packet within the last 5 s; the client
// rows are the sums of their TLS flows.
Filled fill_tables(exf::BpfSensor &s, const Template &tpl, uint64_t n_clients, uint64_t n_flows,
                   uint64_t now_ns)
{
    Filled out;
    out.flows.resize(n_flows);
    out.values.resize(n_flows);
    out.clients.assign(n_clients, exf_client_stats{});
    Rng rng(12345 + n_flows);
    uint8_t tpl_side = tpl.flow.client;
    for (uint64_t j = 0; j < n_flows; j++) {
        uint64_t c = j % n_clients, ord = j / n_clients;
        uint64_t h = mix64(j + 1);
        bool tls = ord == 0 || h % 10 != 9;
        bool closed = tls && ord != 0 && (h >> 8) % 5 == 4;
        unsigned k = unsigned((h >> 16) % 64);
        uint16_t cport = uint16_t(1024 + ord % 64000);
        if (ord >= 64000)
            k = unsigned((k + ord / 64000) % 64);
        bool v6 = client_v6(c);
        Addr16 cli = client_addr(c), srv = server_addr(k, v6);
        uint8_t side;
        exf_flow_key key = make_key(cli, cport, srv, tls ? 443 : 80, 6, side);
        exf_flow f = tpl.flow;
        f.client = side;
        if (side != tpl_side)
            f.tcp_seen = swap_seen(f.tcp_seen);
        f.kind = tls ? EXF_KIND_TLS : EXF_KIND_OTHER;
        uint64_t age = (10 + rng.below(590)) * 1000000000ull;
        f.first_ns = now_ns - age;
        // Within the last 5 s: no flow goes idle (kFlowIdleNs, 120 s) during
        // a run, which would add one-off idle closes to the steady harvests.
        f.last_ns = std::max(f.first_ns, now_ns - rng.below(5000) * 1000000ull);
        unsigned in = exf::flow_in_dir(f);
        f.pkts[in] = 5 + rng.below(50);
        f.pkts[in ^ 1] = 5 + rng.below(200);
        f.bytes[in] = f.pkts[in] * (60 + rng.below(500));
        f.bytes[in ^ 1] = f.pkts[in ^ 1] * (60 + rng.below(1400));
        if (closed) {
            f.flags |= EXF_FF_CLOSED;
            f.tcp_seen |= EXF_TCP_FIN | (EXF_TCP_FIN << 8) | EXF_TCP_CLOSE_COUNTED;
        }
        out.flows[j] = {key, uint32_t(c), cport, uint8_t(k), side, tls, closed};
        out.values[j] = f;
        if (tls) {
            auto &cs = out.clients[c];
            cs.tls_flows_opened++;
            cs.tls_flows_closed += closed;
            cs.pkts_in += f.pkts[in];
            cs.pkts_out += f.pkts[in ^ 1];
            cs.bytes_in += f.bytes[in];
            cs.bytes_out += f.bytes[in ^ 1];
            cs.last_ns = std::max(cs.last_ns, f.last_ns);
            cs.first_ns = cs.first_ns ? std::min(cs.first_ns, f.first_ns) : f.first_ns;
        }
    }
    // Flows, in batches.
    const size_t chunk = 8192;
    std::vector<exf_flow_key> keys;
    for (size_t i = 0; i < n_flows; i += chunk) {
        uint32_t n = uint32_t(std::min(chunk, size_t(n_flows) - i));
        keys.resize(n);
        for (uint32_t x = 0; x < n; x++)
            keys[x] = out.flows[i + x].key;
        LIBBPF_OPTS(bpf_map_batch_opts, opts);
        uint32_t count = n;
        if (bpf_map_update_batch(s.flows_fd(), keys.data(), &out.values[i], &count, &opts) != 0)
            exf::throw_errno("fill the flow table", errno);
    }
    // Clients: per-CPU values, the totals on CPU 0.
    int nc = ncpus();
    std::vector<exf_client_key> ckeys;
    std::vector<exf_client_stats> cvals;
    for (size_t i = 0; i < n_clients; i += chunk) {
        uint32_t n = uint32_t(std::min(chunk, size_t(n_clients) - i));
        ckeys.assign(n, exf_client_key{});
        cvals.assign(size_t(n) * size_t(nc), exf_client_stats{});
        for (uint32_t x = 0; x < n; x++) {
            Addr16 a = client_addr(i + x);
            std::memcpy(ckeys[x].addr, a.data(), 16);
            cvals[size_t(x) * size_t(nc)] = out.clients[i + x];
        }
        LIBBPF_OPTS(bpf_map_batch_opts, opts);
        uint32_t count = n;
        if (bpf_map_update_batch(s.clients_fd(), ckeys.data(), cvals.data(), &count, &opts) != 0)
            exf::throw_errno("fill the client table", errno);
    }
    return out;
}

// Changes a share of the flows as traffic would: more packets and bytes
// both ways, last packet now; and their clients' rows by the same amounts.
void change_flows(exf::BpfSensor &s, Filled &t, double share, Rng &rng, uint64_t now_ns)
{
    size_t n = std::max<size_t>(1, size_t(double(t.flows.size()) * share));
    std::vector<exf_flow_key> keys;
    std::vector<exf_flow> vals;
    std::unordered_set<uint32_t> touched;
    keys.reserve(n);
    vals.reserve(n);
    std::unordered_set<size_t> picked;
    while (picked.size() < n)
        picked.insert(size_t(rng.below(t.flows.size())));
    for (size_t j : picked) {
        auto &ff = t.flows[j];
        exf_flow &f = t.values[j];
        unsigned in = exf::flow_in_dir(f);
        uint64_t pi = 1 + rng.below(4), po = 1 + rng.below(20);
        uint64_t bi = pi * 80, bo = po * 1400;
        f.pkts[in] += pi;
        f.pkts[in ^ 1] += po;
        f.bytes[in] += bi;
        f.bytes[in ^ 1] += bo;
        f.last_ns = now_ns;
        keys.push_back(ff.key);
        vals.push_back(f);
        if (ff.tls) {
            auto &cs = t.clients[ff.client];
            cs.pkts_in += pi;
            cs.pkts_out += po;
            cs.bytes_in += bi;
            cs.bytes_out += bo;
            cs.last_ns = now_ns;
            touched.insert(ff.client);
        }
    }
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    for (size_t i = 0; i < keys.size(); i += 8192) {
        uint32_t count = uint32_t(std::min<size_t>(8192, keys.size() - i));
        if (bpf_map_update_batch(s.flows_fd(), &keys[i], &vals[i], &count, &opts) != 0)
            exf::throw_errno("update flows", errno);
    }
    int nc = ncpus();
    std::vector<exf_client_key> ckeys;
    std::vector<exf_client_stats> cvals;
    for (uint32_t c : touched) {
        exf_client_key k{};
        Addr16 a = client_addr(c);
        std::memcpy(k.addr, a.data(), 16);
        ckeys.push_back(k);
        for (int x = 0; x < nc; x++)
            cvals.push_back(x == 0 ? t.clients[c] : exf_client_stats{});
    }
    for (size_t i = 0; i < ckeys.size(); i += 8192) {
        uint32_t count = uint32_t(std::min<size_t>(8192, ckeys.size() - i));
        if (bpf_map_update_batch(s.clients_fd(), &ckeys[i], &cvals[i * size_t(nc)], &count,
                                 &opts) != 0)
            exf::throw_errno("update clients", errno);
    }
}

// Changes a share of the flows through the program itself: one client data
// packet each (BPF_PROG_TEST_RUN), so that the datapath logs them as it
// would live (the change log, capture/changes.h).
void change_flows_by_packets(exf::BpfSensor &s, const Filled &t, double share, Rng &rng,
                             FrameKit &kit)
{
    size_t n = std::max<size_t>(1, size_t(double(t.flows.size()) * share));
    std::unordered_set<size_t> picked;
    while (picked.size() < n)
        picked.insert(size_t(rng.below(t.flows.size())));
    for (size_t j : picked) {
        const FilledFlow &ff = t.flows[j];
        auto kind = ff.tls ? FrameKit::data : FrameKit::data80;
        run_frame(s.ingress_fd(), kit.frame(kind, ff.client, ff.cport, ff.server));
    }
}

// A hello event as the ring buffer hands it over (bpf/lib/datapath.h
// exf_emit_hello: a large event when the payload is over EXF_CHUNK_SMALL).
std::vector<uint8_t> hello_event(const FilledFlow &ff, const exf_flow &f, const Bytes &hello)
{
    size_t cap = hello.size() <= EXF_CHUNK_SMALL ? EXF_CHUNK_SMALL : EXF_CHUNK_MAX;
    std::vector<uint8_t> ev(EXF_HELLO_EVENT_HDR_SIZE + cap, 0);
    exf_hello_event e{};
    e.hdr.type = EXF_EV_HELLO;
    e.hdr.len = uint16_t(std::min(hello.size(), cap));
    e.hdr.kind = EXF_KIND_TLS;
    e.hdr.client = ff.side;
    e.hdr.ts_ns = f.first_ns;
    e.hdr.key = ff.key;
    e.seq = kClientIsn + 1;
    e.offset = 0;
    std::memcpy(ev.data(), &e, EXF_HELLO_EVENT_HDR_SIZE);
    std::memcpy(ev.data() + EXF_HELLO_EVENT_HDR_SIZE, hello.data(), e.hdr.len);
    return ev;
}

// ---- the daemon's consumer side -----------------------------------------------

// The objects run_daemon() builds for the live path, wired the same way.
struct Daemon {
    exf::Config cfg;
    std::unique_ptr<exf::agg::Aggregator> aggregator;
    std::unique_ptr<exf::detect::Detector> detector;
    exf::FlowTracker tracker;
    std::unique_ptr<exf::HarvestStage> harvest;

    Daemon()
    {
        reset_harvest_side();
        tracker.set_on_tls_meta([this](const exf::FlowRecord &r) {
            Addr16 client;
            std::memcpy(client.data(), r.client == EXF_CLIENT_HI ? r.key.hi_addr : r.key.lo_addr,
                        16);
            detector->on_tls(*aggregator, aggregator->clock_ms(), client,
                             r.tls.sni ? std::string_view(*r.tls.sni) : std::string_view(),
                             r.tls.ja4);
        });
    }
    // As the daemon's evaluate_now(): the aggregator's clock to now, then the rules.
    std::vector<exf::detect::AlertRecord> evaluate()
    {
        uint64_t now = mono_ms();
        aggregator->expire(now);
        return detector->evaluate(*aggregator, now, wall_ms());
    }
    // A fresh aggregator, detector and harvest stage (a first harvest again).
    void reset_harvest_side()
    {
        harvest.reset();
        detector.reset();
        aggregator.reset();
        aggregator = std::make_unique<exf::agg::Aggregator>(cfg.aggregate);
        detector = std::make_unique<exf::detect::Detector>(cfg.detect);
        harvest = std::make_unique<exf::HarvestStage>();
    }
};

struct HarvestTiming {
    double read_s = 0, read_cpu = 0, run_s = 0, run_cpu = 0, eval_s = 0, eval_cpu = 0;
    size_t flow_rows = 0, client_rows = 0, alerts = 0;
};

// One harvest_now() and the evaluation after it, as run_daemon() does them.
// With a ChangeReader: as the eBPF source reads (only what changed).
HarvestTiming harvest_once(exf::BpfSensor &s, Daemon &d, exf::ChangeReader *reader = nullptr)
{
    HarvestTiming t;
    double w0 = now_s(), c0 = thread_cpu_s();
    (void)exf::read_health(s.health_fd());
    exf::TableChanges changes;
    if (reader)
        changes = reader->read();
    else
        changes.tables = s.tables();
    const exf::Tables &tables = changes.tables;
    double w1 = now_s(), c1 = thread_cpu_s();
    d.harvest->run(*d.aggregator, changes, d.tracker, mono_ms());
    double w2 = now_s(), c2 = thread_cpu_s();
    auto records = d.evaluate();
    double w3 = now_s(), c3 = thread_cpu_s();
    t.read_s = w1 - w0;
    t.read_cpu = c1 - c0;
    t.run_s = w2 - w1;
    t.run_cpu = c2 - c1;
    t.eval_s = w3 - w2;
    t.eval_cpu = c3 - c2;
    t.flow_rows = tables.flows.size();
    t.client_rows = tables.clients.size();
    t.alerts = records.size();
    return t;
}

template <typename Q>
uint64_t queue_waited(const Q &q)
{
    // The ring-buffer reader waits for a free slot in newer trees
    // (EventQueue::waited()); older ones drop at once.
    if constexpr (requires { q.waited(); })
        return q.waited();
    else
        return 0;
}

// ---- options -----------------------------------------------------------------

struct Options {
    std::string mode;
    // events
    double seconds = 10;
    double rate = 0;  // flows/s, 0: as fast as possible
    std::string loop = "daemon";
    uint64_t drain = 0;
    uint64_t clients = 100000;
    uint64_t prefill_clients = 0, prefill_flows = 0;
    uint32_t queue = 4096;
    uint32_t ring = 4u << 20;
    size_t hello = 517;
    bool harvest_drain = true;  // --harvest-drain on|off (the daemon: on)
    // table
    uint64_t n_clients = 1000, n_flows = 10000;
    unsigned runs = 5;
    double change = 5;
    // --reader full|changes; unset: table reads whole tables, events reads
    // the change log as the daemon does.
    std::string reader;
    unsigned samples = 20000;
    unsigned rounds = 5;
    bool sni = true;
    std::string tag;
};

[[noreturn]] void usage()
{
    std::fprintf(
        stderr, "usage: scale events [--seconds S] [--rate FLOWS/S] [--loop daemon|tight] "
                "[--drain FLOWS]\n"
                "                    [--clients C] [--prefill-clients N] [--prefill-flows M]\n"
                "                    [--queue Q] [--ring BYTES] [--hello BYTES] [--tag T]\n"
                "                    [--harvest-drain on|off] [--reader full|changes]\n"
                "       scale table --clients N --flows M [--runs R] [--change PCT] "
                "[--samples S]\n"
                "                    [--rounds R2] [--no-sni] [--tag T] [--reader full|changes]\n");
    std::exit(2);
}

Options parse(int argc, char **argv)
{
    if (argc < 2)
        usage();
    Options o;
    o.mode = argv[1];
    if (o.mode != "events" && o.mode != "table")
        usage();
    for (int i = 2; i < argc; i++) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc)
                usage();
            return argv[++i];
        };
        if (a == "--seconds")
            o.seconds = std::stod(next());
        else if (a == "--harvest-drain") {
            auto v = next();
            if (v != "on" && v != "off")
                usage();
            o.harvest_drain = v == "on";
        } else if (a == "--rate")
            o.rate = std::stod(next());
        else if (a == "--loop")
            o.loop = next();
        else if (a == "--drain")
            o.drain = std::stoull(next());
        else if (a == "--clients") {
            o.clients = std::stoull(next());
            o.n_clients = o.clients;
        } else if (a == "--flows")
            o.n_flows = std::stoull(next());
        else if (a == "--prefill-clients")
            o.prefill_clients = std::stoull(next());
        else if (a == "--prefill-flows")
            o.prefill_flows = std::stoull(next());
        else if (a == "--queue")
            o.queue = uint32_t(std::stoul(next()));
        else if (a == "--ring")
            o.ring = uint32_t(std::stoul(next()));
        else if (a == "--hello")
            o.hello = std::stoul(next());
        else if (a == "--runs")
            o.runs = unsigned(std::stoul(next()));
        else if (a == "--change")
            o.change = std::stod(next());
        else if (a == "--reader") {
            o.reader = next();
            if (o.reader != "full" && o.reader != "changes")
                usage();
        } else if (a == "--samples")
            o.samples = unsigned(std::stoul(next()));
        else if (a == "--rounds")
            o.rounds = unsigned(std::stoul(next()));
        else if (a == "--no-sni")
            o.sni = false;
        else if (a == "--tag")
            o.tag = next();
        else
            usage();
    }
    if (o.loop != "daemon" && o.loop != "tight")
        usage();
    if (o.n_clients == 0 || o.n_flows < o.n_clients || o.runs == 0)
        usage();
    return o;
}

// ---- table: harvest time and est-packet cost ----------------------------------

int table_main(const Options &o)
{
    const uint64_t N = o.n_clients, M = o.n_flows;
    exf::SensorOptions so;
    so.pin = false;
    // Sized as an operator would for that many: the next power of two with
    // room for the LRU's per-CPU free lists (else inserts evict early).
    so.flow_table_size = std::max<uint32_t>(1024, pow2_at_least(M + M / 32 + 1024));
    so.client_table_size = std::max<uint32_t>(256, pow2_at_least(N + N / 32 + 1024));
    double t0 = now_s();
    exf::BpfSensor sensor(so);
    Template tpl = make_template(sensor);
    uint64_t rss_loaded = rss_bytes();
    uint64_t now = mono_ns();
    Filled filled = fill_tables(sensor, tpl, N, M, now);
    double t_fill = now_s() - t0;

    Daemon d;
    // The tracker's records: ClientHellos of the newest TLS flows, up to its
    // capacity (FlowTrackerOptions::max_flows, 65536 by default).
    size_t fed = 0;
    double t_sni = 0;
    if (o.sni) {
        double s0 = now_s();
        std::vector<Bytes> hellos;
        for (unsigned k = 0; k < 64; k++)
            hellos.push_back(exf::test::client_hello(517, sni_of_server(k)));
        size_t cap = d.tracker.options().max_flows;
        std::vector<size_t> pick;
        for (size_t j = M; j-- > 0 && pick.size() < cap;)
            if (filled.flows[j].tls)
                pick.push_back(j);
        std::reverse(pick.begin(), pick.end());
        for (size_t j : pick) {
            auto ev =
                hello_event(filled.flows[j], filled.values[j], hellos[filled.flows[j].server]);
            d.tracker.on_event(ev);
            fed++;
        }
        t_sni = now_s() - s0;
    }
    uint64_t rss_base = rss_bytes();
    std::printf("# table: %llu clients, %llu flows (tables %u / %u entries); fill %.1f s, "
                "tracker fed %zu hellos in %.1f s (%llu parsed); RSS %.1f MiB\n",
                (unsigned long long)N, (unsigned long long)M, so.flow_table_size,
                so.client_table_size, t_fill, fed, t_sni,
                (unsigned long long)d.tracker.stats().hellos_done, double(rss_base) / 1048576);
    std::fflush(stdout);

    auto report = [&](const char *phase, const std::vector<HarvestTiming> &v, uint64_t rss) {
        std::vector<double> rd, rdc, rn, rnc, ev, evc, tot, totc;
        for (auto &t : v) {
            rd.push_back(t.read_s * 1e3);
            rdc.push_back(t.read_cpu * 1e3);
            rn.push_back(t.run_s * 1e3);
            rnc.push_back(t.run_cpu * 1e3);
            ev.push_back(t.eval_s * 1e3);
            evc.push_back(t.eval_cpu * 1e3);
            tot.push_back((t.read_s + t.run_s) * 1e3);
            totc.push_back((t.read_cpu + t.run_cpu + t.eval_cpu) * 1e3);
        }
        const auto &last = v.back();
        std::printf(
            "SCALE test=harvest tag=%s clients=%llu flows=%llu phase=%s runs=%zu "
            "flow_rows=%zu client_rows=%zu read_ms=%s read_cpu_ms=%s run_ms=%s "
            "run_cpu_ms=%s harvest_ms=%s harvest_ms_max=%s eval_ms=%s eval_cpu_ms=%s "
            "eval_cpu_ms_min=%s eval_cpu_ms_max=%s "
            "cpu_ms_per_harvest=%s cpu_pct_at_1s=%s rss_mib=%.1f\n",
            o.tag.c_str(), (unsigned long long)N, (unsigned long long)M, phase, v.size(),
            last.flow_rows, last.client_rows, fmt(median(rd), 2).c_str(),
            fmt(median(rdc), 2).c_str(), fmt(median(rn), 2).c_str(), fmt(median(rnc), 2).c_str(),
            fmt(median(tot), 2).c_str(), fmt(vmax(tot), 2).c_str(), fmt(median(ev), 2).c_str(),
            fmt(median(evc), 2).c_str(), fmt(vmin(evc), 2).c_str(), fmt(vmax(evc), 2).c_str(),
            fmt(median(totc), 2).c_str(), fmt(median(totc) / 10, 2).c_str(), double(rss) / 1048576);
        std::fflush(stdout);
    };

    // First harvests: a fresh harvest stage, aggregator and detector each.
    std::vector<HarvestTiming> first;
    uint64_t rss_first = 0;
    for (unsigned r = 0; r < o.runs; r++) {
        d.reset_harvest_side();
        first.push_back(harvest_once(sensor, d));
        if (first.back().flow_rows != M || first.back().client_rows != N)
            std::printf("# warning: read %zu flows, %zu clients (filled %llu, %llu)\n",
                        first.back().flow_rows, first.back().client_rows, (unsigned long long)M,
                        (unsigned long long)N);
        rss_first = std::max(rss_first, rss_bytes());
    }
    report("first", first, rss_first);
    // --reader changes: the steady harvests read the change log (its first
    // read, a full one, is not timed), with no periodic full read.
    std::unique_ptr<exf::ChangeReader> reader;
    if (o.reader == "changes") {
        reader = std::make_unique<exf::ChangeReader>(sensor, 0);
        harvest_once(sensor, d, reader.get());
    }
    // Steady state, nothing changed.
    std::vector<HarvestTiming> steady0;
    std::vector<double> rc_ms, rc_cpu, rf_ms, rf_cpu, fc_ms;
    for (unsigned r = 0; r < o.runs; r++) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        steady0.push_back(harvest_once(sensor, d, reader.get()));
        // The kernel read's parts, separately (not part of the harvest).
        double w0 = now_s(), c0 = thread_cpu_s();
        auto cl = exf::read_clients(sensor.clients_fd());
        double w1 = now_s(), c1 = thread_cpu_s();
        auto fl = exf::read_flows(sensor.flows_fd());
        double w2 = now_s(), c2 = thread_cpu_s();
        auto fc = exf::read_fcache(sensor.fcache_fd());
        double w3 = now_s();
        rc_ms.push_back((w1 - w0) * 1e3);
        rc_cpu.push_back((c1 - c0) * 1e3);
        rf_ms.push_back((w2 - w1) * 1e3);
        rf_cpu.push_back((c2 - c1) * 1e3);
        fc_ms.push_back((w3 - w2) * 1e3);
    }
    report("steady0", steady0, rss_bytes());
    std::printf("SCALE test=read tag=%s clients=%llu flows=%llu runs=%u read_clients_ms=%s "
                "read_clients_cpu_ms=%s read_flows_ms=%s read_flows_cpu_ms=%s read_fcache_ms=%s\n",
                o.tag.c_str(), (unsigned long long)N, (unsigned long long)M, o.runs,
                fmt(median(rc_ms), 2).c_str(), fmt(median(rc_cpu), 2).c_str(),
                fmt(median(rf_ms), 2).c_str(), fmt(median(rf_cpu), 2).c_str(),
                fmt(median(fc_ms), 2).c_str());
    // Steady state, o.change % of the flows changed before each.
    std::vector<HarvestTiming> steadyc;
    Rng rng(777);
    FrameKit change_kit(517);
    for (unsigned r = 0; r < o.runs; r++) {
        if (reader)
            change_flows_by_packets(sensor, filled, o.change / 100, rng, change_kit);
        else
            change_flows(sensor, filled, o.change / 100, rng, mono_ns());
        steadyc.push_back(harvest_once(sensor, d, reader.get()));
    }
    char phase[32];
    std::snprintf(phase, sizeof phase, "steady%g", o.change);
    uint64_t rss_steady = rss_bytes();
    report(phase, steadyc, rss_steady);
    // What stays once malloc hands back its free memory (the harvest's
    // transient vectors and maps): the live state.
    malloc_trim(0);
    uint64_t rss_trim = rss_bytes();

    using exf::agg::EntityKind;
    std::printf("SCALE test=memory tag=%s clients=%llu flows=%llu agg_clients=%zu "
                "agg_client_table_b_per_client=%.1f agg_total_b_per_client=%.1f "
                "rss_growth_b_per_client=%.1f rss_growth_b_per_flow=%.1f rss_mib=%.1f "
                "trimmed_growth_b_per_client=%.1f trimmed_growth_b_per_flow=%.1f "
                "rss_trimmed_mib=%.1f rss_loaded_mib=%.1f rss_base_mib=%.1f tracker_records=%zu\n",
                o.tag.c_str(), (unsigned long long)N, (unsigned long long)M,
                d.aggregator->size(EntityKind::client),
                double(d.aggregator->memory_bytes(EntityKind::client)) / double(N),
                double(d.aggregator->memory_bytes()) / double(N),
                double(rss_steady > rss_base ? rss_steady - rss_base : 0) / double(N),
                double(rss_steady > rss_base ? rss_steady - rss_base : 0) / double(M),
                double(rss_steady) / 1048576,
                double(rss_trim > rss_base ? rss_trim - rss_base : 0) / double(N),
                double(rss_trim > rss_base ? rss_trim - rss_base : 0) / double(M),
                double(rss_trim) / 1048576, double(rss_loaded) / 1048576,
                double(rss_base) / 1048576, d.tracker.size());
    std::fflush(stdout);

    // ---- established-packet cost with tables this size
    exf::CpuPin pin;
    exf::bench::EmptyProgram empty;
    FrameKit kit(517);
    std::vector<size_t> open;
    for (size_t j = 0; j < filled.flows.size(); j++)
        if (filled.flows[j].tls && !filled.flows[j].closed)
            open.push_back(j);
    Rng prng(4242);
    std::vector<Bytes> frames;
    unsigned S = unsigned(std::min<size_t>(o.samples, open.size()));
    // Distinct flows in random order (a partial Fisher-Yates shuffle).
    for (unsigned i = 0; i < S; i++) {
        std::swap(open[i], open[i + size_t(prng.below(open.size() - i))]);
        const FilledFlow &ff = filled.flows[open[i]];
        frames.push_back(kit.frame(FrameKit::data, ff.client, ff.cport, ff.server));
    }
    int ing = sensor.ingress_fd(), efd = empty.fd();
    auto h0 = exf::read_health(sensor.health_fd());
    // Warm-up: one pass.
    for (auto &f : frames) {
        run_frame(ing, f);
        run_frame(efd, f);
    }
    std::vector<double> round_real, round_empty, round_diff;
    for (unsigned r = 0; r < o.rounds; r++) {
        std::vector<double> re, em, df;
        for (size_t i = 0; i < frames.size(); i++) {
            uint32_t a = 0, b = 0;
            if ((i + r) % 2 == 0) {
                run_frame(ing, frames[i], 1, &a);
                run_frame(efd, frames[i], 1, &b);
            } else {
                run_frame(efd, frames[i], 1, &b);
                run_frame(ing, frames[i], 1, &a);
            }
            re.push_back(a);
            em.push_back(b);
            df.push_back(double(a) - double(b));
        }
        round_real.push_back(median(re));
        round_empty.push_back(median(em));
        round_diff.push_back(median(df));
    }
    auto h1 = exf::read_health(sensor.health_fd());
    uint64_t flow_new = h1[EXF_C_FLOW_NEW] - h0[EXF_C_FLOW_NEW];
    uint64_t client_fail = h1[EXF_C_CLIENT_UPDATE_FAIL] - h0[EXF_C_CLIENT_UPDATE_FAIL];
    std::printf("SCALE test=pktcost tag=%s clients=%llu flows=%llu case=spread samples=%u "
                "rounds=%u real_ns=%s empty_ns=%s diff_ns=%s diff_round_min=%s "
                "diff_round_max=%s flow_new=%llu client_update_fail=%llu\n",
                o.tag.c_str(), (unsigned long long)N, (unsigned long long)M, S, o.rounds,
                fmt(median(round_real)).c_str(), fmt(median(round_empty)).c_str(),
                fmt(median(round_diff)).c_str(),
                fmt(*std::min_element(round_diff.begin(), round_diff.end())).c_str(),
                fmt(vmax(round_diff)).c_str(), (unsigned long long)flow_new,
                (unsigned long long)client_fail);
    // One flow re-run in the kernel: the flow-cache fast path (bpf_cost's
    // tls_est_* cases), for comparison in the same process.
    {
        const Bytes &f = frames[0];
        const uint32_t rep = 200000;
        std::vector<double> re, em;
        run_frame(ing, f, rep / 10);
        run_frame(efd, f, rep / 10);
        for (unsigned r = 0; r < o.rounds; r++) {
            uint32_t a = 0, b = 0;
            if (r % 2 == 0) {
                run_frame(ing, f, rep, &a);
                run_frame(efd, f, rep, &b);
            } else {
                run_frame(efd, f, rep, &b);
                run_frame(ing, f, rep, &a);
            }
            re.push_back(a);
            em.push_back(b);
        }
        std::printf("SCALE test=pktcost tag=%s clients=%llu flows=%llu case=hot repeat=%u "
                    "rounds=%u real_ns=%s empty_ns=%s diff_ns=%s\n",
                    o.tag.c_str(), (unsigned long long)N, (unsigned long long)M, rep, o.rounds,
                    fmt(median(re)).c_str(), fmt(median(em)).c_str(),
                    fmt(median(re) - median(em)).c_str());
    }
    std::fflush(stdout);
    return 0;
}

// ---- events ------------------------------------------------------------------

struct Producer {
    exf::BpfSensor &sensor;
    FrameKit kit;
    uint64_t n_clients;
    uint64_t next = 0;  // flows run so far
    explicit Producer(exf::BpfSensor &s, size_t hello, uint64_t clients)
        : sensor(s), kit(hello), n_clients(clients)
    {}
    // One TLS flow: SYN, ClientHello, RST (a hello and a flow-end event).
    void flow()
    {
        uint64_t f = next++;
        uint64_t c = f % n_clients, ord = f / n_clients;
        unsigned k = 64 + unsigned(mix64(f) % 64);
        uint16_t port = uint16_t(1024 + ord % 64000);
        if (ord >= 64000)
            k = 64 + unsigned((k + ord / 64000) % 64);
        int fd = sensor.ingress_fd();
        run_frame(fd, kit.frame(FrameKit::syn, c, port, k));
        run_frame(fd, kit.frame(FrameKit::hello, c, port, k));
        run_frame(fd, kit.frame(FrameKit::rst, c, port, k));
    }
};

int events_main(const Options &o)
{
    exf::SensorOptions so;
    so.pin = false;
    uint64_t ev_bytes_per_flow =
        (o.hello <= EXF_CHUNK_SMALL ? EXF_HELLO_EVENT_HDR_SIZE + EXF_CHUNK_SMALL
                                    : sizeof(exf_hello_event)) +
        8 + sizeof(exf_flow_end_event) + 8;
    so.ringbuf_bytes = o.ring;
    if (o.drain)
        so.ringbuf_bytes =
            std::max<uint32_t>(o.ring, pow2_at_least(o.drain * ev_bytes_per_flow * 5 / 4));
    if (o.prefill_flows) {
        so.flow_table_size =
            std::max<uint32_t>(1024, pow2_at_least(o.prefill_flows + o.prefill_flows / 32 + 1024));
        so.client_table_size = std::max<uint32_t>(
            256, pow2_at_least(o.prefill_clients + o.prefill_clients / 32 + 1024));
    }
    exf::BpfSensor sensor(so);
    uint64_t pool = o.clients;
    if (o.prefill_flows) {
        Template tpl = make_template(sensor);
        fill_tables(sensor, tpl, o.prefill_clients, o.prefill_flows, mono_ns());
        pool = o.prefill_clients;  // new flows from the same clients
    }
    Daemon d;
    d.cfg.bpf = so;
    d.cfg.event_queue_size = o.queue;
    // The daemon's reader (the change log) unless --reader full.
    std::unique_ptr<exf::ChangeReader> reader;
    if (o.reader != "full")
        reader = std::make_unique<exf::ChangeReader>(sensor);
    if (o.prefill_flows) {
        // The prefilled flows' first harvest (all of them new) before the
        // clock starts: the run measures steady-state harvests.
        auto t = harvest_once(sensor, d, reader.get());
        std::printf(
            "# prefill: %zu flows, %zu clients; first harvest %.0f ms + evaluation %.0f ms\n",
            t.flow_rows, t.client_rows, (t.read_s + t.run_s) * 1e3, t.eval_s * 1e3);
    }
    exf::EventQueue queue(o.queue);
    Producer prod(sensor, o.hello, pool);
    auto h0 = exf::read_health(sensor.health_fd());

    uint64_t events_popped = 0;
    auto on_event = [&d](std::span<const uint8_t> e) { d.tracker.on_event(e); };
    std::vector<double> harvest_ms, harvest_cpu_ms, eval_ms;
    double main_busy = 0;  // main thread CPU in pop + harvest + evaluate
    uint64_t harvest_drained = 0, harvest_drain_full = 0;
    size_t full_reads = 0;  // harvests that read the whole tables
    double pop_cpu = 0;

    // The daemon's main loop (apps/daemon.cpp), without the control
    // socket: ControlServer::serve(50 ms) without requests is a 50 ms wait.
    auto next_harvest = Clock::now() + std::chrono::seconds(1);
    auto next_eval = Clock::now() + std::chrono::milliseconds(d.cfg.detect.interval_ms);
    auto loop_once = [&](bool daemon_loop) {
        if (daemon_loop)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        double c0 = thread_cpu_s();
        size_t n = queue.pop_all(on_event);
        events_popped += n;
        double c1 = thread_cpu_s();
        pop_cpu += c1 - c0;
        if (daemon_loop) {
            auto now = Clock::now();
            if (now >= next_harvest) {
                double w = now_s(), cpu = 0;
                auto work = [&] {
                    double c = thread_cpu_s();
                    (void)exf::read_health(sensor.health_fd());
                    exf::TableChanges changes;
                    if (reader)
                        changes = reader->read();
                    else
                        changes.tables = sensor.tables();
                    full_reads += changes.full;
                    d.harvest->run(*d.aggregator, changes, d.tracker, mono_ms());
                    cpu = thread_cpu_s() - c;
                };
                if (o.harvest_drain) {
                    // As the daemon's harvest_now(): the queue is drained meanwhile.
                    auto r = exf::run_draining(
                        work, [&](const exf::EventFn &fn) { return queue.pop_all(fn); }, on_event,
                        exf::kHarvestDrainBytes);
                    events_popped += r.staged;
                    harvest_drained += r.staged;
                    harvest_drain_full += r.limit_reached;
                } else {
                    work();
                }
                harvest_ms.push_back((now_s() - w) * 1e3);
                harvest_cpu_ms.push_back(cpu * 1e3);
                next_harvest = now + std::chrono::milliseconds(d.cfg.harvest_interval_ms);
            }
            if (now >= next_eval) {
                double w = now_s();
                d.evaluate();
                eval_ms.push_back((now_s() - w) * 1e3);
                next_eval = now + std::chrono::milliseconds(d.cfg.detect.interval_ms);
            }
        } else if (!n) {
            std::this_thread::yield();
        }
        main_busy += thread_cpu_s() - c0;
    };

    const bool daemon_loop = o.loop == "daemon";
    std::string kind = o.drain ? "drain" : "concurrent";
    double prod_s = 0, consume_s = 0, events_at_prod_end = 0, hellos_at_prod_end = 0;
    uint64_t flows = 0;
    double cpu0 = process_cpu_s(), main0 = thread_cpu_s();
    if (o.drain) {
        // Fill the ring buffer first, nobody reading.
        {
            std::thread t([&] {
                pin_to(0);
                for (uint64_t i = 0; i < o.drain; i++)
                    prod.flow();
            });
            t.join();
        }
        flows = prod.next;
        auto h = exf::read_health(sensor.health_fd());
        uint64_t produced = (h[EXF_C_HELLO_EVENTS] - h0[EXF_C_HELLO_EVENTS]) +
                            (h[EXF_C_END_EVENTS] - h0[EXF_C_END_EVENTS]);
        cpu0 = process_cpu_s();
        main0 = thread_cpu_s();
        double w0 = now_s();
        {
            exf::EventConsumer consumer(sensor.events_fd(), queue);
            double last_progress = now_s();
            uint64_t last = 0;
            while (d.tracker.stats().events + queue.dropped() < produced) {
                loop_once(daemon_loop);
                if (d.tracker.stats().events != last) {
                    last = d.tracker.stats().events;
                    last_progress = now_s();
                } else if (now_s() - last_progress > 3) {
                    break;
                }
            }
            consume_s = now_s() - w0;
        }
        events_at_prod_end = 0;
    } else {
        std::atomic<bool> stop{false};
        std::atomic<uint64_t> produced_flows{0};
        exf::EventConsumer consumer(sensor.events_fd(), queue);
        double w0 = now_s();
        std::thread t([&] {
            pin_to(0);
            double start = now_s();
            while (!stop.load(std::memory_order_relaxed)) {
                if (o.rate > 0) {
                    // Paced: flow i is due at start + i / rate.
                    double due = start + double(prod.next) / o.rate;
                    double now = now_s();
                    if (now < due) {
                        if (due - now > 0.0002)
                            std::this_thread::sleep_for(std::chrono::duration<double>(due - now));
                        continue;
                    }
                }
                prod.flow();
                if ((prod.next & 63) == 0)
                    produced_flows.store(prod.next, std::memory_order_relaxed);
            }
            produced_flows.store(prod.next);
        });
        while (now_s() - w0 < o.seconds)
            loop_once(daemon_loop);
        stop = true;
        t.join();
        prod_s = now_s() - w0;
        flows = produced_flows.load();
        events_at_prod_end = double(d.tracker.stats().events);
        hellos_at_prod_end = double(d.tracker.stats().hellos_done);
        // What is still on its way: ring buffer, queue (up to 3 s).
        auto h = exf::read_health(sensor.health_fd());
        uint64_t produced = (h[EXF_C_HELLO_EVENTS] - h0[EXF_C_HELLO_EVENTS]) +
                            (h[EXF_C_END_EVENTS] - h0[EXF_C_END_EVENTS]);
        double dl = now_s();
        while (d.tracker.stats().events + queue.dropped() < produced && now_s() - dl < 3)
            loop_once(daemon_loop);
        consume_s = now_s() - w0;
    }
    double main_cpu = thread_cpu_s() - main0;
    double proc_cpu = process_cpu_s() - cpu0;
    auto h1 = exf::read_health(sensor.health_fd());
    uint64_t hello_ev = h1[EXF_C_HELLO_EVENTS] - h0[EXF_C_HELLO_EVENTS];
    uint64_t end_ev = h1[EXF_C_END_EVENTS] - h0[EXF_C_END_EVENTS];
    uint64_t rb_full = h1[EXF_C_RB_FULL] - h0[EXF_C_RB_FULL];
    const auto &ts = d.tracker.stats();
    double processed_s = o.drain ? double(ts.events) / consume_s : events_at_prod_end / prod_s;
    char rate[32];
    std::snprintf(rate, sizeof rate, "%g", o.rate);
    std::printf("SCALE test=events tag=%s kind=%s loop=%s rate=%s queue=%u ring=%u hello=%zu "
                "prefill_clients=%llu prefill_flows=%llu flows=%llu produce_s=%.2f consume_s=%.2f "
                "offered_flows_s=%.0f kernel_events=%llu kernel_events_s=%.0f rb_full=%llu "
                "queue_received=%llu queue_dropped=%llu queue_waited=%llu tracker_events=%llu "
                "hellos_done=%llu bad_events=%llu events_s=%.0f hellos_s=%.0f main_cpu_s=%.2f "
                "process_cpu_s=%.2f main_us_per_event=%.2f pop_us_per_event=%.2f harvests=%zu "
                "harvest_ms_median=%s harvest_ms_max=%s harvest_cpu_ms_median=%s eval_ms_median=%s "
                "harvest_drain=%d harvest_drained=%llu harvest_drain_full=%llu loss_pct=%.2f "
                "rss_mib=%.1f reader=%s full_reads=%zu\n",
                o.tag.c_str(), kind.c_str(), o.loop.c_str(), rate, o.queue, so.ringbuf_bytes,
                o.hello, (unsigned long long)o.prefill_clients, (unsigned long long)o.prefill_flows,
                (unsigned long long)flows, prod_s, consume_s,
                o.drain ? 0.0 : double(flows) / prod_s, (unsigned long long)(hello_ev + end_ev),
                o.drain ? 0.0 : double(hello_ev + end_ev) / prod_s, (unsigned long long)rb_full,
                (unsigned long long)queue.received(), (unsigned long long)queue.dropped(),
                (unsigned long long)queue_waited(queue), (unsigned long long)ts.events,
                (unsigned long long)ts.hellos_done, (unsigned long long)ts.bad_events, processed_s,
                o.drain ? double(ts.hellos_done) / consume_s : hellos_at_prod_end / prod_s,
                main_cpu, proc_cpu, ts.events ? main_cpu * 1e6 / double(ts.events) : NAN,
                ts.events ? pop_cpu * 1e6 / double(ts.events) : NAN, harvest_ms.size(),
                fmt(median(harvest_ms)).c_str(), fmt(vmax(harvest_ms)).c_str(),
                fmt(median(harvest_cpu_ms)).c_str(), fmt(median(eval_ms)).c_str(),
                int(o.harvest_drain), (unsigned long long)harvest_drained,
                (unsigned long long)harvest_drain_full,
                100.0 * double(rb_full + queue.dropped()) /
                    double(std::max<uint64_t>(1, hello_ev + end_ev + rb_full)),
                double(rss_bytes()) / 1048576, reader ? "changes" : "full", full_reads);
    std::fflush(stdout);
    (void)main_busy;
    return 0;
}

}  // namespace

int main(int argc, char **argv)
{
    Options o = parse(argc, argv);
    libbpf_set_print(nullptr);
    spdlog::set_level(spdlog::level::warn);
    try {
        return o.mode == "events" ? events_main(o) : table_main(o);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "scale: %s\n", e.what());
        return 1;
    }
}
