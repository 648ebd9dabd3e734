// SPDX-License-Identifier: Apache-2.0
// The daemon's state file (state/state_file.h): the stages saved and
// read back carry on as if there had been no restart; every corrupt or
// stale file is refused with a reason, never a crash.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "aggregate/aggregator.h"
#include "common/addr.h"
#include "common/error.h"
#include "detect/detector.h"
#include "flows/flow_tracker.h"
#include "harvest/harvest_stage.h"
#include "state/state_file.h"

using namespace exf;

namespace {

constexpr uint64_t kMin = 60'000;
constexpr uint64_t kT0 = 5'000'000;  // aggregator clock (ms) at the save
const std::string kBoot = "7a1c4d1e-0000-4000-8000-000000000001";

ClientRow client_row(const char *addr, uint64_t bytes_out, uint64_t requests = 40)
{
    ClientRow r{};
    std::memcpy(r.key.addr, parse_addr(addr)->data(), 16);
    r.stats.tls_flows_opened = 1;
    r.stats.requests = requests;
    r.stats.pkts_in = bytes_out / 1000 + 1;
    r.stats.pkts_out = bytes_out / 1000 + 1;
    r.stats.bytes_in = 1000;
    r.stats.bytes_out = bytes_out;
    r.stats.first_ns = 1'000'000'000;
    r.stats.last_ns = kT0 * 1'000'000;
    return r;
}

detect::DetectConfig bulk_rule()
{
    detect::Rule r;
    r.name = "bulk";
    r.entity = agg::EntityKind::client;
    r.metric = detect::Metric::bytes_out;
    r.window_ms = kMin;
    r.threshold = 1'000'000;
    r.severity = detect::Severity::critical;
    detect::DetectConfig c;
    c.rules = {r};
    c.host_name = "sensor-1";
    return c;
}

StateContext context()
{
    StateContext ctx;
    ctx.owner = "/etc/exfilmon/exfilmon.toml";
    ctx.tables = "bpf maps 11 12 13";
    ctx.aggregate.windows_ms = {kMin, 10 * kMin};
    ctx.detect = bulk_rule();
    return ctx;
}

// A daemon's stages after one harvest of a 3 MB pull: the alert is open.
struct Stages {
    StateContext ctx = context();
    agg::Aggregator agg{ctx.aggregate};
    detect::Detector det{ctx.detect};
    HarvestStage harvest;
    FlowTracker tracker;
    std::string alert_id;

    Stages()
    {
        harvest.run(agg, {}, {client_row("203.0.113.7", 3'000'000)}, tracker, kT0);
        auto recs = det.evaluate(agg, kT0, 1'800'000'000'000ull);
        REQUIRE(recs.size() == 1);
        REQUIRE(recs[0].state == detect::AlertState::open);
        alert_id = recs[0].id;
    }
    std::string encode(uint64_t at = kT0) const
    {
        return state_file::encode(ctx, agg, det, harvest, at, 1'800'000'000'000ull, kBoot);
    }
};

agg::WindowValue value_10m(const agg::Aggregator &a, const char *client, uint64_t now)
{
    return a.value(agg::EntityKind::client, a.client_key(*parse_addr(client)), 1, now);
}

uint64_t out_10m(const agg::Aggregator &a, const char *client, uint64_t now)
{
    return value_10m(a, client, now).bytes_out;
}

}  // namespace

TEST_CASE("State file: the fleet export's part, when written, comes back as it was", "[state]")
{
    Stages s;
    CHECK(state_file::decode(s.encode(), s.ctx, kT0 + 2000, kBoot).fleet.empty());
    std::string part("periods\0and rows", 16);
    auto bytes =
        state_file::encode(s.ctx, s.agg, s.det, s.harvest, kT0, 1'800'000'000'000ull, kBoot, part);
    auto d = state_file::decode(bytes, s.ctx, kT0 + 2000, kBoot);
    CHECK(d.fleet == part);
    CHECK(d.harvest_valid);
    CHECK(out_10m(d.aggregator, "203.0.113.7", kT0 + 2000) == 3'000'000);
    // Cut inside the part: refused, as any truncated state.
    auto payload = bytes.substr(32, bytes.size() - 32 - 4);
    CHECK_THROWS_AS(
        state_file::decode(state_file::header_for(payload) + payload, s.ctx, kT0 + 2000, kBoot),
        Error);
}

