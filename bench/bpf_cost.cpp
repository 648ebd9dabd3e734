// SPDX-License-Identifier: Apache-2.0
// bpf_cost: kernel cost per packet of the sensor's tc program, measured with
// BPF_PROG_TEST_RUN against the empty TC_ACT_OK program (bpf/empty.bpf.c).
//
// Two methods (see bench/RESULTS.md for the reasoning):
//  repeat   - one frame re-run `repeat` times in the kernel (default 1e6);
//             the kernel returns the mean per run. Right for every packet
//             whose path does not change when it is seen again: data packets
//             of an established flow, an untracked UDP packet, a retransmitted
//             SYN. Caches and branch predictors are hot.
//  per-flow - the packets whose cost is a one-off per flow (new-flow SYN,
//             ClientHello with its ring buffer event, QUIC Initial) cannot be
//             repeated: the second run takes another path. Each sample is a
//             fresh 5-tuple: its setup packets (untimed), then the measured
//             packet once (repeat = 1). The kernel's per-run figure then
//             includes one clock read and the loop bookkeeping, which the
//             empty program, run once on the same frame, measures too.
// In both, the real and the empty program alternate run by run (which goes
// first alternates as well), for `rounds` rounds; the figures are medians.
//
// Usage: bpf_cost [--rounds N] [--repeat N] [--flows N] [--cpu N]
//                 [--only SUBSTR] [--object FILE.bpf.o] [--compare FILE.bpf.o]...
//                 [--list]
//  --object runs another build of exfilmon.bpf.c (e.g. a prototype of an
//  optimisation) instead of the embedded one: same cases, same baseline.
//  --compare adds another build, measured in the same rounds as the first
//  (each with its own maps), plus a table of the differences: on a shared
//  machine, figures from separate runs can differ by 20 %, within a run not.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "baseline/empty_program.h"
#include "baseline/older_build.h"
#include "capture/bpf_sensor.h"
#include "capture/events.h"
#include "capture/maps.h"
#include "capture/test_run.h"
#include "common/error.h"
#include "support/packet_builder.h"

#include "bench_util.h"

namespace {

using exf::bench::median;
using exf::bench::rss_bytes;

using exf::test::Bytes;
using exf::test::FrameSpec;
using exf::test::TcpFlag;
using Vlans = std::vector<std::pair<uint16_t, uint16_t>>;

struct Options {
    unsigned rounds = 11;
    uint32_t repeat = 1000000;
    unsigned flows = 1000;  // samples per round of a per-flow case
    int cpu = -1;           // -1: the CPU we start on
    std::string only;
    std::string object;
    std::vector<std::string> compare;  // more objects, measured in the same rounds
    bool list = false;
    std::string command;  // for the BENCH_RESULT lines
    std::string started;
};

[[noreturn]] void usage(const char *argv0)
{
    std::fprintf(stderr,
                 "usage: %s [--rounds N] [--repeat N] [--flows N] [--cpu N] [--only SUBSTR]\n"
                 "          [--object FILE.bpf.o] [--compare FILE.bpf.o]... [--list]\n",
                 argv0);
    std::exit(2);
}

Options parse_args(int argc, char **argv)
{
    Options o;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc)
                usage(argv[0]);
            return argv[++i];
        };
        if (a == "--rounds")
            o.rounds = unsigned(std::stoul(next()));
        else if (a == "--repeat")
            o.repeat = uint32_t(std::stoul(next()));
        else if (a == "--flows")
            o.flows = unsigned(std::stoul(next()));
        else if (a == "--cpu")
            o.cpu = std::stoi(next());
        else if (a == "--only")
            o.only = next();
        else if (a == "--object")
            o.object = next();
        else if (a == "--compare")
            o.compare.push_back(next());
        else if (a == "--list")
            o.list = true;
        else
            usage(argv[0]);
    }
    if (o.rounds == 0 || o.repeat == 0 || o.flows == 0)
        usage(argv[0]);
    return o;
}

