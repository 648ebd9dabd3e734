// SPDX-License-Identifier: Apache-2.0
#include "aggregate/entity_key.h"

namespace exf::agg {

const char *kind_name(EntityKind k)
{
    switch (k) {
    case EntityKind::client: return "client";
    case EntityKind::subnet: return "subnet";
    case EntityKind::api_host: return "api_host";
    case EntityKind::client_api_host: return "client_api_host";
    case EntityKind::cohort: return "cohort";
    case EntityKind::host: return "host";
    case EntityKind::ja4: return "ja4";
    case EntityKind::ja4_sni: return "ja4_sni";
    }
    return "?";
}

std::optional<EntityKind> parse_kind(std::string_view name)
{
    for (size_t i = 0; i < kEntityKinds; i++) {
        auto k = static_cast<EntityKind>(i);
        if (name == kind_name(k))
            return k;
    }
    return std::nullopt;
}

Addr16 mask_addr(const Addr16 &a, uint8_t prefix)
{
    unsigned bits = family_bits(a);
    if (prefix > bits)
        prefix = static_cast<uint8_t>(bits);
    unsigned keep = prefix + (128 - bits);  // IPv4 keeps its 96-bit ::ffff: prefix
    Addr16 out = a;
    for (unsigned i = 0; i < 16; i++) {
        unsigned lo = i * 8;
        if (lo >= keep)
            out[i] = 0;
        else if (keep - lo < 8)
            out[i] &= static_cast<uint8_t>(0xff00u >> (keep - lo));
    }
    return out;
}

std::string normalize_sni(std::string_view sni)
{
    if (sni.size() > kMaxSniBytes)
        sni = sni.substr(0, kMaxSniBytes);
    std::string out(sni);
    for (char &c : out)
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    return out;
}

EntityKey prefix_key(const Addr16 &a, uint8_t prefix)
{
    EntityKey k;
    uint8_t bits = family_bits(a);
    k.prefix = prefix > bits ? bits : prefix;
    k.addr = mask_addr(a, k.prefix);
    return k;
}

EntityKey name_key(std::string_view name)
{
    EntityKey k;
    k.name = name;
    return k;
}

EntityKey client_api_key(const Addr16 &a, uint8_t prefix, std::string_view sni)
{
    EntityKey k = prefix_key(a, prefix);
    k.name = normalize_sni(sni);
    return k;
}

EntityKey ja4_key(std::string_view ja4, std::string_view sni)
{
    EntityKey k;
    k.ja4 = ja4.substr(0, kMaxJa4Bytes);
    k.name = normalize_sni(sni);
    return k;
}

std::string format_key(EntityKind kind, const EntityKey &key)
{
    auto prefixed = [&] {
        std::string s = format_addr(key.addr);
        if (key.prefix != family_bits(key.addr))
            s += "/" + std::to_string(key.prefix);
        return s;
    };
    switch (kind) {
    case EntityKind::client:
    case EntityKind::subnet: return prefixed();
    case EntityKind::client_api_host: return prefixed() + " -> " + key.name;
    case EntityKind::api_host:
    case EntityKind::cohort: return key.name;
    case EntityKind::host: return "host";
    case EntityKind::ja4: return key.ja4;
    case EntityKind::ja4_sni: return key.ja4 + " -> " + key.name;
    }
    return "?";
}

}  // namespace exf::agg
