// SPDX-License-Identifier: Apache-2.0
#include "apps/replay.h"

#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <set>
#include <sstream>
#include <tuple>

#include "apps/tls_attribution.h"
#include "capture/maps.h"
#include "capture/pcap_reader.h"
#include "common/error.h"
#include "common/log.h"
#include "common/periodic.h"
#include "common/text.h"
#include "config/config.h"
#include "detect/detector.h"
#include "harvest/harvest_stage.h"
#include "output/output.h"

namespace exf {

namespace {

using ojson = nlohmann::ordered_json;

// Is the process able to load BPF programs (root, CAP_BPF or CAP_SYS_ADMIN)?
bool may_load_bpf()
{
    if (geteuid() == 0)
        return true;
    std::ifstream st("/proc/self/status");
    std::string line;
    while (std::getline(st, line)) {
        if (line.rfind("CapEff:", 0) != 0)
            continue;
        unsigned long long caps = std::strtoull(line.c_str() + 7, nullptr, 16);
        constexpr unsigned kCapSysAdmin = 21, kCapBpf = 39;
        return (caps >> kCapBpf & 1) || (caps >> kCapSysAdmin & 1);
    }
    return false;
}

int quiet_libbpf(enum libbpf_print_level, const char *, va_list) { return 0; }

const char *datapath_label(const Datapath &dp)
{
    return std::string_view(dp.name()) == "bpf" ? "bpf" : "user";
}

}  // namespace

// Harvest, aggregate, detect, on packet time (see replay.h).
class DetectReplayStage : public ReplayStage {
public:
    explicit DetectReplayStage(const Config &cfg)
        : harvest_every_(cfg.harvest_interval_ms), eval_every_(cfg.detect.interval_ms),
          agg_(cfg.aggregate), det_(cfg.detect)
    {}
    void on_tls_meta(const FlowRecord &r) override { attribute_tls(det_, agg_, r); }
    void on_packet(uint64_t ts_ns, const Datapath &dp, const FlowTracker &t) override
    {
        uint64_t now = ts_ns / 1000000;
        if (!harvest_every_.started()) {
            harvest_every_.start(now);
            eval_every_.start(now);
        }
        if (harvest_every_.due(now)) {
            auto tb = dp.tables();
            harvest_.run(agg_, tb.flows, tb.clients, t, now);
        }
        if (eval_every_.due(now))
            collect(det_.evaluate(agg_, now, now));
    }
    void on_end(uint64_t ts_ns, const Datapath &dp, const FlowTracker &t) override
    {
        uint64_t now = std::max<uint64_t>(ts_ns / 1000000, agg_.clock_ms());
        auto tb = dp.tables();
        harvest_.run(agg_, tb.flows, tb.clients, t, now);
        collect(det_.evaluate(agg_, now, now));
    }
    void take_alerts(std::vector<Alert> &out) override
    {
        for (auto &a : alerts_)
            out.push_back(std::move(a));
        alerts_.clear();
    }

private:
    void collect(const std::vector<detect::AlertRecord> &records)
    {
        for (auto &r : records) {
            Alert a;
            a.fields = nlohmann::ordered_json::parse(output::format_json(r));
            alerts_.push_back(std::move(a));
        }
    }
    Periodic harvest_every_, eval_every_;  // on packet time
    agg::Aggregator agg_;
    detect::Detector det_;
    HarvestStage harvest_;
    std::vector<Alert> alerts_;
};

namespace {

const std::string kProg = "exfilmon replay: ";

// A replay that cannot start: the message for stderr and the exit status
// (1 input it cannot use, 2 usage or configuration).
struct Refused {
    int status;
    std::string message;
};

// The configuration: its [bpf] options (TLS ports, table sizes), the
// aggregation and the rules; the built-in ones without --config.
Config replay_config(const ReplayOptions &opts, std::ostream &err)
{
    if (opts.config_path.empty())
        return {};
    auto res = load_config(opts.config_path);
    for (const auto &i : res.issues)
        err << i.format() << "\n";
    if (!res.ok())
        throw Refused{2, ""};
    return res.config;
}

// Input that cannot be used exits 1, as a capture that turns out damaged;
// standard input on a terminal is a usage error.
std::unique_ptr<PcapReader> open_capture(const std::string &capture)
{
    if (capture == kStdinCapture && isatty(STDIN_FILENO))
        throw Refused{2, "-: standard input is a terminal; pipe a capture into it "
                         "(tcpdump -w - ... | exfilmon replay -)"};
    if (std::error_code ec; std::filesystem::is_directory(capture, ec))
        throw Refused{1, capture + ": is a directory, not a capture file"};
    try {
        return std::make_unique<PcapReader>(capture);
    } catch (const std::exception &e) {
        throw Refused{1, e.what()};
    }
}

// --datapath user (the default): the userspace build; bpf: the BPF program or
// an error; auto: the BPF program when it loads, else the userspace build,
// saying why.
std::unique_ptr<Datapath> choose_datapath(DatapathChoice choice, const SensorOptions &sensor,
                                          std::ostream &err)
{
    std::unique_ptr<Datapath> dp;
    std::string why_user;
    if (choice == DatapathChoice::bpf) {
        route_libbpf_logs(false);
        try {
            dp = make_bpf_test_run_datapath(sensor);
        } catch (const std::exception &e) {
            throw Refused{1, std::string("cannot load the BPF program: ") + e.what() +
                                 "; --datapath user runs without them"};
        }
    } else if (choice == DatapathChoice::automatic) {
        if (may_load_bpf()) {
            libbpf_set_print(quiet_libbpf);  // a failure is reported below, once
            try {
                dp = make_bpf_test_run_datapath(sensor);
            } catch (const std::exception &e) {
                why_user = std::string("the BPF program did not load: ") + e.what();
            }
            route_libbpf_logs(false);
        } else {
            why_user = "no root or CAP_BPF to load the BPF program";
        }
    }
    if (!dp) {
        try {
            dp = make_user_datapath(sensor);
        } catch (const std::exception &e) {
            throw Refused{2, e.what()};  // only options can make it fail
        }
    }
    err << kProg << "datapath " << datapath_label(*dp)
        << (std::string_view(dp->name()) == "bpf" ? " (the BPF program via BPF_PROG_TEST_RUN)"
                                                  : " (the datapath's userspace build)");
    if (!why_user.empty())
        err << ": " << why_user;
    err << "\n";
    return dp;
}

// One replay: every packet through the datapath, its events to the flow
// tracker and the stages, alerts as they come; then the report.
class Replay {
public:
    Replay(const ReplayOptions &opts, std::vector<ReplayStage *> stages, PcapReader &reader,
           Datapath &dp, std::ostream &out)
        : opts_(opts), stages_(std::move(stages)), reader_(reader), dp_(dp), out_(out),
          name_(capture_name(opts.capture))
    {
        tracker_.set_on_flow_end([this](const FlowRecord &r) {
            if (r.finalized && r.has_counters && r.end_reason == EXF_END_REUSE)
                reused_.push_back(r);
        });
        tracker_.set_on_tls_meta([this](const FlowRecord &r) {
            for (auto *s : stages_)
                s->on_tls_meta(r);
        });
    }

