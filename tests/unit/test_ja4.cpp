// SPDX-License-Identifier: Apache-2.0
// JA4 client fingerprint: FoxIO's worked example (technical_details/JA4.md),
// hand-derived cases for each rule, and FoxIO's published outputs.
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <sstream>

#include "support/test_env.h"
#include "support/tls_builder.h"
#include "tls/client_hello.h"
#include "tls/ja4.h"

using exf::test::Bytes;
using exf::test::HelloBuilder;
using namespace exf::tls;

namespace {

ClientHello parsed(const Bytes &rec)
{
    ClientHello h;
    const ParseResult r = parse_client_hello_record(rec, h);
    REQUIRE(r.status == ParseStatus::complete);
    return h;
}

// A ClientHello given as lists (no bytes): enough for JA4.
ClientHello lists(std::vector<uint16_t> ciphers, std::vector<uint16_t> exts,
                  std::vector<uint16_t> sigs = {})
{
    ClientHello h;
    h.legacy_version = 0x0303;
    h.cipher_suites = std::move(ciphers);
    h.extensions = std::move(exts);
    h.signature_algorithms = std::move(sigs);
    h.has_extensions_block = !h.extensions.empty();
    h.has_sni = h.has_extension(ext::server_name);
    return h;
}

// The ClientHello of JA4.md's example, with GREASE added in every list (which
// must not change anything). Extension data are plausible bodies.
HelloBuilder spec_example()
{
    HelloBuilder b;
    b.ciphers({0x5a5a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8,
               0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035});
    b.grease_extension(0xdada)
        .raw_extension(0x001b, {0x02, 0x00, 0x02})
        .sni("example.com")
        .key_share({{0x6a6a, 1}, {0x001d, 32}})
        .alpn({"h2", "http/1.1"})
        .raw_extension(0x4469, {0x00, 0x03, 0x02, 0x68, 0x32})
        .raw_extension(0x0017, {})
        .raw_extension(0x002d, {0x01, 0x01})
        .signature_algorithms({0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601})
        .raw_extension(0x0005, {0x01, 0x00, 0x00, 0x00, 0x00})
        .raw_extension(0x0023, {})
        .raw_extension(0x0012, {})
        .supported_versions({0x8a8a, 0x0304, 0x0303})
        .raw_extension(0xff01, {0x00})
        .ec_point_formats({0x00})
        .supported_groups({0x6a6a, 0x001d, 0x0017, 0x0018})
        .grease_extension(0xeaea, {0x00})
        .padding(100);
    return b;
}

std::vector<uint16_t> hex_list(std::string_view s)
{
    std::vector<uint16_t> out;
    size_t pos = 0;
    while (pos < s.size()) {
        size_t comma = s.find(',', pos);
        if (comma == std::string_view::npos)
            comma = s.size();
        out.push_back(static_cast<uint16_t>(
            std::stoul(std::string(s.substr(pos, comma - pos)), nullptr, 16)));
        pos = comma + 1;
    }
    return out;
}

std::vector<std::string> split(std::string_view s, char sep)
{
    std::vector<std::string> out;
    size_t pos = 0;
    for (;;) {
        const size_t at = s.find(sep, pos);
        out.emplace_back(
            s.substr(pos, at == std::string_view::npos ? std::string_view::npos : at - pos));
        if (at == std::string_view::npos)
            break;
        pos = at + 1;
    }
    return out;
}

std::vector<std::string> csv_row(const std::string &line)
{
    std::vector<std::string> cells(1);
    bool quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (quoted) {
            if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
                cells.back().push_back('"');
                ++i;
            } else if (c == '"') {
                quoted = false;
            } else {
                cells.back().push_back(c);
            }
        } else if (c == '"') {
            quoted = true;
        } else if (c == ',') {
            cells.emplace_back();
        } else if (c != '\r') {
            cells.back().push_back(c);
        }
    }
    return cells;
}

}  // namespace

