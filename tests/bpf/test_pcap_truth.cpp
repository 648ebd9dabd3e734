// SPDX-License-Identifier: Apache-2.0
// Every shared third-party capture (../shared/pcaps) replayed through the real
// tc program, packet by packet with its capture time, and the kernel's TLS/QUIC
// flows and per-client totals compared exactly with truth_flows.csv and
// truth_per_client.csv (see ../shared/pcaps/README.md, "Per-client TLS flow
// and byte truth", for the counting rules).
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "common/error.h"
#include "support/packet_builder.h"
#include "support/replay.h"
#include "support/test_env.h"

namespace fs = std::filesystem;
using exf::test::ClientCount;
using exf::test::FlowCount;
using exf::test::ReplayResult;

namespace {

uint64_t num(const std::map<std::string, std::string> &row, const char *col)
{
    auto it = row.find(col);
    if (it == row.end())
        throw exf::Error(std::string("truth CSV has no column ") + col);
    return std::stoull(it->second);
}

struct Truth {
    std::map<std::string, std::vector<FlowCount>> flows;      // by capture
    std::map<std::string, std::vector<ClientCount>> clients;  // by capture
    std::map<std::string, std::string> excluded;              // capture -> reason
};

Truth load_truth(const fs::path &dir)
{
    Truth t;
    for (auto &r : exf::test::read_csv(dir / "truth_flows.csv")) {
        FlowCount f;
        f.transport = r.at("transport");
        f.client = r.at("client");
        f.client_port = uint16_t(num(r, "client_port"));
        f.server = r.at("server");
        f.server_port = uint16_t(num(r, "server_port"));
        f.packets_in = num(r, "packets_in");
        f.packets_out = num(r, "packets_out");
        f.bytes_in = num(r, "bytes_in");
        f.bytes_out = num(r, "bytes_out");
        t.flows[r.at("file")].push_back(f);
    }
    for (auto &r : exf::test::read_csv(dir / "truth_per_client.csv")) {
        ClientCount c;
        c.client = r.at("client");
        c.tls_flows = num(r, "tls_flows");
        c.packets_in = num(r, "packets_in");
        c.packets_out = num(r, "packets_out");
        c.bytes_in = num(r, "bytes_in");
        c.bytes_out = num(r, "bytes_out");
        t.clients[r.at("file")].push_back(c);
    }
    for (auto &r : exf::test::read_csv(dir / "truth_excluded.csv"))
        t.excluded[r.at("file")] = r.at("reason");
    return t;
}

struct Replays {
    std::vector<std::string> captures;
    std::map<std::string, ReplayResult> results;
    double seconds = 0;
};

// All captures replayed once per test process, on one sensor whose maps are
// emptied between captures (a load per capture would take ~30 s of verifier).
const Replays &replay_all(const fs::path &dir)
{
    static Replays r = [&dir] {
        Replays out;
        auto t0 = std::chrono::steady_clock::now();
        out.captures = exf::test::find_captures(dir);
        exf::SensorOptions opts;
        opts.packet_time = true;
        opts.flow_table_size = 65536;  // ample: the busiest capture has a few hundred flows
        opts.client_table_size = 16384;
        exf::test::ReplaySession session(opts);
        for (const auto &c : out.captures)
            out.results.emplace(c, session.replay(dir / c));
        out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        return out;
    }();
    return r;
}

std::string join(const std::vector<std::string> &lines)
{
    std::ostringstream s;
    for (const auto &l : lines)
        s << l << "\n";
    return s.str();
}

// Compare two lists of rows keyed by a string; rows sharing a key (a 5-tuple
// reused by several connections) are compared in order.
template <typename Row, typename KeyFn>
void compare(const std::string &file, const std::vector<Row> &truth, const std::vector<Row> &kernel,
             KeyFn key, std::vector<std::string> &mismatches, size_t &compared)
{
    std::map<std::string, std::pair<std::vector<const Row *>, std::vector<const Row *>>> by_key;
    for (const auto &r : truth)
        by_key[key(r)].first.push_back(&r);
    for (const auto &r : kernel)
        by_key[key(r)].second.push_back(&r);
    for (const auto &[k, rows] : by_key) {
        const auto &[t, g] = rows;
        for (size_t i = 0; i < std::max(t.size(), g.size()); i++) {
            compared++;
            std::string where = file + " " + k;
            if (t.size() > 1 || g.size() > 1)
                where += " #" + std::to_string(i + 1);
            if (i >= g.size())
                mismatches.push_back(where + ": truth " + t[i]->counters() + ", kernel: none");
            else if (i >= t.size())
                mismatches.push_back(where + ": not in truth, kernel " + g[i]->counters());
            else if (!t[i]->same_counts(*g[i]))
                mismatches.push_back(where + ": truth " + t[i]->counters() + ", kernel " +
                                     g[i]->counters());
        }
    }
}

}  // namespace

