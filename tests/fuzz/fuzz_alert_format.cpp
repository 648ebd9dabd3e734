// SPDX-License-Identifier: Apache-2.0
// Every alert format (output/output.h) on AlertRecords whose strings come from
// the input: the wire strings (SNI, entity, client, top SNI and JA4 names) and
// the rule name and cohort label, plus arbitrary numbers, times and states.
// Checked for each rendering:
//  * syslog lines (rfc5424, rfc5424-json, cef, rfc3164): no NUL, CR or LF,
//    nothing but printable ASCII where the format promises it, valid UTF-8;
//  * rfc5424: the structured data parses (quoted PARAM-VALUEs with '"', '\'
//    and ']' escaped) and ends before the MSG; value= reads back as the value;
//  * cef: exactly 7 unescaped '|' before the extension, whose keys (each
//    unescaped '=') are all ones the formatter writes, none twice;
//  * rfc3164: at most 1024 bytes;
//  * json (alone and as the rfc5424-json MSG): parses with nlohmann, one
//    ASCII line, the SNI a string of at most 255 bytes.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "fuzz_util.h"
#include "output/output.h"

using namespace exf;
using namespace exf::detect;

namespace {

bool valid_utf8(std::string_view s)
{
    size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        size_t len = c < 0x80                   ? 1
                     : (c >= 0xc2 && c <= 0xdf) ? 2
                     : (c >= 0xe0 && c <= 0xef) ? 3
                     : (c >= 0xf0 && c <= 0xf4) ? 4
                                                : 0;
        if (len == 0 || i + len > s.size())
            return false;
        uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
        for (size_t k = 1; k < len; k++) {
            auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (cc & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        i += len;
    }
    return true;
}

bool printable_ascii(std::string_view s)
{
    for (char c : s)
        if (c < 0x20 || c > 0x7e)
            return false;
    return true;
}

void check_syslog_line(const std::string &s)
{
    FUZZ_CHECK(!s.empty() && s[0] == '<');
    FUZZ_CHECK(s.find('\0') == std::string::npos);
    FUZZ_CHECK(s.find('\n') == std::string::npos);
    FUZZ_CHECK(s.find('\r') == std::string::npos);
    FUZZ_CHECK(valid_utf8(s));
}

// Skips n space-separated header fields; returns the position after them.
size_t skip_fields(const std::string &s, size_t n)
{
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        at = s.find(' ', at);
        FUZZ_CHECK(at != std::string::npos);
        at++;
    }
    return at;
}

void check_json(const std::string &s, const AlertRecord &a)
{
    FUZZ_CHECK(printable_ascii(s));
    auto j = nlohmann::json::parse(s, nullptr, false);
    FUZZ_CHECK(!j.is_discarded());
    FUZZ_CHECK(j.is_object());
    if (a.sni) {
        auto &v = j["tls"]["client"]["server_name"];
        FUZZ_CHECK(v.is_string());
        FUZZ_CHECK(v.get<std::string>().size() <= 255);
    }
    FUZZ_CHECK(j["message"].is_string());
}

void check_rfc5424(const std::string &s, const AlertRecord &a)
{
    check_syslog_line(s);
    for (char c : s)
        FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f);
    size_t at = skip_fields(s, 6);
    FUZZ_CHECK(s.compare(at, 15, "[exfilmon@32473") == 0);
    at += 15;
    bool quoted = false, closed = false;
    std::string value_of_value;
    std::string name;
    std::string cur;
    for (; at < s.size(); at++) {
        char c = s[at];
        if (quoted) {
            if (c == '\\') {
                FUZZ_CHECK(at + 1 < s.size());
                char n = s[at + 1];
                // RFC 5424 6.3.3: only these three are escaped.
                FUZZ_CHECK(n == '"' || n == '\\' || n == ']');
                cur += n;
                at++;
            } else if (c == '"') {
                quoted = false;
                if (name == "value")
                    value_of_value = cur;
            } else {
                FUZZ_CHECK(c != ']');
                cur += c;
            }
        } else if (c == ']') {
            closed = true;
            at++;
            break;
        } else if (c == '"') {
            FUZZ_CHECK(at > 0 && s[at - 1] == '=');
            size_t b = s.rfind(' ', at);
            name = s.substr(b + 1, at - 1 - (b + 1));
            FUZZ_CHECK(!name.empty() && name.size() <= 32);
            cur.clear();
            quoted = true;
        } else {
            FUZZ_CHECK(c != '\\');
        }
    }
    FUZZ_CHECK(closed);
    FUZZ_CHECK(at < s.size() && s[at] == ' ');
    FUZZ_CHECK(printable_ascii(std::string_view(s).substr(at)));
    // value= reads back as the value (3 decimals at most).
    if (std::isfinite(a.value)) {
        FUZZ_CHECK(!value_of_value.empty());
        double back = std::strtod(value_of_value.c_str(), nullptr);
        double tol = std::max(0.0006, std::fabs(a.value) * 1e-9);
        FUZZ_CHECK(std::fabs(back - a.value) <= tol);
    }
}

