// SPDX-License-Identifier: Apache-2.0
// Unit tests of the real tc program through BPF_PROG_TEST_RUN: frames built
// here go through exf_tc_ingress; assertions are on the flow and client
// maps, the health counters and the ring buffer events.
#include <catch2/catch.hpp>

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "capture/bpf_sensor.h"
#include "capture/events.h"
#include "capture/maps.h"
#include "capture/test_run.h"
#include "common/addr.h"
#include "support/packet_builder.h"
#include "support/test_env.h"

using namespace exf;
using namespace exf::test;

namespace {

// TC_ACT_UNSPEC: the packet goes on to other filters and is delivered.
constexpr uint32_t kPass = uint32_t(-1);

struct Event {
    exf_event_hdr hdr;
    uint32_t seq = 0, offset = 0;
    Bytes data;
    exf_flow flow{};
    size_t record_size = 0;  // the ring buffer record's size
};

class Harness {
public:
    explicit Harness(SensorOptions o = {})
        : sensor_(make(o)),
          reader_(sensor_.events_fd(), [this](std::span<const uint8_t> b) { on_event(b); })
    {}

    // Runs one frame; returns the program's verdict.
    uint32_t send(const Bytes &frame, uint32_t gso_segs = 0, int prog = 0)
    {
        TestRunOptions o;
        o.gso_segs = gso_segs;
        o.tstamp_ns = ++clock_ * 1000;
        auto r = run_tc_program(prog ? sensor_.egress_fd() : sensor_.ingress_fd(), frame, o);
        REQUIRE(r.err == 0);
        reader_.drain();
        return r.retval;
    }
    uint32_t send(const FrameSpec &s, uint32_t gso_segs = 0)
    {
        return send(build_frame(s), gso_segs);
    }

    std::optional<exf_flow> flow_of(const FrameSpec &s)
    {
        for (auto &r : sensor_.tables().flows) {
            bool a = format_addr(r.key.lo_addr) == s.src && r.key.lo_port == s.sport &&
                     format_addr(r.key.hi_addr) == s.dst && r.key.hi_port == s.dport;
            bool b = format_addr(r.key.hi_addr) == s.src && r.key.hi_port == s.sport &&
                     format_addr(r.key.lo_addr) == s.dst && r.key.lo_port == s.dport;
            if (a || b)
                return r.flow;
        }
        return std::nullopt;
    }
    size_t flow_count() { return sensor_.tables().flows.size(); }
    std::optional<exf_client_stats> client(const std::string &addr)
    {
        for (auto &r : sensor_.tables().clients)
            if (format_addr(r.key.addr) == addr)
                return r.stats;
        return std::nullopt;
    }
    size_t client_count() { return sensor_.tables().clients.size(); }
    HealthCounters health() { return read_health(sensor_.health_fd()); }
    // The raw flow table and flow cache (without folding).
    std::vector<FlowRow> raw_flows() { return read_flows(sensor_.flows_fd()); }
    std::vector<exf_fc_slot> cache() { return read_fcache(sensor_.fcache_fd()); }
    // Moves packet time on (the flow cache's tick is 2^22 ns of it).
    void advance_ns(uint64_t ns) { clock_ += ns / 1000; }
    std::vector<Event> &events() { return events_; }
    std::vector<Event> events_of(uint16_t type)
    {
        std::vector<Event> out;
        for (auto &e : events_)
            if (e.hdr.type == type)
                out.push_back(e);
        return out;
    }

private:
    static SensorOptions make(SensorOptions o)
    {
        o.packet_time = true;
        o.flow_table_size = std::max<uint32_t>(o.flow_table_size, 4096);
        return o;
    }
    void on_event(std::span<const uint8_t> b)
    {
        Event e{};
        e.record_size = b.size();
        REQUIRE(b.size() >= sizeof(exf_event_hdr));
        std::memcpy(&e.hdr, b.data(), sizeof(e.hdr));
        if (e.hdr.type == EXF_EV_HELLO) {
            REQUIRE(b.size() >= EXF_HELLO_EVENT_HDR_SIZE + e.hdr.len);
            std::memcpy(&e.seq, b.data() + 56, 4);
            std::memcpy(&e.offset, b.data() + 60, 4);
            e.data.assign(b.begin() + EXF_HELLO_EVENT_HDR_SIZE,
                          b.begin() + EXF_HELLO_EVENT_HDR_SIZE + e.hdr.len);
        } else if (e.hdr.type == EXF_EV_FLOW_END) {
            REQUIRE(b.size() >= sizeof(exf_flow_end_event));
            std::memcpy(&e.flow, b.data() + offsetof(exf_flow_end_event, flow), sizeof(e.flow));
        }
        events_.push_back(std::move(e));
    }
    CpuPin pin_;  // one CPU: its flow cache sees every packet of the test
    BpfSensor sensor_;
    EventReader reader_;
    std::vector<Event> events_;
    uint64_t clock_ = 0;
};

// IP-level size of a built frame (no VLAN): for IPv4 the total length.
uint64_t ip_bytes(const Bytes &f, size_t l2 = 14) { return f.size() - l2; }

// A complete TLS-over-TCP exchange; returns the IP bytes sent each way.
struct Exchange {
    uint64_t pkts_in = 0, pkts_out = 0, bytes_in = 0, bytes_out = 0;
};

// SYN, SYN-ACK, ACK and a ClientHello: the flow is steady (hello done).
// Returns the IP bytes sent each way.
Exchange open_tls(Harness &h, FrameSpec c, const Bytes &hello = client_hello(517))
{
    Exchange x;
    FrameSpec s = reverse(c);
    auto fr = [&](FrameSpec f, bool in) {
        auto b = build_frame(f);
        REQUIRE(h.send(b) == kPass);  // a sensor never drops nor decides
        (in ? x.pkts_in : x.pkts_out)++;
        (in ? x.bytes_in : x.bytes_out) += ip_bytes(b, 14 + 4 * f.vlans.size());
    };
    c.tcp_flags = SYN;
    c.seq = 1000;
    fr(c, true);
    s.tcp_flags = SYN | ACK;
    s.seq = 5000;
    s.ack = 1001;
    fr(s, false);
    c.tcp_flags = ACK;
    c.seq = 1001;
    fr(c, true);
    c.tcp_flags = PSH | ACK;
    c.payload = hello;
    fr(c, true);
    return x;
}

// open_tls(), a response of response_len bytes, then FIN both ways (or a
// client RST).
Exchange run_tcp_session(Harness &h, FrameSpec c, const Bytes &hello, size_t response_len,
                         bool close_with_rst = false)
{
    Exchange x = open_tls(h, c, hello);
    FrameSpec s = reverse(c);
    s.ack = 1001;  // as in the SYN-ACK
    auto send_c = [&](FrameSpec f) {
        auto fr = build_frame(f);
        REQUIRE(h.send(fr) == kPass);
        x.pkts_in++;
        x.bytes_in += ip_bytes(fr, 14 + 4 * f.vlans.size());
    };
    auto send_s = [&](FrameSpec f) {
        auto fr = build_frame(f);
        REQUIRE(h.send(fr) == kPass);
        x.pkts_out++;
        x.bytes_out += ip_bytes(fr, 14 + 4 * f.vlans.size());
    };
    c.payload.clear();
    s.tcp_flags = ACK;
    s.seq = 5001;
    s.payload.assign(response_len, 0x17);
    send_s(s);
    s.payload.clear();
    if (close_with_rst) {
        c.tcp_flags = RST;
        c.seq = uint32_t(1001 + hello.size());
        send_c(c);
        return x;
    }
    c.tcp_flags = FIN | ACK;
    c.seq = uint32_t(1001 + hello.size());
    send_c(c);
    s.tcp_flags = FIN | ACK;
    s.seq = uint32_t(5001 + response_len);
    send_s(s);
    c.tcp_flags = ACK;
    c.seq++;
    send_c(c);
    return x;
}

}  // namespace

