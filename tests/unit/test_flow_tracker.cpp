// SPDX-License-Identifier: Apache-2.0
// FlowTracker on events built here, in the kernel's layout
// (bpf/exfilmon_shared.h): hello chunks in any order, retransmitted or
// conflicting, malformed hellos, short and garbage events, flow ends and
// 5-tuple reuse, the record bound, QUIC and its decoder seam.
#include <catch2/catch.hpp>

#include <cstring>
#include <random>

#include "common/addr.h"
#include "flows/flow_tracker.h"
#include "support/tls_builder.h"
#include "tls/client_hello.h"
#include "tls/ja4.h"

using exf::FlowRecord;
using exf::FlowTracker;
using exf::FlowTrackerOptions;
using exf::HelloState;
using exf::test::Bytes;
using exf::test::HelloBuilder;

namespace {

exf_flow_key make_key(uint16_t client_port, uint8_t proto = 6, const char *client = "192.0.2.10",
                      const char *server = "198.51.100.1", uint16_t server_port = 443)
{
    exf_flow_key k{};
    auto c = *exf::parse_addr(client);
    auto s = *exf::parse_addr(server);
    // The client compares lower here: it is "lo".
    std::memcpy(k.lo_addr, c.data(), 16);
    std::memcpy(k.hi_addr, s.data(), 16);
    k.lo_port = client_port;
    k.hi_port = server_port;
    k.proto = proto;
    return k;
}

exf_event_hdr header(uint16_t type, const exf_flow_key &k, uint64_t ts)
{
    exf_event_hdr h{};
    h.type = type;
    h.kind = k.proto == 17 ? EXF_KIND_QUIC : EXF_KIND_TLS;
    h.client = EXF_CLIENT_LO;
    h.ts_ns = ts;
    h.key = k;
    return h;
}

// A hello event as the kernel sends it: a small (512) or large (2048) data area.
Bytes hello_event(const exf_flow_key &k, uint32_t seq, uint32_t offset,
                  std::span<const uint8_t> data, uint64_t ts = 1000)
{
    exf_hello_event e{};
    e.hdr = header(EXF_EV_HELLO, k, ts);
    e.hdr.len = uint16_t(data.size());
    e.seq = seq;
    e.offset = offset;
    std::memcpy(e.data, data.data(), std::min(data.size(), sizeof(e.data)));
    size_t size = EXF_HELLO_EVENT_HDR_SIZE +
                  (data.size() <= EXF_CHUNK_SMALL ? EXF_CHUNK_SMALL : EXF_CHUNK_MAX);
    Bytes b(size);
    std::memcpy(b.data(), &e, size);
    return b;
}

Bytes end_event(const exf_flow_key &k, uint8_t reason, uint64_t pkts_in, uint64_t bytes_out,
                uint64_t ts = 2000)
{
    exf_flow_end_event e{};
    e.hdr = header(EXF_EV_FLOW_END, k, ts);
    e.hdr.reason = reason;
    e.flow.kind = e.hdr.kind;
    e.flow.client = EXF_CLIENT_LO;
    e.flow.pkts[EXF_CDIR_LO_TO_HI] = pkts_in;
    e.flow.bytes[EXF_CDIR_HI_TO_LO] = bytes_out;
    Bytes b(sizeof(e));
    std::memcpy(b.data(), &e, sizeof(e));
    return b;
}

// Feeds stream[from, to) as one chunk at ISN isn.
void chunk(FlowTracker &t, const exf_flow_key &k, uint32_t isn, const Bytes &stream, size_t from,
           size_t to)
{
    auto data = std::span<const uint8_t>(stream).subspan(from, to - from);
    t.on_event(hello_event(k, isn + uint32_t(from), uint32_t(from), data));
}

std::string expected_ja4(const Bytes &record)
{
    exf::tls::ClientHello h;
    auto r = exf::tls::parse_client_hello_record(record, h);
    REQUIRE(r.complete());
    exf::tls::Ja4Options o;
    o.alpn_rule = exf::tls::Ja4AlpnRule::foxio_tool;
    return exf::tls::ja4(h, o);
}

}  // namespace

