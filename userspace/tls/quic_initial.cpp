// SPDX-License-Identifier: Apache-2.0
#include "tls/quic_initial.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "tls/hello_reassembler.h"

namespace exf::tls {

namespace {

constexpr std::array<uint8_t, 20> kSaltV1{0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34,
                                          0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8,
                                          0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a};
constexpr std::array<uint8_t, 20> kSaltV2{0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6,
                                          0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26,
                                          0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9};
constexpr std::array<uint8_t, 20> kSaltDraft22{0x7f, 0xbc, 0xdb, 0x0e, 0x7c, 0x66, 0xbb,
                                               0xe9, 0x19, 0x3a, 0x96, 0xcd, 0x21, 0x51,
                                               0x9e, 0xbd, 0x7a, 0x02, 0x64, 0x4a};
constexpr std::array<uint8_t, 20> kSaltDraft23{0xc3, 0xee, 0xf7, 0x12, 0xc7, 0x2e, 0xbb,
                                               0x5a, 0x11, 0xa7, 0xd2, 0x43, 0x2b, 0xb4,
                                               0x63, 0x65, 0xbe, 0xf9, 0xf5, 0x02};
constexpr std::array<uint8_t, 20> kSaltDraft29{0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2,
                                               0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61,
                                               0x11, 0xe0, 0x43, 0x90, 0xa8, 0x99};
constexpr std::array<uint8_t, 20> kSaltT050{0x7f, 0xf5, 0x79, 0xe5, 0xac, 0xd0, 0x72,
                                            0x91, 0x55, 0x80, 0x30, 0x4c, 0x43, 0xa2,
                                            0x36, 0x7c, 0x60, 0x48, 0x83, 0x10};
constexpr std::array<uint8_t, 20> kSaltT051{0x7a, 0x4e, 0xde, 0xf4, 0xe7, 0xcc, 0xee,
                                            0x5f, 0xa4, 0x50, 0x6c, 0x19, 0x12, 0x4f,
                                            0xc8, 0xcc, 0xda, 0x6e, 0x03, 0x3d};

const QuicVersionInfo kVersions[] = {
    {0x00000001, "v1", kSaltV1, false},
    {0x6b3343cf, "v2", kSaltV2, true},
    {0xff000016, "draft-22", kSaltDraft22, false},
    {0xff000017, "draft-23", kSaltDraft23, false},
    {0xff000018, "draft-24", kSaltDraft23, false},
    {0xff000019, "draft-25", kSaltDraft23, false},
    {0xff00001a, "draft-26", kSaltDraft23, false},
    {0xff00001b, "draft-27", kSaltDraft23, false},
    {0xff00001c, "draft-28", kSaltDraft23, false},
    {0xff00001d, "draft-29", kSaltDraft29, false},
    {0xff00001e, "draft-30", kSaltDraft29, false},
    {0xff00001f, "draft-31", kSaltDraft29, false},
    {0xff000020, "draft-32", kSaltDraft29, false},
    {0xff000021, "draft-33", kSaltV1, false},
    {0xff000022, "draft-34", kSaltV1, false},
    {0xfaceb001, "mvfst-22", kSaltDraft22, false},
    {0xfaceb002, "mvfst-27", kSaltDraft23, false},
    {0xfaceb00e, "mvfst-exp", kSaltDraft23, false},
    {0x54303530, "T050", kSaltT050, false, true},
    {0x54303531, "T051", kSaltT051, false, true},
};

constexpr size_t kMaxCid = 20;
constexpr size_t kTagLen = 16;
constexpr size_t kSampleLen = 16;
constexpr size_t kMaxCachedKeys = 4;

// HKDF through OpenSSL's EVP_KDF (fetched once).
EVP_KDF *hkdf()
{
    static EVP_KDF *kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
    return kdf;
}

// HMAC-SHA-256 with a context per thread whose digest is set once: HKDF
// through EVP_KDF (below) fetched SHA-256 from the provider on every run,
// which cost more than the key derivation.
struct MacCtxFree {
    void operator()(EVP_MAC_CTX *c) const { EVP_MAC_CTX_free(c); }
};

EVP_MAC_CTX *hmac_sha256_ctx()
{
    thread_local std::unique_ptr<EVP_MAC_CTX, MacCtxFree> ctx([] {
        static EVP_MAC *mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
        EVP_MAC_CTX *c = mac ? EVP_MAC_CTX_new(mac) : nullptr;
        char digest[] = "SHA256";
        OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                          OSSL_PARAM_construct_end()};
        if (c && EVP_MAC_CTX_set_params(c, p) != 1) {
            EVP_MAC_CTX_free(c);
            c = nullptr;
        }
        return c;
    }());
    return ctx.get();
}

// HMAC-SHA-256(key, a || b || d) into out (32 bytes).
bool hmac_sha256(EVP_MAC_CTX *c, std::span<const uint8_t> key, std::span<const uint8_t> a,
                 std::span<const uint8_t> b, std::span<const uint8_t> d, uint8_t out[32])
{
    size_t n = 0;
    return EVP_MAC_init(c, key.data(), key.size(), nullptr) == 1 &&
           (a.empty() || EVP_MAC_update(c, a.data(), a.size()) == 1) &&
           (b.empty() || EVP_MAC_update(c, b.data(), b.size()) == 1) &&
           (d.empty() || EVP_MAC_update(c, d.data(), d.size()) == 1) &&
           EVP_MAC_final(c, out, &n, 32) == 1 && n == 32;
}

// RFC 5869 HKDF-Extract / HKDF-Expand with SHA-256, as EVP_KDF's HKDF
// computes them. Returns false to leave it to EVP_KDF (no HMAC context, an
// empty salt or key, an output length not covered here); else ok is the result.
bool hkdf_hmac(int mode, std::span<const uint8_t> key, std::span<const uint8_t> salt,
               std::span<const uint8_t> info, uint8_t *out, size_t out_len, bool &ok)
{
    EVP_MAC_CTX *c = hmac_sha256_ctx();
    if (!c || key.empty())
        return false;
    if (mode == EVP_KDF_HKDF_MODE_EXTRACT_ONLY) {
        if (salt.empty() || out_len != 32)
            return false;
        ok = hmac_sha256(c, salt, key, {}, {}, out);
        return true;
    }
    if (mode != EVP_KDF_HKDF_MODE_EXPAND_ONLY || out_len == 0 || out_len > size_t{255} * 32)
        return false;
    // T(i) = HMAC(PRK, T(i-1) || info || i)
    uint8_t t[32];
    size_t done = 0, prev = 0;
    for (unsigned i = 1; done < out_len; i++) {
        const uint8_t ctr[1] = {uint8_t(i)};
        if (!hmac_sha256(c, key, std::span<const uint8_t>(t, prev), info, ctr, t)) {
            ok = false;
            return true;
        }
        prev = 32;
        size_t take = std::min<size_t>(32, out_len - done);
        std::memcpy(out + done, t, take);
        done += take;
    }
    ok = true;
    return true;
}

bool hkdf_run(int mode, std::span<const uint8_t> key, std::span<const uint8_t> salt,
              std::span<const uint8_t> info, uint8_t *out, size_t out_len)
{
    if (bool ok = false; hkdf_hmac(mode, key, salt, info, out, out_len, ok))
        return ok;
    EVP_KDF *kdf = hkdf();
    if (!kdf)
        return false;
    EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
    if (!ctx)
        return false;
    char digest[] = "SHA256";
    OSSL_PARAM params[6];
    size_t n = 0;
    params[n++] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
    params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
    // OpenSSL does not write through these; the casts only drop const.
    params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                                    const_cast<uint8_t *>(key.data()), key.size());
    if (!salt.empty())
        params[n++] = OSSL_PARAM_construct_octet_string(
            OSSL_KDF_PARAM_SALT, const_cast<uint8_t *>(salt.data()), salt.size());
    if (!info.empty())
        params[n++] = OSSL_PARAM_construct_octet_string(
            OSSL_KDF_PARAM_INFO, const_cast<uint8_t *>(info.data()), info.size());
    params[n] = OSSL_PARAM_construct_end();
    const bool ok = EVP_KDF_derive(ctx, out, out_len, params) == 1;
    EVP_KDF_CTX_free(ctx);
    return ok;
}

