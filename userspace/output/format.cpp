// SPDX-License-Identifier: Apache-2.0
// Rendering of AlertRecords; output.h documents each format.
#include <arpa/inet.h>

#include <charconv>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <functional>
#include <nlohmann/json.hpp>
#include <string_view>

#include "output/output.h"

#include "common/text.h"

namespace exf::output {

using detect::AlertRecord;
using detect::AlertState;
using detect::Severity;

namespace {

// Wire strings (SNI, entity, names) are cut to this many bytes, on a UTF-8
// boundary, after sanitizing; the entity may hold an address and an SNI.
constexpr size_t kWireCap = 255;
constexpr size_t kEntityCap = 320;
constexpr size_t kRfc3164Max = 1024;
constexpr std::string_view kReplacement = "\xef\xbf\xbd";  // U+FFFD

enum class Ctl { replace, keep_newlines, keep };

// Valid UTF-8 out of any bytes: each byte of an invalid sequence (overlong,
// surrogate, past U+10FFFF, truncated) becomes U+FFFD, and so do control
// characters (C0, DEL, C1) unless kept. At most `cap` bytes, whole characters.
std::string clean_utf8(std::string_view in, size_t cap, Ctl ctl = Ctl::replace)
{
    std::string out;
    out.reserve(std::min(in.size(), cap));
    size_t i = 0;
    while (i < in.size()) {
        auto c = static_cast<unsigned char>(in[i]);
        size_t len = 0;
        uint32_t cp = 0;
        if (c < 0x80) {
            len = 1;
            cp = c;
        } else if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        }
        bool ok = len > 0 && i + len <= in.size();
        for (size_t k = 1; ok && k < len; k++) {
            auto cc = static_cast<unsigned char>(in[i + k]);
            ok = (cc & 0xc0) == 0x80;
            cp = (cp << 6) | (cc & 0x3f);
        }
        if (ok && ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                   (len == 4 && (cp < 0x10000 || cp > 0x10ffff))))
            ok = false;
        std::string_view piece = ok ? in.substr(i, len) : kReplacement;
        if (ok) {
            bool control = cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
            bool keep =
                ctl == Ctl::keep || (ctl == Ctl::keep_newlines && (cp == '\n' || cp == '\r'));
            if (control && !keep)
                piece = kReplacement;
        }
        if (out.size() + piece.size() > cap)
            break;
        out += piece;
        i += ok ? len : 1;
    }
    return out;
}

// RFC 5424 header field: PRINTUSASCII (33..126), others become '_'; "-" when empty.
std::string header_field(std::string_view in, size_t max)
{
    std::string out;
    for (size_t i = 0; i < in.size() && out.size() < max; i++) {
        auto c = static_cast<unsigned char>(in[i]);
        out += (c >= 33 && c <= 126) ? static_cast<char>(c) : '_';
    }
    return out.empty() ? "-" : out;
}

int syslog_severity(Severity s)
{
    switch (s) {
    case Severity::critical: return 2;
    case Severity::warning: return 4;
    case Severity::info: return 6;
    }
    return 4;
}

int cef_severity(Severity s)
{
    switch (s) {
    case Severity::critical: return 9;
    case Severity::warning: return 6;
    case Severity::info: return 3;
    }
    return 6;
}

const char *msgid(AlertState s)
{
    switch (s) {
    case AlertState::open: return "OPEN";
    case AlertState::update: return "UPDATE";
    case AlertState::resolved: return "RESOLVED";
    case AlertState::summary: return "SUMMARY";
    }
    return "OPEN";
}

std::string pri(int facility, Severity s)
{
    if (facility < 0 || facility > 23)
        facility = 1;  // user
    return "<" + std::to_string(facility * 8 + syslog_severity(s)) + ">";
}

std::tm utc(uint64_t ms)
{
    std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    return tm;
}