TEST_CASE("State file round trip: windows, open alert and harvest carry on", "[state]")
{
    Stages s;
    auto bytes = s.encode();
    auto d = state_file::decode(bytes, s.ctx, kT0 + 2000, kBoot);
    CHECK(d.harvest_valid);
    CHECK(d.saved_mono_ms == kT0);
    CHECK(out_10m(d.aggregator, "203.0.113.7", kT0 + 2000) == 3'000'000);
    CHECK(value_10m(d.aggregator, "203.0.113.7", kT0 + 2000).requests == 40);
    CHECK(d.aggregator.clock_ms() == kT0);
    auto open = d.detector.open_alerts();
    REQUIRE(open.size() == 1);
    CHECK(open[0].id == s.alert_id);

    FlowTracker tracker;
    SECTION("the kernel counted nothing since: nothing new, the alert is updated, not opened")
    {
        d.harvest.run(d.aggregator, {}, {client_row("203.0.113.7", 3'000'000)}, tracker,
                      kT0 + 2000);
        CHECK(out_10m(d.aggregator, "203.0.113.7", kT0 + 2000) == 3'000'000);
        auto recs = d.detector.evaluate(d.aggregator, kT0 + 2000, 1'800'000'002'000ull);
        for (auto &r : recs)
            CHECK(r.state != detect::AlertState::open);
    }
    SECTION("what the kernel counted since the save is added once")
    {
        d.harvest.run(d.aggregator, {}, {client_row("203.0.113.7", 3'500'000, 55)}, tracker,
                      kT0 + 2000);
        CHECK(out_10m(d.aggregator, "203.0.113.7", kT0 + 2000) == 3'500'000);
        CHECK(value_10m(d.aggregator, "203.0.113.7", kT0 + 2000).requests == 55);
    }
    SECTION("other tables (maps re-created): windows and alerts kept, harvest not")
    {
        auto ctx = s.ctx;
        ctx.tables = "bpf maps 21 22 23";
        auto d2 = state_file::decode(bytes, ctx, kT0 + 2000, kBoot);
        CHECK_FALSE(d2.harvest_valid);
        CHECK(out_10m(d2.aggregator, "203.0.113.7", kT0 + 2000) == 3'000'000);
        CHECK(d2.detector.open_alerts().size() == 1);
    }
    SECTION("other windows: restored, then reconfigured (10m kept)")
    {
        auto ctx = s.ctx;
        ctx.aggregate.windows_ms = {10 * kMin, 60 * kMin};
        auto d2 = state_file::decode(bytes, ctx, kT0 + 2000, kBoot);
        CHECK(d2.aggregator.window_ms(0) == 10 * kMin);
        CHECK(d2.aggregator
                  .value(agg::EntityKind::client,
                         d2.aggregator.client_key(*parse_addr("203.0.113.7")), 0, kT0 + 2000)
                  .bytes_out == 3'000'000);
    }
}

TEST_CASE("State file: a rule no longer configured resolves its open alert", "[state]")
{
    Stages s;
    auto ctx = s.ctx;
    ctx.detect.rules[0].name = "bulk-renamed";
    auto d = state_file::decode(s.encode(), ctx, kT0 + 1000, kBoot);
    auto recs = d.detector.evaluate(d.aggregator, kT0 + 1000, 1'800'000'001'000ull);
    bool resolved = false;
    for (auto &r : recs)
        if (r.state == detect::AlertState::resolved && r.id == s.alert_id)
            resolved = true;
    CHECK(resolved);
}

TEST_CASE("State file: corrupt and stale files are refused with a reason", "[state]")
{
    Stages s;
    const std::string good = s.encode();
    auto refused = [&](const std::string &bytes, uint64_t now, const std::string &boot,
                       const StateContext &ctx) -> std::string {
        try {
            state_file::decode(bytes, ctx, now, boot);
        } catch (const Error &e) {
            return e.what();
        }
        return "";
    };
    auto why = [&](const std::string &bytes) { return refused(bytes, kT0 + 1000, kBoot, s.ctx); };
    CHECK(why("") == "not an exfilmon state file");
    CHECK(why("garbage that is long enough to hold a header, but is not one") ==
          "not an exfilmon state file");
    CHECK(why(good.substr(0, good.size() / 2)).find("truncated") == 0);
    std::string flipped = good;
    flipped[flipped.size() - 7] ^= 0x20;
    CHECK(why(flipped) == "checksum mismatch (corrupt)");
    std::string version = good;
    version[8] = 99;
    CHECK(why(version).find("state file version 99") == 0);
    // A file of an older version (version 2: cells without requests) is
    // refused as a whole: the daemon starts its windows over.
    version[8] = 2;
    CHECK(why(version) == "state file version 2 (an older exfilmon's), this build reads 3");
    CHECK(refused(good, kT0 + 1000, "another-boot", s.ctx).find("another boot") !=
          std::string::npos);
    CHECK(refused(good, kT0 + 1000, "", s.ctx).find("another boot") != std::string::npos);
    CHECK(refused(good, kT0 - 1, kBoot, s.ctx).find("future") != std::string::npos);
    CHECK(refused(good, kT0 + 10 * kMin + 1, kBoot, s.ctx).find("too old") == 0);
    auto other = s.ctx;
    other.owner = "/tmp/other.toml";
    CHECK(refused(good, kT0 + 1000, kBoot, other).find("another configuration file") !=
          std::string::npos);

    // Random damage anywhere behind a recomputed checksum (a bug, not a disk
    // error): refused or read, never a crash.
    std::mt19937 rng(17);
    for (int i = 0; i < 300; i++) {
        std::string bytes = good;
        for (int k = 0; k < 4; k++)
            bytes[32 + rng() % (bytes.size() - 32)] = char(rng());
        uint64_t sum = hash_bytes(bytes.data() + 32, bytes.size() - 32);
        std::memcpy(bytes.data() + 24, &sum, 8);
        try {
            state_file::decode(bytes, s.ctx, kT0 + 1000, kBoot);
        } catch (const Error &) {}
    }
}

TEST_CASE("State file written atomically: no temp file left, 0600", "[state]")
{
    auto dir = std::filesystem::temp_directory_path() / ("exf-state-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    auto path = (dir / "state.bin").string();
    state_file::write_atomically(path, {"first"});
    state_file::write_atomically(path, {"sec", "ond"});
    std::ifstream f(path);
    std::string text((std::istreambuf_iterator<char>(f)), {});
    CHECK(text == "second");
    CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
    auto perms = std::filesystem::status(path).permissions();
    CHECK((perms & std::filesystem::perms::group_all) == std::filesystem::perms::none);
    CHECK((perms & std::filesystem::perms::others_all) == std::filesystem::perms::none);
    CHECK_THROWS_AS(state_file::write_atomically((dir / "missing" / "state.bin").string(), {"x"}),
                    Error);
    std::filesystem::remove_all(dir);
}
