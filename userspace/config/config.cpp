// SPDX-License-Identifier: Apache-2.0
#include "config/config.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <set>

#define TOML_EXCEPTIONS 1
#include <toml++/toml.h>

#include "aggregate/cohorts.h"
#include "capture/shared_layout.h"
#include "common/addr.h"
#include "common/error.h"
#include "common/files.h"
#include "common/units.h"
#include "fleet/clickhouse.h"
#include "fleet/schema.h"

namespace exf {

std::string ConfigIssue::format() const
{
    std::string text = (warning ? "warning: " : "") + message;
    // Line 0: about the whole file (missing, a directory, writable by others).
    if (line == 0)
        return file + ": " + text;
    return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + text;
}

ConfigIssue ConfigResult::at(const std::string &key, std::string message) const
{
    auto it = positions.find(key);
    if (it == positions.end())
        it = positions.find(key.substr(0, key.find(' ')));
    if (it == positions.end())
        return {file, 0, 0, std::move(message)};
    return {file, it->second.first, it->second.second, std::move(message)};
}

namespace {

class Reader {
public:
    Reader(const std::string &file, std::vector<ConfigIssue> &issues) : file_(file), issues_(issues)
    {}
    Reader(const std::string &file, ConfigResult &res)
        : file_(file), issues_(res.issues), positions_(&res.positions)
    {}

    void error(const toml::node &n, const std::string &msg)
    {
        auto &src = n.source();
        issues_.push_back({file_, src.begin.line, src.begin.column, msg});
    }

    // Flags keys of table t not in the allowed list.
    void only(const toml::table &t, std::string_view where,
              std::initializer_list<std::string_view> allowed)
    {
        if (keys_ && where != "the top level")
            for (auto a : allowed)
                keys_->insert(where == "baseline" ? "[[rules]] baseline." + std::string(a)
                              : where == "[sni_overrides]"
                                  ? "[sni_overrides.\"NAME\"] " + std::string(a)
                                  : std::string(where) + " " + std::string(a));
        note_positions(t, where);
        for (auto &&[k, v] : t) {
            bool ok = false;
            for (auto a : allowed)
                ok = ok || k.str() == a;
            if (!ok)
                error(v, "unknown key '" + std::string(k.str()) + "' in " + std::string(where));
        }
    }

    template <typename Fn>
    void with(const toml::table &t, std::string_view key, Fn fn)
    {
        if (auto *n = t.get(key))
            fn(*n);
    }

    bool uint_in(const toml::node &n, std::string_view key, uint64_t lo, uint64_t hi, uint64_t &out)
    {
        // Type first: toml++ converts a float node to an integer in
        // value<int64_t>(), undefined behaviour when it is out of range (1e43).
        std::optional<int64_t> v;
        if (n.is_integer())
            v = n.value<int64_t>();
        if (!v) {
            error(n, std::string(key) + ": expected an integer");
            return false;
        }
        if (*v < int64_t(lo) || uint64_t(*v) > hi) {
            error(n, std::string(key) + ": " + std::to_string(*v) + " is out of range [" +
                         std::to_string(lo) + ", " + std::to_string(hi) + "]");
            return false;
        }
        out = uint64_t(*v);
        return true;
    }

    bool uint_in(const toml::node &n, std::string_view key, const Range &range, uint64_t &out)
    {
        return uint_in(n, key, range.lo, range.hi, out);
    }

    bool size(const toml::node &n, std::string_view key, uint64_t &out)
    {
        if (n.is_integer() && n.value<int64_t>().value_or(-1) >= 0) {
            out = uint64_t(*n.value<int64_t>());
            return true;
        }
        if (n.is_string()) {
            if (auto v = parse_size(*n.value<std::string>())) {
                out = *v;
                return true;
            }
            error(n, std::string(key) + ": '" + *n.value<std::string>() +
                         "' is not a size (e.g. 4MiB, 500KB, 65536)");
            return false;
        }
        error(n, std::string(key) + ": expected a size (string like \"4MiB\" or an integer)");
        return false;
    }

    bool number(const toml::node &n, std::string_view key, double &out)
    {
        if (auto v = n.value<double>(); v && (n.is_integer() || n.is_floating_point())) {
            if (*v < 0 || !std::isfinite(*v)) {
                error(n, std::string(key) + ": must be a non-negative number");
                return false;
            }
            out = *v;
            return true;
        }
        error(n, std::string(key) + ": expected a number");
        return false;
    }

    bool string(const toml::node &n, std::string_view key, std::string &out)
    {
        if (!n.is_string()) {
            error(n, std::string(key) + ": expected a string");
            return false;
        }
        out = *n.value<std::string>();
        return true;
    }

    bool duration(const toml::node &n, std::string_view key, uint64_t &out)
    {
        if (n.is_string()) {
            if (auto v = parse_duration_ms(*n.value<std::string>())) {
                out = *v;
                return true;
            }
            error(n, std::string(key) + ": '" + *n.value<std::string>() +
                         "' is not a duration (e.g. 500ms, 5s, 10m, 1h)");
            return false;
        }
        error(n, std::string(key) + ": expected a duration string like \"5s\"");
        return false;
    }

    const toml::table *table(const toml::table &root, std::string_view key)
    {
        auto *n = root.get(key);
        if (!n)
            return nullptr;
        if (!n->is_table()) {
            error(*n, std::string(key) + ": expected a table [" + std::string(key) + "]");
            return nullptr;
        }
        return n->as_table();
    }

