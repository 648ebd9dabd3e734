// SPDX-License-Identifier: Apache-2.0
#include "harvest/deltas.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>

namespace exf {

namespace {

// c - p, or 0 when c is below p; p becomes the higher of the two.
__u64 grow(__u64 c, __u64 &p)
{
    uint64_t d = c > p ? c - p : 0;
    p = std::max(c, p);
    return d;
}

}  // namespace

bool Harvester::account(const ClientRow &r, uint64_t stamp, size_t &seen, ClientDelta &d)
{
    Addr16 a;
    std::memcpy(a.data(), r.key.addr, 16);
    const exf_client_stats &cur = r.stats;
    auto [last, added] = last_.try_emplace(a);
    seen += last->stamp != stamp;
    exf_client_stats prev = added ? exf_client_stats{} : last->stats;
    // An entry evicted and created again has a new creation time: its
    // whole value is new. Otherwise a counter below the previous reading
    // is a reading that missed counts on their way from the flow cache
    // to the tables (maps.h read_tables): they show later, so the
    // previous reading stands until the counter passes it.
    if (prev.first_ns && cur.first_ns && prev.first_ns != cur.first_ns)
        prev = exf_client_stats{};
    d = ClientDelta{a, {}, cur};
    d.delta.tls_flows_opened = grow(cur.tls_flows_opened, prev.tls_flows_opened);
    d.delta.tls_flows_closed = grow(cur.tls_flows_closed, prev.tls_flows_closed);
    d.delta.pkts_in = grow(cur.pkts_in, prev.pkts_in);
    d.delta.pkts_out = grow(cur.pkts_out, prev.pkts_out);
    d.delta.bytes_in = grow(cur.bytes_in, prev.bytes_in);
    d.delta.bytes_out = grow(cur.bytes_out, prev.bytes_out);
    d.delta.requests = grow(cur.requests, prev.requests);
    d.delta.last_ns = cur.last_ns;
    prev.last_ns = std::max(prev.last_ns, cur.last_ns);
    prev.first_ns = cur.first_ns ? cur.first_ns : prev.first_ns;
    *last = Last{prev, stamp};
    return d.delta.tls_flows_opened || d.delta.tls_flows_closed || d.delta.pkts_in ||
           d.delta.pkts_out;
}

std::vector<ClientDelta> Harvester::harvest(const std::vector<ClientRow> &rows)
{
    std::vector<ClientDelta> out;
    const uint64_t stamp = ++stamp_;
    last_.reserve(rows.size());
    size_t seen = 0;
    ClientDelta d;
    for (auto &r : rows)
        if (account(r, stamp, seen, d))
            out.push_back(d);
    // Clients no longer in the table are forgotten.
    if (seen != last_.size())
        last_.erase_if([stamp](const Addr16 &, const Last &l) { return l.stamp != stamp; });
    return out;
}

std::vector<ClientDelta> Harvester::harvest_changed(const std::vector<ClientRow> &rows,
                                                    const std::vector<exf_client_key> &gone)
{
    std::vector<ClientDelta> out;
    const uint64_t stamp = ++stamp_;
    size_t seen = 0;
    ClientDelta d;
    for (auto &r : rows)
        if (account(r, stamp, seen, d))
            out.push_back(d);
    for (const auto &k : gone) {
        Addr16 a;
        std::memcpy(a.data(), k.addr, 16);
        last_.erase(a);
    }
    return out;
}

namespace {

// The state file keeps the counters without the datapath's change mark
// and the flow's turn (the fields before `epoch`, then `requests`): what
// the kernel counted is accounted, not where its state machines stand.
template <class T>
constexpr size_t kSavedCounterBytes = offsetof(T, epoch) + sizeof(uint64_t);

template <class T>
void save_counters(StateWriter &w, const T &v)
{
    w.raw(&v, offsetof(T, epoch));
    w.u64(v.requests);
}

template <class T>
T restore_counters(StateReader &r)
{
    auto bytes = r.pod<std::array<uint8_t, offsetof(T, epoch)>>();
    T v{};
    std::memcpy(&v, bytes.data(), bytes.size());
    v.requests = r.u64();
    return v;
}

}  // namespace

void Harvester::save(StateWriter &w) const
{
    w.u64(last_.size());
    last_.for_each([&](const Addr16 &a, const Last &l) {
        w.pod(a);
        save_counters(w, l.stats);
    });
}

void Harvester::restore(StateReader &r)
{
    DenseMap<Addr16, Last> next;
    uint64_t n = r.count(sizeof(Addr16) + kSavedCounterBytes<exf_client_stats>);
    next.reserve(n);
    for (uint64_t i = 0; i < n; i++) {
        auto a = r.pod<Addr16>();
        *next.try_emplace(a).first = Last{restore_counters<exf_client_stats>(r), 0};
    }
    last_ = std::move(next);
    stamp_ = 0;
}

void FlowHarvester::save(StateWriter &w) const
{
    w.u64(last_.size());
    last_.for_each([&](const exf_flow_key &k, const Seen &s) {
        w.pod(k);
        save_counters(w, s.flow);
        w.u8(uint8_t(s.closed) | uint8_t(s.idle) << 1);
    });
}

void FlowHarvester::restore(StateReader &r)
{
    DenseMap<exf_flow_key, Seen> next;
    uint64_t n = r.count(sizeof(exf_flow_key) + kSavedCounterBytes<exf_flow> + 1);
    next.reserve(n);
    for (uint64_t i = 0; i < n; i++) {
        auto k = r.pod<exf_flow_key>();
        auto f = restore_counters<exf_flow>(r);
        uint8_t flags = r.u8();
        *next.try_emplace(k).first = Seen{f, bool(flags & 1), bool(flags & 2), 0};
    }
    last_ = std::move(next);
    pending_.clear();
    stamp_ = 0;
}

struct FlowHarvester::Pass {
    Pass(const std::function<bool(const FlowRow &)> &r, uint64_t now, uint64_t idle, uint64_t s)
        : ready(r), now_ns(now), idle_ns(idle), stamp(s)
    {}
    const std::function<bool(const FlowRow &)> &ready;
    uint64_t now_ns, idle_ns, stamp;
    size_t kept = 0;  // entries stamped by this harvest
    std::vector<FlowDelta> out, left;
    std::vector<FlowRow> pending;  // rows reported pending
    void keep(Seen &s)
    {
        kept += s.stamp != stamp;
        s.stamp = stamp;
    }
};

namespace {

template <class Seen>
FlowDelta end_of(const exf_flow_key &key, const Seen &seen)
{
    FlowDelta d{key, seen.flow};
    d.closed = true;
    return d;
}

// The counters as accounted: never below an earlier reading (a reading
// can miss counts on their way from the flow cache to the table; they
// show later; see Harvester::account). d gets what they grew by.
exf_flow accounted(const exf_flow &f, const exf_flow &prev, FlowDelta &d)
{
    unsigned in = flow_in_dir(f);
    exf_flow acc = f;
    for (int k = 0; k < 2; k++) {
        acc.pkts[k] = std::max(f.pkts[k], prev.pkts[k]);
        acc.bytes[k] = std::max(f.bytes[k], prev.bytes[k]);
    }
    acc.requests = std::max(f.requests, prev.requests);
    d.requests = acc.requests - prev.requests;
    d.pkts_in = acc.pkts[in] - prev.pkts[in];
    d.pkts_out = acc.pkts[in ^ 1] - prev.pkts[in ^ 1];
    d.bytes_in = acc.bytes[in] - prev.bytes[in];
    d.bytes_out = acc.bytes[in ^ 1] - prev.bytes[in ^ 1];
    return acc;
}

}  // namespace

void FlowHarvester::account(const FlowRow &r, Pass &pass)
{
    const exf_flow &f = r.flow;
    if (f.kind != EXF_KIND_TLS && f.kind != EXF_KIND_QUIC)
        return;
    Seen *cur = last_.find(r.key);
    Seen prev{};
    bool known = false;
    if (cur && cur->flow.first_ns == f.first_ns) {
        prev = *cur;
        known = true;
    } else if (cur && !cur->closed) {
        // The 5-tuple holds a new flow: the one accounted ends now, at its
        // last packet.
        pass.left.push_back(end_of(r.key, *cur));
    }
    bool fin = f.flags & EXF_FF_CLOSED;
    bool idle = !fin && pass.idle_ns && pass.now_ns > f.last_ns + pass.idle_ns;
    FlowDelta d{r.key, f};
    d.opened = !known;
    exf_flow acc = accounted(f, prev.flow, d);
    bool grew = d.pkts_in || d.pkts_out;
    d.resumed = known && prev.idle && grew;
    bool was_closed = known && prev.closed && !d.resumed;
    d.closed = (fin || idle) && !was_closed;
    const bool report = d.opened || d.closed || d.resumed || grew;
    const Seen next{acc, fin || idle || was_closed, idle || (was_closed && prev.idle), pass.stamp};
    if (!report && next.closed == prev.closed && next.idle == prev.idle &&
        std::memcmp(&next.flow, &prev.flow, sizeof(exf_flow)) == 0) {
        // Nothing new and nothing to remember, ready or not: the flow's
        // readiness (a tracker lookup) is not needed.
        pass.keep(*cur);
        return;
    }
    d.pending = !pass.ready(r);
    if (report)
        pass.out.push_back(d);
    if (d.pending) {
        pass.pending.push_back(r);
        if (known)
            pass.keep(*cur);  // accounted as before; reported again next time
        else if (cur)
            last_.erase(r.key);  // the old flow of this 5-tuple ended above
        return;
    }
    if (!cur)
        cur = last_.try_emplace(r.key).first;
    pass.keep(*cur);
    *cur = next;
}

// Flows that left the table without a reported end: they end now, at
// their last packet.
void FlowHarvester::end_missing(Pass &pass)
{
    if (pass.kept == last_.size())
        return;
    last_.erase_if([&](const exf_flow_key &key, const Seen &seen) {
        if (seen.stamp == pass.stamp)
            return false;
        if (!seen.closed)
            pass.left.push_back(end_of(key, seen));
        return true;
    });
}

std::vector<FlowDelta> FlowHarvester::harvest(const std::vector<FlowRow> &rows,
                                              const std::function<bool(const FlowRow &)> &ready,
                                              uint64_t now_ns, uint64_t idle_ns)
{
    Pass pass(ready, now_ns, idle_ns, ++stamp_);
    for (size_t ri = 0; ri < rows.size(); ri++) {
        // Most rows are looked up and left alone: fetch ahead what the
        // lookups a few rows on will touch.
        if (ri + 8 < rows.size())
            last_.prefetch_slot(rows[ri + 8].key);
        if (ri + 4 < rows.size())
            last_.prefetch_item(rows[ri + 4].key);
        account(rows[ri], pass);
    }
    end_missing(pass);
    pending_ = std::move(pass.pending);
    pass.out.insert(pass.out.end(), pass.left.begin(), pass.left.end());
    return std::move(pass.out);
}

std::vector<FlowDelta> FlowHarvester::harvest_changed(
    const std::vector<FlowRow> &rows, const std::vector<exf_flow_key> &gone,
    const std::function<bool(const FlowRow &)> &ready, uint64_t now_ns, uint64_t idle_ns)
{
    Pass pass(ready, now_ns, idle_ns, ++stamp_);
    for (const auto &r : rows)
        account(r, pass);
    // Flows reported pending are reported again until they are ready, as
    // in a full harvest: unchanged, as last read.
    DenseMap<exf_flow_key, bool> in_rows;
    in_rows.reserve(rows.size() + gone.size());
    for (const auto &r : rows)
        in_rows.try_emplace(r.key);
    for (const auto &k : gone)
        in_rows.try_emplace(k);
    for (const auto &r : pending_)
        if (!in_rows.find(r.key))
            account(r, pass);
    pending_ = std::move(pass.pending);
    for (const auto &k : gone) {
        const Seen *seen = last_.find(k);
        if (!seen)
            continue;
        if (!seen->closed)
            pass.left.push_back(end_of(k, *seen));
        last_.erase(k);
    }
    pass.out.insert(pass.out.end(), pass.left.begin(), pass.left.end());
    return std::move(pass.out);
}

}  // namespace exf
