// SPDX-License-Identifier: Apache-2.0
// What reading the per-CPU client table costs as the number of CPUs grows
// (docs/datapath.md, "Harvest cost and the number of CPUs"). A per-CPU
// entry comes back with one value per possible CPU, so its read copies
// nr_cpus x sizeof(exf_client_stats). This machine has few CPUs; an
// LRU hash whose one value is k client values wide copies the same bytes a
// k-CPU per-CPU read does, so it stands in for k CPUs. The real per-CPU
// table (this machine's possible CPUs) is measured beside it to show that
// the stand-in costs what the real one does.
//
//   percpu_read [--entries N] [--rounds R] [--max-cpus K]
//
// For each width: N entries, then the two ways the harvest reads clients:
// one lookup per key (the change log's read of changed clients) and a
// whole-table batch read (a full read), in ns per entry, median of R.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_util.h"
#include "capture/maps.h"
#include "exfilmon_shared.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
    uint32_t entries = 20000;
    unsigned rounds = 5;
    unsigned max_cpus = 128;
};

[[noreturn]] void usage()
{
    std::fprintf(stderr, "usage: percpu_read [--entries N] [--rounds R] [--max-cpus K]\n");
    std::exit(2);
}

Options parse(int argc, char **argv)
{
    Options o;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (i + 1 >= argc)
            usage();
        unsigned long v = std::stoul(argv[++i]);
        if (a == "--entries")
            o.entries = uint32_t(v);
        else if (a == "--rounds")
            o.rounds = unsigned(v);
        else if (a == "--max-cpus")
            o.max_cpus = unsigned(v);
        else
            usage();
    }
    if (o.entries == 0 || o.rounds == 0 || o.max_cpus == 0)
        usage();
    return o;
}

exf_client_key key_of(uint32_t i)
{
    exf_client_key k{};
    std::memcpy(k.addr + 12, &i, sizeof(i));
    return k;
}

// A filled table: `per_cpu` a real LRU per-CPU hash, else an LRU hash whose
// value is `width` client values wide.
struct Table {
    int fd = -1;
    size_t value_bytes = 0;  // what one lookup copies out
    Table(bool per_cpu, unsigned width, uint32_t entries)
    {
        const uint32_t value_size = uint32_t(sizeof(exf_client_stats)) * (per_cpu ? 1 : width);
        value_bytes = size_t(sizeof(exf_client_stats)) * width;
        // Room above the entries, as the daemon sizes its tables, so that
        // filling evicts nothing.
        fd = bpf_map_create(per_cpu ? BPF_MAP_TYPE_LRU_PERCPU_HASH : BPF_MAP_TYPE_LRU_HASH,
                            "exf_read_bench", sizeof(exf_client_key), value_size,
                            entries + entries / 2 + 1024, nullptr);
        if (fd < 0)
            throw std::runtime_error("bpf_map_create: " + std::string(strerror(errno)));
        std::vector<uint8_t> value(value_bytes, 1);
        for (uint32_t i = 0; i < entries; i++) {
            auto k = key_of(i);
            if (bpf_map_update_elem(fd, &k, value.data(), BPF_NOEXIST))
                throw std::runtime_error("fill: " + std::string(strerror(errno)));
        }
    }
    ~Table() { close(fd); }
    Table(const Table &) = delete;
    Table &operator=(const Table &) = delete;
};

double ns_per_entry(Clock::time_point t0, uint32_t entries)
{
    return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / entries;
}

double lookups_ns(const Table &t, uint32_t entries)
{
    std::vector<uint8_t> value(t.value_bytes);
    auto t0 = Clock::now();
    for (uint32_t i = 0; i < entries; i++) {
        auto k = key_of(i * 7919u % entries);  // not in insertion order
        if (bpf_map_lookup_elem(t.fd, &k, value.data()))
            throw std::runtime_error("lookup: " + std::string(strerror(errno)));
    }
    return ns_per_entry(t0, entries);
}

double batch_ns(const Table &t, uint32_t entries)
{
    const uint32_t chunk = 4096;
    std::vector<exf_client_key> keys(chunk);
    std::vector<uint8_t> values(size_t(chunk) * t.value_bytes);
    uint64_t in = 0, out = 0;
    bool first = true;
    uint32_t got = 0;
    auto t0 = Clock::now();
    while (true) {
        uint32_t n = chunk;
        int err = bpf_map_lookup_batch(t.fd, first ? nullptr : &in, &out, keys.data(),
                                       values.data(), &n, nullptr);
        got += n;
        if (err && errno == ENOENT)
            break;
        if (err)
            throw std::runtime_error("lookup batch: " + std::string(strerror(errno)));
        in = out;
        first = false;
    }
    if (got != entries)
        throw std::runtime_error("batch read " + std::to_string(got) + " entries");
    return ns_per_entry(t0, entries);
}

void measure(const char *what, const Table &t, const Options &o)
{
    std::vector<double> one, batch;
    for (unsigned r = 0; r < o.rounds; r++) {
        one.push_back(lookups_ns(t, o.entries));
        batch.push_back(batch_ns(t, o.entries));
    }
    std::printf("| %s | %zu | %.0f (%.0f-%.0f) | %.0f (%.0f-%.0f) |\n", what, t.value_bytes,
                exf::bench::median(one), *std::min_element(one.begin(), one.end()),
                *std::max_element(one.begin(), one.end()), exf::bench::median(batch),
                *std::min_element(batch.begin(), batch.end()),
                *std::max_element(batch.begin(), batch.end()));
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char **argv)
{
    Options o = parse(argc, argv);
    const unsigned possible = exf::possible_cpus();
    std::printf("# %s; %u entries, %u rounds, %s\n", exf::bench::machine().c_str(), o.entries,
                o.rounds, exf::bench::command_line(argc, argv).c_str());
    std::printf("| CPUs | bytes per entry | one lookup per key, ns per entry | batch read, ns "
                "per entry |\n|---|---:|---:|---:|\n");
    try {
        Table real(true, possible, o.entries);
        measure((std::to_string(possible) + " (this machine's per-CPU table)").c_str(), real, o);
        for (unsigned k = 1; k <= o.max_cpus; k *= 2) {
            Table t(false, k, o.entries);
            measure((std::to_string(k) + " (stand-in)").c_str(), t, o);
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "percpu_read: %s\n", e.what());
        return 1;
    }
    return 0;
}
