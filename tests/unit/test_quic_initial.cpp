// SPDX-License-Identifier: Apache-2.0
// QUIC client Initial decryption (tls/quic_initial.h): the test vectors of
// RFC 9001 Appendix A (v1) and RFC 9369 Appendix A (v2), packets protected
// here with the same keys (coalesced packets, several Initials, a changed
// DCID, a Retry-style new DCID, version negotiation), CRYPTO reassembly out
// of order, with gaps and overlaps, and malformed input at every truncation
// point. The protected packets of A.2 were checked independently (Python's
// cryptography package) before being copied here; the AEAD tag authenticates
// every byte of them.
#include <catch2/catch.hpp>

#include <openssl/evp.h>

#include <cstring>
#include <random>
#include <set>
#include <string>

#include "flows/flow_tracker.h"
#include "support/tls_builder.h"
#include "tls/client_hello.h"
#include "tls/ja4.h"
#include "tls/quic_initial.h"

using exf::test::Bytes;
using exf::test::HelloBuilder;
using namespace exf::tls;
using Status = QuicInitialDecoder::Status;

namespace {

const char *const kRfc9001A2 = "c000000001088394c8f03e5157080000449e7b9aec34d1b1c98dd7689fb8ec11"
                               "d242b123dc9bd8bab936b47d92ec356c0bab7df5976d27cd449f63300099f399"
                               "1c260ec4c60d17b31f8429157bb35a1282a643a8d2262cad67500cadb8e7378c"
                               "8eb7539ec4d4905fed1bee1fc8aafba17c750e2c7ace01e6005f80fcb7df6212"
                               "30c83711b39343fa028cea7f7fb5ff89eac2308249a02252155e2347b63d58c5"
                               "457afd84d05dfffdb20392844ae812154682e9cf012f9021a6f0be17ddd0c208"
                               "4dce25ff9b06cde535d0f920a2db1bf362c23e596d11a4f5a6cf3948838a3aec"
                               "4e15daf8500a6ef69ec4e3feb6b1d98e610ac8b7ec3faf6ad760b7bad1db4ba3"
                               "485e8a94dc250ae3fdb41ed15fb6a8e5eba0fc3dd60bc8e30c5c4287e53805db"
                               "059ae0648db2f64264ed5e39be2e20d82df566da8dd5998ccabdae053060ae6c"
                               "7b4378e846d29f37ed7b4ea9ec5d82e7961b7f25a9323851f681d582363aa5f8"
                               "9937f5a67258bf63ad6f1a0b1d96dbd4faddfcefc5266ba6611722395c906556"
                               "be52afe3f565636ad1b17d508b73d8743eeb524be22b3dcbc2c7468d54119c74"
                               "68449a13d8e3b95811a198f3491de3e7fe942b330407abf82a4ed7c1b311663a"
                               "c69890f4157015853d91e923037c227a33cdd5ec281ca3f79c44546b9d90ca00"
                               "f064c99e3dd97911d39fe9c5d0b23a229a234cb36186c4819e8b9c5927726632"
                               "291d6a418211cc2962e20fe47feb3edf330f2c603a9d48c0fcb5699dbfe58964"
                               "25c5bac4aee82e57a85aaf4e2513e4f05796b07ba2ee47d80506f8d2c25e50fd"
                               "14de71e6c418559302f939b0e1abd576f279c4b2e0feb85c1f28ff18f58891ff"
                               "ef132eef2fa09346aee33c28eb130ff28f5b766953334113211996d20011a198"
                               "e3fc433f9f2541010ae17c1bf202580f6047472fb36857fe843b19f5984009dd"
                               "c324044e847a4f4a0ab34f719595de37252d6235365e9b84392b061085349d73"
                               "203a4a13e96f5432ec0fd4a1ee65accdd5e3904df54c1da510b0ff20dcc0c77f"
                               "cb2c0e0eb605cb0504db87632cf3d8b4dae6e705769d1de354270123cb11450e"
                               "fc60ac47683d7b8d0f811365565fd98c4c8eb936bcab8d069fc33bd801b03ade"
                               "a2e1fbc5aa463d08ca19896d2bf59a071b851e6c239052172f296bfb5e724047"
                               "90a2181014f3b94a4e97d117b438130368cc39dbb2d198065ae3986547926cd2"
                               "162f40a29f0c3c8745c0f50fba3852e566d44575c29d39a03f0cda721984b6f4"
                               "40591f355e12d439ff150aab7613499dbd49adabc8676eef023b15b65bfc5ca0"
                               "6948109f23f350db82123535eb8a7433bdabcb909271a6ecbcb58b936a88cd4e"
                               "8f2e6ff5800175f113253d8fa9ca8885c2f552e657dc603f252e1a8e308f76f0"
                               "be79e2fb8f5d5fbbe2e30ecadd220723c8c0aea8078cdfcb3868263ff8f09400"
                               "54da48781893a7e49ad5aff4af300cd804a6b6279ab3ff3afb64491c85194aab"
                               "760d58a606654f9f4400e8b38591356fbf6425aca26dc85244259ff2b19c41b9"
                               "f96f3ca9ec1dde434da7d2d392b905ddf3d1f9af93d1af5950bd493f5aa731b4"
                               "056df31bd267b6b90a079831aaf579be0a39013137aac6d404f518cfd4684064"
                               "7e78bfe706ca4cf5e9c5453e9f7cfd2b8b4c8d169a44e55c88d4a9a7f9474241"
                               "e221af44860018ab0856972e194cd934";
const char *const kRfc9369A2 = "d76b3343cf088394c8f03e5157080000449ea0c95e82ffe67b6abcdb4298b485"
                               "dd04de806071bf03dceebfa162e75d6c96058bdbfb127cdfcbf903388e99ad04"
                               "9f9a3dd4425ae4d0992cfff18ecf0fdb5a842d09747052f17ac2053d21f57c5d"
                               "250f2c4f0e0202b70785b7946e992e58a59ac52dea6774d4f03b55545243cf1a"
                               "12834e3f249a78d395e0d18f4d766004f1a2674802a747eaa901c3f10cda5500"
                               "cb9122faa9f1df66c392079a1b40f0de1c6054196a11cbea40afb6ef5253cd68"
                               "18f6625efce3b6def6ba7e4b37a40f7732e093daa7d52190935b8da58976ff33"
                               "12ae50b187c1433c0f028edcc4c2838b6a9bfc226ca4b4530e7a4ccee1bfa2a3"
                               "d396ae5a3fb512384b2fdd851f784a65e03f2c4fbe11a53c7777c023462239dd"
                               "6f7521a3f6c7d5dd3ec9b3f233773d4b46d23cc375eb198c63301c21801f6520"
                               "bcfb7966fc49b393f0061d974a2706df8c4a9449f11d7f3d2dcbb90c6b877045"
                               "636e7c0c0fe4eb0f697545460c806910d2c355f1d253bc9d2452aaa549e27a1f"
                               "ac7cf4ed77f322e8fa894b6a83810a34b361901751a6f5eb65a0326e07de7c12"
                               "16ccce2d0193f958bb3850a833f7ae432b65bc5a53975c155aa4bcb4f7b2c4e5"
                               "4df16efaf6ddea94e2c50b4cd1dfe06017e0e9d02900cffe1935e0491d77ffb4"
                               "fdf85290fdd893d577b1131a610ef6a5c32b2ee0293617a37cbb08b847741c3b"
                               "8017c25ca9052ca1079d8b78aebd47876d330a30f6a8c6d61dd1ab5589329de7"
                               "14d19d61370f8149748c72f132f0fc99f34d766c6938597040d8f9e2bb522ff9"
                               "9c63a344d6a2ae8aa8e51b7b90a4a806105fcbca31506c446151adfeceb51b91"
                               "abfe43960977c87471cf9ad4074d30e10d6a7f03c63bd5d4317f68ff325ba3bd"
                               "80bf4dc8b52a0ba031758022eb025cdd770b44d6d6cf0670f4e990b22347a7db"
                               "848265e3e5eb72dfe8299ad7481a408322cac55786e52f633b2fb6b614eaed18"
                               "d703dd84045a274ae8bfa73379661388d6991fe39b0d93debb41700b41f90a15"
                               "c4d526250235ddcd6776fc77bc97e7a417ebcb31600d01e57f32162a8560cacc"
                               "7e27a096d37a1a86952ec71bd89a3e9a30a2a26162984d7740f81193e8238e61"
                               "f6b5b984d4d3dfa033c1bb7e4f0037febf406d91c0dccf32acf423cfa1e70710"
                               "10d3f270121b493ce85054ef58bada42310138fe081adb04e2bd901f2f13458b"
                               "3d6758158197107c14ebb193230cd1157380aa79cae1374a7c1e5bbcb80ee23e"
                               "06ebfde206bfb0fcbc0edc4ebec309661bdd908d532eb0c6adc38b7ca7331dce"
                               "8dfce39ab71e7c32d318d136b6100671a1ae6a6600e3899f31f0eed19e3417d1"
                               "34b90c9058f8632c798d4490da4987307cba922d61c39805d072b589bd52fdf1"
                               "e86215c2d54e6670e07383a27bbffb5addf47d66aa85a0c6f9f32e59d85a44dd"
                               "5d3b22dc2be80919b490437ae4f36a0ae55edf1d0b5cb4e9a3ecabee93dfc6e3"
                               "8d209d0fa6536d27a5d6fbb17641cde27525d61093f1b28072d111b2b4ae5f89"
                               "d5974ee12e5cf7d5da4d6a31123041f33e61407e76cffcdcfd7e19ba58cf4b53"
                               "6f4c4938ae79324dc402894b44faf8afbab35282ab659d13c93f70412e85cb19"
                               "9a37ddec600545473cfb5a05e08d0b209973b2172b4d21fb69745a262ccde96b"
                               "a18b2faa745b6fe189cf772a9f84cbfc";

Bytes unhex(std::string_view h)
{
    Bytes b;
    for (size_t i = 0; i + 1 < h.size(); i += 2)
        b.push_back(uint8_t(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
    return b;
}

template <size_t N>
std::string hex(const std::array<uint8_t, N> &a)
{
    static const char *d = "0123456789abcdef";
    std::string s;
    for (uint8_t c : a) {
        s += d[c >> 4];
        s += d[c & 15];
    }
    return s;
}

std::string hex(std::span<const uint8_t> a)
{
    static const char *d = "0123456789abcdef";
    std::string s;
    for (uint8_t c : a) {
        s += d[c >> 4];
        s += d[c & 15];
    }
    return s;
}

const Bytes kDcid = unhex("8394c8f03e515708");
// A.2's plaintext: the CRYPTO frame (offset 0, 241 bytes), then PADDING.
const char *const kA2Crypto = "060040f1010000ed0303ebf8fa56f12939b9584a3896472ec40bb863cfd3e868"
                              "04fe3a47f06a2b69484c00000413011302010000c000000010000e00000b6578"
                              "616d706c652e636f6dff01000100000a00080006001d00170018001000070005"
                              "04616c706e000500050100000000003300260024001d00209370b2c9caa47fba"
                              "baf4559fedba753de171fa71f50f1ce15d43e994ec74d748002b000302030400"
                              "0d0010000e0403050306030203080408050806002d00020101001c0002400100"
                              "3900320408ffffffffffffffff05048000ffff07048000ffff08011001048000"
                              "75300901100f088394c8f03e51570806048000ffff";

void put_varint(Bytes &b, uint64_t v)
{
    if (v < 64) {
        b.push_back(uint8_t(v));
    } else if (v < 16384) {
        b.push_back(uint8_t(0x40 | v >> 8));
        b.push_back(uint8_t(v));
    } else {
        b.push_back(uint8_t(0x80 | v >> 24));
        b.push_back(uint8_t(v >> 16));
        b.push_back(uint8_t(v >> 8));
        b.push_back(uint8_t(v));
    }
}

// Packet protection (RFC 9001 5), test side: AES-128-GCM seal, then the
// header protection mask from AES-128-ECB of the sample.
Bytes protect(const QuicInitialKeys &k, Bytes header, size_t pn_offset, size_t pn_len, uint64_t pn,
              const Bytes &payload)
{
    uint8_t nonce[12];
    std::memcpy(nonce, k.iv.data(), 12);
    for (size_t i = 0; i < 8; i++)
        nonce[4 + i] ^= uint8_t(pn >> (56 - 8 * i));
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    Bytes ct(payload.size() + 16);
    int len = 0, fin = 0;
    REQUIRE(EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), nullptr, k.key.data(), nonce) == 1);
    REQUIRE(EVP_EncryptUpdate(c, nullptr, &len, header.data(), int(header.size())) == 1);
    REQUIRE(EVP_EncryptUpdate(c, ct.data(), &len, payload.data(), int(payload.size())) == 1);
    REQUIRE(EVP_EncryptFinal_ex(c, ct.data() + len, &fin) == 1);
    REQUIRE(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, ct.data() + payload.size()) == 1);
    EVP_CIPHER_CTX_free(c);
    Bytes pkt = header;
    pkt.insert(pkt.end(), ct.begin(), ct.end());
    uint8_t mask[16];
    c = EVP_CIPHER_CTX_new();
    REQUIRE(EVP_EncryptInit_ex(c, EVP_aes_128_ecb(), nullptr, k.hp.data(), nullptr) == 1);
    EVP_CIPHER_CTX_set_padding(c, 0);
    REQUIRE(EVP_EncryptUpdate(c, mask, &len, pkt.data() + pn_offset + 4, 16) == 1);
    EVP_CIPHER_CTX_free(c);
    pkt[0] ^= mask[0] & 0x0f;
    for (size_t i = 0; i < pn_len; i++)
        pkt[pn_offset + i] ^= mask[1 + i];
    return pkt;
}