// "2026-11-23T12:00:00.123Z"
std::string rfc3339(uint64_t ms)
{
    std::tm tm = utc(ms);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<unsigned>(ms % 1000));
    return buf;
}

// "Nov 23 12:00:00", "Nov  3 12:00:00" (UTC)
std::string bsd_time(uint64_t ms)
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::tm tm = utc(ms);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s %2d %02d:%02d:%02d", months[tm.tm_mon % 12], tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
}

// "600000" -> "10m"; the largest unit that divides it exactly.
std::string duration(uint64_t ms)
{
    struct Unit {
        uint64_t ms;
        const char *name;
    };
    static const Unit units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
    for (const auto &u : units)
        if (ms != 0 && ms % u.ms == 0)
            return std::to_string(ms / u.ms) + u.name;
    return std::to_string(ms) + "ms";
}

// 2254857830 -> "2.1GiB", 2147483648 -> "2GiB", 512 -> "512B"
std::string bytes(double v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    int u = 0;
    while (std::fabs(v) >= 1024 && u < 6) {
        v /= 1024;
        u++;
    }
    std::string s = format_fixed(v, u == 0 ? 0 : 1);
    if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0)
        s.resize(s.size() - 2);
    return s + units[u];
}

std::string metric_value(const std::string &metric, double v)
{
    if (metric == "bytes_out" || metric == "bytes_in")
        return bytes(v);
    return format_number(v);
}

