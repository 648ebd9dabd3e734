// SPDX-License-Identifier: Apache-2.0
// Alert formats (output/output.h): each byte for byte for one fixed alert,
// and hostile wire strings (SNI) through every format.
#include <catch2/catch.hpp>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "output/output.h"

using namespace exf;
using namespace exf::output;

namespace {

detect::AlertRecord fixed_alert()
{
    detect::AlertRecord a;
    a.time_ms = 1795435200123;  // 2026-11-23T12:00:00.123Z
    a.host = "edge-1";
    a.id = "9f3c2a1b7d4e5f60";
    a.state = detect::AlertState::open;
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
    a.bytes_in = 18234567;
    a.tls_flows = 42;
    a.peak_concurrent = 7;
    a.requests = 512;  // 4404019 bytes out per request
    a.top_snis = {{"api.example.com", 2000000000}, {"cdn.example.com", 254857830}};
    a.top_ja4 = {{"t13d1516h2_8daaf6152771_02713d6af862", 40}};
    a.first_seen_ms = 1795434600000;  // 11:50:00.000
    a.opened_ms = 1795435200123;
    a.count = 1;
    return a;
}

// An API host alert whose SNI is `sni`, in every place a wire string goes.
detect::AlertRecord sni_alert(const std::string &sni)
{
    auto a = fixed_alert();
    a.entity_kind = "sni";
    a.entity = sni;
    a.client.reset();
    a.sni = sni;
    a.distinct_clients = 12;
    a.top_snis = {{sni, 5}};
    return a;
}

struct Rfc5424 {
    std::vector<std::string> header;  // PRI+VERSION, TIMESTAMP, HOSTNAME, APP-NAME, PROCID, MSGID
    std::string sd_id;
    std::vector<std::pair<std::string, std::string>> params;
    std::string msg;
    bool ok = false;
};

// A strict parser for what format_rfc5424 writes: one SD element, values
// with RFC 5424 escapes (\" \\ \]), then " MSG".
Rfc5424 parse_rfc5424(const std::string &s)
{
    Rfc5424 r;
    size_t pos = 0;
    for (int i = 0; i < 6; i++) {
        size_t sp = s.find(' ', pos);
        if (sp == std::string::npos)
            return r;
        r.header.push_back(s.substr(pos, sp - pos));
        pos = sp + 1;
    }
    if (pos >= s.size() || s[pos] != '[')
        return r;
    size_t id_end = s.find_first_of(" ]", pos);
    if (id_end == std::string::npos)
        return r;
    r.sd_id = s.substr(pos + 1, id_end - pos - 1);
    pos = id_end;
    while (pos < s.size() && s[pos] == ' ') {
        size_t eq = s.find('=', pos);
        if (eq == std::string::npos || eq + 1 >= s.size() || s[eq + 1] != '"')
            return r;
        std::string name = s.substr(pos + 1, eq - pos - 1);
        if (name.empty() || name.size() > 32 || name.find_first_of(" =]\"") != std::string::npos)
            return r;
        std::string value;
        size_t i = eq + 2;
        for (; i < s.size() && s[i] != '"'; i++) {
            if (s[i] == '\\' && i + 1 < s.size() &&
                (s[i + 1] == '"' || s[i + 1] == '\\' || s[i + 1] == ']'))
                i++;
            else if (s[i] == ']' || s[i] == '\\')
                return r;  // must have been escaped
            value += s[i];
        }
        if (i >= s.size())
            return r;
        r.params.emplace_back(name, value);
        pos = i + 1;
    }
    if (pos + 1 >= s.size() || s[pos] != ']' || s[pos + 1] != ' ')
        return r;
    r.msg = s.substr(pos + 2);
    r.ok = true;
    return r;
}

std::vector<std::string> param(const Rfc5424 &r, const std::string &name)
{
    std::vector<std::string> v;
    for (const auto &[k, val] : r.params)
        if (k == name)
            v.push_back(val);
    return v;
}

// Splits a CEF message at its unescaped '|' up to the extension.
std::vector<std::string> cef_fields(const std::string &s)
{
    std::vector<std::string> f(1);
    for (size_t i = 0; i < s.size(); i++) {
        if (f.size() == 8) {
            f.back() += s[i];
        } else if (s[i] == '\\' && i + 1 < s.size()) {
            f.back() += s[++i];
        } else if (s[i] == '|') {
            f.emplace_back();
        } else {
            f.back() += s[i];
        }
    }
    return f;
}

// The value of a CEF extension key, unescaped; "" when absent. A value ends
// before the next " key=" (an '=' in a value is escaped).
std::string cef_ext(const std::string &ext, const std::string &key)
{
    std::string k = key + "=";
    size_t pos = ext.compare(0, k.size(), k) == 0 ? 0 : ext.find(" " + k);
    if (pos == std::string::npos)
        return "";
    std::string v;
    for (size_t i = pos + (pos ? 1 : 0) + k.size(); i < ext.size(); i++) {
        if (ext[i] == '\\' && i + 1 < ext.size()) {
            char c = ext[++i];
            v += c == 'n' ? '\n' : c == 'r' ? '\r' : c;
        } else if (ext[i] == '=') {
            return v.substr(0, v.rfind(' '));
        } else {
            v += ext[i];
        }
    }
    return v;
}

bool has_raw_control(const std::string &s)
{
    for (char c : s)
        if (c == '\n' || c == '\r' || c == '\0')
            return true;
    return false;
}

const std::string kReplacement = "\xef\xbf\xbd";

}  // namespace

