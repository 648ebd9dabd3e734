// SPDX-License-Identifier: Apache-2.0
// A synthetic, deterministic capture for the offline analysis benchmark
// (bench/offline_replay.sh, benchmark 4 in bench/RESULTS.md).
//
//   gen_capture --out FILE [--packets N] [--clients N] [--seed N] [--rate PPS]
//               [--concurrency N]
//
// Writes a classic pcap (nanosecond timestamps, Ethernet) of exactly N packets
// (default 1 000 000) from C clients (default 5000) talking to API servers:
//
//  * TLS over TCP (port 443, some 8443, and some 4443, which is not a TLS
//    port, so found by its ClientHello): three-way handshake, a real
//    ClientHello (tests/support/tls_builder.h) from one of seven client
//    profiles (cipher lists and extension sets after Chrome, Firefox, curl,
//    Go, Python, Java 8, okhttp), with the flow's SNI (about 300 API host
//    names, Zipf-distributed; 2 % of hellos carry none) and ALPN, over one or
//    two segments (the Chrome-like hello with its ML-KEM key share is about
//    1.9 KB); the server's flight; the request; server-to-client data of a
//    long-tailed size (300 B to 8 MB, about 28 KB on average) in full
//    segments with a client ACK every other segment; FIN both ways (88 %),
//    RST (6 %) or nothing (6 %: the flow just stops).
//  * QUIC (UDP 443): client Initials really protected with the version 1
//    Initial keys (RFC 9001) carrying a ClientHello with ALPN h3 and
//    transport parameters in CRYPTO frames (two Initials when it does not
//    fit in one), the server's long-header flight, then 1-RTT (short header)
//    data from the server and ACKs from the client.
//  * Not TLS: DNS over UDP 53, plain HTTP on TCP 80, ICMP echo.
//
// Addresses come from ranges reserved for documentation and benchmarks:
// IPv4 clients 192.0.2.1-254 and 198.51.100.1-254, then 198.18.0.0/15
// (RFC 2544 benchmarking); 40 % of the clients are IPv6 in 2001:db8:1::/48
// (one /64 each); servers in 203.0.113.0/24 and 2001:db8:ffff::/48. Client
// activity is Zipf-like (s = 0.9, ranks given to clients in a random order),
// but the first C flows visit every client once, so every client is in the
// capture when there are at least C flows.
//
// Flows overlap: --concurrency flows (default 512) are open at a time and
// each packet is taken from one of them at random; packet times advance by
// exponential gaps averaging 1/--rate (default 20 000 packets per second of
// capture time, so the default capture spans about 50 s). Everything comes
// from one seeded generator (splitmix64): the same arguments give the same
// bytes. A summary goes to stderr and, as one machine-readable line
// "GEN_CAPTURE key=value ...", to stdout.
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "support/packet_builder.h"
#include "support/tls_builder.h"
#include "tls/quic_initial.h"

using exf::test::Bytes;
using exf::test::FrameSpec;
using exf::test::HelloBuilder;