bool full_address(const std::string &s)
{
    // inet_pton reads a C string: "192.0.2.7\0anything" would pass.
    if (s.find('\0') != std::string::npos)
        return false;
    unsigned char buf[16];
    return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// The human sentence, with the outside strings passed through `text`:
// "client 203.0.113.7 bytes_out 2.1GiB over 10m >= 2GiB (rule client-bulk-pull)"
std::string sentence(const AlertRecord &a,
                     const std::function<std::string(std::string_view, size_t)> &text)
{
    std::string rule = text(a.rule, kWireCap);
    if (a.state == AlertState::summary)
        return "rule " + rule + ": " + std::to_string(a.suppressed) +
               " more alerts suppressed (alert storm)" + (a.shadow ? " (shadow)" : "");
    std::string s = text(a.entity_kind, kWireCap) + " " + text(a.entity, kEntityCap) + " " +
                    text(a.metric, kWireCap) + " " + metric_value(a.metric, a.value) + " over " +
                    duration(a.window_ms) + (a.value >= a.threshold ? " >= " : " < ") +
                    metric_value(a.metric, a.threshold) + " (rule " + rule;
    if (a.baseline)
        s += ", baseline " + metric_value(a.metric, *a.baseline);
    if (a.shadow)
        s += ", shadow";
    if (a.fleet())
        s += ", fleet of " + std::to_string(a.distinct_sensors.value_or(a.sensors.size())) +
             " sensors";
    if (a.state == AlertState::resolved)
        s += ", resolved";
    return s + ")";
}

// The fields every syslog-style format carries, in order: name, value
// (already a string), and whether the value is an outside string to sanitize.
struct Field {
    std::string name;
    std::string value;
    bool text = false;  // outside string: sanitize, escape, cap
    size_t cap = kWireCap;
    std::string figures;  // sensor: " BYTES SHARE", after the name, not escaped
};

// " 52428800 0.5": a sensor's bytes out and its share, after its name.
std::string sensor_figures(const detect::SensorShare &s)
{
    return " " + std::to_string(s.bytes_out) + " " + format_number(s.share);
}

// Fleet alerts only: scope, distinct_sensors and one "sensor" per edge host
// ("NAME BYTES SHARE": the share follows the last space, the bytes the one before).
void add_fleet_fields(std::vector<Field> &f, const AlertRecord &a)
{
    if (!a.fleet())
        return;
    f.push_back({"scope", "fleet", false, 0, ""});
    if (a.distinct_sensors)
        f.push_back({"distinct_sensors", std::to_string(*a.distinct_sensors), false, 0, ""});
    for (const auto &s : a.sensors)
        f.push_back({"sensor", s.name, true, kWireCap, sensor_figures(s)});
}

std::vector<Field> fields(const AlertRecord &a)
{
    std::vector<Field> f;
    auto str = [&](const char *n, const std::string &v, size_t cap = kWireCap) {
        f.push_back({n, v, true, cap, ""});
    };
    auto num = [&](const char *n, const std::string &v) { f.push_back({n, v, false, 0, ""}); };
    str("id", a.id);
    num("state", detect::state_name(a.state));
    str("rule", a.rule);
    num("severity", detect::severity_name(a.severity));
    str("entity_kind", a.entity_kind);
    str("entity", a.entity, kEntityCap);
    if (a.client)
        str("client", *a.client);
    if (a.subnet)
        str("subnet", *a.subnet);
    if (a.sni)
        str("sni", *a.sni);
    if (a.cohort)
        str("cohort", *a.cohort);
    if (a.ja4)
        str("ja4", *a.ja4);
    str("metric", a.metric);
    num("window", duration(a.window_ms));
    num("value", format_number(a.value));
    num("threshold", format_number(a.threshold));
    if (a.baseline)
        num("baseline", format_number(*a.baseline));
    num("bytes_out", std::to_string(a.bytes_out));
    num("bytes_in", std::to_string(a.bytes_in));
    num("tls_flows", std::to_string(a.tls_flows));
    num("peak_concurrent", std::to_string(a.peak_concurrent));
    num("requests", std::to_string(a.requests));
    if (auto bpr = a.bytes_per_request())
        num("bytes_per_request", std::to_string(*bpr));
    if (a.distinct_clients)
        num("distinct_clients", std::to_string(*a.distinct_clients));
    if (a.distinct_subnets)
        num("distinct_subnets", std::to_string(*a.distinct_subnets));
    // "NAME COUNT": the count follows the last space.
    for (const auto &t : a.top_snis)
        f.push_back({"top_sni", t.name, true, kWireCap, ""});
    for (const auto &t : a.top_ja4)
        f.push_back({"top_ja4", t.name, true, kWireCap, ""});
    for (const auto &t : a.top_clients)
        f.push_back({"top_client", t.name, true, kWireCap, ""});
    add_fleet_fields(f, a);
    num("first_seen", rfc3339(a.first_seen_ms));
    num("opened", rfc3339(a.opened_ms));
    num("count", std::to_string(a.count));
    if (a.state == AlertState::summary || a.suppressed)
        num("suppressed", std::to_string(a.suppressed));
    if (a.shadow)
        num("shadow", "true");
    return f;
}

// The count that follows a top_sni / top_ja4 / top_client name, by position.
std::vector<uint64_t> top_counts(const AlertRecord &a)
{
    std::vector<uint64_t> v;
    for (const auto *list : {&a.top_snis, &a.top_ja4, &a.top_clients})
        for (const auto &t : *list)
            v.push_back(t.value);
    return v;
}

// A field fields() gives as "NAME COUNT" (top_counts()).
bool is_top_field(const std::string &name)
{
    return name == "top_sni" || name == "top_ja4" || name == "top_client";
}

std::string sd_escape(std::string_view s)
{
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\' || c == ']')
            out += '\\';
        out += c;
    }
    return out;
}

std::string rfc5424_header(const AlertRecord &a, int facility, const std::string &app_name,
                           int procid)
{
    return pri(facility, a.severity) + "1 " + rfc3339(a.time_ms) + " " + header_field(a.host, 255) +
           " " + header_field(app_name, 48) + " " + (procid > 0 ? std::to_string(procid) : "-") +
           " " + msgid(a.state) + " ";
}

std::string cef_header_escape(std::string_view s)
{
    std::string out;
    for (char c : clean_utf8(s, kWireCap)) {
        if (c == '\\' || c == '|')
            out += '\\';
        out += c;
    }
    return out;
}