TEST_CASE("IPv4 TLS session on 443 fills flow and client maps and sends events", "[bpf]")
{
    if (!require_root())
        return;
    Harness h;
    FrameSpec c;
    c.src = "192.0.2.10";
    c.dst = "198.51.100.1";
    auto hello = client_hello(517);
    auto x = run_tcp_session(h, c, hello, 1200);

    auto f = h.flow_of(c);
    REQUIRE(f);
    CHECK(f->kind == EXF_KIND_TLS);
    unsigned in = flow_in_dir(*f);
    CHECK(f->pkts[in] == x.pkts_in);
    CHECK(f->pkts[in ^ 1] == x.pkts_out);
    CHECK(f->bytes[in] == x.bytes_in);
    CHECK(f->bytes[in ^ 1] == x.bytes_out);
    CHECK((f->flags & EXF_FF_CLOSED));
    CHECK((f->flags & EXF_FF_HELLO_DONE));
    uint32_t seen_in = f->tcp_seen >> (8 * in), seen_out = f->tcp_seen >> (8 * (in ^ 1));
    CHECK((seen_in & (EXF_TCP_SYN | EXF_TCP_FIN | EXF_TCP_ACK)) ==
          (EXF_TCP_SYN | EXF_TCP_FIN | EXF_TCP_ACK));
    CHECK((seen_out & EXF_TCP_SYNACK));
    CHECK_FALSE((f->tcp_seen & (EXF_TCP_RST | EXF_TCP_RST << 8)));

    auto cs = h.client("192.0.2.10");
    REQUIRE(cs);
    CHECK(cs->tls_flows_opened == 1);
    CHECK(cs->tls_flows_closed == 1);
    CHECK(cs->pkts_in == x.pkts_in);
    CHECK(cs->pkts_out == x.pkts_out);
    CHECK(cs->bytes_in == x.bytes_in);
    CHECK(cs->bytes_out == x.bytes_out);
    CHECK(h.client_count() == 1);  // the server is never a client

    auto hellos = h.events_of(EXF_EV_HELLO);
    REQUIRE(hellos.size() == 1);
    CHECK(hellos[0].offset == 0);
    CHECK(hellos[0].seq == 1001);
    CHECK(hellos[0].data == hello);
    // The common padded 517 B hello takes a small event, not a 2 KiB one.
    CHECK(hellos[0].record_size == EXF_HELLO_EVENT_HDR_SIZE + EXF_CHUNK_SMALL);
    CHECK(hellos[0].hdr.client == f->client);
    auto ends = h.events_of(EXF_EV_FLOW_END);
    REQUIRE(ends.size() == 1);
    CHECK(ends[0].hdr.reason == EXF_END_FIN);
    CHECK(ends[0].flow.bytes[in] == x.bytes_in - 40);  // the last ACK follows the close

    auto hc = h.health();
    CHECK(hc[EXF_C_PACKETS] == x.pkts_in + x.pkts_out);
    CHECK(hc[EXF_C_BYTES] == x.bytes_in + x.bytes_out);
    CHECK(hc[EXF_C_TLS_FLOWS] == 1);
    CHECK(hc[EXF_C_FLOW_NEW] == 1);
    CHECK(hc[EXF_C_HELLO_EVENTS] == 1);
    CHECK(hc[EXF_C_END_EVENTS] == 1);
    CHECK(hc[EXF_C_RB_FULL] == 0);
}

