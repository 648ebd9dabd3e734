// SPDX-License-Identifier: Apache-2.0
#pragma once
// Internal to the aggregator: one entity's counters over the aggregator's
// windows (each window's length in ms, `windows`): rolling its buckets
// forward, counting traffic and flows, counting a group's distinct members,
// and reading a window's value. Entities are the headers of entities.h with
// their cells (windows.h), one cell per window.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "aggregate/aggregator.h"
#include "aggregate/windows.h"

namespace exf::agg::detail {

// Rolls the entity's buckets forward to now (its windows' current buckets).
template <class E, class C>
void advance(const std::vector<uint64_t> &windows, E &e, C *cells, uint64_t now)
{
    if (now <= e.last)
        return;
    for (size_t w = 0; w < windows.size(); w++)
        roll(cells[w], e.last, now, windows[w], e.conc);
    e.last = now;
}

// Adds the traffic (when d) and the flow opened or closed (conc_delta) to
// the current bucket of every window.
template <class E, class C>
void count_traffic(const std::vector<uint64_t> &windows, E &e, C *cells, const Traffic *d,
                   int conc_delta)
{
    if (conc_delta > 0)
        detail::add(e.conc, 1);
    else if (conc_delta < 0 && e.conc > 0)
        e.conc--;
    for (size_t w = 0; w < windows.size(); w++) {
        C &c = cells[w];
        if (d) {
            detail::add(c.out[0], d->bytes_out);
            detail::add(c.in[0], d->bytes_in);
            detail::add(c.flows[0], d->flows_opened);
            detail::add(c.requests[0], d->requests);
        }
        if (conc_delta > 0 && detail::load(c.peak[0]) < e.conc)
            detail::store(c.peak[0], e.conc);
    }
}

// Which of a group's distinct counts a member counts in.
using Tally = uint32_t (WideCell::*)[2];
inline constexpr Tally kClients = &WideCell::members;
inline constexpr Tally kSubnets = &WideCell::subnets;

// Distinct clients: a member (client, or client x API host for API hosts)
// is counted in the group's bucket holding its last activity. It was last
// active at `old` (had_old) and is active now; the group is at `now`.
// A member last active before the group was created (the group was
// evicted or is new) was not counted in it. Distinct subnets: the same, the
// member being a (subnet, group) membership, counted in `tally` kSubnets.
template <class G>
void member_seen(const std::vector<uint64_t> &windows, const G &g, WideCell *gc, bool g_fresh,
                 bool had_old, uint64_t old, uint64_t now, Tally tally = kClients)
{
    bool counted = had_old && !g_fresh && old >= g.first;
    for (size_t w = 0; w < windows.size(); w++) {
        uint64_t len = windows[w];
        if (counted) {
            uint64_t bo = old / len, bn = now / len;
            if (bo == bn)
                continue;  // already counted in the current bucket
            if (bo + 1 == bn && (gc[w].*tally)[1] > 0)
                (gc[w].*tally)[1]--;
        }
        detail::add((gc[w].*tally)[0], 1);
    }
}

// The member last active at m_last leaves (dropped or recounted).
template <class G>
void member_gone(const std::vector<uint64_t> &windows, const G &g, WideCell *gc, uint64_t m_last,
                 Tally tally = kClients)
{
    if (m_last < g.first)
        return;
    for (size_t w = 0; w < windows.size(); w++) {
        uint64_t len = windows[w], bm = m_last / len, bg = g.last / len;
        if (bm == bg && (gc[w].*tally)[0] > 0)
            (gc[w].*tally)[0]--;
        else if (bm + 1 == bg && (gc[w].*tally)[1] > 0)
            (gc[w].*tally)[1]--;
    }
}

// Counts the member last active at m_last in its group (a recount).
template <class G>
void member_count(const std::vector<uint64_t> &windows, G &g, WideCell *gc, uint64_t m_last,
                  Tally tally = kClients)
{
    if (m_last < g.first)
        return;
    advance(windows, g, gc, m_last);
    for (size_t w = 0; w < windows.size(); w++) {
        uint64_t len = windows[w], bm = m_last / len, bg = g.last / len;
        if (bm == bg)
            detail::add((gc[w].*tally)[0], 1);
        else if (bm + 1 == bg)
            detail::add((gc[w].*tally)[1], 1);
    }
}

// The entity's value over window w at time t.
template <class E, class C>
WindowValue window_value(const std::vector<uint64_t> &windows, const E &e, const C *cells, size_t w,
                         uint64_t t, Estimate est)
{
    uint64_t len = windows[w];
    BucketPair p = view(cells[w], e.last, t, len, e.conc);
    auto pick = [&](uint64_t cur, uint64_t prev) {
        switch (est) {
        case Estimate::lower: return cur;
        case Estimate::upper: return sat_add(cur, prev);
        case Estimate::sliding: break;
        }
        return sliding_estimate(cur, prev, t, len);
    };
    auto clamp32 = [](uint64_t v) { return v > UINT32_MAX ? UINT32_MAX : uint32_t(v); };
    WindowValue v;
    v.bytes_out = pick(p.out[0], p.out[1]);
    v.bytes_in = pick(p.in[0], p.in[1]);
    v.tls_flows = pick(p.flows[0], p.flows[1]);
    v.requests = pick(p.requests[0], p.requests[1]);
    bool window_is_bucket = t % len == len - 1;
    uint64_t peak = p.peak[0];
    if (est == Estimate::upper || (est == Estimate::sliding && !window_is_bucket))
        peak = std::max(peak, p.peak[1]);
    v.peak_concurrent = clamp32(peak);
    if constexpr (kHasMembers<C>) {
        v.distinct_clients = clamp32(pick(p.members[0], p.members[1]));
        v.distinct_subnets = clamp32(pick(p.subnets[0], p.subnets[1]));
    }
    return v;
}

}  // namespace exf::agg::detail
