// SPDX-License-Identifier: Apache-2.0
#pragma once
// Sliding windows as two fixed buckets (the sliding-window counter of rate
// limiters).
//
// A window of length L milliseconds splits time into fixed buckets
// [bL, (b+1)L). Each entity keeps, per window, the counters of the current
// bucket (`cur`, the bucket holding the entity's last update) and of the one
// before (`prev`). At a query time t in bucket b, with r = t mod L, the window
// is the last L milliseconds (t-L, t]: the first r+1 milliseconds of bucket b
// (all of it so far) and the last L-1-r milliseconds of bucket b-1. Its value
// is estimated by assuming bucket b-1 was uniform:
//
//     estimate = cur + floor(prev * (L-1-r) / L)
//
// Error bound (counters: bytes, flows, requests). The true value V over (t-L, t] lies
// in [cur, cur + prev], and so does the estimate, so
//
//     |estimate - V| <= prev * max((L-1-r)/L, (r+1)/L) <= prev,
//
// i.e. at most the previous fixed bucket's total. Precisely, the estimate
// over-counts by at most prev*(L-1-r)/L (traffic at the start of bucket b-1,
// already out of the window) and under-counts by at most prev*(r+1)/L
// (traffic at the end of bucket b-1, still in the window). It is exact
// when prev = 0, at r = L-1 (the last millisecond of a bucket, where the
// window is the bucket), and for a constant rate. `lower` (cur) and `upper`
// (cur + prev) bound V from both sides and are exact bounds. An entity whose
// last update is more than one bucket old reads 0 for the window.
//
// Peak concurrent flows: the maximum of the current bucket's peak and, when
// the window reaches into the previous bucket (r < L-1), the previous one's.
// It never under-reports; it may report a peak up to L-1-r ms older than the
// window's start (so it is the peak over at most the last 2L).
//
// Distinct clients of a group (subnet, cohort, host; API host over its
// client x API host entities): members are counted in the bucket holding
// their last activity, n_cur and n_prev; each member is in at most one. The
// true count over the window lies in [n_cur, n_cur + n_prev] and the estimate
// n_cur + floor(n_prev * (L-1-r) / L) has the same bound: |error| <= n_prev.
// Members dropped by LRU eviction are no longer counted (see aggregator.h).
// Distinct subnets of a group (every group but subnet) are counted the same
// way, a member being one of the group's clients' subnets.
//
// Counter widths: compact cells (clients, client x API host) hold bytes in
// 48 bits (saturating at 256 TiB per bucket), flows and requests in 32 bits
// and peak concurrency in 16 bits (saturating at 65535); wide cells (every
// group) in 64, 64 and 32 bits.
//
// Time only moves forward (aggregator.h): every update to an entity happens at
// or after its previous one, so one last-update time per entity gives every
// window's current bucket index (last / L).
#include <cstdint>
#include <string>
#include <vector>