    // Every packet, then the events left; failure_ says where reading stopped.
    void run_packets()
    {
        PacketRef pkt;  // the frame in the reader's buffer, aligned as the kernel aligns packets
        static const uint8_t kNoBytes[1] = {0};
        try {
            while (reader_.next(pkt)) {
                packets_++;
                last_ts_ = pkt.ts_ns;
                std::span<const uint8_t> frame = pkt.frame;
                if (frame.empty())
                    frame = std::span<const uint8_t>(kNoBytes, 0);
                dp_.process(frame, pkt.ts_ns);
                dp_.drain_events([this](std::span<const uint8_t> ev) { on_event(ev); });
                for (auto *s : stages_)
                    s->on_packet(pkt.ts_ns, dp_, tracker_);
                flush_alerts();
            }
        } catch (const std::exception &e) {
            failure_ =
                name_ + ": packet " + std::to_string(reader_.packets_read()) + ": " + e.what();
        }
        if (failure_.empty())
            failure_ = reader_.error();
        try {
            dp_.drain_events([this](std::span<const uint8_t> ev) { on_event(ev); });
        } catch (const std::exception &e) {
            if (failure_.empty())
                failure_ = name_ + ": reading events: " + e.what();
        }
        tracker_.finish();
    }

    // The stages' last step and the report; throws when the tables cannot
    // be read (nothing trustworthy to print).
    void report(const agg::AggConfig &agg)
    {
        for (auto *s : stages_)
            s->on_end(last_ts_, dp_, tracker_);
        flush_alerts();
        report_ = build_report(dp_, tracker_, reused_, opts_.flows, agg);
        if (opts_.format == ReplayFormat::json)
            write_json(report_, opts_.flows, out_);
        else
            write_table(report_, table_alerts_, opts_.flows, out_);
        out_.flush();
    }