TEST_CASE("ja4: FoxIO's worked example from JA4.md", "[tls][ja4]")
{
    const ClientHello h = parsed(spec_example().record());
    const Ja4Fingerprints fp = compute_ja4(h);
    REQUIRE(fp.ja4 == "t13d1516h2_8daaf6152771_e5627efa2ab1");
    REQUIRE(fp.ja4_r ==
            "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_"
            "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_"
            "0403,0804,0401,0503,0805,0501,0806,0601");
    REQUIRE(fp.ja4_o == "t13d1516h2_acb858a92679_18f69afefd3d");
    REQUIRE(fp.ja4_ro ==
            "t13d1516h2_1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035_"
            "001b,0000,0033,0010,4469,0017,002d,000d,0005,0023,0012,002b,ff01,000b,000a,0015_"
            "0403,0804,0401,0503,0805,0501,0806,0601");
    REQUIRE(ja4(h) == fp.ja4);

    SECTION("the same hello split over records, or as a QUIC message, fingerprints the same")
    {
        REQUIRE(ja4(parsed(spec_example().records(61))) == fp.ja4);
        ClientHello q;
        REQUIRE(parse_client_hello_handshake(spec_example().handshake(), q).complete());
        REQUIRE(ja4(q) == "q13d1516h2_8daaf6152771_e5627efa2ab1");
    }
}

TEST_CASE("ja4: the hash strings of JA4.md", "[tls][ja4]")
{
    REQUIRE(
        ja4_hash12("002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9") ==
        "8daaf6152771");
    REQUIRE(ja4_hash12("0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_"
                       "0403,0804,0401,0503,0805,0501,0806,0601") == "e5627efa2ab1");
    // "If there are no signature algorithms ... the string ends without an underscore."
    REQUIRE(ja4_hash12("0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01") ==
            "6d807ffa2a79");
    REQUIRE(ja4_hash12("551d0f,551d25,551d11") == "aae71e8db6d7");  // FoxIO's hash12 unit test
    REQUIRE(ja4_hash12("") == "000000000000");
}

TEST_CASE("ja4: FoxIO's sigalg-grease test output, rebuilt from its lists", "[tls][ja4]")
{
    // Published JA4_ro lists (wire order) of FoxIO's sigalg-grease capture; a
    // GREASE signature algorithm is added, which must be ignored.
    const Bytes rec = HelloBuilder()
                          .ciphers({0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9,
                                    0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035})
                          .ech(100)
                          .alpn({"h2", "http/1.1"})
                          .raw_extension(0x0017, {})
                          .key_share({{0x001d, 32}})
                          .raw_extension(0x44cd, {0x00, 0x03, 0x02, 0x68, 0x32})
                          .raw_extension(0xff01, {0x00})
                          .supported_groups({0x11ec, 0x001d, 0x0017, 0x0018})
                          .signature_algorithms({0x2a2a, 0x0904, 0x0905, 0x0906, 0x0403, 0x0804,
                                                 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601})
                          .raw_extension(0x0023, {})
                          .supported_versions({0x0304, 0x0303})
                          .ec_point_formats({0x00})
                          .raw_extension(0xca34, {})
                          .raw_extension(0x002d, {0x01, 0x01})
                          .sni("optimizationguide-pa.googleapis.com")
                          .raw_extension(0x0005, {0x01, 0x00, 0x00, 0x00, 0x00})
                          .raw_extension(0x001b, {0x02, 0x00, 0x02})
                          .raw_extension(0x0012, {})
                          .record();
    const Ja4Fingerprints fp = compute_ja4(parsed(rec));
    REQUIRE(fp.ja4 == "t13d1517h2_8daaf6152771_cb7bf5808d99");
    REQUIRE(fp.ja4_o == "t13d1517h2_acb858a92679_88bf22a3e888");
    REQUIRE(fp.ja4_ro ==
            "t13d1517h2_1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035_"
            "fe0d,0010,0017,0033,44cd,ff01,000a,000d,0023,002b,000b,ca34,002d,0000,0005,001b,0012_"
            "0904,0905,0906,0403,0804,0401,0503,0805,0501,0806,0601");
}