struct Initial {
    uint32_t version = 1;
    Bytes dcid = kDcid;
    Bytes key_dcid;  // empty: dcid
    Bytes scid;
    Bytes token;
    uint64_t pn = 0;
    size_t pn_len = 2;
    Bytes frames;
    size_t pad_to = 0;  // payload padded with PADDING frames to this size
    unsigned type = 0;  // on-the-wire long-header type bits; 4: Initial of the version
};

Bytes build(const Initial &in)
{
    const bool v2 = in.version == 0x6b3343cf;
    const unsigned type = in.type == 4 ? (v2 ? 1u : 0u) : in.type;
    Bytes payload = in.frames;
    if (payload.size() < in.pad_to)
        payload.resize(in.pad_to, 0);
    Bytes h;
    h.push_back(uint8_t(0xc0 | type << 4 | (in.pn_len - 1)));
    for (int s = 24; s >= 0; s -= 8)
        h.push_back(uint8_t(in.version >> s));
    h.push_back(uint8_t(in.dcid.size()));
    h.insert(h.end(), in.dcid.begin(), in.dcid.end());
    h.push_back(uint8_t(in.scid.size()));
    h.insert(h.end(), in.scid.begin(), in.scid.end());
    const bool initial = type == (v2 ? 1u : 0u);
    if (initial) {
        put_varint(h, in.token.size());
        h.insert(h.end(), in.token.begin(), in.token.end());
    }
    const size_t length = in.pn_len + payload.size() + 16;
    h.push_back(uint8_t(0x40 | length >> 8));
    h.push_back(uint8_t(length));
    const size_t pn_offset = h.size();
    for (size_t i = in.pn_len; i-- > 0;)
        h.push_back(uint8_t(in.pn >> (8 * i)));
    auto k = quic_initial_keys(in.version, in.key_dcid.empty() ? in.dcid : in.key_dcid);
    REQUIRE(k);
    return protect(*k, h, pn_offset, in.pn_len, in.pn, payload);
}