// The program under test: the embedded sensor, or another object file.
class Target {
public:
    explicit Target(const std::string &object)
    {
        if (object.empty()) {
            sensor_ = std::make_unique<exf::BpfSensor>(exf::SensorOptions{});
            ingress_ = sensor_->ingress_fd();
            events_ = sensor_->events_fd();
            health_ = sensor_->health_fd();
            return;
        }
        obj_ = bpf_object__open_file(object.c_str(), nullptr);
        if (!obj_)
            exf::throw_errno("open " + object, errno);
        if (int err = bpf_object__load(obj_); err) {
            bpf_object__close(obj_);
            exf::throw_errno("load " + object, err);
        }
        auto *prog = bpf_object__find_program_by_name(obj_, "exf_tc_ingress");
        auto *ev = bpf_object__find_map_by_name(obj_, "exf_events");
        auto *h = bpf_object__find_map_by_name(obj_, "exf_health");
        if (!prog || !ev || !h) {
            bpf_object__close(obj_);
            throw exf::Error(object + ": no exf_tc_ingress, exf_events or exf_health");
        }
        ingress_ = bpf_program__fd(prog);
        events_ = bpf_map__fd(ev);
        health_ = bpf_map__fd(h);
    }
    ~Target()
    {
        if (obj_)
            bpf_object__close(obj_);
    }
    Target(const Target &) = delete;
    Target &operator=(const Target &) = delete;
    int ingress() const { return ingress_; }
    int events() const { return events_; }
    int health() const { return health_; }

private:
    std::unique_ptr<exf::BpfSensor> sensor_;
    bpf_object *obj_ = nullptr;
    int ingress_ = -1, events_ = -1, health_ = -1;
};

// The kernel's mean per run, in whole ns. It leaves out the time the CPU was
// given to other tasks (the kernel stops its clock when it reschedules), which
// a wall clock around the syscall would count: on a shared machine that is
// the difference between a usable figure and noise.
double run(int fd, const Bytes &frame, uint32_t repeat)
{
    exf::TestRunOptions o;
    o.repeat = repeat;
    auto r = exf::run_tc_program(fd, frame, o);
    if (r.err)
        throw exf::Error("BPF_PROG_TEST_RUN: " + std::string(std::strerror(-r.err)), -r.err);
    // A sensor passes every packet: TC_ACT_OK (0) or TC_ACT_UNSPEC (-1).
    if (r.retval != 0 && r.retval != uint32_t(-1))
        throw exf::Error("program returned " + std::to_string(int32_t(r.retval)) +
                         ", not TC_ACT_OK or TC_ACT_UNSPEC");
    return double(r.duration_ns);
}

double mean(const std::vector<double> &v)
{
    return v.empty() ? NAN : std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
}

// ---- frames ----------------------------------------------------------------

constexpr uint32_t kClientIsn = 1000, kServerIsn = 5000;

struct Conn {
    std::string cli, srv;
    uint16_t cport = 40000, sport = 443;
    uint8_t proto = 6;
    Vlans vlans;
    bool v6() const { return cli.find(':') != std::string::npos; }
    // IP + L4 header bytes, for payload sizes giving a wanted IP length.
    size_t hdrs() const { return (v6() ? 40 : 20) + (proto == 6 ? 20 : 8); }
};

Bytes frame(const Conn &c, bool from_client, uint8_t flags, uint32_t seq, uint32_t ack,
            Bytes payload = {})
{
    FrameSpec s;
    s.src = from_client ? c.cli : c.srv;
    s.dst = from_client ? c.srv : c.cli;
    s.sport = from_client ? c.cport : c.sport;
    s.dport = from_client ? c.sport : c.cport;
    s.proto = c.proto;
    s.vlans = c.vlans;
    s.tcp_flags = flags;
    s.seq = seq;
    s.ack = ack;
    s.payload = std::move(payload);
    return exf::test::build_frame(s);
}

