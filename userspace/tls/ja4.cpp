// SPDX-License-Identifier: Apache-2.0
#include "tls/ja4.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

namespace exf::tls {

namespace {

constexpr char kHex[] = "0123456789abcdef";

bool is_alnum_ascii(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

void append_hex4(std::string &s, uint16_t v)
{
    s.push_back(kHex[(v >> 12) & 0xf]);
    s.push_back(kHex[(v >> 8) & 0xf]);
    s.push_back(kHex[(v >> 4) & 0xf]);
    s.push_back(kHex[v & 0xf]);
}

std::string join_hex(const std::vector<uint16_t> &values)
{
    std::string s;
    s.reserve(values.size() * 5);
    for (size_t i = 0; i < values.size(); ++i) {
        if (i)
            s.push_back(',');
        append_hex4(s, values[i]);
    }
    return s;
}

std::vector<uint16_t> without_grease(const std::vector<uint16_t> &values)
{
    std::vector<uint16_t> out;
    out.reserve(values.size());
    for (uint16_t v : values)
        if (!is_grease(v))
            out.push_back(v);
    return out;
}

// Characters of a byte string decoded as UTF-8 the way Rust's
// from_utf8_lossy does (each maximal invalid subpart is one U+FFFD). Each
// character is reported as its byte if ASCII, else as 0 (non-ASCII).
std::vector<unsigned char> utf8_chars(std::string_view s)
{
    std::vector<unsigned char> chars;
    size_t i = 0;
    while (i < s.size()) {
        const auto b = static_cast<unsigned char>(s[i]);
        if (b < 0x80) {
            chars.push_back(b);
            ++i;
            continue;
        }
        size_t need = 0;
        unsigned char lo = 0x80, hi = 0xbf;
        if (b >= 0xc2 && b <= 0xdf) {
            need = 1;
        } else if (b >= 0xe0 && b <= 0xef) {
            need = 2;
            if (b == 0xe0)
                lo = 0xa0;
            if (b == 0xed)
                hi = 0x9f;
        } else if (b >= 0xf0 && b <= 0xf4) {
            need = 3;
            if (b == 0xf0)
                lo = 0x90;
            if (b == 0xf4)
                hi = 0x8f;
        }
        size_t k = 1;
        for (; k <= need && i + k < s.size(); ++k) {
            const auto c = static_cast<unsigned char>(s[i + k]);
            if (c < lo || c > hi)
                break;
            lo = 0x80;
            hi = 0xbf;
        }
        chars.push_back(0);  // one character (valid non-ASCII or U+FFFD)
        i += k;
    }
    return chars;
}

}  // namespace

std::string_view ja4_version_code(uint16_t version)
{
    switch (version) {
    case 0x0304: return "13";
    case 0x0303: return "12";
    case 0x0302: return "11";
    case 0x0301: return "10";
    case 0x0300: return "s3";
    case 0x0002:               // SSL 2.0 as JA4.md writes it
    case 0x0200: return "s2";  // and as earlier JA4.md revisions wrote it
    case 0x0100: return "s1";
    case 0xfeff: return "d1";
    case 0xfefd: return "d2";
    case 0xfefc: return "d3";
    default: return "00";
    }
}

uint16_t ja4_version_value(const ClientHello &hello)
{
    if (!hello.has_extension(ext::supported_versions))
        return hello.legacy_version;
    uint16_t best = 0;
    for (uint16_t v : hello.supported_versions)
        if (!is_grease(v))
            best = std::max(best, v);
    return best;
}

std::string ja4_alpn_chars(std::string_view first_alpn, Ja4AlpnRule rule)
{
    if (first_alpn.empty())
        return "00";
    if (rule == Ja4AlpnRule::foxio_tool) {
        const auto chars = utf8_chars(first_alpn);
        // Non-ASCII shows as '9'; so do ASCII control characters, space and
        // DEL, which would otherwise put raw wire bytes (newlines, terminal
        // escapes) into a fingerprint that logs, alerts and the live view print.
        auto shown = [](unsigned char c) {
            return c > 0x20 && c < 0x7f ? static_cast<char>(c) : '9';
        };
        std::string out;
        out.push_back(shown(chars.front()));
        out.push_back(chars.size() >= 2 ? shown(chars.back()) : '0');
        return out;
    }
    const auto first = static_cast<unsigned char>(first_alpn.front());
    const auto last = static_cast<unsigned char>(first_alpn.back());
    std::string out;
    if (is_alnum_ascii(first) && is_alnum_ascii(last)) {
        out.push_back(static_cast<char>(first));
        out.push_back(static_cast<char>(last));
    } else {
        out.push_back(kHex[first >> 4]);
        out.push_back(kHex[last & 0xf]);
    }
    return out;
}

namespace {

// SHA-256 fetched once and a context per thread: EVP_Digest(..., EVP_sha256())
// fetched the algorithm from the provider on every call (OpenSSL 3), which
// cost more than the hashing of these short strings.
const EVP_MD *sha256_md()
{
    static EVP_MD *md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return md;
}

struct MdCtxFree {
    void operator()(EVP_MD_CTX *c) const { EVP_MD_CTX_free(c); }
};

bool sha256(std::string_view s, unsigned char *md, unsigned int &md_len)
{
    thread_local std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    const EVP_MD *type = sha256_md();
    if (!ctx || !type)
        return EVP_Digest(s.data(), s.size(), md, &md_len, EVP_sha256(), nullptr) == 1;
    return EVP_DigestInit_ex2(ctx.get(), type, nullptr) == 1 &&
           EVP_DigestUpdate(ctx.get(), s.data(), s.size()) == 1 &&
           EVP_DigestFinal_ex(ctx.get(), md, &md_len) == 1;
}

}  // namespace

std::string ja4_hash12(std::string_view s)
{
    if (s.empty())
        return "000000000000";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!sha256(s, md, md_len) || md_len < 6)
        return "000000000000";
    std::string out;
    out.reserve(12);
    for (int i = 0; i < 6; ++i) {
        out.push_back(kHex[md[i] >> 4]);
        out.push_back(kHex[md[i] & 0xf]);
    }
    return out;
}

namespace {

// The parts of the fingerprints: a, then b and c sorted and (original) in
// wire order.
struct Ja4Parts {
    std::string a, b_sorted, c_sorted, b_orig, c_orig;
};

Ja4Parts ja4_parts(const ClientHello &hello, const Ja4Options &opts, bool original)
{
    const Ja4Transport transport =
        opts.transport.value_or(hello.is_quic ? Ja4Transport::quic : Ja4Transport::tcp);

    const std::vector<uint16_t> ciphers = without_grease(hello.cipher_suites);
    const std::vector<uint16_t> exts = without_grease(hello.extensions);
    const std::vector<uint16_t> sigs = without_grease(hello.signature_algorithms);

    Ja4Parts p;
    // Part a.
    std::string &a = p.a;
    a.reserve(10);
    a.push_back(transport == Ja4Transport::quic   ? 'q'
                : transport == Ja4Transport::dtls ? 'd'
                                                  : 't');
    a.append(ja4_version_code(ja4_version_value(hello)));
    a.push_back(hello.has_extension(ext::server_name) ? 'd' : 'i');
    const size_t nc = std::min<size_t>(ciphers.size(), 99);
    const size_t ne = std::min<size_t>(exts.size(), 99);
    a.push_back(static_cast<char>('0' + nc / 10));
    a.push_back(static_cast<char>('0' + nc % 10));
    a.push_back(static_cast<char>('0' + ne / 10));
    a.push_back(static_cast<char>('0' + ne % 10));
    const std::string_view first_alpn =
        hello.alpn.empty() ? std::string_view{} : hello.alpn.front();
    a.append(ja4_alpn_chars(first_alpn, opts.alpn_rule));

    // Parts b and c, sorted and in wire order.
    std::vector<uint16_t> sorted_ciphers = ciphers;
    std::sort(sorted_ciphers.begin(), sorted_ciphers.end());
    std::vector<uint16_t> sorted_exts;
    sorted_exts.reserve(exts.size());
    for (uint16_t e : exts)
        if (e != ext::server_name && e != ext::alpn)
            sorted_exts.push_back(e);
    std::sort(sorted_exts.begin(), sorted_exts.end());

    const std::string sig_part = sigs.empty() ? std::string{} : "_" + join_hex(sigs);
    p.b_sorted = join_hex(sorted_ciphers);
    p.c_sorted = join_hex(sorted_exts) + sig_part;
    if (original) {
        p.b_orig = join_hex(ciphers);
        p.c_orig = join_hex(exts) + sig_part;
    }
    return p;
}

}  // namespace

Ja4Fingerprints compute_ja4(const ClientHello &hello, const Ja4Options &opts)
{
    const Ja4Parts p = ja4_parts(hello, opts, true);
    Ja4Fingerprints fp;
    fp.ja4 = p.a + "_" + ja4_hash12(p.b_sorted) + "_" + ja4_hash12(p.c_sorted);
    fp.ja4_r = p.a + "_" + p.b_sorted + "_" + p.c_sorted;
    fp.ja4_o = p.a + "_" + ja4_hash12(p.b_orig) + "_" + ja4_hash12(p.c_orig);
    fp.ja4_ro = p.a + "_" + p.b_orig + "_" + p.c_orig;
    return fp;
}

std::string ja4(const ClientHello &hello, const Ja4Options &opts)
{
    // Only what the sorted, hashed JA4 needs (two digests, not four).
    const Ja4Parts p = ja4_parts(hello, opts, false);
    std::string out = p.a;
    out.reserve(p.a.size() + 26);
    out += '_';
    out += ja4_hash12(p.b_sorted);
    out += '_';
    out += ja4_hash12(p.c_sorted);
    return out;
}

namespace {

void append_u16s(std::string &key, const std::vector<uint16_t> &values)
{
    uint16_t n = 0;
    const size_t at = key.size();
    key.append(sizeof(n), '\0');  // the count, filled in below
    for (uint16_t v : values)
        if (!is_grease(v)) {
            key.append(reinterpret_cast<const char *>(&v), sizeof(v));
            n++;
        }
    std::memcpy(key.data() + at, &n, sizeof(n));
}

}  // namespace

// The key holds every input of ja4_parts(original = false), GREASE left
// out as it leaves them out: equal keys give equal fingerprints.
std::string Ja4Cache::ja4(const ClientHello &hello, const Ja4Options &opts)
{
    key_.clear();
    const Ja4Transport transport =
        opts.transport.value_or(hello.is_quic ? Ja4Transport::quic : Ja4Transport::tcp);
    const uint16_t version = ja4_version_value(hello);
    key_.push_back(char(transport));
    key_.push_back(char(opts.alpn_rule));
    key_.append(reinterpret_cast<const char *>(&version), sizeof(version));
    append_u16s(key_, hello.cipher_suites);
    append_u16s(key_, hello.extensions);  // server_name and ALPN among them
    append_u16s(key_, hello.signature_algorithms);
    if (!hello.alpn.empty())
        key_.append(hello.alpn.front());  // last: its length is the rest
    if (auto it = by_input_.find(key_); it != by_input_.end())
        return it->second;
    if (by_input_.size() >= kMaxEntries)
        by_input_.clear();
    return by_input_.emplace(key_, tls::ja4(hello, opts)).first->second;
}

}  // namespace exf::tls