namespace {

// The program's flow cache slot index (datapath.h exf_fc_index), computed
// here independently to build colliding flows.
uint32_t fc_index(const exf_flow_key &k)
{
    uint64_t w[5];
    std::memcpy(w, &k, sizeof(w));
    uint64_t x = (w[0] ^ w[1]) * 0x9E3779B97F4A7C15ull;
    x = (x ^ w[2] ^ w[3]) * 0x9E3779B97F4A7C15ull;
    x = (x ^ w[4]) * 0x9E3779B97F4A7C15ull;
    return uint32_t(x >> EXF_FC_SHIFT);
}

exf_flow_key key_of(const FrameSpec &s)
{
    exf_flow_key k{};
    auto a = *parse_addr(s.src), b = *parse_addr(s.dst);
    // The program's order: the address as two native 64-bit words, then the port.
    uint64_t wa[2], wb[2];
    std::memcpy(wa, a.data(), 16);
    std::memcpy(wb, b.data(), 16);
    bool a_lo = wa[0] != wb[0] ? wa[0] < wb[0] : wa[1] != wb[1] ? wa[1] < wb[1] : s.sport < s.dport;
    std::memcpy(k.lo_addr, a_lo ? a.data() : b.data(), 16);
    std::memcpy(k.hi_addr, a_lo ? b.data() : a.data(), 16);
    k.lo_port = a_lo ? s.sport : s.dport;
    k.hi_port = a_lo ? s.dport : s.sport;
    k.proto = s.proto;
    return k;
}

// n server-to-client data segments of len bytes; returns their IP bytes.
uint64_t send_data(Harness &h, const FrameSpec &c, int n, size_t len = 1000)
{
    FrameSpec s = reverse(c);
    s.tcp_flags = ACK;
    s.payload.assign(len, 0x17);
    uint64_t bytes = 0;
    for (int i = 0; i < n; i++) {
        s.seq = uint32_t(5001 + i * len);
        auto b = build_frame(s);
        REQUIRE(h.send(b) == kPass);
        bytes += ip_bytes(b);
    }
    return bytes;
}

uint64_t raw_bytes_out(Harness &h, const exf_flow_key &k)
{
    for (auto &r : h.raw_flows())
        if (std::memcmp(&r.key, &k, sizeof(k)) == 0)
            return r.flow.bytes[flow_in_dir(r.flow) ^ 1];
    return 0;
}

}  // namespace

TEST_CASE("A hello event is small up to EXF_CHUNK_SMALL bytes and large above", "[bpf]")
{
    // Ring buffer space per flow: a small event holds the common hellos
    // (517 B padded, most below 640 B); a larger first segment takes the
    // 2 KiB event. Both carry the bytes exactly.
    if (!require_root())
        return;
    for (size_t len : {size_t(250), size_t(517), size_t(EXF_CHUNK_SMALL),
                       size_t(EXF_CHUNK_SMALL + 1), size_t(1400)}) {
        DYNAMIC_SECTION("hello of " << len << " bytes")
        {
            Harness h;
            FrameSpec c;
            c.src = "192.0.2.10";
            c.dst = "198.51.100.1";
            auto hello = client_hello(len);
            REQUIRE(hello.size() == len);
            run_tcp_session(h, c, hello, 100);
            auto hellos = h.events_of(EXF_EV_HELLO);
            REQUIRE(hellos.size() == 1);
            CHECK(hellos[0].data == hello);
            size_t cap = len <= EXF_CHUNK_SMALL ? EXF_CHUNK_SMALL : EXF_CHUNK_MAX;
            CHECK(hellos[0].record_size == EXF_HELLO_EVENT_HDR_SIZE + cap);
        }
    }
}

TEST_CASE(
    "Steady flows are counted in the per-CPU flow cache and readers and flushes add it exactly",
    "[bpf]")
{
    if (!require_root())
        return;
    Harness h;
    FrameSpec c;
    c.src = "192.0.2.20";
    c.dst = "198.51.100.1";
    c.sport = 41000;
    auto key = key_of(c);
    auto x = open_tls(h, c);
    // The server's handshake flight: it moves the flow's turn (a request
    // count change takes the slow path); the server's data below does not.
    {
        FrameSpec s = reverse(c);
        s.tcp_flags = PSH | ACK;
        s.seq = 4001;
        s.payload.assign(1200, 0x16);
        auto b = build_frame(s);
        REQUIRE(h.send(b) == kPass);
        x.pkts_out++;
        x.bytes_out += ip_bytes(b);
    }
    // The hello made the flow steady: it is installed in its slot.
    auto slots = h.cache();
    REQUIRE(slots.size() == 1);
    CHECK(std::memcmp(&slots[0].key, &key, sizeof(key)) == 0);
    CHECK(slots[0].kind == EXF_KIND_TLS);
    CHECK((slots[0].pkts[0] | slots[0].pkts[1]) == 0);
    uint64_t before = raw_bytes_out(h, key);

    // Within the tick: counted in the slot only, not in the table...
    uint64_t out1 = send_data(h, c, 10);
    slots = h.cache();
    REQUIRE(slots.size() == 1);
    unsigned out_dir = slots[0].client == EXF_CLIENT_LO ? EXF_CDIR_HI_TO_LO : EXF_CDIR_LO_TO_HI;
    CHECK(slots[0].pkts[out_dir] == 10);
    CHECK(slots[0].bytes[out_dir] == out1);
    CHECK(raw_bytes_out(h, key) == before);
    // ... and readers see it exactly.
    auto cs = h.client(c.src);
    REQUIRE(cs);
    CHECK(cs->pkts_out == x.pkts_out + 10);
    CHECK(cs->bytes_out == x.bytes_out + out1);
    CHECK(cs->pkts_in == x.pkts_in);
    CHECK(cs->first_ns > 0);
    auto f = h.flow_of(c);
    REQUIRE(f);
    CHECK(f->bytes[out_dir] == x.bytes_out + out1);

    // The first packet of a later tick moves the pending counts to the tables.
    h.advance_ns(5'000'000);
    uint64_t out2 = send_data(h, c, 1);
    CHECK(raw_bytes_out(h, key) == x.bytes_out + out1 + out2);
    slots = h.cache();
    REQUIRE(slots.size() == 1);
    CHECK((slots[0].pkts[0] | slots[0].pkts[1]) == 0);  // installed again, empty
    uint64_t out3 = send_data(h, c, 3);
    cs = h.client(c.src);
    REQUIRE(cs);
    CHECK(cs->bytes_out == x.bytes_out + out1 + out2 + out3);

    // A FIN takes the slow path: the end event holds every packet before it.
    FrameSpec s = reverse(c);
    s.tcp_flags = FIN | ACK;
    s.seq = 9000;
    auto fin_s = build_frame(s);
    REQUIRE(h.send(fin_s) == kPass);
    FrameSpec cf = c;
    cf.tcp_flags = FIN | ACK;
    cf.seq = 1518;
    auto fin_c = build_frame(cf);
    REQUIRE(h.send(fin_c) == kPass);
    auto ends = h.events_of(EXF_EV_FLOW_END);
    REQUIRE(ends.size() == 1);
    CHECK(ends[0].flow.bytes[out_dir] == x.bytes_out + out1 + out2 + out3 + ip_bytes(fin_s));
    CHECK(ends[0].flow.bytes[out_dir ^ 1] == x.bytes_in + ip_bytes(fin_c));
    CHECK(h.cache().empty());  // a closed flow is not cached
    cs = h.client(c.src);
    REQUIRE(cs);
    CHECK(cs->tls_flows_closed == 1);
    CHECK(cs->bytes_out == x.bytes_out + out1 + out2 + out3 + ip_bytes(fin_s));
}

