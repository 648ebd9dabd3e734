// SPDX-License-Identifier: Apache-2.0
// What the change log's read of the changed entries (capture/changes.cpp:
// one bpf(BPF_MAP_LOOKUP_ELEM) per logged key; a client's lookup copies
// nr_cpus values) costs beside the same read done in the kernel by one BPF
// iterator run per chunk of keys (bpf/iter_read.bpf.c: flows copied, clients
// summed over CPUs as sum_client() sums them; in and out through mapped
// arrays). A prototype: the daemon does not use it (docs/datapath.md, "How
// the harvest cost scales with CPUs").
//
//   iter_read [--flows M] [--clients N] [--keys K1,K2,...] [--rounds R]
//             [--chunk C] [--mix both|flows|clients] [--sum-cpus K]
//
// The real sensor's tables (BpfSensor, sized as bench/scale sizes them)
// hold M flows and N clients (per-CPU values differ on every CPU). For each
// K: K/2 flows and K/2 clients picked at random (--mix flows or clients: K
// of one kind), plus 16 of each kind that are not in the tables (the "gone"
// path), read both ways in turn (the order alternating by round); both
// must give the same rows. Printed: per read, µs per key and the reading
// thread's CPU ms (user + kernel), median (min-max) over R rounds, and the
// system calls each way. --sum-cpus K: the iterator sums K per-CPU values
// per client (this machine's CPUs over again), a stand-in for its cost on
// a K-CPU machine; its client rows are then not compared. Also printed:
// whether this kernel loads a map-element iterator (iter/bpf_map_elem).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.h"
#include "capture/bpf_sensor.h"
#include "capture/maps.h"
#include "common/error.h"
#include "exfilmon_shared.h"
#include "iter_read.h"
#include "iter_read.skel.h"

namespace {

struct Options {
    uint32_t flows = 1000000, clients = 1000000;
    std::vector<uint32_t> keys = {50000, 100000};
    unsigned rounds = 5;
    uint32_t chunk = 16384;
    std::string mix = "both";  // both: half flows, half clients; or flows, clients
    unsigned sum_cpus = 0;     // 0: the possible CPUs
};

[[noreturn]] void usage()
{
    std::fprintf(stderr, "usage: iter_read [--flows M] [--clients N] [--keys K1,K2,...] "
                         "[--rounds R] [--chunk C]\n"
                         "                 [--mix both|flows|clients] [--sum-cpus K]\n");
    std::exit(2);
}

std::vector<uint32_t> parse_list(const std::string &s)
{
    std::vector<uint32_t> out;
    std::stringstream in(s);
    std::string item;
    while (std::getline(in, item, ','))
        out.push_back(uint32_t(std::stoul(item)));
    return out;
}

Options parse(int argc, char **argv)
{
    Options o;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (i + 1 >= argc)
            usage();
        std::string v = argv[++i];
        try {
            if (a == "--flows")
                o.flows = uint32_t(std::stoul(v));
            else if (a == "--clients")
                o.clients = uint32_t(std::stoul(v));
            else if (a == "--keys")
                o.keys = parse_list(v);
            else if (a == "--rounds")
                o.rounds = unsigned(std::stoul(v));
            else if (a == "--chunk")
                o.chunk = uint32_t(std::stoul(v));
            else if (a == "--mix")
                o.mix = v;
            else if (a == "--sum-cpus")
                o.sum_cpus = unsigned(std::stoul(v));
            else
                usage();
        } catch (const std::logic_error &) {
            std::fprintf(stderr, "iter_read: %s: not a number: %s\n", a.c_str(), v.c_str());
            std::exit(2);
        }
    }
    bool keys_ok = !o.keys.empty() && std::all_of(o.keys.begin(), o.keys.end(), [&](uint32_t k) {
        return k >= 2 && k <= std::min(o.flows, o.clients);
    });
    bool mix_ok = o.mix == "both" || o.mix == "flows" || o.mix == "clients";
    if (!keys_ok || !mix_ok || o.rounds == 0 || o.chunk == 0 || o.sum_cpus > EXF_ITER_MAX_CPUS) {
        std::fprintf(stderr,
                     "iter_read: each --keys K needs 2 <= K <= the flows and the "
                     "clients; --mix both|flows|clients; --rounds and --chunk at "
                     "least 1; --sum-cpus at most %d\n",
                     EXF_ITER_MAX_CPUS);
        std::exit(2);
    }
    return o;
}

uint32_t pow2_at_least(uint64_t n)
{
    uint64_t p = 1;
    while (p < n)
        p <<= 1;
    return uint32_t(p);
}

