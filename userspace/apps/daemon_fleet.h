// SPDX-License-Identifier: Apache-2.0
#pragma once
// `exfilmon run`'s fleet export ([fleet]; docs/fleet.md, "Delivery"). The
// harvest hands over what it counts (HarvestSink), per (client, API host,
// JA4), into the period table (fleet/periods.h); each closed period's rows
// go to the exporter's thread (fleet/exporter.h), which spools and sends
// them. Nothing here runs on the packet path, and nothing here waits for
// the disk or the network: the main loop only moves rows.
//
// Exactly once across a crash. The open period lives in memory, beside
// the harvest's accounted counters, and both are written together in the
// state file (state/state_file.h). A restart restores them from the last
// state written and harvests again what the kernel counted since. So:
//  - a closed period goes to the exporter only once a state file written
//    after its close is on disk (StateFile::written()). A crash can then
//    never reopen a period whose rows were sent: reopened, it would be
//    closed again with other sums, and its rows would not replace the
//    ones sent key for key (a key seen only the first time would count
//    twice);
//  - until the exporter holds it safely (in its spool on disk, or sent),
//    a closed period stays in the state file too; a restart hands it over
//    again, as the same bytes (its rows are kept as sent, never rebuilt),
//    which the traffic table (ReplacingMergeTree, read FINAL) counts once.
// A period close triggers that state write at once. Without a state
// directory nothing survives a crash and periods go out as they close.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "aggregate/aggregator.h"
#include "control/snapshot.h"
#include "fleet/exporter.h"
#include "fleet/fleet_config.h"
#include "fleet/periods.h"
#include "harvest/harvest_stage.h"

namespace exf {

class FleetExport final : public HarvestSink {
public:
    // names: the aggregator whose client, subnet and cohort keys the rows
    // carry. state_dir: the daemon's ("" : no state kept, no spool on disk;
    // the spool is state_dir/fleet-spool). Throws exf::Error when the
    // settings cannot be used (a bad password file, a spool directory that
    // cannot be made).
    FleetExport(const fleet::FleetConfig &cfg, const std::string &state_dir,
                const agg::Aggregator &names);
    // Starts the exporter's thread (after the privileges were dropped).
    void start();
    // A clean stop: the closed periods the last state holds go to the
    // exporter, which has up to `timeout` to send what waits.
    void stop(uint64_t state_finished, uint64_t state_written, std::chrono::milliseconds timeout);

    // HarvestSink: the period due is closed first, then the inputs count
    // in the period of the harvest's wall-clock time.
    void harvest_begins(uint64_t now_ms) override;
    void add_traffic(const Addr16 &client, std::string_view sni, std::string_view ja4,
                     const agg::Traffic &t) override;
    void flow_opened(const Addr16 &client, std::string_view sni, std::string_view ja4) override;
    void flow_closed(const Addr16 &client, std::string_view sni, std::string_view ja4) override;

    // The state file's fleet part: the open period and the closed periods
    // not yet safe with the exporter. restore_state throws exf::Error on bad
    // bytes, changing nothing; the closed periods it holds are handed over
    // again once the exporter runs.
    std::string save_state() const;
    void restore_state(std::string_view bytes);
    // True when a period closed since the last state save started: the
    // caller saves the state now.
    bool wants_state_save() const;
    // A state save started (its number; 0: skipped, none kept): it holds
    // every period closed until now.
    void state_save_started(uint64_t save);
    // Hands the exporter every closed period whose state save ended
    // (finished; written: the last one on disk), then forgets those the
    // exporter holds safely.
    void hand_over(uint64_t state_finished, uint64_t state_written);

    control::FleetStatus status() const;

private:
    struct Closed {
        uint64_t start_ms;
        std::string rows;   // JSONEachRow, as sent (and sent again)
        uint64_t save = 0;  // the first state save holding it; 0: none yet
        bool handed = false;
    };
    fleet::ClientNames name_client(const Addr16 &client) const;
    Addr16 client_key(const Addr16 &client) const;

    fleet::FleetConfig cfg_;
    const agg::Aggregator &names_;
    const bool state_kept_;
    fleet::PeriodTable periods_;
    fleet::Exporter exporter_;
    std::vector<Closed> closed_;  // oldest first
    uint64_t now_wall_ms_ = 0;    // the harvest's
    bool warned_unwritten_ = false;
};

}  // namespace exf
