// SPDX-License-Identifier: Apache-2.0
// TLS ClientHello parser: fields, record splitting, truncation at every byte,
// corrupted length fields (malformed or tolerated), content anomalies, QUIC
// bare messages.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <set>

#include "support/tls_builder.h"
#include "tls/client_hello.h"
#include "tls/hello_reassembler.h"

using exf::test::Bytes;
using exf::test::HelloBuilder;
using exf::test::LengthField;
using namespace exf::tls;

namespace {

ParseResult parse(const Bytes &b, ClientHello &h) { return parse_client_hello_record(b, h); }

ParseResult parse(const Bytes &b)
{
    ClientHello h;
    return parse_client_hello_record(b, h);
}

Bytes prefix(const Bytes &b, size_t n)
{
    return Bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(n));
}

std::vector<uint16_t> ext_types(const HelloBuilder &b)
{
    std::vector<uint16_t> t;
    for (const auto &e : b.extensions())
        t.push_back(e.type);
    return t;
}

// Everything but the record framing.
void require_same_content(const ClientHello &a, const ClientHello &b)
{
    REQUIRE(a.legacy_version == b.legacy_version);
    REQUIRE(a.random == b.random);
    REQUIRE(a.session_id == b.session_id);
    REQUIRE(a.cipher_suites == b.cipher_suites);
    REQUIRE(a.compression_methods == b.compression_methods);
    REQUIRE(a.has_extensions_block == b.has_extensions_block);
    REQUIRE(a.extensions == b.extensions);
    REQUIRE(a.has_sni == b.has_sni);
    REQUIRE(a.sni == b.sni);
    REQUIRE(a.sni_is_ip == b.sni_is_ip);
    REQUIRE(a.alpn == b.alpn);
    REQUIRE(a.supported_versions == b.supported_versions);
    REQUIRE(a.signature_algorithms == b.signature_algorithms);
    REQUIRE(a.supported_groups == b.supported_groups);
    REQUIRE(a.ec_point_formats == b.ec_point_formats);
    REQUIRE(a.key_share_groups == b.key_share_groups);
    REQUIRE(a.ech == b.ech);
    REQUIRE(a.handshake_length == b.handshake_length);
}

// Every proper prefix must be need_more (never malformed), with a `needed`
// that is beyond the prefix and no more than the full input.
void require_every_prefix_needs_more(const Bytes &full, bool bare = false)
{
    ClientHelloParser parser;
    for (size_t k = 0; k < full.size(); ++k) {
        const std::span<const uint8_t> p(full.data(), k);
        INFO("prefix " << k << " of " << full.size());
        const ParseResult r =
            bare ? parser.parse_handshake(p, nullptr) : parser.parse_record(p, nullptr);
        REQUIRE(r.status == ParseStatus::need_more);
        if (bare) {
            REQUIRE(r.anomaly == HelloAnomaly::truncated_handshake);
        } else {
            REQUIRE((r.anomaly == HelloAnomaly::truncated_record ||
                     r.anomaly == HelloAnomaly::truncated_handshake));
        }
        REQUIRE(r.needed > k);
        REQUIRE(r.needed <= full.size());
        // The full parse agrees with the framing check.
        ClientHello h;
        const ParseResult full_r =
            bare ? parser.parse_handshake(p, &h) : parser.parse_record(p, &h);
        REQUIRE(full_r.status == r.status);
        REQUIRE(full_r.anomaly == r.anomaly);
    }
}

ClientHello parse_ok(const Bytes &b)
{
    ClientHello h;
    const ParseResult r = parse(b, h);
    INFO("anomaly " << to_string(r.anomaly));
    REQUIRE(r.status == ParseStatus::complete);
    REQUIRE(r.anomaly == HelloAnomaly::none);
    REQUIRE(r.consumed == b.size());
    return h;
}

// Builds a hello whose body (after the handshake header) is `body`, with
// consistent record and handshake lengths.
Bytes wrap_body(const Bytes &body)
{
    Bytes hs{0x01};
    exf::test::put24(hs, static_cast<uint32_t>(body.size()));
    hs.insert(hs.end(), body.begin(), body.end());
    return exf::test::tls_record(0x16, 0x0301, hs);
}

const LengthField &field(const std::vector<LengthField> &fields, std::string_view name)
{
    for (const auto &f : fields)
        if (f.name == name)
            return f;
    FAIL("no length field " << name);
    return fields.front();
}

}  // namespace

TEST_CASE("client_hello: browser-like hello yields every field", "[tls][client_hello]")
{
    const HelloBuilder b = HelloBuilder::browser_like();
    const Bytes rec = b.record();
    REQUIRE(rec.size() > 1800);  // PQ key share + ECH: more than one 1460-byte segment

    const ClientHello h = parse_ok(rec);
    REQUIRE(h.record_version == 0x0301);
    REQUIRE(h.record_count == 1);
    REQUIRE(h.handshake_length == rec.size() - 9);
    REQUIRE_FALSE(h.is_quic);
    REQUIRE(h.legacy_version == 0x0303);
    REQUIRE(std::all_of(h.random.begin(), h.random.end(), [](uint8_t x) { return x == 0x11; }));
    REQUIRE(h.session_id == Bytes(32, 0x22));
    REQUIRE(h.cipher_suites == std::vector<uint16_t>{0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f,
                                                     0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
                                                     0x009c, 0x009d, 0x002f, 0x0035});
    REQUIRE(h.compression_methods == Bytes{0});
    REQUIRE(h.has_extensions_block);
    REQUIRE(h.extensions == ext_types(b));
    REQUIRE(h.extensions.front() == 0x1a1a);  // GREASE kept, wire order
    REQUIRE(h.extensions.back() == 0x4a4a);
    REQUIRE(h.has_sni);
    REQUIRE(h.sni == "example.com");
    REQUIRE_FALSE(h.sni_is_ip);
    REQUIRE(h.alpn == std::vector<std::string>{"h2", "http/1.1"});
    REQUIRE(h.supported_versions == std::vector<uint16_t>{0x3a3a, 0x0304, 0x0303});
    REQUIRE(h.signature_algorithms ==
            std::vector<uint16_t>{0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601});
    REQUIRE(h.supported_groups == std::vector<uint16_t>{0x2a2a, 0x11ec, 0x001d, 0x0017, 0x0018});
    REQUIRE(h.ec_point_formats == Bytes{0});
    REQUIRE(h.key_share_groups == std::vector<uint16_t>{0x2a2a, 0x11ec, 0x001d});
    REQUIRE(h.ech);
    REQUIRE(h.has_extension(ext::encrypted_client_hello));
    REQUIRE_FALSE(h.has_extension(ext::padding));
}

