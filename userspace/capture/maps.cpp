#include "capture/maps.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <iterator>
#include <unordered_map>

#include "common/error.h"

namespace exf {

namespace {

constexpr std::string_view kCounterNames[] = {
    "packets", "bytes", "not_ip", "truncated_l2", "truncated_l3", "truncated_l4",
    "vlan_too_deep", "bad_ipv4", "bad_ipv6_ext", "bad_tcp", "bad_udp", "fragment",
    "other_l4", "flow_new", "flow_reuse", "flow_update_fail", "client_update_fail",
    "tls_flows", "quic_flows", "hello_events", "end_events", "ringbuf_full",
    "load_bytes_fail", "pull_fail",
};
static_assert(std::size(kCounterNames) == EXF_C__MAX, "one name per enum exf_counter");

// Generic per-CPU aware table read: batched when the kernel supports it.
template <typename Key, typename Value, typename Row, typename Fold>
std::vector<Row> read_table(int fd, unsigned ncpu_values, Fold fold)
{
    std::vector<Row> out;
    const uint32_t chunk = 4096;
    std::vector<Key> keys(chunk);
    std::vector<Value> values(size_t(chunk) * ncpu_values);
    Key in_batch{}, out_batch{};
    bool first = true;
    for (;;) {
        uint32_t count = chunk;
        LIBBPF_OPTS(bpf_map_batch_opts, opts);
        int err = bpf_map_lookup_batch(fd, first ? nullptr : &in_batch, &out_batch, keys.data(),
                                       values.data(), &count, &opts);
        int e = err ? errno : 0;
        if (err && e != ENOENT) {
            if (e == EINVAL || e == ENOTSUP || e == EOPNOTSUPP)
                break;  // fall back below
            throw_errno("read BPF map", e);
        }
        for (uint32_t i = 0; i < count; i++)
            out.push_back(fold(keys[i], &values[size_t(i) * ncpu_values]));
        if (err)  // ENOENT: end of table
            return out;
        in_batch = out_batch;
        first = false;
    }
    // Fallback: iterate keys.
    out.clear();
    Key key{}, next{};
    bool have = false;
    std::vector<Value> vals(ncpu_values);
    while (bpf_map_get_next_key(fd, have ? &key : nullptr, &next) == 0) {
        if (bpf_map_lookup_elem(fd, &next, vals.data()) == 0)
            out.push_back(fold(next, vals.data()));
        key = next;
        have = true;
    }
    return out;
}

}  // namespace

std::vector<ClientRow> read_clients(int fd)
{
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0)
        throw_errno("count possible CPUs", ncpu);
    return read_table<exf_client_key, exf_client_stats, ClientRow>(
        fd, unsigned(ncpu), [ncpu](const exf_client_key &k, const exf_client_stats *v) {
            ClientRow r{k, {}};
            for (int c = 0; c < ncpu; c++) {
                r.stats.tls_flows_opened += v[c].tls_flows_opened;
                r.stats.tls_flows_closed += v[c].tls_flows_closed;
                r.stats.pkts_in += v[c].pkts_in;
                r.stats.pkts_out += v[c].pkts_out;
                r.stats.bytes_in += v[c].bytes_in;
                r.stats.bytes_out += v[c].bytes_out;
                if (v[c].last_ns > r.stats.last_ns)
                    r.stats.last_ns = v[c].last_ns;
                if (v[c].first_ns > r.stats.first_ns)
                    r.stats.first_ns = v[c].first_ns;
            }
            return r;
        });
}

std::vector<FlowRow> read_flows(int fd)
{
    return read_table<exf_flow_key, exf_flow, FlowRow>(
        fd, 1, [](const exf_flow_key &k, const exf_flow *v) { return FlowRow{k, *v}; });
}

namespace {

// Every slot of every CPU, at index slot * ncpu + cpu.
std::vector<exf_fc_slot> read_fcache_all(int fd)
{
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0)
        throw_errno("count possible CPUs", ncpu);
    std::vector<uint32_t> keys(EXF_FC_SLOTS);
    std::vector<exf_fc_slot> vals(size_t(EXF_FC_SLOTS) * size_t(ncpu));
    uint32_t count = EXF_FC_SLOTS, out_batch = 0;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int err = bpf_map_lookup_batch(fd, nullptr, &out_batch, keys.data(), vals.data(), &count, &opts);
    if (err && errno != ENOENT) {
        // No batch support: one lookup per slot.
        count = 0;
        for (uint32_t i = 0; i < EXF_FC_SLOTS; i++) {
            if (bpf_map_lookup_elem(fd, &i, &vals[size_t(count) * size_t(ncpu)]))
                throw_errno("read the flow cache", errno);
            count++;
        }
    }
    vals.resize(size_t(count) * size_t(ncpu));
    return vals;
}

}  // namespace

std::vector<exf_fc_slot> read_fcache(int fd)
{
    std::vector<exf_fc_slot> out;
    for (const auto &c : read_fcache_all(fd))
        if (c.used)
            out.push_back(c);
    return out;
}

void clear_fcache(int fd)
{
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0)
        throw_errno("count possible CPUs", ncpu);
    std::vector<exf_fc_slot> zero(static_cast<size_t>(ncpu));
    std::memset(zero.data(), 0, zero.size() * sizeof(exf_fc_slot));
    for (uint32_t i = 0; i < EXF_FC_SLOTS; i++)
        if (bpf_map_update_elem(fd, &i, zero.data(), BPF_ANY))
            throw_errno("clear the flow cache", errno);
}