TEST_CASE("flow tracker: a hello split in three chunks arriving out of order",
          "[pipeline][tracker]")
{
    const Bytes rec = HelloBuilder::browser_like().record();
    REQUIRE(rec.size() > 1200);
    const auto k = make_key(40000);
    FlowTracker t;
    int calls = 0;
    std::string seen_sni;
    t.set_on_tls_meta([&](const FlowRecord &r) {
        calls++;
        seen_sni = r.tls.sni.value_or("");
    });
    const uint32_t isn = 0xfffffc00;  // the sequence numbers wrap inside the hello
    const size_t a = 500, b = 1000;
    chunk(t, k, isn, rec, b, rec.size());
    chunk(t, k, isn, rec, 0, a);
    const FlowRecord *r = t.lookup(k);
    REQUIRE(r != nullptr);
    CHECK(r->hello == HelloState::pending);
    CHECK_FALSE(r->tls.known);
    CHECK(calls == 0);
    chunk(t, k, isn, rec, a, b);
    r = t.lookup(k);
    REQUIRE(r != nullptr);
    CHECK(r->hello == HelloState::done);
    CHECK(calls == 1);
    CHECK(seen_sni == "example.com");
    CHECK(r->tls.sni == std::optional<std::string>("example.com"));
    CHECK(r->tls.alpn == std::vector<std::string>{"h2", "http/1.1"});
    CHECK(r->tls.tls_version == "1.3");
    CHECK(r->tls.versions.front() == 0x0304);
    CHECK(r->tls.ech);
    CHECK(r->tls.ja4 == expected_ja4(rec));
    CHECK(r->tls.ja4.rfind("t13d", 0) == 0);
    CHECK(r->transport() == "tcp");
    CHECK(r->hello_events == 3);
    CHECK(r->anomalies.empty());
    CHECK(t.anomalies().empty());
    CHECK(t.stats().hellos_done == 1);
    CHECK(t.stats().hello_events == 3);
}

TEST_CASE("flow tracker: retransmitted and overlapping chunks", "[pipeline][tracker]")
{
    const Bytes rec = HelloBuilder::browser_like().record();
    const auto k = make_key(40001);
    FlowTracker t;
    int calls = 0;
    t.set_on_tls_meta([&](const FlowRecord &) { calls++; });

    SECTION("identical copies change nothing")
    {
        chunk(t, k, 1000, rec, 0, 700);
        chunk(t, k, 1000, rec, 0, 700);    // retransmission
        chunk(t, k, 1000, rec, 300, 900);  // overlapping resend
        chunk(t, k, 1000, rec, 900, rec.size());
        chunk(t, k, 1000, rec, 900, rec.size());  // after the result
        const FlowRecord *r = t.lookup(k);
        REQUIRE(r != nullptr);
        CHECK(r->hello == HelloState::done);
        CHECK(r->tls.ja4 == expected_ja4(rec));
        CHECK(calls == 1);
        CHECK(r->anomalies.empty());
        CHECK(t.size() == 1);
    }
    SECTION("a differing copy is a conflict and the first copy wins")
    {
        chunk(t, k, 1000, rec, 0, 700);
        Bytes evil = rec;
        for (size_t i = 100; i < 200; i++)
            evil[i] ^= 0x5a;
        chunk(t, k, 1000, evil, 0, 700);
        chunk(t, k, 1000, rec, 700, rec.size());
        const FlowRecord *r = t.lookup(k);
        REQUIRE(r != nullptr);
        CHECK(r->hello == HelloState::done);
        CHECK(r->tls.ja4 == expected_ja4(rec));
        CHECK(r->has_anomaly("hello_conflict"));
        CHECK(t.anomaly_count("hello_conflict") == 1);
    }
}