Bytes crypto_frame(uint64_t offset, std::span<const uint8_t> data)
{
    Bytes f{0x06};
    put_varint(f, offset);
    put_varint(f, data.size());
    f.insert(f.end(), data.begin(), data.end());
    return f;
}

Bytes cat(std::initializer_list<Bytes> parts)
{
    Bytes out;
    for (const auto &p : parts)
        out.insert(out.end(), p.begin(), p.end());
    return out;
}

std::span<const uint8_t> slice(const Bytes &b, size_t from, size_t to)
{
    return std::span<const uint8_t>(b).subspan(from, to - from);
}

Bytes quic_hello(std::string_view sni = "quic.example")
{
    return HelloBuilder()
        .sni(sni)
        .alpn({"h3"})
        .supported_versions({0x0304})
        .raw_extension(ext::quic_transport_parameters, {0x01, 0x02, 0x40, 0x00})
        .padding(1400)  // spans several packets
        .handshake();
}

std::string names(const QuicInitialDecoder &d)
{
    std::string s;
    for (auto a : d.anomalies())
        s += (s.empty() ? "" : ",") + std::string(a);
    return s;
}

bool has(const QuicInitialDecoder &d, std::string_view a)
{
    return std::find(d.anomalies().begin(), d.anomalies().end(), a) != d.anomalies().end();
}

}  // namespace

