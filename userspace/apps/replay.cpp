// SPDX-License-Identifier: Apache-2.0
#include "apps/replay.h"

#include <bpf/libbpf.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdarg>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <ostream>
#include <set>
#include <sstream>
#include <thread>
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
        const Due due = due_at(ts_ns);
        if (due.harvest) {
            dp.read_tables(tables_);
            run_due(due, &tables_, t);
        } else if (due.evaluate) {
            run_due(due, nullptr, t);
        }
    }
    // The same in two halves, for the pipelined replay (ReplayPipeline):
    // which steps a packet time makes due (the thread that runs the
    // datapath, so that a harvest reads the tables as they are after that
    // packet), then running them (the thread that has the tracker).
    struct Due {
        uint64_t now_ms = 0;
        bool harvest = false, evaluate = false;
    };
    Due due_at(uint64_t ts_ns)
    {
        Due d;
        d.now_ms = ts_ns / 1000000;
        if (!harvest_every_.started()) {
            harvest_every_.start(d.now_ms);
            eval_every_.start(d.now_ms);
        }
        d.harvest = harvest_every_.due(d.now_ms);
        d.evaluate = eval_every_.due(d.now_ms);
        return d;
    }
    // tables: the datapath's tables at that packet when due.harvest.
    void run_due(const Due &due, const Tables *tables, const FlowTracker &t)
    {
        if (due.harvest)
            harvest_.run(agg_, tables->flows, tables->clients, t, due.now_ms);
        if (due.evaluate)
            collect(det_.evaluate(agg_, due.now_ms, due.now_ms));
    }
    void on_end(uint64_t ts_ns, const Datapath &dp, const FlowTracker &t) override
    {
        uint64_t now = std::max<uint64_t>(ts_ns / 1000000, agg_.clock_ms());
        dp.read_tables(tables_);
        harvest_.run(agg_, tables_.flows, tables_.clients, t, now);
        tables_ = {};  // the last harvest: the report's copy of the tables may take its memory
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
    Tables tables_;  // the last harvest's, its storage reused by the next
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

// The pipelined replay (--threads 2): one thread reads the capture and runs
// the datapath, the other takes the events into the flow tracker (TLS
// reassembly and parsing, JA4, QUIC decryption) and runs the harvests and
// rule evaluations. A Batch carries a stretch of packets' work from the
// first to the second in packet order: the events, and the harvests and
// evaluations that came due, each harvest with the tables copied at its
// packet, so the second thread sees exactly what one thread would have.
struct Batch {
    struct Step {
        uint64_t packet;  // 1-based packet number; 0: after the last packet
        uint32_t event_off, event_len;
        int32_t due;  // index into dues, or -1: an event in bytes
    };
    std::vector<uint8_t> bytes;
    std::vector<Step> steps;
    std::vector<DetectReplayStage::Due> dues;
    // One for each due harvest, in order. Not kept for reuse as the one
    // thread's are: every batch in circulation would hold a copy (peak RSS).
    std::vector<Tables> tables;

    void add_event(uint64_t packet, std::span<const uint8_t> ev)
    {
        steps.push_back({packet, uint32_t(bytes.size()), uint32_t(ev.size()), -1});
        bytes.insert(bytes.end(), ev.begin(), ev.end());
    }
    void add_due(uint64_t packet, const DetectReplayStage::Due &due, const Datapath &dp)
    {
        steps.push_back({packet, 0, 0, int32_t(dues.size())});
        dues.push_back(due);
        if (due.harvest)
            tables.push_back(dp.tables());
    }
    // Big enough to hand over: the hand-over's locking is then paid per
    // thousands of packets, and the bytes in flight stay a few MiB.
    bool full() const { return steps.size() >= 4096 || bytes.size() >= (1u << 20); }
    void clear()
    {
        bytes.clear();
        steps.clear();
        dues.clear();
        tables.clear();
    }
};

// Batches from the datapath's thread to the tracker's, at most kInFlight
// waiting (memory stays bounded when the second thread is the slower), and
// the emptied ones back for reuse.
class BatchQueue {
public:
    std::unique_ptr<Batch> take_empty()
    {
        std::lock_guard lk(mu_);
        if (empty_.empty())
            return std::make_unique<Batch>();
        auto b = std::move(empty_.back());
        empty_.pop_back();
        return b;
    }
    // False when the consumer stopped (it failed): stop producing.
    bool push(std::unique_ptr<Batch> b)
    {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return full_.size() < kInFlight || stopped_; });
        if (stopped_)
            return false;
        full_.push_back(std::move(b));
        cv_.notify_all();
        return true;
    }
    void close()
    {
        std::lock_guard lk(mu_);
        closed_ = true;
        cv_.notify_all();
    }
    // The next batch; nullptr once closed and drained.
    std::unique_ptr<Batch> pop()
    {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return !full_.empty() || closed_; });
        if (full_.empty())
            return nullptr;
        auto b = std::move(full_.front());
        full_.pop_front();
        cv_.notify_all();
        return b;
    }
    void give_back(std::unique_ptr<Batch> b)
    {
        b->clear();
        std::lock_guard lk(mu_);
        empty_.push_back(std::move(b));
    }
    void stop()
    {
        std::lock_guard lk(mu_);
        stopped_ = true;
        cv_.notify_all();
    }
    bool stopped()
    {
        std::lock_guard lk(mu_);
        return stopped_;
    }