TEST_CASE("flow tracker: malformed hellos are counted anomalies", "[pipeline][tracker]")
{
    FlowTracker t;
    int calls = 0;
    t.set_on_tls_meta([&](const FlowRecord &) { calls++; });

    const Bytes http = {'G', 'E', 'T', ' ', '/', ' ', 'H',  'T',
                        'T', 'P', '/', '1', '.', '1', '\r', '\n'};
    chunk(t, make_key(1), 5, http, 0, http.size());
    Bytes bad_type = HelloBuilder().sni("a.example").record();
    bad_type[5] = 0x02;  // a ServerHello
    chunk(t, make_key(2), 5, bad_type, 0, bad_type.size());
    Bytes bad_len = HelloBuilder().sni("b.example").record();
    chunk(t, make_key(3), 5, bad_len, 0, bad_len.size());  // fine
    Bytes bad_sni = HelloBuilder().raw_extension(0x0000, {0x00, 0x01, 0x00}).record();
    chunk(t, make_key(4), 5, bad_sni, 0, bad_sni.size());

    const FlowRecord *r1 = t.lookup(make_key(1));
    REQUIRE(r1 != nullptr);
    CHECK(r1->hello == HelloState::malformed);
    CHECK(r1->anomalies == std::vector<std::string>{"not_handshake"});
    CHECK_FALSE(r1->tls.known);
    const FlowRecord *r2 = t.lookup(make_key(2));
    REQUIRE(r2 != nullptr);
    CHECK(r2->hello == HelloState::malformed);
    CHECK(r2->has_anomaly("not_client_hello"));
    const FlowRecord *r4 = t.lookup(make_key(4));
    REQUIRE(r4 != nullptr);
    // A content anomaly: the hello is still known, the anomaly counted.
    CHECK(r4->hello == HelloState::done);
    CHECK(r4->has_anomaly("bad_sni"));
    CHECK(calls == 2);
    CHECK(t.anomaly_count("not_handshake") == 1);
    CHECK(t.anomaly_count("not_client_hello") == 1);
    CHECK(t.anomaly_count("bad_sni") == 1);
    CHECK(t.anomalies().size() == 3);

    SECTION("a hello that never completes is truncated at the flow's end")
    {
        const Bytes rec = HelloBuilder::browser_like().record();
        const auto k = make_key(10);
        chunk(t, k, 0, rec, 0, 600);
        CHECK(t.lookup(k)->hello == HelloState::pending);
        t.on_event(end_event(k, EXF_END_RST, 3, 0));
        CHECK(t.lookup(k)->hello == HelloState::malformed);
        CHECK(t.lookup(k)->has_anomaly("truncated_record"));
        CHECK(t.anomaly_count("truncated_record") == 1);
    }
    SECTION("or when the input ends")
    {
        const Bytes rec = HelloBuilder::browser_like().record();
        const auto k = make_key(11);
        chunk(t, k, 0, rec, 0, 600);
        t.finish();
        CHECK(t.lookup(k)->hello == HelloState::malformed);
        CHECK(t.anomaly_count("truncated_record") == 1);
    }
    SECTION("a hello longer than the kernel hands over")
    {
        const Bytes rec = HelloBuilder().sni("big.example").padding(20000).records(16000);
        REQUIRE(rec.size() > EXF_HELLO_MAX);
        const auto k = make_key(12);
        for (size_t at = 0; at < EXF_HELLO_MAX; at += EXF_CHUNK_MAX)
            chunk(t, k, 0, rec, at, at + EXF_CHUNK_MAX);
        CHECK(t.lookup(k)->hello == HelloState::malformed);
        // The kernel's capture and the reassembler's cap are both 16 KiB:
        // whichever sees it first names it.
        CHECK((t.lookup(k)->has_anomaly("hello_beyond_capture") ||
               t.lookup(k)->has_anomaly("too_long")));
    }
}