TEST_CASE("Output facility names", "[output]")
{
    CHECK(facility_from_name("kern") == 0);
    CHECK(facility_from_name("user") == 1);
    CHECK(facility_from_name("daemon") == 3);
    CHECK(facility_from_name("authpriv") == 10);
    CHECK(facility_from_name("security") == 13);
    CHECK(facility_from_name("local0") == 16);
    CHECK(facility_from_name("local7") == 23);
    CHECK(facility_from_name("local8") == -1);
    CHECK(facility_from_name("") == -1);
}

TEST_CASE("Output RFC 5424 byte for byte", "[output]")
{
    CHECK(
        format_rfc5424(fixed_alert(), 16, "exfilmon", 4242) ==
        "<130>1 2026-11-23T12:00:00.123Z edge-1 exfilmon 4242 OPEN [exfilmon@32473 "
        "id=\"9f3c2a1b7d4e5f60\" state=\"open\" rule=\"client-bulk-pull\" severity=\"critical\" "
        "entity_kind=\"client\" entity=\"203.0.113.7\" client=\"203.0.113.7\" "
        "metric=\"bytes_out\" window=\"10m\" value=\"2254857830\" threshold=\"2147483648\" "
        "bytes_out=\"2254857830\" bytes_in=\"18234567\" tls_flows=\"42\" peak_concurrent=\"7\" "
        "requests=\"512\" bytes_per_request=\"4404019\" "
        "top_sni=\"api.example.com 2000000000\" top_sni=\"cdn.example.com 254857830\" "
        "top_ja4=\"t13d1516h2_8daaf6152771_02713d6af862 40\" "
        "first_seen=\"2026-11-23T11:50:00.000Z\" opened=\"2026-11-23T12:00:00.123Z\" count=\"1\"] "
        "client 203.0.113.7 bytes_out 2.1GiB over 10m >= 2GiB (rule client-bulk-pull)");

    // A resolved baseline ratio alert in shadow mode; info on local7, no PID,
    // hostile header fields.
    auto a = fixed_alert();
    a.state = detect::AlertState::resolved;
    a.severity = detect::Severity::info;
    a.host = "edge 1\xff";
    a.metric = "out_in_ratio";
    a.value = 12.34567;
    a.threshold = 20;
    a.baseline = 3.5;
    a.top_snis.clear();
    a.top_ja4.clear();
    a.shadow = true;
    a.count = 9;
    a.requests = 0;  // no call: no bytes_per_request
    CHECK(format_rfc5424(a, 23, "exf mon", 0) ==
          "<190>1 2026-11-23T12:00:00.123Z edge_1_ exf_mon - RESOLVED [exfilmon@32473 "
          "id=\"9f3c2a1b7d4e5f60\" state=\"resolved\" rule=\"client-bulk-pull\" severity=\"info\" "
          "entity_kind=\"client\" entity=\"203.0.113.7\" client=\"203.0.113.7\" "
          "metric=\"out_in_ratio\" window=\"10m\" value=\"12.346\" threshold=\"20\" "
          "baseline=\"3.5\" bytes_out=\"2254857830\" bytes_in=\"18234567\" tls_flows=\"42\" "
          "peak_concurrent=\"7\" requests=\"0\" first_seen=\"2026-11-23T11:50:00.000Z\" "
          "opened=\"2026-11-23T12:00:00.123Z\" count=\"9\" shadow=\"true\"] "
          "client 203.0.113.7 out_in_ratio 12.346 over 10m < 20 (rule client-bulk-pull, "
          "baseline 3.5, shadow, resolved)");

    // A storm summary.
    auto s = fixed_alert();
    s.state = detect::AlertState::summary;
    s.severity = detect::Severity::warning;
    s.suppressed = 37;
    s.top_snis.clear();
    s.top_ja4.clear();
    auto parsed = parse_rfc5424(format_rfc5424(s, 16, "exfilmon", 1));
    REQUIRE(parsed.ok);
    CHECK(parsed.header[0] == "<132>1");
    CHECK(parsed.header[5] == "SUMMARY");
    CHECK(param(parsed, "suppressed") == std::vector<std::string>{"37"});
    CHECK(parsed.msg == "rule client-bulk-pull: 37 more alerts suppressed (alert storm)");
}