namespace {

// ---------------------------------------------------------------- randomness

struct Rng {
    uint64_t s;
    uint64_t next()
    {
        uint64_t z = (s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    uint64_t below(uint64_t n) { return n ? next() % n : 0; }
    double real() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }
    bool chance(double p) { return real() < p; }
    // Log-uniform in [lo, hi).
    uint64_t log_uniform(double lo, double hi)
    {
        return uint64_t(std::exp(std::log(lo) + real() * (std::log(hi) - std::log(lo))));
    }
    Bytes bytes(size_t n)
    {
        Bytes b(n);
        for (size_t i = 0; i < n; i += 8) {
            uint64_t v = next();
            for (size_t k = 0; k < 8 && i + k < n; k++)
                b[i + k] = uint8_t(v >> (8 * k));
        }
        return b;
    }
};

// Cumulative Zipf weights over n items; pick() returns 0..n-1.
class Zipf {
public:
    Zipf(size_t n, double s)
    {
        cum_.resize(n);
        double t = 0;
        for (size_t i = 0; i < n; i++)
            cum_[i] = t += 1.0 / std::pow(double(i + 1), s);
    }
    size_t pick(Rng &r) const
    {
        double x = r.real() * cum_.back();
        return size_t(std::upper_bound(cum_.begin(), cum_.end(), x) - cum_.begin());
    }

private:
    std::vector<double> cum_;
};

// ---------------------------------------------------------------- addresses

struct Host {
    std::string ip;
    bool v6 = false;
};

std::string client_ip(size_t i, size_t n_clients, bool &v6)
{
    const size_t n_v4 = n_clients - n_clients * 2 / 5;
    char buf[64];
    v6 = i >= n_v4;
    if (v6) {
        std::snprintf(buf, sizeof(buf), "2001:db8:1:%zx::%zx", (i - n_v4) & 0xffff,
                      1 + (i - n_v4) / 0x10000);
    } else if (i < 254) {
        std::snprintf(buf, sizeof(buf), "192.0.2.%zu", i + 1);
    } else if (i < 508) {
        std::snprintf(buf, sizeof(buf), "198.51.100.%zu", i - 253);
    } else {
        size_t k = i - 508;  // 198.18.0.0/15: 512 /24s of 254 hosts
        size_t net = k / 254;
        if (net >= 512)
            throw std::invalid_argument("too many IPv4 clients for 198.18.0.0/15");
        std::snprintf(buf, sizeof(buf), "198.%zu.%zu.%zu", 18 + net / 256, net % 256, k % 254 + 1);
    }
    return buf;
}

// ---------------------------------------------------------------- API hosts

struct ApiHost {
    std::string sni;
    Host server;
};

std::vector<ApiHost> make_api_hosts(Rng &r)
{
    static const char *const kStems[] = {"api",       "auth",   "cdn",    "files",  "s3",
                                         "telemetry", "graph",  "upload", "export", "reports",
                                         "billing",   "search", "media",  "sync",   "events"};
    static const char *const kZones[] = {"example.com", "example.net", "example.org"};
    std::vector<ApiHost> hosts;
    for (size_t i = 0; i < 300; i++) {
        ApiHost h;
        const char *stem = kStems[r.below(std::size(kStems))];
        const char *zone = kZones[r.below(std::size(kZones))];
        h.sni = i < 15 ? std::string(kStems[i]) + "." + kZones[i % 3]
                       : std::string(stem) + "-" + std::to_string(i) + "." + zone;
        char buf[64];
        if (r.chance(0.25)) {
            std::snprintf(buf, sizeof(buf), "2001:db8:ffff::%zx", 1 + i % 64);
            h.server = {buf, true};
        } else {
            std::snprintf(buf, sizeof(buf), "203.0.113.%zu", 1 + i % 200);
            h.server = {buf, false};
        }
        hosts.push_back(std::move(h));
    }
    return hosts;
}

// ---------------------------------------------------------------- ClientHellos

enum Profile : uint8_t { chrome, firefox, curl, go, python, java8, okhttp, kProfiles };

const std::vector<uint16_t> kSigalgs13 = {0x0403, 0x0804, 0x0401, 0x0503,
                                          0x0805, 0x0501, 0x0806, 0x0601};
const std::vector<uint16_t> kSigalgsOpenssl = {
    0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0809, 0x080a, 0x080b, 0x0804, 0x0805,
    0x0806, 0x0401, 0x0501, 0x0601, 0x0303, 0x0301, 0x0302, 0x0402, 0x0502, 0x0602};

uint16_t grease(Rng &r) { return uint16_t(0x0a0a + 0x1010 * r.below(16)); }

// The default ALPN of a profile (quic: h3).
std::vector<std::string> profile_alpn(Profile p, Rng &r)
{
    switch (p) {
    case chrome:
    case firefox:
    case okhttp: return {"h2", "http/1.1"};
    case curl:
        return r.chance(0.7) ? std::vector<std::string>{"h2", "http/1.1"}
                             : std::vector<std::string>{"http/1.1"};
    case go:
        return r.chance(0.5) ? std::vector<std::string>{"h2", "http/1.1"}
                             : std::vector<std::string>{};
    case python:
        return r.chance(0.5) ? std::vector<std::string>{"http/1.1"} : std::vector<std::string>{};
    case java8: return {};
    default: return {};
    }
}

// A ClientHello handshake message (no record header).
Bytes make_hello(Profile p, const std::string &sni, const std::vector<std::string> &alpn, bool quic,
                 Rng &r)
{
    HelloBuilder b;
    b.session_id(quic ? Bytes{} : r.bytes(32));
    switch (p) {
    case chrome: {
        uint16_t g1 = grease(r), g2 = grease(r), g3 = grease(r);
        b.ciphers({g1, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8,
                   0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035});
        b.grease_extension(g2);
        if (!sni.empty())
            b.sni(sni);
        b.raw_extension(0x0017, {})
            .raw_extension(0xff01, {0x00})
            .supported_groups({g3, 0x11ec, 0x001d, 0x0017, 0x0018})
            .ec_point_formats({0x00})
            .raw_extension(0x0023, {});
        if (!alpn.empty())
            b.alpn(alpn);
        b.raw_extension(0x0005, {0x01, 0x00, 0x00, 0x00, 0x00})
            .signature_algorithms(kSigalgs13)
            .raw_extension(0x0012, {})
            .key_share({{g3, 1}, {0x11ec, 1216}, {0x001d, 32}})
            .raw_extension(0x002d, {0x01, 0x01})
            .supported_versions({g1, 0x0304, 0x0303})
            .raw_extension(0x001b, {0x02, 0x00, 0x02});
        if (quic)
            b.raw_extension(0x0039, r.bytes(60));
        else
            b.ech(size_t(144 + 32 * r.below(4)));
        uint16_t g4 = grease(r);
        if (g4 == g2)
            g4 = uint16_t(g4 ^ 0x1010);  // two GREASE extensions of one value would be a duplicate
        b.grease_extension(g4, {0x00});
        break;
    }
    case firefox:
        b.ciphers({0x1301, 0x1303, 0x1302, 0xc02b, 0xc02f, 0xcca9, 0xcca8, 0xc02c, 0xc030, 0xc00a,
                   0xc009, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035});
        if (!sni.empty())
            b.sni(sni);
        b.raw_extension(0x0017, {})
            .raw_extension(0xff01, {0x00})
            .supported_groups({0x001d, 0x0017, 0x0018, 0x0019, 0x0100, 0x0101})
            .ec_point_formats({0x00})
            .raw_extension(0x0023, {});
        if (!alpn.empty())
            b.alpn(alpn);
        b.raw_extension(0x0005, {0x01, 0x00, 0x00, 0x00, 0x00})
            .raw_extension(0x0022, {0x00, 0x08, 0x04, 0x03, 0x05, 0x03, 0x06, 0x03, 0x02, 0x03})
            .key_share({{0x001d, 32}, {0x0017, 65}})
            .supported_versions({0x0304, 0x0303})
            .signature_algorithms({0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501,
                                   0x0601, 0x0203, 0x0201})
            .raw_extension(0x002d, {0x01, 0x01})
            .raw_extension(0x001c, {0x40, 0x01});
        if (quic)
            b.raw_extension(0x0039, r.bytes(56));
        else
            b.padding(size_t(r.below(200)));
        break;
    case curl:
    case python:
        b.ciphers(
            p == curl
                ? std::vector<uint16_t>{0x1302, 0x1303, 0x1301, 0xc02c, 0xc030, 0x009f, 0xcca9,
                                        0xcca8, 0xccaa, 0xc02b, 0xc02f, 0x009e, 0xc024, 0xc028,
                                        0x006b, 0xc023, 0xc027, 0x0067, 0xc00a, 0xc014, 0x0039,
                                        0xc009, 0xc013, 0x0033, 0x009d, 0x009c, 0x003d, 0x003c,
                                        0x0035, 0x002f, 0x00ff}
                : std::vector<uint16_t>{0x1302, 0x1303, 0x1301, 0xc02c, 0xc030, 0xc02b, 0xc02f,
                                        0xcca9, 0xcca8, 0x009f, 0x009e, 0xccaa, 0xc0af, 0xc0ad,
                                        0xc0ae, 0xc0ac, 0xc024, 0xc028, 0xc023, 0xc027, 0xc00a,
                                        0xc014, 0xc009, 0xc013, 0x00ff});
        if (!sni.empty())
            b.sni(sni);
        b.ec_point_formats({0x00, 0x01, 0x02})
            .supported_groups({0x001d, 0x0017, 0x001e, 0x0019, 0x0018})
            .raw_extension(0x0023, {});
        if (!alpn.empty())
            b.alpn(alpn);
        b.raw_extension(0x0016, {})
            .raw_extension(0x0017, {})
            .signature_algorithms(kSigalgsOpenssl)
            .supported_versions({0x0304, 0x0303})
            .raw_extension(0x002d, {0x01, 0x01})
            .key_share({{0x001d, 32}});
        if (p == curl)
            b.padding(size_t(r.below(2) ? 0 : 512 - 280));
        break;
    case go:
        b.ciphers({0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc009, 0xc013, 0xc00a, 0xc014,
                   0x009c, 0x009d, 0x002f, 0x0035, 0xc012, 0x000a, 0x1301, 0x1302, 0x1303});
        if (!sni.empty())
            b.sni(sni);
        b.raw_extension(0x0005, {0x01, 0x00, 0x00, 0x00, 0x00})
            .supported_groups({0x001d, 0x0017, 0x0018, 0x0019})
            .ec_point_formats({0x00})
            .signature_algorithms({0x0804, 0x0403, 0x0807, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601,
                                   0x0503, 0x0603, 0x0201, 0x0203})
            .raw_extension(0xff01, {0x00});
        if (!alpn.empty())
            b.alpn(alpn);
        b.raw_extension(0x0012, {}).supported_versions({0x0304, 0x0303}).key_share({{0x001d, 32}});
        break;
    case java8:
        b.ciphers({0xc02c, 0xc02b, 0xc030, 0x009d, 0xc02e, 0xc032, 0x009f, 0x00a3, 0xc02f,
                   0x009c, 0xc02d, 0xc031, 0x009e, 0x00a2, 0xc024, 0xc028, 0x003d, 0xc026,
                   0xc02a, 0x006b, 0x006a, 0xc00a, 0xc014, 0x0035, 0xc005, 0xc00f, 0x0039,
                   0x0038, 0xc023, 0xc027, 0x003c, 0xc025, 0xc029, 0x0067, 0x0040, 0xc009,
                   0xc013, 0x002f, 0xc004, 0xc00e, 0x0033, 0x0032, 0x00ff});
        b.supported_groups({0x0017, 0x0018, 0x0019, 0x0009, 0x000a, 0x000b, 0x000c, 0x000d})
            .ec_point_formats({0x00})
            .signature_algorithms({0x0603, 0x0601, 0x0503, 0x0501, 0x0403, 0x0401, 0x0303, 0x0301,
                                   0x0203, 0x0201, 0x0402, 0x0202})
            .raw_extension(0x0017, {});
        if (!sni.empty())
            b.sni(sni);
        break;
    case okhttp:
    default:
        b.ciphers({0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
                   0xc014, 0x009c, 0x009d, 0x002f, 0x0035});
        if (!sni.empty())
            b.sni(sni);
        b.raw_extension(0x0017, {})
            .raw_extension(0xff01, {0x00})
            .supported_groups({0x001d, 0x0017, 0x0018})
            .ec_point_formats({0x00})
            .raw_extension(0x0023, {});
        if (!alpn.empty())
            b.alpn(alpn);
        b.raw_extension(0x0005, {0x01, 0x00, 0x00, 0x00, 0x00})
            .signature_algorithms(kSigalgs13)
            .key_share({{0x001d, 32}})
            .raw_extension(0x002d, {0x01, 0x01})
            .supported_versions({0x0304, 0x0303});
        break;
    }
    if (quic && p != chrome && p != firefox)
        b.raw_extension(0x0039, r.bytes(48));
    Bytes h = b.handshake();
    // A random "random" (the builder fills it with one byte).
    Bytes rnd = r.bytes(32);
    std::copy(rnd.begin(), rnd.end(), h.begin() + 4 + 2);
    return h;
}

// ---------------------------------------------------------------- QUIC Initial protection

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

void openssl_check(int ok)
{
    if (ok != 1)
        throw std::runtime_error("OpenSSL failure while protecting a QUIC Initial");
}

// A client Initial (RFC 9001 5: AES-128-GCM, then header protection),
// its payload (frames) padded so that the datagram is 1200 bytes.
Bytes quic_client_initial(const Bytes &dcid, const Bytes &scid, uint64_t pn, Bytes frames)
{
    constexpr size_t kPnLen = 2, kDatagram = 1200;
    Bytes h;
    h.push_back(uint8_t(0xc0 | (kPnLen - 1)));  // long header, Initial (v1)
    for (int s = 24; s >= 0; s -= 8)
        h.push_back(uint8_t(1u >> s));
    h.push_back(uint8_t(dcid.size()));
    h.insert(h.end(), dcid.begin(), dcid.end());
    h.push_back(uint8_t(scid.size()));
    h.insert(h.end(), scid.begin(), scid.end());
    h.push_back(0);  // no token
    const size_t fixed = h.size() + 2 + kPnLen + 16;
    if (frames.size() + fixed < kDatagram)
        frames.resize(kDatagram - fixed, 0);  // PADDING frames
    const size_t length = kPnLen + frames.size() + 16;
    h.push_back(uint8_t(0x40 | length >> 8));
    h.push_back(uint8_t(length));
    const size_t pn_offset = h.size();
    h.push_back(uint8_t(pn >> 8));
    h.push_back(uint8_t(pn));
    auto k = exf::tls::quic_initial_keys(1, dcid);
    if (!k)
        throw std::runtime_error("no QUIC v1 Initial keys");
    uint8_t nonce[12];
    std::memcpy(nonce, k->iv.data(), 12);
    for (size_t i = 0; i < 8; i++)
        nonce[4 + i] ^= uint8_t(pn >> (56 - 8 * i));
    Bytes pkt = h;
    pkt.resize(h.size() + frames.size() + 16);
    int len = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    openssl_check(EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), nullptr, k->key.data(), nonce));
    openssl_check(EVP_EncryptUpdate(c, nullptr, &len, h.data(), int(h.size())));
    openssl_check(
        EVP_EncryptUpdate(c, pkt.data() + h.size(), &len, frames.data(), int(frames.size())));
    openssl_check(EVP_EncryptFinal_ex(c, pkt.data() + h.size() + len, &len));
    openssl_check(
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, pkt.data() + h.size() + frames.size()));
    EVP_CIPHER_CTX_free(c);
    uint8_t mask[16];
    c = EVP_CIPHER_CTX_new();
    openssl_check(EVP_EncryptInit_ex(c, EVP_aes_128_ecb(), nullptr, k->hp.data(), nullptr));
    EVP_CIPHER_CTX_set_padding(c, 0);
    openssl_check(EVP_EncryptUpdate(c, mask, &len, pkt.data() + pn_offset + 4, 16));
    EVP_CIPHER_CTX_free(c);
    pkt[0] ^= mask[0] & 0x0f;
    for (size_t i = 0; i < kPnLen; i++)
        pkt[pn_offset + i] ^= mask[1 + i];
    return pkt;
}