// Keys by index, in 2001:db8::/32: flow i from 2001:db8::i to
// 2001:db8:ffff::1 port 443, client i 2001:db8:1::i. Indices past the fill
// are never written.
void put_index(uint8_t *addr, uint16_t net, uint32_t i)
{
    addr[0] = 0x20, addr[1] = 0x01, addr[2] = 0x0d, addr[3] = 0xb8;
    addr[4] = uint8_t(net >> 8), addr[5] = uint8_t(net);
    addr[12] = uint8_t(i >> 24), addr[13] = uint8_t(i >> 16);
    addr[14] = uint8_t(i >> 8), addr[15] = uint8_t(i);
}

exf_flow_key flow_key(uint32_t i)
{
    exf_flow_key k{};
    put_index(k.lo_addr, 0, i);
    put_index(k.hi_addr, 0xffff, 1);
    k.lo_port = uint16_t(1024 + i % 60000);
    k.hi_port = 443;
    k.proto = 6;
    return k;
}

exf_client_key client_key(uint32_t i)
{
    exf_client_key k{};
    put_index(k.addr, 1, i);
    return k;
}

exf_flow_key logged_client(const exf_client_key &c)
{
    exf_flow_key k{};
    std::memcpy(k.lo_addr, c.addr, sizeof(c.addr));
    k.proto = EXF_CHG_CLIENT;
    return k;
}

// Values that tell every field and every CPU apart (the sums are checked).
exf_flow flow_value(uint32_t i)
{
    exf_flow f{};
    f.first_ns = 1000000000ull + i;
    f.last_ns = f.first_ns + 5000;
    f.pkts[0] = i % 97 + 1, f.pkts[1] = i % 89 + 2;
    f.bytes[0] = f.pkts[0] * 80, f.bytes[1] = f.pkts[1] * 1400;
    f.kind = EXF_KIND_TLS;
    f.epoch = 7;  // the change mark: flow_row() zeroes it, and so must the iterator
    f.requests = i % 13;
    return f;
}

exf_client_stats client_value(uint32_t i, unsigned cpu)
{
    exf_client_stats s{};
    s.tls_flows_opened = i % 7 + cpu;
    s.tls_flows_closed = i % 3;
    s.pkts_in = i % 101 + cpu * 1000;
    s.pkts_out = i % 103 + cpu;
    s.bytes_in = s.pkts_in * 80;
    s.bytes_out = s.pkts_out * 1400;
    s.last_ns = 2000000000ull + i * 10 + cpu;
    s.first_ns = cpu == 0 ? 1000000000ull + i : 0;
    s.epoch = 5 + cpu;
    s.requests = i % 11 + cpu;
    return s;
}

template <class K, class V>
void fill(int fd, uint32_t n, K (*key)(uint32_t), const std::function<void(uint32_t, V *)> &value,
          unsigned width, const char *what)
{
    const uint32_t chunk = 8192;
    std::vector<K> keys(chunk);
    std::vector<V> vals(size_t(chunk) * width);
    for (uint32_t at = 0; at < n; at += chunk) {
        uint32_t count = std::min(chunk, n - at);
        for (uint32_t x = 0; x < count; x++) {
            keys[x] = key(at + x);
            value(at + x, &vals[size_t(x) * width]);
        }
        LIBBPF_OPTS(bpf_map_batch_opts, opts);
        if (bpf_map_update_batch(fd, keys.data(), vals.data(), &count, &opts) != 0)
            exf::throw_errno(what, errno);
    }
}

// What a read gives the harvest (as ChangeReader's read of changed keys).
struct Rows {
    std::vector<exf::FlowRow> flows;
    std::vector<exf::ClientRow> clients;
    std::vector<exf_flow_key> flows_gone;
    std::vector<exf_client_key> clients_gone;
};

struct KeySet {
    std::vector<exf_client_key> clients;
    std::vector<exf_flow_key> flows;
};

// The per-key read, as ChangeReader::read_clients_by_key and
// read_flows_by_key do it.
Rows read_per_key(const exf::BpfSensor &s, const KeySet &keys, unsigned ncpu)
{
    Rows out;
    std::vector<exf_client_stats> vals(ncpu);
    for (const auto &k : keys.clients) {
        if (bpf_map_lookup_elem(s.clients_fd(), &k, vals.data()) == 0)
            out.clients.push_back(exf::sum_client(k, vals.data(), ncpu));
        else if (errno == ENOENT)
            out.clients_gone.push_back(k);
        else
            exf::throw_errno("read the client table", errno);
    }
    exf_flow f;
    for (const auto &k : keys.flows) {
        if (bpf_map_lookup_elem(s.flows_fd(), &k, &f) == 0)
            out.flows.push_back(exf::flow_row(k, f));
        else if (errno == ENOENT)
            out.flows_gone.push_back(k);
        else
            exf::throw_errno("read the flow table", errno);
    }
    return out;
}