TEST_CASE("ja4: version", "[tls][ja4]")
{
    SECTION("codes")
    {
        const std::map<uint16_t, std::string> codes = {
            {0x0304, "13"}, {0x0303, "12"}, {0x0302, "11"}, {0x0301, "10"}, {0x0300, "s3"},
            {0x0002, "s2"}, {0x0200, "s2"}, {0x0100, "s1"}, {0xfeff, "d1"}, {0xfefd, "d2"},
            {0xfefc, "d3"}, {0x7f1c, "00"}, {0x0000, "00"}, {0x0a0a, "00"}, {0x0305, "00"}};
        for (const auto &[v, code] : codes) {
            INFO(std::hex << v);
            REQUIRE(ja4_version_code(v) == code);
        }
    }
    SECTION("legacy_version when there is no supported_versions")
    {
        ClientHello h = lists({0x002f}, {0x000a});
        h.legacy_version = 0x0301;
        REQUIRE(ja4(h).substr(0, 3) == "t10");
        h.supported_versions = {0x0304};  // ignored without the extension itself
        REQUIRE(ja4(h).substr(0, 3) == "t10");
    }
    SECTION("highest supported_versions value, GREASE ignored, record and legacy versions ignored")
    {
        ClientHello h = parsed(HelloBuilder()
                                   .legacy_version(0x0303)
                                   .supported_versions({0x7a7a, 0x0303, 0x0304})
                                   .record(0x0301));
        REQUIRE(ja4(h).substr(0, 3) == "t13");
        h = parsed(
            HelloBuilder().legacy_version(0x0304).supported_versions({0x0302, 0x0301}).record());
        REQUIRE(ja4(h).substr(0, 3) == "t11");
    }
    SECTION("an unknown highest version (a TLS 1.3 draft) is 00")
    {
        const ClientHello h = parsed(HelloBuilder().supported_versions({0x0304, 0x7f1c}).record());
        REQUIRE(ja4(h).substr(0, 3) == "t00");
    }
    SECTION("supported_versions with only GREASE, or empty, is 00")
    {
        ClientHello h = lists({0x002f}, {0x002b});
        h.supported_versions = {0x0a0a};
        REQUIRE(ja4(h).substr(0, 3) == "t00");
        h.supported_versions.clear();
        REQUIRE(ja4(h).substr(0, 3) == "t00");
    }
}

TEST_CASE("ja4: SNI marker", "[tls][ja4]")
{
    REQUIRE(ja4(parsed(HelloBuilder().sni("example.com").record()))[3] == 'd');
    REQUIRE(ja4(parsed(HelloBuilder().record()))[3] == 'i');
    // An IP literal in the SNI extension is still 'd': the extension is present.
    const ClientHello ip = parsed(HelloBuilder().sni("192.0.2.1").record());
    REQUIRE(ip.sni_is_ip);
    REQUIRE(ja4(ip)[3] == 'd');
}

TEST_CASE("ja4: counts", "[tls][ja4]")
{
    SECTION("GREASE is not counted; SNI and ALPN are")
    {
        const ClientHello h = lists({0x0a0a, 0x1301, 0x00ff, 0x5600, 0xfe00},
                                    {0x1a1a, 0x0000, 0x0010, 0x000d, 0xfafa});
        const Ja4Fingerprints fp = compute_ja4(h);
        REQUIRE(fp.ja4.substr(0, 8) == "t12d0403");
        REQUIRE(fp.ja4_r == "t12d040300_00ff,1301,5600,fe00_000d");
        REQUIRE(fp.ja4_ro == "t12d040300_1301,00ff,5600,fe00_0000,0010,000d");
    }
    SECTION("capped at 99")
    {
        std::vector<uint16_t> ciphers, exts;
        for (uint16_t i = 0; i < 120; ++i)
            ciphers.push_back(static_cast<uint16_t>(0xc000 + i));
        for (uint16_t i = 0; i < 105; ++i)
            exts.push_back(static_cast<uint16_t>(0x0100 + i));
        const Ja4Fingerprints fp = compute_ja4(lists(ciphers, exts));
        REQUIRE(fp.ja4.substr(0, 8) == "t12i9999");
        // The lists are not cut.
        REQUIRE(split(fp.ja4_r, '_')[1].size() == 120 * 5 - 1);
        REQUIRE(split(fp.ja4_r, '_')[2].size() == 105 * 5 - 1);
        ciphers.resize(99);
        exts.resize(9);
        REQUIRE(ja4(lists(ciphers, exts)).substr(0, 8) == "t12i9909");
    }
    SECTION("built as bytes")
    {
        std::vector<uint16_t> ciphers;
        for (uint16_t i = 0; i < 150; ++i)
            ciphers.push_back(static_cast<uint16_t>(0x0001 + i));
        HelloBuilder b;
        b.ciphers(ciphers);
        for (uint16_t i = 0; i < 101; ++i)
            b.raw_extension(static_cast<uint16_t>(0x7000 + i), {});
        REQUIRE(ja4(parsed(b.record())).substr(0, 8) == "t12i9999");
    }
}