// TLS 1.3 HKDF-Expand-Label (RFC 8446 7.1) with an empty context.
bool expand_label(std::span<const uint8_t> secret, std::string_view label, uint8_t *out, size_t len)
{
    std::vector<uint8_t> info;
    const std::string full = "tls13 " + std::string(label);
    info.push_back(uint8_t(len >> 8));
    info.push_back(uint8_t(len));
    info.push_back(uint8_t(full.size()));
    info.insert(info.end(), full.begin(), full.end());
    info.push_back(0);
    return hkdf_run(EVP_KDF_HKDF_MODE_EXPAND_ONLY, secret, {}, info, out, len);
}

// The ciphers, fetched once (EVP_aes_128_*() fetch them on every init).
const EVP_CIPHER *aes_128_ecb()
{
    static EVP_CIPHER *c = EVP_CIPHER_fetch(nullptr, "AES-128-ECB", nullptr);
    return c ? c : EVP_aes_128_ecb();
}
const EVP_CIPHER *aes_128_gcm()
{
    static EVP_CIPHER *c = EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr);
    return c ? c : EVP_aes_128_gcm();
}

// Header protection mask: AES-128-ECB of the sample.
bool hp_mask(const std::array<uint8_t, 16> &hp, const uint8_t *sample, uint8_t mask[16])
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return false;
    int len = 0;
    bool ok = EVP_EncryptInit_ex(ctx, aes_128_ecb(), nullptr, hp.data(), nullptr) == 1 &&
              EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
              EVP_EncryptUpdate(ctx, mask, &len, sample, int(kSampleLen)) == 1 && len == 16;
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