TEST_CASE("quic: RFC 9001 A.1 and RFC 9369 A.1 initial keys", "[quic]")
{
    auto v1 = quic_initial_keys(1, kDcid);
    REQUIRE(v1);
    CHECK(hex(v1->secret) == "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea");
    CHECK(hex(v1->key) == "1f369613dd76d5467730efcbe3b1a22d");
    CHECK(hex(v1->iv) == "fa044b2f42a3fd3b46fb255c");
    CHECK(hex(v1->hp) == "9f50449e04a0e810283a1e9933adedd2");
    auto v1s = quic_initial_keys(1, kDcid, QuicSide::server);
    REQUIRE(v1s);
    CHECK(hex(v1s->secret) == "3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b");
    CHECK(hex(v1s->key) == "cf3a5331653c364c88f0f379b6067e37");
    CHECK(hex(v1s->iv) == "0ac1493ca1905853b0bba03e");
    CHECK(hex(v1s->hp) == "c206b8d9b9f0f37644430b490eeaa314");

    auto v2 = quic_initial_keys(0x6b3343cf, kDcid);
    REQUIRE(v2);
    CHECK(hex(v2->secret) == "14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b");
    CHECK(hex(v2->key) == "8b1a0bc121284290a29e0971b5cd045d");
    CHECK(hex(v2->iv) == "91f73e2351d8fa91660e909f");
    CHECK(hex(v2->hp) == "45b95e15235d6f45a6b19cbcb0294ba9");

    CHECK_FALSE(quic_initial_keys(0x51303436, kDcid));  // gQUIC Q046: no TLS Initials
    CHECK_FALSE(quic_initial_keys(0x1a2a3a4a, kDcid));  // reserved (forces negotiation)
    REQUIRE(quic_version_info(0xff00001d));
    CHECK(quic_version_info(0xff00001d)->name == "draft-29");
    CHECK(quic_version_info(0xff00001d)->salt[0] == 0xaf);
    CHECK(quic_version_info(0xff000017)->salt[0] == 0xc3);
    CHECK(quic_version_info(0xff00001c)->salt[0] == 0xc3);
    CHECK(quic_version_info(0xff000021)->salt == quic_version_info(1)->salt);
}

TEST_CASE("quic: RFC 9001 A.2 and RFC 9369 A.2 client Initials decrypt to the ClientHello",
          "[quic]")
{
    struct Case {
        const char *name;
        const char *packet;
        uint32_t version;
        const char *header;
    } cases[] = {
        {"v1", kRfc9001A2, 1, "c300000001088394c8f03e5157080000449e00000002"},
        {"v2", kRfc9369A2, 0x6b3343cf, "d36b3343cf088394c8f03e5157080000449e00000002"},
    };
    for (const auto &c : cases) {
        INFO(c.name);
        const Bytes pkt = unhex(c.packet);
        REQUIRE(pkt.size() == 1200);
        QuicLongHeader h;
        REQUIRE(quic_parse_long_header(pkt, h) == QuicHeaderStatus::ok);
        CHECK(h.version == c.version);
        CHECK(h.type == QuicPacketType::initial);
        CHECK(hex(h.dcid) == "8394c8f03e515708");
        CHECK(h.scid.empty());
        CHECK(h.token.empty());
        CHECK(h.pn_offset == 18);
        CHECK(h.size == 1200);
        auto k = quic_initial_keys(h.version, h.dcid);
        REQUIRE(k);
        QuicOpenedPacket o;
        REQUIRE(quic_open_packet(pkt, h, *k, std::nullopt, o) == QuicOpenStatus::ok);
        CHECK(o.packet_number == 2);
        CHECK(hex(o.header) == c.header);
        REQUIRE(o.payload.size() == 1162);
        const Bytes want = unhex(kA2Crypto);
        CHECK(hex(slice(o.payload, 0, want.size())) == hex(want));
        CHECK(std::all_of(o.payload.begin() + long(want.size()), o.payload.end(),
                          [](uint8_t b) { return b == 0; }));

        // The test side's protection reproduces the RFC's bytes.
        Bytes payload = want;
        payload.resize(1162, 0);
        Bytes hdr = unhex(c.header);
        CHECK(hex(protect(*k, hdr, 18, 4, 2, payload)) == hex(pkt));

        QuicInitialDecoder d;
        REQUIRE(d.add(pkt) == Status::done);
        CHECK(d.version() == c.version);
        CHECK(d.initials_opened() == 1);
        CHECK(names(d) == "");
        const ClientHello &ch = d.hello();
        CHECK(ch.is_quic);
        CHECK(ch.sni == "example.com");
        CHECK(ch.alpn == std::vector<std::string>{"alpn"});
        CHECK(ch.supported_versions == std::vector<uint16_t>{0x0304});
        CHECK(ch.has_extension(ext::quic_transport_parameters));
        CHECK(ja4(ch).substr(0, 4) == "q13d");
        // Done is final.
        CHECK(d.add(pkt) == Status::done);
        CHECK(d.finish() == Status::done);
    }
}