TEST_CASE("flow tracker: short unknown and garbage events are counted never fatal",
          "[pipeline][tracker]")
{
    FlowTracker t;
    const auto k = make_key(40000);
    const Bytes rec = HelloBuilder().sni("ok.example").record();
    const Bytes good = hello_event(k, 100, 0, rec);

    t.on_event({});
    t.on_event(std::span<const uint8_t>(good.data(), 10));
    t.on_event(std::span<const uint8_t>(good.data(), sizeof(exf_event_hdr) - 1));
    t.on_event(std::span<const uint8_t>(good.data(), EXF_HELLO_EVENT_HDR_SIZE - 1));
    // The event ends before the bytes its len announces.
    t.on_event(std::span<const uint8_t>(good.data(), EXF_HELLO_EVENT_HDR_SIZE + rec.size() - 1));
    CHECK(t.anomaly_count("event_short") == 4);
    CHECK(t.anomaly_count("event_bad_length") == 1);

    auto patched = [&](auto fn) {
        Bytes b = good;
        exf_hello_event e;
        std::memcpy(&e, b.data(), EXF_HELLO_EVENT_HDR_SIZE);
        fn(e);
        std::memcpy(b.data(), &e, EXF_HELLO_EVENT_HDR_SIZE);
        return b;
    };
    t.on_event(patched([](exf_hello_event &e) { e.hdr.len = 0; }));
    t.on_event(patched([](exf_hello_event &e) { e.hdr.len = EXF_CHUNK_MAX + 1; }));
    t.on_event(patched([](exf_hello_event &e) { e.hdr.type = 99; }));
    t.on_event(patched([](exf_hello_event &e) { e.hdr.key.proto = 1; }));
    t.on_event(patched([](exf_hello_event &e) { e.hdr.kind = EXF_KIND_OTHER; }));
    t.on_event(patched([](exf_hello_event &e) { e.hdr.kind = EXF_KIND_QUIC; }));  // on TCP
    t.on_event(patched([](exf_hello_event &e) { e.hdr.client = EXF_CLIENT_UNKNOWN; }));
    CHECK(t.anomaly_count("event_bad_length") == 3);
    CHECK(t.anomaly_count("event_unknown_type") == 1);
    CHECK(t.anomaly_count("event_bad_key") == 3);
    CHECK(t.anomaly_count("event_bad_client") == 1);

    Bytes end = end_event(k, EXF_END_FIN, 1, 1);
    t.on_event(std::span<const uint8_t>(end.data(), end.size() - 1));
    CHECK(t.anomaly_count("event_short") == 5);
    Bytes bad_reason = end;
    bad_reason[offsetof(exf_event_hdr, reason)] = 9;
    t.on_event(bad_reason);
    CHECK(t.anomaly_count("event_bad_reason") == 1);

    CHECK(t.size() == 0);  // nothing above made a record
    CHECK(t.stats().bad_events == t.stats().events);

    // Random bytes of random sizes, and random mutations of good events.
    std::mt19937 rng(7);
    for (int i = 0; i < 20000; i++) {
        Bytes b;
        if (i % 2) {
            b.resize(rng() % 300);
            for (auto &x : b)
                x = uint8_t(rng());
            if (b.size() >= 2 && rng() % 2)
                b[0] = uint8_t(1 + rng() % 2), b[1] = 0;  // a known type
        } else {
            b = (i % 4) ? good : end;
            for (int j = 0; j < 4; j++)
                b[rng() % b.size()] ^= uint8_t(1 + rng() % 255);
            b.resize(rng() % (b.size() + 1));
        }
        t.on_event(b);
    }
    t.finish();
    CHECK(t.stats().events == 20000 + 14);
    CHECK(t.size() <= t.options().max_flows);

    // A good event still works.
    FlowTracker t2;
    t2.on_event(good);
    REQUIRE(t2.lookup(k) != nullptr);
    CHECK(t2.lookup(k)->tls.sni == std::optional<std::string>("ok.example"));
}