TEST_CASE("Output RFC 5424 with a JSON message byte for byte", "[output]")
{
    CHECK(format_rfc5424_json(fixed_alert(), 16, "exfilmon", 4242) ==
          "<130>1 2026-11-23T12:00:00.123Z edge-1 exfilmon 4242 OPEN - " +
              format_json(fixed_alert()));
}

TEST_CASE("Output JSON byte for byte", "[output]")
{
    CHECK(
        format_json(fixed_alert()) ==
        R"({"@timestamp":"2026-11-23T12:00:00.123Z",)"
        R"("event":{"kind":"alert","category":["network"],"type":["info"],"action":"open",)"
        R"("id":"9f3c2a1b7d4e5f60","severity":9,"dataset":"exfilmon.alert","module":"exfilmon",)"
        R"("start":"2026-11-23T12:00:00.123Z"},"log":{"level":"critical"},)"
        R"("rule":{"name":"client-bulk-pull"},"host":{"name":"edge-1"},)"
        R"("observer":{"vendor":"exfilmon","product":"exfilmon","version":")" EXFILMON_VERSION
        R"("},"source":{"ip":"203.0.113.7"},)"
        R"("exfilmon":{"state":"open","severity":"critical","entity_kind":"client",)"
        R"("entity":"203.0.113.7","client":"203.0.113.7","metric":"bytes_out","window":"10m",)"
        R"("window_ms":600000,"value":2254857830,"threshold":2147483648,"bytes_out":2254857830,)"
        R"("bytes_in":18234567,"tls_flows":42,"peak_concurrent":7,"requests":512,)"
        R"("bytes_per_request":4404019,)"
        R"("top_sni":[{"name":"api.example.com","bytes_out":2000000000},)"
        R"({"name":"cdn.example.com","bytes_out":254857830}],)"
        R"("top_ja4":[{"ja4":"t13d1516h2_8daaf6152771_02713d6af862","flows":40}],)"
        R"("first_seen":"2026-11-23T11:50:00.000Z","count":1,"shadow":false},)"
        R"j("message":"client 203.0.113.7 bytes_out 2.1GiB over 10m >= 2GiB (rule client-bulk-pull)"})j");

    // A masked client is no source.ip; a ratio keeps 3 decimals.
    auto a = fixed_alert();
    a.client = "203.0.113.0/24";
    a.value = 0.1 + 0.2;
    auto j = nlohmann::json::parse(format_json(a));
    CHECK_FALSE(j.contains("source"));
    CHECK(j["exfilmon"]["client"] == "203.0.113.0/24");
    CHECK(j["exfilmon"]["value"].get<double>() == 0.3);
    // No call in the window: requests 0 and no bytes_per_request.
    a.requests = 0;
    j = nlohmann::json::parse(format_json(a));
    CHECK(j["exfilmon"]["requests"] == 0);
    CHECK_FALSE(j["exfilmon"].contains("bytes_per_request"));
    CHECK(format_cef(a, 16, "exfilmon", 1).find("cfp4") == std::string::npos);
    CHECK(format_cef(a, 16, "exfilmon", 1).find(" exfilmonRequests=0 ") != std::string::npos);
}