// AEAD_AES_128_GCM open; false if the tag does not verify.
bool gcm_open(const QuicInitialKeys &k, const uint8_t nonce[12], std::span<const uint8_t> aad,
              std::span<const uint8_t> ct, const uint8_t *tag, std::vector<uint8_t> &out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return false;
    out.resize(ct.size() + 16);
    int len = 0, fin = 0;
    bool ok = EVP_DecryptInit_ex(ctx, aes_128_gcm(), nullptr, nullptr, nullptr) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) == 1 &&
              EVP_DecryptInit_ex(ctx, nullptr, nullptr, k.key.data(), nonce) == 1 &&
              EVP_DecryptUpdate(ctx, nullptr, &len, aad.data(), int(aad.size())) == 1 &&
              EVP_DecryptUpdate(ctx, out.data(), &len, ct.data(), int(ct.size())) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, int(kTagLen),
                                  const_cast<uint8_t *>(tag)) == 1 &&
              EVP_DecryptFinal_ex(ctx, out.data() + len, &fin) == 1;
    EVP_CIPHER_CTX_free(ctx);
    out.resize(ok ? size_t(len + fin) : 0);
    return ok;
}

// RFC 9000 A.3.
uint64_t decode_pn(std::optional<uint64_t> largest, uint64_t truncated, unsigned bits)
{
    const uint64_t expected = largest ? *largest + 1 : 0;
    const uint64_t win = uint64_t(1) << bits, hwin = win / 2, mask = win - 1;
    const uint64_t candidate = (expected & ~mask) | truncated;
    if (candidate + hwin <= expected && candidate < (uint64_t(1) << 62) - win)
        return candidate + win;
    if (candidate > expected + hwin && candidate >= win)
        return candidate - win;
    return candidate;
}

constexpr std::string_view kTruncatedPacket = "quic_truncated_packet";
constexpr std::string_view kBadCidLength = "quic_bad_cid_length";
constexpr std::string_view kUnknownVersion = "quic_unknown_version";
constexpr std::string_view kShortPacket = "quic_short_packet";
constexpr std::string_view kDecryptFailed = "quic_decrypt_failed";
constexpr std::string_view kReservedBits = "quic_reserved_bits";
constexpr std::string_view kBadFrame = "quic_bad_frame";
constexpr std::string_view kUnknownFrame = "quic_unknown_frame";
constexpr std::string_view kCryptoBeyondLimit = "quic_crypto_beyond_limit";
constexpr std::string_view kCryptoConflict = "quic_crypto_conflict";
constexpr std::string_view kHelloBeyondCapture = "quic_hello_beyond_capture";
constexpr std::string_view kNoInitial = "quic_no_initial";

}  // namespace

