// SPDX-License-Identifier: Apache-2.0
#pragma once
// Internal to the aggregator: each entity kind's header in the state file.
// Client, subnet, client x API host and host headers are plain bytes; API
// host and cohort headers hold a string. API host ids (slot and generation)
// are written as they are and re-mapped when read (SavedIds), since the
// slots differ. Every reader throws exf::Error on a damaged header.
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <unordered_map>

#include "aggregate/entities.h"
#include "aggregate/entity_key.h"
#include "common/error.h"
#include "common/state_codec.h"

namespace exf::agg::detail {

// The bytes per API host and per cohort header that StateReader::count
// expects, to reject a count the bytes left cannot hold.
inline constexpr size_t kApiHostHeaderMin = 32;
inline constexpr size_t kCohortHeaderMin = 32 + sizeof(TopSnis<uint64_t>);
inline constexpr size_t kJa4HeaderMin = 32 + sizeof(TopSnis<uint64_t>) + sizeof(TopClients);
inline constexpr size_t kJa4SniHeaderMin = 40 + sizeof(TopClients);

// Whether two headers name the same entity.
inline bool same_key(const ClientEntry &a, const ClientEntry &b)
{
    return a.prefix == b.prefix && a.addr == b.addr;
}
inline bool same_key(const SubnetEntry &a, const SubnetEntry &b)
{
    return a.prefix == b.prefix && a.addr == b.addr;
}
inline bool same_key(const ClientApiHostEntry &a, const ClientApiHostEntry &b)
{
    return a.api_host_id == b.api_host_id && a.prefix == b.prefix && a.addr == b.addr;
}
inline bool same_key(const ApiHostEntry &a, const ApiHostEntry &b) { return a.name == b.name; }
inline bool same_key(const CohortEntry &a, const CohortEntry &b) { return a.label == b.label; }
inline bool same_key(const HostEntry &, const HostEntry &) { return true; }
inline bool same_key(const Ja4Entry &a, const Ja4Entry &b) { return a.ja4 == b.ja4; }
inline bool same_key(const Ja4SniEntry &a, const Ja4SniEntry &b)
{
    return a.ja4 == b.ja4 && a.sni == b.sni;
}
inline bool same_key(const MemberEntry &a, const MemberEntry &b)
{
    return a.group == b.group && a.group_kind == b.group_kind && a.role == b.role &&
           a.prefix == b.prefix && a.addr == b.addr;
}

// --- writing -----------------------------------------------------------------
inline void write_header(StateWriter &w, const ApiHostEntry &e, uint32_t id)
{
    w.u32(id);
    w.str(e.name);
    w.u64(e.first);
    w.u64(e.last);
    w.u32(e.conc);
}

inline void write_header(StateWriter &w, const CohortEntry &e)
{
    w.str(e.label);
    w.pod(e.top);
    w.u64(e.first);
    w.u64(e.last);
    w.u32(e.conc);
}

inline void write_header(StateWriter &w, const Ja4Entry &e)
{
    w.str(e.ja4);
    w.pod(e.top);
    w.pod(e.clients);
    w.u64(e.first);
    w.u64(e.last);
    w.u32(e.conc);
}

inline void write_header(StateWriter &w, const Ja4SniEntry &e)
{
    w.str(e.ja4);
    w.str(e.sni);
    w.pod(e.clients);
    w.u64(e.first);
    w.u64(e.last);
    w.u32(e.conc);
}

template <class E>
void write_header(StateWriter &w, const E &e)
{
    w.pod(e);
}

// --- reading -----------------------------------------------------------------
// Saved API host id -> its id now (0 when it was left out).
struct SavedIds {
    std::unordered_map<uint32_t, uint32_t> now;

    uint32_t id(uint32_t saved) const
    {
        auto it = now.find(saved);
        return it == now.end() ? 0 : it->second;
    }
    template <class W>
    void remap(TopSnis<W> &top) const
    {
        for (int k = 0; k < kTopK; k++)
            if ((top.id[k] = id(top.id[k])) == 0)
                top.w[k] = 0;
    }
};

inline std::string read_name(StateReader &r)
{
    std::string n = r.str();
    if (n.empty() || n.size() > kMaxSniBytes)
        throw Error("state: an API host or cohort name is empty or too long");
    return n;
}

// An API host's header and the id it was saved with.
inline ApiHostEntry read_api_host_header(StateReader &r, uint32_t &saved_id)
{
    ApiHostEntry e;
    saved_id = r.u32();
    e.name = read_name(r);
    e.first = r.u64();
    e.last = r.u64();
    e.conc = r.u32();
    e.live = true;
    return e;
}

inline CohortEntry read_cohort_header(StateReader &r, const SavedIds &ids)
{
    CohortEntry e;
    e.label = read_name(r);
    e.top = r.pod<TopSnis<uint64_t>>();
    e.first = r.u64();
    e.last = r.u64();
    e.conc = r.u32();
    e.live = true;
    ids.remap(e.top);
    return e;
}

inline std::string read_ja4(StateReader &r)
{
    std::string n = r.str();
    if (n.empty() || n.size() > kMaxJa4Bytes)
        throw Error("state: a JA4 is empty or too long");
    return n;
}

inline Ja4Entry read_ja4_header(StateReader &r, const SavedIds &ids)
{
    Ja4Entry e;
    e.ja4 = read_ja4(r);
    e.top = r.pod<TopSnis<uint64_t>>();
    e.clients = r.pod<TopClients>();
    e.first = r.u64();
    e.last = r.u64();
    e.conc = r.u32();
    e.live = true;
    ids.remap(e.top);
    return e;
}

inline Ja4SniEntry read_ja4_sni_header(StateReader &r)
{
    Ja4SniEntry e;
    e.ja4 = read_ja4(r);
    e.sni = read_name(r);
    e.clients = r.pod<TopClients>();
    e.first = r.u64();
    e.last = r.u64();
    e.conc = r.u32();
    e.live = true;
    return e;
}

// A plain-bytes header; nullopt when its API host was left out.
template <class E>
std::optional<E> read_plain_header(StateReader &r, const SavedIds &ids)
{
    E e = r.pod<E>();
    // A damaged flag byte must not be read as a bool (undefined
    // behaviour): look at its byte first.
    if constexpr (requires { e.live; }) {
        unsigned char flag;
        std::memcpy(&flag, &e.live, 1);
        if (flag > 1)
            throw Error("state: an entity's live flag is neither 0 nor 1");
    }
    if constexpr (requires { e.prefix; })
        if (e.prefix > 128)
            throw Error("state: an entity's prefix is out of range");
    if constexpr (requires { e.top; })
        ids.remap(e.top);
    if constexpr (requires { e.api_host_id; })
        if ((e.api_host_id = ids.id(e.api_host_id)) == 0)
            return std::nullopt;  // its API host was left out (evicted while reading)
    return e;
}

}  // namespace exf::agg::detail