TEST_CASE("Two flows sharing a flow cache slot are both counted exactly", "[bpf]")
{
    if (!require_root())
        return;
    Harness h;
    FrameSpec a;
    a.src = "192.0.2.21";
    a.dst = "198.51.100.1";
    a.sport = 42000;
    FrameSpec b = a;
    b.src = "192.0.2.22";
    for (b.sport = 42000; fc_index(key_of(b)) != fc_index(key_of(a)); b.sport++)
        REQUIRE(b.sport < 65000);
    auto ka = key_of(a), kb = key_of(b);
    auto xa = open_tls(h, a);
    auto xb = open_tls(h, b);  // same tick: the slot stays a's
    uint64_t oa = send_data(h, a, 5), ob = send_data(h, b, 7);
    auto slots = h.cache();
    REQUIRE(slots.size() == 1);
    CHECK(std::memcmp(&slots[0].key, &ka, sizeof(ka)) == 0);
    CHECK(raw_bytes_out(h, kb) == xb.bytes_out + ob);  // b went the slow path
    // Next tick: b's first packet flushes a's stale slot and takes it.
    h.advance_ns(5'000'000);
    ob += send_data(h, b, 2);
    slots = h.cache();
    REQUIRE(slots.size() == 1);
    CHECK(std::memcmp(&slots[0].key, &kb, sizeof(kb)) == 0);
    CHECK(raw_bytes_out(h, ka) == xa.bytes_out + oa);
    ob += send_data(h, b, 4);
    oa += send_data(h, a, 3);  // a now goes the slow path
    auto ca = h.client(a.src), cb = h.client(b.src);
    REQUIRE(ca);
    REQUIRE(cb);
    CHECK(ca->bytes_out == xa.bytes_out + oa);
    CHECK(cb->bytes_out == xb.bytes_out + ob);
    CHECK(ca->pkts_out == xa.pkts_out + 8);
    CHECK(cb->pkts_out == xb.pkts_out + 13);
    CHECK(h.health()[EXF_C_PACKETS] == xa.pkts_in + xa.pkts_out + xb.pkts_in + xb.pkts_out + 21);
}

TEST_CASE("RST closes a TLS flow and a new SYN on the 5-tuple starts a new one", "[bpf]")
{
    if (!require_root())
        return;
    Harness h;
    FrameSpec c;
    auto x1 = run_tcp_session(h, c, client_hello(300), 100, true);
    auto ends = h.events_of(EXF_EV_FLOW_END);
    REQUIRE(ends.size() == 1);
    CHECK(ends[0].hdr.reason == EXF_END_RST);
    auto x2 = run_tcp_session(h, c, client_hello(300), 200);
    ends = h.events_of(EXF_EV_FLOW_END);
    REQUIRE(ends.size() == 3);
    CHECK(ends[1].hdr.reason == EXF_END_REUSE);
    CHECK(ends[1].hdr.was_closed == 1);
    unsigned in = flow_in_dir(ends[1].flow);
    CHECK(ends[1].flow.bytes[in] == x1.bytes_in);
    CHECK(ends[1].flow.bytes[in ^ 1] == x1.bytes_out);
    CHECK(ends[2].hdr.reason == EXF_END_FIN);
    auto f = h.flow_of(c);
    REQUIRE(f);
    CHECK(f->bytes[flow_in_dir(*f) ^ 1] == x2.bytes_out);
    auto cs = h.client(c.src);
    REQUIRE(cs);
    CHECK(cs->tls_flows_opened == 2);
    CHECK(cs->tls_flows_closed == 2);
    CHECK(cs->bytes_out == x1.bytes_out + x2.bytes_out);
    CHECK(h.health()[EXF_C_FLOW_REUSE] == 1);
}