TEST_CASE("client_hello: extensions block absent or empty", "[tls][client_hello]")
{
    SECTION("no extensions block (TLS 1.0-1.2 style)")
    {
        const ClientHello h = parse_ok(HelloBuilder().no_extensions_block().record());
        REQUIRE_FALSE(h.has_extensions_block);
        REQUIRE(h.extensions.empty());
        REQUIRE_FALSE(h.has_sni);
        REQUIRE(h.cipher_suites.size() == 3);
    }
    SECTION("empty extensions block")
    {
        const ClientHello h = parse_ok(HelloBuilder().record());
        REQUIRE(h.has_extensions_block);
        REQUIRE(h.extensions.empty());
    }
    SECTION("empty session id, SSL 3.0 record version")
    {
        const ClientHello h =
            parse_ok(HelloBuilder().session_id({}).legacy_version(0x0300).record(0x0300));
        REQUIRE(h.session_id.empty());
        REQUIRE(h.legacy_version == 0x0300);
        REQUIRE(h.record_version == 0x0300);
    }
}

TEST_CASE("client_hello: every truncation of a valid hello needs more data", "[tls][client_hello]")
{
    SECTION("one record, browser-like")
    {
        const Bytes rec = HelloBuilder::browser_like().record();
        require_every_prefix_needs_more(rec);
        // A single record: the record itself is what is cut.
        ClientHello h;
        REQUIRE(parse(prefix(rec, rec.size() - 1), h).anomaly == HelloAnomaly::truncated_record);
        REQUIRE(parse(prefix(rec, 3), h).needed >= 9 + 38);
    }
    SECTION("one record, minimal")
    {
        require_every_prefix_needs_more(
            HelloBuilder().no_extensions_block().session_id({}).ciphers({0x002f}).record());
    }
    SECTION("bare handshake message")
    {
        require_every_prefix_needs_more(HelloBuilder::browser_like().handshake(), true);
    }
    SECTION("split over records")
    {
        for (size_t frag : {1u, 2u, 3u, 4u, 5u, 7u, 64u, 1000u}) {
            INFO("fragment " << frag);
            require_every_prefix_needs_more(HelloBuilder::browser_like().records(frag));
        }
    }
}

TEST_CASE("client_hello: a message split over records is joined", "[tls][client_hello]")
{
    const HelloBuilder b = HelloBuilder::browser_like();
    const ClientHello one = parse_ok(b.record());
    const size_t hs_size = b.handshake().size();

    for (size_t frag : {1u, 2u, 3u, 4u, 5u, 100u, 1000u, 1460u}) {
        INFO("fragment " << frag);
        const Bytes recs = b.records(frag);
        ClientHello h;
        const ParseResult r = parse(recs, h);
        REQUIRE(r.status == ParseStatus::complete);
        REQUIRE(r.anomaly == HelloAnomaly::none);
        REQUIRE(r.consumed == recs.size());
        REQUIRE(h.record_count == (hs_size + frag - 1) / frag);
        require_same_content(h, one);
    }
    SECTION("handshake header split across records")
    {
        for (size_t first : {1u, 2u, 3u}) {
            ClientHello h;
            const ParseResult r = parse(b.records(std::vector<size_t>{first, hs_size}), h);
            REQUIRE(r.status == ParseStatus::complete);
            REQUIRE(h.record_count == 2);
            require_same_content(h, one);
        }
    }
    SECTION("uneven fragments")
    {
        ClientHello h;
        const ParseResult r = parse(b.records(std::vector<size_t>{7, 1, 300, 2, 900, 5}), h);
        REQUIRE(r.status == ParseStatus::complete);
        require_same_content(h, one);
    }
}

TEST_CASE("client_hello: bytes after the hello are not part of it", "[tls][client_hello]")
{
    const HelloBuilder b = HelloBuilder::browser_like();
    const Bytes rec = b.record();

    SECTION("a following record")
    {
        Bytes s = rec;
        const Bytes app = exf::test::tls_record(0x17, 0x0303, Bytes(40, 0xaa));
        s.insert(s.end(), app.begin(), app.end());
        ClientHello h;
        const ParseResult r = parse(s, h);
        REQUIRE(r.status == ParseStatus::complete);
        REQUIRE(r.consumed == rec.size());
    }
    SECTION("more handshake bytes in the same record")
    {
        Bytes hs = b.handshake();
        const size_t hello_len = hs.size();
        hs.insert(hs.end(), {0x0b, 0x00, 0x00, 0x00});
        const Bytes s = exf::test::tls_record(0x16, 0x0301, hs);
        ClientHello h;
        const ParseResult r = parse(s, h);
        REQUIRE(r.status == ParseStatus::complete);
        REQUIRE(r.consumed == 5 + hello_len);
        // Even while the rest of that record has not arrived yet.
        REQUIRE(parse(prefix(s, 5 + hello_len)).status == ParseStatus::complete);
    }
    SECTION("the last record holds the end of the hello and more")
    {
        Bytes hs = b.handshake();
        const size_t hello_len = hs.size();
        hs.insert(hs.end(), 10, 0x00);
        const Bytes s = exf::test::split_records(hs, {1000, hs.size()});
        const ParseResult r = parse(s);
        REQUIRE(r.status == ParseStatus::complete);
        REQUIRE(r.consumed == 10 + hello_len);
    }
}

