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
#include "common/addr.h"
#include "common/error.h"
#include "config/run_checks.h"
#include "control/metrics_server.h"
#include "control/snapshot.h"
#include "detect/detector.h"
#include "fleet/batch_feed.h"
#include "fleet/clickhouse.h"
#include "fleet/failure_log.h"
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
// The in-memory windows look for new batches among the periods of the last
// kRecentS at every evaluation and, every kSweepEveryS, among those of the
// last kLateS (a spool emptied after an outage). A batch later than that is
// read by the next start.
constexpr uint64_t kRecentS = 120;
constexpr uint64_t kLateS = 2 * kHourS;
constexpr uint64_t kSweepEveryS = 60;
constexpr uint64_t kExactS = 600;

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

// What the log says of rule reads that failed in one evaluation: one
// reason with the rules it stopped, or each rule's own.
std::string failed_rules_text(const std::map<std::string, std::string> &failed, size_t rules)
{
    std::string names, reasons;
    bool one_reason = true;
    for (auto &[rule, why] : failed) {
        names += (names.empty() ? "" : ", ") + rule;
        reasons += (reasons.empty() ? "" : "; ") + rule + ": " + why;
        one_reason = one_reason && why == failed.begin()->second;
    }
    std::string head = std::to_string(failed.size()) + " of " + std::to_string(rules) + " rules";
    return one_reason ? head + " (" + names + "): " + failed.begin()->second
                      : head + ": " + reasons;
}

class FleetEvaluator {
public:
    FleetEvaluator(const Config &cfg, fleet::ClickHouse &ch)
        : cfg_(cfg), db_(cfg.fleet.database), ch_(ch), detector_(cfg.detect),
          figures_(ch, db_, smallest_scale(cfg.detect)),
          out_cfgs_(output::output_configs(cfg.outputs, cfg.outputs_configured)),
          outputs_(output::start_outputs(out_cfgs_)), start_wall_ms_(wall_ms())
    {
        status_.rules = cfg.detect.rules.size();
    }

    // How long the windows in memory keep each resolution: periods for the
    // last 10 minutes (windows that short are summed exactly), minutes for
    // the longest window under fleet::kRollupFromMs (an hour at least),
    // hours for the longest window and the hour its old end falls in.
    static fleet::FleetWindows::Spans window_spans(const detect::DetectConfig &d)
    {
        fleet::FleetWindows::Spans s;
        s.exact_s = kExactS;
        s.fine_s = kHourS;
        s.keep_s = kHourS;
        for (auto &r : d.rules) {
            if (r.window_ms < fleet::kRollupFromMs)
                s.fine_s = std::max(s.fine_s, r.window_ms / 1000);
            s.keep_s = std::max(s.keep_s, r.window_ms / 1000 + kHourS);
        }
        return s;
    }

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
        auto started = std::chrono::steady_clock::now();
        roll_up(now_ms / 1000);
        drop_expired(now_ms / 1000);
        figures_.clear_failures();
        if (cfg_.fleet.evaluate_in_memory)
            refresh_windows(now_ms / 1000);
        auto records = detector_.evaluate(figures_, now_ms, now_ms);
        output::dispatch(records, outputs_);
        record_alerts(records);
        note_rule_reads(now_ms);
        for (auto &r : records)
            alert_counts_[{r.rule, detect::severity_name(r.severity),
                           detect::state_name(r.state)}]++;
        status_.last_duration_s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        if (metrics_)
            metrics_->publish(metrics());
    }

    // The Prometheus endpoint ([metrics]; its own port unless listen is
    // set, so that the evaluator and a sensor can share a host). One that
    // cannot bind is logged and left out, as in the daemon.
    void serve_metrics()
    {
        if (!cfg_.metrics_enabled)
            return;
        uint16_t port =
            cfg_.metrics_listen_set ? cfg_.metrics_port : Config::kFleetEvaluatorMetricsPort;
        try {
            metrics_ = std::make_unique<control::MetricsServer>(cfg_.metrics_host, port);
            metrics_->start();
            spdlog::info("metrics on http://{}/metrics",
                         format_host_port(cfg_.metrics_host, std::to_string(port)));
        } catch (const Error &e) {
            spdlog::error("{}", e.what());
        }
    }