TEST_CASE("IPv6 extension headers and one or two VLAN tags are parsed", "[bpf]")
{
    if (!require_root())
        return;
    struct Case {
        const char *name;
        FrameSpec spec;
    };
    std::vector<Case> cases;
    {
        FrameSpec s;
        s.src = "2001:db8::10";
        s.dst = "2001:db8:1::1";
        s.v6ext = {{0, Bytes(4, 0)}, {43, Bytes(14, 0)}, {60, Bytes(6, 0)}, {44, {}, 0, false}};
        cases.push_back({"IPv6 hop-by-hop, routing, dest-opts, atomic fragment", s});
    }
    {
        FrameSpec s;
        s.src = "2001:db8::11";
        s.dst = "2001:db8:1::1";
        s.v6ext = {{51, Bytes(12, 0)}};
        cases.push_back({"IPv6 AH", s});
    }
    {
        FrameSpec s;
        s.src = "203.0.113.5";
        s.vlans = {{0x8100, 100}};
        cases.push_back({"IPv4 one 802.1Q tag", s});
    }
    {
        FrameSpec s;
        s.src = "2001:db8::12";
        s.dst = "2001:db8:1::1";
        s.vlans = {{0x88a8, 10}, {0x8100, 20}};
        cases.push_back({"IPv6 QinQ 802.1ad + 802.1Q", s});
    }
    {
        FrameSpec s;
        s.src = "203.0.113.6";
        s.ip_options = {0x94, 0x04, 0, 0, 0x01, 0x01, 0x01, 0x00};  // router alert + NOPs
        cases.push_back({"IPv4 with options", s});
    }
    for (auto &cs : cases) {
        SECTION(cs.name)
        {
            Harness h;
            auto hello = client_hello(400);
            auto x = run_tcp_session(h, cs.spec, hello, 1000);
            auto st = h.client(cs.spec.src);
            REQUIRE(st);
            CHECK(st->tls_flows_opened == 1);
            CHECK(st->bytes_in == x.bytes_in);
            CHECK(st->bytes_out == x.bytes_out);
            CHECK(st->pkts_in == x.pkts_in);
            auto hellos = h.events_of(EXF_EV_HELLO);
            REQUIRE(hellos.size() == 1);
            CHECK(hellos[0].data == hello);
            auto hc = h.health();
            for (unsigned i = EXF_C_NOT_IP; i <= EXF_C_OTHER_L4; i++)
                CHECK(hc[i] == 0);
        }
    }
}

TEST_CASE("ClientHello on a non-TLS port makes a TLS flow but other payloads do not", "[bpf]")
{
    if (!require_root())
        return;
    Harness h;
    FrameSpec c;
    c.dport = 4433;
    auto x = run_tcp_session(h, c, client_hello(350), 800);
    auto st = h.client(c.src);
    REQUIRE(st);
    CHECK(st->tls_flows_opened == 1);
    // Everything before the ClientHello (SYN, SYN-ACK, ACK) is attributed too.
    CHECK(st->pkts_in == x.pkts_in);
    CHECK(st->bytes_in == x.bytes_in);
    CHECK(st->bytes_out == x.bytes_out);

    FrameSpec p;
    p.src = "192.0.2.77";
    p.dport = 8080;
    Bytes get = {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '/', '1', '.', '1', '\r', '\n'};
    run_tcp_session(h, p, get, 500);
    CHECK_FALSE(h.client("192.0.2.77"));
    auto f = h.flow_of(p);
    REQUIRE(f);
    CHECK(f->kind == EXF_KIND_OTHER);
    CHECK(h.health()[EXF_C_TLS_FLOWS] == 1);
}

TEST_CASE("Non-TLS traffic on a TLS port counts as a TLS flow by port", "[bpf]")
{
    if (!require_root())
        return;
    Harness h;
    FrameSpec c;
    c.src = "192.0.2.20";
    c.dport = 8443;
    Bytes get(100, 'G');
    auto x = run_tcp_session(h, c, get, 300);
    auto st = h.client(c.src);
    REQUIRE(st);
    CHECK(st->tls_flows_opened == 1);
    CHECK(st->bytes_out == x.bytes_out);
    auto hellos = h.events_of(EXF_EV_HELLO);
    REQUIRE(hellos.size() == 1);  // a peek, for userspace to name the anomaly
    CHECK(hellos[0].data.size() == EXF_NON_HELLO_PEEK);
}

TEST_CASE("Configured TLS ports replace the defaults", "[bpf]")
{
    if (!require_root())
        return;
    SensorOptions o;
    o.tls_ports = {9443};
    Harness h(o);
    FrameSpec a;
    a.src = "192.0.2.30";
    a.dport = 443;
    run_tcp_session(h, a, Bytes(50, 'x'), 100);
    FrameSpec b;
    b.src = "192.0.2.31";
    b.dport = 9443;
    run_tcp_session(h, b, Bytes(50, 'x'), 100);
    CHECK_FALSE(h.client("192.0.2.30"));
    REQUIRE(h.client("192.0.2.31"));
}

TEST_CASE("A ClientHello split over segments in and out of order", "[bpf]")
{
    if (!require_root())
        return;
    auto hello = client_hello(1850);  // post-quantum sized
    for (bool reorder : {false, true}) {
        DYNAMIC_SECTION((reorder ? "second segment first" : "in order"))
        {
            Harness h;
            FrameSpec c;
            c.tcp_flags = SYN;
            c.seq = 7000;
            h.send(c);
            FrameSpec s = reverse(c);
            s.tcp_flags = SYN | ACK;
            s.ack = 7001;
            h.send(s);
            FrameSpec p1 = c, p2 = c;
            p1.tcp_flags = p2.tcp_flags = ACK | PSH;
            p1.seq = 7001;
            p1.payload.assign(hello.begin(), hello.begin() + 1400);
            p2.seq = 7001 + 1400;
            p2.payload.assign(hello.begin() + 1400, hello.end());
            if (reorder) {
                h.send(p2);
                h.send(p1);
            } else {
                h.send(p1);
                h.send(p2);
            }
            // A later data segment is not sent to userspace.
            FrameSpec p3 = c;
            p3.tcp_flags = ACK | PSH;
            p3.seq = 7001 + uint32_t(hello.size());
            p3.payload.assign(100, 0x17);
            h.send(p3);
            auto hellos = h.events_of(EXF_EV_HELLO);
            REQUIRE(hellos.size() == 2);
            Bytes joined(hello.size());
            for (auto &e : hellos) {
                REQUIRE(e.offset + e.data.size() <= joined.size());
                CHECK(e.seq == 7001 + e.offset);
                std::copy(e.data.begin(), e.data.end(), joined.begin() + e.offset);
            }
            CHECK(joined == hello);
            auto f = h.flow_of(c);
            REQUIRE(f);
            CHECK(f->hello_target == hello.size());
            // In order, the contiguous coverage reaches the target and the
            // flow stops looking; out of order it stops after
            // EXF_HELLO_MAX_SEGS client segments at most.
            if (!reorder)
                CHECK((f->flags & EXF_FF_HELLO_DONE));
        }
    }
}

