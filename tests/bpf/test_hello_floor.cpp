// SPDX-License-Identifier: Apache-2.0
// The benchmark's ClientHello floor (bpf/hello_floor.bpf.c) does the work it
// stands for: every payload of the benchmark's frames lands whole in one
// hello event of the sensor's two sizes. Without this, a floor that copied
// less would make the sensor's hello cost look closer to it than it is.
#include <catch2/catch.hpp>

#include <bpf/libbpf.h>

#include <cstring>
#include <vector>

#include "capture/events.h"
#include "capture/maps.h"
#include "capture/test_run.h"
#include "common/error.h"
#include "support/packet_builder.h"
#include "support/test_env.h"

using namespace exf;
using namespace exf::test;

namespace {

struct Floor {
    Floor()
    {
        obj = bpf_object__open_file(EXF_HELLO_FLOOR_BPF_OBJ, nullptr);
        REQUIRE(obj);
        REQUIRE(bpf_object__load(obj) == 0);
        auto *p = bpf_object__find_program_by_name(obj, "exf_tc_ingress");
        auto *ev = bpf_object__find_map_by_name(obj, "exf_events");
        auto *h = bpf_object__find_map_by_name(obj, "exf_health");
        REQUIRE((p && ev && h));
        prog = bpf_program__fd(p);
        events = bpf_map__fd(ev);
        health = bpf_map__fd(h);
    }
    ~Floor() { bpf_object__close(obj); }
    Floor(const Floor &) = delete;
    Floor &operator=(const Floor &) = delete;
    bpf_object *obj = nullptr;
    int prog = -1, events = -1, health = -1;
};

struct Seen {
    uint16_t type, len;
    Bytes data;
    size_t record_size;
};

}  // namespace

TEST_CASE("The ClientHello floor of the benchmark copies each payload into one hello event",
          "[bpf]")
{
    if (!require_root())
        return;
    Floor fl;
    std::vector<Seen> seen;
    EventReader reader(fl.events, [&](std::span<const uint8_t> b) {
        REQUIRE(b.size() >= EXF_HELLO_EVENT_HDR_SIZE);
        exf_hello_event e;
        std::memcpy(&e, b.data(), EXF_HELLO_EVENT_HDR_SIZE);
        REQUIRE(e.hdr.len <= b.size() - EXF_HELLO_EVENT_HDR_SIZE);
        seen.push_back({e.hdr.type, e.hdr.len,
                        Bytes(b.begin() + EXF_HELLO_EVENT_HDR_SIZE,
                              b.begin() + EXF_HELLO_EVENT_HDR_SIZE + e.hdr.len),
                        b.size()});
    });
    struct Case {
        const char *src, *dst;
        size_t len;
    };
    // The benchmark's hello cases: IPv4 250 / 517 / 1400 B, IPv6 517 B, and
    // the small event's edges.
    for (auto c :
         {Case{"192.0.2.1", "198.51.100.1", 250}, Case{"192.0.2.1", "198.51.100.1", 517},
          Case{"192.0.2.1", "198.51.100.1", EXF_CHUNK_SMALL},
          Case{"192.0.2.1", "198.51.100.1", EXF_CHUNK_SMALL + 1},
          Case{"192.0.2.1", "198.51.100.1", 1400}, Case{"2001:db8::1", "2001:db8::2", 517}}) {
        DYNAMIC_SECTION(c.src << " hello of " << c.len << " bytes")
        {
            FrameSpec s;
            s.src = c.src;
            s.dst = c.dst;
            // A header-only packet first: no payload, no event.
            s.tcp_flags = TcpFlag::SYN;
            auto r = run_tc_program(fl.prog, build_frame(s), {});
            REQUIRE(r.err == 0);
            CHECK(r.retval == 0);
            s.tcp_flags = TcpFlag::ACK | TcpFlag::PSH;
            s.payload = client_hello(c.len);
            auto before = read_health(fl.health);
            r = run_tc_program(fl.prog, build_frame(s), {});
            REQUIRE(r.err == 0);
            CHECK(r.retval == 0);
            seen.clear();
            reader.drain();
            REQUIRE(seen.size() == 1);
            CHECK(seen[0].type == EXF_EV_HELLO);
            CHECK(seen[0].data == s.payload);
            size_t cap = c.len <= EXF_CHUNK_SMALL ? EXF_CHUNK_SMALL : EXF_CHUNK_MAX;
            CHECK(seen[0].record_size == EXF_HELLO_EVENT_HDR_SIZE + cap);
            auto after = read_health(fl.health);
            CHECK(after[EXF_C_HELLO_EVENTS] - before[EXF_C_HELLO_EVENTS] == 1);
            CHECK(after[EXF_C_RB_FULL] == before[EXF_C_RB_FULL]);
            CHECK(after[EXF_C_LOAD_FAIL] == before[EXF_C_LOAD_FAIL]);
        }
    }
}
