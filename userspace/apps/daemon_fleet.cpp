// SPDX-License-Identifier: Apache-2.0
#include "apps/daemon_fleet.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "aggregate/entity_key.h"
#include "common/log.h"
#include "common/state_codec.h"

namespace exf {

namespace {

uint64_t wall_now_ms()
{
    return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count());
}

std::string host_name()
{
    char buf[256] = {};
    if (::gethostname(buf, sizeof(buf) - 1) != 0)
        return "unknown";
    return buf;
}

fleet::FleetConfig with_sensor_name(fleet::FleetConfig cfg)
{
    if (cfg.sensor.empty())
        cfg.sensor = host_name();
    return cfg;
}

fleet::ExporterOptions exporter_options(const fleet::FleetConfig &cfg, const std::string &state_dir)
{
    fleet::ExporterOptions o;
    if (!state_dir.empty())
        o.spool_dir = state_dir + "/fleet-spool";
    // A day of periods, as the alert spool keeps a day of alerts.
    o.max_batches = std::max<uint64_t>(1, 86'400'000 / std::max<uint64_t>(cfg.interval_ms, 1));
    return o;
}

}  // namespace

FleetExport::FleetExport(const fleet::FleetConfig &cfg, const std::string &state_dir,
                         const agg::Aggregator &names)
    : cfg_(with_sensor_name(cfg)), names_(names), state_kept_(!state_dir.empty()),
      periods_(uint32_t(cfg_.interval_ms),
               [this](const Addr16 &client) { return name_client(client); }),
      exporter_(cfg_, exporter_options(cfg_, state_dir))
{
    spdlog::info("fleet: periods of {} s to {} database {} as sensor '{}'{}",
                 cfg_.interval_ms / 1000.0, cfg_.clickhouse, cfg_.database, cfg_.sensor,
                 state_kept_ ? ", spooled in " + state_dir + "/fleet-spool"
                             : "; no state directory: periods wait in memory only and a crash "
                               "loses what was not sent");
}

void FleetExport::start() { exporter_.start(); }

void FleetExport::stop(uint64_t state_finished, uint64_t state_written,
                       std::chrono::milliseconds timeout)
{
    hand_over(state_finished, state_written);
    if (!exporter_.drain(timeout))
        spdlog::warn("stopping: {} fleet period(s) not sent yet: {}", exporter_.stats().spool_depth,
                     state_kept_ ? "the next start sends them" : "lost (no state directory)");
}

// The client entity (its masked address) keys the rows: addresses of one
// client entity make one row.
Addr16 FleetExport::client_key(const Addr16 &client) const
{
    return names_.client_key(client).addr;
}

fleet::ClientNames FleetExport::name_client(const Addr16 &client) const
{
    return {agg::format_key(agg::EntityKind::client, names_.client_key(client)),
            agg::format_key(agg::EntityKind::subnet, names_.subnet_key(client)),
            names_.cohort_of(client).value_or("")};
}

void FleetExport::harvest_begins(uint64_t)
{
    now_wall_ms_ = wall_now_ms();
    uint64_t start = periods_.open_period_start_ms();
    auto rows = periods_.close_due(now_wall_ms_);
    if (!rows.empty())
        closed_.push_back({start, fleet::to_json_rows(rows, cfg_.sensor)});
}

void FleetExport::add_traffic(const Addr16 &client, std::string_view sni, std::string_view ja4,
                              const agg::Traffic &t)
{
    periods_.add(now_wall_ms_, client_key(client), sni, ja4, t);
}

void FleetExport::flow_opened(const Addr16 &client, std::string_view sni, std::string_view ja4)
{
    periods_.flow_opened(now_wall_ms_, client_key(client), sni, ja4);
}

void FleetExport::flow_closed(const Addr16 &client, std::string_view sni, std::string_view ja4)
{
    periods_.flow_closed(now_wall_ms_, client_key(client), sni, ja4);
}

std::string FleetExport::save_state() const
{
    StateWriter w;
    w.u64(closed_.size());
    for (const auto &c : closed_) {
        w.u64(c.start_ms);
        w.str(c.rows);
    }
    periods_.save(w);
    return w.take();
}

void FleetExport::restore_state(std::string_view bytes)
{
    StateReader r(bytes);
    std::vector<Closed> closed;
    for (uint64_t n = r.count(16); n > 0; n--) {
        uint64_t start = r.u64();
        closed.push_back({start, r.str()});
    }
    fleet::PeriodTable periods(periods_.period_ms(),
                               [this](const Addr16 &client) { return name_client(client); });
    periods.restore(r);
    if (!r.done())
        throw Error("trailing bytes after the fleet's part");
    closed_ = std::move(closed);
    periods_ = std::move(periods);
    spdlog::info("fleet: {} closed period(s) from the state are handed over again, and the open "
                 "period carries on",
                 closed_.size());
}

bool FleetExport::wants_state_save() const
{
    return state_kept_ &&
           std::any_of(closed_.begin(), closed_.end(), [](const Closed &c) { return !c.save; });
}

void FleetExport::state_save_started(uint64_t save)
{
    if (!save)
        return;
    for (auto &c : closed_)
        if (!c.save)
            c.save = save;
}

void FleetExport::hand_over(uint64_t state_finished, uint64_t state_written)
{
    for (auto &c : closed_) {
        if (c.handed || (state_kept_ && (!c.save || c.save > state_finished)))
            continue;
        if (state_kept_ && c.save > state_written && !warned_unwritten_) {
            warned_unwritten_ = true;
            spdlog::warn("fleet: the state file could not be written; periods are sent anyway, "
                         "and a crash before it is written again may count a period twice");
        }
        exporter_.submit(c.start_ms, c.rows);
        c.handed = true;
    }
    std::erase_if(closed_,
                  [&](const Closed &c) { return c.handed && exporter_.durable(c.start_ms); });
}

control::FleetStatus FleetExport::status() const
{
    control::FleetStatus s{cfg_.clickhouse,  cfg_.database,     cfg_.sensor,
                           cfg_.interval_ms, exporter_.stats(), 0};
    s.periods_waiting = uint64_t(
        std::count_if(closed_.begin(), closed_.end(), [](const Closed &c) { return !c.handed; }));
    return s;
}

}  // namespace exf