Bytes filler(size_t n, uint8_t seed = 0x41)
{
    Bytes b(n);
    for (size_t i = 0; i < n; i++)
        b[i] = uint8_t(seed + i % 23);
    return b;
}

// SYN, SYN-ACK, ACK.
std::vector<Bytes> handshake(const Conn &c)
{
    return {frame(c, true, TcpFlag::SYN, kClientIsn, 0),
            frame(c, false, TcpFlag::SYN | TcpFlag::ACK, kServerIsn, kClientIsn + 1),
            frame(c, true, TcpFlag::ACK, kClientIsn + 1, kServerIsn + 1)};
}

Bytes hello_frame(const Conn &c, size_t hello_len)
{
    return frame(c, true, TcpFlag::PSH | TcpFlag::ACK, kClientIsn + 1, kServerIsn + 1,
                 exf::test::client_hello(hello_len));
}

// Client data after a 517-byte ClientHello; ip_len 0: 10 payload bytes.
Bytes data_frame(const Conn &c, bool from_client, size_t ip_len)
{
    size_t n = ip_len ? ip_len - c.hdrs() : 10;
    return from_client ? frame(c, true, TcpFlag::PSH | TcpFlag::ACK, kClientIsn + 1 + 517,
                               kServerIsn + 1, filler(n))
                       : frame(c, false, TcpFlag::PSH | TcpFlag::ACK, kServerIsn + 1,
                               kClientIsn + 1 + 517, filler(n));
}

std::string v4(unsigned a, unsigned b, unsigned c, unsigned d)
{
    return std::to_string(a) + "." + std::to_string(b) + "." + std::to_string(c) + "." +
           std::to_string(d);
}

// ---- cases -----------------------------------------------------------------

enum class Method { Repeat, PerFlow };
enum class Drain { EachFlow, Batched };

struct Flow {
    std::vector<Bytes> setup;  // run once, untimed
    Bytes measured;
};

struct Case {
    std::string name;
    std::string desc;
    Method method;
    double target = 0;  // ns over the empty program; 0: no target
    Drain drain = Drain::EachFlow;
    std::function<Flow(unsigned idx)> make;  // idx: a fresh 5-tuple per value
};