TEST_CASE("quic: long-header packet types of v1 and v2", "[quic]")
{
    CHECK(quic_packet_type(0xc0, false) == QuicPacketType::initial);
    CHECK(quic_packet_type(0xd0, false) == QuicPacketType::zero_rtt);
    CHECK(quic_packet_type(0xe0, false) == QuicPacketType::handshake);
    CHECK(quic_packet_type(0xf0, false) == QuicPacketType::retry);
    CHECK(quic_packet_type(0xd0, true) == QuicPacketType::initial);
    CHECK(quic_packet_type(0xe0, true) == QuicPacketType::zero_rtt);
    CHECK(quic_packet_type(0xf0, true) == QuicPacketType::handshake);
    CHECK(quic_packet_type(0xc0, true) == QuicPacketType::retry);

    // v2 packets with the bits of a v1 Initial (a v2 Retry: it ends the
    // datagram) or of v2's 0-RTT (skipped) are not decrypted.
    for (unsigned type : {0u, 2u}) {
        Initial in;
        in.version = 0x6b3343cf;
        in.frames = crypto_frame(0, quic_hello());
        in.type = type;
        QuicInitialDecoder d;
        INFO("type bits " << type);
        CHECK(d.add(build(in)) == Status::need_more);
        CHECK(d.initials_opened() == 0);
        CHECK(names(d) == "");
    }
}

TEST_CASE("quic: CRYPTO reassembly across packets and frames, out of order, gaps, overlaps",
          "[quic]")
{
    const Bytes hs = quic_hello();
    REQUIRE(hs.size() > 1500);
    const size_t a = 700, b = 1400;

    SECTION("three Initials, the last first; the hello completes with the gap filled")
    {
        Initial p0, p1, p2;
        p0.pn = 0;
        p0.frames = crypto_frame(0, slice(hs, 0, a));
        p1.pn = 1;
        p1.frames = crypto_frame(a, slice(hs, a, b));
        p2.pn = 2;
        p2.frames = crypto_frame(b, slice(hs, b, hs.size()));
        for (auto *p : {&p0, &p1, &p2})
            p->pad_to = 1100;
        QuicInitialDecoder d;
        CHECK(d.add(build(p2)) == Status::need_more);
        CHECK(d.add(build(p0)) == Status::need_more);  // the middle is missing
        CHECK(d.crypto_contiguous() == a);
        CHECK(d.add(build(p1)) == Status::done);
        CHECK(d.hello().sni == "quic.example");
        CHECK(d.initials_opened() == 3);
        CHECK(names(d) == "");
    }
    SECTION("Chrome style: many small frames out of order in one packet, with PING and PADDING")
    {
        Bytes frames;
        std::vector<std::pair<size_t, size_t>> pieces;
        for (size_t off = 0; off < hs.size(); off += 150)
            pieces.emplace_back(off, std::min(hs.size(), off + 150));
        std::mt19937 rng(7);
        std::shuffle(pieces.begin(), pieces.end(), rng);
        Initial p;
        p.frames = {0x01, 0x00, 0x00};
        for (auto [f, t] : pieces) {
            p.frames = cat({p.frames, crypto_frame(f, slice(hs, f, t)), Bytes{0x01}});
        }
        // Too big for one packet in reality, fine for the decoder.
        QuicInitialDecoder d;
        CHECK(d.add(build(p)) == Status::done);
        CHECK(d.hello().sni == "quic.example");
    }
    SECTION("overlapping frames, the same bytes twice: no anomaly")
    {
        Initial p0, p1;
        p0.frames = cat({crypto_frame(0, slice(hs, 0, b)), crypto_frame(100, slice(hs, 100, 300))});
        p1.pn = 1;
        p1.frames = crypto_frame(a, slice(hs, a, hs.size()));
        QuicInitialDecoder d;
        CHECK(d.add(build(p0)) == Status::need_more);
        CHECK(d.add(build(p1)) == Status::done);
        CHECK(names(d) == "");
    }
    SECTION("overlapping bytes that differ: the first copy wins, counted")
    {
        Bytes evil(slice(hs, a, b).begin(), slice(hs, a, b).end());
        for (auto &c : evil)
            c ^= 0x55;
        Initial p0, p1;
        p0.frames = crypto_frame(0, slice(hs, 0, b));
        p1.pn = 1;
        p1.frames = cat({crypto_frame(a, evil), crypto_frame(b, slice(hs, b, hs.size()))});
        QuicInitialDecoder d;
        CHECK(d.add(build(p0)) == Status::need_more);
        CHECK(d.add(build(p1)) == Status::done);
        CHECK(d.hello().sni == "quic.example");
        CHECK(has(d, "quic_crypto_conflict"));
    }
    SECTION("a hello never completed: finish() says why")
    {
        Initial p0;
        p0.frames = crypto_frame(0, slice(hs, 0, a));
        QuicInitialDecoder d;
        CHECK(d.add(build(p0)) == Status::need_more);
        CHECK(d.finish() == Status::failed);
        CHECK(d.failure() == "quic_hello_beyond_capture");
    }
    SECTION("CRYPTO far beyond the reassembly window")
    {
        Initial p0;
        p0.frames = cat({crypto_frame(1 << 20, slice(hs, 0, 10)), crypto_frame(0, hs)});
        QuicInitialDecoder d;
        CHECK(d.add(build(p0)) == Status::done);
        CHECK(has(d, "quic_crypto_beyond_limit"));
    }
    SECTION("a CRYPTO stream that is not a ClientHello fails with the parser's anomaly")
    {
        Bytes not_ch = hs;
        not_ch[0] = 2;  // ServerHello
        Initial p0;
        p0.frames = crypto_frame(0, not_ch);
        QuicInitialDecoder d;
        CHECK(d.add(build(p0)) == Status::failed);
        CHECK(d.failure() == "not_client_hello");
    }
}