const QuicVersionInfo *quic_version_info(uint32_t version)
{
    for (const auto &v : kVersions)
        if (v.version == version)
            return &v;
    return nullptr;
}

QuicPacketType quic_packet_type(uint8_t first_byte, bool v2)
{
    const unsigned bits = (first_byte >> 4) & 3;
    if (v2) {
        static constexpr QuicPacketType t[4] = {QuicPacketType::retry, QuicPacketType::initial,
                                                QuicPacketType::zero_rtt,
                                                QuicPacketType::handshake};
        return t[bits];
    }
    static constexpr QuicPacketType t[4] = {QuicPacketType::initial, QuicPacketType::zero_rtt,
                                            QuicPacketType::handshake, QuicPacketType::retry};
    return t[bits];
}

std::optional<QuicInitialKeys> quic_initial_keys(uint32_t version, std::span<const uint8_t> dcid,
                                                 QuicSide side)
{
    const QuicVersionInfo *v = quic_version_info(version);
    if (!v)
        return std::nullopt;
    std::array<uint8_t, 32> initial{};
    QuicInitialKeys k;
    const std::string_view pre = v->v2 ? "quicv2 " : "quic ";
    if (!hkdf_run(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, dcid, v->salt, {}, initial.data(),
                  initial.size()) ||
        !expand_label(initial, side == QuicSide::client ? "client in" : "server in",
                      k.secret.data(), k.secret.size()) ||
        !expand_label(k.secret, std::string(pre) + "key", k.key.data(), k.key.size()) ||
        !expand_label(k.secret, std::string(pre) + "iv", k.iv.data(), k.iv.size()) ||
        !expand_label(k.secret, std::string(pre) + "hp", k.hp.data(), k.hp.size()))
        return std::nullopt;
    return k;
}

std::optional<uint64_t> quic_read_varint(std::span<const uint8_t> data, size_t &pos)
{
    if (pos >= data.size())
        return std::nullopt;
    const size_t len = size_t(1) << (data[pos] >> 6);
    if (data.size() - pos < len)
        return std::nullopt;
    uint64_t v = data[pos] & 0x3f;
    for (size_t i = 1; i < len; i++)
        v = (v << 8) | data[pos + i];
    pos += len;
    return v;
}

QuicHeaderStatus quic_parse_long_header(std::span<const uint8_t> p, QuicLongHeader &out)
{
    out = QuicLongHeader{};
    if (p.empty() || !(p[0] & 0x80))
        return QuicHeaderStatus::not_long;
    // Invariants (RFC 8999): first byte, version, DCID, SCID.
    if (p.size() < 6)
        return QuicHeaderStatus::truncated;
    out.first = p[0];
    out.version = uint32_t(p[1]) << 24 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 8 | p[4];
    size_t pos = 5;
    const size_t dlen = p[pos++];
    if (p.size() - pos < dlen)
        return QuicHeaderStatus::truncated;
    out.dcid = p.subspan(pos, dlen);
    pos += dlen;
    if (pos >= p.size())
        return QuicHeaderStatus::truncated;
    const size_t slen = p[pos++];
    if (p.size() - pos < slen)
        return QuicHeaderStatus::truncated;
    out.scid = p.subspan(pos, slen);
    pos += slen;
    if (out.version == 0)
        return QuicHeaderStatus::version_negotiation;
    out.info = quic_version_info(out.version);
    if (!out.info)
        return QuicHeaderStatus::unknown_version;
    if (dlen > kMaxCid || slen > kMaxCid)
        return QuicHeaderStatus::bad_cid_length;
    out.type = quic_packet_type(out.first, out.info->v2);
    if (out.type == QuicPacketType::retry)
        return QuicHeaderStatus::ok;  // no Length: the rest of the datagram
    if (out.type == QuicPacketType::initial) {
        auto tlen = quic_read_varint(p, pos);
        if (!tlen || p.size() - pos < *tlen)
            return QuicHeaderStatus::truncated;
        out.token = p.subspan(pos, size_t(*tlen));
        pos += size_t(*tlen);
    }
    auto length = quic_read_varint(p, pos);
    if (!length || p.size() - pos < *length)
        return QuicHeaderStatus::truncated;
    out.pn_offset = pos;
    out.size = pos + size_t(*length);
    return QuicHeaderStatus::ok;
}