std::vector<Case> make_cases()
{
    std::vector<Case> cs;
    unsigned client_no = 10;  // each case has its own client address
    auto conn = [&](bool v6, bool vlan, uint16_t sport = 443, uint8_t proto = 6) {
        unsigned k = client_no++;
        Conn c;
        c.cli = v6 ? "2001:db8::" + std::to_string(k) : v4(192, 0, 2, k);
        c.srv = v6 ? "2001:db8:1::1" : "198.51.100.1";
        c.sport = sport;
        c.proto = proto;
        if (vlan)
            c.vlans = {{0x8100, 100}};
        return c;
    };

    // Established TLS flows: handshake + ClientHello in the setup, so the
    // measured packet is plain data on a flow whose hello is done.
    for (bool v6 : {false, true})
        for (bool vlan : {false, true})
            for (size_t ip_len : {size_t(0), size_t(1500)}) {
                Conn c = conn(v6, vlan);
                Flow f{handshake(c), data_frame(c, true, ip_len)};
                f.setup.push_back(hello_frame(c, 517));
                std::string sz = std::to_string(f.measured.size());
                cs.push_back(
                    {"tls_est_" + std::string(v6 ? "v6" : "v4") + (vlan ? "vlan" : "") + "_" + sz,
                     std::string("TLS established, client data, ") + (v6 ? "IPv6" : "IPv4") +
                         (vlan ? " + VLAN" : "") + ", " + sz + " B frame",
                     Method::Repeat, 35, Drain::EachFlow, [f](unsigned) { return f; }});
            }
    {
        Conn c = conn(false, false);
        Flow f{handshake(c), data_frame(c, false, 1500)};
        f.setup.push_back(hello_frame(c, 517));
        cs.push_back({"tls_est_s2c_v4_" + std::to_string(f.measured.size()),
                      "TLS established, server data, IPv4, 1514 B frame", Method::Repeat, 35,
                      Drain::EachFlow, [f](unsigned) { return f; }});
    }
    {
        Conn c = conn(false, false, 443, 17);
        Bytes shorthdr = filler(1200, 0x40);
        shorthdr[0] = 0x40;  // QUIC short header (1-RTT)
        Flow f{{frame(c, true, 0, 0, 0, exf::test::quic_initial(1200)),
                frame(c, true, 0, 0, 0, shorthdr)},
               frame(c, true, 0, 0, 0, shorthdr)};
        cs.push_back({"quic_est_v4_" + std::to_string(f.measured.size()),
                      "QUIC established (1-RTT short header), client datagram, IPv4",
                      Method::Repeat, 35, Drain::EachFlow, [f](unsigned) { return f; }});
    }
    {
        Conn c = conn(false, false);
        Flow f{{}, frame(c, true, TcpFlag::SYN, kClientIsn, 0)};
        cs.push_back({"syn_repeat_v4_" + std::to_string(f.measured.size()),
                      "the same SYN re-run: existing flow, same ISN (a SYN retransmission)",
                      Method::Repeat, 0, Drain::EachFlow, [f](unsigned) { return f; }});
    }
    {
        Conn c = conn(false, false, 80);
        Flow f{handshake(c), data_frame(c, true, 0)};
        f.setup.push_back(frame(c, true, TcpFlag::PSH | TcpFlag::ACK, kClientIsn + 1,
                                kServerIsn + 1, filler(517, 'G')));
        cs.push_back({"tcp80_est_v4_" + std::to_string(f.measured.size()),
                      "non-TLS: TCP port 80 established (flow kind OTHER), client data",
                      Method::Repeat, 0, Drain::EachFlow, [f](unsigned) { return f; }});
    }
    {
        Conn c = conn(false, false, 53, 17);
        Flow f{{}, frame(c, true, 0, 0, 0, filler(40))};
        cs.push_back({"udp53_v4_" + std::to_string(f.measured.size()),
                      "non-TLS: UDP port 53 query (never tracked: flow miss every packet)",
                      Method::Repeat, 0, Drain::EachFlow, [f](unsigned) { return f; }});
    }

    // Per-flow cases: a fresh 5-tuple per sample (client port = 1024 + idx).
    auto per_flow = [&](std::string name, std::string desc, double target, Drain drain, bool v6,
                        std::function<Flow(const Conn &)> mk) {
        Conn base = conn(v6, false);
        cs.push_back({std::move(name), std::move(desc), Method::PerFlow, target, drain,
                      [base, mk](unsigned idx) {
                          Conn c = base;
                          c.cport = uint16_t(1024 + idx);
                          return mk(c);
                      }});
    };
    auto syn_only = [](const Conn &c) {
        return Flow{{}, frame(c, true, TcpFlag::SYN, kClientIsn, 0)};
    };
    per_flow("syn_new_v4", "new-flow SYN, IPv4, client already known", 0, Drain::EachFlow, false,
             syn_only);
    per_flow("syn_new_v6", "new-flow SYN, IPv6, client already known", 0, Drain::EachFlow, true,
             syn_only);
    cs.push_back({"syn_new_client_v4", "new-flow SYN from a never-seen client, IPv4",
                  Method::PerFlow, 0, Drain::EachFlow, [](unsigned idx) {
                      Conn c;
                      c.cli = v4(198, 18 + (idx >> 16 & 1), idx >> 8 & 255, idx & 255);
                      c.srv = "198.51.100.1";
                      return Flow{{}, frame(c, true, TcpFlag::SYN, kClientIsn, 0)};
                  }});
    per_flow("tls_est_v4_64_once",
             "TLS established client data, 64 B, run once per flow (per-flow method baseline)", 0,
             Drain::EachFlow, false, [](const Conn &c) {
                 Flow f{handshake(c), data_frame(c, true, 0)};
                 f.setup.push_back(hello_frame(c, 517));
                 return f;
             });
    for (size_t len : {size_t(517), size_t(250), size_t(1400)})
        per_flow("hello_" + std::to_string(len) + "_v4",
                 "ClientHello " + std::to_string(len) +
                     " B + ring buffer event, IPv4, consumer caught up (wakeup per event)",
                 90, Drain::EachFlow, false, [len](const Conn &c) {
                     return Flow{handshake(c), hello_frame(c, len)};
                 });
    per_flow("hello_517_v4_batched",
             "ClientHello 517 B + ring buffer event, IPv4, consumer behind (no wakeup)", 90,
             Drain::Batched, false, [](const Conn &c) {
                 return Flow{handshake(c), hello_frame(c, 517)};
             });
    per_flow("hello_517_v6", "ClientHello 517 B + ring buffer event, IPv6, consumer caught up", 90,
             Drain::EachFlow, true, [](const Conn &c) {
                 return Flow{handshake(c), hello_frame(c, 517)};
             });
    cs.push_back({"quic_initial_1200_v4",
                  "QUIC Initial 1200 B: new flow + ring buffer event, IPv4, consumer caught up",
                  Method::PerFlow, 90, Drain::EachFlow, [](unsigned idx) {
                      Conn c;
                      c.cli = "192.0.2.200";
                      c.srv = "198.51.100.1";
                      c.proto = 17;
                      c.cport = uint16_t(1024 + idx);
                      return Flow{{}, frame(c, true, 0, 0, 0, exf::test::quic_initial(1200))};
                  }});
    return cs;
}