TEST_CASE("client_hello: bare handshake message for QUIC", "[tls][client_hello][quic]")
{
    const HelloBuilder b = HelloBuilder::browser_like().raw_extension(
        ext::quic_transport_parameters, {0x01, 0x02, 0x40, 0x00});
    const ClientHello from_record = parse_ok(b.record());
    const Bytes hs = b.handshake();

    ClientHello h;
    const ParseResult r = parse_client_hello_handshake(hs, h);
    REQUIRE(r.status == ParseStatus::complete);
    REQUIRE(r.consumed == hs.size());
    REQUIRE(h.is_quic);
    REQUIRE(h.record_count == 0);
    REQUIRE(h.record_version == 0);
    require_same_content(h, from_record);

    REQUIRE_FALSE(from_record.is_quic);
    ClientHello not_quic;
    REQUIRE(parse_client_hello_handshake(hs, not_quic, false).complete());
    REQUIRE_FALSE(not_quic.is_quic);

    SECTION("a record header is not a handshake message")
    {
        REQUIRE(parse_client_hello_handshake(b.record(), h).anomaly ==
                HelloAnomaly::not_client_hello);
    }
    SECTION("CRYPTO data beyond the message is ignored")
    {
        Bytes more = hs;
        more.insert(more.end(), 20, 0x00);
        REQUIRE(parse_client_hello_handshake(more, h).consumed == hs.size());
    }
    SECTION("absurd handshake length")
    {
        Bytes bad = hs;
        bad[1] = bad[2] = bad[3] = 0xff;
        const ParseResult rb = parse_client_hello_handshake(bad, h);
        REQUIRE(rb.status == ParseStatus::malformed);
        REQUIRE(rb.anomaly == HelloAnomaly::handshake_too_long);
    }
}

TEST_CASE("client_hello: record layer anomalies", "[tls][client_hello]")
{
    const Bytes rec = HelloBuilder::browser_like().record();
    ClientHello h;

    SECTION("not a handshake record, known from the first byte")
    {
        Bytes s = rec;
        s[0] = 0x17;
        REQUIRE(parse(s, h).anomaly == HelloAnomaly::not_handshake);
        const ParseResult r = parse(prefix(s, 1), h);
        REQUIRE(r.status == ParseStatus::malformed);
        REQUIRE(r.anomaly == HelloAnomaly::not_handshake);
        const Bytes http{'G', 'E', 'T', ' ', '/'};
        REQUIRE(parse(http, h).anomaly == HelloAnomaly::not_handshake);
        const Bytes sslv2{0x80, 0x2e, 0x01, 0x00, 0x02};
        REQUIRE(parse(sslv2, h).anomaly == HelloAnomaly::not_handshake);
    }
    SECTION("record version major byte")
    {
        Bytes s = rec;
        s[1] = 0x02;
        const ParseResult r = parse(prefix(s, 2), h);
        REQUIRE(r.status == ParseStatus::malformed);
        REQUIRE(r.anomaly == HelloAnomaly::bad_record_version);
    }
    SECTION("empty record")
    {
        const Bytes s{0x16, 0x03, 0x01, 0x00, 0x00, 0x16, 0x03, 0x01};
        const ParseResult r = parse(s, h);
        REQUIRE(r.status == ParseStatus::malformed);
        REQUIRE(r.anomaly == HelloAnomaly::empty_record);
    }
    SECTION("record longer than 2^14")
    {
        Bytes s = prefix(rec, 5);
        s[3] = 0x40;
        s[4] = 0x01;
        const ParseResult r = parse(s, h);
        REQUIRE(r.status == ParseStatus::malformed);
        REQUIRE(r.anomaly == HelloAnomaly::record_too_long);
        s[4] = 0x00;  // exactly 2^14 is allowed
        REQUIRE(parse(s, h).status == ParseStatus::need_more);
    }
    SECTION("another content type before the message ends")
    {
        const HelloBuilder b = HelloBuilder::browser_like();
        const Bytes hs = b.handshake();
        Bytes s = exf::test::tls_record(0x16, 0x0301, std::span<const uint8_t>(hs.data(), 100));
        const Bytes ccs = exf::test::tls_record(0x14, 0x0303, Bytes{0x01});
        s.insert(s.end(), ccs.begin(), ccs.end());
        const ParseResult r = parse(s, h);
        REQUIRE(r.status == ParseStatus::malformed);
        REQUIRE(r.anomaly == HelloAnomaly::record_type_changed);
        REQUIRE(parse(prefix(s, 106), h).anomaly == HelloAnomaly::record_type_changed);
    }
    SECTION("not a ClientHello")
    {
        Bytes s = rec;
        s[5] = 0x02;  // ServerHello
        REQUIRE(parse(prefix(s, 6), h).anomaly == HelloAnomaly::not_client_hello);
        // Also when the handshake type sits in a second record.
        const Bytes two{0x16, 0x03, 0x01, 0x00, 0x01};
        REQUIRE(parse(two, h).status == ParseStatus::need_more);
        Bytes split = exf::test::split_records(Bytes{0x01, 0x00}, {1, 1});
        REQUIRE(parse(split, h).status == ParseStatus::need_more);
        split[5] = 0x02;  // type byte of the first record's fragment
        REQUIRE(parse(split, h).anomaly == HelloAnomaly::not_client_hello);
    }
    SECTION("handshake length too short for a ClientHello")
    {
        Bytes s = rec;
        s[6] = 0;
        s[7] = 0;
        s[8] = 37;
        const ParseResult r = parse(prefix(s, 9), h);
        REQUIRE(r.status == ParseStatus::malformed);
        REQUIRE(r.anomaly == HelloAnomaly::handshake_too_short);
    }
    SECTION("handshake length beyond any ClientHello")
    {
        Bytes s = rec;
        s[6] = 0x10;
        REQUIRE(parse(s, h).anomaly == HelloAnomaly::handshake_too_long);
    }
}

TEST_CASE("client_hello: a broken session id is malformed", "[tls][client_hello]")
{
    ClientHello h;
    std::vector<LengthField> fields;
    const Bytes rec = HelloBuilder::browser_like().record(0x0301, &fields);

    auto expect = [&](const Bytes &s, HelloAnomaly a) {
        const ParseResult r = parse(s, h);
        INFO("got " << to_string(r.status) << "/" << to_string(r.anomaly) << ", want "
                    << to_string(a));
        REQUIRE(r.status == ParseStatus::malformed);
        REQUIRE(r.anomaly == a);
    };

    SECTION("session id longer than 32, known from its length byte")
    {
        Bytes s = rec;
        set_length(s, field(fields, "session_id"), 33);
        expect(s, HelloAnomaly::bad_session_id_length);
        const size_t at = field(fields, "session_id").offset + 1;
        expect(prefix(s, at), HelloAnomaly::bad_session_id_length);
        REQUIRE(parse(prefix(s, at - 1), h).status == ParseStatus::need_more);
    }
    SECTION("session id running past the message")
    {
        Bytes body = HelloBuilder().no_extensions_block().session_id({}).body();
        body[34] = 10;  // session id of 10 with 5 bytes left
        expect(wrap_body(body), HelloAnomaly::bad_session_id_length);
    }
    SECTION("a body error is reported before a later record error")
    {
        Bytes s = rec;
        set_length(s, field(fields, "session_id"), 40);
        s.push_back(0x17);  // and junk where a next record would start
        expect(s, HelloAnomaly::bad_session_id_length);
    }
}

