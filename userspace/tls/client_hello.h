// SPDX-License-Identifier: Apache-2.0
#pragma once
// TLS ClientHello parsing: pure, bounds-checked, no I/O, no exceptions.
//
// Two entry points:
//  * parse_client_hello_record(): the client's TCP byte stream, starting at a
//    TLS record header (content type 0x16). The handshake message may span
//    several records; their fragments are joined until the 4-byte handshake
//    header's length is covered.
//  * parse_client_hello_handshake(): a bare handshake message (type, 24-bit
//    length, body), as QUIC carries it in CRYPTO frames.
//
// Every call returns a ParseStatus:
//  * complete:  the message is fully present (all the bytes its handshake
//               header declares); the ClientHello is filled in. `anomaly` may
//               still name a problem: a content-level violation (bad_sni,
//               empty_cipher_suites, duplicate_extension, ...) or a length
//               inside the body that the parser tolerated (see below). Both
//               are "weirds" to count, not reasons to drop the fingerprint.
//  * need_more: the input is a prefix of something that can still become a
//               complete ClientHello. `anomaly` is truncated_record or
//               truncated_handshake; `needed` is a lower bound on the input
//               size that could complete it. A hello that never completes
//               (the stream ends first) yields nothing: no SNI, no JA4.
//  * malformed: no continuation can make this a ClientHello: the record layer
//               or the handshake header is broken (wrong content type or
//               version, empty or oversized record, not type 1, a body length
//               no ClientHello can have), or the session id is longer than 32
//               bytes or does not fit in the message. `anomaly` names the first
//               problem in stream order. Detected as early as the bytes allow,
//               so a reassembler can stop waiting.
// A valid prefix is never reported as malformed.
//
// Lengths inside the body (the tolerance rule). The record layer and the
// handshake header are authoritative: they say where the hello ends. The
// vectors inside the body (cipher_suites, compression_methods, the extensions
// block, each extension) are read in wire order against that end (an
// extension against the end of the extensions block). This is the rule of
// Wireshark's TLS dissector (ssl_add_vector / ssl_end_vector in
// packet-tls-utils.c), which FoxIO's JA4 tools and the JA4 references in the
// shared test captures are built on:
//  * a vector whose declared length runs past its end is not taken, and the
//    walk stops there: it and every later field count as absent (the hello's
//    fields so far are kept: a JA4 from "0 cipher suites, 0 extensions" is
//    still a JA4). The length is not clamped: the bytes it would cover are
//    the following fields, not members of this vector;
//  * a cipher_suites length that fits but is odd: the whole suites are taken,
//    the odd byte is skipped, the walk goes on after the declared length;
//  * an extensions block shorter than the rest of the message: its extensions
//    are taken, the bytes after it ignored;
//  * an extension whose length runs past the block: its type is listed in
//    `extensions` (the type field is there; tshark lists it too), its data is
//    not parsed (so a cut server_name gives no SNI), the walk stops;
//  * 1 to 3 bytes left in the block, too few for an extension header: ignored.
// Each case is reported as the anomaly of the field concerned
// (bad_cipher_suites_length, bad_compression_length, bad_extensions_length,
// bad_extension_length) with status complete. Only one anomaly is returned:
// such a length anomaly, if any (the first in wire order), wins over content
// anomalies, so a broken hello is always counted as one.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace exf::tls {

enum class HelloAnomaly : uint8_t {
    none,
    // need_more: the input ends early.
    truncated_record,     // inside a record header or a record's declared body
    truncated_handshake,  // records complete, the handshake message needs more
    // malformed: record layer
    not_handshake,        // first record's content type is not 0x16
    bad_record_version,   // record version major byte is not 3
    empty_record,         // zero-length handshake record (RFC 8446 5.1)
    record_too_long,      // record length > 2^14
    record_type_changed,  // a non-handshake record before the message ended
    // malformed: handshake message
    not_client_hello,       // handshake type is not 1
    handshake_too_short,    // body shorter than the fixed ClientHello fields
    handshake_too_long,     // body longer than any ClientHello can be
    bad_session_id_length,  // longer than 32, or past the message
    // complete, but a length inside the body contradicts the message's end
    // (the tolerance rule above; reported in preference to content anomalies)
    bad_cipher_suites_length,  // past the message (list not taken), or odd
    bad_compression_length,    // no room for its length, or past the message
    bad_extensions_length,     // 1 byte where its length should be, past the
                               // message (no extensions), or short of it
    bad_extension_length,      // one extension past the block, or 1-3 stray bytes
    // complete, but the content breaks the RFCs
    empty_cipher_suites,
    empty_compression_methods,
    duplicate_extension,
    bad_sni,
    bad_alpn,
    bad_supported_versions,
    bad_signature_algorithms,
    bad_supported_groups,
    bad_ec_point_formats,
    bad_key_share,
    // reassembly (hello_reassembler.h)
    too_long,        // no complete hello within the per-flow byte cap
    too_fragmented,  // too many holes in the reassembly buffer
};

