#include "apps/replay.h"

#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <set>
#include <sstream>
#include <tuple>

#include "capture/maps.h"
#include "capture/pcap_reader.h"
#include "common/error.h"
#include "common/log.h"
#include "common/text.h"
#include "config/config.h"
#include "detect/detector.h"
#include "output/output.h"
#include "harvest/harvest_stage.h"
#include "apps/tls_attribution.h"
#include "common/periodic.h"

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
    {
    }
    void on_tls_meta(const FlowRecord &r) override
    {
        attribute_tls(det_, agg_, r);
    }
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

int run_replay(const ReplayOptions &opts, std::ostream &out, std::ostream &err,
               std::span<ReplayStage *const> stages)
{
    const std::string prog = "exfilmon replay: ";
    init_logging("warn");  // spdlog on stderr: stdout is the report

    // The configuration: its [bpf] options (TLS ports, table sizes), the
    // aggregation and the rules.
    Config cfg;
    if (!opts.config_path.empty()) {
        auto res = load_config(opts.config_path);
        for (const auto &i : res.issues)
            err << i.format() << "\n";
        if (!res.ok())
            return 2;
        cfg = res.config;
    }
    SensorOptions sensor = cfg.bpf;
    std::unique_ptr<DetectReplayStage> detection;
    try {
        detection = std::make_unique<DetectReplayStage>(cfg);
    } catch (const std::exception &e) {
        err << prog << e.what() << "\n";
        return 2;
    }
    std::vector<ReplayStage *> all_stages(stages.begin(), stages.end());
    all_stages.push_back(detection.get());
    stages = all_stages;
    sensor.pin = false;         // never touch a running daemon's pinned maps
    sensor.packet_time = true;  // the capture's clock

    // Input that cannot be used exits 1, as a capture that turns out damaged;
    // usage errors (options, configuration) exit 2.
    const std::string name = capture_name(opts.capture);
    if (opts.capture == kStdinCapture && isatty(STDIN_FILENO)) {
        err << prog << "-: standard input is a terminal; pipe a capture into it "
                       "(tcpdump -w - ... | exfilmon replay -)\n";
        return 2;
    }
    if (std::error_code ec; std::filesystem::is_directory(opts.capture, ec)) {
        err << prog << opts.capture << ": is a directory, not a capture file\n";
        return 1;
    }
    std::unique_ptr<PcapReader> reader;
    try {
        reader = std::make_unique<PcapReader>(opts.capture);
    } catch (const std::exception &e) {
        err << prog << e.what() << "\n";
        return 1;
    }

    // The datapath.
    std::unique_ptr<Datapath> dp;
    std::string why_user;
    if (opts.datapath == DatapathChoice::bpf) {
        route_libbpf_logs(false);
        try {
            dp = make_bpf_test_run_datapath(sensor);
        } catch (const std::exception &e) {
            err << prog << "cannot load the BPF program: " << e.what()
                << "; --datapath user runs without them\n";
            return 1;
        }
    } else if (opts.datapath == DatapathChoice::automatic) {
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
            err << prog << e.what() << "\n";
            return 2;  // only options can make it fail
        }
    }
    err << prog << "datapath " << datapath_label(*dp)
        << (std::string_view(dp->name()) == "bpf" ? " (the BPF program via BPF_PROG_TEST_RUN)"
                                                   : " (the datapath's userspace build)");
    if (!why_user.empty())
        err << ": " << why_user;
    err << "\n";

    FlowTracker tracker;
    std::vector<FlowRecord> reused;
    tracker.set_on_flow_end([&reused](const FlowRecord &r) {
        if (r.finalized && r.has_counters && r.end_reason == EXF_END_REUSE)
            reused.push_back(r);
    });
    tracker.set_on_tls_meta([&stages](const FlowRecord &r) {
        for (auto *s : stages)
            s->on_tls_meta(r);
    });

    std::vector<Alert> table_alerts;
    auto flush_alerts = [&] {
        std::vector<Alert> alerts;
        for (auto *s : stages)
            s->take_alerts(alerts);
        for (auto &a : alerts) {
            if (opts.format == ReplayFormat::json)
                out << alert_json(a) << "\n";
            else
                table_alerts.push_back(std::move(a));
        }
    };

    PacketRef pkt;  // the frame in the reader's buffer, aligned as the kernel aligns packets
    uint64_t packets = 0, last_ts = 0;
    std::string failure;
    static const uint8_t kNoBytes[1] = {0};
    auto on_event = [&](std::span<const uint8_t> ev) {
        tracker.on_event(ev);
        for (auto *s : stages)
            s->on_event(ev, tracker);
    };
    try {
        while (reader->next(pkt)) {
            packets++;
            last_ts = pkt.ts_ns;
            std::span<const uint8_t> frame = pkt.frame;
            if (frame.empty())
                frame = std::span<const uint8_t>(kNoBytes, 0);
            dp->process(frame, pkt.ts_ns);
            dp->drain_events(on_event);
            for (auto *s : stages)
                s->on_packet(pkt.ts_ns, *dp, tracker);
            flush_alerts();
        }
    } catch (const std::exception &e) {
        failure = name + ": packet " + std::to_string(reader->packets_read()) + ": " +
                  e.what();
    }
    if (failure.empty())
        failure = reader->error();
    try {
        dp->drain_events(on_event);
    } catch (const std::exception &e) {
        if (failure.empty())
            failure = name + ": reading events: " + e.what();
    }
    tracker.finish();
    ReplayReport rep;
    try {
        for (auto *s : stages)
            s->on_end(last_ts, *dp, tracker);
        flush_alerts();
        rep = build_report(*dp, tracker, reused, opts.flows, cfg.aggregate);
    } catch (const std::exception &e) {
        // The tables could not be read: nothing trustworthy to print.
        err << prog << "error: " << name << ": " << e.what() << "\n";
        if (!failure.empty())
            err << prog << "error: " << failure << "\n";
        return 1;
    }
    if (opts.format == ReplayFormat::json)
        write_json(rep, opts.flows, out);
    else
        write_table(rep, table_alerts, opts.flows, out);
    out.flush();

    const auto &st = tracker.stats();
    err << prog << name << ": " << packets << " packets, " << rep.clients.size()
        << " clients, " << rep.flow_count << " TLS/QUIC flows; events " << st.events << " ("
        << st.hello_events << " hello, " << st.end_events << " flow end, " << st.bad_events
        << " invalid); " << st.hellos_done << " ClientHellos parsed";
    if (!tracker.anomalies().empty()) {
        err << "; anomalies:";
        for (const auto &[anomaly, n] : tracker.anomalies())
            err << " " << anomaly << "=" << n;
    }
    err << "\n";
    if (!failure.empty()) {
        err << prog << "error: " << failure << "\n";
        return 1;
    }
    return 0;
}

}  // namespace exf
