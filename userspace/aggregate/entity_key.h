// SPDX-License-Identifier: Apache-2.0
#pragma once
// What the aggregator counts for: the entity kinds and their keys.
//
//   client           one address, grouped by prefix: IPv4 /32 and IPv6 /64 by
//                    default (clients rotate addresses inside their /64)
//   subnet           IPv4 /24, IPv6 /48 by default
//   api_host         the SNI, lowercased, at most 255 bytes
//   client_api_host  client x API host
//   cohort           a label from the cohort list (longest prefix match)
//   host             the whole sensor (one entity)
//   ja4              a TLS client fingerprint: every client presenting it
//                    (a fingerprint cohort)
//   ja4_sni          fingerprint x API host
//
// Addresses are the 16-byte form of common/addr.h. Only ::ffff:0:0/96 is
// IPv4; prefix lengths are per family: 0..32 for IPv4, 0..128 for IPv6.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/addr.h"

namespace exf::agg {

enum class EntityKind : uint8_t {
    client,
    subnet,
    api_host,
    client_api_host,
    cohort,
    host,
    ja4,
    ja4_sni
};
inline constexpr size_t kEntityKinds = 8;

// "client", "subnet", "api_host", "client_api_host", "cohort", "host", "ja4",
// "ja4_sni".
const char *kind_name(EntityKind k);
std::optional<EntityKind> parse_kind(std::string_view name);

// Groups count their distinct clients and the distinct subnets those came
// from (distinct_subnets: every group but subnet itself).
inline bool is_group(EntityKind k)
{
    return k != EntityKind::client && k != EntityKind::client_api_host;
}
inline bool counts_subnets(EntityKind k) { return is_group(k) && k != EntityKind::subnet; }

// Longest SNI kept; longer names are cut (DNS names are at most 253).
inline constexpr size_t kMaxSniBytes = 255;
// Longest JA4 kept (a JA4 has 36 characters); longer ones are cut.
inline constexpr size_t kMaxJa4Bytes = 64;

struct EntityKey {
    Addr16 addr{};       // client, subnet, client_api_host: the masked address
    uint8_t prefix = 0;  // its prefix length within its family
    std::string name;    // api_host, client_api_host, ja4_sni: the SNI; cohort: the label
    std::string ja4;     // ja4, ja4_sni: the fingerprint

    bool operator==(const EntityKey &) const = default;
};

// Family of a 16-byte address: true for ::ffff:a.b.c.d.
inline bool is_v4(const Addr16 &a) { return is_v4_mapped(a.data()); }
// Full prefix length of the family: 32 or 128.
inline uint8_t family_bits(const Addr16 &a) { return is_v4(a) ? 32 : 128; }

// Clears every bit past `prefix` (family-relative; clamped to the family's
// length). IPv4 keeps its ::ffff: prefix.
Addr16 mask_addr(const Addr16 &a, uint8_t prefix);

// Lowercases ASCII and cuts at kMaxSniBytes.
std::string normalize_sni(std::string_view sni);

// Key constructors: the address is masked here.
EntityKey prefix_key(const Addr16 &a, uint8_t prefix);
EntityKey name_key(std::string_view name);  // api_host, cohort (not normalized)
EntityKey client_api_key(const Addr16 &a, uint8_t prefix, std::string_view sni);
inline EntityKey host_key() { return {}; }
// ja4 (sni empty) and ja4_sni: the fingerprint cut at kMaxJa4Bytes, the SNI normalized.
EntityKey ja4_key(std::string_view ja4, std::string_view sni = {});

// "10.0.0.7", "10.1.2.0/24", "2001:db8:1:2::/64", "api.example.com",
// "10.0.0.7 -> api.example.com", "cohort-label", "host", "t13d1516h2_8daaf6152771_e5627efa2ab1",
// "t13d1516h2_8daaf6152771_e5627efa2ab1 -> api.example.com".
std::string format_key(EntityKind k, const EntityKey &key);

}  // namespace exf::agg
