// SPDX-License-Identifier: Apache-2.0
#include "control/client.h"

#include "common/text.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ostream>

#include "control/snapshot.h"

namespace exf::control {

using nlohmann::json;

namespace {

std::atomic<bool> g_quit{false};
void on_quit(int) { g_quit = true; }

std::string unreachable(const std::string &socket, int err)
{
    std::string why = std::strerror(err);
    if (err == EACCES || err == EPERM)
        return "exfilmon: cannot connect to " + socket + ": " + why +
               " (permission: run as root, or as a member of the [control] group)";
    return "exfilmon: cannot connect to " + socket + ": " + why +
           " (is exfilmon running? is the socket path right? see --socket and [control] socket)";
}

// "5.0MiB", "812B".
std::string human_bytes(uint64_t v)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double x = double(v);
    size_t u = 0;
    while (x >= 1024 && u + 1 < std::size(units)) {
        x /= 1024;
        u++;
    }
    char buf[32];
    if (u == 0)
        std::snprintf(buf, sizeof(buf), "%lluB", (unsigned long long)v);
    else
        std::snprintf(buf, sizeof(buf), "%.1f%s", x, units[u]);
    return buf;
}

// "1h02m", "3m05s", "12s".
std::string human_duration(uint64_t s)
{
    char buf[32];
    if (s >= 86400)
        std::snprintf(buf, sizeof(buf), "%llud%02lluh", (unsigned long long)(s / 86400),
                      (unsigned long long)(s % 86400 / 3600));
    else if (s >= 3600)
        std::snprintf(buf, sizeof(buf), "%lluh%02llum", (unsigned long long)(s / 3600),
                      (unsigned long long)(s % 3600 / 60));
    else if (s >= 60)
        std::snprintf(buf, sizeof(buf), "%llum%02llus", (unsigned long long)(s / 60),
                      (unsigned long long)(s % 60));
    else
        std::snprintf(buf, sizeof(buf), "%llus", (unsigned long long)s);
    return buf;
}

// "2026-11-23T12:00:00Z".
std::string utc(uint64_t ms)
{
    time_t t = time_t(ms / 1000);
    struct tm tm {};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

uint64_t u64(const json &j, const char *key)
{
    auto it = j.find(key);
    return it != j.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

std::string str(const json &j, const char *key)
{
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? ascii_escape(it->get<std::string>()) : std::string();
}

std::string pad(const std::string &s, size_t w, bool right = false)
{
    if (s.size() > w)
        return w > 1 ? s.substr(0, w - 1) + "~" : s.substr(0, w);
    std::string sp(w - s.size(), ' ');
    return right ? sp + s : s + sp;
}

// Restores the terminal's mode on every way out of run_top.
class RawTerminal {
public:
    RawTerminal()
    {
        if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_) != 0)
            return;
        termios raw = saved_;
        raw.c_lflag &= tcflag_t(~(ICANON | ECHO));
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        active_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    ~RawTerminal()
    {
        if (active_)
            tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
    }
    bool active() const { return active_; }

private:
    termios saved_{};
    bool active_ = false;
};

}  // namespace

std::optional<json> request(const std::string &socket, const json &req, std::string &why,
                            int &exit_code, std::chrono::milliseconds timeout)
{
    auto fail = [&](std::string msg, int code) -> std::optional<json> {
        why = std::move(msg);
        exit_code = code;
        return std::nullopt;
    };
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (socket.size() >= sizeof(a.sun_path))
        return fail("exfilmon: socket path too long: " + socket, 2);
    std::memcpy(a.sun_path, socket.c_str(), socket.size() + 1);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(std::string("exfilmon: socket: ") + std::strerror(errno), 1);
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    if (::connect(fd, reinterpret_cast<const sockaddr *>(&a), sizeof(a)) != 0)
        return fail(unreachable(socket, errno), 1);
    timeval tv{long(timeout.count() / 1000), long(timeout.count() % 1000 * 1000)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    std::string line = dump(req) + "\n";
    if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != ssize_t(line.size()))
        return fail("exfilmon: sending to " + socket + ": " + std::strerror(errno), 1);
    std::string resp;
    char buf[65536];
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            resp.append(buf, size_t(n));
            continue;
        }
        if (n < 0 && errno == EINTR && !g_quit)
            continue;
        if (n < 0)
            return fail("exfilmon: no answer from the daemon on " + socket + ": " +
                            std::strerror(errno),
                        1);
        break;
    }
    json j = json::parse(resp, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        return fail("exfilmon: the daemon's answer on " + socket + " is not a JSON object", 1);
    if (!j.value("ok", false))
        return fail("exfilmon: " + ascii_escape(j.value("error", std::string("request failed"))),
                    2);
    return j;
}

