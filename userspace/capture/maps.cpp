// SPDX-License-Identifier: Apache-2.0
#include "capture/maps.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <iterator>
#include <unordered_map>

#include "common/dense_map.h"
#include "common/error.h"

namespace exf {

namespace {

constexpr std::string_view kCounterNames[] = {
    "packets",
    "bytes",
    "not_ip",
    "truncated_l2",
    "truncated_l3",
    "truncated_l4",
    "vlan_too_deep",
    "bad_ipv4",
    "bad_ipv6_ext",
    "bad_tcp",
    "bad_udp",
    "fragment",
    "other_l4",
    "flow_new",
    "flow_reuse",
    "flow_update_fail",
    "client_update_fail",
    "tls_flows",
    "quic_flows",
    "hello_events",
    "end_events",
    "ringbuf_full",
    "load_bytes_fail",
    "pull_fail",
    "client_new",
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
        fd, 1, [](const exf_flow_key &k, const exf_flow *v) {
            return FlowRow{k, *v};
        });
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
    int err =
        bpf_map_lookup_batch(fd, nullptr, &out_batch, keys.data(), vals.data(), &count, &opts);
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

bool same_slot(const exf_fc_slot &a, const exf_fc_slot &b)
{
    return a.tick == b.tick && a.client == b.client && a.kind == b.kind &&
           std::memcmp(&a.key, &b.key, sizeof(a.key)) == 0;
}

}  // namespace

void fold_fcache(Tables &t, std::span<const exf_fc_slot> slots)
{
    // Indexes over the (at most EXF_FC_SLOTS per CPU) slots, not over the
    // tables: each table row is then one lookup in a small index, and no
    // index of the whole tables is built per read.
    DenseMap<exf_flow_key, uint32_t> flow_slots;  // key -> first slot + 1 (chained by next)
    std::vector<uint32_t> next(slots.size(), 0);
    struct ClientSums {
        exf_client_stats add{};
        uint32_t order = 0;  // first slot naming the client
        bool in_table = false;
    };
    DenseMap<exf_client_key, ClientSums> client_sums;
    std::vector<exf_client_key> client_order;
    for (uint32_t i = 0; i < slots.size(); i++) {
        const auto &c = slots[i];
        if (!c.used || !(c.pkts[0] | c.pkts[1]))
            continue;
        auto [head, added] = flow_slots.try_emplace(c.key);
        if (added) {
            *head = i + 1;
        } else {
            // Append to the key's chain (order does not change the sums).
            uint32_t j = *head - 1;
            while (next[j])
                j = next[j] - 1;
            next[j] = i + 1;
        }
        if (c.kind != EXF_KIND_TLS && c.kind != EXF_KIND_QUIC)
            continue;
        exf_client_key ck;
        std::memcpy(ck.addr, c.client == EXF_CLIENT_LO ? c.key.lo_addr : c.key.hi_addr, 16);
        auto [cs, cadded] = client_sums.try_emplace(ck);
        if (cadded) {
            cs->order = uint32_t(client_order.size());
            client_order.push_back(ck);
        }
        unsigned in = c.client == EXF_CLIENT_LO ? EXF_CDIR_LO_TO_HI : EXF_CDIR_HI_TO_LO;
        exf_client_stats &s = cs->add;
        s.pkts_in += c.pkts[in];
        s.bytes_in += c.bytes[in];
        s.pkts_out += c.pkts[in ^ 1];
        s.bytes_out += c.bytes[in ^ 1];
        s.last_ns = std::max(s.last_ns, c.last_ns);
    }
    if (flow_slots.empty())
        return;
    for (auto &row : t.flows) {
        const uint32_t *head = flow_slots.find(row.key);
        if (!head)
            continue;
        exf_flow &f = row.flow;
        for (uint32_t j = *head; j; j = next[j - 1]) {
            const auto &c = slots[j - 1];
            for (int d = 0; d < 2; d++) {
                f.pkts[d] += c.pkts[d];
                f.bytes[d] += c.bytes[d];
            }
            f.last_ns = std::max(f.last_ns, c.last_ns);
        }
    }
    if (client_sums.empty())
        return;
    auto add = [](exf_client_stats &s, const exf_client_stats &a) {
        s.pkts_in += a.pkts_in;
        s.bytes_in += a.bytes_in;
        s.pkts_out += a.pkts_out;
        s.bytes_out += a.bytes_out;
        s.last_ns = std::max(s.last_ns, a.last_ns);
    };
    for (auto &row : t.clients)
        if (ClientSums *cs = client_sums.find(row.key); cs && !cs->in_table) {
            add(row.stats, cs->add);
            cs->in_table = true;
        }
    // Clients missing from the table get rows, in the order their slots come.
    for (const auto &ck : client_order) {
        ClientSums *cs = client_sums.find(ck);
        if (cs->in_table)
            continue;
        ClientRow r{ck, {}};
        add(r.stats, cs->add);
        t.clients.push_back(r);
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
        if (b.used && c.used && same_slot(b, c) && c.pkts[0] >= b.pkts[0] && c.pkts[1] >= b.pkts[1])
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