private:
    // Brings the in-memory windows up to date: the whole span once (from
    // scratch again after a failed start), then the batches that arrived
    // since. Until the span is read, every rule is skipped.
    void refresh_windows(uint64_t now_s)
    {
        auto spans = window_spans(cfg_.detect);
        fleet::Reply r;
        if (!windows_built_) {
            windows_ =
                std::make_unique<fleet::FleetWindows>(fleet::rule_kinds(cfg_.detect.rules), spans);
            feed_ = std::make_unique<fleet::BatchFeed>(ch_, db_);
            windows_->set_clock(now_s * 1000);
            uint64_t from = now_s - std::min(now_s, spans.keep_s);
            r = feed_->rebuild(*windows_, from, std::clamp(rolled_to_s_, from, now_s), now_s);
            windows_built_ = r.ok();
            if (r.ok())
                spdlog::info("fleet: windows read from {}: {} rows, {} entities", db_,
                             feed_->rows_read(), windows_->entities());
        } else {
            windows_->set_clock(now_s * 1000);
            bool sweep = now_s >= last_sweep_s_ + kSweepEveryS;
            r = feed_->poll(*windows_, now_s - (sweep ? kLateS : kRecentS), now_s);
            if (sweep && r.ok()) {
                last_sweep_s_ = now_s;
                windows_->age(now_s);
                feed_->forget_before(now_s - std::min(now_s, spans.keep_s));
            }
        }
        if (r.ok())
            windows_log_.succeeded();
        else
            windows_log_.failed(r.why);
        figures_.use_windows(windows_.get(), r.ok(), r.why);
    }

    void note_rule_reads(uint64_t now_ms)
    {
        const auto &failed = figures_.failed_rules();
        status_.rules_failed = failed.size();
        status_.rule_failures += failed.size();
        if (failed.empty()) {
            rules_log_.succeeded();
            status_.last_complete_ms = now_ms;
        } else {
            rules_log_.failed(failed_rules_text(failed, cfg_.detect.rules.size()));
        }
    }

    control::MetricsSnapshot metrics() const
    {
        control::MetricsSnapshot m;
        m.version = EXFILMON_VERSION;
        m.start_wall_ms = start_wall_ms_;
        const auto &d = detector_.stats();
        m.evaluations = d.evaluations;
        m.last_eval_s = double(d.last_eval_us) / 1e6;
        m.alerts = alert_counts_;
        m.alerts_open = d.open_now;
        auto types = output::output_types(out_cfgs_);
        for (size_t i = 0; i < outputs_.size(); i++) {
            auto st = outputs_[i]->stats();
            m.outputs.push_back({types[i], st.spooled_now, st.sent, st.dropped, st.reconnects,
                                 st.connect_failures, st.write_errors, st.connected,
                                 st.spool_write_errors, st.spool_file_ok});
        }
        m.evaluator = status_;
        m.evaluator->rolled_to_s = rolled_to_s_;
        m.evaluator->alert_rows_waiting =
            size_t(std::count(pending_rows_.begin(), pending_rows_.end(), '\n'));
        if (windows_) {
            m.evaluator->window_entities = windows_->entities();
            m.evaluator->window_cells = windows_->cells();
            m.evaluator->batches_read = feed_->batches_read();
            m.evaluator->rows_read = feed_->rows_read();
        }
        return m;
    }

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
            rollup_log_.succeeded();
        } catch (const Error &e) {
            rollup_log_.failed(e.what());
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
            retention_log_.failed(r.why);
            return;
        }
        retention_log_.succeeded();
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
        if (r.ok()) {
            pending_rows_.clear();
            alerts_log_.succeeded();
        } else {
            alerts_log_.failed(r.why);
        }
    }

    const Config &cfg_;
    std::string db_;
    fleet::ClickHouse &ch_;
    detect::Detector detector_;
    fleet::FleetFigures figures_;
    std::unique_ptr<fleet::FleetWindows> windows_;
    std::unique_ptr<fleet::BatchFeed> feed_;
    bool windows_built_ = false;  // the whole span was read once
    uint64_t last_sweep_s_ = 0;
    std::vector<output::OutputConfig> out_cfgs_;
    output::Outputs outputs_;
    uint64_t rolled_to_s_ = 0;
    uint64_t last_retention_hour_ = 0;
    std::string pending_rows_;
    // Health: the log says each failure once and its end once (FailureLog);
    // the metrics count every one.
    const uint64_t start_wall_ms_;
    control::EvaluatorStatus status_;
    std::map<std::array<std::string, 3>, uint64_t> alert_counts_;  // rule, severity, state
    fleet::FailureLog rules_log_{"rule reads",
                                 "those rules are skipped, their alerts left as they are"};
    fleet::FailureLog rollup_log_{"hourly rollup",
                                  "long windows read the hours not rolled up from traffic"};
    fleet::FailureLog retention_log_{"retention", "tried again at the next hour"};
    fleet::FailureLog windows_log_{"traffic reads",
                                   "rules are skipped until the windows are up to date"};
    fleet::FailureLog alerts_log_{"alerts table",
                                  "records are kept and written with the next evaluation's"};
    std::unique_ptr<control::MetricsServer> metrics_;
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
        if (!opts.once)
            eval.serve_metrics();
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