TEST_CASE("ja4: ALPN characters", "[tls][ja4]")
{
    SECTION("alphanumeric values")
    {
        REQUIRE(ja4_alpn_chars("h2") == "h2");
        REQUIRE(ja4_alpn_chars("http/1.1") == "h1");
        REQUIRE(ja4_alpn_chars("h3") == "h3");
        REQUIRE(ja4_alpn_chars("hq-29") == "h9");
        REQUIRE(ja4_alpn_chars("") == "00");
    }
    SECTION("JA4.md: a single character is both first and last")
    {
        REQUIRE(ja4_alpn_chars("x") == "xx");
    }
    SECTION("JA4.md: non-alphanumeric first or last byte uses the hex digits")
    {
        REQUIRE(ja4_alpn_chars("\xab") == "ab");
        REQUIRE(ja4_alpn_chars("\xab\xcd") == "ad");
        REQUIRE(ja4_alpn_chars("\x30\xab") == "3b");
        REQUIRE(ja4_alpn_chars("\x30\x31\xab\xcd") == "3d");
        REQUIRE(ja4_alpn_chars("\x30\xab\xcd\x31") == "01");
        REQUIRE(ja4_alpn_chars("\xba\xad") == "bd");
        REQUIRE(ja4_alpn_chars("h/") == "6f");  // ASCII but not alphanumeric
        REQUIRE(ja4_alpn_chars(std::string_view("\0", 1)) == "00");
    }
    SECTION("FoxIO tool rule: non-ASCII characters print as 9, a lone character as x0")
    {
        const auto tool = Ja4AlpnRule::foxio_tool;
        REQUIRE(ja4_alpn_chars("h2", tool) == "h2");
        REQUIRE(ja4_alpn_chars("http/1.1", tool) == "h1");
        REQUIRE(ja4_alpn_chars("x", tool) == "x0");
        REQUIRE(ja4_alpn_chars("\xba\xad", tool) == "99");   // FoxIO's tls-non-ascii-alpn capture
        REQUIRE(ja4_alpn_chars("\xc3\xa9x", tool) == "9x");  // "éx": one character é
        REQUIRE(ja4_alpn_chars("x\xc3\xa9", tool) == "x9");
        REQUIRE(ja4_alpn_chars("\xc3\xa9", tool) == "90");  // a single character
        REQUIRE(ja4_alpn_chars("\xc3", tool) == "90");      // truncated sequence: one U+FFFD
        REQUIRE(ja4_alpn_chars("\xe2\x82", tool) == "90");  // maximal subpart: one U+FFFD
        // Control characters, space and DEL never reach the fingerprint (fuzz_client_hello).
        REQUIRE(ja4_alpn_chars("\x1b[", tool) == "9[");
        REQUIRE(ja4_alpn_chars("a\n", tool) == "a9");
        REQUIRE(ja4_alpn_chars(" \x7f", tool) == "99");
        REQUIRE(ja4_alpn_chars(std::string_view("\0", 1), tool) == "90");
        REQUIRE(ja4_alpn_chars("\xf0\x9f\x98\x80!", tool) == "9!");
        REQUIRE(ja4_alpn_chars("h/", tool) == "h/");
        REQUIRE(ja4_alpn_chars("", tool) == "00");
    }
    SECTION("only the first ALPN value counts; missing or empty gives 00")
    {
        REQUIRE(ja4(parsed(HelloBuilder().alpn({"http/1.1", "h2"}).record())).substr(8, 2) == "h1");
        REQUIRE(ja4(parsed(HelloBuilder().sni("a.example").record())).substr(8, 2) == "00");
        const ClientHello empty_first = parsed(HelloBuilder().alpn({"", "h2"}).record());
        REQUIRE(ja4(empty_first).substr(8, 2) == "00");
        Ja4Options tool;
        tool.alpn_rule = Ja4AlpnRule::foxio_tool;
        const ClientHello non_ascii =
            parsed(HelloBuilder().alpn({"\xba\xad", "http/1.1"}).record());
        REQUIRE(ja4(non_ascii).substr(8, 2) == "bd");
        REQUIRE(ja4(non_ascii, tool).substr(8, 2) == "99");
    }
}

