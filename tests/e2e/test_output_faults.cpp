// SPDX-License-Identifier: Apache-2.0
// Alert delivery under faults, the output path alone against a real rsyslog
// in a lab namespace (the outputs run in this process, their threads in that
// namespace; no daemon, no traffic):
//
//  - the spool file's disk fills up, then goes read-only, then comes back:
//    alerts keep going out from memory, in order, once; each condition is
//    logged once when it starts and once when it ends; the failed writes
//    are counted and exported (status JSON and Prometheus text built from
//    the very output); once writable the file holds exactly what is held;
//  - the collector is down for 60 s: every alert reaches it afterwards, in
//    order, once, over TCP and TLS; an output with a small spool keeps the
//    oldest it can hold and counts exactly what it dropped.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "aggregate/aggregator.h"
#include "control/snapshot.h"
#include "detect/detector.h"
#include "flows/flow_tracker.h"
#include "output/output.h"
#include "support/daemon_probe.h"
#include "support/log_capture.h"
#include "support/mounts.h"
#include "support/netns.h"
#include "support/servers.h"
#include "support/test_env.h"

using namespace exf;
using namespace exf::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string hex_id(int i)
{
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016x", i);
    return buf;
}

detect::AlertRecord alert(int i)
{
    detect::AlertRecord a;
    a.time_ms = 1795435200123 + uint64_t(i);
    a.host = "edge-1";
    a.id = hex_id(i);
    a.rule = "client-bulk-pull";
    a.severity = detect::Severity::critical;
    a.entity_kind = "client";
    a.entity = "203.0.113.7";
    a.client = "203.0.113.7";
    a.metric = "bytes_out";
    a.window_ms = 600000;
    a.value = 2254857830;
    a.threshold = 2147483648;
    a.bytes_out = 2254857830;
    a.top_snis = {{"api.example.com", 2000000000}};
    a.first_seen_ms = 1795434600000;
    a.opened_ms = 1795435200123;
    a.count = 1;
    return a;
}

std::vector<std::string> ids(int from, int to)
{
    std::vector<std::string> v;
    for (int i = from; i < to; i++)
        v.push_back(hex_id(i));
    return v;
}

// The alert ids rsyslog received from the RFC 5424 output whose APP-NAME is
// app, in the order it wrote them.
std::vector<std::string> received_from(const RsyslogServer &rs, const std::string &app)
{
    std::vector<std::string> out;
    for (auto &m : rs.messages()) {
        std::istringstream f(m);
        std::string pri, ts, host, a;
        if (!(f >> pri >> ts >> host >> a) || a != app)
            continue;
        auto p = m.find(" id=\"");
        out.push_back(p == std::string::npos ? "?" : m.substr(p + 5, 16));
    }
    return out;
}

// The alert ids rsyslog received as CEF (externalId), in order.
std::vector<std::string> received_cef(const RsyslogServer &rs)
{
    std::vector<std::string> out;
    for (auto &m : rs.messages()) {
        if (m.find("CEF:0|exfilmon|") == std::string::npos)
            continue;
        auto p = m.find(" externalId=");
        out.push_back(p == std::string::npos ? "?" : m.substr(p + 12, 16));
    }
    return out;
}

// The messages a spool file holds (spool.h's records), oldest first; an
// empty deque for a missing file.
std::deque<std::string> spool_records(const fs::path &file)
{
    std::ifstream in(file, std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::deque<std::string> msgs;
    size_t pos = 0;
    auto bad = [&] {
        throw std::runtime_error("malformed spool file " + file.string() + ": " + s);
    };
    while (pos < s.size()) {
        size_t nl = s.find('\n', pos);
        if (nl == std::string::npos || nl == pos + 1)
            bad();
        size_t n = std::stoul(s.substr(pos + 1, nl - pos - 1));
        if (s[pos] == 'M') {
            if (nl + 1 + n >= s.size() || s[nl + 1 + n] != '\n')
                bad();
            msgs.push_back(s.substr(nl + 1, n));
            pos = nl + 2 + n;
        } else {
            if (s[pos] != 'A')
                bad();
            for (size_t i = 0; i < n && !msgs.empty(); i++)
                msgs.pop_front();
            pos = nl + 1;
        }
    }
    return msgs;
}

std::vector<std::string> spool_ids(const fs::path &file)
{
    std::vector<std::string> out;
    for (auto &m : spool_records(file)) {
        auto p = m.find(" id=\"");
        out.push_back(p == std::string::npos ? "?" : m.substr(p + 5, 16));
    }
    return out;
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 30s)
{
    auto end = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > end)
            return false;
        std::this_thread::sleep_for(20ms);
    }
    return true;
}

