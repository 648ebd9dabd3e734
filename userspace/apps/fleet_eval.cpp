// SPDX-License-Identifier: Apache-2.0
#include "apps/fleet_eval.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>
#include <ostream>
#include <spdlog/spdlog.h>
#include <thread>

#include "apps/fleet_admin.h"
#include "common/error.h"
#include "config/run_checks.h"
#include "detect/detector.h"
#include "fleet/clickhouse.h"
#include "fleet/fleet_figures.h"
#include "fleet/rule_sql.h"
#include "fleet/schema.h"
#include "output/dispatch.h"
#include "output/output.h"

namespace exf {

namespace {

constexpr int kUnreachableExit = 1;
constexpr uint64_t kHourS = 3600;
// A closed hour is rolled up once sensors have had this long to send its
// last periods (a spool emptied later than that is still summed exactly by
// windows shorter than fleet::kRollupFromMs, which read traffic).
constexpr uint64_t kRollupGraceS = 300;
constexpr uint64_t kRollupHoursPerPass = 24;  // bounds one evaluation's extra work
constexpr uint64_t kOutputsDrainMs = 2000;

std::atomic<bool> g_stop{false};
void on_stop(int) { g_stop = true; }

uint64_t wall_ms()
{
    return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count());
}

// "2026-11-23T12:00:00.123Z" as Unix ms; 0 when it is not one.
uint64_t parse_rfc3339_ms(const std::string &s)
{
    std::tm tm{};
    int ms = 0;
    if (std::sscanf(s.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                    &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) < 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    return t < 0 ? 0 : uint64_t(t) * 1000 + uint64_t(ms);
}

// One row of the alerts table for a record.
std::string alert_row(const detect::AlertRecord &r)
{
    nlohmann::json row = {{"time_ms", r.time_ms},
                          {"id", r.id},
                          {"state", detect::state_name(r.state)},
                          {"rule", r.rule},
                          {"entity_kind", r.entity_kind},
                          {"entity", r.entity},
                          {"record", output::format_json(r)}};
    return row.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace) + "\n";
}

// An alert the table holds open, as the detector resumes it; nullopt when
// its record cannot be read back.
std::optional<detect::OpenAlert> open_alert(const std::vector<std::string> &row)
{
    if (row.size() < 5)
        return std::nullopt;
    auto kind = detect::parse_rule_entity(row[2]);
    auto j = nlohmann::json::parse(row[4], nullptr, false);
    if (!kind || j.is_discarded() || !j.contains("exfilmon"))
        return std::nullopt;
    const auto &x = j["exfilmon"];
    auto field = [&](const char *k) {
        return x.contains(k) && x[k].is_string() ? x[k].get<std::string>() : std::string();
    };
    std::string k1, k2;
    switch (*kind) {
    case agg::EntityKind::client: k1 = field("client"); break;
    case agg::EntityKind::subnet: k1 = field("subnet"); break;
    case agg::EntityKind::api_host: k1 = field("sni"); break;
    case agg::EntityKind::client_api_host:
        k1 = field("client");
        k2 = field("sni");
        break;
    case agg::EntityKind::cohort: k1 = field("cohort"); break;
    case agg::EntityKind::host: break;
    case agg::EntityKind::ja4: k1 = field("ja4"); break;
    case agg::EntityKind::ja4_sni:
        k1 = field("ja4");
        k2 = field("sni");
        break;
    }
    auto key = fleet::entity_key(*kind, k1, k2);
    auto metric = detect::parse_metric(field("metric"));
    if (!key || !metric)
        return std::nullopt;
    detect::OpenAlert a;
    a.id = row[0];
    a.rule = row[1];
    a.kind = *kind;
    a.key = *key;
    a.metric = *metric;
    a.value = x.value("value", 0.0);
    a.threshold = x.value("threshold", 0.0);
    a.count = x.value("count", 1u);
    a.opened_wall_ms = parse_rfc3339_ms(j["event"].value("start", std::string()));
    return a;
}

class FleetEvaluator {
public:
    FleetEvaluator(const Config &cfg, fleet::ClickHouse &ch)
        : cfg_(cfg), db_(cfg.fleet.database), ch_(ch), detector_(cfg.detect),
          figures_(ch, db_, smallest_scale(cfg.detect)),
          outputs_(
              output::start_outputs(output::output_configs(cfg.outputs, cfg.outputs_configured)))
    {}

    ~FleetEvaluator()
    {
        for (auto &o : outputs_)
            o->flush(kOutputsDrainMs);
    }

    // Alerts a previous run left open carry on under their IDs.
    fleet::Reply resume_open_alerts(uint64_t now_ms)
    {
        auto r = ch_.query(fleet::open_alerts_sql(db_));
        if (!r.ok())
            return r;
        size_t resumed = 0;
        for (auto &row : fleet::tsv_rows(r.body))
            if (auto a = open_alert(row); a && detector_.resume(*a, now_ms))
                resumed++;
        spdlog::info("fleet: {} open alerts taken back from {}.alerts", resumed, db_);
        return {};
    }

    void evaluate(uint64_t now_ms)
    {
        roll_up(now_ms / 1000);
        drop_expired(now_ms / 1000);
        figures_.clear_failure();
        auto records = detector_.evaluate(figures_, now_ms, now_ms);
        output::dispatch(records, outputs_);
        record_alerts(records);
    }

private:
    static double smallest_scale(const detect::DetectConfig &d)
    {
        double s = 1.0;
        for (auto &[name, scale] : d.sni_scale)
            s = std::min(s, scale);
        return s;
    }

    uint64_t number(const std::string &sql)
    {
        auto r = ch_.query(sql);
        if (!r.ok())
            throw Error(r.why);
        return std::strtoull(r.body.c_str(), nullptr, 10);
    }

