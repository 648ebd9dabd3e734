// SPDX-License-Identifier: Apache-2.0
// The detector: every rule kind and the alert lifecycle, on an aggregator fed
// by hand (times in ms on the aggregator's clock; wall time = 1.8e12 + now).
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <regex>
#include <set>

#include "aggregate/aggregator.h"
#include "common/addr.h"
#include "common/state_codec.h"
#include "detect/detector.h"

using namespace exf;
using namespace exf::detect;

namespace {

constexpr uint64_t kWall = 1'800'000'000'000ull;
constexpr uint64_t kMin = 60'000;

Addr16 A(const char *s) { return *parse_addr(s); }

Rule make_rule(const char *name, agg::EntityKind e, Metric m, uint64_t window_ms,
               std::optional<double> thr)
{
    Rule r;
    r.name = name;
    r.entity = e;
    r.metric = m;
    r.window_ms = window_ms;
    r.threshold = thr;
    r.severity = Severity::critical;
    return r;
}

DetectConfig one_rule(Rule r)
{
    DetectConfig c;
    c.rules = {std::move(r)};
    c.host_name = "sensor-1";
    c.realert_ms = 5 * kMin;
    c.resolve_after_ms = 2 * kMin;
    return c;
}

agg::AggConfig windows(std::vector<uint64_t> w = {kMin, 10 * kMin})
{
    agg::AggConfig c;
    c.windows_ms = std::move(w);
    return c;
}

void pull(agg::Aggregator &a, uint64_t now, const char *client, uint64_t bytes_out,
          uint64_t bytes_in = 100, std::string_view sni = "api.example.com")
{
    a.add_traffic(now, A(client), sni, {bytes_in, bytes_out, 1, 1, 1});
}

std::vector<AlertRecord> eval(Detector &d, const agg::Aggregator &a, uint64_t now)
{
    return d.evaluate(a, now, kWall + now);
}

}  // namespace

