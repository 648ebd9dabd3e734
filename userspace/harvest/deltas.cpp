// SPDX-License-Identifier: Apache-2.0
#include "harvest/deltas.h"

#include <algorithm>
#include <cstring>

namespace exf {

std::vector<ClientDelta> Harvester::harvest(const std::vector<ClientRow> &rows)
{
    std::vector<ClientDelta> out;
    const uint64_t stamp = ++stamp_;
    last_.reserve(rows.size());
    size_t seen = 0;
    for (auto &r : rows) {
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
        auto grow = [](__u64 c, __u64 &p) -> __u64 {
            uint64_t d = c > p ? c - p : 0;
            p = std::max(c, p);
            return d;
        };
        ClientDelta d{a, {}, cur};
        d.delta.tls_flows_opened = grow(cur.tls_flows_opened, prev.tls_flows_opened);
        d.delta.tls_flows_closed = grow(cur.tls_flows_closed, prev.tls_flows_closed);
        d.delta.pkts_in = grow(cur.pkts_in, prev.pkts_in);
        d.delta.pkts_out = grow(cur.pkts_out, prev.pkts_out);
        d.delta.bytes_in = grow(cur.bytes_in, prev.bytes_in);
        d.delta.bytes_out = grow(cur.bytes_out, prev.bytes_out);
        d.delta.last_ns = cur.last_ns;
        prev.last_ns = std::max(prev.last_ns, cur.last_ns);
        prev.first_ns = cur.first_ns ? cur.first_ns : prev.first_ns;
        if (d.delta.tls_flows_opened || d.delta.tls_flows_closed || d.delta.pkts_in ||
            d.delta.pkts_out)
            out.push_back(d);
        *last = Last{prev, stamp};
    }
    // Clients no longer in the table are forgotten.
    if (seen != last_.size())
        last_.erase_if([stamp](const Addr16 &, const Last &l) { return l.stamp != stamp; });
    return out;
}

void Harvester::save(StateWriter &w) const
{
    w.u64(last_.size());
    last_.for_each([&](const Addr16 &a, const Last &l) {
        w.pod(a);
        w.pod(l.stats);
    });
}

void Harvester::restore(StateReader &r)
{
    DenseMap<Addr16, Last> next;
    uint64_t n = r.count(sizeof(Addr16) + sizeof(exf_client_stats));
    next.reserve(n);
    for (uint64_t i = 0; i < n; i++) {
        auto a = r.pod<Addr16>();
        *next.try_emplace(a).first = Last{r.pod<exf_client_stats>(), 0};
    }
    last_ = std::move(next);
    stamp_ = 0;
}

void FlowHarvester::save(StateWriter &w) const
{
    w.u64(last_.size());
    last_.for_each([&](const exf_flow_key &k, const Seen &s) {
        w.pod(k);
        w.pod(s.flow);
        w.u8(uint8_t(s.closed) | uint8_t(s.idle) << 1);
    });
}

void FlowHarvester::restore(StateReader &r)
{
    DenseMap<exf_flow_key, Seen> next;
    uint64_t n = r.count(sizeof(exf_flow_key) + sizeof(exf_flow) + 1);
    next.reserve(n);
    for (uint64_t i = 0; i < n; i++) {
        auto k = r.pod<exf_flow_key>();
        auto f = r.pod<exf_flow>();
        uint8_t flags = r.u8();
        *next.try_emplace(k).first = Seen{f, bool(flags & 1), bool(flags & 2), 0};
    }
    last_ = std::move(next);
    stamp_ = 0;
}

std::vector<FlowDelta> FlowHarvester::harvest(const std::vector<FlowRow> &rows,
                                              const std::function<bool(const FlowRow &)> &ready,
                                              uint64_t now_ns, uint64_t idle_ns)
{
    std::vector<FlowDelta> out, left;
    const uint64_t stamp = ++stamp_;
    size_t kept = 0;  // entries stamped by this harvest
    auto keep = [&](Seen &s) {
        kept += s.stamp != stamp;
        s.stamp = stamp;
    };
    auto end_of = [](const exf_flow_key &key, const Seen &seen) {
        FlowDelta d{key, seen.flow};
        d.closed = true;
        return d;
    };
    for (size_t ri = 0; ri < rows.size(); ri++) {
        // Most rows are looked up and left alone: fetch ahead what the
        // lookups a few rows on will touch.
        if (ri + 8 < rows.size())
            last_.prefetch_slot(rows[ri + 8].key);
        if (ri + 4 < rows.size())
            last_.prefetch_item(rows[ri + 4].key);
        const FlowRow &r = rows[ri];
        const exf_flow &f = r.flow;
        if (f.kind != EXF_KIND_TLS && f.kind != EXF_KIND_QUIC)
            continue;
        Seen *cur = last_.find(r.key);
        Seen prev{};
        bool known = false;
        if (cur && cur->flow.first_ns == f.first_ns) {
            prev = *cur;
            known = true;
        } else if (cur && !cur->closed) {
            // The 5-tuple holds a new flow: the one accounted ends now, at its
            // last packet.
            left.push_back(end_of(r.key, *cur));
        }
        bool fin = f.flags & EXF_FF_CLOSED;
        bool idle = !fin && idle_ns && now_ns > f.last_ns + idle_ns;
        unsigned in = flow_in_dir(f);
        FlowDelta d{r.key, f};
        d.opened = !known;
        // Counters as accounted: never below an earlier reading (a reading
        // can miss counts on their way from the flow cache to the table;
        // they show later; see Harvester::harvest).
        exf_flow acc = f;
        for (int k = 0; k < 2; k++) {
            acc.pkts[k] = std::max(f.pkts[k], prev.flow.pkts[k]);
            acc.bytes[k] = std::max(f.bytes[k], prev.flow.bytes[k]);
        }
        d.pkts_in = acc.pkts[in] - prev.flow.pkts[in];
        d.pkts_out = acc.pkts[in ^ 1] - prev.flow.pkts[in ^ 1];
        d.bytes_in = acc.bytes[in] - prev.flow.bytes[in];
        d.bytes_out = acc.bytes[in ^ 1] - prev.flow.bytes[in ^ 1];
        bool grew = d.pkts_in || d.pkts_out;
        d.resumed = known && prev.idle && grew;
        bool was_closed = known && prev.closed && !d.resumed;
        d.closed = (fin || idle) && !was_closed;
        const bool report = d.opened || d.closed || d.resumed || grew;
        const Seen next{acc, fin || idle || was_closed, idle || (was_closed && prev.idle), stamp};
        if (!report && next.closed == prev.closed && next.idle == prev.idle &&
            std::memcmp(&next.flow, &prev.flow, sizeof(exf_flow)) == 0) {
            // Nothing new and nothing to remember, ready or not: the flow's
            // readiness (a tracker lookup) is not needed.
            keep(*cur);
            continue;
        }
        d.pending = !ready(r);
        if (report)
            out.push_back(d);
        if (d.pending) {
            if (known)
                keep(*cur);  // accounted as before; reported again next time
            else if (cur)
                last_.erase(r.key);  // the old flow of this 5-tuple ended above
            continue;
        }
        if (!cur)
            cur = last_.try_emplace(r.key).first;
        keep(*cur);
        *cur = next;
    }
    // Flows that left the table without a reported end: they end now, at
    // their last packet.
    if (kept != last_.size())
        last_.erase_if([&](const exf_flow_key &key, const Seen &seen) {
            if (seen.stamp == stamp)
                return false;
            if (!seen.closed)
                left.push_back(end_of(key, seen));
            return true;
        });
    out.insert(out.end(), left.begin(), left.end());
    return out;
}

}  // namespace exf