TEST_CASE("A GRO/GSO super-packet counts its wire segments and bytes", "[bpf]")
{
    if (!require_root())
        return;
    Harness h;
    FrameSpec c;
    c.src = "192.0.2.40";
    c.tcp_flags = SYN;
    h.send(c);
    FrameSpec s = reverse(c);
    s.tcp_flags = ACK;
    s.tcp_option_words = 3;  // 32-byte TCP header, as with timestamps
    // Two 1448-byte segments (a test run takes one page at most).
    s.payload.assign(2 * 1448, 0x17);
    auto before = h.client(c.src);
    REQUIRE(before);
    h.send(build_frame(s), 2);
    auto after = h.client(c.src);
    REQUIRE(after);
    CHECK(after->pkts_out - before->pkts_out == 2);
    CHECK(after->bytes_out - before->bytes_out == 2 * (20 + 32 + 1448));
}

TEST_CASE("QUIC: a long-header first datagram on a TLS port makes a QUIC flow", "[bpf]")
{
    if (!require_root())
        return;
    Harness h;
    FrameSpec q;
    q.proto = 17;
    q.src = "2001:db8::50";
    q.dst = "2001:db8:1::1";
    q.sport = 50000;
    q.dport = 443;
    for (int i = 0; i < 6; i++) {
        q.payload = quic_initial(1250);
        h.send(q);
    }
    FrameSpec r = reverse(q);
    r.payload = quic_initial(1200);
    h.send(r);
    auto st = h.client(q.src);
    REQUIRE(st);
    CHECK(st->tls_flows_opened == 1);
    CHECK(st->pkts_in == 6);
    CHECK(st->pkts_out == 1);
    CHECK(st->bytes_in == 6 * (40 + 8 + 1250));
    auto hellos = h.events_of(EXF_EV_HELLO);
    REQUIRE(hellos.size() == EXF_QUIC_MAX_DGRAMS);
    for (unsigned i = 0; i < hellos.size(); i++) {
        CHECK(hellos[i].seq == i);
        CHECK(hellos[i].data == q.payload);
        CHECK(hellos[i].hdr.kind == EXF_KIND_QUIC);
    }
    CHECK(h.health()[EXF_C_QUIC_FLOWS] == 1);

    SECTION("short header first, other ports, version 0 are not QUIC flows")
    {
        FrameSpec s = q;
        s.src = "2001:db8::51";
        s.payload = Bytes(100, 0x40);  // short header
        h.send(s);
        FrameSpec vn = q;
        vn.src = "2001:db8::52";
        vn.payload = quic_initial(1200, 0);  // version negotiation shape
        h.send(vn);
        FrameSpec dns = q;
        dns.src = "2001:db8::53";
        dns.dport = 53;
        dns.payload = quic_initial(1200);
        h.send(dns);
        CHECK_FALSE(h.client("2001:db8::51"));
        CHECK_FALSE(h.client("2001:db8::52"));
        CHECK_FALSE(h.client("2001:db8::53"));
        CHECK_FALSE(h.flow_of(dns));  // UDP off the TLS ports is not tracked
    }
}

TEST_CASE("Flows first seen mid-stream take the side off the TLS port as client", "[bpf]")
{
    if (!require_root())
        return;
    Harness h;
    FrameSpec s;
    s.src = "198.51.100.1";
    s.sport = 443;
    s.dst = "203.0.113.9";
    s.dport = 51000;
    s.payload.assign(1000, 0x17);
    h.send(s);
    h.send(reverse(s));
    auto st = h.client("203.0.113.9");
    REQUIRE(st);
    CHECK(st->tls_flows_opened == 1);
    CHECK(st->pkts_out == 1);
    CHECK(st->pkts_in == 1);
    CHECK_FALSE(h.client("198.51.100.1"));
    auto f = h.flow_of(s);
    REQUIRE(f);
    CHECK((f->flags & EXF_FF_MIDSTREAM));

    // Off the TLS ports with no SYN: the ClientHello's sender is the client.
    FrameSpec m;
    m.src = "203.0.113.10";
    m.sport = 5555;
    m.dst = "198.51.100.2";
    m.dport = 6666;
    FrameSpec back = reverse(m);
    back.payload.clear();
    h.send(back);  // a bare ACK from the server first
    m.payload = client_hello(260);
    h.send(m);
    auto st2 = h.client("203.0.113.10");
    REQUIRE(st2);
    CHECK(st2->tls_flows_opened == 1);
    CHECK(st2->pkts_out == 1);
    CHECK(st2->pkts_in == 1);
}

TEST_CASE("Clients beyond the client table are evicted and the creations counted", "[bpf]")
{
    if (!require_root())
        return;
    SensorOptions o;
    o.client_table_size = 256;  // the smallest allowed
    Harness h(o);
    constexpr int kClients = 800;
    auto addr = [](int i) {
        return (i < 250   ? "203.0.113."
                : i < 500 ? "192.0.2."
                          : "198.51.100.") +
               std::to_string(i % 250 + 1);
    };
    // Twice round 800 clients, a SYN on 443 each (a TLS flow per SYN).
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < kClients; i++) {
            FrameSpec syn;
            syn.src = addr(i);
            syn.dst = "198.51.100.254";
            syn.sport = uint16_t(20000 + i + round * 1000);
            syn.tcp_flags = SYN;
            h.send(syn);
        }
    auto hc = h.health();
    uint64_t entries = h.client_count();
    CHECK(hc[EXF_C_TLS_FLOWS] == 2 * kClients);
    CHECK(hc[EXF_C_CLIENT_UPDATE_FAIL] == 0);
    CHECK(entries > 0);
    CHECK(entries <= 256);
    // Every client is created in the first round; in the second at most
    // the 256 the table can hold are still there: the others are created
    // again. Creations minus entries are the evictions.
    CHECK(hc[EXF_C_CLIENT_NEW] >= uint64_t(2 * kClients - 256));
    CHECK(hc[EXF_C_CLIENT_NEW] <= uint64_t(2 * kClients));
    CHECK(hc[EXF_C_CLIENT_NEW] - entries >= uint64_t(2 * kClients - 512));
    // The server side is never a client; a client that is kept counts once.
    CHECK_FALSE(h.client("198.51.100.254"));

    // A small set of clients that fits: each created exactly once.
    Harness few;
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < 10; i++) {
            FrameSpec syn;
            syn.src = "198.51.100." + std::to_string(100 + i);
            syn.sport = uint16_t(30000 + i + round * 100);
            syn.tcp_flags = SYN;
            few.send(syn);
        }
    CHECK(few.health()[EXF_C_CLIENT_NEW] == 10);
    CHECK(few.client_count() == 10);
}