TEST_CASE("shared captures found on disk are exactly those listed in INVENTORY.csv", "[bpf][pcap]")
{
    fs::path dir = exf::test::shared_pcaps();
    if (dir.empty())
        return;
    std::set<std::string> listed;
    for (auto &r : exf::test::read_csv(dir / "INVENTORY.csv"))
        listed.insert(r.at("path"));
    auto found_list = exf::test::find_captures(dir);
    std::set<std::string> found(found_list.begin(), found_list.end());
    std::vector<std::string> missing, unlisted;
    for (const auto &p : listed)
        if (!found.count(p))
            missing.push_back("listed in INVENTORY.csv, not found: " + p);
    for (const auto &p : found)
        if (!listed.count(p))
            unlisted.push_back("found, not in INVENTORY.csv: " + p);
    INFO(join(missing) << join(unlisted));
    CHECK(missing.empty());
    CHECK(unlisted.empty());
    CHECK(found.size() == listed.size());

    // Every capture the truth names is in the inventory.
    Truth truth = load_truth(dir);
    std::vector<std::string> unknown;
    for (const auto &[file, rows] : truth.flows)
        if (!listed.count(file))
            unknown.push_back("truth_flows.csv names " + file);
    for (const auto &[file, rows] : truth.clients)
        if (!listed.count(file))
            unknown.push_back("truth_per_client.csv names " + file);
    for (const auto &[file, why] : truth.excluded)
        if (!listed.count(file))
            unknown.push_back("truth_excluded.csv names " + file);
    INFO(join(unknown));
    CHECK(unknown.empty());
}

TEST_CASE("every shared capture replays through the BPF program without errors", "[bpf][pcap]")
{
    if (!exf::test::require_root())
        return;
    fs::path dir = exf::test::shared_pcaps();
    if (dir.empty())
        return;
    const Replays &all = replay_all(dir);
    REQUIRE(!all.captures.empty());
    std::vector<std::string> problems;
    uint64_t packets = 0, cut = 0;
    for (const auto &[file, res] : all.results) {
        packets += res.packets;
        cut += res.cut_frames;
        if (!res.read_error.empty())
            problems.push_back(file + ": " + res.read_error);
        if (!res.run_error.empty())
            problems.push_back(file + ": " + res.run_error);
        if (res.skipped)
            problems.push_back(file + ": " + std::to_string(res.skipped) +
                               " frames too short to replay");
        for (unsigned c : {EXF_C_FLOW_UPDATE_FAIL, EXF_C_CLIENT_UPDATE_FAIL, EXF_C_RB_FULL,
                           EXF_C_LOAD_FAIL, EXF_C_PULL_FAIL})
            if (res.health[c])
                problems.push_back(file + ": health counter " + std::string(exf::counter_name(c)) +
                                   " = " + std::to_string(res.health[c]));
        if (res.health[EXF_C_PACKETS] != res.packets)
            problems.push_back(file + ": program counted " +
                               std::to_string(res.health[EXF_C_PACKETS]) + " packets of " +
                               std::to_string(res.packets));
    }
    INFO(all.captures.size() << " captures, " << packets << " packets (" << cut
                             << " cut to the test-run limit) in " << all.seconds << " s\n"
                             << join(problems));
    CHECK(packets > 0);
    REQUIRE(problems.empty());
}

// Compares one kind of row (flows or clients) of every replayed capture with
// its truth file; also flags truth rows of captures that were not replayed.
template <typename Row, typename Rows, typename Key>
void check_against_truth(const std::map<std::string, std::vector<Row>> &truth_rows,
                         const Truth &truth, const Replays &all, Rows rows_of, Key key,
                         const std::string &what, const std::string &legend)
{
    std::vector<std::string> mismatches;
    size_t compared = 0, total = 0;
    for (const auto &[file, res] : all.results) {
        if (truth.excluded.count(file)) {
            // No truth for it: it must not have rows either.
            CHECK(truth_rows.count(file) == 0);
            continue;
        }
        const auto &t = truth_rows.count(file) ? truth_rows.at(file) : std::vector<Row>{};
        total += t.size();
        compare(file, t, rows_of(res), key, mismatches, compared);
    }
    for (const auto &[file, rows] : truth_rows)
        if (!all.results.count(file))
            mismatches.push_back(file + ": " + std::to_string(rows.size()) + " truth " + what +
                                 ", capture not found");
    INFO(mismatches.size() << " mismatching " << what << " of " << compared << " compared" << legend
                           << ":\n"
                           << join(mismatches));
    CHECK(total > 0);
    REQUIRE(mismatches.empty());
}