QuicOpenStatus quic_open_packet(std::span<const uint8_t> packet, const QuicLongHeader &hdr,
                                const QuicInitialKeys &keys, std::optional<uint64_t> largest_pn,
                                QuicOpenedPacket &out)
{
    // The sample starts 4 bytes after the packet number's start (RFC 9001
    // 5.4.2); the payload must hold at least the tag after a 1-byte number.
    if (hdr.size > packet.size() || hdr.pn_offset + 4 + kSampleLen > hdr.size)
        return QuicOpenStatus::too_short;
    uint8_t mask[16];
    if (!hp_mask(keys.hp, packet.data() + hdr.pn_offset + 4, mask))
        return QuicOpenStatus::auth_failed;
    const uint8_t first = uint8_t(packet[0] ^ (mask[0] & 0x0f));
    const size_t pn_len = size_t(first & 3) + 1;
    if (hdr.pn_offset + pn_len + kTagLen > hdr.size)
        return QuicOpenStatus::too_short;
    out.header.assign(packet.begin(), packet.begin() + long(hdr.pn_offset + pn_len));
    out.header[0] = first;
    uint64_t truncated = 0;
    for (size_t i = 0; i < pn_len; i++) {
        out.header[hdr.pn_offset + i] ^= mask[1 + i];
        truncated = (truncated << 8) | out.header[hdr.pn_offset + i];
    }
    out.first = first;
    out.packet_number = decode_pn(largest_pn, truncated, unsigned(pn_len * 8));
    uint8_t nonce[12];
    std::memcpy(nonce, keys.iv.data(), 12);
    for (size_t i = 0; i < 8; i++)
        nonce[4 + i] ^= uint8_t(out.packet_number >> (56 - 8 * i));
    const size_t ct_begin = hdr.pn_offset + pn_len, ct_end = hdr.size - kTagLen;
    if (!gcm_open(keys, nonce, out.header, packet.subspan(ct_begin, ct_end - ct_begin),
                  packet.data() + ct_end, out.payload))
        return QuicOpenStatus::auth_failed;
    return QuicOpenStatus::ok;
}

namespace {

std::string_view gquic_frames(std::span<const uint8_t> p, std::vector<QuicCryptoFrame> &out)
{
    size_t pos = 0;
    while (pos < p.size()) {
        const uint8_t type = p[pos++];
        if (type == 0x00)
            return {};  // PADDING: the rest of the packet
        if (type == 0x07)
            continue;  // PING
        if (type != 0x08)
            return {};  // not parsed here
        auto off = quic_read_varint(p, pos);
        auto len = off ? quic_read_varint(p, pos) : std::nullopt;
        if (!len || p.size() - pos < *len)
            return kBadFrame;
        out.push_back({*off, p.subspan(pos, size_t(*len))});
        pos += size_t(*len);
    }
    return {};
}

}  // namespace