void check_cef(const std::string &s)
{
    static const std::set<std::string> keys = {"rt",
                                               "dvchost",
                                               "act",
                                               "externalId",
                                               "cat",
                                               "src",
                                               "dhost",
                                               "in",
                                               "out",
                                               "cnt",
                                               "start",
                                               "cs1Label",
                                               "cs1",
                                               "cs2Label",
                                               "cs2",
                                               "cs3Label",
                                               "cs3",
                                               "cs4Label",
                                               "cs4",
                                               "cs5Label",
                                               "cs5",
                                               "cs6Label",
                                               "cs6",
                                               "cfp1Label",
                                               "cfp1",
                                               "cfp2Label",
                                               "cfp2",
                                               "cfp3Label",
                                               "cfp3",
                                               "cfp4Label",
                                               "cfp4",
                                               "exfilmonRequests",
                                               "cn1Label",
                                               "cn1",
                                               "cn2Label",
                                               "cn2",
                                               "cn3Label",
                                               "cn3",
                                               "flexNumber1Label",
                                               "flexNumber1",
                                               "deviceCustomDate1Label",
                                               "deviceCustomDate1",
                                               "flexString1Label",
                                               "flexString1",
                                               "msg"};
    check_syslog_line(s);
    size_t at = s.find(" CEF:0|");
    FUZZ_CHECK(at != std::string::npos);
    at++;
    size_t pipes = 0;
    std::vector<std::string> fields(1);
    for (; at < s.size() && pipes < 7; at++) {
        char c = s[at];
        if (c == '\\') {
            FUZZ_CHECK(at + 1 < s.size() && (s[at + 1] == '\\' || s[at + 1] == '|'));
            fields.back() += s[++at];
        } else if (c == '|') {
            pipes++;
            fields.emplace_back();
        } else {
            fields.back() += c;
        }
    }
    FUZZ_CHECK(pipes == 7);
    FUZZ_CHECK(fields[0] == "CEF:0" && fields[1] == "exfilmon" && fields[2] == "exfilmon");
    FUZZ_CHECK(fields[6] == "3" || fields[6] == "6" || fields[6] == "9");
    std::string_view ext = std::string_view(s).substr(at);
    FUZZ_CHECK(ext.substr(0, 3) == "rt=");
    std::set<std::string> seen;
    for (size_t i = 0; i < ext.size(); i++) {
        if (ext[i] == '\\') {
            FUZZ_CHECK(i + 1 < ext.size());
            char n = ext[i + 1];
            FUZZ_CHECK(n == '\\' || n == '=' || n == 'n' || n == 'r');
            i++;
            continue;
        }
        if (ext[i] != '=')
            continue;
        size_t b = i;
        while (b > 0 && std::isalnum(static_cast<unsigned char>(ext[b - 1])))
            b--;
        FUZZ_CHECK(b == 0 || ext[b - 1] == ' ');
        std::string k(ext.substr(b, i - b));
        FUZZ_CHECK(keys.count(k) == 1);
        FUZZ_CHECK(seen.insert(k).second);
    }
}