// The tolerance rule of client_hello.h: a length inside the body that
// contradicts the message's end gives a complete hello (what parsed before the
// bad length) with that length's anomaly; every prefix still needs more.
TEST_CASE("client_hello: lengths inside the body that contradict the message",
          "[tls][client_hello]")
{
    const HelloBuilder b = HelloBuilder::browser_like();
    std::vector<LengthField> fields;
    const Bytes rec = b.record(0x0301, &fields);
    const std::vector<uint16_t> all_ciphers{0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f,
                                            0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
                                            0x009c, 0x009d, 0x002f, 0x0035};

    // Complete with `want`, the whole input consumed, and no prefix malformed.
    auto tolerated = [](const Bytes &s, HelloAnomaly want) {
        ClientHello h;
        const ParseResult r = parse(s, h);
        INFO("got " << to_string(r.status) << "/" << to_string(r.anomaly) << ", want "
                    << to_string(want));
        REQUIRE(r.status == ParseStatus::complete);
        REQUIRE(r.anomaly == want);
        REQUIRE(r.consumed == s.size());
        // The framing-only walk agrees.
        ClientHelloParser p;
        REQUIRE(p.parse_record(s, nullptr).status == ParseStatus::complete);
        require_every_prefix_needs_more(s);
        return h;
    };

    SECTION("cipher suites running past the message: not taken, nothing after them")
    {
        Bytes s = rec;
        set_length(s, field(fields, "cipher_suites"), 0xfffe);
        const ClientHello h = tolerated(s, HelloAnomaly::bad_cipher_suites_length);
        REQUIRE(h.legacy_version == 0x0303);
        REQUIRE(h.session_id == Bytes(32, 0x22));
        REQUIRE(h.cipher_suites.empty());
        REQUIRE(h.compression_methods.empty());
        REQUIRE_FALSE(h.has_extensions_block);
        REQUIRE(h.extensions.empty());
        REQUIRE_FALSE(h.has_sni);
        REQUIRE(h.sni.empty());
    }
    SECTION("cipher suites one byte past the message: not clamped")
    {
        // 2 suites and the compression bytes, then a length 1 too long.
        Bytes body =
            HelloBuilder().no_extensions_block().session_id({}).ciphers({0x1301, 0x1302}).body();
        body[35] = 0;
        body[36] = 7;  // 4 suite bytes + 2 compression bytes = 6 left
        const ClientHello h = tolerated(wrap_body(body), HelloAnomaly::bad_cipher_suites_length);
        REQUIRE(h.cipher_suites.empty());
    }
    SECTION("cipher suites ending exactly at the message end, odd length")
    {
        // 2 suites + compression {1, 0}: 6 bytes, declared 5: the suites
        // 1301 1302 and 0x01 (the odd byte, skipped); no room for compression.
        Bytes body =
            HelloBuilder().no_extensions_block().session_id({}).ciphers({0x1301, 0x1302}).body();
        body.pop_back();  // drop the compression method: 5 bytes after the length
        body[36] = 5;
        const ClientHello h = tolerated(wrap_body(body), HelloAnomaly::bad_cipher_suites_length);
        REQUIRE(h.cipher_suites == std::vector<uint16_t>{0x1301, 0x1302});
        REQUIRE(h.compression_methods.empty());
        REQUIRE(h.extensions.empty());
    }
    SECTION("odd cipher suites length inside the message: whole suites, the walk goes on")
    {
        Bytes s = rec;
        const auto &f = field(fields, "cipher_suites");
        set_length(s, f, get_length(s, f) + 1);
        // The odd byte is the compression length (1); the compression length
        // read next is the old method (0): no methods; the extensions follow.
        const ClientHello h = tolerated(s, HelloAnomaly::bad_cipher_suites_length);
        REQUIRE(h.cipher_suites == all_ciphers);
        REQUIRE(h.compression_methods.empty());
        REQUIRE(h.extensions == ext_types(b));
        REQUIRE(h.sni == "example.com");
    }
    SECTION("compression methods past the message")
    {
        Bytes body = HelloBuilder().no_extensions_block().body();
        body.back() = 0;
        body[body.size() - 2] = 2;
        const ClientHello h = tolerated(wrap_body(body), HelloAnomaly::bad_compression_length);
        REQUIRE(h.cipher_suites.size() == 3);
        REQUIRE(h.compression_methods.empty());
    }
    SECTION("extensions block one byte longer than the message: no extensions")
    {
        Bytes s = rec;
        const auto &f = field(fields, "extensions");
        set_length(s, f, get_length(s, f) + 1);
        const ClientHello h = tolerated(s, HelloAnomaly::bad_extensions_length);
        REQUIRE(h.cipher_suites == all_ciphers);
        REQUIRE(h.compression_methods == Bytes{0});
        REQUIRE_FALSE(h.has_extensions_block);
        REQUIRE(h.extensions.empty());
        REQUIRE_FALSE(h.has_sni);
        REQUIRE(h.alpn.empty());
    }
    SECTION("extensions block one byte shorter than the message")
    {
        // The last extension (4a4a, 1 byte) now runs past the block: listed,
        // not parsed; the anomaly is the block's (first in wire order).
        Bytes s = rec;
        const auto &f = field(fields, "extensions");
        set_length(s, f, get_length(s, f) - 1);
        const ClientHello h = tolerated(s, HelloAnomaly::bad_extensions_length);
        REQUIRE(h.has_extensions_block);
        REQUIRE(h.extensions == ext_types(b));
        REQUIRE(h.sni == "example.com");
        REQUIRE(h.alpn == std::vector<std::string>{"h2", "http/1.1"});
    }
    SECTION("bytes after a well-formed extensions block are ignored")
    {
        Bytes body = HelloBuilder().sni("a.example").raw_extension(0x0017, {}).body();
        body.insert(body.end(), {0x00, 0x00, 0x00, 0x05, 0x00});  // would be a cut extension
        const ClientHello h = tolerated(wrap_body(body), HelloAnomaly::bad_extensions_length);
        REQUIRE(h.extensions == std::vector<uint16_t>{0x0000, 0x0017});
        REQUIRE(h.sni == "a.example");
    }
    SECTION("a single byte where the extensions length should be")
    {
        Bytes body = HelloBuilder().no_extensions_block().body();
        body.push_back(0x00);
        const ClientHello h = tolerated(wrap_body(body), HelloAnomaly::bad_extensions_length);
        REQUIRE(h.cipher_suites.size() == 3);
        REQUIRE_FALSE(h.has_extensions_block);
    }
    SECTION("the last extension running past the block")
    {
        Bytes s = rec;
        set_length(s, field(fields, "ext[17:4a4a].len"), 2);
        const ClientHello h = tolerated(s, HelloAnomaly::bad_extension_length);
        REQUIRE(h.extensions == ext_types(b));  // its type is listed
        REQUIRE(h.sni == "example.com");
    }
    SECTION("a server_name extension running past the block: listed, no SNI")
    {
        std::vector<LengthField> f2;
        const Bytes r2 =
            HelloBuilder().raw_extension(0x0017, {}).sni("a.example").record(0x0301, &f2);
        Bytes s = r2;
        const auto &f = field(f2, "ext[1:0000].len");
        set_length(s, f, get_length(s, f) + 3);
        const ClientHello h = tolerated(s, HelloAnomaly::bad_extension_length);
        REQUIRE(h.extensions == std::vector<uint16_t>{0x0017, 0x0000});
        REQUIRE(h.has_extension(ext::server_name));
        REQUIRE_FALSE(h.has_sni);
        REQUIRE(h.sni.empty());
    }
    SECTION("an extension in the middle running past the block stops the walk")
    {
        Bytes s = rec;
        set_length(s, field(fields, "ext[1:0000].len"), 0xffff);
        const ClientHello h = tolerated(s, HelloAnomaly::bad_extension_length);
        REQUIRE(h.extensions == std::vector<uint16_t>{0x1a1a, 0x0000});
        REQUIRE_FALSE(h.has_sni);
        REQUIRE(h.alpn.empty());
    }
    SECTION("stray bytes after the last extension")
    {
        Bytes body = HelloBuilder().raw_extension(0x0017, {}).body();
        body.insert(body.end(), {0x00, 0x23, 0x00});
        // Fix the extensions length to cover the stray bytes.
        body[body.size() - 9] = 0;
        body[body.size() - 8] = 7;
        const ClientHello h = tolerated(wrap_body(body), HelloAnomaly::bad_extension_length);
        REQUIRE(h.extensions == std::vector<uint16_t>{0x0017});
    }
    SECTION("a length anomaly wins over content anomalies")
    {
        // empty_cipher_suites and bad_alpn come first in wire order.
        std::vector<LengthField> f2;
        const Bytes r2 =
            HelloBuilder().ciphers({}).raw_extension(ext::alpn, {0x00, 0x00}).record(0x0301, &f2);
        Bytes s = r2;
        const auto &f = field(f2, "extensions");
        set_length(s, f, get_length(s, f) - 1);
        tolerated(s, HelloAnomaly::bad_extensions_length);
        REQUIRE(parse(r2).anomaly == HelloAnomaly::empty_cipher_suites);  // without it
    }
    SECTION("the bare handshake entry point applies the same rule")
    {
        Bytes hs = b.handshake();
        Bytes s = rec;
        set_length(s, field(fields, "cipher_suites"), 0xfffe);
        hs.assign(s.begin() + 5, s.end());
        ClientHello h;
        const ParseResult r = parse_client_hello_handshake(hs, h);
        REQUIRE(r.status == ParseStatus::complete);
        REQUIRE(r.anomaly == HelloAnomaly::bad_cipher_suites_length);
        REQUIRE(h.cipher_suites.empty());
        require_every_prefix_needs_more(hs, true);
    }
}