// The sensor's maps the iterator does not read are not created.
void skip_other_maps(iter_read *skel)
{
    for (bpf_map *m : {skel->maps.exf_fcache, skel->maps.exf_fc_gen, skel->maps.exf_change_ctl,
                       skel->maps.exf_changes, skel->maps.exf_health, skel->maps.exf_events})
        bpf_map__set_autocreate(m, false);
}

// Whether this kernel loads an iter/bpf_map_elem program (the iterator
// that would run once per key and write into the seq_file).
std::string probe_map_elem_iterator()
{
    iter_read *skel = iter_read__open();
    if (!skel)
        return std::string("cannot open the object: ") + strerror(errno);
    skip_other_maps(skel);
    bpf_map__set_autocreate(skel->maps.exf_flows, false);
    bpf_map__set_autocreate(skel->maps.exf_clients, false);
    bpf_program__set_autoload(skel->progs.exf_iter_read, false);
    libbpf_print_fn_t old = libbpf_set_print(nullptr);
    int err = iter_read__load(skel);
    libbpf_set_print(old);
    iter_read__destroy(skel);
    return err ? std::string("refused: ") + strerror(-err) : "loads";
}

// The iterator read: the keys copied into the mapped input, one iterator
// run per chunk (create, read, close), the rows taken from the mapped
// output.
class IterReader {
public:
    IterReader(const exf::BpfSensor &s, uint32_t capacity, uint32_t chunk, unsigned sum_cpus)
        : capacity_(capacity), chunk_(chunk)
    {
        skel_ = iter_read__open();
        if (!skel_)
            exf::throw_errno("open the iterator object", errno);
        configure(s, sum_cpus);
        if (int err = iter_read__load(skel_))
            exf::throw_errno("load the iterator program", -err);
        keys_ =
            static_cast<exf_flow_key *>(map_out(skel_->maps.exf_iter_keys, sizeof(exf_flow_key)));
        rows_ = static_cast<const exf_iter_row *>(
            map_out(skel_->maps.exf_iter_rows, sizeof(exf_iter_row)));
        union bpf_iter_link_info info {};
        info.task.tid = uint32_t(gettid());  // one task: one program run per read
        LIBBPF_OPTS(bpf_iter_attach_opts, opts, .link_info = &info, .link_info_len = sizeof(info));
        link_ = bpf_program__attach_iter(skel_->progs.exf_iter_read, &opts);
        if (!link_)
            exf::throw_errno("attach the iterator", errno);
    }
    ~IterReader()
    {
        bpf_link__destroy(link_);
        if (keys_)
            munmap(keys_, size_t(capacity_) * sizeof(exf_flow_key));
        if (rows_)
            munmap(const_cast<exf_iter_row *>(rows_), size_t(capacity_) * sizeof(exf_iter_row));
        iter_read__destroy(skel_);
    }
    IterReader(const IterReader &) = delete;
    IterReader &operator=(const IterReader &) = delete;

    uint32_t runs_for(size_t keys) const { return uint32_t((keys + chunk_ - 1) / chunk_); }

    Rows read(const KeySet &keys)
    {
        uint32_t n = 0;
        for (const auto &c : keys.clients)
            keys_[n++] = logged_client(c);
        for (const auto &f : keys.flows)
            keys_[n++] = f;
        for (uint32_t first = 0; first < n; first += chunk_)
            run(first, std::min(chunk_, n - first));
        Rows out;
        for (uint32_t i = 0; i < n; i++)
            take(rows_[i], out);
        return out;
    }

private:
    void configure(const exf::BpfSensor &s, unsigned sum_cpus)
    {
        // The sensor's tables; none of its other maps.
        if (bpf_map__reuse_fd(skel_->maps.exf_flows, s.flows_fd()) ||
            bpf_map__reuse_fd(skel_->maps.exf_clients, s.clients_fd()))
            exf::throw_errno("reuse the sensor's tables", errno);
        skip_other_maps(skel_);
        bpf_program__set_autoload(skel_->progs.exf_iter_elem_probe, false);
        bpf_map__set_max_entries(skel_->maps.exf_iter_keys, capacity_);
        bpf_map__set_max_entries(skel_->maps.exf_iter_rows, capacity_);
        unsigned ncpu = exf::possible_cpus();
        if (ncpu > EXF_ITER_MAX_CPUS)
            throw exf::Error("more possible CPUs than the iterator sums");
        skel_->rodata->exf_iter_ncpu = ncpu;
        skel_->rodata->exf_iter_sum_cpus = sum_cpus;
    }