output::OutputConfig tcp_output(const RsyslogServer &rs, const std::string &app)
{
    output::OutputConfig c;
    c.type = output::OutputType::syslog;
    c.transport = output::Transport::tcp;
    c.address = rs.address() + ":" + std::to_string(rs.port());
    c.format = output::Format::rfc5424;
    c.app_name = app;
    c.origin = "test";
    return c;
}

// What `exfilmon status` and /metrics would report for these outputs: the
// daemon's own snapshot code over an otherwise empty daemon state.
struct Exported {
    control::SensorState state;
    agg::Aggregator agg{agg::AggConfig{}};
    detect::Detector det{detect::DetectConfig{}};
    FlowTracker tracker;

    nlohmann::json status(const std::vector<std::unique_ptr<output::Output>> &outs)
    {
        state.output_types.assign(outs.size(), "syslog_tcp");
        return control::status_json({state, agg, det, tracker, outs, 0, 0});
    }
    std::string metrics(const std::vector<std::unique_ptr<output::Output>> &outs)
    {
        state.output_types.assign(outs.size(), "syslog_tcp");
        return control::render_metrics(
            control::metrics_snapshot({state, agg, det, tracker, outs, 0, 0}));
    }
};

}  // namespace

TEST_CASE("A full then read-only spool disk: alerts go out from memory in order once, logged once "
          "per change, counted, and the file is exact again once writable",
          "[e2e][sanitize][output][spool]")
{
    if (!require_root())
        return;
    Lab lab;
    auto col = lab.add_netns("col");
    RsyslogOptions ro;
    ro.ns = col;
    RsyslogServer rs(lab, ro);
    rs.start();
    TmpfsMount disk(lab.dir() / "disk", 64 * 1024);
    auto spool = disk.dir() / "spool";
    LogCapture logs;  // before the output's thread starts

    auto cfg = tcp_output(rs, "exf-spool");
    cfg.spool_file = spool.string();
    std::vector<std::unique_ptr<output::Output>> outs;
    outs.push_back(in_netns(col, [&] { return output::make_output(cfg); }));
    auto &out = *outs.front();
    int next = 0;
    auto send = [&](int n) {
        for (int i = 0; i < n; i++)
            out.send(alert(next++));
    };
    auto delivered = [&] { return received_from(rs, "exf-spool"); };
    auto count_delivered = [&](size_t n) {
        return eventually([&] { return delivered().size() >= n && out.stats().sent >= n; });
    };
    const std::string enospc = "cannot be written (No space left on device)";
    const std::string erofs = "cannot be written (Read-only file system)";
    const std::string again = "spool file " + spool.string() + " can be written again";
    Exported exported;

    // 1. Healthy: delivered, and the drained spool truncated to nothing.
    send(5);
    REQUIRE(count_delivered(5));
    REQUIRE(eventually([&] { return fs::file_size(spool) == 0; }));
    CHECK(out.stats().spool_write_errors == 0);
    CHECK(out.stats().spool_file_ok);

    // 2. Disk full, collector up: every alert still goes out at once.
    auto filler = disk.fill();
    send(5);
    REQUIRE(count_delivered(10));
    auto st = out.stats();
    CHECK(st.spool_write_errors >= 1);
    CHECK_FALSE(st.spool_file_ok);
    CHECK(st.last_error.find("No space left on device") != std::string::npos);

    // 3. Collector down, disk still full: alerts wait in memory; the retries
    //    fail again (counted) but the condition is not logged again.
    REQUIRE(rs.stop() == 0);
    REQUIRE(eventually([&] { return !out.stats().connected; }));
    send(10);
    CHECK(out.stats().spooled_now == 10);
    uint64_t errors_before = out.stats().spool_write_errors;
    REQUIRE(eventually([&] { return out.stats().spool_write_errors > errors_before; }));
    {
        INFO(logs.text());
        CHECK(logs.count({spool.string(), enospc}) == 1);
        CHECK(logs.count({again}) == 0);
    }
    // Exported as the daemon exports it.
    auto status = exported.status(outs);
    REQUIRE(status["outputs"].size() == 1);
    CHECK(status["outputs"][0]["spool_file"] == spool.string());
    CHECK(status["outputs"][0]["spool_file_ok"] == false);
    CHECK(status["outputs"][0]["spool_write_errors"].get<uint64_t>() >= 2);
    CHECK(status["outputs"][0]["spooled"] == 10);
    auto metrics = exported.metrics(outs);
    const std::string labels = "{output=\"0\",type=\"syslog_tcp\"}";
    CHECK(metric_value(metrics, "exfilmon_output_spool_write_errors_total" + labels) >= 2);
    CHECK(metric_value(metrics, "exfilmon_output_spool_file_ok" + labels) == 0);

    // 4. Space again (collector still down): the whole spool is rewritten,
    //    exactly the 10 held alerts, in order; logged once.
    fs::remove(filler);
    REQUIRE(eventually([&] { return out.stats().spool_file_ok; }));
    CHECK(spool_ids(spool) == ids(10, 20));
    CHECK(logs.count({again, "(10 alerts held)"}) == 1);

    // 5. Read-only (collector still down): the next alert cannot be
    //    appended; a new cause, logged once. The file stays as it was.
    disk.set_read_only(true);
    send(5);
    REQUIRE(eventually([&] { return !out.stats().spool_file_ok; }));
    CHECK(out.stats().last_error.find("Read-only file system") != std::string::npos);
    CHECK(out.stats().spooled_now == 15);
    CHECK(spool_ids(spool) == ids(10, 20));

    // 6. Collector back, still read-only: all 15 delivered from memory.
    rs.start();
    REQUIRE(count_delivered(25));
    CHECK(out.flush(20000));
    CHECK(spool_ids(spool) == ids(10, 20));  // stale: it cannot be written

    // 7. Writable again: the (now empty) spool is rewritten; the next alert
    //    written to the file ends the condition.
    disk.set_read_only(false);
    REQUIRE(eventually([&] { return spool_ids(spool).empty(); }));
    send(1);
    REQUIRE(count_delivered(26));
    REQUIRE(eventually([&] { return out.stats().spool_file_ok; }));
    REQUIRE(eventually([&] { return fs::file_size(spool) == 0; }));

    // Everything, in order, exactly once; nothing dropped.
    CHECK(delivered() == ids(0, 26));
    st = out.stats();
    CHECK(st.sent == 26);
    CHECK(st.queued == 26);
    CHECK(st.dropped == 0);
    CHECK(st.spooled_now == 0);
    CHECK(st.spool_file_ok);
    CHECK(st.spool_write_errors >= 3);
    INFO(logs.text());
    CHECK(logs.count({spool.string(), enospc}) == 1);
    CHECK(logs.count({spool.string(), erofs}) == 1);
    CHECK(logs.count({spool.string(), "cannot be written"}) == 2);
    CHECK(logs.count({again}) == 2);
    CHECK(metric_value(exported.metrics(outs), "exfilmon_output_spool_file_ok" + labels) == 1);
    outs.clear();  // stops the thread before the log capture and the mount go
}

