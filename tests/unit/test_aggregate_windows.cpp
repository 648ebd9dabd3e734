// SPDX-License-Identifier: Apache-2.0
// Sliding windows (two fixed buckets): values at bucket boundaries, the
// documented error bound against an exact reference, peaks, clock handling.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>

#include "aggregate/aggregator.h"
#include "aggregate/windows.h"
#include "common/state_codec.h"
#include "support/addr.h"

using namespace exf;
using namespace exf::agg;

namespace {
constexpr auto A = exf::test::addr_of;

Traffic out(uint64_t bytes, uint64_t flows = 0)
{
    Traffic t;
    t.bytes_out = bytes;
    t.bytes_in = bytes / 10;
    t.flows_opened = flows;
    return t;
}

AggConfig one_window(uint64_t ms)
{
    AggConfig c;
    c.windows_ms = {ms};
    return c;
}
}  // namespace

TEST_CASE("Window names", "[aggregate]")
{
    CHECK(window_name(60000) == "1m");
    CHECK(window_name(600000) == "10m");
    CHECK(window_name(3600000) == "1h");
    CHECK(window_name(86400000) == "24h");
    CHECK(window_name(7 * 86400000ull) == "7d");
    CHECK(window_name(90000) == "90s");
    CHECK(window_name(1500) == "1500ms");
}

TEST_CASE("sliding_estimate weighs the previous bucket by what remains in the window",
          "[aggregate]")
{
    // L = 1000: at r = 0 the window holds 999 ms of the previous bucket.
    CHECK(sliding_estimate(5, 1000, 2000, 1000) == 5 + 999);
    CHECK(sliding_estimate(5, 1000, 2499, 1000) == 5 + 500);
    CHECK(sliding_estimate(5, 1000, 2999, 1000) == 5);  // window == bucket: exact
    CHECK(sliding_estimate(0, UINT64_MAX, 2000, 1000) ==
          UINT64_MAX / 1000 * 999 + (UINT64_MAX % 1000) * 999 / 1000);
    CHECK(sliding_estimate(UINT64_MAX, UINT64_MAX, 2000, 1000) == UINT64_MAX);  // saturates
    // Largest window: no overflow in the weighting.
    uint64_t L = kMaxWindowMs;
    CHECK(sliding_estimate(0, L * 3, 5 * L, L) == 3 * (L - 1));
}

