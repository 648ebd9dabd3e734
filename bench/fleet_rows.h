// SPDX-License-Identifier: Apache-2.0
#pragma once
// The generated fleet of bench/fleet.sh: which clients each sensor sees in
// each period, and their rows, built as the exporter builds them
// (fleet::TrafficRow, named by the aggregator's keys). Header-only so that
// a unit test can check the row building without ClickHouse.
//
// The model (docs/fleet.md, "Sizing"):
//  - each sensor sees `clients` clients per minute, out of a fleet-wide
//    pool of `pool` clients (a client spreads over several edge hosts);
//  - a client is active in one period of each minute on a sensor (its
//    index picks which), so a sensor sends clients * period / 60 s rows
//    per period and the fleet sensors * clients rows per minute;
//  - a client always uses the same API host and JA4 (an SDK);
//  - the first kV4Clients clients are IPv4 addresses of the documentation
//    ranges (30 per /24: under the shipped subnet-spread-pull threshold),
//    the others IPv6 /64s, one per /48. 198.51.100.0/24 and
//    2001:db8:1000::/36 are cohorts;
//  - optionally one puller (203.0.113.200) takes `pull_bytes` per 10
//    minutes from pull_from_s to end_s, spread evenly over every sensor and
//    period: a fleet-only alert (no sensor sees more than 1/sensors of it).
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "aggregate/aggregator.h"
#include "aggregate/cohorts.h"
#include "common/addr.h"
#include "fleet/periods.h"

namespace exf::bench {

struct FleetSpec {
    uint32_t sensors = 20;
    uint32_t clients = 5000;              // per sensor and minute
    uint32_t pool = 20000;                // distinct clients fleet-wide
    uint32_t period_s = 10;               // [fleet] interval; divides 60
    uint64_t pull_bytes = 0;              // the puller's bytes per 10 min; 0: none
    uint64_t pull_from_s = 0, end_s = 0;  // the puller's periods
};

inline constexpr uint32_t kV4Clients = 90;
inline constexpr const char *kPuller = "203.0.113.200";

inline uint64_t mix64(uint64_t x)  // splitmix64: fixed pseudo-random figures per row
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

inline std::string sensor_name(uint32_t s)
{
    char b[16];
    std::snprintf(b, sizeof b, "edge-%02u", s);
    return b;
}

inline Addr16 client_addr(uint32_t idx)
{
    char b[64];
    if (idx < kV4Clients) {
        static const char *nets[] = {"192.0.2.", "198.51.100.", "203.0.113."};
        std::snprintf(b, sizeof b, "%s%u", nets[idx % 3], 10 + idx / 3);
    } else {
        std::snprintf(b, sizeof b, "2001:db8:%x::%x", idx, 1 + idx % 7);
    }
    return *parse_addr(b);
}

// The aggregator that names the rows' clients, subnets and cohorts, as the
// daemon's does with the default prefixes.
inline agg::Aggregator fleet_namer()
{
    agg::AggConfig cfg;
    auto cohort = [](const char *addr, uint8_t prefix, const char *label) {
        agg::CohortRule r;
        r.addr = *parse_addr(addr);
        r.prefix = prefix;
        r.label = label;
        return r;
    };
    cfg.cohorts = {cohort("198.51.100.0", 24, "partner-a"),
                   cohort("2001:db8:1000::", 36, "partner-b")};
    return agg::Aggregator(cfg);
}

inline fleet::ClientNames client_names(const agg::Aggregator &namer, const Addr16 &a)
{
    return {agg::format_key(agg::EntityKind::client, namer.client_key(a)),
            agg::format_key(agg::EntityKind::subnet, namer.subnet_key(a)),
            namer.cohort_of(a).value_or("")};
}

// The pool index of the j-th client sensor s sees in minute m.
inline uint32_t client_of(const FleetSpec &f, uint32_t s, uint64_t minute, uint32_t j)
{
    return uint32_t((uint64_t(s) * 997 + minute * 131 + j) % f.pool);
}

// One sensor's rows of the period starting at period_s (a multiple of
// f.period_s).
inline std::vector<fleet::TrafficRow> period_rows(const FleetSpec &f, const agg::Aggregator &namer,
                                                  uint32_t s, uint64_t period_s)
{
    static const char *snis[] = {"api.example.com",    "auth.example.com",   "files.example.com",
                                 "search.example.com", "pay.example.com",    "img.example.net",
                                 "events.example.net", "graphql.example.org"};
    static const char *ja4s[] = {
        "t13d1516h2_8daaf6152771_b186095e22b6", "t13d1715h2_5b57614c22b0_3d5424432f57",
        "t13d311100_e8f1e7e78f70_1f22a2ca17c4", "t12d190800_d83cc789557e_7af1ed941c26",
        "t13d1516h2_8daaf6152771_02713d6af862"};
    uint32_t slots = 60 / f.period_s;
    uint64_t minute = period_s / 60, slot = period_s % 60 / f.period_s;
    std::vector<fleet::TrafficRow> rows;
    rows.reserve(f.clients / slots + 2);
    auto add = [&](const Addr16 &a, uint32_t idx, uint64_t bytes_out) {
        uint64_t r = mix64(period_s * 1315423911ull ^ (uint64_t(s) << 40) ^ idx);
        fleet::TrafficRow row;
        row.period_start_ms = period_s * 1000;
        row.period_ms = f.period_s * 1000;
        row.names = client_names(namer, a);
        row.sni = snis[idx % 8];
        row.ja4 = ja4s[idx % 5];
        row.traffic.bytes_out = bytes_out;
        row.traffic.bytes_in = 2000 + r % 30000;
        row.traffic.pkts_out = bytes_out / 1400 + 1;
        row.traffic.pkts_in = row.traffic.bytes_in / 600 + 1;
        row.traffic.flows_opened = 1 + (r >> 20) % 3;
        row.peak_concurrent = 1 + (r >> 24) % 2;
        rows.push_back(std::move(row));
    };
    for (uint32_t j = 0; j < f.clients; j++) {
        if (j % slots != slot)
            continue;
        uint32_t idx = client_of(f, s, minute, j);
        add(client_addr(idx), idx, 20000 + mix64(idx ^ (period_s << 20) ^ s) % 2000000);
    }
    uint64_t pull_periods = 600 / f.period_s;
    if (f.pull_bytes && period_s >= f.pull_from_s && period_s < f.end_s)
        add(*parse_addr(kPuller), f.pool, f.pull_bytes / (pull_periods * f.sensors));
    return rows;
}

}  // namespace exf::bench