namespace exf::agg {

// Longest window accepted (keeps (L-1)^2 inside 64 bits).
inline constexpr uint64_t kMaxWindowMs = 30ull * 24 * 3600 * 1000;

enum class Estimate : uint8_t {
    sliding,  // cur + prev * remaining fraction: the documented estimate
    lower,    // cur: only the current fixed bucket (never over-counts)
    upper,    // cur + prev: the last two fixed buckets (never under-counts)
};

// "1m", "10m", "1h", "24h", "90s", "1500ms": shortest exact form.
std::string window_name(uint64_t ms);

// cur + floor(prev * (L-1-r) / L), r = t mod L, saturating.
uint64_t sliding_estimate(uint64_t cur, uint64_t prev, uint64_t t, uint64_t len_ms);

inline uint64_t sat_add(uint64_t a, uint64_t b) { return a + b < a ? UINT64_MAX : a + b; }

// 48-bit unsigned counter in three 16-bit words (2-byte aligned, 6 bytes).
struct U48 {
    static constexpr uint64_t kMax = (1ull << 48) - 1;
    uint16_t w[3] = {0, 0, 0};
    uint64_t get() const
    {
        return uint64_t(w[0]) | (uint64_t(w[1]) << 16) | (uint64_t(w[2]) << 32);
    }
    void set(uint64_t v)
    {
        if (v > kMax)
            v = kMax;
        w[0] = uint16_t(v);
        w[1] = uint16_t(v >> 16);
        w[2] = uint16_t(v >> 32);
    }
};

namespace detail {
inline uint64_t load(uint64_t v) { return v; }
inline uint64_t load(uint32_t v) { return v; }
inline uint64_t load(uint16_t v) { return v; }
inline uint64_t load(const U48 &v) { return v.get(); }
inline void store(uint64_t &x, uint64_t v) { x = v; }
inline void store(uint32_t &x, uint64_t v) { x = v > UINT32_MAX ? UINT32_MAX : uint32_t(v); }
inline void store(uint16_t &x, uint64_t v) { x = v > UINT16_MAX ? UINT16_MAX : uint16_t(v); }
inline void store(U48 &x, uint64_t v) { x.set(v); }
template <class T>
void add(T &x, uint64_t d)
{
    store(x, sat_add(load(x), d));
}
}  // namespace detail

// Index 0 is the current bucket, 1 the previous one.
struct CompactCell {
    U48 out[2], in[2];
    uint32_t flows[2] = {0, 0};
    uint32_t requests[2] = {0, 0};  // API calls (docs/datapath.md, "Requests")
    uint16_t peak[2] = {0, 0};
};
static_assert(sizeof(CompactCell) == 44);

struct WideCell {
    uint64_t out[2] = {0, 0}, in[2] = {0, 0}, flows[2] = {0, 0}, requests[2] = {0, 0};
    uint32_t peak[2] = {0, 0};
    uint32_t members[2] = {0, 0};  // distinct clients (groups only)
    uint32_t subnets[2] = {0, 0};  // distinct subnets of those clients (groups only)
};
static_assert(sizeof(WideCell) == 88);

template <class C>
constexpr bool kHasMembers = requires(C c)
{
    c.members[0];
};

// Moves a cell whose current bucket holds `last` to the bucket of `now`
// (now >= last). `concurrent` is the entity's open flow count, which starts
// the new buckets' peaks.
template <class C>
void roll(C &c, uint64_t last, uint64_t now, uint64_t len, uint64_t concurrent)
{
    uint64_t b0 = last / len, b1 = now / len;
    if (b1 <= b0)
        return;
    using detail::store;
    if (b1 == b0 + 1) {
        c.out[1] = c.out[0];
        c.in[1] = c.in[0];
        c.flows[1] = c.flows[0];
        c.requests[1] = c.requests[0];
        c.peak[1] = c.peak[0];
        if constexpr (kHasMembers<C>) {
            c.members[1] = c.members[0];
            c.subnets[1] = c.subnets[0];
        }
    } else {
        store(c.out[1], 0);
        store(c.in[1], 0);
        store(c.flows[1], 0);
        store(c.requests[1], 0);
        store(c.peak[1], concurrent);
        if constexpr (kHasMembers<C>)
            c.members[1] = c.subnets[1] = 0;
    }
    store(c.out[0], 0);
    store(c.in[0], 0);
    store(c.flows[0], 0);
    store(c.requests[0], 0);
    store(c.peak[0], concurrent);
    if constexpr (kHasMembers<C>)
        c.members[0] = c.subnets[0] = 0;
}

// The two buckets of a cell as seen from query time t >= last, without
// changing it.
struct BucketPair {
    uint64_t out[2], in[2], flows[2], requests[2], peak[2], members[2], subnets[2];
};

template <class C>
BucketPair view(const C &c, uint64_t last, uint64_t t, uint64_t len, uint64_t concurrent)
{
    using detail::load;
    BucketPair p{};
    uint64_t b0 = last / len, b1 = t / len;
    if (b1 <= b0) {
        for (int i = 0; i < 2; i++) {
            p.out[i] = load(c.out[i]);
            p.in[i] = load(c.in[i]);
            p.flows[i] = load(c.flows[i]);
            p.requests[i] = load(c.requests[i]);
            p.peak[i] = load(c.peak[i]);
            if constexpr (kHasMembers<C>) {
                p.members[i] = c.members[i];
                p.subnets[i] = c.subnets[i];
            }
        }
    } else if (b1 == b0 + 1) {
        p.out[1] = load(c.out[0]);
        p.in[1] = load(c.in[0]);
        p.flows[1] = load(c.flows[0]);
        p.requests[1] = load(c.requests[0]);
        p.peak[1] = load(c.peak[0]);
        if constexpr (kHasMembers<C>) {
            p.members[1] = c.members[0];
            p.subnets[1] = c.subnets[0];
        }
        p.peak[0] = concurrent;
    } else {
        p.peak[0] = p.peak[1] = concurrent;
    }
    return p;
}

// Sum of two cells that were rolled to the same time (merging entities).
template <class C>
void merge_into(C &dst, const C &src)
{
    using detail::add;
    using detail::load;
    for (int i = 0; i < 2; i++) {
        add(dst.out[i], load(src.out[i]));
        add(dst.in[i], load(src.in[i]));
        add(dst.flows[i], load(src.flows[i]));
        add(dst.requests[i], load(src.requests[i]));
        add(dst.peak[i], load(src.peak[i]));  // sum: never under-reports
        if constexpr (kHasMembers<C>) {
            add(dst.members[i], src.members[i]);
            add(dst.subnets[i], src.subnets[i]);
        }
    }
}

}  // namespace exf::agg
