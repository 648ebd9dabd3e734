// SPDX-License-Identifier: Apache-2.0
#include "tls/client_hello.h"

#include <arpa/inet.h>

#include <algorithm>
#include <bitset>
#include <cstring>
#include <memory>
#include <optional>

namespace exf::tls {

namespace {

// Fixed part of a ClientHello body: version, random, and the three length
// bytes of session_id, cipher_suites and compression_methods.
constexpr size_t kMinBody = 2 + 32 + 1 + 2 + 1;
// Largest body the length fields can describe.
constexpr size_t kMaxBody = 2 + 32 + 1 + 32 + 2 + 65534 + 1 + 255 + 2 + 65535;

uint16_t be16(const uint8_t *p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint32_t be24(const uint8_t *p)
{
    return (static_cast<uint32_t>(p[0]) << 16) | (static_cast<uint32_t>(p[1]) << 8) | p[2];
}

ParseResult make(ParseStatus s, HelloAnomaly a, size_t consumed = 0, size_t needed = 0)
{
    ParseResult r;
    r.status = s;
    r.anomaly = a;
    r.consumed = consumed;
    r.needed = needed;
    return r;
}

ParseResult malformed(HelloAnomaly a) { return make(ParseStatus::malformed, a); }

// ---------------------------------------------------------------------------
// Extension contents. Each gets exactly the extension's bytes and returns
// false on a violation; whatever parsed before the violation is kept.

// A vector of 16-bit values behind a 1- or 2-byte length.
bool parse_u16_list(std::span<const uint8_t> d, size_t prefix, bool allow_empty,
                    std::vector<uint16_t> &out)
{
    if (d.size() < prefix)
        return false;
    const size_t len = prefix == 1 ? d[0] : be16(d.data());
    bool ok = len + prefix == d.size() && len % 2 == 0 && (allow_empty || len > 0);
    const size_t end = prefix + std::min(len, d.size() - prefix);
    size_t pos = prefix;
    for (; pos + 2 <= end; pos += 2)
        out.push_back(be16(&d[pos]));
    return ok && pos == end;
}

bool parse_sni(std::span<const uint8_t> d, ClientHello &h)
{
    if (d.size() < 2)
        return false;
    const size_t list = be16(d.data());
    bool ok = list + 2 == d.size() && list > 0;
    const size_t end = 2 + std::min(list, d.size() - 2);
    bool have_host = false;
    size_t pos = 2;
    while (pos < end) {
        if (end - pos < 3)
            return false;
        const uint8_t type = d[pos];
        const size_t len = be16(&d[pos + 1]);
        pos += 3;
        if (len > end - pos)
            return false;
        if (type == 0) {
            // RFC 6066: one name per type; HostName is <1..2^16-1>.
            if (have_host) {
                ok = false;
            } else {
                have_host = true;
                h.sni.assign(reinterpret_cast<const char *>(&d[pos]), len);
                h.sni_is_ip = is_ip_literal(h.sni);
                if (len == 0)
                    ok = false;
            }
        }
        pos += len;
    }
    return ok;
}

bool parse_alpn(std::span<const uint8_t> d, ClientHello &h)
{
    if (d.size() < 2)
        return false;
    const size_t list = be16(d.data());
    bool ok = list + 2 == d.size() && list >= 2;
    const size_t end = 2 + std::min(list, d.size() - 2);
    size_t pos = 2;
    while (pos < end) {
        const size_t len = d[pos++];
        if (len > end - pos)
            return false;
        if (len == 0)
            ok = false;  // ProtocolName is <1..2^8-1>
        h.alpn.emplace_back(reinterpret_cast<const char *>(&d[pos]), len);
        pos += len;
    }
    return ok;
}

bool parse_point_formats(std::span<const uint8_t> d, ClientHello &h)
{
    if (d.empty())
        return false;
    const size_t len = d[0];
    const bool ok = len + 1 == d.size() && len > 0;
    const size_t n = std::min(len, d.size() - 1);
    h.ec_point_formats.assign(d.begin() + 1, d.begin() + 1 + static_cast<std::ptrdiff_t>(n));
    return ok;
}

bool parse_key_share(std::span<const uint8_t> d, ClientHello &h)
{
    if (d.size() < 2)
        return false;
    const size_t list = be16(d.data());
    const bool ok = list + 2 == d.size();  // client_shares may be empty (HRR)
    const size_t end = 2 + std::min(list, d.size() - 2);
    size_t pos = 2;
    while (pos < end) {
        if (end - pos < 4)
            return false;
        const uint16_t group = be16(&d[pos]);
        const size_t len = be16(&d[pos + 2]);
        pos += 4;
        if (len > end - pos || len == 0)
            return false;
        h.key_share_groups.push_back(group);
        pos += len;
    }
    return ok;
}

// Returns the content anomaly of one extension, or none.
HelloAnomaly parse_extension(uint16_t type, std::span<const uint8_t> d, ClientHello &h)
{
    switch (type) {
    case ext::server_name:
        h.has_sni = true;
        return parse_sni(d, h) ? HelloAnomaly::none : HelloAnomaly::bad_sni;
    case ext::alpn: return parse_alpn(d, h) ? HelloAnomaly::none : HelloAnomaly::bad_alpn;
    case ext::supported_versions:
        return parse_u16_list(d, 1, false, h.supported_versions)
                   ? HelloAnomaly::none
                   : HelloAnomaly::bad_supported_versions;
    case ext::signature_algorithms:
        return parse_u16_list(d, 2, false, h.signature_algorithms)
                   ? HelloAnomaly::none
                   : HelloAnomaly::bad_signature_algorithms;
    case ext::supported_groups:
        return parse_u16_list(d, 2, false, h.supported_groups) ? HelloAnomaly::none
                                                               : HelloAnomaly::bad_supported_groups;
    case ext::ec_point_formats:
        return parse_point_formats(d, h) ? HelloAnomaly::none : HelloAnomaly::bad_ec_point_formats;
    case ext::key_share:
        return parse_key_share(d, h) ? HelloAnomaly::none : HelloAnomaly::bad_key_share;
    case ext::encrypted_client_hello: h.ech = true; return HelloAnomaly::none;
    default: return HelloAnomaly::none;
    }
}

// ---------------------------------------------------------------------------
// The ClientHello body. `b` holds the first b.size() bytes of a body whose
// declared length is `len` (b.size() <= len, kMinBody <= len <= kMaxBody).
// With out == nullptr only the framing is walked.
//
// Strict part (malformed, detected from the first bytes that show it): the
// session id must be at most 32 bytes and leave room for the cipher-suites
// length and one more byte.
//
// Tolerant part (the rule in client_hello.h): every later length is checked
// against the end of the message (or of the extensions block). A vector that
// runs past it is not taken and the walk stops there; whatever parsed before
// stays. The result is complete once all `len` bytes are at hand; before that
// it is need_more, never malformed.
struct BodyOutcome {
    ParseStatus status;
    HelloAnomaly anomaly;
};

constexpr BodyOutcome kBodyMore{ParseStatus::need_more, HelloAnomaly::none};

BodyOutcome bad_body(HelloAnomaly a) { return BodyOutcome{ParseStatus::malformed, a}; }

// One walk over a body, field by field in wire order. Each step returns the
// outcome when the walk ends in it, nothing when the next step follows.
struct BodyWalk {
    std::span<const uint8_t> b;
    size_t n;    // bytes at hand
    size_t len;  // declared body length
    ClientHello *out;
    size_t pos = 0;
    size_t end = 0;  // of the extensions block
    // First content anomaly, and first tolerated length inconsistency (which
    // is reported in preference: it says the hello is not what it claims).
    HelloAnomaly soft = HelloAnomaly::none;
    HelloAnomaly framing = HelloAnomaly::none;

    void note(HelloAnomaly a)
    {
        if (soft == HelloAnomaly::none)
            soft = a;
    }
    void note_framing(HelloAnomaly a)
    {
        if (framing == HelloAnomaly::none)
            framing = a;
    }
    // The walk is over: complete once the whole message is at hand.
    BodyOutcome done() const
    {
        if (n < len)
            return kBodyMore;
        return BodyOutcome{ParseStatus::complete, framing != HelloAnomaly::none ? framing : soft};
    }
    // A length that runs past its end: the vector is not taken, nothing after it is.
    BodyOutcome stop(HelloAnomaly a)
    {
        note_framing(a);
        return done();
    }

    std::optional<BodyOutcome> session_id();
    std::optional<BodyOutcome> cipher_suites();
    std::optional<BodyOutcome> compression_methods();
    std::optional<BodyOutcome> extensions_block();
    BodyOutcome extensions();
};

// Version, random and session id: the strict part.
std::optional<BodyOutcome> BodyWalk::session_id()
{
    if (n < 35)
        return kBodyMore;
    pos = 34;
    const size_t sid_len = b[pos++];
    // After the session id come at least the two length fields (3 bytes).
    if (sid_len > 32 || sid_len + 3 > len - pos)
        return bad_body(HelloAnomaly::bad_session_id_length);
    if (n < pos + sid_len + 2)
        return kBodyMore;
    if (out) {
        out->legacy_version = be16(b.data());
        std::memcpy(out->random.data(), &b[2], 32);
        out->session_id.assign(&b[pos], &b[pos] + sid_len);
    }
    pos += sid_len;
    return std::nullopt;
}

// CipherSuite cipher_suites<2..2^16-2>
std::optional<BodyOutcome> BodyWalk::cipher_suites()
{
    const size_t cs_len = be16(&b[pos]);
    pos += 2;
    if (cs_len > len - pos)
        return stop(HelloAnomaly::bad_cipher_suites_length);
    if (n < pos + cs_len)
        return kBodyMore;
    if (cs_len % 2 != 0)
        note_framing(HelloAnomaly::bad_cipher_suites_length);  // odd byte skipped
    if (cs_len < 2)
        note(HelloAnomaly::empty_cipher_suites);
    if (out) {
        out->cipher_suites.reserve(cs_len / 2);
        for (size_t i = 0; i + 2 <= cs_len; i += 2)
            out->cipher_suites.push_back(be16(&b[pos + i]));
    }
    pos += cs_len;
    return std::nullopt;
}

// CompressionMethod compression_methods<1..2^8-1>
std::optional<BodyOutcome> BodyWalk::compression_methods()
{
    if (pos == len)
        return stop(HelloAnomaly::bad_compression_length);
    if (n < pos + 1)
        return kBodyMore;
    const size_t comp_len = b[pos++];
    if (comp_len > len - pos)
        return stop(HelloAnomaly::bad_compression_length);
    if (n < pos + comp_len)
        return kBodyMore;
    if (comp_len == 0)
        note(HelloAnomaly::empty_compression_methods);
    if (out)
        out->compression_methods.assign(&b[pos], &b[pos] + comp_len);
    pos += comp_len;
    return std::nullopt;
}

// Extension extensions<0..2^16-1>, absent in SSL 3.0-style hellos: its
// length, which sets `end`.
std::optional<BodyOutcome> BodyWalk::extensions_block()
{
    if (pos == len)
        return done();
    if (len - pos < 2)
        return stop(HelloAnomaly::bad_extensions_length);
    if (n < pos + 2)
        return kBodyMore;
    const size_t exts_len = be16(&b[pos]);
    pos += 2;
    if (exts_len > len - pos)
        return stop(HelloAnomaly::bad_extensions_length);
    // Bytes after the block are not part of any field: ignored.
    if (exts_len < len - pos)
        note_framing(HelloAnomaly::bad_extensions_length);
    end = pos + exts_len;
    if (out)
        out->has_extensions_block = true;
    return std::nullopt;
}

// The extensions up to `end`.
BodyOutcome BodyWalk::extensions()
{
    // Seen extension types, only for the full parse.
    std::unique_ptr<std::bitset<65536>> seen;
    if (out)
        seen = std::make_unique<std::bitset<65536>>();
    while (end - pos >= 4) {
        if (n < pos + 4)
            return kBodyMore;
        const uint16_t type = be16(&b[pos]);
        const size_t ext_len = be16(&b[pos + 2]);
        pos += 4;
        if (out) {
            // The type is listed even when its data is cut off (as tshark
            // shows it); only the data of an extension that fits is parsed.
            out->extensions.push_back(type);
            if (seen->test(type))
                note(HelloAnomaly::duplicate_extension);
            seen->set(type);
        }
        if (ext_len > end - pos)
            return stop(HelloAnomaly::bad_extension_length);
        if (n < pos + ext_len)
            return kBodyMore;
        if (out) {
            const HelloAnomaly a = parse_extension(type, b.subspan(pos, ext_len), *out);
            if (a != HelloAnomaly::none)
                note(a);
        }
        pos += ext_len;
    }
    // 1 to 3 bytes too few for an extension header: ignored.
    if (pos != end)
        note_framing(HelloAnomaly::bad_extension_length);
    return done();
}

BodyOutcome parse_body(std::span<const uint8_t> b, size_t len, ClientHello *out)
{
    BodyWalk w{b, b.size(), len, out};
    if (auto r = w.session_id())
        return *r;
    if (auto r = w.cipher_suites())
        return *r;
    if (auto r = w.compression_methods())
        return *r;
    if (auto r = w.extensions_block())
        return *r;
    return w.extensions();
}

// Checks the handshake header bytes present in `hs` (any length). Returns
// none or the malformed anomaly.
HelloAnomaly check_handshake_header(std::span<const uint8_t> hs)
{
    if (!hs.empty() && hs[0] != kHandshakeClientHello)
        return HelloAnomaly::not_client_hello;
    if (hs.size() >= kHandshakeHeaderSize) {
        const size_t len = be24(&hs[1]);
        if (len < kMinBody)
            return HelloAnomaly::handshake_too_short;
        if (len > kMaxBody)
            return HelloAnomaly::handshake_too_long;
    }
    return HelloAnomaly::none;
}

}  // namespace

// ---------------------------------------------------------------------------

std::string_view to_string(HelloAnomaly a)
{
    switch (a) {
    case HelloAnomaly::none: return "none";
    case HelloAnomaly::truncated_record: return "truncated_record";
    case HelloAnomaly::truncated_handshake: return "truncated_handshake";
    case HelloAnomaly::not_handshake: return "not_handshake";
    case HelloAnomaly::bad_record_version: return "bad_record_version";
    case HelloAnomaly::empty_record: return "empty_record";
    case HelloAnomaly::record_too_long: return "record_too_long";
    case HelloAnomaly::record_type_changed: return "record_type_changed";
    case HelloAnomaly::not_client_hello: return "not_client_hello";
    case HelloAnomaly::handshake_too_short: return "handshake_too_short";
    case HelloAnomaly::handshake_too_long: return "handshake_too_long";
    case HelloAnomaly::bad_session_id_length: return "bad_session_id_length";
    case HelloAnomaly::bad_cipher_suites_length: return "bad_cipher_suites_length";
    case HelloAnomaly::bad_compression_length: return "bad_compression_length";
    case HelloAnomaly::bad_extensions_length: return "bad_extensions_length";
    case HelloAnomaly::bad_extension_length: return "bad_extension_length";
    case HelloAnomaly::empty_cipher_suites: return "empty_cipher_suites";
    case HelloAnomaly::empty_compression_methods: return "empty_compression_methods";
    case HelloAnomaly::duplicate_extension: return "duplicate_extension";
    case HelloAnomaly::bad_sni: return "bad_sni";
    case HelloAnomaly::bad_alpn: return "bad_alpn";
    case HelloAnomaly::bad_supported_versions: return "bad_supported_versions";
    case HelloAnomaly::bad_signature_algorithms: return "bad_signature_algorithms";
    case HelloAnomaly::bad_supported_groups: return "bad_supported_groups";
    case HelloAnomaly::bad_ec_point_formats: return "bad_ec_point_formats";
    case HelloAnomaly::bad_key_share: return "bad_key_share";
    case HelloAnomaly::too_long: return "too_long";
    case HelloAnomaly::too_fragmented: return "too_fragmented";
    }
    return "unknown";
}

std::string_view to_string(ParseStatus s)
{
    switch (s) {
    case ParseStatus::complete: return "complete";
    case ParseStatus::need_more: return "need_more";
    case ParseStatus::malformed: return "malformed";
    }
    return "unknown";
}

bool ClientHello::has_extension(uint16_t type) const
{
    return std::find(extensions.begin(), extensions.end(), type) != extensions.end();
}

void ClientHello::clear() { *this = ClientHello{}; }

bool is_ip_literal(std::string_view host)
{
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    char buf[64];
    if (host.empty() || host.size() >= sizeof(buf))
        return false;
    if (host.find('\0') != std::string_view::npos)
        return false;
    std::memcpy(buf, host.data(), host.size());
    buf[host.size()] = '\0';
    unsigned char addr[16];
    return inet_pton(AF_INET, buf, addr) == 1 || inet_pton(AF_INET6, buf, addr) == 1;
}

namespace {

// One walk over the records that carry a ClientHello.
struct RecordWalk {
    std::span<const uint8_t> data;
    std::vector<uint8_t> &scratch;
    // Handshake bytes gathered so far: a view into the first record while the
    // message fits in it, else the scratch copy of all fragments.
    std::span<const uint8_t> hs{};
    bool copied = false;
    size_t pos = 0;  // start of the current record
    uint32_t records = 0;
    uint16_t first_version = 0;
    size_t total = 0;  // handshake header + body, once known
    HelloAnomaly truncation = HelloAnomaly::none;
    size_t needed = 0;
    size_t consumed = 0;