std::string cef_ext_escape(std::string_view s, size_t cap = kWireCap)
{
    std::string out;
    for (char c : clean_utf8(s, cap, Ctl::keep_newlines)) {
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else {
            if (c == '\\' || c == '=')
                out += '\\';
            out += c;
        }
    }
    return out;
}

// RFC 3164 key=value: quoted (with \" and \\) when empty or when it holds a
// space, '=', '"', or a byte shown as \xNN.
std::string kv_value(std::string_view raw, size_t cap)
{
    std::string e = ascii_escape(raw, cap);
    bool quote = e.empty() || e.size() != std::min(raw.size(), cap) ||
                 e.find_first_of(" =\"") != std::string::npos;
    if (!quote)
        return e;
    std::string out = "\"";
    for (char c : e) {
        if (c == '"')
            out += '\\';
        out += c;
    }
    return out + "\"";
}

nlohmann::ordered_json json_number(double v)
{
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9007199254740992.0)
        return static_cast<int64_t>(v);
    if (!std::isfinite(v))
        return nullptr;
    return std::round(v * 1000) / 1000;
}

std::string json_text(std::string_view s, size_t cap = kWireCap)
{
    return clean_utf8(s, cap, Ctl::keep);
}

}  // namespace

int facility_from_name(const std::string &name)
{
    static const char *const names[] = {
        "kern",   "user",   "mail",     "daemon", "auth",   "syslog",   "lpr",     "news",
        "uucp",   "cron",   "authpriv", "ftp",    "ntp",    "security", "console", "solaris-cron",
        "local0", "local1", "local2",   "local3", "local4", "local5",   "local6",  "local7"};
    for (int i = 0; i < 24; i++)
        if (name == names[i])
            return i;
    if (name == "audit")
        return 13;
    if (name == "clock")
        return 15;
    return -1;
}

std::string format_rfc5424(const AlertRecord &a, int facility, const std::string &app_name,
                           int procid)
{
    std::string s = rfc5424_header(a, facility, app_name, procid) + "[exfilmon@32473";
    auto counts = top_counts(a);
    size_t top = 0;
    for (const auto &f : fields(a)) {
        std::string v = f.text ? sd_escape(clean_utf8(f.value, f.cap)) : f.value;
        if (is_top_field(f.name))
            v += " " + std::to_string(counts[top++]);
        s += " " + f.name + "=\"" + v + f.figures + "\"";
    }
    return s + "] " + sentence(a, ascii_escape);
}

std::string format_rfc5424_json(const AlertRecord &a, int facility, const std::string &app_name,
                                int procid)
{
    return rfc5424_header(a, facility, app_name, procid) + "- " + format_json(a);
}