TEST_CASE("quic: coalesced packets, changed DCID, Retry-style DCID, version negotiation", "[quic]")
{
    const Bytes hs = quic_hello();
    const size_t a = 900;
    Initial first;
    first.frames = crypto_frame(0, slice(hs, 0, a));
    first.pad_to = 1000;

    SECTION("Initial + 0-RTT + Handshake in one datagram, and 0-RTT first")
    {
        Initial zero = first, hsk = first;
        zero.type = 1;
        zero.frames = Bytes(60, 0x42);
        zero.pad_to = 0;
        hsk.type = 2;
        hsk.frames = Bytes(40, 0x17);
        hsk.pad_to = 0;
        Initial second;
        second.pn = 1;
        second.frames = crypto_frame(a, slice(hs, a, hs.size()));
        QuicInitialDecoder d;
        CHECK(d.add(cat({build(zero), build(first), build(hsk)})) == Status::need_more);
        CHECK(d.initials_opened() == 1);
        // Zero padding after the packets ends the datagram quietly.
        CHECK(d.add(cat({build(second), Bytes(50, 0)})) == Status::done);
        CHECK(names(d) == "");
    }
    SECTION("the client moved to the server's connection ID: keys stay those of its first DCID")
    {
        Initial second;
        second.pn = 1;
        second.dcid = unhex("5a5a5a5a0102");
        second.key_dcid = kDcid;
        second.frames = crypto_frame(a, slice(hs, a, hs.size()));
        QuicInitialDecoder d;
        CHECK(d.add(build(first)) == Status::need_more);
        CHECK(d.add(build(second)) == Status::done);
        CHECK(names(d) == "");
    }
    SECTION("after a Retry: the new DCID's keys, then kept for the server's DCID")
    {
        const Bytes retry_dcid = unhex("0011223344556677");
        Initial again = first;
        again.dcid = retry_dcid;
        again.token = Bytes(32, 0x7e);
        Initial second;
        second.pn = 1;
        second.dcid = unhex("abcdef");
        second.key_dcid = retry_dcid;
        second.frames = crypto_frame(a, slice(hs, a, hs.size()));
        QuicInitialDecoder d;
        CHECK(d.add(build(first)) == Status::need_more);
        CHECK(d.add(build(again)) == Status::need_more);
        CHECK(d.add(build(second)) == Status::done);
        CHECK(names(d) == "");
    }
    SECTION("an unknown version, then version 1 after version negotiation")
    {
        Bytes vn = build(first);
        vn[1] = 0x1a, vn[2] = 0x2a, vn[3] = 0x3a, vn[4] = 0x4a;
        Initial v1;
        v1.frames = crypto_frame(0, hs);
        QuicInitialDecoder d;
        CHECK(d.add(vn) == Status::need_more);
        CHECK(has(d, "quic_unknown_version"));
        CHECK(d.add(build(v1)) == Status::done);
        CHECK(d.version() == 1);
    }
    SECTION("drafts and v2 with their own salts and labels")
    {
        for (uint32_t v :
             {0xff00001du, 0xff000017u, 0xff00001cu, 0xfaceb002u, 0x54303531u, 0x6b3343cfu}) {
            Initial p;
            p.version = v;
            p.type = 4;
            p.frames = crypto_frame(0, hs);
            if (v == 0x54303531u) {
                p.frames[0] = 0x08;  // Google's T051: gQUIC frames (CRYPTO is 0x08)
                p.frames = cat({Bytes{0x07}, p.frames});  // after a gQUIC PING
            }
            QuicInitialDecoder d;
            INFO(std::hex << v);
            CHECK(d.add(build(p)) == Status::done);
            CHECK(d.version() == v);
        }
    }
    SECTION("keys of a different DCID do not open it: quic_decrypt_failed, then no Initial")
    {
        Initial p = first;
        p.key_dcid = unhex("0102030405060708");
        QuicInitialDecoder d;
        CHECK(d.add(build(p)) == Status::need_more);
        CHECK(has(d, "quic_decrypt_failed"));
        CHECK(d.finish() == Status::failed);
        CHECK(d.failure() == "quic_decrypt_failed");
        QuicInitialDecoder none;
        CHECK(none.add(Bytes{0x40, 1, 2, 3}) == Status::need_more);  // short header
        CHECK(none.finish() == Status::failed);
        CHECK(none.failure() == "quic_no_initial");
    }
}

