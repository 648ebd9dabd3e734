// SPDX-License-Identifier: Apache-2.0
#pragma once
// Replaying capture files through the real tc program (BPF_PROG_TEST_RUN, one
// run per packet, packet time as skb->tstamp) and reading back the TLS/QUIC
// flows and per-client totals in the form of the shared truth CSVs.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "capture/bpf_sensor.h"
#include "capture/maps.h"

namespace exf::test {

// One TLS or QUIC flow, oriented client -> server ("in") as in truth_flows.csv.
struct FlowCount {
    std::string transport;  // "tcp" or "quic"
    std::string client;     // RFC 5952 / dotted quad
    uint16_t client_port = 0;
    std::string server;
    uint16_t server_port = 0;
    uint64_t packets_in = 0, packets_out = 0, bytes_in = 0, bytes_out = 0;

    std::string endpoints() const;  // "tcp 10.0.0.1:5000 -> 10.0.0.2:443"
    std::string counters() const;   // "packets 7/5 bytes 900/2064" (in/out)
    bool same_counts(const FlowCount &o) const;
};

// One (capture, client) row as in truth_per_client.csv.
struct ClientCount {
    std::string client;
    uint64_t tls_flows = 0, packets_in = 0, packets_out = 0, bytes_in = 0, bytes_out = 0;

    std::string counters() const;  // "flows 3 packets 85/94 bytes 21394/32112"
    bool same_counts(const ClientCount &o) const;
};

struct ReplayResult {
    // Flows left in the flow table (kind TLS or QUIC) plus the flows ended by
    // a 5-tuple reuse (EXF_END_REUSE events), in the order they ended.
    std::vector<FlowCount> flows;
    std::vector<ClientCount> clients;
    uint64_t packets = 0;     // packets run through the program
    uint64_t cut_frames = 0;  // frames cut to kMaxTestRunFrame bytes
    uint64_t skipped = 0;     // frames too short to run (under 14 bytes)
    uint64_t reuse_events = 0;
    std::string read_error;  // the capture reader's error, if any
    std::string run_error;   // the first failed test run, if any
    HealthCounters health{};
};

// One loaded sensor (packet_time forced on) replaying captures one after the
// other; its flow, client and health maps are emptied before each capture, so
// every capture starts from a state like a fresh load (loading takes a few
// hundred ms: the verifier). Not thread-safe.
class ReplaySession {
public:
    explicit ReplaySession(SensorOptions opts);  // throws exf::Error
    ~ReplaySession();
    ReplaySession(const ReplaySession &) = delete;
    ReplaySession &operator=(const ReplaySession &) = delete;

    // Throws exf::Error when the capture cannot be opened; damage inside it
    // ends the replay there and is reported in ReplayResult::read_error.
    ReplayResult replay(const std::filesystem::path &capture);
    const BpfSensor &sensor() const { return sensor_; }

private:
    void clear_maps();
    BpfSensor sensor_;
    struct Events;
    std::unique_ptr<Events> events_;
};

// Replays one capture through a fresh sensor loaded with opts.
ReplayResult replay_capture(const std::filesystem::path &capture, SensorOptions opts);

// Writes an Ethernet pcap file (nanosecond timestamps): (ts_ns, frame) pairs.
using TimedFrame = std::pair<uint64_t, std::vector<uint8_t>>;
void write_pcap(const std::filesystem::path &file, const std::vector<TimedFrame> &frames);

// Every capture file (pcap or pcapng magic) under dir, as paths relative to
// dir with '/' separators, sorted.
std::vector<std::string> find_captures(const std::filesystem::path &dir);

// A CSV file as rows of column name -> value (RFC 4180 quoting). Throws
// exf::Error if the file cannot be read or a row has the wrong column count.
std::vector<std::map<std::string, std::string>> read_csv(const std::filesystem::path &file);

}  // namespace exf::test
