// SPDX-License-Identifier: Apache-2.0
#pragma once
// `exfilmon replay FILE`: a capture file run through a Datapath (its
// userspace build by default, or the real BPF program via BPF_PROG_TEST_RUN
// with --datapath bpf), packet time as the
// clock; after every packet the datapath's events go to a FlowTracker; at the
// end one report per client and, with --flows, per flow.
//
// Detection runs as live: the datapath's tables are harvested into the
// aggregator every [daemon] harvest_interval of packet time and the rules
// ([[rules]] of --config, else the built-in ones) evaluated every [detect]
// interval, with packet time as both the clock and the alerts' time; at the
// end one last harvest and evaluation. Open alerts stay open at the end (the
// capture's time stops; nothing resolves them).
//
// Output (stdout): report/replay_report.h.
// stderr: which datapath runs, then a one-line summary (packets, events,
// anomalies by name), and errors.
//
// Input: FILE, or "-" for standard input (pcap or pcapng, also through a
// pipe). A gzip-compressed capture is recognised by its magic and refused
// with the way to decompress it (zlib is not a dependency).
//
// Exit status: 0 ok; 1 the input cannot be used: missing, unreadable, a
// directory, gzip-compressed, not a capture format, corrupt or truncated (the
// report of the packets before the damage is printed, then "FILE: packet N:
// what" on stderr), or the datapath failed; 2 a usage error: a bad option,
// a bad configuration, "-" with standard input a terminal.
//
// Seams for later stages: ReplayStage (an aggregator, a detector) sees every
// event, every flow whose TLS metadata becomes known, the datapath after each
// packet, the end; and may raise Alerts, printed as {"type":"alert",...}.
#include <cstdint>
#include <iosfwd>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "capture/datapath.h"
#include "flows/flow_tracker.h"
#include "report/replay_report.h"

namespace exf {

enum class ReplayFormat : uint8_t { table, json };
enum class DatapathChoice : uint8_t { automatic, bpf, user };

struct ReplayOptions {
    std::string capture;
    std::string config_path;  // empty: built-in defaults ([bpf] tls_ports, table sizes)
    ReplayFormat format = ReplayFormat::table;
    bool flows = false;
    // The userspace build by default: its output is the BPF program's, byte
    // for byte (the parity tests), at several times the speed and without
    // loading and verifying the program; bpf is the explicit fallback.
    DatapathChoice datapath = DatapathChoice::user;
    // 1: one thread; 2: the datapath on one, the flow tracker, harvests and
    // rules on a second (the same output); 0: 2 when the process may run on
    // two CPUs or more.
    unsigned threads = 0;
};

// A later stage plugged into a replay (the aggregator, the detector). Every
// hook is optional; all run on the replay's thread, in packet order.
class ReplayStage {
public:
    virtual ~ReplayStage() = default;
    // Each event, after the FlowTracker took it in.
    virtual void on_event(std::span<const uint8_t> /*event*/, const FlowTracker & /*tracker*/) {}
    // A flow's TLS metadata became known (attribute its traffic to the SNI).
    virtual void on_tls_meta(const FlowRecord & /*record*/) {}
    // After each packet and its events; ts_ns is the packet time (the clock).
    virtual void on_packet(uint64_t /*ts_ns*/, const Datapath & /*dp*/, const FlowTracker & /*t*/)
    {}
    // The capture ended (or broke off); ts_ns is the last packet's time.
    virtual void on_end(uint64_t /*ts_ns*/, const Datapath & /*dp*/, const FlowTracker & /*t*/) {}
    // Alerts raised since the last call (called after every packet and at the end).
    virtual void take_alerts(std::vector<Alert> & /*out*/) {}
};

// Runs `exfilmon replay`; returns the exit status. Report on out, messages on err.
int run_replay(const ReplayOptions &opts, std::ostream &out, std::ostream &err,
               std::span<ReplayStage *const> stages = {});

}  // namespace exf
