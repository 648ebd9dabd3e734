// SPDX-License-Identifier: Apache-2.0
// ClientHello reassembly from TCP segments / QUIC CRYPTO frames: order,
// retransmission, overlap, truncation at every byte, the 16 KiB cap.
#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>
#include <random>

#include "support/tls_builder.h"
#include "tls/hello_reassembler.h"

using exf::test::Bytes;
using exf::test::HelloBuilder;
using namespace exf::tls;
using Status = HelloReassembler::Status;

namespace {

std::span<const uint8_t> slice(const Bytes &b, size_t from, size_t to)
{
    return std::span<const uint8_t>(b).subspan(from, to - from);
}

// Feeds [from, to) segments of `stream` in the given order.
Status feed(HelloReassembler &r, const Bytes &stream,
            const std::vector<std::pair<size_t, size_t>> &segs)
{
    Status s = r.status();
    for (const auto &[from, to] : segs)
        s = r.add(static_cast<uint32_t>(from), slice(stream, from, to));
    return s;
}

std::vector<std::pair<size_t, size_t>> cut(size_t size, size_t seg)
{
    std::vector<std::pair<size_t, size_t>> segs;
    for (size_t at = 0; at < size; at += seg)
        segs.emplace_back(at, std::min(size, at + seg));
    return segs;
}

}  // namespace

TEST_CASE("reassembler: a hello in one segment needs no copy", "[tls][reassembler]")
{
    const Bytes rec = HelloBuilder().sni("one.example").alpn({"h2"}).record();
    HelloReassembler r;
    REQUIRE(r.status() == Status::need_more);
    REQUIRE(r.add(0, rec) == Status::done);
    REQUIRE(r.anomaly() == HelloAnomaly::none);
    REQUIRE(r.hello().sni == "one.example");
    REQUIRE(r.consumed() == rec.size());
    REQUIRE(r.buffered() == 0);
    REQUIRE(to_string(r.status()) == "done");
}

TEST_CASE("reassembler: PQ-sized hello over two segments", "[tls][reassembler]")
{
    const Bytes rec = HelloBuilder::browser_like().record();
    REQUIRE(rec.size() > 1460);
    REQUIRE(rec.size() < 2 * 1460);

    SECTION("in order")
    {
        HelloReassembler r;
        REQUIRE(r.add(0, slice(rec, 0, 1460)) == Status::need_more);
        REQUIRE(r.anomaly() == HelloAnomaly::truncated_record);
        REQUIRE(r.contiguous() == 1460);
        REQUIRE(r.add(1460, slice(rec, 1460, rec.size())) == Status::done);
        REQUIRE(r.hello().sni == "example.com");
        REQUIRE(r.hello().ech);
        REQUIRE(r.consumed() == rec.size());
        REQUIRE(r.buffered() == 0);  // released once done
    }
    SECTION("second segment first")
    {
        HelloReassembler r;
        REQUIRE(r.add(1460, slice(rec, 1460, rec.size())) == Status::need_more);
        REQUIRE(r.contiguous() == 0);
        REQUIRE(r.buffered() == rec.size());
        REQUIRE(r.add(0, slice(rec, 0, 1460)) == Status::done);
        REQUIRE(r.hello().key_share_groups.size() == 3);
    }
    SECTION("first segment retransmitted, then the second twice")
    {
        HelloReassembler r;
        REQUIRE(r.add(0, slice(rec, 0, 1460)) == Status::need_more);
        REQUIRE(r.add(0, slice(rec, 0, 1460)) == Status::need_more);
        REQUIRE(r.add(1460, slice(rec, 1460, rec.size())) == Status::done);
        REQUIRE(r.add(1460, slice(rec, 1460, rec.size())) == Status::done);
        REQUIRE(r.conflicts() == 0);
    }
}

TEST_CASE("reassembler: every split point, both orders", "[tls][reassembler]")
{
    const Bytes rec = HelloBuilder::browser_like().records(700);  // three records
    for (size_t k = 1; k < rec.size(); ++k) {
        INFO("split at " << k);
        {
            HelloReassembler r;
            REQUIRE(r.add(0, slice(rec, 0, k)) == Status::need_more);
            REQUIRE(r.add(static_cast<uint32_t>(k), slice(rec, k, rec.size())) == Status::done);
            REQUIRE(r.consumed() == rec.size());
        }
        {
            HelloReassembler r;
            REQUIRE(r.add(static_cast<uint32_t>(k), slice(rec, k, rec.size())) ==
                    Status::need_more);
            REQUIRE(r.add(0, slice(rec, 0, k)) == Status::done);
            REQUIRE(r.hello().extensions.size() == 18);
        }
    }
}