std::string_view quic_parse_initial_frames(std::span<const uint8_t> p,
                                           std::vector<QuicCryptoFrame> &out, bool gquic)
{
    if (gquic)
        return gquic_frames(p, out);
    size_t pos = 0;
    auto skip_varints = [&](int n) {
        for (int i = 0; i < n; i++)
            if (!quic_read_varint(p, pos))
                return false;
        return true;
    };
    while (pos < p.size()) {
        if (p[pos] == 0x00) {  // PADDING: runs of zeros
            while (pos < p.size() && p[pos] == 0x00)
                pos++;
            continue;
        }
        auto type = quic_read_varint(p, pos);
        if (!type)
            return kBadFrame;
        switch (*type) {
        case 0x01:  // PING
            break;
        case 0x02:
        case 0x03: {  // ACK: largest, delay, range count, first range, ranges, [ECN]
            if (!skip_varints(2))
                return kBadFrame;
            auto count = quic_read_varint(p, pos);
            if (!count || !skip_varints(1))
                return kBadFrame;
            // Each further range is two varints of at least a byte.
            if (*count > (p.size() - pos) / 2)
                return kBadFrame;
            if (!skip_varints(int(*count) * 2))
                return kBadFrame;
            if (*type == 0x03 && !skip_varints(3))
                return kBadFrame;
            break;
        }
        case 0x06: {  // CRYPTO
            auto off = quic_read_varint(p, pos);
            auto len = off ? quic_read_varint(p, pos) : std::nullopt;
            if (!len || p.size() - pos < *len)
                return kBadFrame;
            out.push_back({*off, p.subspan(pos, size_t(*len))});
            pos += size_t(*len);
            break;
        }
        case 0x1c:
        case 0x1d: {  // CONNECTION_CLOSE: error code, [frame type], reason
            if (!skip_varints(*type == 0x1c ? 2 : 1))
                return kBadFrame;
            auto rlen = quic_read_varint(p, pos);
            if (!rlen || p.size() - pos < *rlen)
                return kBadFrame;
            pos += size_t(*rlen);
            break;
        }
        default: return kUnknownFrame;
        }
    }
    return {};
}

QuicInitialDecoder::QuicInitialDecoder()
    : crypto_(std::make_unique<HelloReassembler>(HelloReassembler::Framing::handshake, true))
{}

QuicInitialDecoder::~QuicInitialDecoder() = default;

const ClientHello &QuicInitialDecoder::hello() const { return crypto_->hello(); }

uint32_t QuicInitialDecoder::crypto_contiguous() const { return crypto_->contiguous(); }

void QuicInitialDecoder::note(std::string_view a)
{
    if (std::find(anomalies_.begin(), anomalies_.end(), a) == anomalies_.end())
        anomalies_.push_back(a);
}

const QuicInitialKeys *QuicInitialDecoder::keys_for(uint32_t version, std::span<const uint8_t> dcid)
{
    for (const auto &c : keys_)
        if (c.version == version &&
            std::equal(c.dcid.begin(), c.dcid.end(), dcid.begin(), dcid.end()))
            return &c.keys;
    auto k = quic_initial_keys(version, dcid);
    if (!k)
        return nullptr;
    if (keys_.size() >= kMaxCachedKeys) {
        // Keep the key DCID's entry; drop the oldest other one.
        size_t victim = key_dcid_ && *key_dcid_ == 0 ? 1 : 0;
        keys_.erase(keys_.begin() + long(victim));
        if (key_dcid_ && *key_dcid_ > victim)
            --*key_dcid_;
    }
    keys_.push_back({version, std::vector<uint8_t>(dcid.begin(), dcid.end()), *k});
    return &keys_.back().keys;
}

void QuicInitialDecoder::crypto(const QuicCryptoFrame &f)
{
    if (f.data.empty())
        return;
    if (f.offset >= HelloReassembler::kMaxBytes) {
        note(kCryptoBeyondLimit);
        return;
    }
    crypto_seen_ = true;
    const uint32_t before = crypto_->conflicts();
    crypto_->add(uint32_t(f.offset), f.data);
    if (crypto_->conflicts() > before)
        note(kCryptoConflict);
}