// ---- measurement -----------------------------------------------------------

struct Result {
    const Case *c;
    size_t frame_len = 0;
    std::vector<double> real, empty;              // per round (repeat) or per sample (per-flow)
    std::vector<double> round_real, round_empty;  // per-round medians (per-flow)
    uint64_t runs = 0;                            // measured runs of the real program
    exf::HealthCounters health{};                 // counter deltas over the measured runs
};

void add_delta(exf::HealthCounters &acc, const exf::HealthCounters &a, const exf::HealthCounters &b)
{
    for (size_t i = 0; i < acc.size(); i++)
        acc[i] += b[i] - a[i];
}

class Bench {
public:
    Bench(const Options &o, Target &t, exf::bench::EmptyProgram &e)
        : o_(o), t_(t), empty_(e),
          reader_(t.events(), [this](std::span<const uint8_t>) { events_++; })
    {}

    void repeat_case(Result &r, const Case &c, int round)
    {
        Flow f = c.make(0);
        if (round < 0) {  // warm-up: set the flow up, run it a little
            for (auto &s : f.setup)
                run(t_.ingress(), s, 1);
            reader_.drain();
            run(t_.ingress(), f.measured, o_.repeat / 10);
            run(empty_.fd(), f.measured, o_.repeat / 10);
            r.frame_len = f.measured.size();
            return;
        }
        bool real_first = round % 2 == 0;
        auto before = exf::bench::read_health_any_build(t_.health());
        double a, b;
        if (real_first) {
            a = run(t_.ingress(), f.measured, o_.repeat);
            b = run(empty_.fd(), f.measured, o_.repeat);
        } else {
            b = run(empty_.fd(), f.measured, o_.repeat);
            a = run(t_.ingress(), f.measured, o_.repeat);
        }
        add_delta(r.health, before, exf::bench::read_health_any_build(t_.health()));
        r.runs += o_.repeat;
        r.real.push_back(a);
        r.empty.push_back(b);
        reader_.drain();
    }

