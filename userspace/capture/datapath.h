// SPDX-License-Identifier: Apache-2.0
#pragma once
// One interface over the two builds of the datapath: the real BPF program
// run through BPF_PROG_TEST_RUN (needs CAP_BPF), and the same C source
// compiled into userspace (capture/udatapath.c). Replay and the libpcap
// backend feed frames to either; both expose the same tables and events.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "capture/bpf_sensor.h"
#include "capture/maps.h"

namespace exf {

class Datapath {
public:
    using EventFn = std::function<void(std::span<const uint8_t>)>;
    virtual ~Datapath() = default;
    // One Ethernet frame; ts_ns is the packet time (replay) or the clock.
    virtual void process(std::span<const uint8_t> frame, uint64_t ts_ns, uint32_t gso_segs = 0) = 0;
    // Hands over the events produced since the last call, in order.
    virtual void drain_events(const EventFn &fn) = 0;
    // The flow and client tables, the flow cache folded in (maps.h).
    virtual Tables tables() const = 0;
    // The same into `into`, whose rows it replaces: a caller that reads
    // the tables at every harvest keeps their storage, so the rows are not
    // written to freshly allocated (page-faulting) memory each time.
    virtual void read_tables(Tables &into) const { into = tables(); }
    std::vector<FlowRow> flows() const { return tables().flows; }
    std::vector<ClientRow> clients() const { return tables().clients; }
    virtual HealthCounters health() const = 0;
    virtual const char *name() const = 0;
    // Back to the state of a fresh datapath: empty tables, flow cache and
    // health counters; events not yet drained are dropped.
    virtual void reset() = 0;
};

// The real program through BPF_PROG_TEST_RUN (packet time from the frame's ts).
std::unique_ptr<Datapath> make_bpf_test_run_datapath(SensorOptions opts);
// The userspace build. packet_time=false: ts_ns passed to process() is the clock.
std::unique_ptr<Datapath> make_user_datapath(const SensorOptions &opts);

}  // namespace exf