TEST_CASE("Fragments and non-TCP/UDP pass untouched and are counted", "[bpf]")
{
    if (!require_root())
        return;
    Harness h;
    FrameSpec frag;
    frag.frag_off = 185;  // a non-first IPv4 fragment
    frag.payload.assign(64, 1);
    CHECK(h.send(frag) == kPass);
    FrameSpec frag6;
    frag6.src = "2001:db8::60";
    frag6.dst = "2001:db8:1::1";
    frag6.v6ext = {{44, {}, 100, false}};
    CHECK(h.send(frag6) == kPass);
    FrameSpec icmp;
    icmp.proto = 1;
    icmp.payload.assign(64, 0);
    CHECK(h.send(icmp) == kPass);
    Bytes arp(60, 0);
    arp[12] = 0x08;
    arp[13] = 0x06;
    CHECK(h.send(arp) == kPass);
    FrameSpec deep;
    deep.vlans = {{0x88a8, 1}, {0x8100, 2}, {0x8100, 3}};
    CHECK(h.send(deep) == kPass);
    auto hc = h.health();
    CHECK(hc[EXF_C_FRAGMENT] == 2);
    CHECK(hc[EXF_C_OTHER_L4] == 1);
    CHECK(hc[EXF_C_NOT_IP] == 1);
    CHECK(hc[EXF_C_VLAN_TOO_DEEP] == 1);
    CHECK(hc[EXF_C_PACKETS] == 5);
    CHECK(h.flow_count() == 0);
    CHECK(h.client_count() == 0);
}

TEST_CASE("Malformed input at every truncation and with bogus header lengths", "[bpf]")
{
    if (!require_root())
        return;
    SECTION("every truncation length of a frame carrying a ClientHello")
    {
        for (bool v6 : {false, true}) {
            // One program load per family: each length is a new flow (its
            // own source port) and is checked through counter deltas.
            Harness h;
            FrameSpec c;
            if (v6) {
                c.src = "2001:db8::70";
                c.dst = "2001:db8:1::1";
            }
            c.vlans = {{0x8100, 7}};
            c.tcp_flags = ACK | PSH;
            c.payload = client_hello(300);
            const size_t l3 = 18, l4 = l3 + (v6 ? 40 : 20), pl = l4 + 20;
            const size_t full_len = build_frame(c).size();
            for (size_t len = 14; len <= full_len; len++) {
                c.sport = uint16_t(20000 + len);
                auto full = build_frame(c);
                Bytes cut(full.begin(), full.begin() + long(len));
                INFO("v6=" << v6 << " length " << len);
                auto before = h.health();
                auto cs_before = h.client(c.src).value_or(exf_client_stats{});
                h.events().clear();
                REQUIRE(h.send(cut) == kPass);
                auto hc = h.health();
                auto delta = [&](unsigned i) { return hc[i] - before[i]; };
                CHECK(delta(EXF_C_PACKETS) == 1);
                if (len < l3)
                    CHECK(delta(EXF_C_TRUNC_L2) == 1);
                else if (len < l4)
                    CHECK(delta(EXF_C_TRUNC_L3) == 1);
                else if (len < pl)
                    CHECK(delta(EXF_C_TRUNC_L4) == 1);
                else {
                    // Headers complete: counted with the IP length's bytes;
                    // the hello event carries what the frame holds.
                    auto st = h.client(c.src);
                    REQUIRE(st);
                    CHECK(st->bytes_in - cs_before.bytes_in == full.size() - l3);
                    CHECK(st->tls_flows_opened - cs_before.tls_flows_opened == 1);
                    auto hellos = h.events_of(EXF_EV_HELLO);
                    if (len == pl) {
                        CHECK(hellos.empty());
                    } else {
                        REQUIRE(hellos.size() == 1);
                        CHECK(hellos[0].data.size() == len - pl);
                        CHECK(std::equal(hellos[0].data.begin(), hellos[0].data.end(),
                                         c.payload.begin()));
                    }
                }
            }
        }
    }
    SECTION("bogus IP and TCP header lengths")
    {
        Harness h;
        FrameSpec a;
        a.ihl = 3;
        h.send(a);
        FrameSpec b;
        b.ihl = 15;  // 60-byte header longer than the total length
        b.payload.assign(10, 0);
        h.send(b);
        FrameSpec b2;
        b2.ihl = 15;  // 60-byte header: the TCP header would lie beyond the frame
        b2.ip_len = 200;
        h.send(b2);
        FrameSpec c;
        c.tcp_doff = 2;
        h.send(c);
        FrameSpec d;
        d.tcp_doff = 15;  // 60-byte TCP header beyond the IP length
        h.send(d);
        FrameSpec e;
        e.ip_len = 10;  // shorter than the IP header
        h.send(e);
        FrameSpec g;
        g.src = "2001:db8::80";
        g.dst = "2001:db8:1::1";
        g.ip_len = 4;  // IPv6 payload shorter than the TCP header
        h.send(g);
        auto hc = h.health();
        CHECK(hc[EXF_C_BAD_IPV4] == 3);
        CHECK(hc[EXF_C_TRUNC_L4] == 1);
        CHECK(hc[EXF_C_BAD_TCP] == 3);
        CHECK(h.flow_count() == 0);
    }
}