namespace {

// Each step renders the lines of one part of the status answer.
std::string identity_lines(const json &s)
{
    std::string o = "exfilmon " + str(s, "version") + ", pid " + std::to_string(u64(s, "pid")) +
                    ", backend " + str(s, "backend") + ", up " +
                    human_duration(u64(s, "uptime_s")) + " (since " + utc(u64(s, "started_ms")) +
                    ")\n";
    o +=
        "config:      " +
        (s.contains("config") && s["config"].is_string() ? str(s, "config") : "built-in defaults") +
        "\n";
    return o;
}

std::string attached_lines(const json &s)
{
    std::string o;
    for (auto &i : s.value("interfaces", json::array()))
        o += "attached:    " + str(i, "name") + " (ifindex " + std::to_string(u64(i, "ifindex")) +
             ") since " + utc(u64(i, "since_ms")) + "\n";
    if (s.value("interfaces", json::array()).empty())
        o += "attached:    no interface\n";
    return o;
}

// "flows 12/65536 (0.0%) 3 evicted".
std::string map_occupancy(const json &maps, const char *name)
{
    auto m = maps.value(name, json::object());
    uint64_t e = u64(m, "entries"), c = u64(m, "capacity");
    char buf[96];
    std::snprintf(buf, sizeof(buf), "%s %llu/%llu (%.1f%%)", name, (unsigned long long)e,
                  (unsigned long long)c, c ? 100.0 * double(e) / double(c) : 0.0);
    std::string r = buf;
    if (m.contains("evictions"))
        r += " " + std::to_string(u64(m, "evictions")) + " evicted";
    return r;
}

std::string maps_line(const json &s)
{
    auto maps = s.value("maps", json::object());
    return "maps:        " + map_occupancy(maps, "flows") + ", " + map_occupancy(maps, "clients") +
           "\n";
}

std::string events_line(const json &s)
{
    auto ev = s.value("events", json::object());
    return "events:      received " + std::to_string(u64(ev, "received")) + ", queue drops " +
           std::to_string(u64(ev, "queue_dropped")) + ", queue waits " +
           std::to_string(u64(ev, "queue_waited")) + ", ring buffer full " +
           std::to_string(u64(ev, "ringbuf_full")) + "\n";
}

// The traffic counters, then every other health counter that is not zero.
std::string datapath_lines(const json &s)
{
    auto h = s.value("health", json::object());
    std::string o = "traffic:     packets " + std::to_string(u64(h, "packets")) + ", bytes " +
                    std::to_string(u64(h, "bytes")) + ", TLS flows " +
                    std::to_string(u64(h, "tls_flows")) + ", QUIC flows " +
                    std::to_string(u64(h, "quic_flows")) + "\n";
    std::string other;
    for (auto &[k, v] : h.items())
        if (k != "packets" && k != "bytes" && k != "tls_flows" && k != "quic_flows" &&
            v.is_number_unsigned() && v.get<uint64_t>())
            other += (other.empty() ? "" : ", ") + ascii_escape(k) + " " +
                     std::to_string(v.get<uint64_t>());
    o += "datapath:    " + (other.empty() ? std::string("no failures") : other) + "\n";
    return o;
}

std::string anomalies_line(const json &s)
{
    std::string an;
    auto anomalies = s.value("anomalies", json::object());
    for (auto &[k, v] : anomalies.items())
        an += (an.empty() ? "" : ", ") + ascii_escape(k) + " " + std::to_string(v.get<uint64_t>());
    return "anomalies:   " + (an.empty() ? std::string("none") : an) + "\n";
}

std::string aggregate_line(const json &s)
{
    auto ag = s.value("aggregate", json::object());
    std::string o = "aggregate:   " + human_bytes(u64(ag, "memory_bytes")) + ";";
    auto kinds = ag.value("kinds", json::object());
    for (auto &[k, v] : kinds.items())
        o += " " + ascii_escape(k) + " " + std::to_string(u64(v, "entities")) + "/" +
             std::to_string(u64(v, "limit")) +
             (u64(v, "evictions") ? " (" + std::to_string(u64(v, "evictions")) + " evicted)" : "") +
             ",";
    o.back() = '\n';
    return o;
}

std::string detect_lines(const json &s)
{
    auto d = s.value("detect", json::object());
    std::string o = "detect:      " + std::to_string(u64(d, "rules")) + " rules, " +
                    std::to_string(u64(d, "evaluations")) + " evaluations (last " +
                    std::to_string(u64(d, "last_eval_us")) + " us), opened " +
                    std::to_string(u64(d, "opened")) + ", resolved " +
                    std::to_string(u64(d, "resolved")) + ", open now " +
                    std::to_string(u64(d, "open_now")) + "\n";
    auto alerts = s.value("alerts", json::array());
    o += "open alerts: " + std::to_string(alerts.size()) + "\n";
    for (auto &a : alerts)
        o += "  " + pad(str(a, "severity"), 9) + pad(str(a, "rule"), 30) + " " +
             pad(str(a, "entity_kind"), 11) + pad(str(a, "entity"), 48) + " since " +
             utc(u64(a, "since_ms")) + (a.value("shadow", false) ? " (shadow)" : "") + "\n";
    return o;
}

std::string output_line(const json &out)
{
    std::string o = "output " + std::to_string(u64(out, "index")) + ":    " + str(out, "describe") +
                    ": sent " + std::to_string(u64(out, "sent")) + ", dropped " +
                    std::to_string(u64(out, "dropped")) + ", spooled " +
                    std::to_string(u64(out, "spooled")) + ", reconnects " +
                    std::to_string(u64(out, "reconnects"));
    if (!str(out, "spool_file").empty()) {
        o += ", spool file " + std::string(out.value("spool_file_ok", true) ? "ok" : "FAILING");
        if (uint64_t n = u64(out, "spool_write_errors"))
            o += " (" + std::to_string(n) + " write errors)";
    }
    if (!str(out, "last_error").empty())
        o += ", last error: " + str(out, "last_error");
    return o + "\n";
}

// "" without [fleet].
std::string fleet_line(const json &s)
{
    auto it = s.find("fleet");
    if (it == s.end() || !it->is_object())
        return "";
    const json &f = *it;
    std::string o = "fleet:       " + str(f, "clickhouse") + " database " + str(f, "database") +
                    " as " + str(f, "sensor") + ": sent " + std::to_string(u64(f, "rows_sent")) +
                    " rows (" + human_bytes(u64(f, "bytes_sent")) + ") in " +
                    std::to_string(u64(f, "batches_sent")) + " periods, spooled " +
                    std::to_string(u64(f, "spool_depth") + u64(f, "periods_waiting")) +
                    ", failures " + std::to_string(u64(f, "failures")) + ", dropped " +
                    std::to_string(u64(f, "dropped_periods"));
    uint64_t last = u64(f, "last_success_ms");
    o += ", last success " + (last ? utc(last) : std::string("never"));
    if (uint64_t n = u64(f, "spool_write_errors"))
        o += ", " + std::to_string(n) + " spool write errors";
    if (!str(f, "last_error").empty())
        o += ", last error: " + str(f, "last_error");
    return o + "\n";
}

std::string reloads_line(const json &s)
{
    auto r = s.value("reloads", json::object());
    return "reloads:     ok " + std::to_string(u64(r, "ok")) + ", rejected " +
           std::to_string(u64(r, "error")) + "\n";
}

}  // namespace