// ---------------------------------------------------------------- flows

enum class Kind : uint8_t { tls, quic, dns, http, icmp };
enum Dir : uint8_t { c2s, s2c };

// One packet of a flow, built when it is emitted. Payload: `len` bytes from
// `data` (when set) at `off`, else filler.
struct Step {
    Dir dir;
    uint8_t flags;  // TCP flags
    uint16_t len;
    uint32_t off;  // into data
    int8_t data;   // index into Flow::blobs, -1: filler
};

struct Flow {
    Kind kind = Kind::tls;
    Host client, server;
    uint16_t cport = 0, sport = 443;
    uint32_t cseq = 0, sseq = 0;  // next sequence numbers
    std::vector<Bytes> blobs;     // hello bytes, QUIC datagrams
    std::vector<Step> steps;
    size_t next = 0;
    bool done() const { return next >= steps.size(); }
};

struct Totals {
    uint64_t tls = 0, tls_8443 = 0, tls_4443 = 0, quic = 0, dns = 0, http = 0, icmp = 0;
    uint64_t two_segment_hellos = 0, no_sni = 0, fin = 0, rst = 0, open_end = 0;
    uint64_t bytes_s2c = 0;
    std::array<uint64_t, kProfiles> profiles{};
};

// Bytes of server data: long-tailed (see the header comment).
uint64_t data_size(Rng &r)
{
    double x = r.real();
    if (x < 0.78)
        return r.log_uniform(300, 16e3);
    if (x < 0.98)
        return r.log_uniform(16e3, 128e3);
    if (x < 0.998)
        return r.log_uniform(128e3, 1e6);
    return r.log_uniform(1e6, 8e6);
}