TEST_CASE("Threshold rule: opens once for the crossing client then updates and resolves",
          "[detect]")
{
    agg::Aggregator a(windows());
    Detector d(
        one_rule(make_rule("bulk", agg::EntityKind::client, Metric::bytes_out, 10 * kMin, 1000)));
    uint64_t t = 1'000'000;
    pull(a, t, "203.0.113.7", 1500);
    pull(a, t, "203.0.113.8", 500);
    auto r = eval(d, a, t);
    REQUIRE(r.size() == 1);
    CHECK(r[0].state == AlertState::open);
    CHECK(r[0].entity == "203.0.113.7");
    CHECK(r[0].client == "203.0.113.7");
    CHECK(r[0].entity_kind == "client");
    CHECK(r[0].rule == "bulk");
    CHECK(r[0].severity == Severity::critical);
    CHECK(r[0].host == "sensor-1");
    CHECK(r[0].value == 1500);
    CHECK(r[0].threshold == 1000);
    CHECK(r[0].bytes_out == 1500);
    CHECK(r[0].bytes_in == 100);
    CHECK(r[0].tls_flows == 1);
    CHECK(r[0].window_ms == 10 * kMin);
    CHECK(r[0].time_ms == kWall + t);
    CHECK(r[0].opened_ms == kWall + t);
    CHECK(r[0].first_seen_ms == kWall + t);
    CHECK(r[0].count == 1);
    CHECK(std::regex_match(r[0].id, std::regex("[0-9a-f]{16}")));
    REQUIRE(r[0].top_snis.size() == 1);
    CHECK(r[0].top_snis[0].name == "api.example.com");
    const std::string id = r[0].id;

    // Still above: no duplicate until realert has passed.
    for (uint64_t s = 1; s < 300; s++)
        CHECK(eval(d, a, t + s * 1000).empty());
    r = eval(d, a, t + 300'000);
    REQUIRE(r.size() == 1);
    CHECK(r[0].state == AlertState::update);
    CHECK(r[0].id == id);
    CHECK(r[0].count == 301);
    CHECK(d.stats().open_now == 1);

    // The window empties (traffic stopped): the value is exact while the
    // client is younger than the window (1500 until t + 10m), then the
    // sliding estimate (about 500 at t + 10m: the bucket holding the pull
    // is two thirds past). Resolved 2 minutes after the last evaluation that held.
    std::vector<AlertRecord> all;
    uint64_t resolved_at = 0;
    for (uint64_t now = t + 301'000; now < t + 30 * kMin && !resolved_at; now += 1000) {
        for (auto &x : eval(d, a, now)) {
            all.push_back(x);
            if (x.state == AlertState::resolved)
                resolved_at = now;
        }
    }
    REQUIRE(all.size() == 1);
    CHECK(all[0].state == AlertState::resolved);
    CHECK(all[0].id == id);
    CHECK(all[0].value < 1000);
    CHECK(resolved_at == t + 599'000 + 120'000);
    CHECK(d.stats().open_now == 0);
    // It crosses again: a new alert with a new ID.
    pull(a, resolved_at + 1000, "203.0.113.7", 5000);
    r = eval(d, a, resolved_at + 1000);
    REQUIRE(r.size() == 1);
    CHECK(r[0].state == AlertState::open);
    CHECK(r[0].id != id);
}

TEST_CASE("Sustain: the condition must hold for N consecutive evaluations", "[detect]")
{
    agg::Aggregator a(windows());
    auto rule = make_rule("fanout", agg::EntityKind::client, Metric::concurrent_flows, kMin, 8);
    rule.sustain = 3;
    Detector d(one_rule(rule));
    uint64_t t = 600'000;
    for (int i = 0; i < 10; i++)
        a.flow_opened(t, A("192.0.2.9"), "api.example.com");
    CHECK(eval(d, a, t).empty());
    CHECK(eval(d, a, t + 1000).empty());
    auto r = eval(d, a, t + 2000);
    REQUIRE(r.size() == 1);
    CHECK(r[0].metric == "concurrent_flows");
    CHECK(r[0].value == 10);
    CHECK(r[0].peak_concurrent == 10);

    // A break resets the streak.
    agg::Aggregator b(windows());
    Detector d2(one_rule(rule));
    for (int i = 0; i < 10; i++)
        b.flow_opened(t, A("192.0.2.9"), "");
    CHECK(eval(d2, b, t).empty());
    CHECK(eval(d2, b, t + 1000).empty());
    // The peak leaves the 1-minute window after two buckets: condition false.
    for (int i = 0; i < 10; i++)
        b.flow_closed(t + 1000, A("192.0.2.9"), "");
    CHECK(eval(d2, b, t + 3 * kMin).empty());
    for (int i = 0; i < 10; i++)
        b.flow_opened(t + 3 * kMin + 1, A("192.0.2.9"), "");
    CHECK(eval(d2, b, t + 3 * kMin + 1000).empty());
    CHECK(eval(d2, b, t + 3 * kMin + 2000).empty());
    CHECK(eval(d2, b, t + 3 * kMin + 3000).size() == 1);
}

TEST_CASE("Fan-out: TLS flows opened per window", "[detect]")
{
    agg::Aggregator a(windows());
    Detector d(one_rule(make_rule("burst", agg::EntityKind::client, Metric::tls_flows, kMin, 50)));
    uint64_t t = 120'000;
    for (int i = 0; i < 49; i++)
        a.add_traffic(t, A("2001:db8:1:2::5"), "", {10, 10, 1, 1, 1});
    CHECK(eval(d, a, t).empty());
    a.add_traffic(t, A("2001:db8:1:2::77"), "", {10, 10, 1, 1, 1});  // same /64: same client
    auto r = eval(d, a, t);
    REQUIRE(r.size() == 1);
    CHECK(r[0].entity == "2001:db8:1:2::/64");
    CHECK(r[0].value == 50);
}

TEST_CASE("Group rules: a /24 spreading the pull below the per-client threshold", "[detect]")
{
    agg::Aggregator a(windows());
    DetectConfig c;
    c.host_name = "sensor-1";
    c.rules = {
        make_rule("client-pull", agg::EntityKind::client, Metric::bytes_out, 10 * kMin, 1000),
        make_rule("subnet-pull", agg::EntityKind::subnet, Metric::bytes_out, 10 * kMin, 5000),
        make_rule("subnet-spread", agg::EntityKind::subnet, Metric::distinct_clients, 10 * kMin,
                  10),
        make_rule("host-pull", agg::EntityKind::host, Metric::bytes_out, 10 * kMin, 100000)};
    Detector d(c);
    uint64_t t = 1'200'000;
    for (int i = 1; i <= 10; i++)
        pull(a, t, ("198.51.100." + std::to_string(i)).c_str(), 900);  // 9000 in the /24
    pull(a, t, "203.0.113.1", 900);
    auto r = eval(d, a, t);
    REQUIRE(r.size() == 2);
    std::map<std::string, AlertRecord> by_rule;
    for (auto &x : r)
        by_rule[x.rule] = x;
    REQUIRE(by_rule.count("subnet-pull"));
    CHECK(by_rule["subnet-pull"].entity == "198.51.100.0/24");
    CHECK(by_rule["subnet-pull"].subnet == "198.51.100.0/24");
    CHECK(by_rule["subnet-pull"].value == 9000);
    CHECK(by_rule["subnet-pull"].distinct_clients == 10u);
    REQUIRE(by_rule.count("subnet-spread"));
    CHECK(by_rule["subnet-spread"].value == 10);
}

TEST_CASE("Response to request ratio rule with its minimum volume", "[detect]")
{
    agg::Aggregator a(windows());
    auto rule = make_rule("ratio", agg::EntityKind::client, Metric::out_in_ratio, 10 * kMin, 1000);
    rule.min_bytes_out = 1'000'000;
    Detector d(one_rule(rule));
    uint64_t t = 1'200'000;
    pull(a, t, "192.0.2.1", 2'000'000, 1000);  // ratio 2000
    pull(a, t, "192.0.2.2", 500'000, 100);     // ratio 5000, below the volume
    pull(a, t, "192.0.2.3", 2'000'000, 4000);  // ratio 500
    auto r = eval(d, a, t);
    REQUIRE(r.size() == 1);
    CHECK(r[0].entity == "192.0.2.1");
    CHECK(r[0].value == 2000);
}

TEST_CASE("Baseline rule: learns an entity's level then fires on a jump", "[detect]")
{
    agg::Aggregator a(windows({kMin, 10 * kMin}));
    auto rule =
        make_rule("baseline", agg::EntityKind::client, Metric::bytes_out, kMin, std::nullopt);
    rule.baseline = Baseline{5.0, 1000, 10 * kMin};
    Detector d(one_rule(rule));
    uint64_t t0 = 6'000'000;  // a bucket boundary of the 1m window
    // 10 KB in the middle of every minute, evaluated every 5 s, for 15
    // minutes: never fires. The level is folded at each minute's first
    // evaluation: the sliding value then is the whole previous minute.
    uint64_t now = t0;
    for (; now <= t0 + 15 * kMin; now += 5000) {
        if (now % kMin == 30'000)
            pull(a, now, "192.0.2.50", 10'000, 10);
        CHECK(eval(d, a, now).empty());
    }
    // A jump to 80 KB (8x the level) in the next minute.
    now = t0 + 15 * kMin + 30'000;
    pull(a, now, "192.0.2.50", 80'000, 10);
    auto r = eval(d, a, now + 5000);
    REQUIRE(r.size() == 1);
    REQUIRE(r[0].baseline);
    CHECK(*r[0].baseline == Approx(10'000).epsilon(0.02));
    CHECK(r[0].threshold == Approx(50'000).epsilon(0.02));
    CHECK(r[0].value >= 80'000);

    // A new client jumping at once is not learned yet: no baseline alert.
    agg::Aggregator b(windows({kMin, 10 * kMin}));
    Detector d2(one_rule(rule));
    pull(b, t0, "192.0.2.60", 10'000'000, 10);
    for (uint64_t n = t0; n < t0 + 5 * kMin; n += 5000)
        CHECK(eval(d2, b, n).empty());
}

TEST_CASE("Allow list: counted but never alerted", "[detect]")
{
    agg::Aggregator a(windows());
    DetectConfig c =
        one_rule(make_rule("bulk", agg::EntityKind::client, Metric::bytes_out, 10 * kMin, 1000));
    c.rules.push_back(
        make_rule("subnet", agg::EntityKind::subnet, Metric::bytes_out, 10 * kMin, 1000));
    AllowEntry e;
    std::string why;
    e.cidr = agg::parse_cidr("198.51.100.0/24", why);
    c.allow.push_back(e);
    Detector d(c);
    uint64_t t = 1'200'000;
    pull(a, t, "198.51.100.20", 50'000);
    pull(a, t, "203.0.113.20", 50'000);
    auto r = eval(d, a, t);
    REQUIRE(r.size() == 2);
    for (auto &x : r)
        CHECK(x.entity.find("203.0.113.") == 0);
    CHECK(d.stats().allowed == 2);  // the client and its /24
    CHECK(a.value(agg::EntityKind::client, a.client_key(A("198.51.100.20")), 1, t).bytes_out ==
          50'000);
}

TEST_CASE("An SNI exemption never exempts the client: client and subnet rules still fire",
          "[detect]")
{
    // The SNI is the client's choice: a puller can name an exempt host and
    // still be caught by the rules that measure the client itself.
    agg::Aggregator a(windows());
    DetectConfig c =
        one_rule(make_rule("client", agg::EntityKind::client, Metric::bytes_out, 10 * kMin, 1000));
    c.rules.push_back(
        make_rule("subnet", agg::EntityKind::subnet, Metric::bytes_out, 10 * kMin, 1000));
    c.rules.push_back(
        make_rule("pair", agg::EntityKind::client_api_host, Metric::bytes_out, 10 * kMin, 1000));
    c.rules.push_back(
        make_rule("host", agg::EntityKind::api_host, Metric::bytes_out, 10 * kMin, 1000));
    AllowEntry e;
    e.sni = "downloads.example.com";
    c.allow.push_back(e);
    Detector d(c);
    uint64_t t = 1'200'000;
    pull(a, t, "203.0.113.20", 50'000, 100, "downloads.example.com");
    auto r = eval(d, a, t);
    std::set<std::string> fired;
    for (auto &x : r)
        fired.insert(x.rule + " " + x.entity);
    CHECK(fired == std::set<std::string>{"client 203.0.113.20", "subnet 203.0.113.0/24"});
    CHECK(d.stats().allowed == 2);  // the pair and the API host
}

TEST_CASE("Shadow rules and SNI overrides", "[detect]")
{
    agg::Aggregator a(windows());
    auto rule =
        make_rule("sni-pull", agg::EntityKind::api_host, Metric::bytes_out, 10 * kMin, 10'000);
    rule.shadow = true;
    DetectConfig c = one_rule(rule);
    c.sni_scale["downloads.example.com"] = 10.0;
    c.sni_scale["*.cdn.example.com"] = 100.0;
    Detector d(c);
    uint64_t t = 1'200'000;
    pull(a, t, "192.0.2.1", 50'000, 10, "api.example.com");
    pull(a, t, "192.0.2.1", 50'000, 10, "downloads.example.com");    // < 100k
    pull(a, t, "192.0.2.1", 500'000, 10, "eu.cdn.example.com");      // < 1M
    pull(a, t, "192.0.2.1", 500'000, 10, "Downloads2.Example.com");  // no override
    auto r = eval(d, a, t);
    REQUIRE(r.size() == 2);
    std::set<std::string> hosts;
    for (auto &x : r) {
        CHECK(x.shadow);
        CHECK(x.sni == x.entity);
        CHECK(x.threshold == 10'000);
        hosts.insert(x.entity);
    }
    CHECK(hosts == std::set<std::string>{"api.example.com", "downloads2.example.com"});
}

TEST_CASE("A storm of entities is summarized with what was suppressed", "[detect]")
{
    agg::Aggregator a(windows());
    DetectConfig c =
        one_rule(make_rule("bulk", agg::EntityKind::client, Metric::bytes_out, 10 * kMin, 1000));
    c.storm_limit = 3;
    Detector d(c);
    uint64_t t = 1'200'000;
    for (int i = 1; i <= 10; i++)
        pull(a, t, ("203.0.113." + std::to_string(i)).c_str(), 1000 + 100 * i);
    auto r = eval(d, a, t);
    REQUIRE(r.size() == 4);
    CHECK(r[0].entity == "203.0.113.10");  // heaviest first
    CHECK(r[1].entity == "203.0.113.9");
    CHECK(r[2].entity == "203.0.113.8");
    CHECK(r[3].state == AlertState::summary);
    CHECK(r[3].suppressed == 7);
    CHECK(r[3].entity == "203.0.113.7");  // the heaviest suppressed
    CHECK(d.stats().muted == 7);
    // Nothing re-fires; muted ones resolve silently.
    std::vector<AlertRecord> later;
    for (uint64_t now = t + 1000; now < t + 40 * kMin; now += 1000)
        for (auto &x : eval(d, a, now))
            later.push_back(x);
    std::set<std::string> opened{r[0].id, r[1].id, r[2].id}, resolved;
    for (auto &x : later) {
        CHECK((x.state == AlertState::update || x.state == AlertState::resolved));
        CHECK(opened.count(x.id));
        if (x.state == AlertState::resolved)
            CHECK(resolved.insert(x.id).second);
    }
    CHECK(resolved == opened);
    CHECK(d.stats().open_now == 0);
}

TEST_CASE("Top JA4 fingerprints and SNIs in a client's alert", "[detect]")
{
    agg::Aggregator a(windows());
    Detector d(
        one_rule(make_rule("bulk", agg::EntityKind::client, Metric::bytes_out, 10 * kMin, 1000)));
    uint64_t t = 1'200'000;
    for (int i = 0; i < 3; i++)
        d.on_tls(a, t, A("192.0.2.5"), "api.example.com", "t13d1516h2_8daaf6152771_02713d6af862");
    d.on_tls(a, t, A("192.0.2.5"), "files.example.com", "t13d1715h2_5b57614c22b0_3d5424432f57");
    pull(a, t, "192.0.2.5", 4000, 10, "files.example.com");
    pull(a, t, "192.0.2.5", 1000, 10, "api.example.com");
    auto r = eval(d, a, t);
    REQUIRE(r.size() == 1);
    REQUIRE(r[0].top_ja4.size() == 2);
    CHECK(r[0].top_ja4[0].name == "t13d1516h2_8daaf6152771_02713d6af862");
    CHECK(r[0].top_ja4[0].value == 3);
    CHECK(r[0].top_ja4[1].value == 1);
    REQUIRE(r[0].top_snis.size() == 2);
    CHECK(r[0].top_snis[0].name == "files.example.com");
}

TEST_CASE("Top JA4: at most 4 per entity, a new one replaces the least frequent", "[detect]")
{
    agg::Aggregator a(windows());
    Detector d(
        one_rule(make_rule("bulk", agg::EntityKind::api_host, Metric::bytes_out, 10 * kMin, 1000)));
    uint64_t t = 1'200'000;
    auto ja4 = [](int i) { return "t13d1516h2_8daaf6152771_00000000000" + std::to_string(i); };
    // Counts 5, 4, 3, 2 for fingerprints 0..3, from two clients; another
    // API host's fingerprints do not mix in.
    for (int i = 0; i < 4; i++)
        for (int n = 0; n < 5 - i; n++)
            d.on_tls(a, t, A(n % 2 ? "192.0.2.5" : "198.51.100.7"), "api.example.com", ja4(i));
    for (int n = 0; n < 9; n++)
        d.on_tls(a, t, A("192.0.2.5"), "other.example.com", ja4(7));
    // A fifth replaces the least frequent (3: count 2) and inherits its count.
    d.on_tls(a, t, A("192.0.2.9"), "api.example.com", ja4(4));
    pull(a, t, "192.0.2.5", 4000, 10, "api.example.com");
    auto r = eval(d, a, t);
    REQUIRE(r.size() == 1);
    CHECK(r[0].entity == "api.example.com");
    REQUIRE(r[0].top_ja4.size() == 4);
    CHECK(r[0].top_ja4[0].name == ja4(0));
    CHECK(r[0].top_ja4[0].value == 5);
    CHECK(r[0].top_ja4[1].name == ja4(1));
    CHECK(r[0].top_ja4[1].value == 4);
    CHECK(r[0].top_ja4[2].name == ja4(2));
    CHECK(r[0].top_ja4[2].value == 3);
    CHECK(r[0].top_ja4[3].name == ja4(4));
    CHECK(r[0].top_ja4[3].value == 3);
}

TEST_CASE("Reconfigure keeps open alerts of kept rules and resolves dropped ones", "[detect]")
{
    agg::Aggregator a(windows());
    DetectConfig c =
        one_rule(make_rule("bulk", agg::EntityKind::client, Metric::bytes_out, 10 * kMin, 1000));
    c.rules.push_back(
        make_rule("other", agg::EntityKind::client, Metric::bytes_out, 10 * kMin, 1000));
    Detector d(c);
    uint64_t t = 1'200'000;
    pull(a, t, "192.0.2.5", 4000);
    auto r = eval(d, a, t);
    REQUIRE(r.size() == 2);
    c.rules.pop_back();
    c.rules[0].threshold = 2000;  // a new threshold: the alert carries on
    std::string why;
    REQUIRE(d.reconfigure(c, why));
    r = eval(d, a, t + 1000);
    REQUIRE(r.size() == 1);
    CHECK(r[0].rule == "other");
    CHECK(r[0].state == AlertState::resolved);
    // An invalid configuration changes nothing.
    DetectConfig bad = c;
    bad.rules.push_back(bad.rules[0]);
    CHECK_FALSE(d.reconfigure(bad, why));
    CHECK(why.find("same name") != std::string::npos);
    CHECK(eval(d, a, t + 2000).empty());
}

TEST_CASE("Reconfigure: an open alert's live view and later records carry the new threshold",
          "[detect]")
{
    agg::Aggregator a(windows());
    DetectConfig c =
        one_rule(make_rule("bulk", agg::EntityKind::client, Metric::bytes_out, 10 * kMin, 1000));
    Detector d(c);
    uint64_t t = 1'200'000;
    pull(a, t, "192.0.2.5", 4000);
    REQUIRE(eval(d, a, t).size() == 1);

    // Lowered, the condition still holds: the live view says so at once,
    // and so does the next update.
    c.rules[0].threshold = 2000;
    std::string why;
    REQUIRE(d.reconfigure(c, why));
    REQUIRE(d.open_alerts().size() == 1);
    CHECK(d.open_alerts()[0].threshold == 2000);
    auto r = eval(d, a, t + 5 * kMin);
    REQUIRE(r.size() == 1);
    CHECK(r[0].state == AlertState::update);
    CHECK(r[0].threshold == 2000);

    // Raised above the value: the alert resolves, against the new threshold.
    c.rules[0].threshold = 1'000'000;
    REQUIRE(d.reconfigure(c, why));
    REQUIRE(d.open_alerts().size() == 1);
    CHECK(d.open_alerts()[0].threshold == 1'000'000);
    CHECK(eval(d, a, t + 5 * kMin + 1000).empty());
    r = eval(d, a, t + 7 * kMin + 2000);
    REQUIRE(r.size() == 1);
    CHECK(r[0].state == AlertState::resolved);
    CHECK(r[0].threshold == 1'000'000);

    // A baseline rule (learned as in the baseline test above): a new factor
    // moves what its open alert is compared with.
    agg::Aggregator ab(windows({kMin, 10 * kMin}));
    auto rule =
        make_rule("baseline", agg::EntityKind::client, Metric::bytes_out, kMin, std::nullopt);
    rule.baseline = Baseline{5.0, 1000, 10 * kMin};
    DetectConfig b = one_rule(rule);
    Detector db(b);
    uint64_t t0 = 6'000'000, now = t0;
    for (; now <= t0 + 15 * kMin; now += 5000) {
        if (now % kMin == 30'000)
            pull(ab, now, "192.0.2.50", 10'000, 10);
        eval(db, ab, now);
    }
    now = t0 + 15 * kMin + 30'000;
    pull(ab, now, "192.0.2.50", 80'000, 10);
    r = eval(db, ab, now + 5000);
    REQUIRE(r.size() == 1);
    REQUIRE(r[0].baseline);
    CHECK(r[0].threshold == Approx(5 * *r[0].baseline));
    b.rules[0].baseline->factor = 6.0;
    REQUIRE(db.reconfigure(b, why));
    REQUIRE(db.open_alerts().size() == 1);
    CHECK(db.open_alerts()[0].threshold == Approx(6 * *r[0].baseline));
}

TEST_CASE("distinct_sensors on one sensor reads 1 for an entity with traffic", "[detect]")
{
    agg::Aggregator a(windows());
    Detector d(one_rule(
        make_rule("spread", agg::EntityKind::client, Metric::distinct_sensors, 10 * kMin, 1)));
    uint64_t t = 1'000'000;
    pull(a, t, "203.0.113.7", 10);
    auto r = eval(d, a, t);
    REQUIRE(r.size() == 1);
    CHECK(r[0].metric == "distinct_sensors");
    CHECK(r[0].value == 1);
    CHECK(r[0].scope == "local");
    CHECK_FALSE(r[0].distinct_sensors);
    CHECK(r[0].sensors.empty());

    // Two sensors are the fleet's: a rule at 2 never fires on one.
    Detector two(one_rule(
        make_rule("spread", agg::EntityKind::client, Metric::distinct_sensors, 10 * kMin, 2)));
    CHECK(eval(two, a, t).empty());
}

TEST_CASE("An alert resumed from a previous run is updated and resolved, never opened again",
          "[detect]")
{
    agg::Aggregator a(windows());
    auto cfg =
        one_rule(make_rule("bulk", agg::EntityKind::client, Metric::bytes_out, 10 * kMin, 1000));
    Detector d(cfg);
    uint64_t t = 1'000'000;
    OpenAlert prev;
    prev.id = "00112233445566ff";
    prev.rule = "bulk";
    prev.kind = agg::EntityKind::client;
    prev.key = a.client_key(A("203.0.113.7"));
    prev.metric = Metric::bytes_out;
    prev.opened_wall_ms = kWall + t - kMin;
    prev.count = 60;
    REQUIRE(d.resume(prev, t));
    CHECK_FALSE(d.resume(prev, t));  // tracked already
    auto other = prev;
    other.rule = "no-such-rule";
    CHECK_FALSE(d.resume(other, t));
    auto wrong_metric = prev;
    wrong_metric.metric = Metric::tls_flows;
    CHECK_FALSE(d.resume(wrong_metric, t));

    // Still above: no open, an update after realert under the same ID.
    pull(a, t, "203.0.113.7", 1500);
    CHECK(eval(d, a, t).empty());
    auto r = eval(d, a, t + 5 * kMin);
    REQUIRE(r.size() == 1);
    CHECK(r[0].state == AlertState::update);
    CHECK(r[0].id == prev.id);
    CHECK(r[0].opened_ms == prev.opened_wall_ms);
    CHECK(d.open_alerts().size() == 1);

    // A resumed alert that no longer holds resolves after resolve_after.
    agg::Aggregator none(windows());
    Detector quiet(cfg);
    REQUIRE(quiet.resume(prev, t));
    CHECK(eval(quiet, none, t + kMin).empty());
    r = eval(quiet, none, t + 2 * kMin);
    REQUIRE(r.size() == 1);
    CHECK(r[0].state == AlertState::resolved);
    CHECK(r[0].id == prev.id);
}

TEST_CASE("A ja4_sni baseline rule fires on a cohort's burst, not on its steady traffic",
          "[detect][ja4]")
{
    // "ja4_sni tls_flows over the window above 10x its learned level and
    // above a floor", on a 1-minute window learned over 10 minutes.
    constexpr const char *kJa4 = "t13d1812h1_85036bcba153_b26ce05bbdd6";
    auto rule =
        make_rule("cohort-burst", agg::EntityKind::ja4_sni, Metric::tls_flows, kMin, std::nullopt);
    rule.baseline = Baseline{10.0, 50, 10 * kMin};
    agg::Aggregator a(windows({kMin, 10 * kMin}));
    Detector d(one_rule(rule));
    auto flows = [&](uint64_t now, int n, int first_client) {
        for (int i = 0; i < n; i++) {
            int c = first_client + i;
            std::string addr =
                "2001:db8:" + std::to_string(c % 40 + 1) + ":" + std::to_string(c + 1) + "::1";
            a.add_traffic(now, A(addr.c_str()), "api.example.com", {200, 3000, 2, 2, 1}, kJa4);
        }
    };
    uint64_t t0 = 6'000'000, now = t0;
    // Steady: 8 flows a minute from the cohort for 20 minutes: never fires.
    for (; now <= t0 + 20 * kMin; now += 5000) {
        if (now % kMin == 30'000)
            flows(now, 8, 0);
        CHECK(eval(d, a, now).empty());
    }
    // A burst: 120 flows from 120 clients over 40 /48s in the next minute.
    now = t0 + 20 * kMin + 30'000;
    flows(now, 120, 100);
    auto r = eval(d, a, now + 5000);
    REQUIRE(r.size() == 1);
    CHECK(r[0].entity_kind == "ja4_sni");
    CHECK(r[0].entity == std::string(kJa4) + " -> api.example.com");
    REQUIRE(r[0].ja4);
    CHECK(*r[0].ja4 == kJa4);
    REQUIRE(r[0].sni);
    CHECK(*r[0].sni == "api.example.com");
    REQUIRE(r[0].baseline);
    CHECK(*r[0].baseline > 5);  // learning the 8 flows a minute
    CHECK(*r[0].baseline <= 8);
    CHECK(r[0].value >= 120);
    REQUIRE(r[0].distinct_clients);
    CHECK(*r[0].distinct_clients >= 120);
    REQUIRE(r[0].distinct_subnets);
    CHECK(*r[0].distinct_subnets == 40);
    CHECK(r[0].top_clients.size() == 4);
    REQUIRE(r[0].top_ja4.size() == 1);
    CHECK(r[0].top_ja4[0].name == kJa4);

    // A cohort bursting from its first minute is not learned yet: nothing.
    agg::Aggregator b(windows({kMin, 10 * kMin}));
    Detector d2(one_rule(rule));
    for (int i = 0; i < 200; i++)
        b.add_traffic(t0, A(("192.0.2." + std::to_string(i % 250 + 1)).c_str()), "api.example.com",
                      {200, 3000, 2, 2, 1}, kJa4);
    for (uint64_t n = t0; n < t0 + 5 * kMin; n += 5000)
        CHECK(eval(d2, b, n).empty());
}

TEST_CASE("Open alerts of two fingerprint cohorts on one API host survive the state file apart",
          "[detect][ja4]")
{
    auto rule =
        make_rule("cohort-flows", agg::EntityKind::ja4_sni, Metric::tls_flows, 10 * kMin, 10);
    agg::Aggregator a(windows());
    Detector d(one_rule(rule));
    uint64_t t = 1'200'000;
    for (const char *ja4 :
         {"t13d1812h1_85036bcba153_b26ce05bbdd6", "t13d1516h2_8daaf6152771_e5627efa2ab1"})
        for (int i = 1; i <= 12; i++)
            a.add_traffic(t, A(("192.0.2." + std::to_string(i)).c_str()), "api.example.com",
                          {200, 3000, 2, 2, 1}, ja4);
    REQUIRE(eval(d, a, t).size() == 2);

    StateWriter w;
    d.save_state(w);
    Detector back(one_rule(rule));
    StateReader r(w.bytes());
    back.restore_state(r);
    auto open = back.open_alerts();
    REQUIRE(open.size() == 2);
    CHECK(open[0].key.ja4 != open[1].key.ja4);
    // Carried on, not opened again.
    for (auto &rec : eval(back, a, t + 1000))
        CHECK(rec.state != AlertState::open);
}

TEST_CASE("A requests threshold rule fires for every entity kind", "[detect][requests]")
{
    constexpr const char *kJa4 = "t13d1812h1_85036bcba153_b26ce05bbdd6";
    agg::AggConfig cfg = windows();
    cfg.cohorts = {{A("192.0.2.0"), 24, "lab"}};
    for (size_t k = 0; k < agg::kEntityKinds; k++) {
        auto kind = agg::EntityKind(k);
        INFO(rule_entity_name(kind));
        agg::Aggregator a(cfg);
        Detector d(one_rule(make_rule("calls", kind, Metric::requests, 10 * kMin, 500)));
        uint64_t t = 1'000'000;
        // Many small calls, few bytes: 499 requests do not fire, 500 do.
        agg::Traffic calls{300, 4000, 10, 10, 1, 499};
        a.add_traffic(t, A("192.0.2.7"), "api.example.com", calls, kJa4);
        CHECK(eval(d, a, t).empty());
        a.add_traffic(t + 1000, A("192.0.2.7"), "api.example.com", {30, 400, 1, 1, 0, 1}, kJa4);
        auto r = eval(d, a, t + 1000);
        REQUIRE(r.size() == 1);
        CHECK(r[0].metric == "requests");
        CHECK(r[0].value == 500);
        CHECK(r[0].threshold == 500);
        // The alert carries the calls and the bytes out per call (4400 / 500).
        CHECK(r[0].requests == 500);
        CHECK(r[0].bytes_per_request() == 8);
    }
}

TEST_CASE("A ja4_sni requests baseline rule fires on a cohort's burst of calls",
          "[detect][requests]")
{
    constexpr const char *kJa4 = "t13d1812h1_85036bcba153_b26ce05bbdd6";
    auto rule =
        make_rule("cohort-calls", agg::EntityKind::ja4_sni, Metric::requests, kMin, std::nullopt);
    rule.baseline = Baseline{10.0, 1000, 10 * kMin};
    agg::Aggregator a(windows({kMin, 10 * kMin}));
    Detector d(one_rule(rule));
    auto calls = [&](uint64_t now, uint64_t n) {
        a.add_traffic(now, A("2001:db8:7::1"), "api.example.com", {100 * n, 3000 * n, 2, 2, 0, n},
                      kJa4);
    };
    uint64_t t0 = 6'000'000, now = t0;
    // Steady: 200 calls a minute for 20 minutes (bytes and flows flat): never fires.
    for (; now <= t0 + 20 * kMin; now += 5000) {
        if (now % kMin == 30'000)
            calls(now, 200);
        CHECK(eval(d, a, now).empty());
    }
    // 3000 calls in the next minute: over 10 x 200 and over the floor.
    now = t0 + 20 * kMin + 30'000;
    calls(now, 3000);
    auto r = eval(d, a, now + 5000);
    REQUIRE(r.size() == 1);
    CHECK(r[0].metric == "requests");
    REQUIRE(r[0].baseline);
    CHECK(*r[0].baseline > 100);
    CHECK(*r[0].baseline <= 200);
    CHECK(r[0].value >= 3000);
    // The rule and its learned level survive the state file.
    StateWriter w;
    d.save_state(w);
    Detector back(one_rule(rule));
    StateReader rd(w.bytes());
    back.restore_state(rd);
    REQUIRE(back.open_alerts().size() == 1);
    for (auto &rec : eval(back, a, now + 6000))
        CHECK(rec.state != AlertState::open);
}
