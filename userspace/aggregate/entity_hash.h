// SPDX-License-Identifier: Apache-2.0
#pragma once
// Internal to the aggregator: the hash of each entity kind's key, for its
// EntityTable's index. Keyed with a per-aggregator random seed: clients
// choose their addresses (and SNIs), so index collisions must not be
// predictable.
#include <cstdint>
#include <cstring>
#include <random>
#include <string_view>

#include "aggregate/entities.h"
#include "aggregate/entity_key.h"
#include "aggregate/entity_table.h"
#include "common/addr.h"

namespace exf::agg::detail {

class EntityHasher {
public:
    EntityHasher()
    {
        std::random_device rd;
        seed_ = (uint64_t(rd()) << 32) ^ rd();
    }

    // An address key: (address, prefix[, API host id]).
    uint64_t addr(const Addr16 &a, uint8_t prefix, uint32_t extra = 0) const
    {
        uint64_t h = mix64(seed_ ^ load64(a.data()) ^
                           (((uint64_t(prefix) << 32) | extra) * 0x9e3779b97f4a7c15ull));
        return mix64(h ^ load64(a.data() + 8));
    }

    // A name key: an API host's name, a cohort's label.
    uint64_t str(std::string_view s) const
    {
        uint64_t h = seed_ ^ (s.size() * 0x9e3779b97f4a7c15ull);
        size_t i = 0;
        for (; i + 8 <= s.size(); i += 8)
            h = mix64(h ^ load64(reinterpret_cast<const uint8_t *>(s.data()) + i));
        uint64_t tail = 0;
        std::memcpy(&tail, s.data() + i, s.size() - i);
        return mix64(h ^ tail ^ 0xff51afd7ed558ccdull);
    }

    uint64_t operator()(const ClientEntry &e) const { return addr(e.addr, e.prefix); }
    uint64_t operator()(const SubnetEntry &e) const { return addr(e.addr, e.prefix); }
    uint64_t operator()(const ClientApiHostEntry &e) const
    {
        return addr(e.addr, e.prefix, e.api_host_id);
    }
    uint64_t operator()(const ApiHostEntry &e) const { return str(e.name); }
    uint64_t operator()(const CohortEntry &e) const { return str(e.label); }
    uint64_t operator()(const HostEntry &) const { return 0; }  // the one host entity
    uint64_t operator()(const Ja4Entry &e) const { return str(e.ja4); }
    uint64_t operator()(const Ja4SniEntry &e) const { return ja4_sni(e.ja4, e.sni); }
    uint64_t operator()(const MemberEntry &e) const
    {
        return member(e.addr, e.prefix, e.role, EntityKind(e.group_kind), e.group);
    }

    // A fingerprint x API host key.
    uint64_t ja4_sni(std::string_view ja4, std::string_view sni) const
    {
        return mix64(str(ja4) ^ (str(sni) * 0x9e3779b97f4a7c15ull));
    }
    // A membership key: (member address, prefix, role) in (group kind, group hash).
    uint64_t member(const Addr16 &a, uint8_t prefix, MemberRole role, EntityKind k,
                    uint64_t group) const
    {
        uint32_t tag = (uint32_t(role) << 8) | uint32_t(k);
        return mix64(addr(a, prefix, tag) ^ (group * 0xc2b2ae3d27d4eb4full));
    }

private:
    static uint64_t load64(const uint8_t *p)
    {
        uint64_t v;
        std::memcpy(&v, p, sizeof(v));
        return v;
    }

    uint64_t seed_;
};

}  // namespace exf::agg::detail