TEST_CASE("Output CEF byte for byte", "[output]")
{
    CHECK(format_cef(fixed_alert(), 16, "exfilmon", 4242) ==
          "<130>Nov 23 12:00:00 edge-1 CEF:0|exfilmon|exfilmon|" EXFILMON_VERSION
          "|client-bulk-pull|client bytes_out over threshold|9|"
          "rt=1795435200123 dvchost=edge-1 act=open externalId=9f3c2a1b7d4e5f60 cat=exfiltration "
          "src=203.0.113.7 in=18234567 out=2254857830 cnt=1 start=1795435200123 "
          "cs1Label=rule cs1=client-bulk-pull cs2Label=entity cs2=203.0.113.7 "
          "cs3Label=entityKind cs3=client cs4Label=metric cs4=bytes_out cs5Label=window cs5=10m "
          "cs6Label=topSni cs6=api.example.com 2000000000, cdn.example.com 254857830 "
          "cfp1Label=value cfp1=2254857830 cfp2Label=threshold cfp2=2147483648 "
          "cn1Label=tlsFlows cn1=42 cn2Label=peakConcurrent cn2=7 "
          "cfp4Label=bytesPerRequest cfp4=4404019 exfilmonRequests=512 "
          "deviceCustomDate1Label=firstSeen deviceCustomDate1=1795434600000 "
          "flexString1Label=topJa4 flexString1=t13d1516h2_8daaf6152771_02713d6af862 40 "
          "msg=client 203.0.113.7 bytes_out 2.1GiB over 10m >\\= 2GiB (rule client-bulk-pull)");

    // A rule name with CEF header metacharacters; the day is space-padded.
    auto a = fixed_alert();
    a.time_ms -= 20 * 86400000ull;  // Nov 3
    a.rule = "a|b\\c";
    auto f = cef_fields(format_cef(a, 16, "exfilmon", 1));
    REQUIRE(f.size() == 8);
    CHECK(f[0] == "<130>Nov  3 12:00:00 edge-1 CEF:0");
    CHECK(f[4] == "a|b\\c");
    CHECK(format_cef(a, 16, "exfilmon", 1).find("|a\\|b\\\\c|") != std::string::npos);
}

TEST_CASE("Output RFC 3164 byte for byte", "[output]")
{
    CHECK(format_rfc3164(fixed_alert(), 16, "exfilmon", 4242) ==
          "<130>Nov 23 12:00:00 edge-1 exfilmon[4242]: id=9f3c2a1b7d4e5f60 state=open "
          "rule=client-bulk-pull severity=critical entity_kind=client entity=203.0.113.7 "
          "client=203.0.113.7 metric=bytes_out window=10m value=2254857830 threshold=2147483648 "
          "bytes_out=2254857830 bytes_in=18234567 tls_flows=42 peak_concurrent=7 requests=512 "
          "bytes_per_request=4404019 "
          "top_sni=\"api.example.com 2000000000\" top_sni=\"cdn.example.com 254857830\" "
          "top_ja4=\"t13d1516h2_8daaf6152771_02713d6af862 40\" "
          "first_seen=2026-11-23T11:50:00.000Z opened=2026-11-23T12:00:00.123Z count=1");
}

TEST_CASE("Output hostile SNI exact escaping", "[output]")
{
    // quote, ']', backslash, newline, NUL, '|', '=', an invalid byte, then a
    // valid two-byte character.
    const std::string sni("a\"b]c\\d\ne\0f|g=h\xff\xc3\xa9 x", 20);
    auto a = sni_alert(sni);

    auto r = parse_rfc5424(format_rfc5424(a, 16, "exfilmon", 1));
    REQUIRE(r.ok);
    const std::string clean =
        "a\"b]c\\d" + kReplacement + "e" + kReplacement + "f|g=h" + kReplacement + "\xc3\xa9 x";
    CHECK(param(r, "sni") == std::vector<std::string>{clean});
    CHECK(param(r, "entity") == std::vector<std::string>{clean});
    CHECK(param(r, "top_sni") == std::vector<std::string>{clean + " 5"});
    CHECK(format_rfc5424(a, 16, "exfilmon", 1)
              .find(" sni=\"a\\\"b\\]c\\\\d\xef\xbf\xbd"
                    "e\xef\xbf\xbd"
                    "f|g=h\xef\xbf\xbd\xc3\xa9 x\"") != std::string::npos);
    CHECK(r.msg == "sni a\"b]c\\x5cd\\x0ae\\x00f|g=h\\xff\\xc3\\xa9 x bytes_out 2.1GiB over 10m >= "
                   "2GiB (rule client-bulk-pull)");

    std::string cef = format_cef(a, 16, "exfilmon", 1);
    CHECK(cef.find(" dhost=a\"b]c\\\\d\\ne\xef\xbf\xbd"
                   "f|g\\=h\xef\xbf\xbd\xc3\xa9 x in=") != std::string::npos);

    CHECK(format_rfc3164(a, 16, "exfilmon", 1)
              .find(" sni=\"a\\\"b]c\\x5cd\\x0ae\\x00f|g=h\\xff\\xc3\\xa9 x\" ") !=
          std::string::npos);

    auto j = nlohmann::json::parse(format_json(a));
    std::string exact("a\"b]c\\d\ne\0f|g=h\xef\xbf\xbd\xc3\xa9 x", 22);
    CHECK(j["tls"]["client"]["server_name"] == exact);
    CHECK(j["exfilmon"]["top_sni"][0]["name"] == exact);
    CHECK(format_json(a).find(R"("server_name":"a\"b]c\\d\ne\u0000f|g=h\ufffd\u00e9 x")") !=
          std::string::npos);
}