TEST_CASE("ja4: empty lists", "[tls][ja4]")
{
    SECTION("no cipher suites")
    {
        const ClientHello h =
            parsed(HelloBuilder().ciphers({}).signature_algorithms({0x0403}).record());
        const Ja4Fingerprints fp = compute_ja4(h);
        REQUIRE(fp.ja4 == "t12i000100_000000000000_" + ja4_hash12("000d_0403"));
        REQUIRE(fp.ja4_r == "t12i000100__000d_0403");
    }
    SECTION("only GREASE cipher suites")
    {
        REQUIRE(ja4(lists({0x0a0a, 0x1a1a}, {})) == "t12i000000_000000000000_000000000000");
    }
    SECTION("no extensions block")
    {
        const ClientHello h = parsed(HelloBuilder()
                                         .no_extensions_block()
                                         .ciphers({0x002f, 0x0035})
                                         .legacy_version(0x0301)
                                         .record());
        const Ja4Fingerprints fp = compute_ja4(h);
        REQUIRE(fp.ja4 == "t10i020000_" + ja4_hash12("002f,0035") + "_000000000000");
        REQUIRE(fp.ja4_r == "t10i020000_002f,0035_");
        REQUIRE(fp.ja4_ro == "t10i020000_002f,0035_");
        REQUIRE(fp.ja4_o == fp.ja4);
    }
    SECTION("only SNI and ALPN: counted, but nothing left to hash in the sorted list")
    {
        const ClientHello h =
            parsed(HelloBuilder().ciphers({0x1301}).sni("a.example").alpn({"h2"}).record());
        const Ja4Fingerprints fp = compute_ja4(h);
        REQUIRE(fp.ja4 == "t12d0102h2_" + ja4_hash12("1301") + "_000000000000");
        REQUIRE(fp.ja4_r == "t12d0102h2_1301_");
        // The original-order variant keeps SNI and ALPN.
        REQUIRE(fp.ja4_ro == "t12d0102h2_1301_0000,0010");
        REQUIRE(fp.ja4_o == "t12d0102h2_" + ja4_hash12("1301") + "_" + ja4_hash12("0000,0010"));
    }
}

TEST_CASE("ja4: signature algorithms", "[tls][ja4]")
{
    SECTION("none: no trailing underscore")
    {
        const ClientHello h =
            parsed(HelloBuilder().ciphers({0x1301}).supported_groups({0x001d}).record());
        const Ja4Fingerprints fp = compute_ja4(h);
        REQUIRE(fp.ja4_r == "t12i010100_1301_000a");
        REQUIRE(fp.ja4 == "t12i010100_" + ja4_hash12("1301") + "_" + ja4_hash12("000a"));
    }
    SECTION("wire order, GREASE dropped, signature_algorithms_cert not used")
    {
        const ClientHello h = parsed(HelloBuilder()
                                         .ciphers({0x1301})
                                         .signature_algorithms_cert({0x0201, 0x0203})
                                         .signature_algorithms({0x0806, 0x1a1a, 0x0403})
                                         .record());
        const Ja4Fingerprints fp = compute_ja4(h);
        REQUIRE(fp.ja4_r == "t12i010200_1301_000d,0032_0806,0403");
        REQUIRE(fp.ja4_ro == "t12i010200_1301_0032,000d_0806,0403");
    }
    SECTION("an empty list (a bad_signature_algorithms hello) is like none")
    {
        ClientHello h;
        const ParseResult r =
            parse_client_hello_record(HelloBuilder()
                                          .ciphers({0x1301})
                                          .raw_extension(ext::signature_algorithms, {0x00, 0x00})
                                          .record(),
                                      h);
        REQUIRE(r.anomaly == HelloAnomaly::bad_signature_algorithms);
        REQUIRE(compute_ja4(h).ja4_r == "t12i010100_1301_000d");
    }
}