std::string wire(FuzzedDataProvider &p) { return p.ConsumeRandomLengthString(400); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FuzzedDataProvider p(data, size);
    AlertRecord a;
    a.time_ms = p.ConsumeIntegral<uint64_t>();
    a.host = "edge-1";
    a.id = "9f3c2a1b7d4e5f60";
    a.state = static_cast<AlertState>(p.ConsumeIntegralInRange<int>(0, 3));
    a.severity = static_cast<Severity>(p.ConsumeIntegralInRange<int>(0, 2));
    a.shadow = p.ConsumeBool();
    static const char *const kinds[] = {"client", "subnet", "sni", "client_sni", "cohort", "host"};
    static const char *const metrics[] = {"bytes_out",        "bytes_in",         "tls_flows",
                                          "concurrent_flows", "distinct_clients", "out_in_ratio"};
    a.entity_kind = kinds[p.ConsumeIntegralInRange<int>(0, 5)];
    a.metric = metrics[p.ConsumeIntegralInRange<int>(0, 5)];
    a.rule = wire(p);
    a.entity = wire(p);
    if (p.ConsumeBool())
        a.client = wire(p);
    if (p.ConsumeBool())
        a.subnet = wire(p);
    if (p.ConsumeBool())
        a.sni = wire(p);
    if (p.ConsumeBool())
        a.cohort = wire(p);
    a.window_ms = p.ConsumeIntegral<uint64_t>();
    a.value = p.ConsumeFloatingPoint<double>();
    a.threshold = p.ConsumeFloatingPoint<double>();
    if (p.ConsumeBool())
        a.baseline = p.ConsumeFloatingPoint<double>();
    a.bytes_out = p.ConsumeIntegral<uint64_t>();
    a.bytes_in = p.ConsumeIntegral<uint64_t>();
    a.tls_flows = p.ConsumeIntegral<uint64_t>();
    a.requests = p.ConsumeIntegral<uint64_t>();
    a.peak_concurrent = p.ConsumeIntegral<uint32_t>();
    if (p.ConsumeBool())
        a.distinct_clients = p.ConsumeIntegral<uint32_t>();
    for (int i = p.ConsumeIntegralInRange<int>(0, 4); i > 0; i--)
        a.top_snis.push_back({wire(p), p.ConsumeIntegral<uint64_t>()});
    for (int i = p.ConsumeIntegralInRange<int>(0, 4); i > 0; i--)
        a.top_ja4.push_back({wire(p), p.ConsumeIntegral<uint64_t>()});
    a.first_seen_ms = p.ConsumeIntegral<uint64_t>();
    a.opened_ms = p.ConsumeIntegral<uint64_t>();
    a.count = p.ConsumeIntegral<uint32_t>();
    a.suppressed = p.ConsumeIntegral<uint64_t>();
    int facility = p.ConsumeIntegralInRange<int>(-2, 25);
    std::string app = p.ConsumeRandomLengthString(64);
    int procid = p.ConsumeIntegral<int>();

    check_rfc5424(output::format_rfc5424(a, facility, app, procid), a);

    std::string json = output::format_json(a);
    check_json(json, a);

    std::string rj = output::format_rfc5424_json(a, facility, app, procid);
    check_syslog_line(rj);
    size_t at = skip_fields(rj, 6);
    FUZZ_CHECK(rj.compare(at, 2, "- ") == 0);
    // The MSG is normally format_json()'s document, already checked: the same
    // bytes parse the same, so only a different one is parsed again.
    if (rj.compare(at + 2, std::string::npos, json) != 0)
        check_json(rj.substr(at + 2), a);

    check_cef(output::format_cef(a, facility, app, procid));

    std::string bsd = output::format_rfc3164(a, facility, app, procid);
    check_syslog_line(bsd);
    FUZZ_CHECK(bsd.size() <= 1024);
    FUZZ_CHECK(printable_ascii(bsd));
    return 0;
}