TEST_CASE("Collector down for 60 s: every alert delivered once and in order over TCP and TLS, a "
          "small spool counts exactly what it dropped",
          "[e2e][output][outage]")
{
    if (!require_root())
        return;
    Lab lab;
    auto col = lab.add_netns("col");
    RsyslogOptions ro;
    ro.ns = col;
    ro.tls = true;
    RsyslogServer rs(lab, ro);
    rs.start();
    LogCapture logs;

    // A: TCP with a spool file; B: TCP, spool of 50 alerts; C: TLS, CEF.
    auto a_cfg = tcp_output(rs, "exf-a");
    a_cfg.spool_file = (lab.dir() / "a.spool").string();
    auto b_cfg = tcp_output(rs, "exf-b");
    b_cfg.spool_size = 50;
    auto c_cfg = tcp_output(rs, "exf-c");
    c_cfg.transport = output::Transport::tls;
    c_cfg.address = rs.address() + ":" + std::to_string(rs.tls_port());
    c_cfg.format = output::Format::cef;
    c_cfg.ca_file = rs.ca_cert().string();
    c_cfg.server_name = "syslog.example.com";
    std::vector<std::unique_ptr<output::Output>> outs;
    in_netns(col, [&] {
        for (auto *c : {&a_cfg, &b_cfg, &c_cfg})
            outs.push_back(output::make_output(*c));
    });
    auto &a = *outs[0], &b = *outs[1], &c = *outs[2];
    int next = 0;
    auto send = [&](int n) {
        for (int i = 0; i < n; i++) {
            auto r = alert(next++);
            for (auto &o : outs)
                o->send(r);
        }
    };
    auto counts_reach = [&](size_t na, size_t nb, size_t nc, std::chrono::milliseconds limit) {
        return eventually(
            [&] {
                return received_from(rs, "exf-a").size() >= na &&
                       received_from(rs, "exf-b").size() >= nb && received_cef(rs).size() >= nc;
            },
            limit);
    };

    // In bursts B's spool holds whole, each delivered before the next.
    auto send_flushed = [&](int n) {
        for (int i = 0; i < n; i += 25) {
            send(25);
            for (auto &o : outs)
                REQUIRE(o->flush(20000));
        }
    };

    // Before: 100 alerts, all delivered (nothing in flight when it stops).
    send_flushed(100);
    REQUIRE(counts_reach(100, 100, 100, 30s));

    // The outage: 300 alerts over 60 s, five a second.
    auto stopped_at = std::chrono::steady_clock::now();
    REQUIRE(rs.stop() == 0);
    for (int i = 0; i < 300; i++) {
        std::this_thread::sleep_until(stopped_at + i * 200ms);
        send(1);
    }
    std::this_thread::sleep_until(stopped_at + 60s);
    auto sa = a.stats(), sb = b.stats(), sc = c.stats();
    CHECK(sa.spooled_now == 300);
    CHECK(sc.spooled_now == 300);
    CHECK(sb.spooled_now == 50);
    CHECK(sb.dropped == 250);
    for (auto *s : {&sa, &sb, &sc}) {
        CHECK(s->sent == 100);
        CHECK_FALSE(s->connected);
        CHECK(s->connect_failures >= 1);
    }
    CHECK(spool_ids(a_cfg.spool_file) == ids(100, 400));  // survives a restart, too
    CHECK(received_from(rs, "exf-a").size() == 100);      // nothing while it was down
    rs.start();

    // After: what was held arrives, then 100 more.
    REQUIRE(counts_reach(400, 150, 400, 60s));
    send_flushed(100);
    REQUIRE(counts_reach(500, 250, 500, 60s));
    for (auto &o : outs)
        CHECK(o->flush(20000));

    CHECK(received_from(rs, "exf-a") == ids(0, 500));
    CHECK(received_cef(rs) == ids(0, 500));
    // B kept the oldest 50 of the outage and dropped the next 250, counted.
    auto want_b = ids(0, 150);
    for (auto &id : ids(400, 500))
        want_b.push_back(id);
    CHECK(received_from(rs, "exf-b") == want_b);
    sa = a.stats(), sb = b.stats(), sc = c.stats();
    CHECK(sa.sent == 500);
    CHECK(sa.dropped == 0);
    CHECK(sc.sent == 500);
    CHECK(sc.dropped == 0);
    CHECK(sb.sent == 250);
    CHECK(sb.dropped == 250);
    CHECK(sb.queued == 500);
    for (auto *s : {&sa, &sb, &sc}) {
        CHECK(s->reconnects >= 1);
        CHECK(s->spooled_now == 0);
        CHECK(s->connected);
    }
    CHECK(eventually([&] { return fs::file_size(a_cfg.spool_file) == 0; }));
    INFO(logs.text());
    CHECK(logs.count({"syslog tcp", "spool full (50 alerts held)", "alerts dropped"}) >= 1);
    outs.clear();
}