class Generator {
public:
    Generator(uint64_t seed, size_t n_clients)
        : rng_{seed}, client_zipf_(n_clients, 0.9), api_zipf_(300, 1.0)
    {
        api_ = make_api_hosts(rng_);
        for (size_t i = 0; i < n_clients; i++) {
            Host h;
            h.ip = client_ip(i, n_clients, h.v6);
            clients_.push_back(h);
            // A client's usual profile.
            profile_.push_back(Profile(rng_.below(kProfiles)));
        }
        // The first pass visits every client once, in a random order.
        order_.resize(n_clients);
        for (size_t i = 0; i < n_clients; i++)
            order_[i] = i;
        for (size_t i = n_clients; i > 1; i--)
            std::swap(order_[i - 1], order_[rng_.below(i)]);
        filler_ = rng_.bytes(1 << 16);
    }

    std::unique_ptr<Flow> new_flow()
    {
        // Zipf ranks go to clients in the same random order, so heavy
        // clients are of both families.
        size_t ci = order_[flows_made_ < order_.size() ? flows_made_ : client_zipf_.pick(rng_)];
        flows_made_++;
        auto f = std::make_unique<Flow>();
        f->client = clients_[ci];
        f->cport = uint16_t(32768 + rng_.below(28000));
        f->cseq = uint32_t(rng_.next());
        f->sseq = uint32_t(rng_.next());
        double x = rng_.real();
        // Servers of the client's family.
        const ApiHost *api = nullptr;
        for (int tries = 0; tries < 64; tries++) {
            const ApiHost &a = api_[api_zipf_.pick(rng_)];
            if (a.server.v6 == f->client.v6) {
                api = &a;
                break;
            }
        }
        if (!api)
            api = f->client.v6 ? &api_v6_fallback() : &api_v4_fallback();
        f->server = api->server;
        Profile p = rng_.chance(0.9) ? profile_[ci] : Profile(rng_.below(kProfiles));
        if (x < 0.78) {
            f->kind = Kind::tls;
            double y = rng_.real();
            f->sport = y < 0.94 ? 443 : y < 0.98 ? 8443 : 4443;
            (f->sport == 443    ? totals_.tls
             : f->sport == 8443 ? totals_.tls_8443
                                : totals_.tls_4443)++;
            totals_.profiles[p]++;
            build_tls(*f, p, *api);
        } else if (x < 0.85) {
            f->kind = Kind::quic;
            totals_.quic++;
            if (p == java8 || p == python || p == curl || p == go)
                p = rng_.chance(0.5) ? chrome : firefox;  // QUIC clients are browsers here
            totals_.profiles[p]++;
            build_quic(*f, p, *api);
        } else if (x < 0.95) {
            f->kind = Kind::dns;
            totals_.dns++;
            f->server =
                f->client.v6 ? Host{"2001:db8:ffff::53", true} : Host{"203.0.113.53", false};
            f->sport = 53;
            f->steps.push_back({c2s, 0, uint16_t(28 + rng_.below(40)), 0, -1});
            if (rng_.chance(0.97))
                f->steps.push_back({s2c, 0, uint16_t(60 + rng_.below(300)), 0, -1});
        } else if (x < 0.99) {
            f->kind = Kind::http;
            totals_.http++;
            f->sport = 80;
            build_http(*f);
        } else {
            f->kind = Kind::icmp;
            totals_.icmp++;
            int n = 1 + int(rng_.below(4));
            for (int i = 0; i < n; i++) {
                f->steps.push_back({c2s, 0, 64, 0, -1});
                f->steps.push_back({s2c, 0, 64, 0, -1});
            }
        }
        return f;
    }

