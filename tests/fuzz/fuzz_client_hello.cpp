// SPDX-License-Identifier: Apache-2.0
// ClientHello parser, JA4 and the hello reassembler on arbitrary bytes.
// The input is the client's byte stream. Checked:
//  * the one-shot parse (TLS record and bare handshake framing) and the
//    framing-only parse (out == nullptr) agree on the status, consumed/needed
//    are consistent with the input length;
//  * JA4 (all variants, both ALPN rules, every transport) of a complete hello
//    has the a_b_c shape;
//  * the reassembler fed the stream in order, in pieces whose sizes come from
//    a PRNG seeded by the input, ends where the one-shot parse does, with the
//    same SNI and JA4;
//  * fed shuffled, duplicated and overlapping pieces (one altered copy), it
//    never crashes and settles on finish().
#include <algorithm>
#include <random>
#include <string>

#include "fuzz_util.h"
#include "tls/client_hello.h"
#include "tls/hello_reassembler.h"
#include "tls/ja4.h"

using namespace exf::tls;

namespace {

void check_ja4_shape(const std::string &s)
{
    // a (10 chars) _ b (12 hex or raw) _ c (hash or raw, may hold more '_').
    FUZZ_CHECK(s.size() >= 10 + 1 + 1);
    FUZZ_CHECK(s[10] == '_');
    for (char c : s)
        FUZZ_CHECK(c > 0x20 && c < 0x7f);
}

void check_fingerprints(const ClientHello &h)
{
    for (auto rule : {Ja4AlpnRule::spec, Ja4AlpnRule::foxio_tool}) {
        for (auto t : {Ja4Transport::tcp, Ja4Transport::quic, Ja4Transport::dtls}) {
            Ja4Options o;
            o.transport = t;
            o.alpn_rule = rule;
            auto f = compute_ja4(h, o);
            check_ja4_shape(f.ja4);
            check_ja4_shape(f.ja4_r);
            check_ja4_shape(f.ja4_o);
            check_ja4_shape(f.ja4_ro);
            FUZZ_CHECK(f.ja4.size() == 36);
            FUZZ_CHECK(f.ja4_o.size() == 36);
            FUZZ_CHECK(f.ja4.compare(0, 10, f.ja4_r, 0, 10) == 0);
        }
    }
}

ParseResult one_shot(std::span<const uint8_t> data, bool record, ClientHello &h)
{
    ParseResult r =
        record ? parse_client_hello_record(data, h) : parse_client_hello_handshake(data, h, false);
    // Framing-only parse: same status (client_hello.h).
    ClientHelloParser p;
    ParseResult f =
        record ? p.parse_record(data, nullptr) : p.parse_handshake(data, nullptr, false);
    FUZZ_CHECK(f.status == r.status);
    if (r.complete()) {
        FUZZ_CHECK(r.consumed > 0 && r.consumed <= data.size());
        FUZZ_CHECK(f.consumed == r.consumed);
        FUZZ_CHECK(h.sni.size() <= 0xffff);
        check_fingerprints(h);
    } else if (r.need_more()) {
        FUZZ_CHECK(r.needed > data.size());
    }
    return r;
}

HelloReassembler::Status expected(const ParseResult &r)
{
    // A hello that cannot fit in the reassembler's cap ends it early.
    if (r.need_more() && r.needed > HelloReassembler::kMaxBytes)
        return HelloReassembler::Status::malformed;
    return r.complete()    ? HelloReassembler::Status::done
           : r.malformed() ? HelloReassembler::Status::malformed
                           : HelloReassembler::Status::need_more;
}

struct Piece {
    uint32_t off;
    std::vector<uint8_t> bytes;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    std::span<const uint8_t> in(data, size);
    uint64_t seed = 1469598103934665603ull;
    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 1099511628211ull;
    std::mt19937_64 rng(seed);

    for (bool record : {true, false}) {
        ClientHello h;
        ParseResult r = one_shot(in, record, h);
        auto framing =
            record ? HelloReassembler::Framing::tls_record : HelloReassembler::Framing::handshake;

        // In order, random piece sizes.
        HelloReassembler ra(framing, false);
        size_t at = 0;
        while (at < size && ra.status() == HelloReassembler::Status::need_more) {
            size_t n = std::min<size_t>(size - at, 1 + rng() % 1500);
            ra.add(uint32_t(at), in.subspan(at, n));
            at += n;
        }
        if (size <= HelloReassembler::kMaxBytes) {
            if (ra.status() != expected(r))
                std::fprintf(stderr,
                             "framing %s: one-shot %s/%s consumed %zu needed %zu, "
                             "reassembler %s/%s\n",
                             record ? "record" : "handshake",
                             std::string(to_string(r.status)).c_str(),
                             std::string(to_string(r.anomaly)).c_str(), r.consumed, r.needed,
                             std::string(to_string(ra.status())).c_str(),
                             std::string(to_string(ra.anomaly())).c_str());
            FUZZ_CHECK(ra.status() == expected(r));
            FUZZ_CHECK(ra.conflicts() == 0);
            if (r.complete()) {
                FUZZ_CHECK(ra.consumed() == r.consumed);
                FUZZ_CHECK(ra.hello().sni == h.sni);
                FUZZ_CHECK(ja4(ra.hello()) == ja4(h));
            }
        }
        ra.finish();
        FUZZ_CHECK(ra.status() != HelloReassembler::Status::need_more);

        // Shuffled, duplicated, overlapping, one copy altered.
        std::vector<Piece> pieces;
        at = 0;
        while (at < size) {
            size_t n = std::min<size_t>(size - at, 1 + rng() % 700);
            pieces.push_back({uint32_t(at), {in.begin() + at, in.begin() + at + n}});
            if (rng() % 4 == 0) {  // an overlapping retransmission
                size_t b = at - std::min<size_t>(at, rng() % 64);
                size_t e = std::min<size_t>(size, at + n + rng() % 64);
                pieces.push_back({uint32_t(b), {in.begin() + b, in.begin() + e}});
                if (rng() % 3 == 0)
                    pieces.back().bytes[rng() % pieces.back().bytes.size()] ^= 0x5a;
            }
            at += n;
        }
        if (rng() % 2)
            pieces.push_back({uint32_t(rng() % (HelloReassembler::kMaxBytes * 2)), {1, 2, 3}});
        std::shuffle(pieces.begin(), pieces.end(), rng);
        HelloReassembler rb(framing, !record);
        for (auto &p : pieces)
            rb.add(p.off, p.bytes);
        if (rb.status() == HelloReassembler::Status::done)
            check_fingerprints(rb.hello());
        rb.finish();
        FUZZ_CHECK(rb.status() != HelloReassembler::Status::need_more);
        rb.reset();
        FUZZ_CHECK(rb.add(0, in) != HelloReassembler::Status::malformed ||
                   size > HelloReassembler::kMaxBytes || !r.complete());
    }
    return 0;
}
