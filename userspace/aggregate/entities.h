// SPDX-License-Identifier: Apache-2.0
#pragma once
// Internal to the aggregator: the header of each entity kind, as its
// EntityTable stores it next to the entity's window cells. Every header has
// first/last (ms), conc (open flows) and live; client, subnet and client x
// API host headers are plain bytes (the state file writes them as they are).
#include <cstdint>
#include <string>

#include "aggregate/windows.h"
#include "common/addr.h"

namespace exf::agg::detail {

// How many API hosts an entity's TopSnis tracks.
inline constexpr int kTopK = 4;

// Space-saving over kTopK SNIs (Metwally et al.): a new SNI takes the
// lightest slot and inherits its weight, so a weight over-counts by at most
// the lightest weight at the time it was taken.
template <class W>
struct TopSnis {
    uint32_t id[kTopK] = {};
    W w[kTopK] = {};

    void add(uint32_t sni, uint64_t delta)
    {
        int empty = -1;
        for (int i = 0; i < kTopK; i++) {
            if (id[i] == sni) {
                detail::add(w[i], delta);
                return;
            }
            if (id[i] == 0 && empty < 0)
                empty = i;
        }
        if (empty >= 0) {
            id[empty] = sni;
            detail::store(w[empty], delta);
            return;
        }
        if (delta == 0)
            return;
        int min_i = 0;
        for (int i = 1; i < kTopK; i++)
            if (w[i] < w[min_i])
                min_i = i;
        id[min_i] = sni;
        detail::add(w[min_i], delta);
    }
};

struct ClientEntry {
    Addr16 addr{};
    uint64_t first = 0, last = 0;
    TopSnis<uint32_t> top;  // weights in KiB
    uint16_t conc = 0;
    uint8_t prefix = 0;
    bool live = false;
};
static_assert(sizeof(ClientEntry) == 72, "client header is part of the 256-byte budget");

struct ClientApiHostEntry {  // client x API host
    Addr16 addr{};
    uint64_t first = 0, last = 0;
    uint32_t api_host_id = 0;  // sni_id() of its API host
    uint16_t conc = 0;
    uint8_t prefix = 0;
    bool live = false;
};

struct SubnetEntry {
    Addr16 addr{};
    uint64_t first = 0, last = 0;
    TopSnis<uint64_t> top;
    uint32_t conc = 0;
    uint8_t prefix = 0;
    bool live = false;
};

struct ApiHostEntry {
    std::string name;
    uint64_t first = 0, last = 0;
    uint32_t conc = 0;
    bool live = false;
};

struct CohortEntry {
    std::string label;
    uint64_t first = 0, last = 0;
    TopSnis<uint64_t> top;
    uint32_t conc = 0;
    bool live = false;
};

struct HostEntry {
    uint64_t first = 0, last = 0;
    TopSnis<uint64_t> top;
    uint32_t conc = 0;
    bool live = false;
};

template <class E>
constexpr bool kHasTop = requires(E e)
{
    e.top;
};

}  // namespace exf::agg::detail