    // The flow's next packet as a frame.
    Bytes emit(Flow &f)
    {
        const Step &st = f.steps[f.next++];
        FrameSpec s;
        const bool up = st.dir == c2s;
        s.src = up ? f.client.ip : f.server.ip;
        s.dst = up ? f.server.ip : f.client.ip;
        s.sport = up ? f.cport : f.sport;
        s.dport = up ? f.sport : f.cport;
        if (st.data >= 0) {
            const Bytes &b = f.blobs[size_t(st.data)];
            s.payload.assign(b.begin() + st.off, b.begin() + st.off + st.len);
        } else {
            size_t off = rng_.below(filler_.size() - st.len);
            s.payload.assign(filler_.begin() + off, filler_.begin() + off + st.len);
        }
        switch (f.kind) {
        case Kind::tls:
        case Kind::http: {
            s.proto = 6;
            s.tcp_flags = st.flags;
            uint32_t &seq = up ? f.cseq : f.sseq;
            s.seq = seq;
            s.ack = (st.flags & exf::test::ACK) ? (up ? f.sseq : f.cseq) : 0;
            seq += st.len + ((st.flags & (exf::test::SYN | exf::test::FIN)) ? 1 : 0);
            if (f.kind == Kind::tls && st.data < 0 && st.len >= 5 && !up) {
                // Server data looks like TLS application data records.
                s.payload[0] = 0x17;
                s.payload[1] = 0x03;
                s.payload[2] = 0x03;
                s.payload[3] = uint8_t((st.len - 5) >> 8);
                s.payload[4] = uint8_t(st.len - 5);
            }
            break;
        }
        case Kind::quic:
        case Kind::dns:
            s.proto = 17;
            if (f.kind == Kind::quic && st.data < 0 && !s.payload.empty())
                s.payload[0] = uint8_t(0x40 | (s.payload[0] & 0x3f));  // short header
            break;
        case Kind::icmp:
            s.proto = f.client.v6 ? 58 : 1;
            s.payload[0] = f.client.v6 ? (up ? 128 : 129) : (up ? 8 : 0);
            s.payload[1] = 0;
            break;
        }
        return exf::test::build_frame(s);
    }