std::string_view to_string(HelloAnomaly a);

enum class ParseStatus : uint8_t { complete, need_more, malformed };

std::string_view to_string(ParseStatus s);

struct ParseResult {
    ParseStatus status = ParseStatus::need_more;
    HelloAnomaly anomaly = HelloAnomaly::none;
    // complete: input bytes up to and including the hello's last byte (record
    // headers included). Anything after it is not part of the hello.
    size_t consumed = 0;
    // need_more: the input must be at least this long to complete.
    size_t needed = 0;

    bool complete() const { return status == ParseStatus::complete; }
    bool need_more() const { return status == ParseStatus::need_more; }
    bool malformed() const { return status == ParseStatus::malformed; }
};

// Extension type code points used here.
namespace ext {
inline constexpr uint16_t server_name = 0x0000;
inline constexpr uint16_t supported_groups = 0x000a;
inline constexpr uint16_t ec_point_formats = 0x000b;
inline constexpr uint16_t signature_algorithms = 0x000d;
inline constexpr uint16_t alpn = 0x0010;
inline constexpr uint16_t padding = 0x0015;
inline constexpr uint16_t supported_versions = 0x002b;
inline constexpr uint16_t signature_algorithms_cert = 0x0032;
inline constexpr uint16_t key_share = 0x0033;
inline constexpr uint16_t quic_transport_parameters = 0x0039;
inline constexpr uint16_t encrypted_client_hello = 0xfe0d;
}  // namespace ext

inline constexpr uint8_t kContentHandshake = 0x16;
inline constexpr uint8_t kHandshakeClientHello = 0x01;
inline constexpr size_t kRecordHeaderSize = 5;
inline constexpr size_t kHandshakeHeaderSize = 4;
inline constexpr size_t kMaxRecordFragment = 16384;

// RFC 8701 GREASE: 0x0a0a, 0x1a1a, ..., 0xfafa.
constexpr bool is_grease(uint16_t v) { return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff); }

struct ClientHello {
    // Framing
    uint16_t record_version = 0;    // first record's version; 0 for a bare message
    uint32_t record_count = 0;      // records the message spanned; 0 for a bare message
    uint32_t handshake_length = 0;  // from the handshake header
    bool is_quic = false;           // set from the entry point / caller

    // Fixed fields
    uint16_t legacy_version = 0;
    std::array<uint8_t, 32> random{};
    std::vector<uint8_t> session_id;
    std::vector<uint16_t> cipher_suites;  // wire order, GREASE kept
    std::vector<uint8_t> compression_methods;

    // Extensions
    bool has_extensions_block = false;  // false: hello ends after compression
    std::vector<uint16_t> extensions;   // types, wire order, GREASE kept

    bool has_sni = false;                        // server_name extension present
    std::string sni;                             // first host_name entry, raw bytes (may be empty)
    bool sni_is_ip = false;                      // host_name is an IPv4/IPv6 literal
    std::vector<std::string> alpn;               // protocol names, raw bytes, wire order
    std::vector<uint16_t> supported_versions;    // wire order, GREASE kept
    std::vector<uint16_t> signature_algorithms;  // extension 0x000d only
    std::vector<uint16_t> supported_groups;
    std::vector<uint8_t> ec_point_formats;
    std::vector<uint16_t> key_share_groups;  // groups with a key share, wire order
    bool ech = false;  // encrypted_client_hello (0xfe0d) present; sni is the outer name

    bool has_extension(uint16_t type) const;
    void clear();
};

// Reusable parser: keeps one scratch buffer for messages that span records, so
// repeated calls (a reassembler re-checking a growing prefix) do not allocate.
// With out == nullptr only the framing is checked: the status is the same as a
// full parse, but content anomalies are not computed.
class ClientHelloParser {
public:
    ParseResult parse_record(std::span<const uint8_t> data, ClientHello *out);
    ParseResult parse_handshake(std::span<const uint8_t> msg, ClientHello *out,
                                bool is_quic = true);

private:
    std::vector<uint8_t> scratch_;
};

// One-shot helpers. `out` is cleared first and only meaningful when complete.
ParseResult parse_client_hello_record(std::span<const uint8_t> data, ClientHello &out);
ParseResult parse_client_hello_handshake(std::span<const uint8_t> msg, ClientHello &out,
                                         bool is_quic = true);

// True if `host` is an IPv4 dotted quad or IPv6 literal (optionally in []).
bool is_ip_literal(std::string_view host);

}  // namespace exf::tls
