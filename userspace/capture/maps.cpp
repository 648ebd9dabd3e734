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

unsigned possible_cpus()
{
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0)
        throw_errno("count possible CPUs", ncpu);
    return unsigned(ncpu);
}

ClientRow sum_client(const exf_client_key &k, const exf_client_stats *v, unsigned ncpu)
{
    ClientRow r{k, {}};
    for (unsigned c = 0; c < ncpu; c++) {
        r.stats.tls_flows_opened += v[c].tls_flows_opened;
        r.stats.tls_flows_closed += v[c].tls_flows_closed;
        r.stats.pkts_in += v[c].pkts_in;
        r.stats.pkts_out += v[c].pkts_out;
        r.stats.bytes_in += v[c].bytes_in;
        r.stats.bytes_out += v[c].bytes_out;
        r.stats.requests += v[c].requests;
        r.stats.last_ns = std::max(r.stats.last_ns, v[c].last_ns);
        r.stats.first_ns = std::max(r.stats.first_ns, v[c].first_ns);
    }
    return r;
}

FlowRow flow_row(const exf_flow_key &k, const exf_flow &f)
{
    FlowRow r{k, f};
    r.flow.epoch = 0;  // the datapath's change mark, not part of the reading
    return r;
}

std::vector<ClientRow> read_clients(int fd)
{
    unsigned ncpu = possible_cpus();
    return read_table<exf_client_key, exf_client_stats, ClientRow>(
        fd, ncpu, [ncpu](const exf_client_key &k, const exf_client_stats *v) {
            return sum_client(k, v, ncpu);
        });
}

std::vector<FlowRow> read_flows(int fd)
{
    return read_table<exf_flow_key, exf_flow, FlowRow>(
        fd, 1, [](const exf_flow_key &k, const exf_flow *v) { return flow_row(k, *v); });
}

std::vector<exf_fc_slot> read_fcache_all(int fd)
{
    unsigned ncpu = possible_cpus();
    std::vector<uint32_t> keys(EXF_FC_SLOTS);
    std::vector<exf_fc_slot> vals(size_t(EXF_FC_SLOTS) * ncpu);
    uint32_t count = EXF_FC_SLOTS, out_batch = 0;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int err =
        bpf_map_lookup_batch(fd, nullptr, &out_batch, keys.data(), vals.data(), &count, &opts);
    if (err && errno != ENOENT) {
        // No batch support: one lookup per slot.
        count = 0;
        for (uint32_t i = 0; i < EXF_FC_SLOTS; i++) {
            if (bpf_map_lookup_elem(fd, &i, &vals[size_t(count) * ncpu]))
                throw_errno("read the flow cache", errno);
            count++;
        }
    }
    vals.resize(size_t(count) * ncpu);
    return vals;
}

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
    std::vector<exf_fc_slot> zero(possible_cpus());
    std::memset(zero.data(), 0, zero.size() * sizeof(exf_fc_slot));
    for (uint32_t i = 0; i < EXF_FC_SLOTS; i++)
        if (bpf_map_update_elem(fd, &i, zero.data(), BPF_ANY))
            throw_errno("clear the flow cache", errno);
}

bool stable_slot(const exf_fc_slot &before, const exf_fc_slot &after)
{
    return before.used && after.used && before.tick == after.tick &&
           before.client == after.client && before.kind == after.kind &&
           std::memcmp(&before.key, &after.key, sizeof(before.key)) == 0 &&
           after.pkts[0] >= before.pkts[0] && after.pkts[1] >= before.pkts[1];
}

namespace {

void add_pending(exf_client_stats &s, const exf_client_stats &a)
{
    s.pkts_in += a.pkts_in;
    s.bytes_in += a.bytes_in;
    s.pkts_out += a.pkts_out;
    s.bytes_out += a.bytes_out;
    s.last_ns = std::max(s.last_ns, a.last_ns);
}

}  // namespace

CacheFold::CacheFold(std::span<const exf_fc_slot> slots) : slots_(slots), next_(slots.size(), 0)
{
    for (uint32_t i = 0; i < slots.size(); i++) {
        const auto &c = slots[i];
        if (!c.used || !(c.pkts[0] | c.pkts[1]))
            continue;
        chain_flow(i);
        if (c.kind == EXF_KIND_TLS || c.kind == EXF_KIND_QUIC)
            sum_client(c);
    }
}

void CacheFold::chain_flow(uint32_t i)
{
    auto [head, added] = flow_slots_.try_emplace(slots_[i].key);
    if (added) {
        *head = i + 1;
        return;
    }
    // Append to the key's chain (order does not change the sums).
    uint32_t j = *head - 1;
    while (next_[j])
        j = next_[j] - 1;
    next_[j] = i + 1;
}

void CacheFold::sum_client(const exf_fc_slot &c)
{
    exf_client_key ck;
    std::memcpy(ck.addr, c.client == EXF_CLIENT_LO ? c.key.lo_addr : c.key.hi_addr, 16);
    auto [cs, added] = client_sums_.try_emplace(ck);
    if (added)
        client_order_.push_back(ck);
    unsigned in = c.client == EXF_CLIENT_LO ? EXF_CDIR_LO_TO_HI : EXF_CDIR_HI_TO_LO;
    exf_client_stats &s = cs->add;
    s.pkts_in += c.pkts[in];
    s.bytes_in += c.bytes[in];
    s.pkts_out += c.pkts[in ^ 1];
    s.bytes_out += c.bytes[in ^ 1];
    s.last_ns = std::max(s.last_ns, c.last_ns);
}

void CacheFold::add_to_flows(std::vector<FlowRow> &flows) const
{
    if (flow_slots_.empty())
        return;
    for (auto &row : flows) {
        const uint32_t *head = flow_slots_.find(row.key);
        if (!head)
            continue;
        exf_flow &f = row.flow;
        for (uint32_t j = *head; j; j = next_[j - 1]) {
            const auto &c = slots_[j - 1];
            for (int d = 0; d < 2; d++) {
                f.pkts[d] += c.pkts[d];
                f.bytes[d] += c.bytes[d];
            }
            f.last_ns = std::max(f.last_ns, c.last_ns);
        }
    }
}

void CacheFold::add_to_clients(std::vector<ClientRow> &clients)
{
    if (client_sums_.empty())
        return;
    for (auto &row : clients)
        if (ClientSums *cs = client_sums_.find(row.key); cs && !cs->in_table) {
            add_pending(row.stats, cs->add);
            cs->in_table = true;
        }
}

bool CacheFold::add_missing_client(std::vector<ClientRow> &clients, const exf_client_key &k)
{
    ClientSums *cs = client_sums_.find(k);
    if (!cs || cs->in_table)
        return false;
    ClientRow r{k, {}};
    add_pending(r.stats, cs->add);
    clients.push_back(r);
    cs->in_table = true;
    return true;
}

void fold_fcache(Tables &t, std::span<const exf_fc_slot> slots)
{
    CacheFold fold(slots);
    fold.add_to_flows(t.flows);
    fold.add_to_clients(t.clients);
    // Clients missing from the table get rows, in the order their slots come.
    for (const auto &ck : fold.clients_in_order())
        fold.add_missing_client(t.clients, ck);
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
    for (size_t i = 0; i < after.size() && i < before.size(); i++)
        if (stable_slot(before[i], after[i]))
            stable.push_back(after[i]);
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