    const Totals &totals() const { return totals_; }
    uint64_t flows_made() const { return flows_made_; }
    Rng &rng() { return rng_; }

private:
    const ApiHost &api_v4_fallback() const { return api_[0].server.v6 ? api_[1] : api_[0]; }
    const ApiHost &api_v6_fallback() const
    {
        for (auto &a : api_)
            if (a.server.v6)
                return a;
        return api_[0];
    }

    size_t mss(const Flow &f) const { return f.client.v6 ? 1440 : 1460; }

    void handshake(Flow &f)
    {
        f.steps.push_back({c2s, exf::test::SYN, 0, 0, -1});
        f.steps.push_back({s2c, exf::test::SYN | exf::test::ACK, 0, 0, -1});
        f.steps.push_back({c2s, exf::test::ACK, 0, 0, -1});
    }

    // `bytes` of server data in full segments, a client ACK every other one.
    void server_data(Flow &f, uint64_t bytes)
    {
        totals_.bytes_s2c += bytes;
        size_t segs = 0;
        while (bytes) {
            uint16_t n = uint16_t(std::min<uint64_t>(bytes, mss(f)));
            f.steps.push_back(
                {s2c, uint8_t(exf::test::ACK | (bytes == n ? exf::test::PSH : 0)), n, 0, -1});
            bytes -= n;
            if (++segs % 2 == 0 || !bytes)
                f.steps.push_back({c2s, exf::test::ACK, 0, 0, -1});
        }
    }

    void teardown(Flow &f)
    {
        double x = rng_.real();
        using namespace exf::test;
        if (x < 0.88) {
            totals_.fin++;
            Dir first = rng_.chance(0.6) ? c2s : s2c;
            Dir second = first == c2s ? s2c : c2s;
            f.steps.push_back({first, uint8_t(FIN | ACK), 0, 0, -1});
            f.steps.push_back({second, uint8_t(FIN | ACK), 0, 0, -1});
            f.steps.push_back({first, ACK, 0, 0, -1});
        } else if (x < 0.94) {
            totals_.rst++;
            f.steps.push_back({c2s, uint8_t(RST | ACK), 0, 0, -1});
        } else {
            totals_.open_end++;
        }
    }

    void build_tls(Flow &f, Profile p, const ApiHost &api)
    {
        using namespace exf::test;
        std::string sni = api.sni;
        if (rng_.chance(0.02)) {
            sni.clear();  // an IP-literal connection
            totals_.no_sni++;
        }
        auto alpn = profile_alpn(p, rng_);
        Bytes hs = make_hello(p, sni, alpn, false, rng_);
        Bytes rec = exf::test::tls_record(0x16, 0x0301, hs);
        handshake(f);
        const size_t m = mss(f);
        f.blobs.push_back(std::move(rec));
        const Bytes &hello = f.blobs.back();
        if (hello.size() > m)
            totals_.two_segment_hellos++;
        for (size_t off = 0; off < hello.size(); off += m) {
            uint16_t n = uint16_t(std::min(m, hello.size() - off));
            f.steps.push_back({c2s, uint8_t(ACK | PSH), n, uint32_t(off), 0});
        }
        // ServerHello, certificates, ... (TLS 1.3: one flight), then the
        // client's Finished and request, then the response.
        server_data(f, 2500 + rng_.below(3000));
        f.steps.push_back({c2s, uint8_t(ACK | PSH), uint16_t(80), 0, -1});
        f.steps.push_back({c2s, uint8_t(ACK | PSH), uint16_t(150 + rng_.below(900)), 0, -1});
        uint64_t body = data_size(rng_);
        server_data(f, body);
        // Some clients upload too (a request body after the response).
        if (rng_.chance(0.05)) {
            uint64_t up = rng_.log_uniform(1e3, 256e3);
            while (up) {
                uint16_t n = uint16_t(std::min<uint64_t>(up, m));
                f.steps.push_back({c2s, ACK, n, 0, -1});
                up -= n;
            }
            f.steps.push_back({s2c, ACK, 0, 0, -1});
        }
        teardown(f);
    }

