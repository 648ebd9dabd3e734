#include "pipeline/replay.h"

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
#include "pipeline/harvest_stage.h"

namespace exf {

namespace {

using ojson = nlohmann::ordered_json;

std::string dump(const ojson &j)
{
    // Attacker-controlled strings: invalid UTF-8 becomes U+FFFD, never an
    // exception or an invalid line.
    return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

Addr16 to_addr(const uint8_t *a)
{
    Addr16 out;
    std::memcpy(out.data(), a, 16);
    return out;
}

FlowReport flow_report(const exf_flow_key &k, const exf_flow &f)
{
    FlowReport r;
    r.client_addr = to_addr(flow_client_addr(k, f));
    r.server_addr = to_addr(flow_server_addr(k, f));
    r.client = format_addr(r.client_addr);
    r.server = format_addr(r.server_addr);
    r.client_port = flow_client_port(k, f);
    r.server_port = flow_server_port(k, f);
    r.transport = f.kind == EXF_KIND_QUIC ? "quic" : "tcp";
    r.first_ns = f.first_ns;
    unsigned in = flow_in_dir(f);
    r.packets_in = f.pkts[in];
    r.packets_out = f.pkts[in ^ 1];
    r.bytes_in = f.bytes[in];
    r.bytes_out = f.bytes[in ^ 1];
    return r;
}

void attach_meta(FlowReport &r, const FlowRecord *rec)
{
    if (!rec)
        return;
    if (rec->tls.known)
        r.tls = rec->tls;
    r.anomalies = rec->anomalies;
}

auto flow_order(const FlowReport &f)
{
    return std::tie(f.client_addr, f.first_ns, f.client_port, f.server_addr, f.server_port,
                    f.transport, f.bytes_in, f.bytes_out, f.packets_in, f.packets_out);
}

ojson nullable(const std::optional<std::string> &s)
{
    return s ? ojson(*s) : ojson(nullptr);
}

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

// At most `max` items, then "(+N)"; each item printable.
std::string table_cell_list(const std::vector<std::string> &v, size_t max = SIZE_MAX)
{
    std::string s;
    for (size_t i = 0; i < v.size() && i < max; i++) {
        if (!s.empty())
            s += ',';
        s += printable(v[i]);
    }
    if (v.size() > max)
        s += " (+" + std::to_string(v.size() - max) + ")";
    return s;
}

// Aligned columns; numeric columns right-aligned.
void print_columns(std::ostream &out, const std::vector<std::string> &head,
                   const std::vector<std::vector<std::string>> &rows,
                   const std::vector<bool> &right)
{
    std::vector<size_t> w(head.size());
    for (size_t i = 0; i < head.size(); i++)
        w[i] = head[i].size();
    for (const auto &r : rows)
        for (size_t i = 0; i < r.size(); i++)
            w[i] = std::max(w[i], r[i].size());
    auto line = [&](const std::vector<std::string> &cells) {
        std::string s;
        for (size_t i = 0; i < cells.size(); i++) {
            bool last = i + 1 == cells.size();
            size_t pad = w[i] - cells[i].size();
            if (i)
                s += "  ";
            if (right[i])
                s.append(pad, ' ');
            s += cells[i];
            if (!right[i] && !last)
                s.append(pad, ' ');
        }
        out << s << "\n";
    };
    line(head);
    for (const auto &r : rows)
        line(r);
}

// The alerts, first: what a reader looks for.
void write_alerts_table(const std::vector<Alert> &alerts, std::ostream &out)
{
    // Any stage's alert: a field it lacks prints as "-".
    auto text = [](const nlohmann::ordered_json &j, const char *obj, const char *key) {
        const auto *v = &j;
        if (obj) {
            auto it = j.find(obj);
            if (it == j.end() || !it->is_object())
                return std::string("-");
            v = &*it;
        }
        auto it = v->find(key);
        return it != v->end() && it->is_string() ? printable(it->get<std::string>())
                                                 : std::string("-");
    };
    std::vector<std::vector<std::string>> rows;
    for (const auto &a : alerts)
        rows.push_back({text(a.fields, nullptr, "@timestamp"), text(a.fields, "exfilmon", "state"),
                        text(a.fields, "exfilmon", "severity"), text(a.fields, nullptr, "message")});
    out << "ALERTS (" << alerts.size() << (alerts.empty() ? ": no rule fired" : ", as raised")
        << ")\n";
    if (!rows.empty())
        print_columns(out, {"TIME", "STATE", "SEVERITY", "ALERT"}, rows,
                      {false, false, false, false});
}

// The client addresses that count for one entity of the rules, and their sums.
struct EntityGroup {
    std::string entity;
    std::vector<const ClientReport *> members;  // by bytes out
    ClientReport total;                         // sni: the members' SNIs, distinct
};

bool more_bytes_out(const ClientReport *a, const ClientReport *b) { return a->bytes_out > b->bytes_out; }

// The clients by entity, the heaviest entity (bytes out) first.
std::vector<EntityGroup> group_by_entity(const std::vector<ClientReport> &clients)
{
    std::map<std::string, EntityGroup> by_entity;
    for (const auto &c : clients) {
        EntityGroup &g = by_entity[c.entity];
        g.entity = c.entity;
        g.members.push_back(&c);
        g.total.tls_flows += c.tls_flows;
        g.total.bytes_out += c.bytes_out;
        g.total.bytes_in += c.bytes_in;
        g.total.packets_out += c.packets_out;
        g.total.packets_in += c.packets_in;
    }
    std::vector<EntityGroup> groups;
    for (auto &[entity, g] : by_entity) {
        std::set<std::string> sni;
        for (const auto *c : g.members)
            sni.insert(c->sni.begin(), c->sni.end());
        g.total.sni.assign(sni.begin(), sni.end());
        std::stable_sort(g.members.begin(), g.members.end(), more_bytes_out);
        groups.push_back(std::move(g));
    }
    std::stable_sort(groups.begin(), groups.end(), [](const EntityGroup &a, const EntityGroup &b) {
        return more_bytes_out(&a.total, &b.total);
    });
    return groups;
}

// Client addresses under the entity the rules measure (an IPv6 client is its
// /64 by default): the rows that add up to an alert's value sit together,
// under a total row when there are several.
void write_clients_table(const ReplayReport &r, std::ostream &out)
{
    const auto groups = group_by_entity(r.clients);
    std::vector<std::vector<std::string>> rows;
    auto row = [&rows](const std::string &entity, const std::string &address,
                       const ClientReport &c) {
        rows.push_back({entity, address, std::to_string(c.tls_flows), std::to_string(c.bytes_out),
                        std::to_string(c.bytes_in), std::to_string(c.packets_out),
                        std::to_string(c.packets_in), table_cell_list(c.sni, 3)});
    };
    for (const auto &g : groups) {
        if (g.members.size() > 1)
            row(g.entity, "(" + std::to_string(g.members.size()) + " addresses)", g.total);
        for (const auto *c : g.members)
            row(g.entity, c->client, *c);
    }
    auto count = [](size_t n, const char *one, const char *many) {
        return std::to_string(n) + " " + (n == 1 ? one : many);
    };
    out << "CLIENTS (" << count(r.clients.size(), "address", "addresses") << " in "
        << count(groups.size(), "client entity", "client entities") << " of the rules, by bytes out)\n";
    print_columns(out,
                  {"CLIENT", "ADDRESS", "TLS_FLOWS", "BYTES_OUT", "BYTES_IN", "PKTS_OUT", "PKTS_IN",
                   "SNI"},
                  rows, {false, false, true, true, true, true, true, false});
}

}  // namespace

std::string printable(std::string_view raw) { return ascii_escape(raw); }

ReplayReport build_report(const Datapath &dp, const FlowTracker &tracker,
                          const std::vector<FlowRecord> &reused, bool with_flows,
                          const agg::AggConfig &agg)
{
    ReplayReport rep;
    const Tables tables = dp.tables();
    std::map<Addr16, std::set<std::string>> snis;
    if (!with_flows) {
        // Only the clients' SNIs: what the flows below would give, without
        // formatting and sorting every flow.
        auto add = [&](const exf_flow_key &k, const exf_flow &f, const FlowRecord *rec) {
            rep.flow_count++;
            if (rec && rec->tls.known && rec->tls.sni)
                snis[to_addr(flow_client_addr(k, f))].insert(*rec->tls.sni);
        };
        for (const auto &row : tables.flows)
            if (row.flow.kind == EXF_KIND_TLS || row.flow.kind == EXF_KIND_QUIC)
                add(row.key, row.flow, tracker.lookup(row.key));
        for (const auto &rec : reused)
            if (rec.has_counters)
                add(rec.key, rec.counters, &rec);
    }
    for (const auto &row : tables.flows) {
        if (!with_flows || (row.flow.kind != EXF_KIND_TLS && row.flow.kind != EXF_KIND_QUIC))
            continue;
        FlowReport f = flow_report(row.key, row.flow);
        attach_meta(f, tracker.lookup(row.key));
        rep.flows.push_back(std::move(f));
    }
    for (const auto &rec : reused) {
        if (!rec.has_counters || !with_flows)
            continue;
        FlowReport f = flow_report(rec.key, rec.counters);
        f.reused = true;
        attach_meta(f, &rec);
        rep.flows.push_back(std::move(f));
    }
    std::sort(rep.flows.begin(), rep.flows.end(),
              [](const FlowReport &a, const FlowReport &b) {
                  if (flow_order(a) != flow_order(b))
                      return flow_order(a) < flow_order(b);
                  return a.reused && !b.reused;  // the ended flow first
              });

    if (with_flows)
        rep.flow_count = rep.flows.size();
    for (const auto &f : rep.flows)
        if (f.tls && f.tls->sni)
            snis[f.client_addr].insert(*f.tls->sni);
    for (const auto &row : tables.clients) {
        ClientReport c;
        c.addr = to_addr(row.key.addr);
        c.client = format_addr(c.addr);
        c.entity = agg::format_key(agg::EntityKind::client, agg.client_key(c.addr));
        c.tls_flows = row.stats.tls_flows_opened;
        c.bytes_in = row.stats.bytes_in;
        c.bytes_out = row.stats.bytes_out;
        c.packets_in = row.stats.pkts_in;
        c.packets_out = row.stats.pkts_out;
        if (auto it = snis.find(c.addr); it != snis.end())
            c.sni.assign(it->second.begin(), it->second.end());
        rep.clients.push_back(std::move(c));
    }
    std::sort(rep.clients.begin(), rep.clients.end(),
              [](const ClientReport &a, const ClientReport &b) { return a.addr < b.addr; });
    return rep;
}

std::string client_json(const ClientReport &c)
{
    ojson j;
    j["type"] = "client";
    j["client"] = c.client;
    j["tls_flows"] = c.tls_flows;
    j["bytes_in"] = c.bytes_in;
    j["bytes_out"] = c.bytes_out;
    j["packets_in"] = c.packets_in;
    j["packets_out"] = c.packets_out;
    j["sni"] = c.sni;
    j["entity"] = c.entity;
    return dump(j);
}

std::string flow_json(const FlowReport &f)
{
    ojson j;
    j["type"] = "flow";
    j["client"] = f.client;
    j["client_port"] = f.client_port;
    j["server"] = f.server;
    j["server_port"] = f.server_port;
    j["transport"] = f.transport;
    if (f.tls) {
        j["sni"] = nullable(f.tls->sni);
        j["alpn"] = f.tls->alpn;
        j["tls_version"] = f.tls->tls_version.empty() ? ojson(nullptr) : ojson(f.tls->tls_version);
        j["ja4"] = f.tls->ja4;
    } else {
        j["sni"] = nullptr;
        j["alpn"] = nullptr;
        j["tls_version"] = nullptr;
        j["ja4"] = nullptr;
    }
    j["bytes_in"] = f.bytes_in;
    j["bytes_out"] = f.bytes_out;
    j["packets_in"] = f.packets_in;
    j["packets_out"] = f.packets_out;
    return dump(j);
}

std::string alert_json(const Alert &a)
{
    ojson j;
    j["type"] = "alert";
    if (a.fields.is_object())
        for (const auto &[k, v] : a.fields.items())
            if (k != "type")
                j[k] = v;
    return dump(j);
}

void write_json(const ReplayReport &r, bool flows, std::ostream &out)
{
    for (const auto &c : r.clients)
        out << client_json(c) << "\n";
    if (flows)
        for (const auto &f : r.flows)
            out << flow_json(f) << "\n";
}

void write_table(const ReplayReport &r, const std::vector<Alert> &alerts, bool flows,
                 std::ostream &out)
{
    write_alerts_table(alerts, out);
    out << "\n";
    write_clients_table(r, out);
    if (!flows)
        return;
    std::vector<const FlowReport *> fs;
    for (const auto &f : r.flows)
        fs.push_back(&f);
    std::stable_sort(fs.begin(), fs.end(), [](const FlowReport *a, const FlowReport *b) {
        return a->bytes_out > b->bytes_out;
    });
    std::vector<std::vector<std::string>> rows;
    auto ep = [](const std::string &a, uint16_t p) {
        return (a.find(':') != std::string::npos ? "[" + a + "]" : a) + ":" + std::to_string(p);
    };
    for (const auto *f : fs) {
        std::string sni = "-", alpn = "-", ver = "-", ja4 = "-";
        if (f->tls) {
            sni = f->tls->sni ? printable(*f->tls->sni) : "(none)";
            alpn = f->tls->alpn.empty() ? "(none)" : table_cell_list(f->tls->alpn);
            ver = f->tls->tls_version.empty() ? "-" : f->tls->tls_version;
            ja4 = f->tls->ja4;
        }
        std::string anomalies = table_cell_list(f->anomalies);
        rows.push_back({ep(f->client, f->client_port), ep(f->server, f->server_port),
                        f->transport + (f->reused ? " (reused)" : ""),
                        std::to_string(f->bytes_out), std::to_string(f->bytes_in),
                        std::to_string(f->packets_out), std::to_string(f->packets_in), ver, sni,
                        alpn, ja4, anomalies.empty() ? "-" : anomalies});
    }
    out << "\nFLOWS (" << r.flows.size() << ", by bytes out)\n";
    print_columns(out,
                  {"CLIENT", "SERVER", "TRANSPORT", "BYTES_OUT", "BYTES_IN", "PKTS_OUT", "PKTS_IN",
                   "TLS", "SNI", "ALPN", "JA4", "ANOMALIES"},
                  rows,
                  {false, false, false, true, true, true, true, false, false, false, false, false});
}

// Harvest, aggregate, detect, on packet time (see replay.h).
class DetectReplayStage : public ReplayStage {
public:
    explicit DetectReplayStage(const Config &cfg)
        : harvest_ms_(cfg.harvest_interval_ms), eval_ms_(cfg.detect.interval_ms),
          agg_(cfg.aggregate), det_(cfg.detect)
    {
    }
    void on_tls_meta(const FlowRecord &r) override
    {
        Addr16 client;
        std::memcpy(client.data(), r.client == EXF_CLIENT_HI ? r.key.hi_addr : r.key.lo_addr, 16);
        det_.on_tls(agg_, agg_.clock_ms(), client,
                    r.tls.sni ? std::string_view(*r.tls.sni) : std::string_view(), r.tls.ja4);
    }
    void on_packet(uint64_t ts_ns, const Datapath &dp, const FlowTracker &t) override
    {
        uint64_t now = ts_ns / 1000000;
        if (!started_) {
            started_ = true;
            next_harvest_ = now + harvest_ms_;
            next_eval_ = now + eval_ms_;
        }
        if (now >= next_harvest_) {
            auto tb = dp.tables();
            harvest_.run(agg_, tb.flows, tb.clients, t, now);
            next_harvest_ = now + harvest_ms_;
        }
        if (now >= next_eval_) {
            collect(det_.evaluate(agg_, now, now));
            next_eval_ = now + eval_ms_;
        }
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
    uint64_t harvest_ms_, eval_ms_;
    agg::Aggregator agg_;
    detect::Detector det_;
    HarvestStage harvest_;
    bool started_ = false;
    uint64_t next_harvest_ = 0, next_eval_ = 0;
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