    // Closed hours into traffic_hourly, each once (a rerun replaces it: a
    // newer version under FINAL). The first pass starts after the newest
    // hour there or, in an empty rollup, at the oldest traffic the longest
    // rule window reads.
    void roll_up(uint64_t now_s)
    {
        try {
            if (!rolled_to_s_)
                rolled_to_s_ = first_hour_to_roll(now_s);
            uint64_t closed_to = (now_s - kRollupGraceS) / kHourS * kHourS;
            for (uint64_t n = 0; rolled_to_s_ < closed_to && n < kRollupHoursPerPass; n++) {
                auto r = ch_.query(fleet::rollup_sql(db_, rolled_to_s_, uint32_t(now_s)));
                if (!r.ok())
                    throw Error(r.why);
                rolled_to_s_ += kHourS;
            }
        } catch (const Error &e) {
            spdlog::warn("fleet: hourly rollup: {}", e.what());
        }
        figures_.set_rolled_to(rolled_to_s_);
    }

    uint64_t first_hour_to_roll(uint64_t now_s)
    {
        if (uint64_t last = number(fleet::last_rolled_hour_sql(db_)))
            return last + kHourS;
        uint64_t longest_ms = kHourS * 1000;
        for (auto &r : cfg_.detect.rules)
            longest_ms = std::max(longest_ms, r.window_ms);
        uint64_t oldest_read = (now_s - std::min(now_s, longest_ms / 1000)) / kHourS * kHourS;
        uint64_t first = number(fleet::first_period_sql(db_)) / kHourS * kHourS;
        return std::max(first, oldest_read);
    }

    // Retention without TTL (18.16): whole partitions older than
    // [fleet] retention, checked once an hour.
    void drop_expired(uint64_t now_s)
    {
        if (now_s / kHourS == last_retention_hour_)
            return;
        last_retention_hour_ = now_s / kHourS;
        uint64_t cutoff = now_s - std::min(now_s, cfg_.fleet.retention_ms / 1000);
        auto r = ch_.query(fleet::expired_partitions_sql(db_, cutoff));
        if (!r.ok()) {
            spdlog::warn("fleet: retention: {}", r.why);
            return;
        }
        for (auto &row : fleet::tsv_rows(r.body)) {
            if (row.size() < 2)
                continue;
            auto d = ch_.query(fleet::drop_partition_sql(db_, row[0], row[1]));
            if (d.ok())
                spdlog::info("fleet: retention: dropped {}.{} partition {}", db_, row[0], row[1]);
            else
                spdlog::warn("fleet: retention: {}", d.why);
        }
    }

    // Every record into the alerts table; rows that could not be written
    // are tried again with the next evaluation's.
    void record_alerts(const std::vector<detect::AlertRecord> &records)
    {
        for (auto &r : records)
            pending_rows_ += alert_row(r);
        if (pending_rows_.empty())
            return;
        auto r = ch_.insert_json_rows(db_ + ".alerts", pending_rows_);
        if (r.ok())
            pending_rows_.clear();
        else
            spdlog::warn("fleet: alerts table: {} (kept for the next evaluation)", r.why);
    }

    const Config &cfg_;
    std::string db_;
    fleet::ClickHouse &ch_;
    detect::Detector detector_;
    fleet::FleetFigures figures_;
    output::Outputs outputs_;
    uint64_t rolled_to_s_ = 0;
    uint64_t last_retention_hour_ = 0;
    std::string pending_rows_;
};

// "" when the retention keeps every rule's window.
std::string retention_problem(const Config &cfg)
{
    for (auto &r : cfg.detect.rules)
        if (r.window_ms > cfg.fleet.retention_ms)
            return "[fleet] retention is shorter than the window of rule '" + r.name +
                   "': raise retention to at least the longest window";
    return "";
}

void install_signal_handlers()
{
    struct sigaction sa {};
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace

int run_fleet_evaluator(const FleetEvalOptions &opts, std::ostream &out, std::ostream &err)
{
    auto cfg = load_fleet_config(opts.config_path, err);
    if (!cfg)
        return kConfigErrorExit;
    if (auto why = retention_problem(*cfg); !why.empty()) {
        err << opts.config_path << ": " << why << "\n";
        return kConfigErrorExit;
    }
    try {
        fleet::ClickHouse ch(cfg->fleet);
        fleet::Failure failure;
        if (auto problem = fleet::schema_problem(ch, cfg->fleet.database, &failure);
            !problem.empty()) {
            err << "exfilmon fleet: " << problem << "\n";
            return fleet::is_configuration_failure(failure) ? kConfigErrorExit : kUnreachableExit;
        }
        FleetEvaluator eval(*cfg, ch);
        if (auto r = eval.resume_open_alerts(wall_ms()); !r.ok()) {
            err << "exfilmon fleet: " << r.why << "\n";
            return fleet::is_configuration_failure(r.failure) ? kConfigErrorExit : kUnreachableExit;
        }
        out << "exfilmon fleet: evaluating " << cfg->detect.rules.size() << " rules over "
            << cfg->fleet.database << " at " << ch.url() << " every " << cfg->detect.interval_ms
            << " ms" << std::endl;
        install_signal_handlers();
        auto next = std::chrono::steady_clock::now();
        while (!g_stop) {
            eval.evaluate(wall_ms());
            if (opts.once)
                break;
            next += std::chrono::milliseconds(cfg->detect.interval_ms);
            while (!g_stop && std::chrono::steady_clock::now() < next)
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return 0;
    } catch (const Error &e) {
        err << "exfilmon fleet: " << e.what() << "\n";
        return kConfigErrorExit;
    }
}

}  // namespace exf