TEST_CASE("Output hostile SNIs in every format", "[output]")
{
    const std::string n255 = std::string(251, 'a') + ".com";
    const std::string n300 = std::string(296, 'b') + ".com";
    const std::string cut_utf8 = std::string(254, 'c') + "\xc3\xa9";  // 256 bytes
    struct Case {
        Case(std::string r, std::string c, std::string e = "")
            : raw(std::move(r)), clean(std::move(c)), cef(std::move(e))
        {}
        std::string raw, clean;
        std::string cef;  // when CEF differs: it keeps newlines (as \n, \r)
    };
    std::vector<Case> cases = {
        // input, its sanitized and capped form
        {"q\"uote", "q\"uote"},
        {"brack]et]", "brack]et]"},
        {"back\\slash\\", "back\\slash\\"},
        {"new\nline\r", "new" + kReplacement + "line" + kReplacement, "new\nline\r"},
        {std::string("n\0ul", 4), "n" + kReplacement + "ul"},
        {"pi|pe|", "pi|pe|"},
        {"eq=ual=", "eq=ual="},
        {"bad\xc0\xaf\xed\xa0\x80\xf8utf8\xe2\x82",
         "bad" + kReplacement + kReplacement + kReplacement + kReplacement + kReplacement +
             kReplacement + "utf8" + kReplacement + kReplacement},
        {"\x7f\xc2\x85"
         "del",
         kReplacement + kReplacement + "del"},
        {n255, n255},
        {n300, n300.substr(0, 255)},
        {cut_utf8, std::string(254, 'c')},
    };
    for (const auto &[raw, clean, cef_clean] : cases) {
        INFO("sni: " << raw);
        auto a = sni_alert(raw);

        std::string s5424 = format_rfc5424(a, 16, "exfilmon", 1);
        auto r = parse_rfc5424(s5424);
        REQUIRE(r.ok);
        CHECK(r.sd_id == "exfilmon@32473");
        CHECK(param(r, "sni") == std::vector<std::string>{clean});
        CHECK(param(r, "top_sni") == std::vector<std::string>{clean + " 5"});
        CHECK(param(r, "rule") == std::vector<std::string>{"client-bulk-pull"});
        CHECK(param(r, "value") == std::vector<std::string>{"2254857830"});
        for (char c : r.msg)
            CHECK((c >= 0x20 && c < 0x7f));

        std::string cef = format_cef(a, 16, "exfilmon", 1);
        auto f = cef_fields(cef);
        REQUIRE(f.size() == 8);  // exactly 7 unescaped '|' before the extension
        CHECK(f[1] == "exfilmon");
        CHECK(f[4] == "client-bulk-pull");
        CHECK(f[5] == "sni bytes_out over threshold");
        CHECK(f[6] == "9");
        CHECK(f[7].rfind("rt=1795435200123 ", 0) == 0);
        CHECK(cef_ext(f[7], "dhost") == (cef_clean.empty() ? clean : cef_clean));
        CHECK(cef_ext(f[7], "cnt") == "1");

        std::string s3164 = format_rfc3164(a, 16, "exfilmon", 1);
        CHECK(s3164.size() <= 1024);
        for (char c : s3164)
            CHECK((c >= 0x20 && c < 0x7f));

        std::string js = format_json(a);
        auto j = nlohmann::json::parse(js);
        std::string name = j["tls"]["client"]["server_name"];
        CHECK(name.size() <= 255);
        CHECK(j["exfilmon"]["count"] == 1);
        for (char c : js)
            CHECK((c >= 0x20 && c < 0x7f));  // ASCII, escapes for the rest

        std::string s5424j = format_rfc5424_json(a, 16, "exfilmon", 1);
        CHECK(nlohmann::json::parse(s5424j.substr(s5424j.find(" - ") + 3)) == j);

        for (const auto &m : {s5424, cef, s3164, js, s5424j})
            CHECK_FALSE(has_raw_control(m));
    }
}