    void per_flow_case(Result &r, const Case &c, int round, unsigned &next_idx)
    {
        unsigned n = round < 0 ? std::min(100u, o_.flows) : o_.flows;
        std::vector<double> rr, ee;
        for (unsigned i = 0; i < n; i++) {
            Flow f = c.make(next_idx++);
            for (auto &s : f.setup)
                run(t_.ingress(), s, 1);
            if (c.drain == Drain::EachFlow)
                reader_.drain();  // consumer caught up when the measured event comes
            auto before = exf::bench::read_health_any_build(t_.health());
            double a, b;
            if (i % 2 == 0) {
                a = run(t_.ingress(), f.measured, 1);
                b = run(empty_.fd(), f.measured, 1);
            } else {
                b = run(empty_.fd(), f.measured, 1);
                a = run(t_.ingress(), f.measured, 1);
            }
            if (round >= 0) {
                add_delta(r.health, before, exf::bench::read_health_any_build(t_.health()));
                r.runs++;
                rr.push_back(a);
                ee.push_back(b);
            }
            if (c.drain == Drain::EachFlow || i % 128 == 127)
                reader_.drain();
            r.frame_len = f.measured.size();
        }
        reader_.drain();
        if (round < 0)
            return;
        r.round_real.push_back(median(rr));
        r.round_empty.push_back(median(ee));
        r.real.insert(r.real.end(), rr.begin(), rr.end());
        r.empty.insert(r.empty.end(), ee.begin(), ee.end());
    }

    uint64_t events() const { return events_; }

private:
    const Options &o_;
    Target &t_;
    exf::bench::EmptyProgram &empty_;
    exf::EventReader reader_;
    uint64_t events_ = 0;
};

std::string fmt(double v, int prec = 0)
{
    if (std::isnan(v))
        return "-";
    char b[64];
    std::snprintf(b, sizeof(b), "%.*f", prec, v);
    return b;
}

void pin(int cpu)
{
    if (cpu < 0)
        cpu = sched_getcpu();
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0)
        exf::throw_errno("pin to CPU " + std::to_string(cpu), errno);
    std::printf("pinned to CPU %d\n", cpu);
}

// Program 1's figure for one case: the difference to the empty program, its
// range over the rounds (paired within each round).
exf::bench::BenchResult bench_result(const Result &r, double diff)
{
    bool rep = r.c->method == Method::Repeat;
    const auto &real = rep ? r.real : r.round_real;
    const auto &empty = rep ? r.empty : r.round_empty;
    exf::bench::BenchResult b{"kernel." + r.c->name, diff, NAN, NAN, 0, "ns", "none"};
    for (size_t i = 0; i < real.size() && i < empty.size(); i++) {
        double d = real[i] - empty[i];
        b.min = b.runs ? std::min(b.min, d) : d;
        b.max = b.runs ? std::max(b.max, d) : d;
        b.runs++;
    }
    if (r.c->target)
        b.target = "<= " + fmt(r.c->target);
    return b;
}