    void *map_out(bpf_map *m, size_t value_size)
    {
        void *p = mmap(nullptr, size_t(capacity_) * value_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                       bpf_map__fd(m), 0);
        if (p == MAP_FAILED)
            exf::throw_errno("map the iterator's arrays", errno);
        return p;
    }

    void run(uint32_t first, uint32_t count)
    {
        skel_->bss->exf_iter_first = first;
        skel_->bss->exf_iter_count = count;
        int fd = bpf_iter_create(bpf_link__fd(link_));
        if (fd < 0)
            exf::throw_errno("create the iterator", errno);
        uint32_t done = 0;
        ssize_t got = ::read(fd, &done, sizeof(done));
        int err = errno;
        close(fd);
        if (got != ssize_t(sizeof(done)))
            exf::throw_errno("run the iterator", got < 0 ? err : EIO);
        if (done != count)
            throw exf::Error("the iterator read " + std::to_string(done) + " of " +
                             std::to_string(count) + " keys");
    }

    static void take(const exf_iter_row &r, Rows &out)
    {
        if (r.key.proto == EXF_CHG_CLIENT) {
            exf_client_key k;
            std::memcpy(k.addr, r.key.lo_addr, sizeof(k.addr));
            if (r.found)
                out.clients.push_back({k, r.v.client});
            else
                out.clients_gone.push_back(k);
        } else if (r.found) {
            out.flows.push_back({r.key, r.v.flow});
        } else {
            out.flows_gone.push_back(r.key);
        }
    }

    iter_read *skel_ = nullptr;
    bpf_link *link_ = nullptr;
    exf_flow_key *keys_ = nullptr;
    const exf_iter_row *rows_ = nullptr;
    uint32_t capacity_, chunk_;
};