namespace {

// One TLS 1.3 connection's packets after its ClientHello, as curl and nginx
// send them (sizes measured: docs/datapath.md, "Requests"): the server's
// handshake flight, the client's Finished, then `requests` exchanges of a
// 112-byte request and a 3 KiB response in three segments, with the client's
// pure ACKs and small control records (HTTP/2 SETTINGS ack, WINDOW_UPDATE)
// in between. send_c / send_s send one client / server payload.
struct Conversation {
    std::function<void(size_t)> send_c, send_s;
    void handshake()
    {
        send_s(1267);  // ServerHello .. server Finished
        send_c(93);    // client Finished: ends the handshake, no request
        send_s(51);    // session ticket
    }
    void exchange()
    {
        send_c(112);  // the request
        send_c(38);   // a control record: no turn
        send_s(1448);
        send_c(0);  // pure ACK
        send_s(1448);
        send_c(40);  // WINDOW_UPDATE: no turn
        send_s(445);
    }
};

// A conversation on the flow of c, each side's packets through `send`
// (which CPU runs them is the caller's choice).
Conversation conversation(FrameSpec c, const std::function<void(const Bytes &)> &send_c,
                          const std::function<void(const Bytes &)> &send_s, size_t hello_len)
{
    auto cseq = std::make_shared<uint32_t>(uint32_t(1001 + hello_len));
    auto sseq = std::make_shared<uint32_t>(5001);
    FrameSpec s = reverse(c);
    Conversation v;
    v.send_c = [=](size_t n) {
        FrameSpec f = c;
        f.tcp_flags = n ? PSH | ACK : ACK;
        f.seq = *cseq;
        f.payload.assign(n, 0x17);
        *cseq += uint32_t(n);
        send_c(build_frame(f));
    };
    v.send_s = [=](size_t n) {
        FrameSpec f = s;
        f.tcp_flags = PSH | ACK;
        f.seq = *sseq;
        f.payload.assign(n, 0x17);
        *sseq += uint32_t(n);
        send_s(build_frame(f));
    };
    return v;
}

}  // namespace

TEST_CASE("Requests: each client turn after the handshake counts once, on the fast path too",
          "[bpf][requests]")
{
    if (!require_root())
        return;
    Harness h;
    FrameSpec c;
    c.src = "192.0.2.10";
    c.dst = "198.51.100.1";
    open_tls(h, c);
    auto send = [&](const Bytes &b) { REQUIRE(h.send(b) == kPass); };
    auto v = conversation(c, send, send, 517);
    v.handshake();
    for (int i = 0; i < 10; i++)
        v.exchange();
    // A request in two segments is one turn; a server payload below
    // request_min_bytes (a PING) gives the client no new turn.
    v.send_c(600);
    v.send_c(600);
    v.send_s(30);
    v.send_c(112);
    v.send_s(2000);
    v.send_c(0);
    v.send_s(1448);  // more of the same answer: the fast path's

    auto f = h.flow_of(c);
    REQUIRE(f);
    CHECK(f->requests == 11);
    CHECK(f->turn == EXF_TURN_SERVER);
    auto cs = h.client("192.0.2.10");
    REQUIRE(cs);
    CHECK(cs->requests == 11);
    // The fast path counted the packets between the turns: the flow's slot
    // holds pending counts (all packets ran within one tick).
    auto slots = h.cache();
    CHECK(std::any_of(slots.begin(), slots.end(),
                      [](const exf_fc_slot &s) { return s.used && (s.pkts[0] | s.pkts[1]); }));
}

TEST_CASE("Requests: request_min_bytes sets the smallest payload that takes a turn",
          "[bpf][requests]")
{
    if (!require_root())
        return;
    // 50 bytes: a repeated HTTP/2 GET, HPACK-compressed. Counted with the
    // default (46), not with 60.
    for (uint32_t min : {0u, 60u}) {
        SensorOptions o;
        if (min)
            o.request_min_bytes = min;
        Harness h(o);
        FrameSpec c;
        open_tls(h, c);
        auto send = [&](const Bytes &b) { REQUIRE(h.send(b) == kPass); };
        auto v = conversation(c, send, send, 517);
        v.handshake();
        for (int i = 0; i < 5; i++) {
            v.send_c(50);
            v.send_s(1448);
        }
        v.send_c(60);
        auto f = h.flow_of(c);
        REQUIRE(f);
        CHECK(f->requests == (min ? 1 : 6));
    }
}

TEST_CASE("Requests: a flow whose two directions run on two CPUs counts every turn",
          "[bpf][requests]")
{
    // Ingress and egress of one flow often run on different CPUs: the
    // server's answer changes the turn on one CPU while the other CPU's
    // cache slot still holds the flow. Without the shared turn generation
    // that slot would count the next request on the fast path as more of
    // the previous one.
    if (!require_root())
        return;
    REQUIRE(std::thread::hardware_concurrency() >= 2);
    Harness h;  // pins this thread to its CPU
    int here = sched_getcpu();
    REQUIRE(here >= 0);
    int other = here == 0 ? 1 : 0;
    FrameSpec c;
    open_tls(h, c);
    auto on_here = [&](const Bytes &b) { REQUIRE(h.send(b) == kPass); };
    auto on_other = [&](const Bytes &b) {
        uint32_t rc = 0;
        std::thread t([&] {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(other, &one);
            if (pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0)
                rc = h.send(b);
        });
        t.join();
        REQUIRE(rc == kPass);
    };
    auto v = conversation(c, on_here, on_other, 517);
    v.handshake();
    for (int i = 0; i < 20; i++)
        v.exchange();
    auto f = h.flow_of(c);
    REQUIRE(f);
    CHECK(f->requests == 20);
    auto cs = h.client(c.src);
    REQUIRE(cs);
    CHECK(cs->requests == 20);
}