    void print_summary(std::ostream &err) const
    {
        const auto &st = tracker_.stats();
        err << kProg << name_ << ": " << packets_ << " packets, " << report_.clients.size()
            << " clients, " << report_.flow_count << " TLS/QUIC flows; events " << st.events << " ("
            << st.hello_events << " hello, " << st.end_events << " flow end, " << st.bad_events
            << " invalid); " << st.hellos_done << " ClientHellos parsed";
        if (!tracker_.anomalies().empty()) {
            err << "; anomalies:";
            for (const auto &[anomaly, n] : tracker_.anomalies())
                err << " " << anomaly << "=" << n;
        }
        err << "\n";
    }

    const std::string &failure() const { return failure_; }
    const std::string &name() const { return name_; }

private:
    void on_event(std::span<const uint8_t> ev)
    {
        tracker_.on_event(ev);
        for (auto *s : stages_)
            s->on_event(ev, tracker_);
    }
    // JSON alerts print as they come; the table prints them first, at the end.
    void flush_alerts()
    {
        std::vector<Alert> alerts;
        for (auto *s : stages_)
            s->take_alerts(alerts);
        for (auto &a : alerts) {
            if (opts_.format == ReplayFormat::json)
                out_ << alert_json(a) << "\n";
            else
                table_alerts_.push_back(std::move(a));
        }
    }

    const ReplayOptions &opts_;
    std::vector<ReplayStage *> stages_;
    PcapReader &reader_;
    Datapath &dp_;
    std::ostream &out_;
    const std::string name_;
    FlowTracker tracker_;
    std::vector<FlowRecord> reused_;
    std::vector<Alert> table_alerts_;
    ReplayReport report_;
    uint64_t packets_ = 0, last_ts_ = 0;
    std::string failure_;
};

}  // namespace

int run_replay(const ReplayOptions &opts, std::ostream &out, std::ostream &err,
               std::span<ReplayStage *const> stages)
{
    init_logging("warn");  // spdlog on stderr: stdout is the report
    try {
        Config cfg = replay_config(opts, err);
        std::unique_ptr<DetectReplayStage> detection;
        try {
            detection = std::make_unique<DetectReplayStage>(cfg);
        } catch (const std::exception &e) {
            throw Refused{2, e.what()};
        }
        std::vector<ReplayStage *> all_stages(stages.begin(), stages.end());
        all_stages.push_back(detection.get());
        SensorOptions sensor = cfg.bpf;
        sensor.pin = false;         // never touch a running daemon's pinned maps
        sensor.packet_time = true;  // the capture's clock
        auto reader = open_capture(opts.capture);
        auto dp = choose_datapath(opts.datapath, sensor, err);

        Replay replay(opts, std::move(all_stages), *reader, *dp, out);
        replay.run_packets();
        try {
            replay.report(cfg.aggregate);
        } catch (const std::exception &e) {
            err << kProg << "error: " << replay.name() << ": " << e.what() << "\n";
            if (!replay.failure().empty())
                err << kProg << "error: " << replay.failure() << "\n";
            return 1;
        }
        replay.print_summary(err);
        if (!replay.failure().empty()) {
            err << kProg << "error: " << replay.failure() << "\n";
            return 1;
        }
        return 0;
    } catch (const Refused &r) {
        if (!r.message.empty())
            err << kProg << r.message << "\n";
        return r.status;
    }
}

}  // namespace exf