template <class T>
bool same_bytes(const std::vector<T> &a, const std::vector<T> &b)
{
    return a.size() == b.size() &&
           (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

bool same_rows(const Rows &a, const Rows &b, bool clients_too)
{
    return same_bytes(a.flows, b.flows) && same_bytes(a.flows_gone, b.flows_gone) &&
           (!clients_too ||
            (same_bytes(a.clients, b.clients) && same_bytes(a.clients_gone, b.clients_gone)));
}

template <class K>
void sort_keys(std::vector<K> &keys)  // the change log's order (sorted, unique)
{
    std::sort(keys.begin(), keys.end(),
              [](const K &a, const K &b) { return std::memcmp(&a, &b, sizeof(K)) < 0; });
}

KeySet pick(uint32_t n_keys, const Options &o, std::mt19937 &rng)
{
    KeySet ks;
    std::vector<uint32_t> f(o.flows), c(o.clients);
    for (uint32_t i = 0; i < o.flows; i++)
        f[i] = i;
    for (uint32_t i = 0; i < o.clients; i++)
        c[i] = i;
    std::shuffle(f.begin(), f.end(), rng);
    std::shuffle(c.begin(), c.end(), rng);
    uint32_t n_flows = o.mix == "both" ? n_keys / 2 : o.mix == "flows" ? n_keys : 0;
    uint32_t n_clients = o.mix == "both" ? n_keys / 2 : o.mix == "clients" ? n_keys : 0;
    for (uint32_t i = 0; i < n_flows; i++)
        ks.flows.push_back(flow_key(f[i]));
    for (uint32_t i = 0; i < n_clients; i++)
        ks.clients.push_back(client_key(c[i]));
    for (uint32_t i = 0; i < 16; i++) {  // gone since they were logged
        ks.flows.push_back(flow_key(o.flows + i));
        ks.clients.push_back(client_key(o.clients + i));
    }
    sort_keys(ks.flows);
    sort_keys(ks.clients);
    return ks;
}

struct Cost {
    double us_per_key, cpu_ms;
};

double thread_cpu_ms()
{
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return double(t.tv_sec) * 1e3 + double(t.tv_nsec) / 1e6;
}

template <class F>
Cost timed(size_t keys, Rows &rows, F &&read)
{
    auto t0 = std::chrono::steady_clock::now();
    double c0 = thread_cpu_ms();
    rows = read();
    double cpu = thread_cpu_ms() - c0;
    double us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    return {us / double(keys), cpu};
}

std::string stat(const std::vector<double> &v, const char *fmt)
{
    char b[128], lo[32], hi[32], med[32];
    std::snprintf(med, sizeof(med), fmt, exf::bench::median(v));
    std::snprintf(lo, sizeof(lo), fmt, *std::min_element(v.begin(), v.end()));
    std::snprintf(hi, sizeof(hi), fmt, *std::max_element(v.begin(), v.end()));
    std::snprintf(b, sizeof(b), "%s (%s-%s)", med, lo, hi);
    return b;
}

int run(const Options &o)
{
    exf::SensorOptions so;
    so.flow_table_size = pow2_at_least(o.flows + o.flows / 32 + 1024);
    so.client_table_size = pow2_at_least(o.clients + o.clients / 32 + 1024);
    exf::BpfSensor sensor(so);
    const unsigned ncpu = exf::possible_cpus();
    fill<exf_flow_key, exf_flow>(
        sensor.flows_fd(), o.flows, flow_key, [](uint32_t i, exf_flow *v) { *v = flow_value(i); },
        1, "fill the flow table");
    fill<exf_client_key, exf_client_stats>(
        sensor.clients_fd(), o.clients, client_key,
        [ncpu](uint32_t i, exf_client_stats *v) {
            for (unsigned c = 0; c < ncpu; c++)
                v[c] = client_value(i, c);
        },
        ncpu, "fill the client table");
    uint32_t most = *std::max_element(o.keys.begin(), o.keys.end()) + 32;
    unsigned sum_cpus = o.sum_cpus ? o.sum_cpus : ncpu;
    IterReader iter(sensor, most, o.chunk, sum_cpus);

    std::mt19937 rng(20);
    std::vector<KeySet> sets;
    for (uint32_t k : o.keys)
        sets.push_back(pick(k, o, rng));
    std::vector<std::vector<Cost>> per_key(sets.size()), by_iter(sets.size());
    for (unsigned r = 0; r < o.rounds; r++)
        for (size_t s = 0; s < sets.size(); s++) {
            size_t n = sets[s].flows.size() + sets[s].clients.size();
            Rows a, b;
            auto one = [&] {
                per_key[s].push_back(
                    timed(n, a, [&] { return read_per_key(sensor, sets[s], ncpu); }));
            };
            auto two = [&] {
                by_iter[s].push_back(timed(n, b, [&] { return iter.read(sets[s]); }));
            };
            if (r % 2) {
                two();
                one();
            } else {
                one();
                two();
            }
            if (!same_rows(a, b, sum_cpus == ncpu))
                throw exf::Error("the iterator's rows differ from the per-key lookups' (" +
                                 std::to_string(n) + " keys, round " + std::to_string(r) + ")");
        }

    std::printf("| changed keys (flows + clients) | read | system calls | µs per key | CPU ms "
                "per read |\n|---|---|---:|---:|---:|\n");
    for (size_t s = 0; s < sets.size(); s++) {
        size_t n = sets[s].flows.size() + sets[s].clients.size();
        for (int way = 0; way < 2; way++) {
            const auto &c = way ? by_iter[s] : per_key[s];
            std::vector<double> us, ms;
            for (const auto &x : c) {
                us.push_back(x.us_per_key);
                ms.push_back(x.cpu_ms);
            }
            std::printf("| %zu (%zu + %zu) | %s | %zu | %s | %s |\n", n, sets[s].flows.size(),
                        sets[s].clients.size(),
                        way ? "iterator, kernel sums CPUs" : "one lookup per key",
                        way ? size_t(iter.runs_for(n)) * 3 : n, stat(us, "%.3f").c_str(),
                        stat(ms, "%.1f").c_str());
        }
    }
    return 0;
}

}  // namespace

int main(int argc, char **argv)
{
    Options o = parse(argc, argv);
    std::printf("# %s; %u flows, %u clients, %u possible CPUs, %u rounds, chunk %u, %s\n",
                exf::bench::machine().c_str(), o.flows, o.clients, exf::possible_cpus(), o.rounds,
                o.chunk, exf::bench::command_line(argc, argv).c_str());
    try {
        std::printf("# iter/bpf_map_elem program: %s\n", probe_map_elem_iterator().c_str());
        if (o.sum_cpus)
            std::printf("# the iterator sums %u per-CPU values per client (stand-in)\n",
                        o.sum_cpus);
        return run(o);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "iter_read: %s\n", e.what());
        return 1;
    }
}