// A tolerated hello is still only complete with all its declared bytes: cut
// short, it gives nothing (no SNI), and a stream that ends there is malformed
// with its truncation anomaly.
TEST_CASE("client_hello: a truly truncated hello yields no SNI", "[tls][client_hello]")
{
    std::vector<LengthField> fields;
    const Bytes rec = HelloBuilder().sni("cut.example").alpn({"h2"}).record(0x0301, &fields);
    SECTION("cut inside the SNI")
    {
        const Bytes s = prefix(rec, field(fields, "ext[0:0000].len").offset + 8);
        ClientHello h;
        const ParseResult r = parse(s, h);
        REQUIRE(r.status == ParseStatus::need_more);
        REQUIRE(r.anomaly == HelloAnomaly::truncated_record);
        REQUIRE_FALSE(h.has_sni);
        REQUIRE(h.sni.empty());
        HelloReassembler ra;
        REQUIRE(ra.add(0, s) == HelloReassembler::Status::need_more);
        REQUIRE(ra.finish() == HelloReassembler::Status::malformed);
        REQUIRE(ra.anomaly() == HelloAnomaly::truncated_record);
    }
    SECTION("the handshake header claims more than the records hold")
    {
        Bytes s = rec;
        const auto &f = field(fields, "handshake");
        set_length(s, f, get_length(s, f) + 1);
        ClientHello h;
        const ParseResult r = parse(s, h);
        REQUIRE(r.status == ParseStatus::need_more);
        REQUIRE(r.anomaly == HelloAnomaly::truncated_handshake);
        REQUIRE(h.sni.empty());
        HelloReassembler ra;
        REQUIRE(ra.add(0, s) == HelloReassembler::Status::need_more);
        REQUIRE(ra.finish() == HelloReassembler::Status::malformed);
        REQUIRE(ra.anomaly() == HelloAnomaly::truncated_handshake);
        // What follows is not a handshake record: malformed at once.
        s.insert(s.end(), {0x14, 0x03, 0x01, 0x00, 0x01, 0x01});
        REQUIRE(parse(s, h).status == ParseStatus::malformed);
        REQUIRE(parse(s, h).anomaly == HelloAnomaly::record_type_changed);
    }
    SECTION("a hello with a tolerated length, cut short")
    {
        Bytes s = rec;
        set_length(s, field(fields, "cipher_suites"), 0xfffe);
        REQUIRE(parse(s).status == ParseStatus::complete);
        ClientHello h;
        const ParseResult r = parse(prefix(s, s.size() - 1), h);
        REQUIRE(r.status == ParseStatus::need_more);
        REQUIRE(h.sni.empty());
    }
}