    HelloAnomaly read_record(bool &ended);
    void gather(std::span<const uint8_t> frag);
    bool ends_after(size_t before, size_t got, size_t rec_len, size_t want_total);
    std::optional<ParseResult> body_error() const;
    ParseResult record_error(HelloAnomaly a) const;
    ParseResult need_more() const;
    ParseResult complete(ClientHello *out) const;
};

// The record at `pos`: checks its header and adds its fragment to the
// handshake bytes. Returns the record-layer or handshake-header anomaly, or
// none with `ended` set once the message is complete or the input cut short.
HelloAnomaly RecordWalk::read_record(bool &ended)
{
    // Handshake bytes the whole message needs (a lower bound until known).
    const size_t want_total = total ? total : kHandshakeHeaderSize + kMinBody;
    const size_t left = data.size() - pos;
    if (left >= 1 && data[pos] != kContentHandshake)
        return records == 0 ? HelloAnomaly::not_handshake : HelloAnomaly::record_type_changed;
    if (left >= 2 && data[pos + 1] != 0x03)
        return HelloAnomaly::bad_record_version;
    if (left < kRecordHeaderSize) {
        truncation = HelloAnomaly::truncated_record;
        needed = pos + kRecordHeaderSize + (want_total - hs.size());
        ended = true;
        return HelloAnomaly::none;
    }
    const size_t rec_len = be16(&data[pos + 3]);
    if (rec_len == 0)
        return HelloAnomaly::empty_record;
    if (rec_len > kMaxRecordFragment)
        return HelloAnomaly::record_too_long;
    if (records++ == 0)
        first_version = be16(&data[pos + 1]);

    const size_t before = hs.size();  // handshake bytes from earlier records
    const size_t got = std::min(rec_len, left - kRecordHeaderSize);
    // Copy only what the message can still use.
    const size_t take = total ? std::min(got, total - before) : got;
    gather(data.subspan(pos + kRecordHeaderSize, take));
    if (const HelloAnomaly a = check_handshake_header(hs); a != HelloAnomaly::none)
        return a;
    if (!total && hs.size() >= kHandshakeHeaderSize)
        total = kHandshakeHeaderSize + be24(&hs[1]);
    ended = ends_after(before, got, rec_len, want_total);
    return HelloAnomaly::none;
}

// Adds one record's fragment to the handshake bytes; copies only once the
// message spans records.
void RecordWalk::gather(std::span<const uint8_t> frag)
{
    if (records == 1) {
        hs = frag;
        return;
    }
    if (!copied) {
        scratch.assign(hs.begin(), hs.end());
        copied = true;
    }
    scratch.insert(scratch.end(), frag.begin(), frag.end());
    hs = scratch;
}

// After the current record: true when the message is complete (consumed
// set) or the record or the input is cut short (truncation and needed set);
// false with pos on the next record.
bool RecordWalk::ends_after(size_t before, size_t got, size_t rec_len, size_t want_total)
{
    if (total && hs.size() >= total) {
        consumed = pos + kRecordHeaderSize + (total - before);
        hs = hs.first(total);
        return true;
    }
    if (got < rec_len) {
        truncation = HelloAnomaly::truncated_record;
        const size_t want = (total ? total : want_total) - before;
        needed = pos + kRecordHeaderSize + std::min(want, rec_len);
        if (want > rec_len)
            needed += kRecordHeaderSize + (want - rec_len);
        return true;
    }
    pos += kRecordHeaderSize + rec_len;
    if (pos == data.size()) {
        truncation = HelloAnomaly::truncated_handshake;
        needed = pos + kRecordHeaderSize + ((total ? total : want_total) - hs.size());
        return true;
    }
    return false;
}

// The body bytes at hand already make the hello malformed: that earlier
// error is reported before a later record-layer error or a truncation.
std::optional<ParseResult> RecordWalk::body_error() const
{
    if (!total)
        return std::nullopt;
    const size_t have = std::min(hs.size(), total) - kHandshakeHeaderSize;
    const BodyOutcome bo =
        parse_body(hs.subspan(kHandshakeHeaderSize, have), total - kHandshakeHeaderSize, nullptr);
    if (bo.status == ParseStatus::malformed)
        return malformed(bo.anomaly);
    return std::nullopt;
}

ParseResult RecordWalk::record_error(HelloAnomaly a) const
{
    if (auto e = body_error())
        return *e;
    return malformed(a);
}

ParseResult RecordWalk::need_more() const
{
    if (auto e = body_error())
        return *e;
    return make(ParseStatus::need_more, truncation, 0, needed);
}

// The whole message is at hand: the full parse.
ParseResult RecordWalk::complete(ClientHello *out) const
{
    const BodyOutcome bo =
        parse_body(hs.subspan(kHandshakeHeaderSize), total - kHandshakeHeaderSize, out);
    if (bo.status != ParseStatus::complete)
        return malformed(bo.anomaly);
    if (out) {
        out->record_version = first_version;
        out->record_count = records;
        out->handshake_length = static_cast<uint32_t>(total - kHandshakeHeaderSize);
        out->is_quic = false;
    }
    return make(ParseStatus::complete, bo.anomaly, consumed);
}

}  // namespace

ParseResult ClientHelloParser::parse_record(std::span<const uint8_t> data, ClientHello *out)
{
    if (out)
        out->clear();
    RecordWalk w{data, scratch_};
    for (bool ended = false; !ended;) {
        if (const HelloAnomaly a = w.read_record(ended); a != HelloAnomaly::none)
            return w.record_error(a);
    }
    if (w.truncation != HelloAnomaly::none)
        return w.need_more();
    return w.complete(out);
}

ParseResult ClientHelloParser::parse_handshake(std::span<const uint8_t> msg, ClientHello *out,
                                               bool is_quic)
{
    if (out)
        out->clear();
    if (const HelloAnomaly a = check_handshake_header(msg); a != HelloAnomaly::none)
        return malformed(a);
    if (msg.size() < kHandshakeHeaderSize)
        return make(ParseStatus::need_more, HelloAnomaly::truncated_handshake, 0,
                    kHandshakeHeaderSize + kMinBody);
    const size_t len = be24(&msg[1]);
    const size_t total = kHandshakeHeaderSize + len;
    if (msg.size() < total) {
        const BodyOutcome bo = parse_body(msg.subspan(kHandshakeHeaderSize), len, nullptr);
        if (bo.status == ParseStatus::malformed)
            return malformed(bo.anomaly);
        return make(ParseStatus::need_more, HelloAnomaly::truncated_handshake, 0, total);
    }
    const BodyOutcome bo = parse_body(msg.subspan(kHandshakeHeaderSize, len), len, out);
    if (bo.status != ParseStatus::complete)
        return malformed(bo.anomaly);
    if (out) {
        out->handshake_length = static_cast<uint32_t>(len);
        out->is_quic = is_quic;
    }
    return make(ParseStatus::complete, bo.anomaly, total);
}

ParseResult parse_client_hello_record(std::span<const uint8_t> data, ClientHello &out)
{
    ClientHelloParser p;
    return p.parse_record(data, &out);
}

ParseResult parse_client_hello_handshake(std::span<const uint8_t> msg, ClientHello &out,
                                         bool is_quic)
{
    ClientHelloParser p;
    return p.parse_handshake(msg, &out, is_quic);
}

}  // namespace exf::tls