namespace {

// The CEF signature name: what happened to which metric.
std::string cef_name(const AlertRecord &a)
{
    if (a.state == AlertState::summary)
        return "alert storm summary";
    return a.entity_kind + " " + a.metric +
           (a.state == AlertState::resolved ? " back under threshold" : " over threshold");
}

std::string cef_header(const AlertRecord &a, int facility)
{
    return pri(facility, a.severity) + bsd_time(a.time_ms) + " " + header_field(a.host, 255) +
           " CEF:0|exfilmon|exfilmon|" EXFILMON_VERSION "|" + cef_header_escape(a.rule) + "|" +
           cef_header_escape(cef_name(a)) + "|" + std::to_string(cef_severity(a.severity)) + "|";
}

// "name count, name count": a top list as one extension value.
std::string named_counts(const std::vector<detect::NamedCount> &top)
{
    std::string s;
    for (const auto &t : top)
        s += (s.empty() ? "" : ", ") + clean_utf8(t.name, kWireCap) + " " + std::to_string(t.value);
    return s;
}

// The extension's key=value pairs, in the order they are added.
class CefExtension {
public:
    void add(const char *k, std::string v) { ext_.emplace_back(k, std::move(v)); }
    void text(const char *k, const std::string &v, size_t cap = kWireCap)
    {
        ext_.emplace_back(k, cef_ext_escape(v, cap));
    }
    // A custom field: its label, then its value.
    void labelled(const char *label_key, const char *label, const char *k, std::string v)
    {
        add(label_key, label);
        add(k, std::move(v));
    }
    std::string str() const
    {
        std::string s;
        for (size_t i = 0; i < ext_.size(); i++)
            s += (i ? " " : "") + ext_[i].first + "=" + ext_[i].second;
        return s;
    }

private:
    std::vector<std::pair<std::string, std::string>> ext_;
};

// The standard CEF keys: when, where, what, who and how much.
void add_cef_event(CefExtension &e, const AlertRecord &a)
{
    e.add("rt", std::to_string(a.time_ms));
    e.text("dvchost", a.host);
    e.add("act", detect::state_name(a.state));
    e.text("externalId", a.id);
    e.add("cat", a.shadow ? "exfiltration/shadow" : "exfiltration");
    if (a.client && full_address(*a.client))
        e.add("src", *a.client);
    if (a.sni)
        e.text("dhost", *a.sni);
    e.add("in", std::to_string(a.bytes_in));
    e.add("out", std::to_string(a.bytes_out));
    e.add("cnt", std::to_string(a.count));
    e.add("start", std::to_string(a.opened_ms));
}

// cs1..cs6: the rule, its entity and metric, the window, the top API hosts.
void add_cef_strings(CefExtension &e, const AlertRecord &a)
{
    e.add("cs1Label", "rule");
    e.text("cs1", a.rule);
    e.add("cs2Label", "entity");
    e.text("cs2", a.entity, kEntityCap);
    e.add("cs3Label", "entityKind");
    e.text("cs3", a.entity_kind);
    e.add("cs4Label", "metric");
    e.text("cs4", a.metric);
    e.labelled("cs5Label", "window", "cs5", duration(a.window_ms));
    if (std::string tops = named_counts(a.top_snis); !tops.empty()) {
        e.add("cs6Label", "topSni");
        e.text("cs6", tops, 4 * (kWireCap + 24));
    }
}

// cfp*, cn*, flexNumber1, deviceCustomDate1, exfilmonRequests: the
// figures the rule compared.
void add_cef_figures(CefExtension &e, const AlertRecord &a)
{
    e.labelled("cfp1Label", "value", "cfp1", format_number(a.value));
    e.labelled("cfp2Label", "threshold", "cfp2", format_number(a.threshold));
    if (a.baseline)
        e.labelled("cfp3Label", "baseline", "cfp3", format_number(*a.baseline));
    e.labelled("cn1Label", "tlsFlows", "cn1", std::to_string(a.tls_flows));
    e.labelled("cn2Label", "peakConcurrent", "cn2", std::to_string(a.peak_concurrent));
    if (auto bpr = a.bytes_per_request())
        e.labelled("cfp4Label", "bytesPerRequest", "cfp4", std::to_string(*bpr));
    // No standard custom number is left for the count: exfilmon's own key.
    e.add("exfilmonRequests", std::to_string(a.requests));
    if (a.distinct_clients)
        e.labelled("cn3Label", "distinctClients", "cn3", std::to_string(*a.distinct_clients));
    if (a.state == AlertState::summary || a.suppressed)
        e.labelled("flexNumber1Label", "suppressed", "flexNumber1", std::to_string(a.suppressed));
    if (a.distinct_subnets)
        e.labelled("flexNumber2Label", "distinctSubnets", "flexNumber2",
                   std::to_string(*a.distinct_subnets));
    e.labelled("deviceCustomDate1Label", "firstSeen", "deviceCustomDate1",
               std::to_string(a.first_seen_ms));
}

// Fleet alerts, in exfilmon's own extension keys (the flex fields carry a
// fingerprint cohort's figures): exfilmonScope=fleet, the number of
// sensors, and the sensors with their bytes out and share.
void add_cef_fleet(CefExtension &e, const AlertRecord &a)
{
    if (!a.fleet())
        return;
    e.add("exfilmonScope", "fleet");
    if (a.distinct_sensors)
        e.add("exfilmonDistinctSensors", std::to_string(*a.distinct_sensors));
    std::string list;
    for (const auto &s : a.sensors)
        list += (list.empty() ? "" : ", ") + s.name.substr(0, kWireCap) + sensor_figures(s);
    if (!list.empty())
        e.text("exfilmonSensors", list, 16 * (kWireCap + 40));
}

}  // namespace