int bench_main(const Options &o)
{
    auto all = make_cases();
    std::vector<const Case *> cases;
    for (auto &c : all)
        if (o.only.empty() || c.name.find(o.only) != std::string::npos)
            cases.push_back(&c);
    if (o.list) {
        for (auto *c : cases)
            std::printf("%-24s %-8s %s\n", c->name.c_str(),
                        c->method == Method::Repeat ? "repeat" : "per-flow", c->desc.c_str());
        return 0;
    }
    if (cases.empty()) {
        std::fprintf(stderr, "no case matches '%s'\n", o.only.c_str());
        return 2;
    }
    if (uint64_t(o.flows) * o.rounds + 100 > 64000) {
        std::fprintf(stderr, "--flows x --rounds must stay under 64000 (client ports)\n");
        return 2;
    }
    libbpf_set_print(nullptr);
    pin(o.cpu);
    exf::bench::EmptyProgram empty;
    std::vector<std::string> names{o.object.empty() ? "embedded" : o.object};
    for (auto &c : o.compare)
        names.push_back(c);
    std::vector<std::unique_ptr<Target>> targets;
    std::vector<std::unique_ptr<Bench>> benches;
    targets.push_back(std::make_unique<Target>(o.object));
    for (auto &c : o.compare)
        targets.push_back(std::make_unique<Target>(c));
    for (auto &t : targets)
        benches.push_back(std::make_unique<Bench>(o, *t, empty));
    for (size_t j = 0; j < names.size(); j++)
        std::printf("program %zu: %s\n", j + 1,
                    names[j] == "embedded" ? "embedded exfilmon.bpf.o" : names[j].c_str());
    std::printf("rounds %u, repeat %u, per-flow samples %u per round\n", o.rounds, o.repeat,
                o.flows);
    std::fflush(stdout);

    size_t nt = targets.size();
    std::vector<std::vector<Result>> res(nt, std::vector<Result>(cases.size()));
    std::vector<std::vector<unsigned>> next_idx(nt, std::vector<unsigned>(cases.size(), 0));
    for (size_t j = 0; j < nt; j++)
        for (size_t i = 0; i < cases.size(); i++)
            res[j][i].c = cases[i];
    for (int round = -1; round < int(o.rounds); round++) {
        // Rotate the case order (and the program order) so slow drifts of the
        // machine spread evenly.
        for (size_t k = 0; k < cases.size(); k++) {
            size_t i = (k + size_t(round + 1)) % cases.size();
            for (size_t m = 0; m < nt; m++) {
                size_t j = (m + size_t(round + 1)) % nt;
                if (cases[i]->method == Method::Repeat)
                    benches[j]->repeat_case(res[j][i], *cases[i], round);
                else
                    benches[j]->per_flow_case(res[j][i], *cases[i], round, next_idx[j][i]);
            }
        }
        std::fprintf(stderr, "round %d/%u done\n", round + 1, o.rounds);
    }

    struct Summary {
        double real, emp, diff;
    };
    auto summarize = [](const Result &r) {
        bool rep = r.c->method == Method::Repeat;
        double real = rep ? median(r.real) : median(r.round_real);
        double emp = rep ? median(r.empty) : median(r.round_empty);
        return Summary{real, emp, real - emp};
    };
    std::vector<std::string> lines;
    std::vector<exf::bench::BenchResult> results;  // program 1's
    for (size_t j = 0; j < nt; j++) {
        if (nt > 1)
            std::printf("\n### program %zu: %s\n", j + 1, names[j].c_str());
        std::printf("\n| case | frame B | method | exfilmon ns | empty ns | difference ns | "
                    "ratio | target | verdict |\n|---|---:|---|---:|---:|---:|---:|---:|---|\n");
        for (auto &r : res[j]) {
            const Case &c = *r.c;
            bool rep = c.method == Method::Repeat;
            auto [real, emp, diff] = summarize(r);
            std::vector<double> paired;
            for (size_t i = 0; i < r.real.size(); i++)
                paired.push_back(r.real[i] - r.empty[i]);
            auto [mn, mx] = std::minmax_element(paired.begin(), paired.end());
            // Spread over rounds of the per-round figure (repeat: the run itself).
            const auto &rounds = rep ? r.real : r.round_real;
            auto [rmn, rmx] = std::minmax_element(rounds.begin(), rounds.end());
            std::string verdict = c.target == 0 ? "-" : diff <= c.target ? "met" : "MISSED";
            std::printf("| %s | %zu | %s | %s | %s | %s | %s | %s | %s |\n", c.name.c_str(),
                        r.frame_len, rep ? "repeat" : "per-flow", fmt(real).c_str(),
                        fmt(emp).c_str(), fmt(diff).c_str(), fmt(real / emp, 2).c_str(),
                        c.target ? ("<= " + fmt(c.target)).c_str() : "-", verdict.c_str());
            double runs = double(r.runs ? r.runs : 1);
            char line[1200];
            std::snprintf(
                line, sizeof(line),
                "BPF_COST program=%zu case=%s method=%s frame=%zu runs=%llu real_ns=%s "
                "empty_ns=%s diff_ns=%s ratio=%s paired_diff_median=%s paired_diff_min=%s "
                "paired_diff_max=%s real_round_min=%s real_round_max=%s real_mean=%s "
                "empty_mean=%s target_ns=%s verdict=%s new_flows_per_run=%s "
                "hello_events_per_run=%s end_events_per_run=%s rb_full=%llu",
                j + 1, c.name.c_str(), rep ? "repeat" : "per-flow", r.frame_len,
                (unsigned long long)r.runs, fmt(real, 1).c_str(), fmt(emp, 1).c_str(),
                fmt(diff, 1).c_str(), fmt(real / emp, 3).c_str(), fmt(median(paired), 1).c_str(),
                fmt(mn == paired.end() ? NAN : *mn, 1).c_str(),
                fmt(mx == paired.end() ? NAN : *mx, 1).c_str(),
                fmt(rmn == rounds.end() ? NAN : *rmn, 1).c_str(),
                fmt(rmx == rounds.end() ? NAN : *rmx, 1).c_str(), fmt(mean(r.real), 1).c_str(),
                fmt(mean(r.empty), 1).c_str(), c.target ? fmt(c.target).c_str() : "-",
                verdict.c_str(), fmt(double(r.health[EXF_C_FLOW_NEW]) / runs, 3).c_str(),
                fmt(double(r.health[EXF_C_HELLO_EVENTS]) / runs, 3).c_str(),
                fmt(double(r.health[EXF_C_END_EVENTS]) / runs, 3).c_str(),
                (unsigned long long)r.health[EXF_C_RB_FULL]);
            lines.push_back(line);
            if (j == 0)
                results.push_back(bench_result(r, diff));
        }
    }
    if (nt > 1) {
        std::printf("\n### difference to the empty program, ns (program 1 = %s)\n\n| case |",
                    names[0].c_str());
        for (size_t j = 0; j < nt; j++)
            std::printf(" program %zu |", j + 1);
        for (size_t j = 1; j < nt; j++)
            std::printf(" %zu vs 1 |", j + 1);
        std::printf("\n|---|");
        for (size_t j = 0; j < 2 * nt - 1; j++)
            std::printf("---:|");
        std::printf("\n");
        for (size_t i = 0; i < cases.size(); i++) {
            double base = summarize(res[0][i]).diff;
            std::printf("| %s |", cases[i]->name.c_str());
            for (size_t j = 0; j < nt; j++)
                std::printf(" %s |", fmt(summarize(res[j][i]).diff).c_str());
            for (size_t j = 1; j < nt; j++) {
                double d = summarize(res[j][i]).diff;
                std::printf(" %s (%s %%) |", fmt(d - base).c_str(),
                            fmt(base ? 100 * (d - base) / base : NAN).c_str());
            }
            std::printf("\n");
        }
    }
    std::printf("\n");
    for (auto &l : lines)
        std::printf("%s\n", l.c_str());
    for (auto &r : results)
        exf::bench::print_result(r, o.started, o.command);
    for (size_t j = 0; j < nt; j++)
        std::printf("program %zu: events read from the ring buffer: %llu\n", j + 1,
                    (unsigned long long)benches[j]->events());
    return 0;
}

}  // namespace

int main(int argc, char **argv)
{
    Options o = parse_args(argc, argv);
    o.command = exf::bench::command_line(argc, argv);
    o.started = exf::bench::utc_now();
    try {
        return bench_main(o);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "bpf_cost: %s\n", e.what());
        return 1;
    }
}