TEST_CASE("flow tracker: REUSE finalizes the old flow and the new entry of the key is a new flow",
          "[pipeline][tracker]")
{
    FlowTracker t;
    const auto k = make_key(40000);
    const Bytes first = HelloBuilder().sni("first.example").record();
    const Bytes second = HelloBuilder().sni("second.example").alpn({"h2"}).record();
    std::vector<std::pair<uint64_t, bool>> ends;  // (record id, finalized)
    t.set_on_flow_end([&](const FlowRecord &r) { ends.emplace_back(r.id, r.finalized); });

    chunk(t, k, 1000, first, 0, first.size());
    const FlowRecord *a = t.lookup(k);
    REQUIRE(a != nullptr);
    const uint64_t a_id = a->id;

    t.on_event(end_event(k, EXF_END_FIN, 7, 2064));
    REQUIRE(t.lookup(k) == a);  // the kernel keeps a closed flow: same record
    CHECK(a->ended);
    CHECK(a->end_reason == EXF_END_FIN);
    CHECK_FALSE(a->finalized);

    t.on_event(end_event(k, EXF_END_REUSE, 8, 2100));
    CHECK(t.lookup(k) == nullptr);
    CHECK(a->finalized);
    CHECK(a->end_reason == EXF_END_REUSE);
    REQUIRE(a->has_counters);
    CHECK(a->counters.pkts[EXF_CDIR_LO_TO_HI] == 8);  // the REUSE event's final counters
    CHECK(a->counters.bytes[EXF_CDIR_HI_TO_LO] == 2100);
    CHECK(ends == std::vector<std::pair<uint64_t, bool>>{{a_id, false}, {a_id, true}});

    chunk(t, k, 90000, second, 0, second.size());
    const FlowRecord *b = t.lookup(k);
    REQUIRE(b != nullptr);
    CHECK(b != a);
    CHECK(b->id != a_id);
    CHECK(b->tls.sni == std::optional<std::string>("second.example"));
    CHECK(a->tls.sni == std::optional<std::string>("first.example"));
    CHECK_FALSE(b->ended);
    CHECK(t.size() == 2);
    CHECK(t.active() == 1);

    // Iteration: oldest first, both kept.
    std::vector<uint64_t> ids;
    for (const auto &r : t)
        ids.push_back(r.id);
    CHECK(ids == std::vector<uint64_t>{a_id, b->id});

    SECTION("a REUSE for a flow without hello events still yields a finalized record")
    {
        const auto k2 = make_key(40002);
        t.on_event(end_event(k2, EXF_END_REUSE, 3, 120));
        CHECK(t.lookup(k2) == nullptr);
        const FlowRecord &last = *std::prev(t.end());
        CHECK(last.finalized);
        CHECK(last.has_counters);
        CHECK(last.hello == HelloState::none);
    }
    SECTION("a new ISN on a tracked key without REUSE restarts the flow")
    {
        chunk(t, k, 5555, first, 0, first.size());
        const FlowRecord *c = t.lookup(k);
        REQUIRE(c != nullptr);
        CHECK(c != b);
        CHECK(c->tls.sni == std::optional<std::string>("first.example"));
        CHECK(b->finalized);
        CHECK(b->has_anomaly("flow_restarted"));
        CHECK(t.anomaly_count("flow_restarted") == 1);
    }
}

TEST_CASE("flow tracker: the record bound evicts the oldest and counts it", "[pipeline][tracker]")
{
    FlowTrackerOptions o;
    o.max_flows = 4;
    FlowTracker t(o);
    std::vector<uint64_t> evicted;
    t.set_on_evict([&](const FlowRecord &r) { evicted.push_back(r.id); });
    const Bytes rec = HelloBuilder::browser_like().record();
    for (uint16_t p = 1; p <= 10; p++)
        chunk(t, make_key(p), 0, rec, 0, 600);  // pending: reassembly state held too
    CHECK(t.size() == 4);
    CHECK(t.active() == 4);
    CHECK(t.stats().evicted == 6);
    CHECK(evicted == std::vector<uint64_t>{1, 2, 3, 4, 5, 6});
    for (uint16_t p = 1; p <= 6; p++)
        CHECK(t.lookup(make_key(p)) == nullptr);
    for (uint16_t p = 7; p <= 10; p++) {
        REQUIRE(t.lookup(make_key(p)) != nullptr);
        chunk(t, make_key(p), 0, rec, 600, rec.size());
        CHECK(t.lookup(make_key(p))->hello == HelloState::done);
    }
    // Finalized records count toward the bound too.
    for (uint16_t p = 7; p <= 10; p++)
        t.on_event(end_event(make_key(p), EXF_END_REUSE, 1, 1));
    CHECK(t.active() == 0);
    CHECK(t.size() == 4);
    chunk(t, make_key(11), 0, rec, 0, rec.size());
    CHECK(t.size() == 4);
    CHECK(t.active() == 1);
    CHECK(t.stats().evicted == 7);
}

namespace {

// Stands in for the QUIC Initial decryption stage: the "datagrams" carry a
// bare handshake message in the clear.
class FakeQuicDecoder final : public exf::QuicHelloDecoder {
public:
    Status add(uint32_t, std::span<const uint8_t> dgram) override
    {
        if (dgram.size() == 1 && dgram[0] == 0xee) {
            why_ = "quic_decrypt_failed";
            return Status::failed;
        }
        auto r = exf::tls::parse_client_hello_handshake(dgram, hello_);
        return r.complete() ? Status::done : Status::need_more;
    }
    const exf::tls::ClientHello &hello() const override { return hello_; }
    std::string_view failure() const override { return why_; }

private:
    exf::tls::ClientHello hello_;
    std::string why_;
};

}  // namespace