std::string format_cef(const AlertRecord &a, int facility, const std::string &app_name, int procid)
{
    (void)app_name;
    (void)procid;
    CefExtension e;
    add_cef_event(e, a);
    add_cef_strings(e, a);
    add_cef_figures(e, a);
    if (std::string ja4 = named_counts(a.top_ja4); !ja4.empty()) {
        e.add("flexString1Label", "topJa4");
        e.text("flexString1", ja4, 4 * (kWireCap + 24));
    }
    if (std::string clients = named_counts(a.top_clients); !clients.empty()) {
        e.add("flexString2Label", "topClients");
        e.text("flexString2", clients, 4 * (kWireCap + 24));
    }
    add_cef_fleet(e, a);
    e.text("msg", sentence(a, [](std::string_view v, size_t cap) { return clean_utf8(v, cap); }),
           2048);
    return cef_header(a, facility) + e.str();
}

std::string format_rfc3164(const AlertRecord &a, int facility, const std::string &app_name,
                           int procid)
{
    std::string tag;
    for (char c : app_name) {
        if (tag.size() >= 32)
            break;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
        tag += ok ? c : '_';
    }
    if (tag.empty())
        tag = "exfilmon";
    std::string s = pri(facility, a.severity) + bsd_time(a.time_ms) + " " +
                    header_field(a.host, 255) + " " + tag;
    if (procid > 0)
        s += "[" + std::to_string(procid) + "]";
    s += ":";
    auto counts = top_counts(a);
    size_t top = 0;
    for (const auto &f : fields(a)) {
        std::string v = f.text ? kv_value(f.value, f.cap) : f.value;
        if (is_top_field(f.name)) {
            std::string raw = f.value.substr(0, f.cap) + " " + std::to_string(counts[top++]);
            v = kv_value(raw, raw.size());
        } else if (!f.figures.empty()) {
            std::string raw = f.value.substr(0, f.cap) + f.figures;
            v = kv_value(raw, raw.size());
        }
        s += " " + f.name + "=" + v;
    }
    if (s.size() > kRfc3164Max)
        s.resize(kRfc3164Max);
    return s;
}

namespace {

// Fleet alerts: scope, distinct_sensors, sensors [{name, bytes_out, share}].
void add_json_fleet(nlohmann::ordered_json &x, const AlertRecord &a)
{
    if (!a.fleet())
        return;
    x["scope"] = "fleet";
    if (a.distinct_sensors)
        x["distinct_sensors"] = *a.distinct_sensors;
    auto arr = nlohmann::ordered_json::array();
    for (const auto &s : a.sensors)
        arr.push_back({{"name", json_text(s.name)},
                       {"bytes_out", s.bytes_out},
                       {"share", json_number(s.share)}});
    x["sensors"] = std::move(arr);
}

}  // namespace