TEST_CASE("client_hello: content anomalies keep the rest of the hello", "[tls][client_hello]")
{
    auto check = [](const Bytes &rec, HelloAnomaly want) {
        ClientHello h;
        const ParseResult r = parse(rec, h);
        INFO("got " << to_string(r.anomaly) << ", want " << to_string(want));
        REQUIRE(r.status == ParseStatus::complete);
        REQUIRE(r.anomaly == want);
        REQUIRE(r.consumed == rec.size());
        REQUIRE(h.cipher_suites.size() == 3);
        return h;
    };
    auto with_ext = [](uint16_t type, Bytes data) {
        return HelloBuilder()
            .raw_extension(type, std::move(data))
            .raw_extension(0x0017, {})
            .record();
    };

    SECTION("SNI")
    {
        ClientHello h = check(with_ext(ext::server_name, {}), HelloAnomaly::bad_sni);
        REQUIRE(h.has_sni);
        REQUIRE(h.extensions == std::vector<uint16_t>{0x0000, 0x0017});
        check(with_ext(ext::server_name, {0x00, 0x00}), HelloAnomaly::bad_sni);  // empty list
        check(with_ext(ext::server_name, {0x00, 0x03, 0x00, 0x00, 0x00}),
              HelloAnomaly::bad_sni);  // empty name
        check(with_ext(ext::server_name, {0x00, 0x05, 0x00, 0x00, 0x01, 'a'}),
              HelloAnomaly::bad_sni);
        check(with_ext(ext::server_name, {0x00, 0x04, 0x00, 0x00, 0x05, 'a'}),
              HelloAnomaly::bad_sni);
        h = check(
            with_ext(ext::server_name, {0x00, 0x08, 0x00, 0x00, 0x01, 'a', 0x00, 0x00, 0x01, 'b'}),
            HelloAnomaly::bad_sni);  // two host names: the first is kept
        REQUIRE(h.sni == "a");
        // Other name types are skipped.
        h = check(
            with_ext(ext::server_name, {0x00, 0x08, 0x07, 0x00, 0x01, 'x', 0x00, 0x00, 0x01, 'b'}),
            HelloAnomaly::none);
        REQUIRE(h.sni == "b");
    }
    SECTION("ALPN")
    {
        check(with_ext(ext::alpn, {}), HelloAnomaly::bad_alpn);
        check(with_ext(ext::alpn, {0x00, 0x00}), HelloAnomaly::bad_alpn);
        ClientHello h =
            check(with_ext(ext::alpn, {0x00, 0x04, 0x00, 0x02, 'h', '2'}), HelloAnomaly::bad_alpn);
        REQUIRE(h.alpn == std::vector<std::string>{"", "h2"});  // the empty name is kept
        check(with_ext(ext::alpn, {0x00, 0x03, 0x05, 'h', '2'}), HelloAnomaly::bad_alpn);
        check(with_ext(ext::alpn, {0x00, 0x02, 0x02, 'h', '2'}), HelloAnomaly::bad_alpn);
    }
    SECTION("supported_versions")
    {
        check(with_ext(ext::supported_versions, {}), HelloAnomaly::bad_supported_versions);
        check(with_ext(ext::supported_versions, {0x00}), HelloAnomaly::bad_supported_versions);
        check(with_ext(ext::supported_versions, {0x03, 0x03, 0x04, 0x03}),
              HelloAnomaly::bad_supported_versions);
        const ClientHello h =
            check(with_ext(ext::supported_versions, {0x04, 0x03, 0x04, 0x03, 0x03, 0x00}),
                  HelloAnomaly::bad_supported_versions);
        REQUIRE(h.supported_versions == std::vector<uint16_t>{0x0304, 0x0303});
    }
    SECTION("signature_algorithms")
    {
        check(with_ext(ext::signature_algorithms, {0x00}), HelloAnomaly::bad_signature_algorithms);
        check(with_ext(ext::signature_algorithms, {0x00, 0x00}),
              HelloAnomaly::bad_signature_algorithms);
        check(with_ext(ext::signature_algorithms, {0x00, 0x03, 0x04, 0x03, 0x08}),
              HelloAnomaly::bad_signature_algorithms);
        check(with_ext(ext::signature_algorithms, {0x00, 0x04, 0x04, 0x03}),
              HelloAnomaly::bad_signature_algorithms);
    }
    SECTION("supported_groups, ec_point_formats, key_share")
    {
        check(with_ext(ext::supported_groups, {0x00, 0x01, 0x00}),
              HelloAnomaly::bad_supported_groups);
        check(with_ext(ext::ec_point_formats, {0x00}), HelloAnomaly::bad_ec_point_formats);
        check(with_ext(ext::ec_point_formats, {0x02, 0x00}), HelloAnomaly::bad_ec_point_formats);
        check(with_ext(ext::key_share, {0x00, 0x05, 0x00, 0x1d, 0x00, 0x01}),
              HelloAnomaly::bad_key_share);
        check(with_ext(ext::key_share, {0x00, 0x04, 0x00, 0x1d, 0x00, 0x00}),
              HelloAnomaly::bad_key_share);
        const ClientHello h =
            check(with_ext(ext::key_share, {0x00, 0x00}), HelloAnomaly::none);  // HRR-style
        REQUIRE(h.key_share_groups.empty());
    }
    SECTION("duplicate extension")
    {
        check(HelloBuilder()
                  .raw_extension(0x0017, {})
                  .raw_extension(0x0023, {})
                  .raw_extension(0x0017, {})
                  .record(),
              HelloAnomaly::duplicate_extension);
        // Two different GREASE values are fine.
        check(HelloBuilder().raw_extension(0x0a0a, {}).raw_extension(0x1a1a, {0}).record(),
              HelloAnomaly::none);
    }
    SECTION("the first anomaly in wire order is reported")
    {
        const Bytes rec = HelloBuilder()
                              .raw_extension(ext::alpn, {0x00, 0x00})
                              .raw_extension(ext::server_name, {})
                              .record();
        check(rec, HelloAnomaly::bad_alpn);
    }
    SECTION("empty cipher suites and compression methods")
    {
        ClientHello h;
        ParseResult r = parse(HelloBuilder().ciphers({}).sni("a.example").record(), h);
        REQUIRE(r.status == ParseStatus::complete);
        REQUIRE(r.anomaly == HelloAnomaly::empty_cipher_suites);
        REQUIRE(h.cipher_suites.empty());
        REQUIRE(h.sni == "a.example");
        r = parse(HelloBuilder().compression({}).record(), h);
        REQUIRE(r.status == ParseStatus::complete);
        REQUIRE(r.anomaly == HelloAnomaly::empty_compression_methods);
    }
}

