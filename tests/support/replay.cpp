// SPDX-License-Identifier: Apache-2.0
#include "support/replay.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <span>
#include <sstream>

#include "capture/events.h"
#include "capture/pcap_reader.h"
#include "capture/shared_layout.h"
#include "capture/test_run.h"
#include "common/addr.h"
#include "common/error.h"

namespace exf::test {

namespace fs = std::filesystem;

std::string FlowCount::endpoints() const
{
    auto ep = [](const std::string &a, uint16_t p) {
        return (a.find(':') != std::string::npos ? "[" + a + "]" : a) + ":" + std::to_string(p);
    };
    return transport + " " + ep(client, client_port) + " -> " + ep(server, server_port);
}

std::string FlowCount::counters() const
{
    return "packets " + std::to_string(packets_in) + "/" + std::to_string(packets_out) + " bytes " +
           std::to_string(bytes_in) + "/" + std::to_string(bytes_out);
}

bool FlowCount::same_counts(const FlowCount &o) const
{
    return packets_in == o.packets_in && packets_out == o.packets_out && bytes_in == o.bytes_in &&
           bytes_out == o.bytes_out;
}

std::string ClientCount::counters() const
{
    return "flows " + std::to_string(tls_flows) + " packets " + std::to_string(packets_in) + "/" +
           std::to_string(packets_out) + " bytes " + std::to_string(bytes_in) + "/" +
           std::to_string(bytes_out);
}

bool ClientCount::same_counts(const ClientCount &o) const
{
    return tls_flows == o.tls_flows && packets_in == o.packets_in && packets_out == o.packets_out &&
           bytes_in == o.bytes_in && bytes_out == o.bytes_out;
}

namespace {

bool to_flow_count(const exf_flow_key &k, const exf_flow &f, FlowCount &out)
{
    if (f.kind != EXF_KIND_TLS && f.kind != EXF_KIND_QUIC)
        return false;
    out.transport = f.kind == EXF_KIND_TLS ? "tcp" : "quic";
    out.client = format_addr(flow_client_addr(k, f));
    out.client_port = flow_client_port(k, f);
    out.server = format_addr(flow_server_addr(k, f));
    out.server_port = flow_server_port(k, f);
    unsigned in = flow_in_dir(f);
    out.packets_in = f.pkts[in];
    out.packets_out = f.pkts[in ^ 1];
    out.bytes_in = f.bytes[in];
    out.bytes_out = f.bytes[in ^ 1];
    return true;
}

SensorOptions with_packet_time(SensorOptions o)
{
    o.packet_time = true;
    return o;
}

}  // namespace

// The ring buffer reader and where its flow-end events go.
struct ReplaySession::Events {
    ReplayResult *res = nullptr;
    EventReader reader;
    explicit Events(int fd) : reader(fd, [this](std::span<const uint8_t> ev) { on_event(ev); }) {}
    void on_event(std::span<const uint8_t> ev)
    {
        if (!res || ev.size() < sizeof(exf_flow_end_event))
            return;
        exf_flow_end_event e;
        std::memcpy(&e, ev.data(), sizeof(e));
        if (e.hdr.type != EXF_EV_FLOW_END || e.hdr.reason != EXF_END_REUSE)
            return;
        // A new SYN reused the 5-tuple: these are the old flow's final counters.
        res->reuse_events++;
        FlowCount fc;
        if (to_flow_count(e.hdr.key, e.flow, fc))
            res->flows.push_back(std::move(fc));
    }
};

ReplaySession::ReplaySession(SensorOptions opts)
    : sensor_(with_packet_time(std::move(opts))),
      events_(std::make_unique<Events>(sensor_.events_fd()))
{}

ReplaySession::~ReplaySession() = default;

void ReplaySession::clear_maps()
{
    sensor_.clear_tables();
    events_->res = nullptr;
    events_->reader.drain();  // anything left from the previous capture
}

ReplayResult ReplaySession::replay(const fs::path &capture)
{
    ReplayResult res;
    PcapReader reader(capture.string());
    CpuPin pin;  // one CPU's flow cache for the whole replay
    clear_maps();
    events_->res = &res;

    const int prog = sensor_.ingress_fd();
    Packet pkt;
    while (reader.next(pkt)) {
        if (pkt.frame.size() < 14) {  // the kernel refuses a frame without an Ethernet header
            res.skipped++;
            continue;
        }
        // The program takes bytes from the IP length fields, not from the
        // frame's length, so cutting a long frame keeps the counts right.
        size_t n = pkt.frame.size();
        if (n > kMaxTestRunFrame) {
            n = kMaxTestRunFrame;
            res.cut_frames++;
        }
        TestRunOptions o;
        o.tstamp_ns = pkt.ts_ns;
        TestRunResult r = run_tc_program(prog, std::span<const uint8_t>(pkt.frame.data(), n), o);
        if (r.err && res.run_error.empty())
            res.run_error = "packet " + std::to_string(reader.packets_read()) +
                            ": BPF_PROG_TEST_RUN failed: " + std::strerror(-r.err);
        res.packets++;
        // Drain as we go: a reading of shared memory, no system call.
        events_->reader.drain();
    }
    events_->reader.drain();
    events_->res = nullptr;
    res.read_error = reader.error();

    auto tables = sensor_.tables();
    for (const auto &row : tables.flows) {
        FlowCount fc;
        if (to_flow_count(row.key, row.flow, fc))
            res.flows.push_back(std::move(fc));
    }
    for (const auto &row : tables.clients) {
        ClientCount c;
        c.client = format_addr(row.key.addr);
        c.tls_flows = row.stats.tls_flows_opened;
        c.packets_in = row.stats.pkts_in;
        c.packets_out = row.stats.pkts_out;
        c.bytes_in = row.stats.bytes_in;
        c.bytes_out = row.stats.bytes_out;
        res.clients.push_back(std::move(c));
    }
    res.health = read_health(sensor_.health_fd());
    return res;
}

ReplayResult replay_capture(const fs::path &capture, SensorOptions opts)
{
    ReplaySession session(std::move(opts));
    return session.replay(capture);
}

void write_pcap(const fs::path &file, const std::vector<TimedFrame> &frames)
{
    std::vector<uint8_t> out;
    auto put32 = [&out](uint32_t v) {
        for (int i = 0; i < 4; i++)
            out.push_back(uint8_t(v >> (8 * i)));
    };
    auto put16 = [&out](uint16_t v) {
        out.push_back(uint8_t(v));
        out.push_back(uint8_t(v >> 8));
    };
    put32(0xa1b23c4d);  // nanosecond pcap, little endian
    put16(2);
    put16(4);
    put32(0);
    put32(0);
    put32(262144);
    put32(1);  // Ethernet
    for (const auto &[ts, f] : frames) {
        put32(uint32_t(ts / 1000000000ull));
        put32(uint32_t(ts % 1000000000ull));
        put32(uint32_t(f.size()));
        put32(uint32_t(f.size()));
        out.insert(out.end(), f.begin(), f.end());
    }
    std::ofstream o(file, std::ios::binary | std::ios::trunc);
    o.write(reinterpret_cast<const char *>(out.data()), std::streamsize(out.size()));
    if (!o)
        throw Error(file.string() + ": cannot write");
}

std::vector<std::string> find_captures(const fs::path &dir)
{
    std::vector<std::string> out;
    for (const auto &e :
         fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink)) {
        if (!e.is_regular_file())
            continue;
        std::ifstream in(e.path(), std::ios::binary);
        unsigned char m[4] = {};
        if (!in.read(reinterpret_cast<char *>(m), 4))
            continue;
        uint32_t le = m[0] | (m[1] << 8) | (m[2] << 16) | (uint32_t(m[3]) << 24);
        uint32_t be = (uint32_t(m[0]) << 24) | (m[1] << 16) | (m[2] << 8) | m[3];
        bool pcap = le == 0xa1b2c3d4 || le == 0xa1b23c4d || be == 0xa1b2c3d4 || be == 0xa1b23c4d;
        bool pcapng = le == 0x0A0D0D0A;
        if (pcap || pcapng)
            out.push_back(e.path().lexically_relative(dir).generic_string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<std::map<std::string, std::string>> read_csv(const fs::path &file)
{
    std::ifstream in(file, std::ios::binary);
    if (!in)
        throw Error(file.string() + ": cannot open");
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();

    // RFC 4180: fields split on commas, quoted fields may hold commas,
    // doubled quotes and line breaks.
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> row;
    std::string field;
    bool quoted = false, any = false;
    for (size_t i = 0; i < text.size(); i++) {
        char c = text[i];
        if (quoted) {
            if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
                field += '"';
                i++;
            } else if (c == '"') {
                quoted = false;
            } else {
                field += c;
            }
        } else if (c == '"') {
            quoted = true;
            any = true;
        } else if (c == ',') {
            row.push_back(std::move(field));
            field.clear();
            any = true;
        } else if (c == '\n' || c == '\r') {
            if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n')
                i++;
            if (any || !field.empty()) {
                row.push_back(std::move(field));
                rows.push_back(std::move(row));
            }
            row.clear();
            field.clear();
            any = false;
        } else {
            field += c;
            any = true;
        }
    }
    if (any || !field.empty()) {
        row.push_back(std::move(field));
        rows.push_back(std::move(row));
    }
    if (rows.empty())
        throw Error(file.string() + ": empty CSV");

    std::vector<std::map<std::string, std::string>> out;
    const auto &header = rows[0];
    for (size_t r = 1; r < rows.size(); r++) {
        if (rows[r].size() != header.size())
            throw Error(file.string() + ": line " + std::to_string(r + 1) + " has " +
                        std::to_string(rows[r].size()) + " fields, the header " +
                        std::to_string(header.size()));
        std::map<std::string, std::string> m;
        for (size_t c = 0; c < header.size(); c++)
            m[header[c]] = rows[r][c];
        out.push_back(std::move(m));
    }
    return out;
}

}  // namespace exf::test