std::string render_status(const json &s)
{
    std::string o = identity_lines(s) + attached_lines(s) + maps_line(s) + events_line(s) +
                    datapath_lines(s) + anomalies_line(s) + aggregate_line(s) + detect_lines(s);
    for (auto &out : s.value("outputs", json::array()))
        o += output_line(out);
    return o + fleet_line(s) + reloads_line(s);
}

std::string render_top(const json &t)
{
    std::string kind = str(t, "kind");
    auto k = parse_top_kind(kind);
    bool group = k && agg::is_group(*k), subnets = k && agg::counts_subnets(*k);
    uint64_t now = u64(t, "now_ms");
    std::string o = "exfilmon top: " + kind + " by " + str(t, "sort") + " over " +
                    str(t, "window") + ", " + utc(now) + "\n\n";
    o += pad("ENTITY", 40) + pad("OUT", 11, true) + pad("IN", 11, true) + pad("FLOWS", 8, true) +
         pad("REQUESTS", 10, true) + pad("PEAK", 6, true) + pad("OPEN", 6, true) +
         (group ? pad("CLIENTS", 8, true) : "") + (subnets ? pad("SUBNETS", 8, true) : "") +
         pad("AGE", 8, true) + "  " + pad("TOP SNI", 28) + "ALERT\n";
    for (auto &r : t.value("rows", json::array())) {
        uint64_t first = u64(r, "first_seen_ms");
        std::string sni;
        auto snis = r.value("top_snis", json::array());
        if (!snis.empty())
            sni = str(snis[0], "sni") +
                  (snis.size() > 1 ? " +" + std::to_string(snis.size() - 1) : "");
        std::string alert;
        for (auto &a : r.value("alerts", json::array()))
            alert +=
                (alert.empty() ? "! " : ", ") + str(a, "rule") + " (" + str(a, "severity") + ")";
        o += pad(str(r, "entity"), 40) + pad(human_bytes(u64(r, "bytes_out")), 11, true) +
             pad(human_bytes(u64(r, "bytes_in")), 11, true) +
             pad(std::to_string(u64(r, "tls_flows")), 8, true) +
             pad(std::to_string(u64(r, "requests")), 10, true) +
             pad(std::to_string(u64(r, "peak_concurrent")), 6, true) +
             pad(std::to_string(u64(r, "concurrent")), 6, true) +
             (group ? pad(std::to_string(u64(r, "distinct_clients")), 8, true) : "") +
             (subnets ? pad(std::to_string(u64(r, "distinct_subnets")), 8, true) : "") +
             pad(human_duration(now > first ? (now - first) / 1000 : 0), 8, true) + "  " +
             pad(sni, 28) + alert + "\n";
    }
    if (t.value("rows", json::array()).empty())
        o += "(no traffic in this window)\n";
    return o;
}

