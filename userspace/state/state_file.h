// SPDX-License-Identifier: Apache-2.0
#pragma once
// The daemon's state across a restart (docs/deploy.md, "Restarts and
// upgrades"): what the harvest has accounted of the kernel's tables, the
// aggregator's windows and the detector's alerts and baselines, in one file
// under the state directory ([daemon] state_dir), written atomically (temp
// file, fsync, rename) every state_interval and at a clean stop.
//
// At start, start_from_state() restores it, checked against this run:
//  - written in another boot (/proc/sys/kernel/random/boot_id; the clocks
//    start over), by another configuration file, in the future, older than
//    the longest window, or unreadable (truncated, checksum, layout): a
//    warning and a clean start;
//  - otherwise the windows, baselines and alerts (with their IDs) carry on;
//    and when the kernel's tables are the ones the state was read from (the
//    same pinned maps, by map id), the harvest goes on from the counters it
//    had accounted: a first harvest adds what the kernel counted while no
//    daemon ran, at the time of the last packet counted then.
//  - Maps taken over from an earlier run whose accounted counters are not
//    known (no usable state): their lifetime totals are taken as already
//    counted (prime), never as new traffic. What they counted while no
//    daemon ran is then unknown and not counted.
//
// The fleet export (apps/daemon_fleet.h) keeps a part of its own after the
// harvest's: its open period and the closed periods not yet safe in its
// spool. It is restored before the gap is harvested into it, so that what
// the kernel counted while no daemon ran goes into the period of the start.
// A file without that part (fleet export off) reads as before.
//
// Format: a simple versioned binary layout with a checksum (state_file.cpp),
// the parts written by each stage (common/state_codec.h). Not JSON: the state
// is mostly fixed-size records (addresses and counters per client and flow,
// up to millions), copied as they are in memory.
#include <cstdint>
#include <functional>
#include <future>
#include <initializer_list>
#include <string>
#include <string_view>

#include "aggregate/aggregator.h"
#include "detect/detector.h"
#include "flows/flow_tracker.h"
#include "harvest/harvest_stage.h"
#include "sources/source.h"

namespace exf {

// What the state is checked against.
struct StateContext {
    std::string owner;   // the configuration file (absolute; "" for the built-in defaults)
    std::string tables;  // the kernel tables' identity (LiveSource::tables_identity())
    bool tables_carried_over = false;  // maps taken over from an earlier run
    agg::AggConfig aggregate;          // the configuration now
    detect::DetectConfig detect;
};

// The state file's bytes and checks, without the daemon (unit-tested).
namespace state_file {

// 2: group cells count distinct subnets; fingerprint kinds and memberships.
// 3: window cells and the harvest's held and owed sums count requests.
inline constexpr uint32_t kVersion = 3;

// This boot's id ("" when unreadable: then no state is ever restored).
std::string boot_id();

// The state of the stages now: the payload (taken on the daemon's thread,
// a copy of its tables), then the header that goes before it (magic,
// version, length, checksum: computed by the writer thread). encode() is
// both together, the file's bytes.
// fleet: the fleet export's part ("" : none, nothing written).
std::string encode_payload(const StateContext &ctx, const agg::Aggregator &a,
                           const detect::Detector &d, const HarvestStage &h, uint64_t mono_ms,
                           uint64_t wall_ms, const std::string &boot = boot_id(),
                           size_t size_hint = 0, std::string_view fleet = {});
std::string header_for(std::string_view payload);
std::string encode(const StateContext &ctx, const agg::Aggregator &a, const detect::Detector &d,
                   const HarvestStage &h, uint64_t mono_ms, uint64_t wall_ms,
                   const std::string &boot = boot_id(), std::string_view fleet = {});

struct Decoded {
    Decoded(const agg::AggConfig &a, const detect::DetectConfig &d) : aggregator(a), detector(d) {}
    agg::Aggregator aggregator;
    detect::Detector detector;
    HarvestStage harvest;
    bool harvest_valid = false;  // the tables are the ones the state was read from
    uint64_t saved_mono_ms = 0;
    std::string fleet;  // the fleet export's part; "" when none was written
};
// Throws exf::Error saying why the bytes cannot be used (corrupt, stale).
Decoded decode(std::string_view bytes, const StateContext &ctx, uint64_t now_mono_ms,
               const std::string &boot = boot_id());

// Writes bytes to path through path.tmp, fsync and rename (and fsyncs the
// directory); throws exf::Error.
void write_atomically(const std::string &path, std::initializer_list<std::string_view> parts);

}  // namespace state_file

// What the fleet export gives the state file (apps/daemon_fleet.h): its
// part of the state, restored from the file before the gap is harvested
// into its sink.
struct StateFleetPart {
    std::function<void(std::string_view)> restore;  // throws exf::Error on bad bytes
    HarvestSink *sink = nullptr;
};

class StateFile {
public:
    // dir empty: no state is kept. The directory is created (0700) if missing.
    explicit StateFile(std::string dir);
    ~StateFile();  // waits for a write under way
    StateFile(const StateFile &) = delete;
    StateFile &operator=(const StateFile &) = delete;

    bool enabled() const { return !path_.empty(); }
    const std::string &path() const { return path_; }

    // Restores the stages from the file (see the top of this file) and primes
    // the harvest when the tables were carried over without a usable state.
    // Never throws for the file's sake: every problem is a logged warning.
    // fleet: the fleet export, when on.
    void start_from_state(const StateContext &ctx, LiveSource &src, agg::Aggregator &a,
                          detect::Detector &d, HarvestStage &h, const FlowTracker &tracker,
                          uint64_t now_mono_ms, const StateFleetPart *fleet = nullptr);

    // Encodes the state now and writes it from a background thread (a save
    // while the previous one is still being written is skipped). Returns the
    // save's number (1, 2, ...), 0 when skipped or when no state is kept.
    uint64_t save(const StateContext &ctx, const agg::Aggregator &a, const detect::Detector &d,
                  const HarvestStage &h, uint64_t mono_ms, uint64_t wall_ms,
                  std::string_view fleet = {});
    // The same, waiting for the write (clean stop).
    uint64_t save_and_wait(const StateContext &ctx, const agg::Aggregator &a,
                           const detect::Detector &d, const HarvestStage &h, uint64_t mono_ms,
                           uint64_t wall_ms, std::string_view fleet = {});
    // The last save whose write has ended (collected now if it just did),
    // and the last one written: a save up to written() is on disk.
    uint64_t finished();
    uint64_t written() const { return written_; }
    // A write is under way (a save now would be skipped).
    bool writing();

private:
    // Collects the write under way (if any), logging its failure once per cause.
    void collect(bool wait);
    std::string path_;
    std::future<std::string> pending_;  // the write's error, "" when written
    std::string last_error_;
    size_t last_size_ = 0;  // of the last payload: the next one's reservation
    uint64_t started_ = 0, finished_ = 0, written_ = 0;  // save numbers
};

}  // namespace exf
