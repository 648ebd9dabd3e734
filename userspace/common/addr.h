// SPDX-License-Identifier: Apache-2.0
#pragma once
// Addresses cross the kernel boundary as 16 bytes, IPv4 as ::ffff:a.b.c.d.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace exf {

using Addr16 = std::array<uint8_t, 16>;

bool is_v4_mapped(const uint8_t *a);
// Dotted quad for IPv4-mapped, RFC 5952 text otherwise.
std::string format_addr(const uint8_t *a);
inline std::string format_addr(const Addr16 &a) { return format_addr(a.data()); }
// Parses IPv4 or IPv6 text into the 16-byte form.
std::optional<Addr16> parse_addr(std::string_view text);
// "192.0.2.7:514", "[2001:db8::7]:514": a host (name or address literal)
// and a port, the IPv6 literal bracketed so the port's colon stays apart.
std::string format_host_port(std::string_view host, std::string_view port);

}  // namespace exf