TEST_CASE("reassembler: every truncation waits, and finish() names it", "[tls][reassembler]")
{
    const Bytes rec = HelloBuilder::browser_like().records(1000);
    for (size_t k = 0; k < rec.size(); ++k) {
        INFO("prefix " << k);
        HelloReassembler r;
        if (k > 0)
            REQUIRE(r.add(0, slice(rec, 0, k)) == Status::need_more);
        REQUIRE(r.finish() == Status::malformed);
        REQUIRE((r.anomaly() == HelloAnomaly::truncated_record ||
                 r.anomaly() == HelloAnomaly::truncated_handshake));
        REQUIRE(r.add(0, rec) == Status::malformed);  // final: later data changes nothing
    }
}

TEST_CASE("reassembler: segments in any order", "[tls][reassembler]")
{
    const Bytes rec = HelloBuilder::browser_like().records(300);
    std::mt19937 rng(7);
    for (size_t seg : {1u, 3u, 64u, 100u, 536u}) {
        auto segs = cut(rec.size(), seg);
        for (int round = 0; round < 5; ++round) {
            INFO("segment " << seg << " round " << round);
            if (seg >= 64) {
                std::shuffle(segs.begin(), segs.end(), rng);
            } else {
                std::reverse(segs.begin(), segs.end());  // holes stay merged
            }
            HelloReassembler r;
            REQUIRE(feed(r, rec, segs) == Status::done);
            REQUIRE(r.hello().sni == "example.com");
            REQUIRE(r.consumed() == rec.size());
            REQUIRE(r.conflicts() == 0);
        }
    }
}

TEST_CASE("reassembler: overlapping segments", "[tls][reassembler]")
{
    const Bytes rec = HelloBuilder::browser_like().record();
    SECTION("overlaps with the same bytes")
    {
        HelloReassembler r;
        REQUIRE(r.add(100, slice(rec, 100, 900)) == Status::need_more);
        REQUIRE(r.add(50, slice(rec, 50, 1000)) == Status::need_more);  // covers both sides
        REQUIRE(r.add(800, slice(rec, 800, 1500)) == Status::need_more);
        REQUIRE(r.add(0, slice(rec, 0, 120)) == Status::need_more);
        REQUIRE(r.contiguous() == 1500);
        REQUIRE(r.add(1400, slice(rec, 1400, rec.size())) == Status::done);
        REQUIRE(r.conflicts() == 0);
    }
    SECTION("a retransmission with different bytes: the first copy wins")
    {
        Bytes forged = rec;
        // Rewrite "example.com" in the retransmitted copy.
        const auto at = std::search(forged.begin(), forged.end(), std::begin("example.com"),
                                    std::end("example.com") - 1);
        REQUIRE(at != forged.end());
        std::copy_n("EVIL!", 5, at);
        HelloReassembler r;
        REQUIRE(r.add(1000, slice(rec, 1000, rec.size())) == Status::need_more);
        REQUIRE(r.add(0, slice(rec, 0, 700)) == Status::need_more);
        REQUIRE(r.add(0, slice(forged, 0, 1000)) == Status::done);
        REQUIRE(r.hello().sni == "example.com");
        REQUIRE(r.conflicts() == 5);
    }
}

TEST_CASE("reassembler: malformed streams stop early", "[tls][reassembler]")
{
    SECTION("not TLS at all")
    {
        const std::string http = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        HelloReassembler r;
        REQUIRE(r.add(0, std::span<const uint8_t>(reinterpret_cast<const uint8_t *>(http.data()),
                                                  http.size())) == Status::malformed);
        REQUIRE(r.anomaly() == HelloAnomaly::not_handshake);
    }
    SECTION("a bad session id length is seen before the rest arrives")
    {
        Bytes rec = HelloBuilder::browser_like().record();
        rec[5 + 4 + 34] = 200;
        HelloReassembler r;
        REQUIRE(r.add(0, slice(rec, 0, 60)) == Status::malformed);
        REQUIRE(r.anomaly() == HelloAnomaly::bad_session_id_length);
    }
    SECTION("a content anomaly still gives the hello")
    {
        const Bytes rec =
            HelloBuilder().raw_extension(ext::server_name, {0x00, 0x00}).alpn({"h2"}).record();
        HelloReassembler r;
        REQUIRE(r.add(0, slice(rec, 0, 20)) == Status::need_more);
        REQUIRE(r.add(20, slice(rec, 20, rec.size())) == Status::done);
        REQUIRE(r.anomaly() == HelloAnomaly::bad_sni);
        REQUIRE(r.hello().alpn == std::vector<std::string>{"h2"});
    }
}

