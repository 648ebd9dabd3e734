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

// Space-saving over kTopK ids (Metwally et al.): a new id takes the
// lightest slot and inherits its weight, so a weight over-counts by at most
// the lightest weight at the time it was taken. Id{} is "none".
template <class Id, class W>
struct SpaceSaving {
    Id id[kTopK] = {};
    W w[kTopK] = {};

    void add(const Id &key, uint64_t delta)
    {
        int empty = -1;
        for (int i = 0; i < kTopK; i++) {
            if (id[i] == key) {
                detail::add(w[i], delta);
                return;
            }
            if (id[i] == Id{} && empty < 0)
                empty = i;
        }
        if (empty >= 0) {
            id[empty] = key;
            detail::store(w[empty], delta);
            return;
        }
        if (delta == 0)
            return;
        int min_i = 0;
        for (int i = 1; i < kTopK; i++)
            if (w[i] < w[min_i])
                min_i = i;
        id[min_i] = key;
        detail::add(w[min_i], delta);
    }
};

// The heaviest API hosts (by their ids, api_host_ids.h).
template <class W>
using TopSnis = SpaceSaving<uint32_t, W>;

// A client entity's key (prefix 0: none; client prefixes are at least 8).
struct ClientId {
    Addr16 addr{};
    uint8_t prefix = 0;
    bool operator==(const ClientId &) const = default;
};
// A fingerprint's heaviest clients, by TLS flows opened.
using TopClients = SpaceSaving<ClientId, uint64_t>;

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

struct Ja4Entry {  // a fingerprint cohort
    std::string ja4;
    uint64_t first = 0, last = 0;
    TopSnis<uint64_t> top;
    TopClients clients;
    uint32_t conc = 0;
    bool live = false;
};

struct Ja4SniEntry {  // fingerprint x API host
    std::string ja4, sni;
    uint64_t first = 0, last = 0;
    TopClients clients;
    uint32_t conc = 0;
    bool live = false;
};

// One member of a group for the distinct counts the group's kind has no
// member entities for: a client of a fingerprint (ja4, ja4_sni), a subnet
// of a group (counts_subnets()). `last` is the member's last activity in
// the group, as a client entity's is for its subnet. The group is named by
// its kind and key hash (EntityHasher): a group evicted and created again
// under the same key is the same group, and member_seen()/member_gone()
// tell by the times whether the member was counted in it.
enum class MemberRole : uint8_t { client = 1, subnet = 2 };
struct MemberEntry {
    Addr16 addr{};  // the client or subnet, masked
    uint64_t first = 0, last = 0;
    uint64_t group = 0;  // the group's key hash
    uint8_t group_kind = 0;
    uint8_t prefix = 0;
    MemberRole role = MemberRole::client;
    bool live = false;
};

template <class E>
constexpr bool kHasTop = requires(E e)
{
    e.top;
};
template <class E>
constexpr bool kHasTopClients = requires(E e)
{
    e.clients;
};

}  // namespace exf::agg::detail