namespace {

struct FlowKeyHash {
    size_t operator()(const exf_flow_key &k) const noexcept
    {
        uint64_t w[5];
        std::memcpy(w, &k, sizeof(w));
        uint64_t h = 0;
        for (auto x : w)
            h = (h ^ x) * 0x9E3779B97F4A7C15ull;
        return size_t(h ^ (h >> 29));
    }
};
struct FlowKeyEq {
    bool operator()(const exf_flow_key &a, const exf_flow_key &b) const noexcept
    {
        return std::memcmp(&a, &b, sizeof(a)) == 0;
    }
};
struct AddrHash {
    size_t operator()(const exf_client_key &k) const noexcept
    {
        uint64_t x, y;
        std::memcpy(&x, k.addr, 8);
        std::memcpy(&y, k.addr + 8, 8);
        return size_t((x * 0x9E3779B97F4A7C15ull) ^ y);
    }
};
struct AddrEq {
    bool operator()(const exf_client_key &a, const exf_client_key &b) const noexcept
    {
        return std::memcmp(a.addr, b.addr, 16) == 0;
    }
};

bool same_slot(const exf_fc_slot &a, const exf_fc_slot &b)
{
    return a.tick == b.tick && a.client == b.client && a.kind == b.kind &&
           std::memcmp(&a.key, &b.key, sizeof(a.key)) == 0;
}

}  // namespace

void fold_fcache(Tables &t, std::span<const exf_fc_slot> slots)
{
    if (slots.empty())
        return;
    std::unordered_map<exf_flow_key, size_t, FlowKeyHash, FlowKeyEq> flow_at;
    std::unordered_map<exf_client_key, size_t, AddrHash, AddrEq> client_at;
    flow_at.reserve(t.flows.size());
    for (size_t i = 0; i < t.flows.size(); i++)
        flow_at.emplace(t.flows[i].key, i);
    client_at.reserve(t.clients.size());
    for (size_t i = 0; i < t.clients.size(); i++)
        client_at.emplace(t.clients[i].key, i);
    for (const auto &c : slots) {
        if (!c.used || !(c.pkts[0] | c.pkts[1]))
            continue;
        if (auto it = flow_at.find(c.key); it != flow_at.end()) {
            exf_flow &f = t.flows[it->second].flow;
            for (int d = 0; d < 2; d++) {
                f.pkts[d] += c.pkts[d];
                f.bytes[d] += c.bytes[d];
            }
            f.last_ns = std::max(f.last_ns, c.last_ns);
        }
        if (c.kind != EXF_KIND_TLS && c.kind != EXF_KIND_QUIC)
            continue;
        exf_client_key ck;
        std::memcpy(ck.addr, c.client == EXF_CLIENT_LO ? c.key.lo_addr : c.key.hi_addr, 16);
        auto [it, added] = client_at.try_emplace(ck, t.clients.size());
        if (added)
            t.clients.push_back(ClientRow{ck, {}});
        exf_client_stats &s = t.clients[it->second].stats;
        unsigned in = c.client == EXF_CLIENT_LO ? EXF_CDIR_LO_TO_HI : EXF_CDIR_HI_TO_LO;
        s.pkts_in += c.pkts[in];
        s.bytes_in += c.bytes[in];
        s.pkts_out += c.pkts[in ^ 1];
        s.bytes_out += c.bytes[in ^ 1];
        s.last_ns = std::max(s.last_ns, c.last_ns);
    }
}

Tables read_tables(int flows_fd, int clients_fd, int fcache_fd)
{
    auto before = read_fcache_all(fcache_fd);
    Tables t;
    t.clients = read_clients(clients_fd);
    t.flows = read_flows(flows_fd);
    auto after = read_fcache_all(fcache_fd);
    // Keep the slots that hold the same flow and tick in both reads, with
    // the second read's counts (pending counts only grow within a tick).
    std::vector<exf_fc_slot> stable;
    for (size_t i = 0; i < after.size() && i < before.size(); i++) {
        const auto &b = before[i], &c = after[i];
        if (b.used && c.used && same_slot(b, c) && c.pkts[0] >= b.pkts[0] &&
            c.pkts[1] >= b.pkts[1])
            stable.push_back(c);
    }
    fold_fcache(t, stable);
    return t;
}

HealthCounters read_health(int fd)
{
    HealthCounters out{};
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0)
        throw_errno("count possible CPUs", ncpu);
    std::vector<uint64_t> vals(static_cast<size_t>(ncpu));
    for (uint32_t i = 0; i < EXF_C__MAX; i++) {
        if (bpf_map_lookup_elem(fd, &i, vals.data()))
            throw_errno("read health counters", errno);
        for (auto v : vals)
            out[i] += v;
    }
    return out;
}

std::string_view counter_name(unsigned idx)
{
    return idx < EXF_C__MAX ? kCounterNames[idx] : std::string_view("unknown");
}

const uint8_t *flow_client_addr(const exf_flow_key &k, const exf_flow &f)
{
    return f.client == EXF_CLIENT_HI ? k.hi_addr : k.lo_addr;
}
const uint8_t *flow_server_addr(const exf_flow_key &k, const exf_flow &f)
{
    return f.client == EXF_CLIENT_HI ? k.lo_addr : k.hi_addr;
}
uint16_t flow_client_port(const exf_flow_key &k, const exf_flow &f)
{
    return f.client == EXF_CLIENT_HI ? k.hi_port : k.lo_port;
}
uint16_t flow_server_port(const exf_flow_key &k, const exf_flow &f)
{
    return f.client == EXF_CLIENT_HI ? k.lo_port : k.hi_port;
}

}  // namespace exf