TEST_CASE("quic: frames", "[quic]")
{
    std::vector<QuicCryptoFrame> out;
    // PADDING, PING, ACK (with a range and ECN), CONNECTION_CLOSE, CRYPTO.
    const Bytes ok =
        cat({Bytes{0x00, 0x00, 0x01}, Bytes{0x02, 0x05, 0x00, 0x01, 0x00, 0x01, 0x01},
             Bytes{0x03, 0x05, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03},
             Bytes{0x1c, 0x0a, 0x06, 0x02, 'h', 'i'}, crypto_frame(5, Bytes{1, 2, 3})});
    CHECK(quic_parse_initial_frames(ok, out).empty());
    REQUIRE(out.size() == 1);
    CHECK(out[0].offset == 5);
    CHECK(out[0].data.size() == 3);
    // Every truncation: never past the end, a named anomaly or clean.
    for (size_t n = 0; n < ok.size(); n++) {
        out.clear();
        auto why = quic_parse_initial_frames(slice(ok, 0, n), out);
        CHECK((why.empty() || why == "quic_bad_frame"));
    }
    out.clear();
    CHECK(quic_parse_initial_frames(cat({crypto_frame(0, Bytes{9}), Bytes{0x08, 0x00}}), out) ==
          "quic_unknown_frame");
    CHECK(out.size() == 1);  // the CRYPTO frame before it is kept
    out.clear();
    CHECK(quic_parse_initial_frames(Bytes{0x06, 0x00, 0x44, 0x00, 1, 2}, out) == "quic_bad_frame");
    CHECK(quic_parse_initial_frames(Bytes{0x02, 0x01, 0x00, 0x3f, 0x00}, out) == "quic_bad_frame");
    // gQUIC frames (T051): CRYPTO is 0x08; an ACK (0x40-0x7f) ends the walk quietly.
    out.clear();
    Bytes g = crypto_frame(0, Bytes{1, 2});
    g[0] = 0x08;
    CHECK(quic_parse_initial_frames(cat({Bytes{0x07}, g, Bytes{0x45, 0x01}}), out, true).empty());
    CHECK(out.size() == 1);
    CHECK(quic_parse_initial_frames(Bytes{0x08, 0x00, 0x05, 1}, out, true) == "quic_bad_frame");

    size_t pos = 0;
    const Bytes v8{0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c};
    CHECK(quic_read_varint(v8, pos) == 151288809941952652ull);  // RFC 9000 A.1
    CHECK(pos == 8);
    pos = 0;
    CHECK_FALSE(quic_read_varint(slice(v8, 0, 7), pos));
    CHECK(pos == 0);

    // An unknown frame in an Initial: counted, the CRYPTO data before it used.
    const Bytes hs = quic_hello();
    Initial p;
    p.frames = cat({crypto_frame(0, hs), Bytes{0x08, 0x00, 0x00}});
    QuicInitialDecoder d;
    CHECK(d.add(build(p)) == Status::done);
    CHECK(has(d, "quic_unknown_frame"));
}

