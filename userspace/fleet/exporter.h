// SPDX-License-Identifier: Apache-2.0
#pragma once
// Sends a sensor's closed periods to ClickHouse from a thread of its own,
// in order, never on the packet or harvest path (docs/fleet.md, "Delivery").
//
// Every batch is written to the spool directory first (one file per
// period, written to a temporary name and renamed), then inserted, then
// its file removed. So a batch survives a restart and an outage, and one
// whose insert landed just before a crash is sent again: the traffic table
// (ReplacingMergeTree, read FINAL) counts it once. The spool holds at most
// max_batches; past that the oldest is dropped, counted and logged. When
// the directory cannot be written (a full or read-only disk) batches wait
// in memory and the failure is counted.
//
// Failures back off from 1 s doubling to 30 s; each new cause is logged
// once, as is the recovery. A failure never stops the sensor.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

#include "fleet/clickhouse.h"
#include "fleet/failure_log.h"
#include "fleet/fleet_config.h"

namespace exf::fleet {

struct ExportStats {
    uint64_t batches_sent = 0, rows_sent = 0, bytes_sent = 0;
    uint64_t failures = 0;         // inserts that failed (each retry counts)
    uint64_t dropped_batches = 0;  // the spool was full
    uint64_t spool_write_errors = 0;
    uint64_t spool_depth = 0;      // batches waiting, on disk and in memory
    uint64_t last_success_ms = 0;  // wall clock; 0: none yet
    std::string last_error;        // "" after a success
};

struct ExporterOptions {
    // Created (0700) when missing; empty: no spool on disk, batches wait in
    // memory only (a daemon without a state directory).
    std::filesystem::path spool_dir;
    size_t max_batches = 8640;  // a day of 10 s periods
    std::chrono::milliseconds backoff_min{1000}, backoff_max{30000};
};

class Exporter {
public:
    // Takes the batches left in spool_dir by an earlier run (sent first,
    // oldest first). Throws exf::Error when the configuration cannot be used
    // (a bad URL, an unreadable password file) or spool_dir cannot be
    // created.
    Exporter(const FleetConfig &cfg, ExporterOptions opts);
    ~Exporter();  // stops the thread; what is unsent stays in the spool
    Exporter(const Exporter &) = delete;
    Exporter &operator=(const Exporter &) = delete;

    // Starts the sending thread (separate from construction: the daemon
    // starts its threads once it dropped its privileges).
    void start();

    // A closed period's rows (JSONEachRow lines, fleet/periods.h), keyed by
    // its start: a period submitted again replaces its waiting batch.
    void submit(uint64_t period_start_ms, std::string rows);
    // True when a submitted period no longer depends on memory: in the
    // spool on disk, delivered, or dropped (counted).
    bool durable(uint64_t period_start_ms) const;
    ExportStats stats() const;
    // Waits until nothing waits to be sent, or the timeout; true when empty.
    bool drain(std::chrono::milliseconds timeout);

private:
    struct Batch {
        uint64_t period_start_ms;
        std::string rows;
        bool on_disk;
        uint64_t generation;  // bumped when a submit replaces the rows
    };
    void run();
    // Waits for a batch to send (send: a copy of the oldest in b) or to
    // spool; false when stopping.
    bool next_batch(Batch &b, std::chrono::steady_clock::time_point retry_at, bool &send);
    bool unspooled() const;
    void spool_pending();
    void delivered(const Batch &b);
    void failed(const std::string &why);
    void drop_oldest_over_limit();
    void load_spool();
    std::filesystem::path file_of(uint64_t period_start_ms) const;
    void remove_file(uint64_t period_start_ms) const;

    ExporterOptions opts_;
    ClickHouse ch_;  // used by the thread only
    std::chrono::milliseconds backoff_;
    FailureLog delivery_log_;  // under mu_
    mutable std::mutex mu_;
    std::condition_variable wake_, idle_;
    std::deque<Batch> queue_;  // oldest first
    ExportStats stats_;
    bool stopping_ = false;
    bool sending_ = false;
    bool spool_failing_ = false;  // the last spool write failed
    std::thread thread_;
};

}  // namespace exf::fleet