TEST_CASE("client_hello: every length field corrupted", "[tls][client_hello]")
{
    std::vector<LengthField> fields;
    const HelloBuilder b = HelloBuilder::browser_like();
    const Bytes rec = b.record(0x0301, &fields);
    REQUIRE(fields.size() > 20);

    // What a length one larger than written does, by field.
    auto expected_plus_one = [](const std::string &name) -> std::pair<ParseStatus, HelloAnomaly> {
        auto ends = [&](std::string_view s) {
            return name.size() >= s.size() &&
                   name.compare(name.size() - s.size(), s.size(), s) == 0;
        };
        // The record claims a byte more, but the hello itself is whole.
        if (name == "record")
            return {ParseStatus::complete, HelloAnomaly::none};
        // The message claims a byte the record does not hold: wait for it
        // (the handshake header, not the lengths inside, says where it ends).
        if (name == "handshake")
            return {ParseStatus::need_more, HelloAnomaly::truncated_handshake};
        if (name == "session_id")
            return {ParseStatus::malformed, HelloAnomaly::bad_session_id_length};
        // Tolerated (client_hello.h): odd suites length / block past the message.
        if (name == "cipher_suites")
            return {ParseStatus::complete, HelloAnomaly::bad_cipher_suites_length};
        if (name == "extensions")
            return {ParseStatus::complete, HelloAnomaly::bad_extensions_length};
        // One extension's length: the walk goes off the rails and stops.
        if (ends("].len"))
            return {ParseStatus::complete, HelloAnomaly::bad_extension_length};
        if (name.find(":0000].") != std::string::npos && !ends(".len"))
            return {ParseStatus::complete, HelloAnomaly::bad_sni};
        if (name.find(":0010].") != std::string::npos && !ends(".len"))
            return {ParseStatus::complete, HelloAnomaly::bad_alpn};
        if (name.find(":002b].") != std::string::npos && !ends(".len"))
            return {ParseStatus::complete, HelloAnomaly::bad_supported_versions};
        if (name.find(":000d].") != std::string::npos && !ends(".len"))
            return {ParseStatus::complete, HelloAnomaly::bad_signature_algorithms};
        if (name.find(":000a].") != std::string::npos && !ends(".len"))
            return {ParseStatus::complete, HelloAnomaly::bad_supported_groups};
        if (name.find(":000b].") != std::string::npos && !ends(".len"))
            return {ParseStatus::complete, HelloAnomaly::bad_ec_point_formats};
        if (name.find(":0033].") != std::string::npos && !ends(".len"))
            return {ParseStatus::complete, HelloAnomaly::bad_key_share};
        return {ParseStatus::complete, HelloAnomaly::none};  // content not parsed here
    };

    for (const auto &f : fields) {
        const uint32_t v = get_length(rec, f);
        INFO("field " << f.name << " = " << v);
        {
            Bytes s = rec;
            set_length(s, f, v + 1);
            ClientHello h;
            const ParseResult r = parse(s, h);
            const auto [st, an] = expected_plus_one(f.name);
            INFO("got " << to_string(r.status) << "/" << to_string(r.anomaly));
            REQUIRE(r.status == st);
            if (an != HelloAnomaly::none)
                REQUIRE(r.anomaly == an);
            if (st == ParseStatus::complete) {
                REQUIRE(h.cipher_suites.size() == 16);
                REQUIRE(r.consumed == s.size());
            }
        }
        if (v > 0) {
            Bytes s = rec;
            set_length(s, f, v - 1);
            const ParseResult r = parse(s);
            INFO("minus one: " << to_string(r.status) << "/" << to_string(r.anomaly));
            // Shorter: never a clean hello.
            REQUIRE_FALSE((r.status == ParseStatus::complete && r.anomaly == HelloAnomaly::none));
        }
        // Any value: no crash, sane bookkeeping.
        const uint32_t maxv = f.width == 1 ? 0xff : f.width == 2 ? 0xffff : 0xffffff;
        for (uint32_t x : {0u, 1u, 2u, 3u, 4u, 5u, 31u, 32u, 33u, 255u, 256u, 0x3fffu, 0x4000u,
                           0x4001u, 0x8000u, maxv - 1, maxv}) {
            if (x > maxv)
                continue;
            Bytes s = rec;
            set_length(s, f, x);
            const ParseResult r = parse(s);
            if (r.complete())
                REQUIRE(r.consumed <= s.size());
            if (r.need_more())
                REQUIRE(r.needed > s.size());
            if (r.malformed())
                REQUIRE(r.anomaly != HelloAnomaly::none);
        }
    }
}

