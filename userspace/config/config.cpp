#include "config/config.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#define TOML_EXCEPTIONS 1
#include <toml++/toml.h>

#include "aggregate/cohorts.h"
#include "capture/shared_layout.h"
#include "config/units.h"

namespace exf {

std::string ConfigIssue::format() const
{
    return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

namespace {

class Reader {
public:
    Reader(const std::string &file, std::vector<ConfigIssue> &issues) : file_(file), issues_(issues) {}

    void error(const toml::node &n, const std::string &msg)
    {
        auto &src = n.source();
        issues_.push_back({file_, src.begin.line, src.begin.column, msg});
    }

    // Flags keys of table t not in the allowed list.
    void only(const toml::table &t, std::string_view where,
              std::initializer_list<std::string_view> allowed)
    {
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
        auto v = n.value<int64_t>();
        if (!n.is_integer() || !v) {
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

private:
    std::string file_;
    std::vector<ConfigIssue> &issues_;
};

void read_root(const toml::table &root, Reader &r, Config &c)
{
    r.only(root, "the top level", {"capture", "bpf", "aggregate", "daemon", "log"});

    if (auto *t = r.table(root, "capture")) {
        r.only(*t, "[capture]", {"interfaces", "backend"});
        r.with(*t, "backend", [&](const toml::node &n) {
            auto v = n.value<std::string>();
            if (!n.is_string() || (*v != "ebpf" && *v != "pcap"))
                r.error(n, "backend: expected \"ebpf\" or \"pcap\"");
            else
                c.backend = *v;
        });
        r.with(*t, "interfaces", [&](const toml::node &n) {
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
    if (auto *t = r.table(root, "bpf")) {
        r.only(*t, "[bpf]", {"flow_table_size", "client_table_size", "ringbuf_size", "tls_ports",
                             "pin", "pin_path"});
        r.with(*t, "pin", [&](const toml::node &n) {
            if (!n.is_boolean())
                r.error(n, "pin: expected true or false");
            else
                c.bpf.pin = *n.value<bool>();
        });
        r.with(*t, "pin_path", [&](const toml::node &n) {
            auto s = n.value<std::string>();
            if (!n.is_string() || s->empty() || (*s)[0] != '/')
                r.error(n, "pin_path: expected an absolute path on a bpffs mount");
            else
                c.bpf.pin_path = *s;
        });
        uint64_t v;
        r.with(*t, "flow_table_size", [&](const toml::node &n) {
            if (r.uint_in(n, "flow_table_size", 1024, 1u << 26, v))
                c.bpf.flow_table_size = uint32_t(v);
        });
        r.with(*t, "client_table_size", [&](const toml::node &n) {
            if (r.uint_in(n, "client_table_size", 256, 1u << 26, v))
                c.bpf.client_table_size = uint32_t(v);
        });
        r.with(*t, "ringbuf_size", [&](const toml::node &n) {
            if (!r.size(n, "ringbuf_size", v))
                return;
            if (v < 65536 || v > (1ull << 30) || (v & (v - 1)))
                r.error(n, "ringbuf_size: must be a power of two between 64KiB and 1GiB");
            else
                c.bpf.ringbuf_bytes = uint32_t(v);
        });
        r.with(*t, "tls_ports", [&](const toml::node &n) {
            auto *arr = n.as_array();
            if (!arr || arr->empty() || arr->size() > EXF_MAX_TLS_PORTS) {
                r.error(n, "tls_ports: expected an array of 1 to " +
                               std::to_string(EXF_MAX_TLS_PORTS) + " ports");
                return;
            }
            c.bpf.tls_ports.clear();
            for (auto &&e : *arr)
                if (r.uint_in(e, "tls_ports", 1, 65535, v))
                    c.bpf.tls_ports.push_back(uint16_t(v));
        });
    }
    if (auto *t = r.table(root, "aggregate")) {
        r.only(*t, "[aggregate]",
               {"windows", "client_prefix_v4", "client_prefix_v6", "subnet_prefix_v4",
                "subnet_prefix_v6", "cohorts_file", "max_clients", "max_subnets", "max_api_hosts",
                "max_client_api_hosts", "max_cohorts"});
        auto &a = c.aggregate;
        size_t issues_before = r.count();
        uint64_t v;
        r.with(*t, "windows", [&](const toml::node &n) {
            auto *arr = n.as_array();
            if (!arr || arr->empty() || arr->size() > 16) {
                r.error(n, "windows: expected an array of 1 to 16 durations like \"10m\"");
                return;
            }
            a.windows_ms.clear();
            for (auto &&e : *arr) {
                uint64_t ms;
                if (r.duration(e, "windows", ms)) {
                    if (ms < 1000 || ms > 30ull * 86400000)
                        r.error(e, "windows: each window must be between 1s and 30d");
                    else if (std::find(a.windows_ms.begin(), a.windows_ms.end(), ms) !=
                             a.windows_ms.end())
                        r.error(e, "windows: duplicate window");
                    else
                        a.windows_ms.push_back(ms);
                }
            }
        });
        auto prefix = [&](const char *key, uint64_t lo, uint64_t hi, uint8_t &out) {
            r.with(*t, key, [&](const toml::node &n) {
                if (r.uint_in(n, key, lo, hi, v))
                    out = uint8_t(v);
            });
        };
        prefix("client_prefix_v4", 8, 32, a.client_prefix_v4);
        prefix("client_prefix_v6", 16, 128, a.client_prefix_v6);
        prefix("subnet_prefix_v4", 8, 32, a.subnet_prefix_v4);
        prefix("subnet_prefix_v6", 16, 128, a.subnet_prefix_v6);
        auto limit = [&](const char *key, uint64_t hi, size_t &out) {
            r.with(*t, key, [&](const toml::node &n) {
                if (r.uint_in(n, key, 1, hi, v))
                    out = size_t(v);
            });
        };
        limit("max_clients", 1ull << 26, a.max_clients);
        limit("max_subnets", 1ull << 24, a.max_subnets);
        limit("max_api_hosts", 1ull << 20, a.max_api_hosts);
        limit("max_client_api_hosts", 1ull << 26, a.max_client_api_hosts);
        limit("max_cohorts", 1ull << 20, a.max_cohorts);
        r.with(*t, "cohorts_file", [&](const toml::node &n) {
            auto path = n.value<std::string>();
            if (!n.is_string()) {
                r.error(n, "cohorts_file: expected a path to a file of \"CIDR label\" lines");
                return;
            }
            c.cohorts_file = *path;
            if (path->empty())
                return;
            auto parsed = agg::load_cohorts(*path);
            for (auto &e : parsed.errors)
                r.error(n, "cohorts_file: " + e);
            if (parsed.ok())
                a.cohorts = std::move(parsed.rules);
        });
        // Cross-key checks only when every key read well (an empty window
        // list after a bad entry would only repeat that error).
        if (r.count() == issues_before)
            for (auto &problem : a.validate())
                r.error(*t, "[aggregate]: " + problem);
    }
    if (auto *t = r.table(root, "daemon")) {
        r.only(*t, "[daemon]", {"report_interval", "harvest_interval", "event_queue_size"});
        r.with(*t, "harvest_interval", [&](const toml::node &n) {
            uint64_t ms;
            if (r.duration(n, "harvest_interval", ms)) {
                if (ms < 100 || ms > 60000)
                    r.error(n, "harvest_interval: must be between 100ms and 60s");
                else
                    c.harvest_interval_ms = ms;
            }
        });
        r.with(*t, "event_queue_size", [&](const toml::node &n) {
            uint64_t v;
            if (r.uint_in(n, "event_queue_size", 64, 1u << 20, v))
                c.event_queue_size = uint32_t(v);
        });
        r.with(*t, "report_interval", [&](const toml::node &n) {
            uint64_t ms;
            if (r.duration(n, "report_interval", ms)) {
                if (ms < 100)
                    r.error(n, "report_interval: must be at least 100ms");
                else
                    c.report_interval_ms = ms;
            }
        });
    }
    if (auto *t = r.table(root, "log")) {
        r.only(*t, "[log]", {"level"});
        r.with(*t, "level", [&](const toml::node &n) {
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
}

}  // namespace

ConfigResult parse_config(std::string_view text, const std::string &source_name)
{
    ConfigResult res;
    try {
        toml::table root = toml::parse(text, source_name);
        Reader r(source_name, res.issues);
        read_root(root, r, res.config);
        std::stable_sort(res.issues.begin(), res.issues.end(),
                         [](const ConfigIssue &a, const ConfigIssue &b) {
                             return a.line != b.line ? a.line < b.line : a.column < b.column;
                         });
    } catch (const toml::parse_error &e) {
        auto &src = e.source();
        res.issues.push_back({source_name, src.begin.line, src.begin.column,
                              std::string(e.description())});
    }
    return res;
}

ConfigResult load_config(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        ConfigResult res;
        res.issues.push_back({path, 0, 0, "cannot open the configuration file"});
        return res;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    return parse_config(ss.str(), path);
}

}  // namespace exf