TEST_CASE("Each default window reads exact values inside its first bucket", "[aggregate]")
{
    Aggregator agg;
    REQUIRE(agg.windows() == 4);
    auto c = A("10.0.0.1");
    auto key = agg.client_key(c);
    agg.add_traffic(0, c, "", out(100, 1));
    agg.add_traffic(59'999, c, "", out(50, 1));
    for (size_t w = 0; w < 4; w++) {
        auto v = agg.value(EntityKind::client, key, w, 59'999);
        CHECK(v.bytes_out == 150);
        CHECK(v.bytes_in == 15);
        CHECK(v.tls_flows == 2);
    }
    // 1 ms later the 1m window starts a new bucket: the first update (t=0) is
    // out of (t-60s, t] and the estimate counts prev * 59999/60000.
    auto v = agg.value(EntityKind::client, key, 0, 60'000);
    CHECK(v.bytes_out == 149);  // floor(150 * 59999 / 60000)
    CHECK(agg.value(EntityKind::client, key, 0, 60'000, Estimate::lower).bytes_out == 0);
    CHECK(agg.value(EntityKind::client, key, 0, 60'000, Estimate::upper).bytes_out == 150);
    // Last millisecond of the next bucket: the window is that bucket, exactly.
    CHECK(agg.value(EntityKind::client, key, 0, 119'999).bytes_out == 0);
    CHECK(agg.value(EntityKind::client, key, 1, 119'999).bytes_out == 150);
    // Two buckets later nothing is left.
    CHECK(agg.value(EntityKind::client, key, 0, 120'000).bytes_out == 0);
    CHECK(agg.value(EntityKind::client, key, 0, 120'000, Estimate::upper).bytes_out == 0);
    // The longer windows still hold it all until their own boundary.
    CHECK(agg.value(EntityKind::client, key, 1, 599'999).bytes_out == 150);
    CHECK(agg.value(EntityKind::client, key, 2, 3'599'999).bytes_out == 150);
    CHECK(agg.value(EntityKind::client, key, 3, 86'399'999).bytes_out == 150);
    CHECK(agg.value(EntityKind::client, key, 3, 86'400'000, Estimate::lower).bytes_out == 0);
    CHECK(agg.value(EntityKind::client, key, 3, 172'799'999).bytes_out == 0);
}

TEST_CASE("Bucket boundaries of a 10 s window", "[aggregate]")
{
    Aggregator agg(one_window(10'000));
    auto c = A("2001:db8::1");
    auto key = agg.client_key(c);
    agg.add_traffic(10'000, c, "", out(1000));  // first ms of bucket 1
    agg.add_traffic(19'999, c, "", out(10));    // last ms of bucket 1
    agg.add_traffic(20'000, c, "", out(1));     // first ms of bucket 2
    // At 20000 the window is (10000, 20000]: the true value is 11.
    auto v = agg.value(EntityKind::client, key, 0, 20'000);
    CHECK(v.bytes_out == 1 + 1010 * 9999 / 10000);
    CHECK(agg.value(EntityKind::client, key, 0, 20'000, Estimate::lower).bytes_out == 1);
    CHECK(agg.value(EntityKind::client, key, 0, 20'000, Estimate::upper).bytes_out == 1011);
    // At 29999 the window is bucket 2 exactly.
    CHECK(agg.value(EntityKind::client, key, 0, 29'999).bytes_out == 1);
    // At 25000: 1 + 1010 * 4999/10000.
    CHECK(agg.value(EntityKind::client, key, 0, 25'000).bytes_out == 1 + 1010 * 4999 / 10000);
    // An update skipping a bucket drops both old buckets.
    agg.add_traffic(40'000, c, "", out(7));
    CHECK(agg.value(EntityKind::client, key, 0, 40'000, Estimate::upper).bytes_out == 7);
}

TEST_CASE("The sliding estimate stays within the documented bound of an exact window",
          "[aggregate]")
{
    std::mt19937_64 rng(42);
    for (uint64_t L : {1'000ull, 60'000ull, 3'600'000ull}) {
        Aggregator agg(one_window(L));
        auto c = A("10.1.1.1");
        auto key = agg.client_key(c);
        std::vector<std::pair<uint64_t, uint64_t>> events;  // time, bytes
        uint64_t t = 5 * L + rng() % L;
        for (int i = 0; i < 3000; i++) {
            // Bursty: mostly small steps, sometimes long gaps.
            t += (rng() % 10 == 0) ? rng() % (2 * L) : rng() % (L / 50 + 1);
            uint64_t bytes = (rng() % 20 == 0) ? 1'000'000 + rng() % 1'000'000 : rng() % 5000;
            agg.add_traffic(t, c, "", out(bytes));
            events.push_back({t, bytes});
            // Query a little later (reads never move the clock).
            uint64_t q = t + rng() % (L / 4 + 1);
            uint64_t exact = 0;
            for (auto &[et, b] : events)
                if (et + L > q && et <= q)
                    exact += b;
            auto s = agg.value(EntityKind::client, key, 0, q);
            auto lo = agg.value(EntityKind::client, key, 0, q, Estimate::lower);
            auto hi = agg.value(EntityKind::client, key, 0, q, Estimate::upper);
            INFO("L=" << L << " q=" << q);
            REQUIRE(lo.bytes_out <= exact);
            REQUIRE(exact <= hi.bytes_out);
            REQUIRE(lo.bytes_out <= s.bytes_out);
            REQUIRE(s.bytes_out <= hi.bytes_out);
            uint64_t prev = hi.bytes_out - lo.bytes_out;
            uint64_t err = s.bytes_out > exact ? s.bytes_out - exact : exact - s.bytes_out;
            REQUIRE(err <= prev);
            // The finer bound: over by <= prev*(L-1-r)/L, under by <= prev*(r+1)/L (+2 for the
            // floors).
            uint64_t r = q % L;
            if (s.bytes_out > exact)
                REQUIRE(err <= prev * (L - 1 - r) / L + 2);
            else
                REQUIRE(err <= prev * (r + 1) / L + 2);
            if (r == L - 1)
                REQUIRE(s.bytes_out == exact);
        }
    }
}

TEST_CASE("A constant rate reads exactly", "[aggregate]")
{
    Aggregator agg(one_window(1000));
    auto c = A("10.1.1.2");
    auto key = agg.client_key(c);
    for (uint64_t t = 0; t < 5000; t++)
        agg.add_traffic(t, c, "", out(3));
    // Window (3999, 4999] holds 1000 ms * 3 bytes.
    CHECK(agg.value(EntityKind::client, key, 0, 4999).bytes_out == 3000);
    // Mid-bucket, the uniform previous bucket is weighted exactly.
    for (uint64_t t = 5000; t <= 5499; t++)
        agg.add_traffic(t, c, "", out(3));
    // (4499, 5499]: 500 ms of each bucket; 500*3 + 3000 * 500/1000 = 3000.
    CHECK(agg.value(EntityKind::client, key, 0, 5499).bytes_out == 3000);
}

TEST_CASE("Peak concurrent flows per window", "[aggregate]")
{
    Aggregator agg(one_window(10'000));
    auto c = A("10.2.0.1");
    auto key = agg.client_key(c);
    for (int i = 0; i < 5; i++)
        agg.flow_opened(1000 + i, c, "api.example.com");
    for (int i = 0; i < 4; i++)
        agg.flow_closed(2000 + i, c, "api.example.com");
    auto ref = agg.find(EntityKind::client, key);
    REQUIRE(ref);
    CHECK(ref->concurrent() == 1);
    CHECK(agg.value(EntityKind::client, key, 0, 5000).peak_concurrent == 5);
    // Next bucket: the window still reaches into the first one.
    CHECK(agg.value(EntityKind::client, key, 0, 10'000).peak_concurrent == 5);
    CHECK(agg.value(EntityKind::client, key, 0, 10'000, Estimate::lower).peak_concurrent == 1);
    // At the bucket's last millisecond the window is the bucket: the one open
    // flow is the peak.
    CHECK(agg.value(EntityKind::client, key, 0, 19'999).peak_concurrent == 1);
    // Much later the flow is still open: peak 1.
    CHECK(agg.value(EntityKind::client, key, 0, 100'000).peak_concurrent == 1);
    // The same holds for every entity the flows touched.
    CHECK(agg.value(EntityKind::host, host_key(), 0, 5000).peak_concurrent == 5);
    CHECK(agg.value(EntityKind::api_host, agg.api_host_key("api.example.com"), 0, 5000)
              .peak_concurrent == 5);
    CHECK(agg.value(EntityKind::subnet, agg.subnet_key(c), 0, 5000).peak_concurrent == 5);
    CHECK(agg.value(EntityKind::client_api_host, agg.client_api_key(c, "api.example.com"), 0, 5000)
              .peak_concurrent == 5);
    // A new bucket's peak starts at the flows still open.
    agg.flow_opened(30'000, c, "api.example.com");
    CHECK(agg.value(EntityKind::client, key, 0, 30'000).peak_concurrent == 2);
    // Closing more than was opened stops at 0; closing creates nothing.
    for (int i = 0; i < 5; i++)
        agg.flow_closed(30'001, c, "api.example.com");
    CHECK(agg.find(EntityKind::client, key)->concurrent() == 0);
    agg.flow_closed(30'002, A("10.9.9.9"), "other.example.com");
    CHECK_FALSE(agg.find(EntityKind::client, agg.client_key(A("10.9.9.9"))));
    CHECK_FALSE(agg.find(EntityKind::api_host, agg.api_host_key("other.example.com")));
}

TEST_CASE("Peak bounds hold against an exact reference", "[aggregate]")
{
    std::mt19937_64 rng(7);
    const uint64_t L = 5000;
    Aggregator agg(one_window(L));
    auto c = A("10.3.0.1");
    auto key = agg.client_key(c);
    std::vector<std::pair<uint64_t, int>> states;  // time, concurrency after the event
    int open = 0;
    uint64_t t = 0;
    for (int i = 0; i < 4000; i++) {
        t += rng() % 400;
        if (open > 0 && rng() % 2) {
            agg.flow_closed(t, c, "");
            open--;
        } else {
            agg.flow_opened(t, c, "");
            open++;
        }
        states.push_back({t, open});
        uint64_t q = t + rng() % 2000;
        // Exact peak over (q-L, q]: the level at the window's start and every
        // level reached inside it.
        int peak = 0;
        for (auto &[st, level] : states) {
            if (st + L <= q)
                peak = level;  // the level carried into the window
            else
                break;
        }
        for (auto &[st, level] : states)
            if (st + L > q)
                peak = std::max(peak, level);
        auto lo = agg.value(EntityKind::client, key, 0, q, Estimate::lower).peak_concurrent;
        auto s = agg.value(EntityKind::client, key, 0, q).peak_concurrent;
        auto hi = agg.value(EntityKind::client, key, 0, q, Estimate::upper).peak_concurrent;
        INFO("q=" << q);
        REQUIRE(lo <= uint32_t(peak));
        REQUIRE(uint32_t(peak) <= s);
        REQUIRE(s <= hi);
    }
}

TEST_CASE("Time never goes backward", "[aggregate]")
{
    Aggregator agg(one_window(1000));
    auto c = A("10.4.0.1");
    auto key = agg.client_key(c);
    agg.add_traffic(5500, c, "", out(10));
    // Stamped earlier: counted at the latest time.
    agg.add_traffic(100, c, "", out(5));
    CHECK(agg.clock_ms() == 5500);
    CHECK(agg.value(EntityKind::client, key, 0, 5500).bytes_out == 15);
    // A query before the clock reads at the clock.
    CHECK(agg.value(EntityKind::client, key, 0, 0).bytes_out == 15);
    auto ref = agg.find(EntityKind::client, key);
    CHECK(ref->first_seen_ms() == 5500);
    CHECK(ref->last_seen_ms() == 5500);
}

TEST_CASE("Requests count in every entity kind's windows", "[aggregate][requests]")
{
    AggConfig cfg = one_window(10'000);
    cfg.cohorts = {{A("192.0.2.0"), 24, "lab"}};
    Aggregator agg(cfg);
    constexpr const char *kJa4 = "t13d1812h1_85036bcba153_b26ce05bbdd6";
    auto c = A("192.0.2.7");
    Traffic t = out(4000);
    t.requests = 3;
    agg.add_traffic(10'000, c, "api.example.com", t, kJa4);  // first ms of bucket 1
    t.requests = 1;
    agg.add_traffic(19'999, c, "api.example.com", t, kJa4);  // last ms of bucket 1
    Traffic client_only = out(100);
    client_only.requests = 2;                     // no SNI, no JA4: the client's groups only
    agg.add_traffic(20'000, c, "", client_only);  // first ms of bucket 2
    const std::pair<EntityKind, EntityKey> all[] = {
        {EntityKind::client, agg.client_key(c)},
        {EntityKind::subnet, agg.subnet_key(c)},
        {EntityKind::cohort, agg.cohort_key("lab")},
        {EntityKind::host, host_key()},
    };
    for (auto &[k, key] : all) {
        INFO(kind_name(k));
        // (10000, 20000]: 2 now plus 4 weighted by the 9999 ms still inside.
        CHECK(agg.value(k, key, 0, 20'000).requests == 2 + 4 * 9999 / 10000);
        CHECK(agg.value(k, key, 0, 20'000, Estimate::lower).requests == 2);
        CHECK(agg.value(k, key, 0, 20'000, Estimate::upper).requests == 6);
        CHECK(agg.value(k, key, 0, 29'999).requests == 2);  // the window is bucket 2
        CHECK(agg.value(k, key, 0, 40'000, Estimate::upper).requests == 0);  // two buckets on
    }
    const std::pair<EntityKind, EntityKey> named[] = {
        {EntityKind::api_host, agg.api_host_key("api.example.com")},
        {EntityKind::client_api_host, agg.client_api_key(c, "api.example.com")},
        {EntityKind::ja4, agg.ja4_key(kJa4)},
        {EntityKind::ja4_sni, agg.ja4_key(kJa4, "api.example.com")},
    };
    for (auto &[k, key] : named) {
        INFO(kind_name(k));
        // Read at the clock (20000): bucket 1 weighted by the 9999 ms still inside.
        CHECK(agg.value(k, key, 0, 20'000, Estimate::upper).requests == 4);
        CHECK(agg.value(k, key, 0, 20'000).requests == 4 * 9999 / 10000);
        CHECK(agg.value(k, key, 0, 25'000).requests == 4 * 4999 / 10000);
    }
    // top() sorts by requests and leaves out entities with none.
    Traffic busy = out(10);
    busy.requests = 50;
    agg.add_traffic(20'500, A("198.51.100.9"), "", busy);
    agg.add_traffic(20'500, A("203.0.113.9"), "", out(1'000'000));
    auto rows = agg.top(EntityKind::client, 0, SortBy::requests, 10, 20'500);
    REQUIRE(rows.size() == 2);
    CHECK(format_key(EntityKind::client, rows[0].key) == "198.51.100.9");
    CHECK(rows[0].value.requests == 50);
    CHECK(format_key(EntityKind::client, rows[1].key) == "192.0.2.7");
}

TEST_CASE("Requests merge, saturate and survive the state file", "[aggregate][requests]")
{
    Aggregator agg(one_window(60'000));
    Traffic t = out(10);
    t.requests = 7;
    agg.add_traffic(1000, A("192.0.2.1"), "", t);
    agg.add_traffic(1000, A("192.0.2.2"), "", t);
    // A shorter client prefix merges the two clients: their requests add up.
    AggConfig merged = agg.config();
    merged.client_prefix_v4 = 24;
    std::string why;
    REQUIRE(agg.reconfigure(merged, why));
    CHECK(agg.value(EntityKind::client, agg.client_key(A("192.0.2.1")), 0, 1000).requests == 14);
    // A client's 32-bit bucket saturates rather than wrapping.
    t.requests = UINT32_MAX;
    agg.add_traffic(1000, A("192.0.2.1"), "", t);
    CHECK(agg.value(EntityKind::client, agg.client_key(A("192.0.2.1")), 0, 1000).requests ==
          UINT32_MAX);
    CHECK(agg.value(EntityKind::subnet, agg.subnet_key(A("192.0.2.1")), 0, 1000).requests ==
          14 + uint64_t(UINT32_MAX));
    StateWriter w;
    agg.save_state(w);
    Aggregator back(agg.config());
    StateReader r(w.bytes());
    back.restore_state(r);
    CHECK(back.value(EntityKind::client, back.client_key(A("192.0.2.1")), 0, 1000).requests ==
          UINT32_MAX);
    CHECK(back.value(EntityKind::host, host_key(), 0, 1000).requests == 14 + uint64_t(UINT32_MAX));
}