TEST_CASE("reassembler: the 16 KiB cap", "[tls][reassembler]")
{
    SECTION("a declared length that cannot fit is too_long at once")
    {
        Bytes start{0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0x50, 0x00};  // 20480-byte hello
        HelloReassembler r;
        REQUIRE(r.add(0, start) == Status::malformed);
        REQUIRE(r.anomaly() == HelloAnomaly::too_long);
    }
    SECTION("a hello that fits is fine, and data after it is ignored")
    {
        HelloBuilder b;
        b.padding(15000);
        const Bytes rec = b.record();
        REQUIRE(rec.size() < HelloReassembler::kMaxBytes);
        Bytes stream = rec;
        stream.insert(stream.end(), 20000, 0x17);
        HelloReassembler r;
        for (auto [from, to] : cut(stream.size(), 1448)) {
            r.add(static_cast<uint32_t>(from), slice(stream, from, to));
        }
        REQUIRE(r.status() == Status::done);
        REQUIRE(r.consumed() == rec.size());
    }
    SECTION("tiny records that never end fill the cap")
    {
        // A 3000-byte message in 1-byte records needs 18,020 stream bytes.
        HelloBuilder b;
        b.padding(3000);
        const Bytes stream = b.records(1);
        REQUIRE(stream.size() > HelloReassembler::kMaxBytes);
        HelloReassembler r;
        Status s = Status::need_more;
        size_t at = 0;
        for (; at < stream.size() && s == Status::need_more; at += 1000)
            s = r.add(static_cast<uint32_t>(at),
                      slice(stream, at, std::min(stream.size(), at + 1000)));
        REQUIRE(s == Status::malformed);
        REQUIRE(r.anomaly() == HelloAnomaly::too_long);
        // Known once the prefix shows the rest cannot fit, before the cap is full.
        REQUIRE(at < stream.size());
    }
    SECTION("segments beyond the cap or past 2^32 are dropped")
    {
        const Bytes rec = HelloBuilder().record();
        HelloReassembler r;
        REQUIRE(r.add(HelloReassembler::kMaxBytes, rec) == Status::need_more);
        REQUIRE(r.add(0xfffffff0u, rec) == Status::need_more);
        REQUIRE(r.buffered() == 0);
        REQUIRE(r.add(0, rec) == Status::done);
    }
}

TEST_CASE("reassembler: too many holes", "[tls][reassembler]")
{
    const Bytes rec = HelloBuilder::browser_like().record();
    HelloReassembler r;
    Status s = Status::need_more;
    size_t k = 0;
    for (; k < 40 && s == Status::need_more; ++k)
        s = r.add(static_cast<uint32_t>(1 + 2 * k), slice(rec, 1 + 2 * k, 2 + 2 * k));
    REQUIRE(s == Status::malformed);
    REQUIRE(r.anomaly() == HelloAnomaly::too_fragmented);
    REQUIRE(k == HelloReassembler::kMaxRanges + 1);
}

TEST_CASE("reassembler: QUIC CRYPTO stream", "[tls][reassembler][quic]")
{
    const Bytes hs = HelloBuilder::browser_like()
                         .raw_extension(ext::quic_transport_parameters, {0x01, 0x00})
                         .handshake();
    HelloReassembler r(HelloReassembler::Framing::handshake, true);
    // Chrome-style: several CRYPTO frames, out of order.
    REQUIRE(r.add(1200, slice(hs, 1200, hs.size())) == Status::need_more);
    REQUIRE(r.add(600, slice(hs, 600, 1200)) == Status::need_more);
    REQUIRE(r.add(0, slice(hs, 0, 600)) == Status::done);
    REQUIRE(r.hello().is_quic);
    REQUIRE(r.hello().record_count == 0);
    REQUIRE(r.consumed() == hs.size());

    HelloReassembler cut_short(HelloReassembler::Framing::handshake, true);
    REQUIRE(cut_short.add(0, slice(hs, 0, 3)) == Status::need_more);
    REQUIRE(cut_short.finish() == Status::malformed);
    REQUIRE(cut_short.anomaly() == HelloAnomaly::truncated_handshake);
}

TEST_CASE("reassembler: finish, reset, and no data", "[tls][reassembler]")
{
    HelloReassembler r;
    REQUIRE(r.add(0, {}) == Status::need_more);
    REQUIRE(r.finish() == Status::malformed);
    REQUIRE(r.anomaly() == HelloAnomaly::truncated_record);
    r.reset();
    REQUIRE(r.status() == Status::need_more);
    REQUIRE(r.anomaly() == HelloAnomaly::none);
    const Bytes rec = HelloBuilder().sni("again.example").record();
    REQUIRE(r.add(0, rec) == Status::done);
    REQUIRE(r.finish() == Status::done);
    REQUIRE(r.hello().sni == "again.example");
    REQUIRE(to_string(Status::malformed) == "malformed");
}