TEST_CASE("ja4: transport marker", "[tls][ja4]")
{
    ClientHello h = parsed(HelloBuilder().record());
    REQUIRE(ja4(h)[0] == 't');
    h.is_quic = true;
    REQUIRE(ja4(h)[0] == 'q');
    Ja4Options o;
    o.transport = Ja4Transport::dtls;
    REQUIRE(ja4(h, o)[0] == 'd');
    o.transport = Ja4Transport::tcp;
    REQUIRE(ja4(h, o)[0] == 't');
    // The marker comes from the transport, not from quic_transport_parameters.
    const ClientHello tcp_with_qtp =
        parsed(HelloBuilder().raw_extension(ext::quic_transport_parameters, {0x01, 0x00}).record());
    REQUIRE(ja4(tcp_with_qtp)[0] == 't');
}

TEST_CASE("ja4: sorting is numeric over 4-digit lowercase hex", "[tls][ja4]")
{
    const Ja4Fingerprints fp = compute_ja4(
        lists({0xc02b, 0x00ff, 0x1301, 0x000a, 0xABCD}, {0xff01, 0x0033, 0x000a, 0x4469}));
    REQUIRE(fp.ja4_r == "t12i050400_000a,00ff,1301,abcd,c02b_000a,0033,4469,ff01");
}

TEST_CASE("ja4: FoxIO's published fingerprints, rebuilt from their raw lists", "[tls][ja4][shared]")
{
    const auto dir = exf::test::shared_pcaps();
    if (dir.empty())
        return;
    std::ifstream in(dir / "foxio-ja4" / "expected.csv");
    REQUIRE(in.good());
    std::string line;
    std::getline(in, line);
    const auto header = csv_row(line);
    std::map<std::string, size_t> col;
    for (size_t i = 0; i < header.size(); ++i)
        col[header[i]] = i;
    for (const char *name :
         {"file", "ja4", "ja4_python", "ja4_r_python", "ja4_ro_python", "rust_python_agree"})
        REQUIRE(col.count(name) == 1);

    const std::map<std::string, uint16_t> version_of = {{"13", 0x0304}, {"12", 0x0303},
                                                        {"11", 0x0302}, {"10", 0x0301},
                                                        {"s3", 0x0300}, {"00", 0x7f1c}};
    int checked = 0;
    while (std::getline(in, line)) {
        const auto row = csv_row(line);
        if (row.size() != header.size())
            continue;
        const std::string &ro = row[col["ja4_ro_python"]];
        if (ro.empty() || row[col["rust_python_agree"]] != "yes")
            continue;
        INFO(row[col["file"]] << ": " << row[col["ja4"]]);

        // JA4_ro = a _ ciphers _ extensions [_ signature algorithms], wire order.
        const auto parts = split(ro, '_');
        REQUIRE(parts.size() >= 3);
        const std::string &a = parts[0];
        REQUIRE(a.size() == 10);
        ClientHello h = lists(hex_list(parts[1]), hex_list(parts[2]),
                              parts.size() > 3 ? hex_list(parts[3]) : std::vector<uint16_t>{});
        h.is_quic = a[0] == 'q';
        const uint16_t v = version_of.at(a.substr(1, 2));
        if (h.has_extension(ext::supported_versions))
            h.supported_versions = {v};
        else
            h.legacy_version = v;
        const std::string alpn = a.substr(8, 2);
        if (alpn == "99")
            h.alpn = {std::string("\xba\xad")};  // the non-ASCII ALPN capture
        else if (alpn != "00")
            h.alpn = {alpn};

        Ja4Options tool;
        tool.alpn_rule = Ja4AlpnRule::foxio_tool;
        const Ja4Fingerprints fp = compute_ja4(h, tool);
        REQUIRE(fp.ja4_ro == ro);
        REQUIRE(fp.ja4_r == row[col["ja4_r_python"]]);
        REQUIRE(fp.ja4 == row[col["ja4_python"]]);
        REQUIRE(fp.ja4 == row[col["ja4"]]);
        if (alpn == "99")
            REQUIRE(ja4(h).substr(8, 2) == "bd");  // what JA4.md's rule gives
        ++checked;
    }
    REQUIRE(checked >= 100);
}