private:
    static constexpr size_t kInFlight = 4;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::unique_ptr<Batch>> full_;
    std::vector<std::unique_ptr<Batch>> empty_;
    bool closed_ = false, stopped_ = false;
};

// CPUs this process may run on (taskset, cgroup cpusets).
unsigned usable_cpus()
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return 1;
    return unsigned(CPU_COUNT(&set));
}

// One replay: every packet through the datapath, its events to the flow
// tracker and the stages, alerts as they come; then the report.
class Replay {
public:
    // pipeline: the detection stage when it is the only stage and two
    // threads run the replay (see Batch), else nullptr.
    Replay(const ReplayOptions &opts, std::vector<ReplayStage *> stages, PcapReader &reader,
           Datapath &dp, std::ostream &out, DetectReplayStage *pipeline)
        : opts_(opts), stages_(std::move(stages)), reader_(reader), dp_(dp), out_(out),
          name_(capture_name(opts.capture)), pipeline_(pipeline)
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
        if (pipeline_) {
            run_pipelined(*pipeline_);
            return;
        }
        PacketRef pkt;  // the frame in the reader's buffer, aligned as the kernel aligns packets
        try {
            while (reader_.next(pkt)) {
                process(pkt);
                dp_.drain_events([this](std::span<const uint8_t> ev) { on_event(ev); });
                for (auto *s : stages_)
                    s->on_packet(pkt.ts_ns, dp_, tracker_);
                flush_alerts();
            }
        } catch (const std::exception &e) {
            failure_ = packet_failure(e);
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

    // run_packets over two threads: this one reads and runs the datapath,
    // a second one takes the batches (see Batch) in order. When the second
    // fails, this one stops at its next hand-over, so the datapath may have
    // seen a few thousand packets more than the failing one (the message
    // names that packet).
    void run_pipelined(DetectReplayStage &det)
    {
        BatchQueue q;
        std::string late_failure;  // the second thread's
        {
            std::thread analyser([&] { analyse(q, det, late_failure); });
            // However this block is left: the second thread ends and is joined.
            struct Joiner {
                BatchQueue &q;
                std::thread &t;
                ~Joiner()
                {
                    q.close();
                    t.join();
                }
            } joiner{q, analyser};
            auto b = q.take_empty();
            PacketRef pkt;
            try {
                while (reader_.next(pkt)) {
                    process(pkt);
                    dp_.drain_events(
                        [&](std::span<const uint8_t> ev) { b->add_event(packets_, ev); });
                    const auto due = det.due_at(pkt.ts_ns);
                    if (due.harvest || due.evaluate)
                        b->add_due(packets_, due, dp_);
                    if ((b->full() || due.harvest) && !q.push(std::exchange(b, q.take_empty())))
                        break;  // the second thread failed: its message says where
                }
            } catch (const std::exception &e) {
                failure_ = packet_failure(e);
            }
            if (failure_.empty() && !q.stopped())
                failure_ = reader_.error();
            try {
                dp_.drain_events([&](std::span<const uint8_t> ev) { b->add_event(0, ev); });
            } catch (const std::exception &e) {
                if (failure_.empty())
                    failure_ = name_ + ": reading events: " + e.what();
            }
            q.push(std::move(b));
        }
        if (!late_failure.empty())
            failure_ = late_failure;  // the earlier packet of the two
        tracker_.finish();
    }

    // One packet through the datapath (both loops).
    void process(const PacketRef &pkt)
    {
        static const uint8_t kNoBytes[1] = {0};
        packets_++;
        last_ts_ = pkt.ts_ns;
        std::span<const uint8_t> frame = pkt.frame;
        if (frame.empty())
            frame = std::span<const uint8_t>(kNoBytes, 0);
        dp_.process(frame, pkt.ts_ns);
    }
    std::string packet_failure(const std::exception &e) const
    {
        return name_ + ": packet " + std::to_string(reader_.packets_read()) + ": " + e.what();
    }

    // The second thread: each batch's events and due steps, in order, as
    // run_packets would have run them; at the first failure it stops the
    // first thread and drains the rest unread.
    void analyse(BatchQueue &q, DetectReplayStage &det, std::string &failure)
    {
        while (auto b = q.pop()) {
            if (failure.empty()) {
                const Batch::Step *at = nullptr;
                try {
                    size_t harvests = 0;
                    for (const auto &st : b->steps) {
                        at = &st;
                        if (st.due < 0) {
                            on_event(std::span<const uint8_t>(b->bytes).subspan(st.event_off,
                                                                                st.event_len));
                            continue;
                        }
                        const auto &due = b->dues[size_t(st.due)];
                        det.run_due(due, due.harvest ? &b->tables[harvests++] : nullptr, tracker_);
                        flush_alerts();
                    }
                } catch (const std::exception &e) {
                    failure = at && at->packet ? name_ + ": packet " + std::to_string(at->packet) +
                                                     ": " + e.what()
                                               : name_ + ": reading events: " + e.what();
                    q.stop();
                }
            }
            q.give_back(std::move(b));
        }
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
    DetectReplayStage *pipeline_;
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

        // Two threads when there are CPUs for them and no other stage needs
        // the datapath after each packet.
        const unsigned threads = opts.threads ? opts.threads : std::min(usable_cpus(), 2u);
        DetectReplayStage *pipeline = threads >= 2 && stages.empty() ? detection.get() : nullptr;
        Replay replay(opts, std::move(all_stages), *reader, *dp, out, pipeline);
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