    void build_http(Flow &f)
    {
        using namespace exf::test;
        handshake(f);
        f.steps.push_back({c2s, uint8_t(ACK | PSH), uint16_t(200 + rng_.below(400)), 0, -1});
        server_data(f, rng_.log_uniform(300, 64e3));
        teardown(f);
    }

    void build_quic(Flow &f, Profile p, const ApiHost &api)
    {
        using exf::test::put16;
        f.sport = 443;
        Bytes dcid = rng_.bytes(8), scid = rng_.bytes(8);
        Bytes hs = make_hello(p, api.sni, {"h3"}, true, rng_);
        // CRYPTO frames of at most 1100 bytes: one Initial, or two for a
        // large hello (Chrome's ML-KEM key share).
        size_t pn = 0;
        for (size_t off = 0; off < hs.size(); off += 1100) {
            size_t n = std::min<size_t>(1100, hs.size() - off);
            Bytes frames{0x06};
            put_varint(frames, off);
            put_varint(frames, n);
            frames.insert(frames.end(), hs.begin() + long(off), hs.begin() + long(off + n));
            f.blobs.push_back(quic_client_initial(dcid, scid, pn++, std::move(frames)));
            f.steps.push_back(
                {c2s, 0, uint16_t(f.blobs.back().size()), 0, int8_t(f.blobs.size() - 1)});
        }
        if (hs.size() > 1100)
            totals_.two_segment_hellos++;
        // The server's Initial + Handshake, then more Handshake: long headers.
        auto server_long = [&](uint8_t type, size_t len) {
            Bytes b = rng_.bytes(len);
            b[0] = uint8_t(0xc0 | type << 4 | 1);
            b[1] = 0, b[2] = 0, b[3] = 0, b[4] = 1;
            b[5] = 8;
            std::copy(scid.begin(), scid.end(), b.begin() + 6);
            b[14] = 8;
            f.blobs.push_back(std::move(b));
            f.steps.push_back({s2c, 0, uint16_t(len), 0, int8_t(f.blobs.size() - 1)});
        };
        server_long(0, 1200);
        server_long(2, 1200);
        server_long(2, 600 + rng_.below(600));
        // The client's Handshake (long header), then 1-RTT: request, data.
        Bytes ch = rng_.bytes(90);
        ch[0] = 0xe1, ch[1] = 0, ch[2] = 0, ch[3] = 0, ch[4] = 1, ch[5] = 8;
        std::copy(dcid.begin(), dcid.end(), ch.begin() + 6);
        f.blobs.push_back(std::move(ch));
        f.steps.push_back({c2s, 0, 90, 0, int8_t(f.blobs.size() - 1)});
        f.steps.push_back({c2s, 0, uint16_t(60 + rng_.below(400)), 0, -1});
        uint64_t body = data_size(rng_);
        totals_.bytes_s2c += body;
        size_t segs = 0;
        while (body) {
            uint16_t n = uint16_t(std::min<uint64_t>(body, 1200));
            f.steps.push_back({s2c, 0, n, 0, -1});
            body -= n;
            if (++segs % 4 == 0 || !body)
                f.steps.push_back({c2s, 0, 40, 0, -1});
        }
    }

    Rng rng_;
    Zipf client_zipf_, api_zipf_;
    std::vector<ApiHost> api_;
    std::vector<Host> clients_;
    std::vector<Profile> profile_;
    std::vector<size_t> order_;
    Bytes filler_;
    Totals totals_;
    uint64_t flows_made_ = 0;
};

// ---------------------------------------------------------------- pcap

class PcapWriter {
public:
    explicit PcapWriter(const std::string &path) : f_(std::fopen(path.c_str(), "wb"))
    {
        if (!f_)
            throw std::runtime_error(path + ": " + std::strerror(errno));
        std::setvbuf(f_, nullptr, _IOFBF, 1 << 20);
        // Host byte order (readers detect it from the magic): nanosecond
        // magic, version 2.4, snaplen 65535, link type 1 (Ethernet).
        const uint32_t hdr[6] = {0xa1b23c4d, 2u | 4u << 16, 0, 0, 65535, 1};
        write(hdr, sizeof(hdr));
    }
    ~PcapWriter()
    {
        if (f_)
            std::fclose(f_);
    }
    void packet(uint64_t ts_ns, const Bytes &frame)
    {
        uint32_t rec[4] = {uint32_t(ts_ns / 1000000000ull), uint32_t(ts_ns % 1000000000ull),
                           uint32_t(frame.size()), uint32_t(frame.size())};
        write(rec, sizeof(rec));
        write(frame.data(), frame.size());
        bytes_ += sizeof(rec) + frame.size();
    }
    void close()
    {
        if (std::fclose(f_) != 0)
            throw std::runtime_error(std::string("closing the capture: ") + std::strerror(errno));
        f_ = nullptr;
    }
    uint64_t bytes() const { return bytes_ + 24; }

private:
    void write(const void *p, size_t n)
    {
        if (std::fwrite(p, 1, n, f_) != n)
            throw std::runtime_error(std::string("writing the capture: ") + std::strerror(errno));
    }
    std::FILE *f_;
    uint64_t bytes_ = 0;
};