int run_status(const StatusOptions &o, std::ostream &out, std::ostream &err)
{
    std::string error;
    int code = 0;
    auto r = request(o.socket, {{"cmd", "status"}}, error, code);
    if (!r) {
        err << error << "\n";
        return code;
    }
    out << (o.json ? dump(*r) + "\n" : render_status(*r));
    return 0;
}

int run_top(const TopOptions &o, std::ostream &out, std::ostream &err)
{
    // A request the daemon would refuse is a usage error, daemon or not.
    auto kind = parse_top_kind(o.kind);
    auto sort = parse_sort(o.sort);
    if (kind && sort)
        if (auto why = top_request_problem({*kind, o.window, *sort, o.n}); !why.empty()) {
            err << "exfilmon top: " << why << "\n";
            return 2;
        }
    json req = {
        {"cmd", "top"}, {"kind", o.kind}, {"window", o.window}, {"sort", o.sort}, {"n", o.n}};
    std::string error;
    int code = 0;
    if (o.once) {
        auto r = request(o.socket, req, error, code);
        if (!r) {
            err << error << "\n";
            return code;
        }
        out << (o.json ? dump(*r) + "\n" : render_top(*r));
        return 0;
    }
    g_quit = false;
    struct sigaction sa {
    }, old_int{}, old_term{};
    sa.sa_handler = on_quit;  // no SA_RESTART: poll() returns at once
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    int rc = 0;
    {
        RawTerminal term;
        while (!g_quit) {
            auto r = request(o.socket, req, error, code);
            if (!r) {
                if (g_quit)
                    break;
                err << error << "\n";
                rc = code;
                break;
            }
            out << "\x1b[H\x1b[2J" << render_top(*r) << "\n(q quits; refresh every "
                << human_duration(o.interval_ms / 1000) << ")" << std::flush;
            auto until =
                std::chrono::steady_clock::now() + std::chrono::milliseconds(o.interval_ms);
            while (!g_quit) {
                auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    until - std::chrono::steady_clock::now());
                if (left.count() <= 0)
                    break;
                pollfd p{STDIN_FILENO, POLLIN, 0};
                int n = ::poll(&p, term.active() ? 1 : 0, int(left.count()));
                if (n > 0) {
                    char c = 0;
                    if (::read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q'))
                        g_quit = true;
                    else if (!(p.revents & POLLIN))
                        break;
                }
            }
        }
    }
    out << "\n" << std::flush;
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
    return rc;
}

}  // namespace exf::control