namespace {

using OJ = nlohmann::ordered_json;

// A top list as objects: {"<name_key>": NAME, "<value_key>": COUNT}.
OJ named_array(const std::vector<detect::NamedCount> &v, const char *name_key,
               const char *value_key)
{
    OJ arr = OJ::array();
    for (const auto &t : v)
        arr.push_back({{name_key, json_text(t.name)}, {value_key, t.value}});
    return arr;
}

// The Elastic Common Schema fields: event, log, rule, host, observer,
// source and tls.
void add_json_ecs(OJ &j, const AlertRecord &a)
{
    j["@timestamp"] = rfc3339(a.time_ms);
    j["event"] = {{"kind", "alert"},
                  {"category", OJ::array({"network"})},
                  {"type", OJ::array({"info"})},
                  {"action", detect::state_name(a.state)},
                  {"id", json_text(a.id)},
                  {"severity", cef_severity(a.severity)},
                  {"dataset", "exfilmon.alert"},
                  {"module", "exfilmon"},
                  {"start", rfc3339(a.opened_ms)}};
    j["log"] = {{"level", detect::severity_name(a.severity)}};
    j["rule"] = {{"name", json_text(a.rule)}};
    j["host"] = {{"name", json_text(a.host)}};
    j["observer"] = {
        {"vendor", "exfilmon"}, {"product", "exfilmon"}, {"version", EXFILMON_VERSION}};
    if (a.client && full_address(*a.client))
        j["source"] = {{"ip", *a.client}};
    if (a.sni)
        j["tls"] = {{"client", {{"server_name", json_text(*a.sni)}}}};
}

// exfilmon's own object: what the alert is about.
void add_json_subject(OJ &x, const AlertRecord &a)
{
    x["state"] = detect::state_name(a.state);
    x["severity"] = detect::severity_name(a.severity);
    x["entity_kind"] = json_text(a.entity_kind);
    x["entity"] = json_text(a.entity, kEntityCap);
    if (a.client)
        x["client"] = json_text(*a.client);
    if (a.subnet)
        x["subnet"] = json_text(*a.subnet);
    if (a.sni)
        x["sni"] = json_text(*a.sni);
    if (a.cohort)
        x["cohort"] = json_text(*a.cohort);
    if (a.ja4)
        x["ja4"] = json_text(*a.ja4);
}

// exfilmon's own object: the rule's comparison and the entity's figures.
void add_json_figures(OJ &x, const AlertRecord &a)
{
    x["metric"] = json_text(a.metric);
    x["window"] = duration(a.window_ms);
    x["window_ms"] = a.window_ms;
    x["value"] = json_number(a.value);
    x["threshold"] = json_number(a.threshold);
    if (a.baseline)
        x["baseline"] = json_number(*a.baseline);
    x["bytes_out"] = a.bytes_out;
    x["bytes_in"] = a.bytes_in;
    x["tls_flows"] = a.tls_flows;
    x["peak_concurrent"] = a.peak_concurrent;
    x["requests"] = a.requests;
    if (auto bpr = a.bytes_per_request())
        x["bytes_per_request"] = *bpr;
    if (a.distinct_clients)
        x["distinct_clients"] = *a.distinct_clients;
    if (a.distinct_subnets)
        x["distinct_subnets"] = *a.distinct_subnets;
    if (!a.top_snis.empty())
        x["top_sni"] = named_array(a.top_snis, "name", "bytes_out");
    if (!a.top_ja4.empty())
        x["top_ja4"] = named_array(a.top_ja4, "ja4", "flows");
    if (!a.top_clients.empty())
        x["top_clients"] = named_array(a.top_clients, "client", "tls_flows");
    x["first_seen"] = rfc3339(a.first_seen_ms);
    x["count"] = a.count;
    if (a.state == AlertState::summary || a.suppressed)
        x["suppressed"] = a.suppressed;
    x["shadow"] = a.shadow;
}

}  // namespace

std::string format_json(const AlertRecord &a)
{
    OJ j;
    add_json_ecs(j, a);
    OJ x;
    add_json_subject(x, a);
    add_json_figures(x, a);
    add_json_fleet(x, a);
    j["exfilmon"] = std::move(x);
    j["message"] = sentence(a, [](std::string_view v, size_t cap) { return clean_utf8(v, cap); });
    return j.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
}

}  // namespace exf::output
