#include "capture/maps.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <iterator>

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
            }
            return r;
        });
}

std::vector<FlowRow> read_flows(int fd)
{
    return read_table<exf_flow_key, exf_flow, FlowRow>(
        fd, 1, [](const exf_flow_key &k, const exf_flow *v) { return FlowRow{k, *v}; });
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
