// SPDX-License-Identifier: Apache-2.0
#pragma once
// JA4 TLS client fingerprint (FoxIO, technical_details/JA4.md; JA4 itself is
// BSD-3-Clause). Layout: a_b_c with
//   a = transport (t/q/d) + version (13, 12, ..., 00) + SNI (d/i)
//       + cipher count (2 digits) + extension count (2 digits) + ALPN (2 chars)
//   b = sha256[:12] of the sorted cipher list ("002f,1301,...")
//   c = sha256[:12] of the sorted extension list without SNI and ALPN,
//       then "_" and the signature algorithms in wire order (no "_" when there
//       are none)
// GREASE values are ignored everywhere. Counts include SNI and ALPN and are
// capped at 99. An empty list hashes to "000000000000".
//
// Variants (same names as FoxIO's tools):
//   ja4    sorted, hashed        ja4_r   sorted, raw lists
//   ja4_o  wire order, hashed    ja4_ro  wire order, raw lists
// The wire-order variants keep SNI (0000) and ALPN (0010) in the extension list.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "tls/client_hello.h"

namespace exf::tls {

enum class Ja4Transport : uint8_t { tcp, quic, dtls };

// How the two ALPN characters are chosen when the first ALPN value is not
// plain alphanumeric ASCII.
enum class Ja4AlpnRule : uint8_t {
    // JA4.md: first and last byte; if either is not [0-9A-Za-z], the first hex
    // digit of the first byte and the last hex digit of the last byte
    // (0xBA 0xAD -> "bd"); a one-byte value gives both characters ("x" -> "xx").
    spec,
    // What FoxIO's Rust and Python tools print (they read tshark's UTF-8 text):
    // first and last character of the value decoded as UTF-8 (invalid bytes
    // become U+FFFD), each non-ASCII character printed as '9', a missing last
    // character as '0' (0xBA 0xAD -> "99", "x" -> "x0"). ASCII control
    // characters, space and DEL are printed as '9' too, so that a JA4 is
    // always printable ASCII without spaces (tshark's text would escape them).
    foxio_tool,
};

struct Ja4Options {
    // Default: quic if hello.is_quic, else tcp.
    std::optional<Ja4Transport> transport;
    Ja4AlpnRule alpn_rule = Ja4AlpnRule::spec;
};

struct Ja4Fingerprints {
    std::string ja4;
    std::string ja4_r;
    std::string ja4_o;
    std::string ja4_ro;
};

Ja4Fingerprints compute_ja4(const ClientHello &hello, const Ja4Options &opts = {});
// Just the sorted, hashed JA4.
std::string ja4(const ClientHello &hello, const Ja4Options &opts = {});

// ja4() remembered by what it reads of a hello (GREASE left out): a sensor
// sees thousands of hellos from a few dozen client stacks, and a lookup
// costs a fraction of the sort, the hex lists and the two SHA-256 digests.
// Bounded: forgets everything when it holds kMaxEntries.
class Ja4Cache {
public:
    static constexpr size_t kMaxEntries = 1024;
    std::string ja4(const ClientHello &hello, const Ja4Options &opts);
    size_t size() const { return by_input_.size(); }

private:
    std::string key_;  // scratch: the last hello's inputs
    std::unordered_map<std::string, std::string> by_input_;
};

// Building blocks, exposed for tests and for other fingerprints.

// The version JA4 uses: highest non-GREASE supported_versions value if that
// extension is present (0 if it holds none), else legacy_version.
uint16_t ja4_version_value(const ClientHello &hello);
// "13", "12", "11", "10", "s3", "s2", "s1", "d1", "d2", "d3", or "00".
std::string_view ja4_version_code(uint16_t version);
// Two characters for the first ALPN value; "00" if there is none or it is empty.
std::string ja4_alpn_chars(std::string_view first_alpn, Ja4AlpnRule rule = Ja4AlpnRule::spec);
// First 12 lowercase hex digits of sha256(s); "000000000000" for an empty s.
std::string ja4_hash12(std::string_view s);

}  // namespace exf::tls