TEST_CASE("flow tracker: QUIC flows are transport quic and the decoder seam fills them in",
          "[pipeline][tracker]")
{
    const auto k = make_key(50000, 17);
    const Bytes initial(1200, 0xc3);
    SECTION("without a decoder: transport only")
    {
        FlowTracker t;
        t.set_quic_decoder(nullptr);
        t.on_event(hello_event(k, 0, 0, initial));
        t.on_event(hello_event(k, 1, 0, initial));
        const FlowRecord *r = t.lookup(k);
        REQUIRE(r != nullptr);
        CHECK(r->transport() == "quic");
        CHECK(r->hello == HelloState::none);
        CHECK_FALSE(r->tls.known);
        CHECK(r->hello_events == 2);
        t.finish();
        CHECK(t.anomalies().empty());
    }
    SECTION("with a decoder")
    {
        FlowTracker t;
        t.set_quic_decoder([](const FlowRecord &) { return std::make_unique<FakeQuicDecoder>(); });
        int calls = 0;
        t.set_on_tls_meta([&](const FlowRecord &) { calls++; });
        const Bytes hs = HelloBuilder()
                             .sni("quic.example")
                             .alpn({"h3"})
                             .supported_versions({0x0304})
                             .handshake();
        t.on_event(hello_event(k, 0, 0, hs));
        const FlowRecord *r = t.lookup(k);
        REQUIRE(r != nullptr);
        CHECK(r->hello == HelloState::done);
        CHECK(calls == 1);
        CHECK(r->tls.sni == std::optional<std::string>("quic.example"));
        CHECK(r->tls.ja4.rfind("q13d", 0) == 0);
        CHECK(r->tls.tls_version == "1.3");

        const auto k2 = make_key(50001, 17);
        t.on_event(hello_event(k2, 0, 0, Bytes{0xee}));
        CHECK(t.lookup(k2)->hello == HelloState::malformed);
        CHECK(t.anomaly_count("quic_decrypt_failed") == 1);
    }
}

TEST_CASE("flow tracker: TLS version names and the highest offered version", "[pipeline][tracker]")
{
    using exf::highest_tls_version;
    using exf::tls_version_name;
    CHECK(tls_version_name(0x0304) == "1.3");
    CHECK(tls_version_name(0x0303) == "1.2");
    CHECK(tls_version_name(0x0302) == "1.1");
    CHECK(tls_version_name(0x0301) == "1.0");
    CHECK(tls_version_name(0x0300) == "ssl3");
    CHECK(tls_version_name(0x7f1c) == "1.3-draft-28");
    CHECK(tls_version_name(0x1234) == "0x1234");
    const std::vector<uint16_t> chrome{0x3a3a, 0x0304, 0x0303};
    CHECK(highest_tls_version(chrome) == 0x0304);
    const std::vector<uint16_t> draft{0x7f1c, 0x0303, 0x0302};
    CHECK(highest_tls_version(draft) == 0x7f1c);
    const std::vector<uint16_t> both{0x7f1c, 0x0304};
    CHECK(highest_tls_version(both) == 0x0304);
    const std::vector<uint16_t> odd{0x1234, 0x0301};
    CHECK(highest_tls_version(odd) == 0x0301);
    const std::vector<uint16_t> grease{0x0a0a};
    CHECK(highest_tls_version(grease) == 0);

    // A TLS 1.2 client without supported_versions: its legacy_version.
    FlowTracker t;
    const Bytes rec = HelloBuilder().legacy_version(0x0302).sni("old.example").record();
    chunk(t, make_key(3), 0, rec, 0, rec.size());
    REQUIRE(t.lookup(make_key(3)) != nullptr);
    CHECK(t.lookup(make_key(3))->tls.tls_version == "1.1");
    CHECK(t.lookup(make_key(3))->tls.versions == std::vector<uint16_t>{0x0302});
}