void QuicInitialDecoder::packet(std::span<const uint8_t> pkt, const QuicLongHeader &hdr)
{
    // Keys: the key DCID's (the client's first Initial, RFC 9001 5.2), then
    // this packet's own DCID (after a Retry or a new attempt).
    if (!key_dcid_) {
        if (!keys_for(hdr.version, hdr.dcid)) {
            note(kDecryptFailed);
            return;
        }
        key_dcid_ = keys_.size() - 1;
    }
    QuicOpenedPacket opened;
    QuicOpenStatus st = QuicOpenStatus::auth_failed;
    bool own = false;
    {
        const CachedKeys &kd = keys_[*key_dcid_];
        if (kd.version == hdr.version)
            st = quic_open_packet(pkt, hdr, kd.keys, largest_pn_, opened);
        const bool same = kd.version == hdr.version && std::equal(kd.dcid.begin(), kd.dcid.end(),
                                                                  hdr.dcid.begin(), hdr.dcid.end());
        if (st == QuicOpenStatus::auth_failed && !same) {
            if (const QuicInitialKeys *k = keys_for(hdr.version, hdr.dcid)) {
                // A new attempt starts its packet numbers again.
                st = quic_open_packet(pkt, hdr, *k, std::nullopt, opened);
                own = st == QuicOpenStatus::ok;
            }
        }
    }
    if (st == QuicOpenStatus::too_short) {
        note(kShortPacket);
        return;
    }
    if (st != QuicOpenStatus::ok) {
        note(kDecryptFailed);
        return;
    }
    if (own) {
        for (size_t i = 0; i < keys_.size(); i++)
            if (keys_[i].version == hdr.version &&
                std::equal(keys_[i].dcid.begin(), keys_[i].dcid.end(), hdr.dcid.begin(),
                           hdr.dcid.end()))
                key_dcid_ = i;
        largest_pn_.reset();
    }
    if (!largest_pn_ || opened.packet_number > *largest_pn_)
        largest_pn_ = opened.packet_number;
    if (opened_++ == 0 || own)
        version_ = hdr.version;
    if (opened.first & 0x0c)
        note(kReservedBits);
    std::vector<QuicCryptoFrame> frames;
    const std::string_view why =
        quic_parse_initial_frames(opened.payload, frames, hdr.info->gquic_frames);
    if (!why.empty())
        note(why);
    for (const auto &f : frames) {
        crypto(f);
        if (crypto_->status() != HelloReassembler::Status::need_more)
            break;
    }
}

QuicInitialDecoder::Status QuicInitialDecoder::add(std::span<const uint8_t> d)
{
    if (status_ != Status::need_more)
        return status_;
    size_t pos = 0;
    while (pos < d.size() && crypto_->status() == HelloReassembler::Status::need_more) {
        const auto rest = d.subspan(pos);
        QuicLongHeader hdr;
        const QuicHeaderStatus hs = quic_parse_long_header(rest, hdr);
        if (hs == QuicHeaderStatus::not_long || hs == QuicHeaderStatus::version_negotiation)
            break;  // a short header (or padding) ends the long-header packets
        if (hs == QuicHeaderStatus::truncated) {
            note(kTruncatedPacket);
            break;
        }
        if (hs == QuicHeaderStatus::unknown_version) {
            note(kUnknownVersion);
            break;  // the rest of the layout is the version's
        }
        if (hs == QuicHeaderStatus::bad_cid_length) {
            note(kBadCidLength);
            break;
        }
        if (hdr.type == QuicPacketType::retry)
            break;  // not a client packet; it spans the rest
        if (hdr.type == QuicPacketType::initial)
            packet(rest.first(hdr.size), hdr);
        pos += hdr.size;
    }
    switch (crypto_->status()) {
    case HelloReassembler::Status::need_more: break;
    case HelloReassembler::Status::done:
        if (crypto_->anomaly() != HelloAnomaly::none)
            note(to_string(crypto_->anomaly()));
        status_ = Status::done;
        break;
    case HelloReassembler::Status::malformed:
        failure_ = to_string(crypto_->anomaly());
        note(failure_);
        status_ = Status::failed;
        break;
    }
    return status_;
}

QuicInitialDecoder::Status QuicInitialDecoder::finish()
{
    if (status_ != Status::need_more)
        return status_;
    status_ = Status::failed;
    if (crypto_seen_)
        failure_ = kHelloBeyondCapture;
    else if (!anomalies_.empty())
        failure_ = anomalies_.front();
    else
        failure_ = kNoInitial;
    note(failure_);
    return status_;
}

std::string_view to_string(QuicInitialDecoder::Status s)
{
    switch (s) {
    case QuicInitialDecoder::Status::need_more: return "need_more";
    case QuicInitialDecoder::Status::done: return "done";
    case QuicInitialDecoder::Status::failed: return "failed";
    }
    return "unknown";
}

}  // namespace exf::tls