TEST_CASE("kernel per-flow TLS/QUIC packets and bytes match truth_flows.csv for every "
          "shared capture",
          "[bpf][pcap]")
{
    if (!exf::test::require_root())
        return;
    fs::path dir = exf::test::shared_pcaps();
    if (dir.empty())
        return;
    Truth truth = load_truth(dir);
    check_against_truth(
        truth.flows, truth, replay_all(dir), [](const auto &res) { return res.flows; },
        [](const FlowCount &f) { return f.endpoints(); }, "flows",
        " (in/out = client->server/server->client)");
}

TEST_CASE("kernel per-client TLS flows, packets and bytes match truth_per_client.csv for "
          "every shared capture",
          "[bpf][pcap]")
{
    if (!exf::test::require_root())
        return;
    fs::path dir = exf::test::shared_pcaps();
    if (dir.empty())
        return;
    Truth truth = load_truth(dir);
    check_against_truth(
        truth.clients, truth, replay_all(dir), [](const auto &res) { return res.clients; },
        [](const ClientCount &c) { return c.client; }, "clients", "");
}

// The shared captures never reuse a 5-tuple (no EXF_END_REUSE event in any of
// them), so this checks the replay's reading of flow-end events on a capture
// written here: two TLS connections on one 5-tuple, the second SYN with a new
// ISN after the first closed with FIN.
TEST_CASE("replay counts a TLS flow ended by a 5-tuple reuse from its flow-end event",
          "[bpf][pcap]")
{
    if (!exf::test::require_root())
        return;
    using exf::test::build_frame;
    using exf::test::FrameSpec;
    namespace tf = exf::test;
    std::string tmpl = (fs::temp_directory_path() / "exf-reuse-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    fs::path tmp = tmpl;

    std::vector<tf::TimedFrame> frames;
    FlowCount first{"tcp", "192.0.2.10", 40000, "198.51.100.1", 443, 0, 0, 0, 0};
    FlowCount second = first;
    uint64_t ts = 1700000000000000000ull;
    auto add = [&](FlowCount &fc, bool from_client, uint8_t flags, uint32_t seq, uint32_t ack,
                   tf::Bytes payload = {}) {
        FrameSpec s;
        if (!from_client) {
            std::swap(s.src, s.dst);
            std::swap(s.sport, s.dport);
        }
        s.tcp_flags = flags;
        s.seq = seq;
        s.ack = ack;
        s.payload = std::move(payload);
        tf::Bytes f = build_frame(s);
        (from_client ? fc.packets_in : fc.packets_out)++;
        (from_client ? fc.bytes_in : fc.bytes_out) += f.size() - 14;
        frames.emplace_back(ts += 1000000, std::move(f));
    };
    using tf::ACK, tf::FIN, tf::PSH, tf::SYN;
    const tf::Bytes hello = tf::client_hello(300);
    add(first, true, SYN, 1000, 0);
    add(first, false, SYN | ACK, 5000, 1001);
    add(first, true, ACK, 1001, 5001);
    add(first, true, PSH | ACK, 1001, 5001, hello);
    add(first, false, PSH | ACK, 5001, 1301, tf::Bytes(1200, 0x17));
    add(first, true, FIN | ACK, 1301, 6201);
    add(first, false, FIN | ACK, 6201, 1302);
    add(first, true, ACK, 1302, 6202);
    add(second, true, SYN, 90000, 0);
    add(second, false, SYN | ACK, 70000, 90001);
    add(second, true, ACK, 90001, 70001);
    add(second, true, PSH | ACK, 90001, 70001, hello);
    tf::write_pcap(tmp / "reuse.pcap", frames);

    exf::SensorOptions opts;
    ReplayResult res = tf::replay_capture(tmp / "reuse.pcap", opts);
    fs::remove_all(tmp);

    CHECK(res.read_error.empty());
    CHECK(res.run_error.empty());
    CHECK(res.packets == frames.size());
    CHECK(res.reuse_events == 1);
    CHECK(res.health[EXF_C_FLOW_REUSE] == 1);
    REQUIRE(res.flows.size() == 2);
    // The ended flow comes first (from its event), the live one from the table.
    CHECK(res.flows[0].endpoints() == first.endpoints());
    CHECK(res.flows[0].counters() == first.counters());
    CHECK(res.flows[1].endpoints() == second.endpoints());
    CHECK(res.flows[1].counters() == second.counters());
    REQUIRE(res.clients.size() == 1);
    CHECK(res.clients[0].client == "192.0.2.10");
    CHECK(res.clients[0].tls_flows == 2);
    CHECK(res.clients[0].packets_in == first.packets_in + second.packets_in);
    CHECK(res.clients[0].packets_out == first.packets_out + second.packets_out);
    CHECK(res.clients[0].bytes_in == first.bytes_in + second.bytes_in);
    CHECK(res.clients[0].bytes_out == first.bytes_out + second.bytes_out);
}