// ClientHellos whose inner lengths contradict the message, rebuilt field by
// field after the four in the shared captures ndpi/tls_cipher_lens.pcap
// (client ports 51587-51591: one hello with only its cipher-suites length
// changed) and ndpi/tls_invalid_reads.pcap (port 3967). Under the tolerance
// rule of client_hello.h they give the JA4s of the references (FoxIO's
// ja4.py on tshark 4.0.17 and the tshark recalculation in ndpi/expected.csv;
// nDPI prints no JA4 for these four), each with its length anomaly.
TEST_CASE("ja4: hellos with contradicting lengths, as in the shared captures",
          "[tls][ja4][client_hello]")
{
    // 51587's hello: TLS 1.0, empty session id, 36 suites, null compression,
    // SNI www.google.it, groups, point formats, session ticket, NPN (0x3374),
    // status_request. The cipher-suites length is what the five flows differ in.
    HelloBuilder b;
    b.legacy_version(0x0301)
        .session_id({})
        .ciphers({0x00ff, 0xc00a, 0xc014, 0x0088, 0x0087, 0x0039, 0x0038, 0xc00f, 0xc005,
                  0x0084, 0x0035, 0xc009, 0xc007, 0xc013, 0xc011, 0x0045, 0x0044, 0x0033,
                  0x0032, 0xc00e, 0xc00c, 0xc004, 0xc002, 0x0096, 0x0041, 0x002f, 0x0005,
                  0x0004, 0xc008, 0xc012, 0x0016, 0x0013, 0xc00d, 0xc003, 0xfeff, 0x000a})
        .compression({0x00})
        .sni("www.google.it")
        .supported_groups({0x0017, 0x0018, 0x0019})
        .ec_point_formats({0x00})
        .raw_extension(0x0023, {})
        .raw_extension(0x3374, {})
        .raw_extension(0x0005, {0x01, 0x00, 0x00, 0x00, 0x00});
    std::vector<exf::test::LengthField> fields;
    const Bytes rec = b.record(0x0301, &fields);
    REQUIRE(rec.size() == 179);  // the captured payload's size
    size_t cs_at = 0;
    for (const auto &f : fields)
        if (f.name == "cipher_suites")
            cs_at = f.offset;
    REQUIRE(cs_at == 5 + 4 + 35);

    struct Case {
        uint32_t cipher_suites_length;
        const char *flow;
        HelloAnomaly anomaly;
        const char *ja4;  // ja4_reference in ndpi/expected.csv
    };
    const Case cases[] = {
        {0x0048, "51587: consistent", HelloAnomaly::none, "t10d360600_77f462745360_6072aad2e91d"},
        // 132: the suites reach the last byte, read as compression length 0.
        {0x0084, "51588: 66 suites", HelloAnomaly::empty_compression_methods,
         "t10i660000_1ade43d4e5bc_000000000000"},
        // 133 (odd) ends at the message end: 66 suites, no room for compression.
        {0x0085, "51589: odd, to the end", HelloAnomaly::bad_cipher_suites_length,
         "t10i660000_1ade43d4e5bc_000000000000"},
        // 134: one byte past the message: not taken (tshark shows no suite).
        {0x0086, "51590: past the end", HelloAnomaly::bad_cipher_suites_length,
         "t10i000000_000000000000_000000000000"},
        // 0: the first suite byte (00) is read as compression length, then
        // 0xffc0 as extensions length, past the message: no extensions.
        {0x0000, "51591: zero", HelloAnomaly::bad_extensions_length,
         "t10i000000_000000000000_000000000000"},
    };
    for (const Case &c : cases) {
        INFO(c.flow);
        Bytes s = rec;
        s[cs_at] = static_cast<uint8_t>(c.cipher_suites_length >> 8);
        s[cs_at + 1] = static_cast<uint8_t>(c.cipher_suites_length);
        ClientHello h;
        const ParseResult r = parse_client_hello_record(s, h);
        INFO("got " << to_string(r.status) << "/" << to_string(r.anomaly));
        REQUIRE(r.status == ParseStatus::complete);
        REQUIRE(r.anomaly == c.anomaly);
        REQUIRE(r.consumed == s.size());
        REQUIRE(ja4(h) == c.ja4);
        if (c.cipher_suites_length != 0x0048) {
            REQUIRE_FALSE(h.has_sni);  // the extensions are never reached
            REQUIRE(h.extensions.empty());
        }
    }

    SECTION("tls_invalid_reads.pcap, client port 3967")
    {
        // TLS 1.0, 32-byte session id, 11 suites, no compression method, and
        // one byte (00) left where a 2-byte extensions length would start.
        HelloBuilder t;
        t.legacy_version(0x0301)
            .session_id(Bytes(32, 0x82))
            .ciphers({0x0004, 0x0005, 0x000a, 0x0009, 0x0064, 0x0062, 0x0003, 0x0006, 0x0013,
                      0x0012, 0x0025})
            .compression({})
            .no_extensions_block();
        Bytes body = t.body();
        body.push_back(0x00);
        REQUIRE(body.size() == 0x5d);  // the captured handshake length
        Bytes hs{0x01};
        exf::test::put24(hs, static_cast<uint32_t>(body.size()));
        hs.insert(hs.end(), body.begin(), body.end());
        const Bytes s = exf::test::tls_record(0x16, 0x0301, hs);
        ClientHello h;
        const ParseResult r = parse_client_hello_record(s, h);
        REQUIRE(r.status == ParseStatus::complete);
        REQUIRE(r.anomaly == HelloAnomaly::bad_extensions_length);
        REQUIRE(h.cipher_suites.size() == 11);
        REQUIRE(h.compression_methods.empty());
        REQUIRE(ja4(h) == "t10i110000_c384039f30c5_000000000000");
    }
}