    size_t count() const { return issues_.size(); }
    // Records every key only() allows (config_keys()).
    void record_keys(std::set<std::string> *keys) { keys_ = keys; }

private:
    // ConfigResult::positions: "[control]", "[control] group", and for
    // arrays of tables the index, "[[outputs]]#0", "[[outputs]]#0 address".
    void note_positions(const toml::table &t, std::string_view where)
    {
        if (!positions_)
            return;
        std::string table(where);
        if (where.substr(0, 2) == "[[")
            table += "#" + std::to_string(tables_seen_[table]++);
        auto put = [&](const std::string &key, const toml::node &n) {
            (*positions_)[key] = {n.source().begin.line, n.source().begin.column};
        };
        put(table, t);
        for (auto &&[k, v] : t)
            put(table + " " + std::string(k.str()), v);
    }

    std::string file_;
    std::vector<ConfigIssue> &issues_;
    std::set<std::string> *keys_ = nullptr;
    std::map<std::string, std::pair<uint32_t, uint32_t>> *positions_ = nullptr;
    std::map<std::string, size_t> tables_seen_;
};

void read_capture(const toml::table &t, Reader &r, Config &c)
{
    r.only(t, "[capture]", {"interfaces", "backend"});
    r.with(t, "backend", [&](const toml::node &n) {
        auto v = n.value<std::string>();
        if (!n.is_string() || (*v != "ebpf" && *v != "pcap"))
            r.error(n, "backend: expected \"ebpf\" or \"pcap\"");
        else
            c.backend = *v;
    });
    r.with(t, "interfaces", [&](const toml::node &n) {
        auto *arr = n.as_array();
        if (!arr) {
            r.error(n, "interfaces: expected an array of interface names");
            return;
        }
        c.interfaces.clear();
        for (auto &&e : *arr) {
            auto s = e.value<std::string>();
            if (!e.is_string() || s->empty() || s->size() >= 16)
                r.error(e, "interfaces: each entry must be an interface name (1-15 characters)");
            else
                c.interfaces.push_back(*s);
        }
    });
}

void read_bool(const toml::table &t, Reader &r, const char *key, bool &out)
{
    r.with(t, key, [&](const toml::node &n) {
        if (!n.is_boolean())
            r.error(n, std::string(key) + ": expected true or false");
        else
            out = *n.value<bool>();
    });
}

void read_tls_ports(const toml::node &n, Reader &r, std::vector<uint16_t> &ports)
{
    auto *arr = n.as_array();
    if (!arr || arr->empty() || arr->size() > EXF_MAX_TLS_PORTS) {
        r.error(n, "tls_ports: expected an array of 1 to " + std::to_string(EXF_MAX_TLS_PORTS) +
                       " ports");
        return;
    }
    ports.clear();
    for (auto &&e : *arr) {
        uint64_t v;
        if (!r.uint_in(e, "tls_ports", 1, 65535, v))
            continue;
        if (std::find(ports.begin(), ports.end(), uint16_t(v)) != ports.end())
            r.error(e, "tls_ports: " + std::to_string(v) + " is listed twice");
        else
            ports.push_back(uint16_t(v));
    }
}

void read_bpf(const toml::table &t, Reader &r, Config &c)
{
    r.only(t, "[bpf]",
           {"flow_table_size", "client_table_size", "ringbuf_size", "tls_ports", "pin", "pin_path",
            "keep_attached", "request_min_bytes"});
    read_bool(t, r, "pin", c.bpf.pin);
    read_bool(t, r, "keep_attached", c.bpf.keep_attached);
    r.with(t, "pin_path", [&](const toml::node &n) {
        auto s = n.value<std::string>();
        if (!n.is_string() || s->empty() || (*s)[0] != '/')
            r.error(n, "pin_path: expected an absolute path on a bpffs mount");
        else
            c.bpf.pin_path = *s;
    });
    uint64_t v;
    r.with(t, "flow_table_size", [&](const toml::node &n) {
        if (r.uint_in(n, "flow_table_size", kFlowTableSize, v))
            c.bpf.flow_table_size = uint32_t(v);
    });
    r.with(t, "client_table_size", [&](const toml::node &n) {
        if (r.uint_in(n, "client_table_size", kClientTableSize, v))
            c.bpf.client_table_size = uint32_t(v);
    });
    r.with(t, "ringbuf_size", [&](const toml::node &n) {
        if (!r.size(n, "ringbuf_size", v))
            return;
        static_assert(kRingbufBytes.lo == 64u << 10 && kRingbufBytes.hi == 1u << 30,
                      "the message names the bounds");
        if (!kRingbufBytes.contains(v) || (v & (v - 1)))
            r.error(n, "ringbuf_size: must be a power of two between 64KiB and 1GiB");
        else
            c.bpf.ringbuf_bytes = uint32_t(v);
    });
    r.with(t, "tls_ports", [&](const toml::node &n) { read_tls_ports(n, r, c.bpf.tls_ports); });
    r.with(t, "request_min_bytes", [&](const toml::node &n) {
        if (r.uint_in(n, "request_min_bytes", kRequestMinBytes, v))
            c.bpf.request_min_bytes = uint32_t(v);
    });
}

// "between 1s and 30d": the bounds of one aggregation window.
std::string window_bounds()
{
    return "between " + agg::window_name(agg::kWindowMs.lo) + " and " +
           agg::window_name(agg::kWindowMs.hi);
}

void read_windows(const toml::node &n, Reader &r, std::vector<uint64_t> &windows_ms)
{
    auto *arr = n.as_array();
    if (!arr || arr->empty() || arr->size() > agg::kMaxWindows) {
        r.error(n, "windows: expected an array of 1 to " + std::to_string(agg::kMaxWindows) +
                       " durations like \"10m\"");
        return;
    }
    windows_ms.clear();
    for (auto &&e : *arr) {
        uint64_t ms;
        if (!r.duration(e, "windows", ms))
            continue;
        if (!agg::kWindowMs.contains(ms))
            r.error(e, "windows: each window must be " + window_bounds());
        else if (std::find(windows_ms.begin(), windows_ms.end(), ms) != windows_ms.end())
            r.error(e, "windows: duplicate window");
        else
            windows_ms.push_back(ms);
    }
}

void read_aggregate_bounds(const toml::table &t, Reader &r, agg::AggConfig &a)
{
    // An integer key within range, into a prefix (uint8_t) or a limit (size_t).
    auto bounded = [&](const char *key, const Range &range, auto &out) {
        r.with(t, key, [&](const toml::node &n) {
            uint64_t v;
            if (r.uint_in(n, key, range, v))
                out = std::remove_reference_t<decltype(out)>(v);
        });
    };
    bounded("client_prefix_v4", agg::kPrefixV4, a.client_prefix_v4);
    bounded("client_prefix_v6", agg::kPrefixV6, a.client_prefix_v6);
    bounded("subnet_prefix_v4", agg::kPrefixV4, a.subnet_prefix_v4);
    bounded("subnet_prefix_v6", agg::kPrefixV6, a.subnet_prefix_v6);
    bounded("max_clients", agg::kMaxClients, a.max_clients);
    bounded("max_subnets", agg::kMaxSubnets, a.max_subnets);
    bounded("max_api_hosts", agg::kMaxApiHosts, a.max_api_hosts);
    bounded("max_client_api_hosts", agg::kMaxClientApiHosts, a.max_client_api_hosts);
    bounded("max_cohorts", agg::kMaxCohorts, a.max_cohorts);
    bounded("max_ja4", agg::kMaxJa4, a.max_ja4);
    bounded("max_ja4_snis", agg::kMaxJa4Snis, a.max_ja4_snis);
    bounded("max_memberships", agg::kMaxMemberships, a.max_memberships);
}

void read_cohorts_file(const toml::node &n, Reader &r, Config &c)
{
    auto path = n.value<std::string>();
    if (!n.is_string()) {
        r.error(n, "cohorts_file: expected a path to a file of \"CIDR label\" lines");
        return;
    }
    c.cohorts_file = *path;
    if (path->empty())
        return;
    // A cohort label can exempt clients: the same trust as the
    // configuration file itself.
    if (auto why = writable_by_others(*path); !why.empty()) {
        r.error(n, "cohorts_file " + *path + ": " + why);
        return;
    }
    auto parsed = agg::load_cohorts(*path);
    for (auto &e : parsed.errors)
        r.error(n, "cohorts_file: " + e);
    if (parsed.ok())
        c.aggregate.cohorts = std::move(parsed.rules);
}

void read_aggregate(const toml::table &t, Reader &r, Config &c)
{
    r.only(t, "[aggregate]",
           {"windows", "client_prefix_v4", "client_prefix_v6", "subnet_prefix_v4",
            "subnet_prefix_v6", "cohorts_file", "max_clients", "max_subnets", "max_api_hosts",
            "max_client_api_hosts", "max_cohorts", "max_ja4", "max_ja4_snis", "max_memberships"});
    size_t issues_before = r.count();
    r.with(t, "windows", [&](const toml::node &n) { read_windows(n, r, c.aggregate.windows_ms); });
    read_aggregate_bounds(t, r, c.aggregate);
    r.with(t, "cohorts_file", [&](const toml::node &n) { read_cohorts_file(n, r, c); });
    // Cross-key checks only when every key read well (an empty window
    // list after a bad entry would only repeat that error).
    if (r.count() == issues_before)
        for (auto &problem : c.aggregate.validate())
            r.error(t, "[aggregate]: " + problem);
}

// A duration key whose value must lie in [lo, hi]; `range` words the bounds
// in the error ("between 1s and 10m").
void read_duration_in(const toml::table &t, Reader &r, const char *key, uint64_t lo, uint64_t hi,
                      const std::string &range, uint64_t &out)
{
    r.with(t, key, [&](const toml::node &n) {
        uint64_t ms;
        if (!r.duration(n, key, ms))
            return;
        if (ms < lo || ms > hi)
            r.error(n, std::string(key) + ": must be " + range);
        else
            out = ms;
    });
}

void read_daemon(const toml::table &t, Reader &r, Config &c)
{
    r.only(
        t, "[daemon]",
        {"report_interval", "harvest_interval", "event_queue_size", "state_dir", "state_interval"});
    r.with(t, "state_dir", [&](const toml::node &n) {
        auto s = n.value<std::string>();
        if (!n.is_string() || (!s->empty() && (*s)[0] != '/'))
            r.error(n, "state_dir: expected an absolute directory path, or \"\" to keep no state");
        else
            c.state_dir = *s;
    });
    read_duration_in(t, r, "state_interval", 1000, 600000, "between 1s and 10m",
                     c.state_interval_ms);
    read_duration_in(t, r, "harvest_interval", 100, 60000, "between 100ms and 60s",
                     c.harvest_interval_ms);
    r.with(t, "event_queue_size", [&](const toml::node &n) {
        uint64_t v;
        if (r.uint_in(n, "event_queue_size", 64, 1u << 20, v))
            c.event_queue_size = uint32_t(v);
    });
    r.with(t, "report_interval", [&](const toml::node &n) {
        uint64_t ms;
        if (!r.duration(n, "report_interval", ms))
            return;
        if (ms != 0 && ms < 100)
            r.error(n, "report_interval: must be 0s (off) or at least 100ms");
        else
            c.report_interval_ms = ms;
    });
}

void read_log(const toml::table &t, Reader &r, Config &c)
{
    r.only(t, "[log]", {"level"});
    r.with(t, "level", [&](const toml::node &n) {
        auto s = n.value<std::string>();
        static const char *levels[] = {"trace", "debug", "info", "warn", "error"};
        bool ok = false;
        for (auto *l : levels)
            ok = ok || (n.is_string() && *s == l);
        if (!ok)
            r.error(n, "level: expected one of trace, debug, info, warn, error");
        else
            c.log_level = *s;
    });
}

void read_control(const toml::table &t, Reader &r, Config &c)
{
    r.only(t, "[control]", {"socket", "group"});
    r.with(t, "socket", [&](const toml::node &n) {
        std::string s;
        if (!r.string(n, "socket", s))
            return;
        // sun_path holds 107 bytes and the terminating NUL.
        if (s.empty() || s[0] != '/' || s.size() > 107 || s.back() == '/')
            r.error(n, "socket: expected an absolute path of at most 107 bytes");
        else
            c.control_socket = s;
    });
    r.with(t, "group", [&](const toml::node &n) {
        std::string s;
        if (!r.string(n, "group", s))
            return;
        if (s.size() > 32 || s.find_first_of(" :/\n") != std::string::npos)
            r.error(n, "group: expected a group name (\"\": root only)");
        else
            c.control_group = s;
    });
}

// "127.0.0.1:9464", "[::1]:9464": an address literal and a port.
void read_listen(const toml::node &n, Reader &r, Config &c)
{
    std::string s;
    if (!r.string(n, "listen", s))
        return;
    auto colon = s.rfind(':');
    std::string host = colon == std::string::npos ? "" : s.substr(0, colon);
    std::string port = colon == std::string::npos ? "" : s.substr(colon + 1);
    bool v6 = host.size() > 2 && host.front() == '[' && host.back() == ']';
    if (v6)
        host = host.substr(1, host.size() - 2);
    auto addr = parse_addr(host);
    bool host_ok =
        addr && (v6 ? host.find(':') != std::string::npos : host.find(':') == std::string::npos);
    unsigned long p = 0;
    bool port_ok = !port.empty() && port.size() <= 5 &&
                   port.find_first_not_of("0123456789") == std::string::npos &&
                   (p = std::stoul(port)) >= 1 && p <= 65535;
    if (!host_ok || !port_ok) {
        r.error(n, "listen: expected ADDRESS:PORT like \"127.0.0.1:9464\" or \"[::1]:9464\"");
        return;
    }
    c.metrics_host = host;
    c.metrics_listen_set = true;
    c.metrics_port = uint16_t(p);
}

void read_metrics(const toml::table &t, Reader &r, Config &c)
{
    r.only(t, "[metrics]", {"enabled", "listen"});
    read_bool(t, r, "enabled", c.metrics_enabled);
    r.with(t, "listen", [&](const toml::node &n) { read_listen(n, r, c); });
}

// A path key that must be absolute when set ("" : unset).
void read_abs_path(const toml::table &t, Reader &r, const char *key, std::string &out)
{
    r.with(t, key, [&](const toml::node &n) {
        std::string s;
        if (!r.string(n, key, s))
            return;
        if (!s.empty() && s[0] != '/')
            r.error(n, std::string(key) + ": expected an absolute path");
        else
            out = s;
    });
}

void read_fleet(const toml::table &t, Reader &r, Config &c)
{
    r.only(t, "[fleet]",
           {"clickhouse", "database", "user", "password_file", "sensor", "interval", "retention",
            "timeout", "evaluation", "ca_file", "cert_file", "key_file"});
    auto &f = c.fleet;
    f.enabled = true;
    r.with(t, "clickhouse", [&](const toml::node &n) {
        std::string s;
        if (!r.string(n, "clickhouse", s))
            return;
        if (auto why = fleet::clickhouse_url_problem(s); !why.empty())
            r.error(n, "clickhouse: '" + s + "': " + why);
        else
            f.clickhouse = s;
    });
    r.with(t, "database", [&](const toml::node &n) {
        std::string s;
        if (!r.string(n, "database", s))
            return;
        if (auto why = fleet::database_name_problem(s); !why.empty())
            r.error(n, "database: '" + s + "' " + why);
        else
            f.database = s;
    });
    r.with(t, "user", [&](const toml::node &n) {
        std::string s;
        if (r.string(n, "user", s) && (s.empty() || s.size() > 64))
            r.error(n, "user: must be 1 to 64 characters");
        else if (!s.empty())
            f.user = s;
    });
    r.with(t, "sensor", [&](const toml::node &n) {
        std::string s;
        if (r.string(n, "sensor", s) && s.size() > 255)
            r.error(n, "sensor: at most 255 bytes");
        else
            f.sensor = s;
    });
    r.with(t, "evaluation", [&](const toml::node &n) {
        std::string s;
        if (!r.string(n, "evaluation", s))
            return;
        if (s == "memory" || s == "sql")
            f.evaluate_in_memory = s == "memory";
        else
            r.error(n, "evaluation: '" + s + "': expected \"memory\" or \"sql\"");
    });
    read_abs_path(t, r, "password_file", f.password_file);
    read_abs_path(t, r, "ca_file", f.ca_file);
    read_abs_path(t, r, "cert_file", f.cert_file);
    read_abs_path(t, r, "key_file", f.key_file);
    read_duration_in(t, r, "interval", 1000, 3600000, "between 1s and 1h", f.interval_ms);
    read_duration_in(t, r, "timeout", 1000, 600000, "between 1s and 10m", f.timeout_ms);
    read_duration_in(t, r, "retention", 86'400'000, 3650ull * 86'400'000, "between 1d and 3650d",
                     f.retention_ms);
}

void read_root(const toml::table &root, Reader &r, Config &c)
{
    r.only(root, "the top level",
           {"capture", "bpf", "aggregate", "daemon", "log", "detect", "rules", "allow",
            "sni_overrides", "outputs", "control", "metrics", "fleet"});
    using Section = void (*)(const toml::table &, Reader &, Config &);
    static const std::pair<const char *, Section> sections[] = {
        {"capture", read_capture}, {"bpf", read_bpf},     {"aggregate", read_aggregate},
        {"daemon", read_daemon},   {"log", read_log},     {"control", read_control},
        {"metrics", read_metrics}, {"fleet", read_fleet},
    };
    for (auto &[key, read] : sections)
        if (auto *t = r.table(root, key))
            read(*t, r, c);
}

// A rule's threshold or baseline floor, in the metric's unit: sizes for
// bytes ("2GiB" or an integer), counts for flows and clients, numbers for
// ratios.
bool metric_amount(Reader &r, const toml::node &n, std::string_view key, detect::Metric m,
                   double &out)
{
    if (detect::metric_is_size(m)) {
        uint64_t v;
        if (!r.size(n, key, v))
            return false;
        out = double(v);
        return true;
    }
    if (n.is_string()) {
        r.error(n, std::string(key) + ": " + detect::metric_name(m) +
                       (detect::metric_is_ratio(m) ? " takes a number (a ratio like 50.0)"
                                                   : " takes a count (an integer)"));
        return false;
    }
    return r.number(n, key, out);
}

void read_rule_name(const toml::table &t, Reader &r, detect::Rule &rule,
                    std::set<std::string> &names)
{
    auto *n = t.get("name");
    if (!n) {
        r.error(t, "[[rules]]: every rule needs a name");
        return;
    }
    if (r.string(*n, "name", rule.name) && (rule.name.empty() || rule.name.size() > 64))
        r.error(*n, "name: 1 to 64 characters");
    else if (!names.insert(rule.name).second)
        r.error(*n, "name: another rule is already named '" + rule.name + "'");
}

void read_rule_entity(const toml::table &t, Reader &r, detect::Rule &rule)
{
    auto *n = t.get("entity");
    if (!n) {
        r.error(t, "[[rules]]: '" + rule.name + "' needs an entity");
        return;
    }
    std::string s;
    if (!r.string(*n, "entity", s))
        return;
    if (auto k = detect::parse_rule_entity(s))
        rule.entity = *k;
    else
        r.error(*n, "entity: expected " + detect::rule_entity_names());
}

// True when the rule names a known metric: its threshold and baseline are
// read in that metric's unit.
bool read_rule_metric(const toml::table &t, Reader &r, detect::Rule &rule)
{
    auto *n = t.get("metric");
    if (!n) {
        r.error(t, "[[rules]]: '" + rule.name + "' needs a metric");
        return false;
    }
    std::string s;
    if (!r.string(*n, "metric", s))
        return false;
    auto m = detect::parse_metric(s);
    if (!m) {
        r.error(*n, "metric: expected " + detect::metric_names());
        return false;
    }
    rule.metric = *m;
    if (auto why = detect::metric_applies_problem(*m, rule.entity); !why.empty())
        r.error(*n, "metric: " + why);
    return true;
}

void read_rule_window(const toml::table &t, Reader &r, detect::Rule &rule)
{
    auto *n = t.get("window");
    uint64_t ms;
    if (!n || !r.duration(*n, "window", ms))
        return;
    if (!agg::kWindowMs.contains(ms))
        r.error(*n, "window: must be " + window_bounds());
    else
        rule.window_ms = ms;
}

void read_threshold(const toml::node &n, Reader &r, detect::Rule &rule)
{
    double v;
    if (!metric_amount(r, n, "threshold", rule.metric, v))
        return;
    if (v <= 0)
        r.error(n, "threshold: must be greater than 0");
    else
        rule.threshold = v;
}

void read_baseline(const toml::node &n, Reader &r, detect::Rule &rule)
{
    auto *b = n.as_table();
    if (!b) {
        r.error(n,
                "baseline: expected a table { factor = 8.0, floor = \"200MiB\", learn = \"24h\" }");
        return;
    }
    r.only(*b, "baseline", {"factor", "floor", "learn"});
    detect::Baseline base;
    double v;
    if (auto *f = b->get("factor"); f && r.number(*f, "factor", v)) {
        if (v <= 1.0)
            r.error(*f, "factor: must be greater than 1");
        else
            base.factor = v;
    }
    if (auto *f = b->get("floor"); f && metric_amount(r, *f, "floor", rule.metric, v))
        base.floor = v;
    uint64_t ms;
    if (auto *f = b->get("learn"); f && r.duration(*f, "learn", ms)) {
        if (ms < rule.window_ms)
            r.error(*f, "learn: must be at least the rule's window");
        else
            base.learn_ms = ms;
    }
    rule.baseline = base;
}

// severity, sustain, mode and min_bytes_out: each has a default.
void read_rule_options(const toml::table &t, Reader &r, detect::Rule &rule)
{
    std::string s;
    if (auto *n = t.get("severity"); n && r.string(*n, "severity", s)) {
        if (auto v = detect::parse_severity(s))
            rule.severity = *v;
        else
            r.error(*n, "severity: expected info, warning or critical");
    }
    uint64_t v;
    if (auto *n = t.get("sustain"); n && r.uint_in(*n, "sustain", 1, 1000, v))
        rule.sustain = uint32_t(v);
    if (auto *n = t.get("mode"); n && r.string(*n, "mode", s)) {
        if (s == "shadow" || s == "alert")
            rule.shadow = s == "shadow";
        else
            r.error(*n, "mode: expected \"alert\" or \"shadow\"");
    }
    if (auto *n = t.get("min_bytes_out"); n && r.size(*n, "min_bytes_out", v))
        rule.min_bytes_out = double(v);
}

void read_rule(const toml::table &t, Reader &r, detect::Rule &rule, std::set<std::string> &names)
{
    r.only(t, "[[rules]]",
           {"name", "entity", "metric", "window", "threshold", "baseline", "severity", "sustain",
            "mode", "min_bytes_out"});
    rule.line = t.source().begin.line;
    read_rule_name(t, r, rule, names);
    read_rule_entity(t, r, rule);
    bool metric_ok = read_rule_metric(t, r, rule);
    read_rule_window(t, r, rule);
    if (auto *n = t.get("threshold"); n && metric_ok)
        read_threshold(*n, r, rule);
    if (auto *n = t.get("baseline"); n && metric_ok)
        read_baseline(*n, r, rule);
    if (!t.get("threshold") && !t.get("baseline"))
        r.error(t, "[[rules]]: '" + rule.name + "' needs a threshold, a baseline or both");
    read_rule_options(t, r, rule);
}

std::string lower(std::string s)
{
    for (auto &ch : s)
        ch = char(std::tolower(static_cast<unsigned char>(ch)));
    return s;
}

bool valid_sni_pattern(const std::string &s)
{
    if (s.empty() || s.size() > 253)
        return false;
    std::string_view rest(s);
    if (rest.substr(0, 2) == "*.")
        rest.remove_prefix(2);
    for (char ch : rest)
        if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.' || ch == '_'))
            return false;
    return !rest.empty();
}

void read_allow(const toml::table &t, Reader &r, detect::AllowEntry &a)
{
    r.only(t, "[[allow]]", {"cidr", "sni", "cohort", "rules", "comment"});
    int named = 0;
    if (auto *n = t.get("cidr")) {
        named++;
        std::string s, why;
        if (r.string(*n, "cidr", s)) {
            if (auto c = agg::parse_cidr(s, why))
                a.cidr = *c;
            else
                r.error(*n, "cidr: '" + s + "': " + why);
        }
    }
    if (auto *n = t.get("sni")) {
        named++;
        if (r.string(*n, "sni", a.sni)) {
            a.sni = lower(a.sni);
            if (!valid_sni_pattern(a.sni))
                r.error(*n, "sni: expected a host name or \"*.domain\"");
        }
    }
    if (auto *n = t.get("cohort")) {
        named++;
        r.string(*n, "cohort", a.cohort);
    }
    if (named != 1)
        r.error(t, "[[allow]]: give exactly one of cidr, sni or cohort");
    if (auto *n = t.get("rules")) {
        auto *arr = n->as_array();
        if (!arr) {
            r.error(*n, "rules: expected an array of rule names");
        } else {
            for (auto &&e : *arr) {
                std::string s;
                if (r.string(e, "rules", s))
                    a.rules.push_back(s);
            }
        }
    }
    if (auto *n = t.get("comment"); n && !n->is_string())
        r.error(*n, "comment: expected a string");
}

// The key's string into out, when the table has the key.
void read_optional_string(const toml::table &t, Reader &r, const char *key, std::string &out)
{
    if (auto *n = t.get(key))
        r.string(*n, key, out);
}

void read_json_output(const toml::table &t, Reader &r, output::OutputConfig &o)
{
    o.format = output::Format::json;
    for (auto *k : {"transport", "address", "format", "facility", "app_name", "ca_file",
                    "server_name", "cert_file", "key_file"})
        if (auto *n = t.get(k))
            r.error(*n, std::string(k) + ": only for syslog outputs");
    read_optional_string(t, r, "path", o.path);
    if (o.path.empty())
        r.error(t, "path: \"-\" for standard output or a file path");
}

// The key's value named by its string, out of names; an issue listing the
// names when it is another. Returns the string (fallback when absent).
template <class T>
std::string read_choice(const toml::table &t, Reader &r, const char *key, std::string fallback,
                        std::initializer_list<std::pair<std::string_view, T>> names, T &out)
{
    std::string s = std::move(fallback);
    if (auto *n = t.get(key); n && r.string(*n, key, s)) {
        auto it = std::find_if(names.begin(), names.end(), [&](auto &p) { return p.first == s; });
        if (it != names.end()) {
            out = it->second;
        } else {
            std::string list;
            for (size_t i = 0; i < names.size(); i++)
                list += (i == 0                  ? ""
                         : i + 1 == names.size() ? " or "
                                                 : ", ") +
                        std::string(names.begin()[i].first);
            r.error(*n, std::string(key) + ": expected " + list);
        }
    }
    return s;
}

// Returns the transport's name as written (unix when absent).
std::string read_syslog_transport(const toml::table &t, Reader &r, output::OutputConfig &o)
{
    using output::Transport;
    return read_choice<Transport>(t, r, "transport", "unix",
                                  {{"unix", Transport::unix_socket},
                                   {"udp", Transport::udp},
                                   {"tcp", Transport::tcp},
                                   {"tls", Transport::tls}},
                                  o.transport);
}

// A socket path for unix, host:port for the network transports.
void read_syslog_address(const toml::table &t, Reader &r, output::OutputConfig &o,
                         const std::string &transport_name)
{
    bool unix_socket = o.transport == output::Transport::unix_socket;
    auto *n = t.get("address");
    if (!n) {
        if (!unix_socket)
            r.error(t, "[[outputs]]: a " + transport_name +
                           " syslog output needs an address (host:port)");
        return;
    }
    if (!r.string(*n, "address", o.address))
        return;
    bool is_path = !o.address.empty() && o.address[0] == '/';
    if (unix_socket && !is_path)
        r.error(*n, "address: a unix transport takes a socket path like /dev/log");
    else if (!unix_socket && (is_path || o.address.rfind(':') == std::string::npos))
        r.error(*n, "address: expected host:port (or [IPv6]:port)");
    else if (!unix_socket)
        try {
            output::parse_host_port(o.address, output::default_port(o.transport));
        } catch (const Error &e) {
            r.error(*n, e.what());
        }
}

void read_syslog_format(const toml::table &t, Reader &r, output::OutputConfig &o)
{
    using output::Format;
    read_choice<Format>(t, r, "format", "rfc5424",
                        {{"rfc5424", Format::rfc5424},
                         {"rfc5424-json", Format::rfc5424_json},
                         {"cef", Format::cef},
                         {"rfc3164", Format::rfc3164}},
                        o.format);
}

// facility and app_name: who the syslog header says sent the alert.
void read_syslog_sender(const toml::table &t, Reader &r, output::OutputConfig &o)
{
    if (auto *n = t.get("facility")) {
        std::string f;
        if (r.string(*n, "facility", f)) {
            int v = output::facility_from_name(f);
            if (v < 0)
                r.error(*n, "facility: '" + f +
                                "' is not a syslog facility (e.g. local0, auth, daemon)");
            else
                o.facility = v;
        }
    }
    read_optional_string(t, r, "app_name", o.app_name);
    if (o.app_name.empty() || o.app_name.size() > 48)
        if (auto *n = t.get("app_name"))
            r.error(*n, "app_name: 1 to 48 characters");
}

void read_syslog_tls(const toml::table &t, Reader &r, output::OutputConfig &o)
{
    read_optional_string(t, r, "ca_file", o.ca_file);
    read_optional_string(t, r, "server_name", o.server_name);
    read_optional_string(t, r, "cert_file", o.cert_file);
    read_optional_string(t, r, "key_file", o.key_file);
    if (o.transport == output::Transport::tls && o.ca_file.empty())
        r.error(t, "[[outputs]]: a tls output needs ca_file (the CA the collector's "
                   "certificate chains to)");
    if (o.transport != output::Transport::tls)
        for (auto *k : {"ca_file", "server_name", "cert_file", "key_file"})
            if (auto *n = t.get(k))
                r.error(*n, std::string(k) + ": only for tls outputs");
    if (o.cert_file.empty() != o.key_file.empty())
        r.error(t, "[[outputs]]: cert_file and key_file go together");
}

void read_syslog_output(const toml::table &t, Reader &r, output::OutputConfig &o)
{
    if (auto *n = t.get("path"))
        r.error(*n, "path: only for json outputs (syslog outputs take an address)");
    std::string transport_name = read_syslog_transport(t, r, o);
    read_syslog_address(t, r, o, transport_name);
    read_syslog_format(t, r, o);
    read_syslog_sender(t, r, o);
    read_syslog_tls(t, r, o);
}

void read_output(const toml::table &t, Reader &r, output::OutputConfig &o, const std::string &file)
{
    r.only(t, "[[outputs]]",
           {"type", "transport", "address", "format", "facility", "app_name", "ca_file",
            "server_name", "cert_file", "key_file", "spool_size", "spool_file", "path"});
    o.origin = file + ":" + std::to_string(t.source().begin.line);
    std::string type = "syslog";
    if (auto *n = t.get("type");
        n && r.string(*n, "type", type) && type != "syslog" && type != "json")
        r.error(*n, "type: expected \"syslog\" or \"json\"");
    o.type = type == "json" ? output::OutputType::json : output::OutputType::syslog;
    if (o.type == output::OutputType::json)
        read_json_output(t, r, o);
    else
        read_syslog_output(t, r, o);
    if (auto *n = t.get("spool_size")) {
        uint64_t v;
        if (r.uint_in(*n, "spool_size", 1, 10'000'000, v))
            o.spool_size = uint32_t(v);
    }
    read_optional_string(t, r, "spool_file", o.spool_file);
}

void read_detect(const toml::table &t, Reader &r, detect::DetectConfig &d)
{
    r.only(t, "[detect]",
           {"interval", "realert", "resolve_after", "storm_limit", "max_open_alerts",
            "max_baselines", "host_name"});
    auto dur = [&](const char *key, uint64_t lo, uint64_t hi, uint64_t &out) {
        read_duration_in(t, r, key, lo, hi,
                         "between " + agg::window_name(lo) + " and " + agg::window_name(hi), out);
    };
    dur("interval", 100, 60'000, d.interval_ms);
    dur("realert", 1000, 7 * 86'400'000ull, d.realert_ms);
    dur("resolve_after", 0, 7 * 86'400'000ull, d.resolve_after_ms);
    auto count = [&](const char *key, uint64_t hi, uint32_t &out) {
        r.with(t, key, [&](const toml::node &n) {
            uint64_t v;
            if (r.uint_in(n, key, 1, hi, v))
                out = uint32_t(v);
        });
    };
    count("storm_limit", 100000, d.storm_limit);
    count("max_open_alerts", 10'000'000, d.max_open);
    count("max_baselines", 1u << 26, d.max_baselines);
    r.with(t, "host_name", [&](const toml::node &n) {
        if (r.string(n, "host_name", d.host_name) && d.host_name.size() > 255)
            r.error(n, "host_name: at most 255 characters");
    });
}

const toml::array *array_of_tables(const toml::table &root, Reader &r, const char *key)
{
    auto *n = root.get(key);
    if (!n)
        return nullptr;
    auto *arr = n->as_array();
    if (!arr || (!arr->empty() && !arr->is_array_of_tables())) {
        r.error(*n, std::string(key) + ": expected tables [[" + key + "]]");
        return nullptr;
    }
    return arr;
}

// Every rule window is an aggregation window.
void add_rule_windows(const toml::array &arr, Reader &r, const std::vector<detect::Rule> &rules,
                      std::vector<uint64_t> &windows_ms)
{
    for (size_t i = 0; i < rules.size(); i++) {
        if (std::find(windows_ms.begin(), windows_ms.end(), rules[i].window_ms) != windows_ms.end())
            continue;
        if (windows_ms.size() >= agg::kMaxWindows)
            r.error(*arr.get(i)->as_table(),
                    "[[rules]]: '" + rules[i].name + "': window " +
                        agg::window_name(rules[i].window_ms) + " would be a " +
                        std::to_string(agg::kMaxWindows + 1) + "th aggregation window (at most " +
                        std::to_string(agg::kMaxWindows) + ")");
        else
            windows_ms.push_back(rules[i].window_ms);
    }
}

void read_rules(const toml::array &arr, Reader &r, Config &c)
{
    auto &rules = c.detect.rules;
    rules.clear();
    std::set<std::string> names;
    for (auto &&e : arr) {
        detect::Rule rule;
        read_rule(*e.as_table(), r, rule, names);
        rules.push_back(std::move(rule));
    }
    add_rule_windows(arr, r, rules, c.aggregate.windows_ms);
}

void read_allows(const toml::array &arr, Reader &r, detect::DetectConfig &d)
{
    for (auto &&e : arr) {
        detect::AllowEntry a;
        read_allow(*e.as_table(), r, a);
        d.allow.push_back(std::move(a));
    }
    for (size_t i = 0; i < d.allow.size(); i++)
        for (auto &name : d.allow[i].rules)
            if (std::none_of(d.rules.begin(), d.rules.end(),
                             [&](const detect::Rule &x) { return x.name == name; }))
                r.error(*arr.get(i), "rules: no rule is named '" + name + "'");
}

void read_sni_overrides(const toml::table &t, Reader &r, detect::DetectConfig &d)
{
    for (auto &&[k, v] : t) {
        std::string name = lower(std::string(k.str()));
        auto *o = v.as_table();
        if (!o) {
            r.error(v, "sni_overrides: expected [sni_overrides.\"" + name + "\"] with scale = N");
            continue;
        }
        if (!valid_sni_pattern(name))
            r.error(v, "sni_overrides: '" + name + "' is not a host name or \"*.domain\"");
        r.only(*o, "[sni_overrides]", {"scale"});
        double s = 1.0;
        if (auto *n = o->get("scale"); n && r.number(*n, "scale", s)) {
            if (s <= 0)
                r.error(*n, "scale: must be greater than 0");
            else
                d.sni_scale[name] = s;
        } else if (!o->get("scale")) {
            r.error(v, "sni_overrides: '" + name + "' needs scale = N");
        }
    }
}

void read_detection(const toml::table &root, Reader &r, Config &c, const std::string &file)
{
    if (auto *t = r.table(root, "detect"))
        read_detect(*t, r, c.detect);
    if (auto *arr = array_of_tables(root, r, "rules"))
        read_rules(*arr, r, c);
    if (auto *arr = array_of_tables(root, r, "allow"))
        read_allows(*arr, r, c.detect);
    if (auto *t = r.table(root, "sni_overrides"))
        read_sni_overrides(*t, r, c.detect);
    if (auto *arr = array_of_tables(root, r, "outputs")) {
        c.outputs_configured = true;
        for (auto &&e : *arr) {
            output::OutputConfig o;
            read_output(*e.as_table(), r, o, file);
            c.outputs.push_back(std::move(o));
        }
    }
}

}  // namespace

ConfigResult parse_config(std::string_view text, const std::string &source_name)
{
    ConfigResult res;
    res.file = source_name;
    try {
        toml::table root = toml::parse(text, source_name);
        Reader r(source_name, res);
        read_root(root, r, res.config);
        read_detection(root, r, res.config, source_name);
        std::stable_sort(res.issues.begin(), res.issues.end(),
                         [](const ConfigIssue &a, const ConfigIssue &b) {
                             return a.line != b.line ? a.line < b.line : a.column < b.column;
                         });
    } catch (const toml::parse_error &e) {
        auto &src = e.source();
        res.issues.push_back(
            {source_name, src.begin.line, src.begin.column, std::string(e.description())});
    }
    return res;
}

std::vector<std::string> config_keys()
{
    // Every table once: each reader names the keys it allows.
    static const char *const kSkeleton = R"([capture]
[bpf]
[aggregate]
[daemon]
[log]
[control]
[metrics]
[fleet]
[detect]
[[rules]]
metric = "bytes_out"
baseline = {}
[[allow]]
[sni_overrides."x"]
[[outputs]]
)";
    std::set<std::string> keys;
    std::vector<ConfigIssue> issues;
    Reader r("skeleton", issues);
    r.record_keys(&keys);
    Config c;
    toml::table root = toml::parse(std::string_view(kSkeleton), std::string_view("skeleton"));
    read_root(root, r, c);
    read_detection(root, r, c, "skeleton");
    return {keys.begin(), keys.end()};
}

ConfigResult load_config(const std::string &path)
{
    // Anyone who can write the file could disable detection or redirect
    // alerts: a file (or its directory) writable by others is refused.
    auto refuse = [&](std::string why) {
        ConfigResult res;
        res.file = path;
        res.issues.push_back({path, 0, 0, std::move(why)});
        return res;
    };
    if (auto why = readable_file_problem(path); !why.empty())
        return refuse("cannot read the configuration file: " + why);
    if (auto why = writable_by_others(path); !why.empty())
        return refuse(why);
    try {
        return parse_config(read_whole_file(path), path);
    } catch (const Error &e) {
        return refuse("cannot read the configuration file: " + std::string(std::strerror(e.err())));
    }
}

}  // namespace exf
