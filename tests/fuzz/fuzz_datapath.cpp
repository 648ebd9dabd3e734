// SPDX-License-Identifier: Apache-2.0
// The userspace build of the datapath (capture/udatapath.c, the same C source
// as the BPF program) on arbitrary Ethernet frames, its events through a
// FlowTracker. Input: records (fuzz_util.h split_records); each record is
// one frame: byte 0 sets the GSO segment count (low 3 bits) and the time step,
// the rest is the frame. Each frame is copied to its own allocation so that
// ASan sees any read past its end. Checked: the tables stay within their
// sizes, per-client and per-flow counters are coherent, and every event the
// datapath emits is one the FlowTracker accepts as valid.
#include <cstring>
#include <memory>

#include "capture/datapath.h"
#include "capture/maps.h"
#include "flows/flow_tracker.h"
#include "fuzz_util.h"

using namespace exf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    SensorOptions o;
    o.packet_time = true;
    o.flow_table_size = 1024;
    o.client_table_size = 256;
    o.ringbuf_bytes = 65536;
    o.tls_ports = {443, 8443, 4433};
    auto dp = make_user_datapath(o);

    FlowTrackerOptions to;
    to.max_flows = 64;
    FlowTracker tracker(to);
    uint64_t events = 0;
    auto sink = [&](std::span<const uint8_t> e) {
        std::vector<uint8_t> copy(e.begin(), e.end());
        tracker.on_event(copy);
        events++;
    };

    uint64_t ts = 1'700'000'000'000'000'000ull;
    for (auto rec : fuzz::split_records({data, size})) {
        if (rec.empty())
            continue;
        uint32_t gso = rec[0] & 7;
        ts += uint64_t(rec[0] >> 3) * 1'000'000;
        // Its own allocation, ending where the frame ends, the Ethernet header
        // at 2 mod 4 as process() wants it (so no copy hides an overread).
        size_t n = rec.size() - 1;
        std::unique_ptr<uint8_t[]> buf(new uint8_t[n + 2]);
        if (n)
            std::memcpy(buf.get() + 2, rec.data() + 1, n);
        dp->process({buf.get() + 2, n}, ts, gso);
        dp->drain_events(sink);
    }
    tracker.finish();

    auto flows = dp->flows();
    auto clients = dp->clients();
    auto health = dp->health();
    FUZZ_CHECK(flows.size() <= o.flow_table_size);
    FUZZ_CHECK(clients.size() <= o.client_table_size);
    for (auto &r : flows) {
        FUZZ_CHECK(r.key.proto == 6 || r.key.proto == 17);
        FUZZ_CHECK(r.flow.client <= EXF_CLIENT_HI);
        FUZZ_CHECK(r.flow.kind <= EXF_KIND_OTHER);
        FUZZ_CHECK(r.flow.first_ns <= r.flow.last_ns);
        // Canonical order (bpf/lib/parse.h exf_endpoint_lt): lo <= hi as two
        // native 64-bit words.
        uint64_t lo[2], hi[2];
        std::memcpy(lo, r.key.lo_addr, 16);
        std::memcpy(hi, r.key.hi_addr, 16);
        FUZZ_CHECK(lo[0] < hi[0] || (lo[0] == hi[0] && lo[1] <= hi[1]));
    }
    for (auto &c : clients)
        FUZZ_CHECK(c.stats.tls_flows_closed <= c.stats.tls_flows_opened);
    (void)health;
    FUZZ_CHECK(tracker.stats().events == events);
    FUZZ_CHECK(tracker.stats().bad_events == 0);
    FUZZ_CHECK(tracker.size() <= to.max_flows);
    for (auto &r : tracker)
        FUZZ_CHECK(r.hello != HelloState::pending);
    return 0;
}