TEST_CASE("client_hello: random corruption never crashes", "[tls][client_hello][fuzz]")
{
    std::mt19937 rng(20240607);
    const std::vector<Bytes> seeds = {
        HelloBuilder::browser_like().record(),
        HelloBuilder::browser_like().records(97),
        HelloBuilder().no_extensions_block().record(),
        HelloBuilder().sni("192.0.2.7").alpn({"\xba\xad"}).supported_versions({0x0304}).record(),
    };
    ClientHelloParser parser;
    std::set<HelloAnomaly> seen;
    for (int iter = 0; iter < 20000; ++iter) {
        Bytes s = seeds[static_cast<size_t>(iter) % seeds.size()];
        const int edits = 1 + static_cast<int>(rng() % 4);
        for (int e = 0; e < edits; ++e) {
            const size_t at = rng() % s.size();
            switch (rng() % 4) {
            case 0: s[at] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
            case 1: s[at] = static_cast<uint8_t>(rng()); break;
            case 2: s.resize(std::max<size_t>(1, at)); break;
            default:
                s.insert(s.begin() + static_cast<std::ptrdiff_t>(at), static_cast<uint8_t>(rng()));
                break;
            }
        }
        ClientHello h;
        const ParseResult framing = parser.parse_record(s, nullptr);
        const ParseResult r = parser.parse_record(s, &h);
        seen.insert(r.anomaly);
        REQUIRE(framing.status == r.status);
        if (!r.complete())
            REQUIRE(framing.anomaly == r.anomaly);
        if (r.complete())
            REQUIRE(r.consumed <= s.size());
        if (r.need_more())
            REQUIRE(r.needed > s.size());
        // The bare entry point on the same bytes (minus a record header).
        if (s.size() > 5) {
            ClientHello q;
            const ParseResult rq =
                parser.parse_handshake(std::span<const uint8_t>(s).subspan(5), &q);
            if (rq.complete())
                REQUIRE(rq.consumed <= s.size() - 5);
        }
    }
    REQUIRE(seen.size() > 8);  // the corruption reached many code paths
}

TEST_CASE("client_hello: SNI that is an IP literal", "[tls][client_hello]")
{
    for (const char *ip :
         {"192.0.2.1", "2001:db8::1", "[2001:db8::1]", "::ffff:192.0.2.1", "::1"}) {
        INFO(ip);
        const ClientHello h = parse_ok(HelloBuilder().sni(ip).record());
        REQUIRE(h.sni == ip);
        REQUIRE(h.sni_is_ip);
    }
    for (const char *name :
         {"example.com", "192.0.2", "192.0.2.1.", "1.2.3.4.example", "[example]", "999.1.1.1"}) {
        INFO(name);
        const ClientHello h = parse_ok(HelloBuilder().sni(name).record());
        REQUIRE_FALSE(h.sni_is_ip);
    }
    REQUIRE_FALSE(is_ip_literal(std::string_view("1.2.3.4\0x", 9)));
    REQUIRE_FALSE(is_ip_literal(""));
    REQUIRE_FALSE(is_ip_literal(std::string(100, '1')));
}

TEST_CASE("client_hello: ECH reports the outer SNI", "[tls][client_hello]")
{
    const ClientHello h = parse_ok(
        HelloBuilder().sni("public.example").supported_versions({0x0304}).ech(180).record());
    REQUIRE(h.ech);
    REQUIRE(h.sni == "public.example");
    REQUIRE(h.extensions.back() == ext::encrypted_client_hello);
    REQUIRE_FALSE(parse_ok(HelloBuilder().sni("public.example").record()).ech);
}

TEST_CASE("client_hello: ALPN bytes are kept raw", "[tls][client_hello]")
{
    const std::string weird("\xba\xad", 2);
    const std::string nul("a\0b", 3);
    const ClientHello h = parse_ok(HelloBuilder().alpn({weird, "h2", nul, "\xc3\xa9"}).record());
    REQUIRE(h.alpn.size() == 4);
    REQUIRE(h.alpn[0] == weird);
    REQUIRE(h.alpn[2] == nul);
    REQUIRE(h.alpn[3] == "\xc3\xa9");
}

TEST_CASE("client_hello: signature_algorithms_cert stays out of signature_algorithms",
          "[tls][client_hello]")
{
    const ClientHello h = parse_ok(HelloBuilder()
                                       .signature_algorithms_cert({0x0401, 0x0501})
                                       .signature_algorithms({0x0403, 0x0804})
                                       .record());
    REQUIRE(h.signature_algorithms == std::vector<uint16_t>{0x0403, 0x0804});
    REQUIRE(h.has_extension(ext::signature_algorithms_cert));
}

TEST_CASE("client_hello: PQ-sized hello cut where a TCP segment would end", "[tls][client_hello]")
{
    const Bytes rec = HelloBuilder::browser_like().record();
    REQUIRE(rec.size() > 1460);
    ClientHello h;
    const ParseResult first = parse(prefix(rec, 1460), h);
    REQUIRE(first.status == ParseStatus::need_more);
    REQUIRE(first.anomaly == HelloAnomaly::truncated_record);
    REQUIRE(first.needed == rec.size());  // one record: the exact size is known
    const ParseResult all = parse(rec, h);
    REQUIRE(all.complete());
    REQUIRE(std::find(h.key_share_groups.begin(), h.key_share_groups.end(), 0x11ec) !=
            h.key_share_groups.end());
}

TEST_CASE("client_hello: GREASE detection", "[tls][client_hello]")
{
    int n = 0;
    for (uint32_t v = 0; v <= 0xffff; ++v)
        if (is_grease(static_cast<uint16_t>(v)))
            ++n;
    REQUIRE(n == 16);
    REQUIRE(is_grease(0x0a0a));
    REQUIRE(is_grease(0xfafa));
    REQUIRE_FALSE(is_grease(0x0a1a));
    REQUIRE_FALSE(is_grease(0xca34));
}

TEST_CASE("client_hello: anomaly and status names", "[tls][client_hello]")
{
    std::set<std::string_view> names;
    const auto last = static_cast<int>(HelloAnomaly::too_fragmented);
    for (int i = 0; i <= last; ++i) {
        const std::string_view s = to_string(static_cast<HelloAnomaly>(i));
        REQUIRE_FALSE(s.empty());
        REQUIRE(s != "unknown");
        names.insert(s);
    }
    REQUIRE(names.size() == static_cast<size_t>(last) + 1);
    REQUIRE(to_string(HelloAnomaly::bad_sni) == "bad_sni");
    REQUIRE(to_string(ParseStatus::need_more) == "need_more");
}

TEST_CASE("client_hello: one parser reused across inputs", "[tls][client_hello]")
{
    ClientHelloParser p;
    ClientHello h;
    const Bytes split = HelloBuilder::browser_like().records(50);
    const Bytes single = HelloBuilder().sni("b.example").record();
    for (int i = 0; i < 3; ++i) {
        REQUIRE(p.parse_record(split, &h).complete());
        REQUIRE(h.sni == "example.com");
        REQUIRE(p.parse_record(single, &h).complete());
        REQUIRE(h.sni == "b.example");
        REQUIRE(h.record_count == 1);
        REQUIRE(p.parse_record(prefix(split, 700), &h).need_more());
    }
}