TEST_CASE("ja4: the cache gives ja4()'s fingerprint for hellos apart in any input it reads",
          "[tls][ja4]")
{
    // Each differs from the first in one input of the fingerprint: the
    // cache must not take one for another (GREASE aside, which it ignores
    // as ja4() does).
    std::vector<std::pair<ClientHello, Ja4Options>> hellos;
    const ClientHello base = parsed(spec_example().record());
    hellos.push_back({base, {}});
    auto with = [&](auto change, Ja4Options o = {}) {
        ClientHello h = base;
        change(h);
        hellos.push_back({h, o});
    };
    with([](ClientHello &h) { h.cipher_suites.pop_back(); });
    with([](ClientHello &h) { std::swap(h.cipher_suites[1], h.cipher_suites[2]); });
    with([](ClientHello &h) { h.cipher_suites.insert(h.cipher_suites.begin(), 0x2a2a); });
    with([](ClientHello &h) { h.extensions.pop_back(); });
    with([](ClientHello &h) { std::erase(h.extensions, ext::server_name); });
    with([](ClientHello &h) { h.signature_algorithms.pop_back(); });
    with([](ClientHello &h) { std::swap(h.signature_algorithms[0], h.signature_algorithms[1]); });
    with([](ClientHello &h) { h.alpn.front() = "h3"; });
    with([](ClientHello &h) { h.alpn.clear(); });
    with([](ClientHello &h) { h.supported_versions = {0x0303}; });
    with([](ClientHello &h) { h.is_quic = true; });
    with([](ClientHello &) {}, Ja4Options{Ja4Transport::dtls, Ja4AlpnRule::spec});
    with([](ClientHello &h) { h.alpn.front() = "\xba\xad"; });
    with([](ClientHello &h) { h.alpn.front() = "\xba\xad"; },
         Ja4Options{std::nullopt, Ja4AlpnRule::foxio_tool});

    Ja4Cache cache;
    for (int pass = 0; pass < 2; pass++)  // the second from the cache
        for (const auto &[h, o] : hellos)
            REQUIRE(cache.ja4(h, o) == ja4(h, o));
    // The GREASE variant's fingerprint is the base's: one entry for both.
    REQUIRE(cache.size() == hellos.size() - 1);

    SECTION("bounded")
    {
        ClientHello h = base;
        for (uint16_t v = 0; v <= Ja4Cache::kMaxEntries; v++) {
            h.cipher_suites.back() = uint16_t(0x1000 + v);
            REQUIRE(cache.ja4(h, {}) == ja4(h, {}));
            REQUIRE(cache.size() <= Ja4Cache::kMaxEntries);
        }
    }
}