[[noreturn]] void usage(const char *argv0, const std::string &why = "")
{
    if (!why.empty())
        std::fprintf(stderr, "%s: %s\n", argv0, why.c_str());
    std::fprintf(stderr,
                 "usage: %s --out FILE [--packets N (1000000)] [--clients N (5000)] "
                 "[--seed N (1)] [--rate PPS (20000)] [--concurrency N (512)]\n",
                 argv0);
    std::exit(2);
}

uint64_t number(const char *argv0, const char *s)
{
    char *end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(s, &end, 10);
    if (errno || !end || *end || end == s)
        usage(argv0, std::string("not a number: ") + s);
    return v;
}

}  // namespace

int main(int argc, char **argv)
{
    std::string out;
    uint64_t packets = 1000000, clients = 5000, seed = 1, rate = 20000, concurrency = 512;
    for (int i = 1; i < argc; i++) {
        std::string_view a = argv[i];
        auto val = [&]() -> const char * {
            if (i + 1 >= argc)
                usage(argv[0], std::string(a) + " needs a value");
            return argv[++i];
        };
        if (a == "--out" || a == "-o")
            out = val();
        else if (a == "--packets")
            packets = number(argv[0], val());
        else if (a == "--clients")
            clients = number(argv[0], val());
        else if (a == "--seed")
            seed = number(argv[0], val());
        else if (a == "--rate")
            rate = number(argv[0], val());
        else if (a == "--concurrency")
            concurrency = number(argv[0], val());
        else if (a == "-h" || a == "--help")
            usage(argv[0]);
        else
            usage(argv[0], "unknown argument " + std::string(a));
    }
    if (out.empty())
        usage(argv[0], "--out is required");
    if (!clients || !rate || !concurrency || !packets)
        usage(argv[0], "--packets, --clients, --rate and --concurrency must be positive");

    try {
        Generator gen(seed, clients);
        PcapWriter w(out);
        std::vector<std::unique_ptr<Flow>> active;
        // 2026-01-01T00:00:00Z
        uint64_t ts = 1767225600ull * 1000000000ull;
        const double mean_gap_ns = 1e9 / double(rate);
        uint64_t written = 0, v6_packets = 0;
        while (written < packets) {
            while (active.size() < concurrency)
                active.push_back(gen.new_flow());
            size_t i = gen.rng().below(active.size());
            Flow &f = *active[i];
            Bytes frame = gen.emit(f);
            double gap = -std::log(1.0 - gen.rng().real()) * mean_gap_ns;
            ts += uint64_t(gap) + 1;
            w.packet(ts, frame);
            written++;
            v6_packets += f.client.v6;
            if (f.done()) {
                active[i] = std::move(active.back());
                active.pop_back();
            }
        }
        const uint64_t file_bytes = w.bytes();
        w.close();
        const Totals &t = gen.totals();
        // Flows started but not all of whose packets were written are still counted.
        const double span_s = double(ts - 1767225600ull * 1000000000ull) / 1e9;
        std::fprintf(
            stderr,
            "gen_capture: %s: %llu packets (%.1f %% IPv6), %.1f s of capture time, "
            "%.1f MB; %llu flows started: TLS/TCP %llu (443 %llu, 8443 %llu, 4443 %llu), "
            "QUIC %llu, DNS %llu, HTTP %llu, ICMP %llu; hellos over 2 segments/Initials "
            "%llu, without SNI %llu; ends FIN %llu RST %llu none %llu\n",
            out.c_str(), (unsigned long long)written, 100.0 * double(v6_packets) / double(written),
            span_s, double(file_bytes) / 1e6, (unsigned long long)gen.flows_made(),
            (unsigned long long)(t.tls + t.tls_8443 + t.tls_4443), (unsigned long long)t.tls,
            (unsigned long long)t.tls_8443, (unsigned long long)t.tls_4443,
            (unsigned long long)t.quic, (unsigned long long)t.dns, (unsigned long long)t.http,
            (unsigned long long)t.icmp, (unsigned long long)t.two_segment_hellos,
            (unsigned long long)t.no_sni, (unsigned long long)t.fin, (unsigned long long)t.rst,
            (unsigned long long)t.open_end);
        std::printf("GEN_CAPTURE file=%s packets=%llu clients=%llu seed=%llu rate=%llu "
                    "span_s=%.3f bytes=%llu flows=%llu tls_tcp=%llu quic=%llu dns=%llu http=%llu "
                    "icmp=%llu\n",
                    out.c_str(), (unsigned long long)written, (unsigned long long)clients,
                    (unsigned long long)seed, (unsigned long long)rate, span_s,
                    (unsigned long long)file_bytes, (unsigned long long)gen.flows_made(),
                    (unsigned long long)(t.tls + t.tls_8443 + t.tls_4443),
                    (unsigned long long)t.quic, (unsigned long long)t.dns,
                    (unsigned long long)t.http, (unsigned long long)t.icmp);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "gen_capture: %s\n", e.what());
        return 1;
    }
    return 0;
}