TEST_CASE("Output numbers of any size keep their digits", "[output]")
{
    // fuzz_alert_format: 1e70 came out as "1" (a 64-byte buffer cut it, then
    // its trailing zeros went as if decimals).
    auto a = fixed_alert();
    a.metric = "tls_flows";
    a.value = 1e70;
    auto s = format_rfc5424(a, 16, "exfilmon", 4242);
    char want[400];
    std::snprintf(want, sizeof want, "value=\"%.0f\"", 1e70);
    CHECK(s.find(want) != std::string::npos);
}

TEST_CASE("Output a client address with a NUL inside is not passed as src or source.ip", "[output]")
{
    auto a = fixed_alert();
    a.client = std::string("203.0.113.7\0\r\nx=1", 17);
    auto cef = format_cef(a, 16, "exfilmon", 4242);
    CHECK(cef.find('\0') == std::string::npos);
    CHECK(cef.find('\n') == std::string::npos);
    CHECK(cef.find(" src=") == std::string::npos);
    auto j = nlohmann::json::parse(format_json(a));
    CHECK_FALSE(j.contains("source"));
}

TEST_CASE("Output a fleet alert carries its scope and sensors in every format", "[output]")
{
    auto a = fixed_alert();
    a.scope = "fleet";
    a.distinct_sensors = 2;
    a.sensors = {{"edge-a", 1500000000, 0.665}, {"edge \"b\"]", 754857830, 0.335}};
    a.top_snis.clear();
    a.top_ja4.clear();

    auto sd = format_rfc5424(a, 16, "exfilmon", 4242);
    CHECK(sd.find(" bytes_per_request=\"4404019\" scope=\"fleet\" distinct_sensors=\"2\" "
                  "sensor=\"edge-a 1500000000 0.665\" sensor=\"edge \\\"b\\\"\\] 754857830 0.335\" "
                  "first_seen=") != std::string::npos);
    CHECK(sd.ends_with("(rule client-bulk-pull, fleet of 2 sensors)"));
    auto parsed = parse_rfc5424(sd);
    REQUIRE(parsed.ok);
    CHECK(param(parsed, "sensor") ==
          std::vector<std::string>{"edge-a 1500000000 0.665", "edge \"b\"] 754857830 0.335"});

    auto cef = format_cef(a, 16, "exfilmon", 4242);
    CHECK(cef.find(" exfilmonScope=fleet exfilmonDistinctSensors=2 "
                   "exfilmonSensors=edge-a 1500000000 0.665, "
                   "edge \"b\"] 754857830 0.335 msg=") != std::string::npos);

    auto j = nlohmann::json::parse(format_json(a));
    CHECK(j["exfilmon"]["scope"] == "fleet");
    CHECK(j["exfilmon"]["distinct_sensors"] == 2);
    CHECK(j["exfilmon"]["sensors"] ==
          nlohmann::json::parse(R"([{"name":"edge-a","bytes_out":1500000000,"share":0.665},)"
                                R"({"name":"edge \"b\"]","bytes_out":754857830,"share":0.335}])"));

    CHECK(format_rfc3164(a, 16, "exfilmon", 4242)
              .find(" scope=fleet distinct_sensors=2 sensor=\"edge-a 1500000000 0.665\" "
                    "sensor=\"edge \\\"b\\\"] 754857830 0.335\" first_seen=") != std::string::npos);

    // A local alert says none of it (the byte-for-byte tests above).
    auto local = fixed_alert();
    CHECK(format_rfc5424(local, 16, "exfilmon", 1).find("scope") == std::string::npos);
    CHECK_FALSE(nlohmann::json::parse(format_json(local))["exfilmon"].contains("scope"));
    CHECK(format_cef(local, 16, "exfilmon", 1).find("exfilmonScope") == std::string::npos);
}