TEST_CASE("quic: malformed and truncated Initials never crash and are named", "[quic]")
{
    const std::set<std::string_view> names{
        "quic_truncated_packet", "quic_bad_cid_length",       "quic_unknown_version",
        "quic_short_packet",     "quic_decrypt_failed",       "quic_reserved_bits",
        "quic_bad_frame",        "quic_unknown_frame",        "quic_crypto_beyond_limit",
        "quic_crypto_conflict",  "quic_hello_beyond_capture", "quic_no_initial"};
    const Bytes pkt = unhex(kRfc9001A2);

    // Every truncation point of the A.2 datagram.
    for (size_t n = 0; n < pkt.size(); n++) {
        QuicInitialDecoder d;
        INFO("truncated to " << n);
        CHECK(d.add(slice(pkt, 0, n)) == Status::need_more);
        for (auto a : d.anomalies())
            CHECK(names.count(a));
        if (n > 0)
            CHECK(has(d, "quic_truncated_packet"));
        CHECK(d.finish() == Status::failed);
        CHECK(names.count(d.failure()));
    }
    // A Length that ends the packet early (the tag or sample cut off).
    for (size_t len : {0u, 1u, 4u, 19u, 20u, 21u, 30u}) {
        Bytes p = pkt;
        p[16] = uint8_t(0x40 | len >> 8);
        p[17] = uint8_t(len);
        QuicInitialDecoder d;
        d.add(p);
        INFO("Length " << len);
        CHECK((has(d, "quic_short_packet") || has(d, "quic_decrypt_failed")));
    }
    // Each byte flipped: the header, the sample, the tag, the payload.
    for (size_t i = 0; i < pkt.size(); i += (i < 64 ? 1 : 37)) {
        Bytes p = pkt;
        p[i] ^= 0x01;
        QuicInitialDecoder d;
        auto st = d.add(p);
        INFO("byte " << i);
        for (auto a : d.anomalies())
            CHECK(names.count(a));
        if (st != Status::done) {
            CHECK(d.finish() == Status::failed);
            CHECK(names.count(d.failure()));
        }
    }
    // A connection ID longer than 20 bytes.
    Bytes longcid{0xc0, 0, 0, 0, 1, 21};
    longcid.resize(longcid.size() + 21, 0x11);
    longcid.push_back(0);
    longcid.resize(200, 0);
    QuicInitialDecoder d;
    d.add(longcid);
    CHECK(has(d, "quic_bad_cid_length"));

    // Random bytes behind a long-header start, and random mutations of a
    // valid datagram: no crash, only known names.
    std::mt19937 rng(2024);
    for (int round = 0; round < 3000; round++) {
        Bytes p;
        if (round % 2) {
            p = pkt;
            const int flips = 1 + int(rng() % 8);
            for (int f = 0; f < flips; f++)
                p[rng() % p.size()] = uint8_t(rng());
            p.resize(rng() % (p.size() + 1));
        } else {
            p.resize(rng() % 1400);
            for (auto &c : p)
                c = uint8_t(rng());
            if (!p.empty())
                p[0] |= 0x80;
            if (p.size() > 5 && round % 4 == 0)
                p[1] = p[2] = p[3] = 0, p[4] = 1;
        }
        QuicInitialDecoder q;
        q.add(p);
        q.add(p);
        q.finish();
        for (auto a : q.anomalies())
            CHECK((names.count(a) || a.find("quic_") != 0));
    }
}

TEST_CASE("quic: the flow tracker decrypts QUIC Initials by default", "[quic][pipeline]")
{
    using exf::FlowTracker;
    exf_flow_key k{};
    k.lo_addr[10] = k.lo_addr[11] = 0xff;
    k.lo_addr[12] = 192, k.lo_addr[15] = 10;
    k.hi_addr[10] = k.hi_addr[11] = 0xff;
    k.hi_addr[12] = 198, k.hi_addr[15] = 1;
    k.lo_port = 50000;
    k.hi_port = 443;
    k.proto = 17;
    auto event = [&](uint32_t seq, const Bytes &data) {
        exf_hello_event e{};
        e.hdr.type = EXF_EV_HELLO;
        e.hdr.len = uint16_t(data.size());
        e.hdr.kind = EXF_KIND_QUIC;
        e.hdr.client = EXF_CLIENT_LO;
        e.hdr.ts_ns = 1000 + seq;
        e.hdr.key = k;
        e.seq = seq;
        std::memcpy(e.data, data.data(), std::min(data.size(), sizeof(e.data)));
        Bytes b(sizeof(e));
        std::memcpy(b.data(), &e, sizeof(e));
        return b;
    };

    SECTION("RFC 9001 A.2")
    {
        FlowTracker t;
        t.on_event(event(0, unhex(kRfc9001A2)));
        const exf::FlowRecord *r = t.lookup(k);
        REQUIRE(r);
        CHECK(r->hello == exf::HelloState::done);
        CHECK(r->tls.sni == std::optional<std::string>("example.com"));
        CHECK(r->tls.alpn == std::vector<std::string>{"alpn"});
        CHECK(r->tls.tls_version == "1.3");
        CHECK(r->tls.ja4.substr(0, 4) == "q13d");
        CHECK(r->anomalies.empty());
    }
    SECTION("the kernel's last datagram without a complete hello")
    {
        const Bytes hs = quic_hello();
        FlowTracker t;
        for (uint32_t i = 0; i < EXF_QUIC_MAX_DGRAMS; i++) {
            Initial p;
            p.pn = i;
            p.frames = crypto_frame(100 * i, slice(hs, 100 * i, 100 * i + 100));
            t.on_event(event(i, build(p)));
        }
        const exf::FlowRecord *r = t.lookup(k);
        REQUIRE(r);
        CHECK(r->hello == exf::HelloState::malformed);
        CHECK(r->has_anomaly("quic_hello_beyond_capture"));
        CHECK(t.anomaly_count("quic_hello_beyond_capture") == 1);
    }
    SECTION("undecryptable datagrams")
    {
        FlowTracker t;
        Bytes junk = unhex(kRfc9001A2);
        junk[100] ^= 1;
        for (uint32_t i = 0; i < EXF_QUIC_MAX_DGRAMS; i++)
            t.on_event(event(i, junk));
        const exf::FlowRecord *r = t.lookup(k);
        REQUIRE(r);
        CHECK(r->hello == exf::HelloState::malformed);
        CHECK(r->has_anomaly("quic_decrypt_failed"));
        CHECK(t.anomaly_count("quic_decrypt_failed") == 1);
    }
    SECTION("pending at the end")
    {
        const Bytes hs = quic_hello();
        FlowTracker t;
        Initial p;
        p.frames = crypto_frame(0, slice(hs, 0, 100));
        t.on_event(event(0, build(p)));
        t.finish();
        CHECK(t.lookup(k)->has_anomaly("quic_hello_incomplete"));
    }
}
