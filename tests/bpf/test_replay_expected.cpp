// SPDX-License-Identifier: Apache-2.0
// `exfilmon replay --format json --flows` (the real binary, run without a
// shell) on every shared third-party capture (../shared/pcaps), compared
// with independently produced values (through --datapath user; the parity
// test case below shows --datapath bpf byte-identical):
//   * per client and per flow: truth_per_client.csv and truth_flows.csv;
//   * SNI and JA4 of TCP and QUIC flows: foxio-ja4/expected.csv (FoxIO's
//     Rust tool; QUIC rows are its "udp" ones), ndpi/expected.csv (rows whose
//     SNI is tshark's and that have a ja4_reference), suricata-verify/
//     expected.csv (tls checks: sni, ja4, tls_version, client ALPNs; quic
//     checks: sni, ja4, client ALPNs). QUIC flows get theirs from the client
//     Initials (tls/quic_initial.h): v1, v2, drafts 23 to 34, mvfst and
//     Google's T051 appear in the captures; every QUIC flow of the truth has
//     a JA4;
//   * the nDPI QUIC rows on ports that are not TLS ports by default (4443,
//     and DNS over QUIC on 784) have no flow under the default counting
//     rules; a test case below replays those captures with those ports
//     configured and compares them too.
// Then: the JSON output of --datapath bpf and --datapath user byte-identical
// on every eighth capture and on a capture built here (the datapath parity
// tests compare what that JSON is made of on every capture); truncated and corrupt
// captures (partial output, the error, exit 1); missing files and bad options
// (exit 2); attacker-controlled SNI/ALPN bytes still give valid JSON.
//
// Known exceptions (narrow; each is checked from the capture's own bytes
// here, and each listed one must occur):
//   * an expected row for a flow that is not a TLS flow under exfilmon's
//     counting rules (truth_flows.csv has no such flow: tunnelled traffic is
//     counted at the outer layer only; HTTP CONNECT, SOCKS or STARTTLS flows
//     whose first client payload is not a ClientHello, on ports other than
//     443/8443): exfilmon has no flow, so no SNI or JA4, to compare;
//   * kKnown (currently empty), for a flow whose ClientHello exfilmon cannot
//     fingerprint: Why::malformed, a hello the parser reports malformed (the
//     anomaly is checked by parsing the client's first payload here), or
//     Why::beyond_capture, a hello longer than the EXF_HELLO_MAX bytes the
//     kernel hands to userspace by design (shown by its own length fields).
// The four fuzzed ClientHellos whose inner lengths contradict the message
// (ndpi/tls_cipher_lens.pcap ports 51589-51591, ndpi/tls_invalid_reads.pcap
// port 3967) are not exceptions: the parser applies the tolerance rule in
// tls/client_hello.h (Wireshark's, which the reference JA4s come from), so
// they match the references, and each still carries its length anomaly
// (checked in its own test case below).
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "capture/pcap_reader.h"
#include "capture/shared_layout.h"
#include "common/addr.h"
#include "support/packet_builder.h"
#include "support/proc.h"
#include "support/replay.h"
#include "support/test_env.h"
#include "support/tls_builder.h"
#include "tls/client_hello.h"
#include "tls/ja4.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using exf::test::ProcResult;
using Row = std::map<std::string, std::string>;

namespace {

std::string join(const std::vector<std::string> &lines, size_t max = 200)
{
    std::ostringstream s;
    for (size_t i = 0; i < lines.size() && i < max; i++)
        s << lines[i] << "\n";
    if (lines.size() > max)
        s << "... and " << lines.size() - max << " more\n";
    return s.str();
}

std::string norm_addr(const std::string &a)
{
    auto p = exf::parse_addr(a);
    return p ? exf::format_addr(*p) : "bad-address(" + a + ")";
}

std::string endpoint(const std::string &a, uint64_t port)
{
    return (a.find(':') != std::string::npos ? "[" + a + "]" : a) + ":" + std::to_string(port);
}

std::string tuple_key(const std::string &transport, const std::string &client, uint64_t cport,
                      const std::string &server, uint64_t sport)
{
    return transport + " " + endpoint(norm_addr(client), cport) + " -> " +
           endpoint(norm_addr(server), sport);
}

ProcResult replay(const fs::path &capture, const std::string &datapath,
                  const std::string &format = "json")
{
    return exf::test::run_program({exf::test::exfilmon_binary().string(), "replay", "--format",
                                   format, "--flows", "--datapath", datapath, capture.string()});
}

// One replay's stdout, parsed. Every line must be a JSON object with the
// contract's fields and types.
struct Output {
    std::vector<json> clients, flows, ja4s;
    size_t alerts = 0;
    std::vector<std::string> errors;
};

const char *const kClientFields[] = {"type",      "client",     "tls_flows",   "bytes_in",
                                     "bytes_out", "packets_in", "packets_out", "sni",
                                     "entity",    "requests"};
const char *const kJa4Fields[] = {
    "type", "ja4",    "tls_flows", "bytes_in", "bytes_out", "distinct_clients", "distinct_subnets",
    "sni",  "clients"};
const char *const kFlowFields[] = {"type",        "client",      "client_port", "server",
                                   "server_port", "transport",   "sni",         "alpn",
                                   "tls_version", "ja4",         "bytes_in",    "bytes_out",
                                   "packets_in",  "packets_out", "requests"};

Output parse_output(const std::string &text)
{
    Output o;
    std::istringstream in(text);
    std::string line;
    size_t n = 0;
    while (std::getline(in, line)) {
        n++;
        json j;
        try {
            j = json::parse(line);  // strict: rejects invalid UTF-8
        } catch (const std::exception &e) {
            o.errors.push_back("line " + std::to_string(n) + ": not JSON: " + e.what());
            continue;
        }
        if (!j.is_object() || !j.contains("type")) {
            o.errors.push_back("line " + std::to_string(n) + ": no type");
            continue;
        }
        std::vector<std::string> names;
        for (auto it = j.begin(); it != j.end(); ++it)
            names.push_back(it.key());
        std::vector<std::string> want;
        if (j["type"] == "client") {
            want.assign(std::begin(kClientFields), std::end(kClientFields));
            o.clients.push_back(j);
        } else if (j["type"] == "flow") {
            want.assign(std::begin(kFlowFields), std::end(kFlowFields));
            o.flows.push_back(j);
        } else if (j["type"] == "ja4") {
            want.assign(std::begin(kJa4Fields), std::end(kJa4Fields));
            o.ja4s.push_back(j);
        } else if (j["type"] == "alert") {
            // Detection (the built-in rules fire on some browser captures):
            // printed as raised, before the report.
            if (!o.clients.empty() || !o.flows.empty())
                o.errors.push_back("line " + std::to_string(n) + ": alert after the report");
            for (auto *k : {"@timestamp", "event", "rule", "host", "exfilmon", "message"})
                if (!j.contains(k))
                    o.errors.push_back("line " + std::to_string(n) + ": alert without " + k);
            o.alerts++;
            continue;
        } else {
            o.errors.push_back("line " + std::to_string(n) + ": unexpected type " +
                               j["type"].dump());
            continue;
        }
        std::sort(names.begin(), names.end());
        std::sort(want.begin(), want.end());
        if (names != want)
            o.errors.push_back("line " + std::to_string(n) +
                               ": fields differ from the contract: " + line);
    }
    return o;
}

std::string str_or_empty(const json &v) { return v.is_string() ? v.get<std::string>() : ""; }
std::string shown(const json &v) { return v.is_null() ? "null" : v.dump(); }

// The shared captures replayed by the binary once per datapath per process:
// all of them, or every stride-th in name order.
struct Replays {
    std::vector<std::string> captures;
    std::map<std::string, ProcResult> results;
    double seconds = 0;
};

const Replays &replays(const fs::path &dir, const std::string &datapath, size_t stride = 1)
{
    static std::map<std::pair<std::string, size_t>, Replays> cache;
    auto it = cache.find({datapath, stride});
    if (it != cache.end())
        return it->second;
    Replays r;
    auto t0 = std::chrono::steady_clock::now();
    auto all = exf::test::find_captures(dir);
    for (size_t i = 0; i < all.size(); i += stride)
        r.captures.push_back(all[i]);
    for (const auto &c : r.captures)
        r.results.emplace(c, replay(dir / c, datapath));
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return cache.emplace(std::make_pair(datapath, stride), std::move(r)).first->second;
}

// The client's first TCP payload of a flow, straight from the capture
// (Ethernet, VLAN tags, IPv4 or IPv6 without extension headers).
std::optional<std::vector<uint8_t>> first_client_payload(const fs::path &capture,
                                                         const std::string &client, uint16_t cport,
                                                         const std::string &server, uint16_t sport)
{
    const auto c = exf::parse_addr(client), s = exf::parse_addr(server);
    if (!c || !s)
        return std::nullopt;
    exf::PcapReader reader(capture.string());
    exf::Packet p;
    while (reader.next(p)) {
        const auto &f = p.frame;
        size_t off = 12;
        if (f.size() < 14)
            continue;
        uint16_t et = uint16_t(f[off] << 8 | f[off + 1]);
        off += 2;
        while ((et == 0x8100 || et == 0x88a8) && f.size() >= off + 4) {
            et = uint16_t(f[off + 2] << 8 | f[off + 3]);
            off += 4;
        }
        exf::Addr16 src{}, dst{};
        size_t l4 = 0, end = 0;
        if (et == 0x0800 && f.size() >= off + 20) {
            size_t ihl = size_t(f[off] & 15) * 4;
            if (f[off + 9] != 6 || f.size() < off + ihl)
                continue;
            src[10] = src[11] = dst[10] = dst[11] = 0xff;
            std::memcpy(&src[12], &f[off + 12], 4);
            std::memcpy(&dst[12], &f[off + 16], 4);
            l4 = off + ihl;
            end = std::min(f.size(), off + size_t(f[off + 2] << 8 | f[off + 3]));
        } else if (et == 0x86dd && f.size() >= off + 40) {
            if (f[off + 6] != 6)
                continue;
            std::memcpy(src.data(), &f[off + 8], 16);
            std::memcpy(dst.data(), &f[off + 24], 16);
            l4 = off + 40;
            end = std::min(f.size(), l4 + size_t(f[off + 4] << 8 | f[off + 5]));
        } else {
            continue;
        }
        if (end < l4 + 20 || src != *c || dst != *s)
            continue;
        uint16_t sp = uint16_t(f[l4] << 8 | f[l4 + 1]), dp = uint16_t(f[l4 + 2] << 8 | f[l4 + 3]);
        size_t doff = size_t(f[l4 + 12] >> 4) * 4;
        if (sp != cport || dp != sport || end <= l4 + doff)
            continue;
        return std::vector<uint8_t>(f.begin() + long(l4 + doff), f.begin() + long(end));
    }
    return std::nullopt;
}

enum class Why { malformed, beyond_capture };

struct KnownException {
    const char *file;
    uint16_t client_port;
    Why why;
    const char *anomaly;  // malformed: the parser's anomaly on the client's first payload
};

// See the file comment. Each is verified against the capture's bytes.
const std::vector<KnownException> kKnown{};

// Expected data for one capture's flows.
struct Ours {
    std::map<std::string, std::vector<const json *>> by_tuple;  // in output order (first seen)
};

Ours index_flows(const Output &o)
{
    Ours r;
    for (const auto &f : o.flows)
        r.by_tuple[tuple_key(f["transport"].get<std::string>(), f["client"].get<std::string>(),
                             f["client_port"].get<uint64_t>(), f["server"].get<std::string>(),
                             f["server_port"].get<uint64_t>())]
            .push_back(&f);
    return r;
}

class Checker {
public:
    Checker(fs::path dir, const Replays &r) : dir_(std::move(dir)), r_(r)
    {
        for (const auto &[file, res] : r_.results)
            out_.emplace(file, parse_output(res.out));
        for (const auto &[file, o] : out_)
            ours_.emplace(file, index_flows(o));
        for (auto &row : exf::test::read_csv(dir_ / "truth_flows.csv"))
            truth_flows_[row.at("file")].push_back(row);
        for (auto &row : exf::test::read_csv(dir_ / "truth_per_client.csv"))
            truth_clients_[row.at("file")].push_back(row);
        for (auto &row : exf::test::read_csv(dir_ / "truth_excluded.csv"))
            excluded_.insert(row.at("file"));
        for (const auto &[file, rows] : truth_flows_)
            for (const auto &t : rows)
                truth_tuples_[file].insert(
                    tuple_key(t.at("transport"), t.at("client"), std::stoull(t.at("client_port")),
                              t.at("server"), std::stoull(t.at("server_port"))));
    }

    const Output *output(const std::string &file) const
    {
        auto it = out_.find(file);
        return it == out_.end() ? nullptr : &it->second;
    }
    bool excluded(const std::string &file) const { return excluded_.count(file) > 0; }
    const std::map<std::string, std::vector<Row>> &truth_flows() const { return truth_flows_; }
    const std::map<std::string, std::vector<Row>> &truth_clients() const { return truth_clients_; }

    std::vector<const json *> flows(const std::string &file, const std::string &tuple) const
    {
        auto it = ours_.find(file);
        if (it == ours_.end())
            return {};
        auto f = it->second.by_tuple.find(tuple);
        return f == it->second.by_tuple.end() ? std::vector<const json *>{} : f->second;
    }
    bool truth_has(const std::string &file, const std::string &tuple) const
    {
        auto it = truth_tuples_.find(file);
        return it != truth_tuples_.end() && it->second.count(tuple);
    }

    // A known exception for this flow, verified against the capture's bytes:
    // empty if none applies; otherwise the reason, or "UNVERIFIED: ..." if
    // the capture does not show it.
    std::string known_exception(const std::string &file, const std::string &client, uint16_t cport,
                                const std::string &server, uint16_t sport)
    {
        for (const auto &k : kKnown) {
            if (file != k.file || cport != k.client_port)
                continue;
            used_.insert(std::string(k.file) + ":" + std::to_string(k.client_port));
            auto payload = first_client_payload(dir_ / file, client, cport, server, sport);
            if (!payload)
                return "UNVERIFIED: no client payload found in the capture";
            exf::tls::ClientHello h;
            auto r = exf::tls::parse_client_hello_record(*payload, h);
            if (k.why == Why::malformed) {
                if (r.malformed() && exf::tls::to_string(r.anomaly) == k.anomaly)
                    return std::string("malformed ClientHello (") + k.anomaly + ")";
                return "UNVERIFIED: the first payload parses as " +
                       std::string(exf::tls::to_string(r.status)) + "/" +
                       std::string(exf::tls::to_string(r.anomaly));
            }
            if (r.need_more() && r.needed > EXF_HELLO_MAX)
                return "ClientHello of at least " + std::to_string(r.needed) +
                       " bytes, beyond the kernel's " + std::to_string(EXF_HELLO_MAX);
            return "UNVERIFIED: the first payload parses as " +
                   std::string(exf::tls::to_string(r.status)) + ", needs " +
                   std::to_string(r.needed);
        }
        return {};
    }
    std::vector<std::string> unused_exceptions() const
    {
        std::vector<std::string> out;
        for (const auto &k : kKnown) {
            std::string id = std::string(k.file) + ":" + std::to_string(k.client_port);
            if (!used_.count(id))
                out.push_back("known exception never met: " + id);
        }
        return out;
    }

private:
    fs::path dir_;
    const Replays &r_;
    std::map<std::string, Output> out_;
    std::map<std::string, Ours> ours_;
    std::map<std::string, std::vector<Row>> truth_flows_, truth_clients_;
    std::map<std::string, std::set<std::string>> truth_tuples_;
    std::set<std::string> excluded_;
    std::set<std::string> used_;
};

// Compares SNI and JA4 of one expected row with the flow(s) of its tuple.
struct Tally {
    size_t rows = 0, sni = 0, ja4 = 0, not_tls = 0, exceptions = 0;
    std::vector<std::string> mismatches, notes;
};

void check_flow(Checker &ck, const std::string &source, const std::string &file,
                const std::string &client, uint16_t cport, const std::string &server,
                uint16_t sport, size_t nth, const std::string &want_sni,
                const std::string &want_ja4, const std::string &tunnel, Tally &t,
                const std::string &transport = "tcp")
{
    t.rows++;
    const std::string tuple = tuple_key(transport, client, cport, server, sport);
    const std::string where =
        source + " " + file + " " + tuple + (nth ? " #" + std::to_string(nth + 1) : "");
    auto fl = ck.flows(file, tuple);
    if (nth >= fl.size()) {
        // Not a TLS flow under the counting rules: the truth has none either.
        bool justified = ck.excluded(file) ? !tunnel.empty() : !ck.truth_has(file, tuple);
        if (justified && fl.empty()) {
            t.not_tls++;
            t.notes.push_back(where + ": not a TLS flow under the counting rules (" +
                              (tunnel.empty() ? "truth_flows.csv has no such flow"
                                              : "tunnelled in " + tunnel + ": outer layer only") +
                              ")");
        } else {
            t.mismatches.push_back(where + ": no such flow in the replay output");
        }
        return;
    }
    const json &f = *fl[nth];
    const std::string got_sni = str_or_empty(f["sni"]), got_ja4 = str_or_empty(f["ja4"]);
    const bool sni_ok = got_sni == want_sni && (!want_sni.empty() || f["sni"].is_null());
    const bool ja4_ok = want_ja4.empty() ? true : got_ja4 == want_ja4;
    if (sni_ok && ja4_ok) {
        t.sni++;
        if (!want_ja4.empty())
            t.ja4++;
        return;
    }
    std::string why = ck.known_exception(file, client, cport, server, sport);
    if (!why.empty() && why.rfind("UNVERIFIED", 0) != 0 && f["sni"].is_null() &&
        f["ja4"].is_null()) {
        t.exceptions++;
        t.notes.push_back(where + ": expected sni " + json(want_sni).dump() + " ja4 " + want_ja4 +
                          ", exfilmon has none: " + why);
        return;
    }
    t.mismatches.push_back(where + ": sni " + shown(f["sni"]) + " (expected " +
                           json(want_sni).dump() + "), ja4 " + shown(f["ja4"]) + " (expected " +
                           (want_ja4.empty() ? "-" : want_ja4) + ")" +
                           (why.empty() ? "" : "; " + why));
}

// Suricata's tls.version names the version the server chose ("TLS 1.3",
// "TLS 1.3 draft-28"); exfilmon's tls_version is the client's highest offer
// ("1.3", "1.3-draft-28"). In these captures the servers took the client's
// highest, so the names are compared after this conversion.
std::string suricata_version(std::string v)
{
    if (v.rfind("TLS ", 0) == 0)
        v.erase(0, 4);
    if (auto p = v.find(" draft-"); p != std::string::npos)
        v.replace(p, 7, "-draft-");
    if (v == "SSLv3")
        v = "ssl3";
    return v;
}

std::vector<std::string> split(const std::string &s, char sep)
{
    std::vector<std::string> out;
    std::string cur;
    std::istringstream in(s);
    while (std::getline(in, cur, sep))
        out.push_back(cur);
    return out;
}

}  // namespace

TEST_CASE("replay JSON matches the shared truth and the expected SNI and JA4 of every shared "
          "capture",
          "[pcap][replay]")
{
    // The datapath's userspace build: no root needed, and about 2 s instead
    // of 45 (a BPF load per capture). The parity tests prove the real BPF
    // program's (--datapath bpf) tables, events and counters identical on
    // every capture, and its JSON byte-identical on a sample (below), so
    // everything checked here holds for it too.
    const fs::path dir = exf::test::shared_pcaps();
    if (dir.empty())
        return;
    const Replays &all = replays(dir, "user");
    REQUIRE(all.captures.size() > 100);
    Checker ck(dir, all);

    // Every run: exit 0, valid JSON lines with the contract's fields.
    std::vector<std::string> run_problems;
    for (const auto &[file, res] : all.results) {
        if (res.status != 0)
            run_problems.push_back(file + ": exit " + std::to_string(res.status) + ": " + res.err);
        if (res.err.find("datapath user") == std::string::npos)
            run_problems.push_back(file + ": stderr does not name the datapath: " + res.err);
        for (const auto &e : ck.output(file)->errors)
            run_problems.push_back(file + ": " + e);
    }
    INFO(run_problems.size() << " problems running " << all.captures.size() << " captures ("
                             << all.seconds << " s):\n"
                             << join(run_problems));
    CHECK(run_problems.empty());

    // Per client: truth_per_client.csv.
    std::vector<std::string> client_mm;
    size_t clients_compared = 0;
    for (const auto &file : all.captures) {
        if (ck.excluded(file))
            continue;
        std::map<std::string, std::pair<const Row *, const json *>> by;
        if (auto it = ck.truth_clients().find(file); it != ck.truth_clients().end())
            for (const auto &t : it->second)
                by[norm_addr(t.at("client"))].first = &t;
        for (const auto &c : ck.output(file)->clients)
            by[c["client"].get<std::string>()].second = &c;
        for (const auto &[addr, p] : by) {
            clients_compared++;
            const auto &[t, o] = p;
            if (!t || !o) {
                client_mm.push_back(file + " " + addr +
                                    (t ? ": missing from the output" : ": not in the truth"));
                continue;
            }
            for (const char *fld :
                 {"tls_flows", "packets_in", "packets_out", "bytes_in", "bytes_out"})
                if ((*o)[fld].get<uint64_t>() != std::stoull(t->at(fld)))
                    client_mm.push_back(file + " " + addr + ": " + fld + " " + (*o)[fld].dump() +
                                        ", truth " + t->at(fld));
        }
    }
    INFO(client_mm.size() << " client mismatches of " << clients_compared << " compared:\n"
                          << join(client_mm));
    CHECK(clients_compared >= 124);
    CHECK(client_mm.empty());

    // Per flow: truth_flows.csv (rows sharing a 5-tuple paired in order),
    // and every TCP flow whose first payload is a ClientHello has its JA4.
    std::vector<std::string> flow_mm;
    size_t flows_compared = 0, hellos_expected = 0, hellos_found = 0, hello_exceptions = 0;
    size_t quic_expected = 0, quic_found = 0;
    for (const auto &file : all.captures) {
        if (ck.excluded(file))
            continue;
        std::map<std::string, std::pair<std::vector<const Row *>, std::vector<const json *>>> by;
        if (auto it = ck.truth_flows().find(file); it != ck.truth_flows().end())
            for (const auto &t : it->second)
                by[tuple_key(t.at("transport"), t.at("client"), std::stoull(t.at("client_port")),
                             t.at("server"), std::stoull(t.at("server_port")))]
                    .first.push_back(&t);
        for (const auto &f : ck.output(file)->flows)
            by[tuple_key(f["transport"].get<std::string>(), f["client"].get<std::string>(),
                         f["client_port"].get<uint64_t>(), f["server"].get<std::string>(),
                         f["server_port"].get<uint64_t>())]
                .second.push_back(&f);
        for (const auto &[tuple, p] : by) {
            const auto &[t, o] = p;
            for (size_t i = 0; i < std::max(t.size(), o.size()); i++) {
                flows_compared++;
                std::string where =
                    file + " " + tuple +
                    (t.size() > 1 || o.size() > 1 ? " #" + std::to_string(i + 1) : "");
                if (i >= o.size()) {
                    flow_mm.push_back(where + ": missing from the output");
                    continue;
                }
                if (i >= t.size()) {
                    flow_mm.push_back(where + ": not in the truth");
                    continue;
                }
                const Row &tr = *t[i];
                const json &of = *o[i];
                for (const char *fld : {"packets_in", "packets_out", "bytes_in", "bytes_out"})
                    if (of[fld].get<uint64_t>() != std::stoull(tr.at(fld)))
                        flow_mm.push_back(where + ": " + fld + " " + of[fld].dump() + ", truth " +
                                          tr.at(fld));
                if (tr.at("transport") == "quic") {
                    // Every QUIC flow of the shared captures has a
                    // decryptable ClientHello in its first client datagrams.
                    quic_expected++;
                    if (of["ja4"].is_string() && of["tls_version"].is_string() &&
                        of["alpn"].is_array())
                        quic_found++;
                    else
                        flow_mm.push_back(where + ": QUIC flow without a JA4 in the output");
                }
                if (tr.at("transport") == "tcp" && tr.at("first_payload_clienthello") == "1") {
                    hellos_expected++;
                    if (of["ja4"].is_string() && of["tls_version"].is_string() &&
                        of["alpn"].is_array()) {
                        hellos_found++;
                    } else {
                        std::string why = ck.known_exception(
                            file, tr.at("client"), uint16_t(std::stoul(tr.at("client_port"))),
                            tr.at("server"), uint16_t(std::stoul(tr.at("server_port"))));
                        if (!why.empty() && why.rfind("UNVERIFIED", 0) != 0)
                            hello_exceptions++;
                        else
                            flow_mm.push_back(
                                where + ": first payload is a ClientHello, no JA4 in the output" +
                                (why.empty() ? "" : ": " + why));
                    }
                }
            }
        }
    }
    INFO(flow_mm.size() << " flow mismatches of " << flows_compared << " compared:\n"
                        << join(flow_mm));
    CHECK(flows_compared >= 1176);
    CHECK(flow_mm.empty());

    // SNI and JA4: foxio-ja4/expected.csv (the Rust tool's snapshot).
    Tally foxio, foxio_q;
    {
        std::map<std::string, size_t> seen;
        for (const auto &r : exf::test::read_csv(dir / "foxio-ja4/expected.csv")) {
            const std::string transport = r.at("transport") == "udp" ? "quic" : "tcp";
            const std::string file = "foxio-ja4/" + r.at("file");
            const std::string tuple =
                tuple_key(transport, r.at("client_ip"), std::stoull(r.at("client_port")),
                          r.at("server_ip"), std::stoull(r.at("server_port")));
            check_flow(ck, "foxio", file, r.at("client_ip"),
                       uint16_t(std::stoul(r.at("client_port"))), r.at("server_ip"),
                       uint16_t(std::stoul(r.at("server_port"))), seen[file + tuple]++, r.at("sni"),
                       r.at("ja4"), "", transport == "quic" ? foxio_q : foxio, transport);
        }
    }
    // ndpi/expected.csv: rows whose SNI is tshark's and with a ja4_reference
    // (TCP, and UDP: QUIC).
    Tally ndpi, ndpi_q;
    size_t ndpi_other = 0, ndpi_quic_other = 0;
    {
        std::map<std::string, size_t> seen;
        for (const auto &r : exf::test::read_csv(dir / "ndpi/expected.csv")) {
            const bool quic = r.at("transport") != "TCP";
            if (r.at("sni_basis").rfind("tshark", 0) != 0 || r.at("ja4_reference").empty()) {
                (quic ? ndpi_quic_other : ndpi_other)++;
                continue;
            }
            const std::string transport = quic ? "quic" : "tcp";
            const std::string file = "ndpi/" + r.at("file");
            const std::string tuple =
                tuple_key(transport, r.at("client_ip"), std::stoull(r.at("client_port")),
                          r.at("server_ip"), std::stoull(r.at("server_port")));
            check_flow(ck, "ndpi", file, r.at("client_ip"),
                       uint16_t(std::stoul(r.at("client_port"))), r.at("server_ip"),
                       uint16_t(std::stoul(r.at("server_port"))), seen[file + tuple]++, r.at("sni"),
                       r.at("ja4_reference"), r.at("tunnel"), quic ? ndpi_q : ndpi, transport);
        }
    }
    // suricata-verify/expected.csv: tls and quic checks. A check counts
    // matching events: with every asserted field evaluated here the number of
    // matching flows must equal `count`; a check that also asserts fields
    // exfilmon does not produce (ja3, community_id, server ALPNs, the QUIC
    // extension list) needs at least `count`.
    std::vector<std::string> suri_mm;
    size_t suri_checks = 0, suri_fields = 0, suri_quic = 0;
    for (const auto &r : exf::test::read_csv(dir / "suricata-verify/expected.csv")) {
        if (r.at("event_type") != "tls" && r.at("event_type") != "quic")
            continue;
        const std::string transport = r.at("event_type") == "quic" ? "quic" : "tcp";
        (transport == "quic" ? suri_quic : suri_checks)++;
        const std::string file = "suricata-verify/" + r.at("test") + "/" + r.at("pcap");
        const Output *o = ck.output(file);
        if (!o) {
            suri_mm.push_back(file + ": not replayed");
            continue;
        }
        std::vector<std::string> asserted;
        auto field = [&](const char *col) {
            if (!r.at(col).empty())
                asserted.push_back(col);
            return !r.at(col).empty();
        };
        const bool has_sni = field("sni"), has_ja4 = field("ja4"), has_ver = field("tls_version"),
                   has_alpn = field("alpn_client"), has_src = field("src_ip");
        const bool partial = !r.at("ja3_hash").empty() || !r.at("ja3_string").empty() ||
                             !r.at("other_match_json").empty();
        suri_fields += asserted.size();
        size_t matches = 0;
        for (const auto &f : o->flows) {
            if (f["transport"] != transport)
                continue;
            if (has_sni && str_or_empty(f["sni"]) != r.at("sni"))
                continue;
            if (has_ja4 && str_or_empty(f["ja4"]) != r.at("ja4"))
                continue;
            if (has_ver && str_or_empty(f["tls_version"]) != suricata_version(r.at("tls_version")))
                continue;
            if (has_alpn && (!f["alpn"].is_array() || f["alpn"].get<std::vector<std::string>>() !=
                                                          split(r.at("alpn_client"), ';')))
                continue;
            if (has_src && (f["client"] != norm_addr(r.at("src_ip")) ||
                            f["client_port"].get<uint64_t>() != std::stoull(r.at("src_port")) ||
                            f["server"] != norm_addr(r.at("dest_ip")) ||
                            f["server_port"].get<uint64_t>() != std::stoull(r.at("dest_port"))))
                continue;
            matches++;
        }
        const size_t want = std::stoul(r.at("count"));
        if (partial ? matches < want : matches != want) {
            std::string flows;
            for (const auto &f : o->flows)
                flows += "\n    " + f.dump();
            std::string fields;
            for (const auto &a : asserted)
                fields += (fields.empty() ? "" : ",") + a;
            suri_mm.push_back(file + " " + r.at("event_type") + " check " + r.at("check_index") +
                              " (" + fields + "): " + std::to_string(matches) +
                              " matching flows, expected " + (partial ? "at least " : "") +
                              std::to_string(want) + "; flows:" + flows);
        }
    }

    std::vector<std::string> stale = ck.unused_exceptions();
    INFO("foxio-ja4: " << foxio.rows << " TCP rows: " << foxio.sni << " SNI and " << foxio.ja4
                       << " JA4 match, " << foxio.not_tls << " not TLS flows, " << foxio.exceptions
                       << " known exceptions; " << foxio.mismatches.size() << " mismatches:\n"
                       << join(foxio.mismatches) << "notes:\n"
                       << join(foxio.notes));
    INFO("foxio-ja4: " << foxio_q.rows << " QUIC rows: " << foxio_q.sni << " SNI and "
                       << foxio_q.ja4 << " JA4 match; " << foxio_q.mismatches.size()
                       << " mismatches:\n"
                       << join(foxio_q.mismatches) << "notes:\n"
                       << join(foxio_q.notes));
    INFO("ndpi: " << ndpi_q.rows << " QUIC rows: " << ndpi_q.sni << " SNI and " << ndpi_q.ja4
                  << " JA4 match, " << ndpi_q.not_tls
                  << " not QUIC flows under the counting rules; " << ndpi_q.mismatches.size()
                  << " mismatches:\n"
                  << join(ndpi_q.mismatches) << "notes:\n"
                  << join(ndpi_q.notes));
    INFO("ndpi: " << ndpi.rows << " TCP rows: " << ndpi.sni << " SNI and " << ndpi.ja4
                  << " JA4 match, " << ndpi.not_tls << " not TLS flows, " << ndpi.exceptions
                  << " known exceptions; " << ndpi.mismatches.size() << " mismatches:\n"
                  << join(ndpi.mismatches) << "notes:\n"
                  << join(ndpi.notes));
    INFO("suricata-verify: " << suri_checks << " tls and " << suri_quic << " quic checks ("
                             << suri_fields << " asserted fields); " << suri_mm.size()
                             << " mismatches:\n"
                             << join(suri_mm));
    INFO(join(stale));
    WARN("replay vs expected values ("
         << all.captures.size() << " captures, " << all.seconds
         << " s with --datapath user): " << clients_compared << " clients and " << flows_compared
         << " flows vs truth; " << hellos_found << " of " << hellos_expected
         << " first-payload ClientHellos fingerprinted (" << hello_exceptions
         << " known exceptions); " << quic_found << " of " << quic_expected
         << " QUIC flows fingerprinted; foxio " << foxio.sni << " SNI + " << foxio.ja4 << " JA4 of "
         << foxio.rows << " TCP rows (" << foxio.not_tls << " not TLS flows, " << foxio.exceptions
         << " exceptions); ndpi " << ndpi.sni << " SNI + " << ndpi.ja4 << " JA4 of " << ndpi.rows
         << " TCP rows (" << ndpi.not_tls << " not TLS flows, " << ndpi.exceptions
         << " exceptions; " << ndpi_other
         << " TCP rows without a tshark SNI or a JA4 reference not "
         << "compared); QUIC: foxio " << foxio_q.sni << " SNI + " << foxio_q.ja4 << " JA4 of "
         << foxio_q.rows << " rows, ndpi " << ndpi_q.sni << " SNI + " << ndpi_q.ja4 << " JA4 of "
         << ndpi_q.rows << " rows (" << ndpi_q.not_tls << " on ports that are not TLS ports by "
         << "default, compared in their own test case; " << ndpi_quic_other
         << " UDP rows without a tshark SNI or a JA4 reference not compared); suricata-verify "
         << suri_checks << " tls and " << suri_quic << " quic checks");
    CHECK(foxio.rows == 151);
    CHECK(foxio_q.rows == 51);
    CHECK(ndpi_q.rows >= 130);
    CHECK(ndpi_q.not_tls == 6);
    CHECK(suri_quic >= 9);
    CHECK(quic_expected == 198);  // truth_flows.csv's QUIC rows
    CHECK(quic_found == quic_expected);
    CHECK(ndpi.rows >= 600);
    CHECK(suri_checks >= 10);
    CHECK(foxio.mismatches.empty());
    CHECK(foxio_q.mismatches.empty());
    CHECK(ndpi.mismatches.empty());
    CHECK(ndpi_q.mismatches.empty());
    CHECK(suri_mm.empty());
    CHECK(stale.empty());
    REQUIRE((run_problems.empty() && client_mm.empty() && flow_mm.empty() &&
             foxio.mismatches.empty() && foxio_q.mismatches.empty() && ndpi.mismatches.empty() &&
             ndpi_q.mismatches.empty() && suri_mm.empty() && stale.empty()));
}

// The four shared ClientHellos whose inner lengths contradict the message
// (see the file comment), parsed from the client's first payload in the
// capture: complete under the tolerance rule of tls/client_hello.h, each with
// its length anomaly (so still counted as broken), and with the reference
// JA4 of ndpi/expected.csv, which the replay output carries too.
//   51589: cipher_suites length 133 (odd) ends exactly at the message end:
//          66 suites, no room for compression_methods;
//   51590: cipher_suites length 134, one byte past the message: not taken;
//   51591: cipher_suites length 0; the next byte (00) is the compression
//          length, then 0xffc0 as extensions length, past the message;
//   3967:  no compression method, then a single byte where the 2-byte
//          extensions length would be.
TEST_CASE("replay: shared ClientHellos with contradicting lengths are fingerprinted and flagged",
          "[pcap][replay]")
{
    const fs::path dir = exf::test::shared_pcaps();
    if (dir.empty())
        return;
    struct Case {
        const char *file, *client, *server;
        uint16_t cport;
        const char *anomaly;
        size_t ciphers;
    };
    const Case cases[] = {
        {"ndpi/tls_cipher_lens.pcap", "192.168.11.11", "173.194.35.191", 51589,
         "bad_cipher_suites_length", 66},
        {"ndpi/tls_cipher_lens.pcap", "192.168.11.11", "173.194.35.191", 51590,
         "bad_cipher_suites_length", 0},
        {"ndpi/tls_cipher_lens.pcap", "192.168.11.11", "173.194.35.191", 51591,
         "bad_extensions_length", 0},
        {"ndpi/tls_invalid_reads.pcap", "192.168.10.101", "206.33.61.113", 3967,
         "bad_extensions_length", 11},
    };
    std::map<std::string, std::string> want_ja4;  // "file:port" -> ja4_reference
    for (const auto &r : exf::test::read_csv(dir / "ndpi/expected.csv"))
        want_ja4["ndpi/" + r.at("file") + ":" + r.at("client_port")] = r.at("ja4_reference");
    const Replays &all = replays(dir, "user");
    Checker ck(dir, all);
    for (const Case &c : cases) {
        const std::string id = std::string(c.file) + ":" + std::to_string(c.cport);
        INFO(id);
        auto payload = first_client_payload(dir / c.file, c.client, c.cport, c.server, 443);
        REQUIRE(payload);
        exf::tls::ClientHello h;
        const auto r = exf::tls::parse_client_hello_record(*payload, h);
        INFO("parsed as " << exf::tls::to_string(r.status) << "/"
                          << exf::tls::to_string(r.anomaly));
        REQUIRE(r.complete());
        CHECK(exf::tls::to_string(r.anomaly) == c.anomaly);
        CHECK(r.consumed == payload->size());
        CHECK(h.cipher_suites.size() == c.ciphers);
        CHECK(h.extensions.empty());
        CHECK_FALSE(h.has_sni);
        REQUIRE(want_ja4.count(id));
        CHECK(exf::tls::ja4(h) == want_ja4[id]);
        auto fl = ck.flows(c.file, tuple_key("tcp", c.client, c.cport, c.server, 443));
        REQUIRE(fl.size() == 1);
        CHECK((*fl[0])["ja4"] == want_ja4[id]);
        CHECK((*fl[0])["sni"].is_null());
    }
}

namespace {

using exf::test::build_frame;
using exf::test::Bytes;
using exf::test::FrameSpec;
using exf::test::TimedFrame;

// A capture built here: TCP TLS flows over IPv4 and IPv6 with and without
// VLAN tags, hellos split over segments sent out of order, a retransmitted
// segment, a 5-tuple reused after FIN, an RST, a non-TLS payload on 443, a
// malformed hello, QUIC, and a hello with non-UTF-8 SNI and ALPN bytes.
struct Builder {
    std::vector<TimedFrame> frames;
    uint64_t ts = 1'700'000'000'000'000'000ull;

    void add(FrameSpec s) { frames.emplace_back(ts += 1'000'000, build_frame(s)); }

    // A TCP connection: handshake, the client's payload in segments of the
    // given sizes and order (indexes into the split), server data, an ending.
    void tcp(const std::string &c, uint16_t cport, const std::string &s, uint16_t sport,
             uint32_t isn, const Bytes &payload, const std::vector<size_t> &sizes,
             const std::vector<size_t> &order, size_t response, uint8_t ending,
             std::vector<std::pair<uint16_t, uint16_t>> vlans = {})
    {
        auto spec = [&](bool from_client, uint8_t flags, uint32_t seq, Bytes p = {}) {
            FrameSpec f;
            f.src = from_client ? c : s;
            f.dst = from_client ? s : c;
            f.sport = from_client ? cport : sport;
            f.dport = from_client ? sport : cport;
            f.tcp_flags = flags;
            f.seq = seq;
            f.payload = std::move(p);
            f.vlans = vlans;
            return f;
        };
        using namespace exf::test;
        add(spec(true, SYN, isn));
        add(spec(false, SYN | ACK, 7000));
        add(spec(true, ACK, isn + 1));
        std::vector<std::pair<size_t, size_t>> segs;
        size_t at = 0;
        for (size_t i = 0; i < sizes.size() && at < payload.size(); i++) {
            size_t n = i + 1 == sizes.size() ? payload.size() - at
                                             : std::min(sizes[i], payload.size() - at);
            segs.emplace_back(at, n);
            at += n;
        }
        for (size_t i : order) {
            auto [off, n] = segs.at(i);
            add(spec(true, PSH | ACK, isn + 1 + uint32_t(off),
                     Bytes(payload.begin() + long(off), payload.begin() + long(off + n))));
        }
        for (size_t left = response; left > 0;) {
            size_t n = std::min<size_t>(left, 1400);
            add(spec(false, PSH | ACK, 7001, Bytes(n, 0x17)));
            left -= n;
        }
        if (ending == FIN) {
            add(spec(true, FIN | ACK, isn + 1 + uint32_t(payload.size())));
            add(spec(false, FIN | ACK, 9000));
            add(spec(true, ACK, isn + 2 + uint32_t(payload.size())));
        } else if (ending == RST) {
            add(spec(false, RST, 9000));
        }
    }
    void quic(const std::string &c, uint16_t cport, const std::string &s, int datagrams)
    {
        for (int i = 0; i < datagrams; i++) {
            FrameSpec f;
            f.src = c;
            f.dst = s;
            f.sport = cport;
            f.dport = 443;
            f.proto = 17;
            f.payload = exf::test::quic_initial(1200);
            add(f);
            FrameSpec r = f;
            std::swap(r.src, r.dst);
            std::swap(r.sport, r.dport);
            r.payload = Bytes(900, 0x40);
            add(r);
        }
    }
};

std::vector<TimedFrame> built_capture()
{
    using exf::test::HelloBuilder;
    using namespace exf::test;
    Builder b;
    const Bytes browser = HelloBuilder::browser_like().record();
    // Split in three, sent 2, 0, 1 (and 0 again: a retransmission).
    b.tcp("192.0.2.10", 40000, "198.51.100.1", 443, 1000, browser, {600, 600, 0}, {2, 0, 1, 0},
          30000, FIN);
    b.tcp("2001:db8::10", 40001, "2001:db8:1::1", 8443, 5000,
          HelloBuilder()
              .sni("v6.example")
              .alpn({"http/1.1"})
              .supported_versions({0x0304, 0x0303})
              .record(),
          {100, 0}, {1, 0}, 5000, RST, {{0x8100, 12}});
    // The same 5-tuple twice: a FIN, then a new SYN (REUSE).
    b.tcp("192.0.2.11", 40002, "198.51.100.1", 443, 100, client_hello(400, "first.example"), {0},
          {0}, 3000, FIN);
    b.tcp("192.0.2.11", 40002, "198.51.100.1", 443, 80000, client_hello(500, "second.example"), {0},
          {0}, 2000, 0);
    // Not TLS on 443; a malformed hello; a hello on a non-TLS port.
    b.tcp("192.0.2.12", 40003, "198.51.100.1", 443, 1,
          Bytes{'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '/', '1', '.', '1', '\r', '\n',
                '\r', '\n'},
          {0}, {0}, 500, FIN);
    Bytes bad = HelloBuilder().sni("bad.example").record();
    bad[43] = 0xff;  // the session id length runs beyond the body
    b.tcp("192.0.2.12", 40004, "198.51.100.1", 443, 1, bad, {0}, {0}, 100, RST);
    b.tcp("192.0.2.13", 40005, "198.51.100.2", 4433, 1, client_hello(300, "odd-port.example"), {0},
          {0}, 700, FIN);
    // Attacker-chosen bytes in SNI and ALPN.
    b.tcp("192.0.2.14", 40006, "198.51.100.1", 443, 1,
          HelloBuilder()
              .sni(std::string("ev\xff\xfeil\x01\"\\.example", 17))
              .alpn({std::string("h2\xc3", 3), "\xe2\x82"})
              .record(),
          {0}, {0}, 800, FIN);
    b.quic("192.0.2.15", 50000, "198.51.100.3", 3);
    b.quic("2001:db8::15", 50001, "2001:db8:1::3", 5);
    return b.frames;
}

struct TempDir {
    fs::path path;
    TempDir()
    {
        std::string tmpl = (fs::temp_directory_path() / "exf-replay-XXXXXX").string();
        if (!mkdtemp(tmpl.data()))
            throw std::runtime_error("mkdtemp failed");
        path = tmpl;
    }
    ~TempDir() { fs::remove_all(path); }
};

}  // namespace

TEST_CASE("replay JSON of --datapath bpf and --datapath user is byte-identical",
          "[bpf][parity][replay]")
{
    if (!exf::test::require_root())
        return;
    TempDir tmp;
    const fs::path built = tmp.path / "built.pcap";
    exf::test::write_pcap(built, built_capture());
    auto a = replay(built, "bpf"), b = replay(built, "user");
    INFO("bpf stderr: " << a.err << "user stderr: " << b.err);
    CHECK(a.status == 0);
    CHECK(b.status == 0);
    CHECK(a.out == b.out);
    Output o = parse_output(a.out);
    INFO(a.out);
    CHECK(o.errors.empty());
    CHECK(o.flows.size() == 10);  // 8 TCP (one reused 5-tuple: two flows) + 2 QUIC, no non-TLS
    CHECK(o.clients.size() == 8);

    const fs::path dir = exf::test::shared_pcaps();
    if (dir.empty())
        return;
    // A BPF load per run costs a second of verifier: the binary runs every
    // eighth capture both ways; "Datapath parity on every shared capture"
    // (test_datapath_parity.cpp) compares the two builds' tables, events and
    // health counters on every capture, and those are all the JSON is made of.
    const Replays &bpf = replays(dir, "bpf", 8);
    const Replays &user = replays(dir, "user");
    std::vector<std::string> diffs;
    size_t lines = 0;
    for (const auto &c : bpf.captures) {
        const auto &x = bpf.results.at(c), &y = user.results.at(c);
        lines += size_t(std::count(x.out.begin(), x.out.end(), '\n'));
        if (x.status != y.status)
            diffs.push_back(c + ": exit " + std::to_string(x.status) + " (bpf) vs " +
                            std::to_string(y.status));
        if (x.out != y.out) {
            std::istringstream xs(x.out), ys(y.out);
            std::string xl, yl;
            size_t n = 0;
            while (true) {
                bool hx = bool(std::getline(xs, xl)), hy = bool(std::getline(ys, yl));
                n++;
                if (!hx && !hy)
                    break;
                if (!hx || !hy || xl != yl) {
                    diffs.push_back(c + ": line " + std::to_string(n) + ":\n  bpf:  " +
                                    (hx ? xl : "(end)") + "\n  user: " + (hy ? yl : "(end)"));
                    break;
                }
            }
        }
    }
    INFO(diffs.size() << " captures differ of " << bpf.captures.size() << " (" << lines
                      << " lines; bpf " << bpf.seconds << " s, user " << user.seconds << " s):\n"
                      << join(diffs));
    CHECK(lines > 250);  // 287 lines from the 32 captures of the sample
    REQUIRE(diffs.empty());
}

// The parity test above proves the two builds' output identical, so replay
// runs the faster userspace build unless told otherwise, even when it could
// load the BPF program (root: the case where auto would pick bpf).
TEST_CASE("replay runs the userspace datapath by default, the BPF program when asked",
          "[bpf][replay]")
{
    if (!exf::test::require_root())
        return;
    TempDir tmp;
    const fs::path built = tmp.path / "built.pcap";
    exf::test::write_pcap(built, built_capture());
    const std::string bin = exf::test::exfilmon_binary().string();
    auto run = [&](std::vector<std::string> extra) {
        std::vector<std::string> argv = {bin, "replay", "--format", "json", "--flows"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        argv.push_back(built.string());
        return exf::test::run_program(argv);
    };
    auto plain = run({}), bpf = run({"--datapath", "bpf"}), automatic = run({"--datapath", "auto"});
    INFO("default: " << plain.err << "bpf: " << bpf.err << "auto: " << automatic.err);
    REQUIRE(plain.status == 0);
    REQUIRE(bpf.status == 0);
    REQUIRE(automatic.status == 0);
    CHECK(plain.err.find("exfilmon replay: datapath user (") != std::string::npos);
    CHECK(bpf.err.find("exfilmon replay: datapath bpf (") != std::string::npos);
    CHECK(automatic.err.find("exfilmon replay: datapath bpf (") != std::string::npos);
    CHECK(plain.out == bpf.out);
    CHECK(plain.out == automatic.out);
    auto help = exf::test::run_program({bin, "replay", "--help"});
    CHECK(help.out.find("the default") != std::string::npos);
}

TEST_CASE("replay of a built capture reports its flows and escapes attacker bytes", "[replay]")
{
    // The userspace datapath: no root needed.
    TempDir tmp;
    const fs::path built = tmp.path / "built.pcap";
    exf::test::write_pcap(built, built_capture());
    auto r = replay(built, "user");
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    CHECK(r.err.find("datapath user") != std::string::npos);
    Output o = parse_output(r.out);
    REQUIRE(o.errors.empty());

    std::map<uint64_t, std::vector<json>> by_port;
    for (const auto &f : o.flows)
        by_port[f["client_port"].get<uint64_t>()].push_back(f);
    REQUIRE(by_port.count(40000));
    const json &split = by_port[40000][0];
    CHECK(split["sni"] == "example.com");
    CHECK(split["alpn"] == json::array({"h2", "http/1.1"}));
    CHECK(split["tls_version"] == "1.3");
    CHECK(split["ja4"].get<std::string>().rfind("t13d", 0) == 0);
    CHECK(split["transport"] == "tcp");
    const json &v6 = by_port[40001][0];
    CHECK(v6["client"] == "2001:db8::10");
    CHECK(v6["server"] == "2001:db8:1::1");
    CHECK(v6["sni"] == "v6.example");
    CHECK(v6["server_port"] == 8443);
    // The reused 5-tuple: two flows, the ended one first with its own SNI.
    REQUIRE(by_port[40002].size() == 2);
    CHECK(by_port[40002][0]["sni"] == "first.example");
    CHECK(by_port[40002][1]["sni"] == "second.example");
    CHECK(by_port[40002][0]["bytes_out"].get<uint64_t>() >
          by_port[40002][1]["bytes_out"].get<uint64_t>());
    // Not TLS and malformed: flows without metadata.
    CHECK(by_port[40003][0]["ja4"].is_null());
    CHECK(by_port[40003][0]["sni"].is_null());
    CHECK(by_port[40003][0]["alpn"].is_null());
    CHECK(by_port[40004][0]["ja4"].is_null());
    CHECK(by_port[40005][0]["sni"] == "odd-port.example");
    CHECK(by_port[40005][0]["alpn"] == json::array());
    // Invalid UTF-8 replaced by U+FFFD; quotes, backslashes and control
    // characters escaped by JSON.
    const json &evil = by_port[40006][0];
    CHECK(evil["sni"] == "ev\xef\xbf\xbd\xef\xbf\xbdil\x01\"\\.example");
    CHECK(evil["alpn"] == json::array({"h2\xef\xbf\xbd", "\xef\xbf\xbd"}));
    CHECK(r.out.find("\\u0001") != std::string::npos);
    CHECK(by_port[50000][0]["transport"] == "quic");
    CHECK(by_port[50000][0]["sni"].is_null());
    CHECK(by_port[50001][0]["packets_in"] == 5);

    // Per client: sorted by address, SNIs distinct and sorted.
    std::vector<std::string> clients;
    for (const auto &c : o.clients)
        clients.push_back(c["client"].get<std::string>());
    CHECK(clients == std::vector<std::string>{"192.0.2.10", "192.0.2.11", "192.0.2.12",
                                              "192.0.2.13", "192.0.2.14", "192.0.2.15",
                                              "2001:db8::10", "2001:db8::15"});
    CHECK(o.clients[1]["sni"] == json::array({"first.example", "second.example"}));
    CHECK(o.clients[1]["tls_flows"] == 2);
    CHECK(o.clients[2]["sni"] == json::array());
    CHECK(o.clients[2]["tls_flows"] == 2);

    // The table: escaped bytes, clients by bytes out.
    auto t = replay(built, "user", "table");
    INFO(t.out);
    CHECK(t.status == 0);
    CHECK(t.out.find("ev\\xff\\xfeil\\x01\"\\x5c.example") != std::string::npos);
    CHECK(t.out.find('\x01') == std::string::npos);
    auto pos10 = t.out.find("192.0.2.10 "), pos13 = t.out.find("192.0.2.13 ");
    CHECK(pos10 < pos13);  // 30000 bytes out before 700
    // Without --flows only the clients.
    auto nf = exf::test::run_program({exf::test::exfilmon_binary().string(), "replay", "--format",
                                      "json", "--datapath", "user", built.string()});
    CHECK(nf.status == 0);
    CHECK(nf.out.find("\"type\":\"flow\"") == std::string::npos);
    CHECK(parse_output(nf.out).clients.size() == 8);
}

TEST_CASE(
    "replay of a truncated or corrupt capture prints what was read then the error and exits 1",
    "[replay]")
{
    TempDir tmp;
    auto frames = built_capture();
    REQUIRE(frames.size() > 40);
    const size_t keep = 40;  // packets 1..40 intact, 41 damaged
    std::vector<TimedFrame> head(frames.begin(), frames.begin() + long(keep));
    exf::test::write_pcap(tmp.path / "head.pcap", head);
    std::vector<TimedFrame> upto(frames.begin(), frames.begin() + long(keep + 1));
    exf::test::write_pcap(tmp.path / "full.pcap", upto);
    const auto full_size = fs::file_size(tmp.path / "full.pcap");

    // Truncated: the last record loses its last 10 bytes.
    const fs::path cut = tmp.path / "cut.pcap";
    fs::copy_file(tmp.path / "full.pcap", cut);
    fs::resize_file(cut, full_size - 10);
    // Corrupt: the last record's captured length is absurd.
    const fs::path bad = tmp.path / "bad.pcap";
    {
        std::ifstream in(tmp.path / "full.pcap", std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        size_t last = bytes.size() - frames[keep].second.size() - 16;  // its record header
        uint32_t huge = 0x7fffffff;
        std::memcpy(&bytes[last + 8], &huge, 4);
        std::ofstream(bad, std::ios::binary) << bytes;
    }

    std::vector<std::string> datapaths{"user"};
    if (geteuid() == 0)
        datapaths.push_back("bpf");
    for (const auto &dp : datapaths) {
        INFO("datapath " << dp);
        auto ok = replay(tmp.path / "head.pcap", dp);
        REQUIRE(ok.status == 0);
        REQUIRE(!ok.out.empty());
        for (const fs::path &f : {cut, bad}) {
            auto r = replay(f, dp);
            INFO(f.string() << ": " << r.err);
            CHECK(r.status == 1);
            CHECK(r.out == ok.out);  // the report as far as the capture goes
            CHECK(r.err.find("error: " + f.string() + ": packet " + std::to_string(keep + 1) +
                             ": ") != std::string::npos);
            auto t = replay(f, dp, "table");
            CHECK(t.status == 1);
            CHECK(t.out.find("ALERTS (") == 0);
            CHECK(t.out.find("\nCLIENTS (") != std::string::npos);
        }
    }

    // A file that is not a capture at all: exit 1, named.
    std::ofstream(tmp.path / "text.pcap") << "hello, I am not a capture\n";
    auto nc = replay(tmp.path / "text.pcap", "user");
    CHECK(nc.status == 1);
    CHECK(nc.err.find((tmp.path / "text.pcap").string()) != std::string::npos);
    CHECK(nc.out.empty());
}

namespace {

// A shell command line (for redirections and pipes), run to its end.
ProcResult shell(const std::string &command)
{
    return exf::test::run_program({"/bin/sh", "-c", command});
}

// Two IPv6 addresses of one /64 (the default client entity) pull 30000 bytes
// each, an IPv4 client 2000: only the /64's sum reaches the rule's 50KiB.
std::vector<TimedFrame> entity_capture()
{
    using namespace exf::test;
    Builder b;
    b.tcp("2001:db8:5::20", 41000, "2001:db8:1::1", 443, 1, client_hello(300, "files.example"), {0},
          {0}, 30000, FIN);
    b.tcp("2001:db8:5::21", 41001, "2001:db8:1::1", 443, 1, client_hello(300, "files.example"), {0},
          {0}, 30000, FIN);
    b.tcp("192.0.2.30", 41002, "198.51.100.1", 443, 1, client_hello(300, "api.example"), {0}, {0},
          2000, FIN);
    return b.frames;
}

const char *const kPer64Rule = "[[rules]]\nname = \"per-64\"\nentity = \"client\"\n"
                               "metric = \"bytes_out\"\nwindow = \"1m\"\nthreshold = \"50KiB\"\n"
                               "severity = \"critical\"\n";

// Many flows over 20 s of packet time, clients in two families, some over
// the per-64 rule's threshold: the pipelined replay (--threads 2) hands this
// over in many batches, each harvest with the tables of its own packet.
std::vector<TimedFrame> busy_capture()
{
    using namespace exf::test;
    Builder b;
    for (int i = 0; i < 800; i++) {
        const std::string client = i % 2 ? "192.0.2." + std::to_string(1 + i % 60)
                                         : "2001:db8:7:" + std::to_string(i % 30) + "::1";
        b.tcp(client, uint16_t(40000 + i), i % 2 ? "198.51.100.1" : "2001:db8:1::1", 443, 1,
              client_hello(300, "host" + std::to_string(i % 7) + ".example"), {0}, {0},
              size_t(8000 + 1000 * (i % 13)), i % 10 ? FIN : RST);
    }
    return b.frames;
}

// The numbers of a table row whose cells include `cell`: all of its numeric cells.
std::vector<uint64_t> row_numbers(const std::string &table, const std::string &first,
                                  const std::string &second)
{
    std::istringstream lines(table);
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream cells(line);
        std::string a, b, cell;
        if (!(cells >> a >> b) || a != first)
            continue;
        if (b == "(2") {  // "(2 addresses)"
            cells >> cell;
            b += " " + cell;
        }
        if (b != second)
            continue;
        std::vector<uint64_t> v;
        while (cells >> cell && !cell.empty() && std::isdigit(static_cast<unsigned char>(cell[0])))
            v.push_back(std::stoull(cell));
        return v;
    }
    return {};
}

}  // namespace

TEST_CASE("replay table: alerts first as a table, clients under the entity the rules measure",
          "[replay]")
{
    TempDir tmp;
    const fs::path cap = tmp.path / "entity.pcap", cfg = tmp.path / "rules.toml";
    exf::test::write_pcap(cap, entity_capture());
    std::ofstream(cfg) << kPer64Rule;
    const std::string bin = exf::test::exfilmon_binary().string();
    auto t = exf::test::run_program(
        {bin, "replay", "--datapath", "user", "--config", cfg.string(), cap.string()});
    INFO(t.out << t.err);
    REQUIRE(t.status == 0);
    // The alerts come first, as rows of a table, not as JSON.
    CHECK(t.out.find("ALERTS (1") == 0);
    CHECK(t.out.find('{') == std::string::npos);
    const auto alert_at = t.out.find("client 2001:db8:5::/64 bytes_out ");
    const auto clients_at = t.out.find("\nCLIENTS (");
    CHECK(alert_at != std::string::npos);
    CHECK(alert_at < clients_at);
    CHECK(t.out.find("critical") < clients_at);
    CHECK(t.out.find("(rule per-64)") < clients_at);
    // Each address under the entity the alert names, with the entity's total.
    auto a = row_numbers(t.out, "2001:db8:5::/64", "2001:db8:5::20");
    auto b = row_numbers(t.out, "2001:db8:5::/64", "2001:db8:5::21");
    auto sum = row_numbers(t.out, "2001:db8:5::/64", "(2 addresses)");
    auto v4 = row_numbers(t.out, "192.0.2.30", "192.0.2.30");
    REQUIRE(a.size() == 5);  // tls_flows bytes_out bytes_in pkts_out pkts_in
    REQUIRE(b.size() == 5);
    REQUIRE(sum.size() == 5);
    REQUIRE(v4.size() == 5);
    for (size_t i = 0; i < 5; i++)
        CHECK(sum[i] == a[i] + b[i]);
    CHECK(sum[1] >= 50 * 1024);  // the entity reached the threshold
    CHECK(a[1] < 50 * 1024);     // no address alone did
    CHECK(t.out.find("2001:db8:5::/64") < t.out.find("192.0.2.30 "));  // by bytes out
}

TEST_CASE("replay over two threads prints what one thread prints", "[replay]")
{
    TempDir tmp;
    const fs::path cap = tmp.path / "busy.pcap", cfg = tmp.path / "rules.toml";
    exf::test::write_pcap(cap, busy_capture());
    std::ofstream(cfg) << kPer64Rule;
    const std::string bin = exf::test::exfilmon_binary().string();
    for (const std::string format : {"json", "table"}) {
        auto run = [&](const std::string &threads) {
            return exf::test::run_program({bin, "replay", "--format", format, "--flows", "--config",
                                           cfg.string(), "--threads", threads, cap.string()});
        };
        auto one = run("1"), two = run("2");
        INFO(format << "\none thread: " << one.err << "two threads: " << two.err);
        REQUIRE(one.status == 0);
        REQUIRE(two.status == 0);
        CHECK(one.out.find("alert") != std::string::npos);  // the rules ran and fired
        CHECK(one.out.size() > 50000);
        CHECK(two.out == one.out);
        CHECK(two.err == one.err);
    }
    CHECK(exf::test::run_program({bin, "replay", "--threads", "3", cap.string()}).status == 2);
}

TEST_CASE("replay JSON: client lines add the rule entity, existing fields unchanged", "[replay]")
{
    TempDir tmp;
    const fs::path cap = tmp.path / "entity.pcap", cfg = tmp.path / "rules.toml";
    exf::test::write_pcap(cap, entity_capture());
    std::ofstream(cfg) << kPer64Rule;
    auto r =
        exf::test::run_program({exf::test::exfilmon_binary().string(), "replay", "--format", "json",
                                "--datapath", "user", "--config", cfg.string(), cap.string()});
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    std::vector<nlohmann::ordered_json> alerts, clients;  // ordered: the fields as printed
    std::istringstream lines(r.out);
    std::string line;
    while (std::getline(lines, line)) {
        auto j = nlohmann::ordered_json::parse(line);
        if (j["type"] == "alert")
            alerts.push_back(j);
        else if (j["type"] == "client")
            clients.push_back(j);
        else
            CHECK(j["type"] == "ja4");  // the fingerprint lines that follow
    }
    REQUIRE(alerts.size() == 1);
    CHECK(alerts[0]["exfilmon"]["entity"] == "2001:db8:5::/64");
    REQUIRE(clients.size() == 3);
    std::map<std::string, std::string> entity;
    for (const auto &c : clients) {
        // The contract's fields, in their order, then the new one.
        std::vector<std::string> keys;
        for (const auto &[k, v] : c.items())
            keys.push_back(k);
        CHECK(keys == std::vector<std::string>{"type", "client", "tls_flows", "bytes_in",
                                               "bytes_out", "packets_in", "packets_out", "sni",
                                               "entity", "requests"});
        entity[c["client"].get<std::string>()] = c.value("entity", "");
    }
    CHECK(entity["2001:db8:5::20"] == "2001:db8:5::/64");
    CHECK(entity["2001:db8:5::21"] == "2001:db8:5::/64");
    CHECK(entity["192.0.2.30"] == "192.0.2.30");
    // A client prefix of /128 makes each address its own entity.
    std::ofstream(cfg, std::ios::app) << "[aggregate]\nclient_prefix_v6 = 128\n";
    auto p128 =
        exf::test::run_program({exf::test::exfilmon_binary().string(), "replay", "--format", "json",
                                "--datapath", "user", "--config", cfg.string(), cap.string()});
    CHECK(p128.status == 0);
    CHECK(p128.out.find("\"entity\":\"2001:db8:5::20\"") != std::string::npos);
    CHECK(p128.out.find("\"type\":\"alert\"") == std::string::npos);
}

TEST_CASE("replay - reads standard input (pcap and pcapng, redirected or piped)", "[replay]")
{
    TempDir tmp;
    const fs::path built = tmp.path / "built.pcap";
    exf::test::write_pcap(built, built_capture());
    const std::string bin = exf::test::exfilmon_binary().string();
    const std::string args = " replay --format json --flows --datapath user ";
    auto file = replay(built, "user");
    REQUIRE(file.status == 0);
    REQUIRE(!file.out.empty());
    auto redirected = shell("exec '" + bin + "'" + args + "- < '" + built.string() + "'");
    INFO(redirected.err);
    CHECK(redirected.status == 0);
    CHECK(redirected.out == file.out);
    CHECK(redirected.err.find("standard input: ") != std::string::npos);
    auto piped = shell("cat '" + built.string() + "' | '" + bin + "'" + args + "-");
    CHECK(piped.status == 0);
    CHECK(piped.out == file.out);
    // A pipe that breaks off mid-record: the packets before, then exit 1.
    auto cut = shell("head -c " + std::to_string(fs::file_size(built) - 10) + " '" +
                     built.string() + "' | '" + bin + "'" + args + "-");
    CHECK(cut.status == 1);
    CHECK(cut.err.find("error: standard input: packet ") != std::string::npos);
    // An empty pipe is no capture.
    auto empty = shell("'" + bin + "'" + args + "- < /dev/null");
    CHECK(empty.status == 1);
    CHECK(empty.err.find("standard input: cannot read capture") != std::string::npos);
    // Standard input on a terminal: a usage error, not a wait for ever.
    auto tty =
        exf::test::run_program({"/usr/bin/script", "-qec", "'" + bin + "' replay -", "/dev/null"});
    CHECK(tty.status == 2);
    CHECK(tty.out.find("standard input is a terminal") != std::string::npos);

    // pcapng through a pipe (the shared captures have some).
    const fs::path dir = exf::test::shared_pcaps();
    if (dir.empty())
        return;
    std::string ng;
    for (const auto &c : exf::test::find_captures(dir))
        if (c.size() > 7 && c.compare(c.size() - 7, 7, ".pcapng") == 0 &&
            fs::file_size(dir / c) > 10000) {
            ng = c;
            break;
        }
    REQUIRE(!ng.empty());
    INFO(ng);
    auto ng_file = replay(dir / ng, "user");
    auto ng_pipe = shell("cat '" + (dir / ng).string() + "' | '" + bin + "'" + args + "-");
    CHECK(ng_pipe.status == ng_file.status);
    CHECK(ng_pipe.out == ng_file.out);
    CHECK(!ng_pipe.out.empty());
}

TEST_CASE("replay refuses a gzip-compressed capture and says how to decompress it", "[replay]")
{
    TempDir tmp;
    const fs::path built = tmp.path / "built.pcap", gz = tmp.path / "built.pcap.gz";
    exf::test::write_pcap(built, built_capture());
    REQUIRE(shell("gzip -c '" + built.string() + "' > '" + gz.string() + "'").status == 0);
    const std::string bin = exf::test::exfilmon_binary().string();
    auto r = replay(gz, "user");
    CHECK(r.status == 1);
    CHECK(r.out.empty());
    CHECK(r.err == "exfilmon replay: " + gz.string() +
                       ": gzip-compressed capture; decompress it "
                       "first (zcat " +
                       gz.string() + " | exfilmon replay -)\n");
    auto piped = shell("cat '" + gz.string() + "' | '" + bin + "' replay -");
    CHECK(piped.status == 1);
    CHECK(piped.err.find("standard input: gzip-compressed capture; decompress it first") !=
          std::string::npos);
    // The advice works.
    auto advice = shell("zcat '" + gz.string() + "' | '" + bin +
                        "' replay --format json --flows --datapath user -");
    CHECK(advice.status == 0);
    CHECK(advice.out == replay(built, "user").out);
}

TEST_CASE("replay exits 1 for input it cannot use and 2 for usage errors", "[replay]")
{
    const std::string bin = exf::test::exfilmon_binary().string();
    auto missing = exf::test::run_program({bin, "replay", "/nonexistent/capture.pcap"});
    CHECK(missing.status == 1);
    CHECK(missing.err.find(
              "/nonexistent/capture.pcap: cannot read capture: No such file or directory") !=
          std::string::npos);
    CHECK(missing.out.empty());

    TempDir tmp;
    const fs::path cap = tmp.path / "one.pcap";
    exf::test::write_pcap(cap, {{1, build_frame(FrameSpec{})}});
    CHECK(exf::test::run_program({bin, "replay", "--datapath", "user", cap.string()}).status == 0);
    CHECK(exf::test::run_program({bin, "replay"}).status == 2);
    CHECK(exf::test::run_program({bin, "replay", "--format", "xml", cap.string()}).status == 2);
    CHECK(exf::test::run_program({bin, "replay", "--datapath", "gpu", cap.string()}).status == 2);
    CHECK(exf::test::run_program({bin, "replay", "--bogus", cap.string()}).status == 2);
    auto dir = exf::test::run_program({bin, "replay", tmp.path.string()});
    CHECK(dir.status == 1);
    CHECK(dir.err.find(tmp.path.string() + ": is a directory") != std::string::npos);
    // A file the user may not read (root reads anything: run as nobody then).
    const fs::path secret = tmp.path / "secret.pcap";
    fs::copy_file(cap, secret);
    fs::permissions(secret, fs::perms::owner_write);
    fs::permissions(tmp.path, fs::perms::owner_all | fs::perms::others_exec);
    std::vector<std::string> as_user;
    if (geteuid() == 0)
        as_user = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
    as_user.insert(as_user.end(), {bin, "replay", "--datapath", "user", secret.string()});
    auto unreadable = exf::test::run_program(as_user);
    CHECK(unreadable.status == 1);
    CHECK(unreadable.err.find(secret.string() + ": cannot read capture: Permission denied") !=
          std::string::npos);
    fs::permissions(tmp.path, fs::perms::owner_all);
    auto nocfg =
        exf::test::run_program({bin, "replay", "--config", "/nonexistent.toml", cap.string()});
    CHECK(nocfg.status == 2);
    CHECK(nocfg.err.find("/nonexistent.toml") != std::string::npos);
    std::ofstream(tmp.path / "bad.toml") << "[bpf]\ntls_ports = \"many\"\n";
    auto badcfg = exf::test::run_program(
        {bin, "replay", "--config", (tmp.path / "bad.toml").string(), cap.string()});
    CHECK(badcfg.status == 2);
    CHECK(badcfg.err.find("bad.toml:2:") != std::string::npos);

    // The configuration's TLS ports apply: plain HTTP on 4444 is a TLS flow
    // (by port) only when 4444 is one.
    FrameSpec http;
    http.dport = 4444;
    http.tcp_flags = exf::test::PSH | exf::test::ACK;
    http.payload = Bytes{'G', 'E', 'T', ' ', '/', '\r', '\n'};
    exf::test::write_pcap(tmp.path / "http.pcap", {{1, build_frame(http)}});
    std::ofstream(tmp.path / "ports.toml") << "[bpf]\ntls_ports = [443, 4444]\n";
    auto plain = exf::test::run_program({bin, "replay", "--format", "json", "--datapath", "user",
                                         (tmp.path / "http.pcap").string()});
    CHECK(plain.status == 0);
    CHECK(plain.out.empty());
    auto ported = exf::test::run_program({bin, "replay", "--format", "json", "--datapath", "user",
                                          "--config", (tmp.path / "ports.toml").string(),
                                          (tmp.path / "http.pcap").string()});
    CHECK(ported.status == 0);
    CHECK(ported.out.find("\"client\":\"192.0.2.10\",\"tls_flows\":1") != std::string::npos);

    auto help = exf::test::run_program({bin, "replay", "--help"});
    CHECK(help.status == 0);
    CHECK(help.out.find("--datapath") != std::string::npos);
}

// The nDPI QUIC rows on ports that are not TLS ports by default (4443, and
// DNS over QUIC on 784; the main test case counts them as "not TLS flows
// under the counting rules"): with those ports configured they are QUIC
// flows, and their SNI and JA4 match. Among them quic-v2.pcapng (RFC 9369)
// and quic_frags_ch_in_multiple_packets.pcapng (a ClientHello over several
// Initial packets), drafts 33 and 34, draft 28 in quic_0RTT.pcap.
TEST_CASE("replay: QUIC on configured ports matches nDPI's expected SNI and JA4",
          "[pcap][replay][quic]")
{
    const fs::path dir = exf::test::shared_pcaps();
    if (dir.empty())
        return;
    TempDir tmp;
    const fs::path cfg = tmp.path / "ports.toml";
    std::ofstream(cfg) << "[bpf]\ntls_ports = [443, 8443, 4443, 784]\n";
    std::map<std::string, Output> outs;
    std::map<std::string, Ours> ours;
    std::vector<std::string> mm;
    size_t rows = 0, matched = 0;
    for (const auto &r : exf::test::read_csv(dir / "ndpi/expected.csv")) {
        if (r.at("transport") != "UDP" || r.at("sni_basis").rfind("tshark", 0) != 0 ||
            r.at("ja4_reference").empty())
            continue;
        const uint16_t sport = uint16_t(std::stoul(r.at("server_port")));
        if (sport == 443 || sport == 8443)
            continue;
        rows++;
        const std::string file = "ndpi/" + r.at("file");
        if (!outs.count(file)) {
            auto res = exf::test::run_program(
                {exf::test::exfilmon_binary().string(), "replay", "--config", cfg.string(),
                 "--format", "json", "--flows", "--datapath", "user", (dir / file).string()});
            CHECK(res.status == 0);
            outs.emplace(file, parse_output(res.out));
            ours.emplace(file, index_flows(outs.at(file)));
            CHECK(outs.at(file).errors.empty());
        }
        const std::string tuple = tuple_key(
            "quic", r.at("client_ip"), std::stoull(r.at("client_port")), r.at("server_ip"), sport);
        auto it = ours.at(file).by_tuple.find(tuple);
        if (it == ours.at(file).by_tuple.end()) {
            mm.push_back(file + " " + tuple + ": no such flow");
            continue;
        }
        const json &f = *it->second.front();
        if (str_or_empty(f["sni"]) == r.at("sni") && (!r.at("sni").empty() || f["sni"].is_null()) &&
            str_or_empty(f["ja4"]) == r.at("ja4_reference"))
            matched++;
        else
            mm.push_back(file + " " + tuple + ": sni " + shown(f["sni"]) + " (expected " +
                         json(r.at("sni")).dump() + "), ja4 " + shown(f["ja4"]) + " (expected " +
                         r.at("ja4_reference") + ")");
    }
    INFO(matched << " of " << rows << " rows match; mismatches:\n" << join(mm));
    CHECK(rows == 6);
    CHECK(matched == rows);
}

TEST_CASE("replay JSON: each fingerprint's flows and clients are foxio-ja4's expected JA4s",
          "[pcap][replay][ja4]")
{
    const fs::path dir = exf::test::shared_pcaps();
    if (dir.empty())
        return;
    const Replays &all = replays(dir, "user");
    Checker ck(dir, all);
    // Per (capture, JA4): its flows and client addresses in the expected
    // snapshot, for flows that are TLS flows under the counting rules
    // (tunnelled ones are not: see the known exceptions above).
    struct Cohort {
        uint64_t flows = 0;
        // Addresses (expected) or client entities (the output: an IPv6
        // client as its /64): compared by number.
        std::set<std::string> clients;
    };
    std::map<std::string, Cohort> want, got;
    size_t tunnelled = 0;
    for (const auto &r : exf::test::read_csv(dir / "foxio-ja4/expected.csv")) {
        if (r.at("ja4").empty())
            continue;
        const std::string file = "foxio-ja4/" + r.at("file");
        const std::string transport = r.at("transport") == "udp" ? "quic" : "tcp";
        if (!ck.truth_has(file,
                          tuple_key(transport, r.at("client_ip"), std::stoull(r.at("client_port")),
                                    r.at("server_ip"), std::stoull(r.at("server_port"))))) {
            tunnelled++;
            continue;
        }
        Cohort &c = want[file + " " + r.at("ja4")];
        c.flows++;
        c.clients.insert(norm_addr(r.at("client_ip")));
    }
    for (const auto &file : all.captures) {
        if (file.rfind("foxio-ja4/", 0) != 0)
            continue;
        for (const auto &j : ck.output(file)->ja4s) {
            Cohort &c = got[file + " " + j["ja4"].get<std::string>()];
            c.flows = j["tls_flows"].get<uint64_t>();
            for (const auto &e : j["clients"])
                c.clients.insert(e.get<std::string>());
            CHECK(j["distinct_clients"].get<size_t>() == c.clients.size());
            CHECK(j["distinct_subnets"].get<size_t>() >= 1);
            CHECK(j["distinct_subnets"].get<size_t>() <= c.clients.size());
        }
    }
    std::vector<std::string> mm;
    for (const auto &[k, w] : want)
        if (auto it = got.find(k); it == got.end())
            mm.push_back(k + ": missing from the output");
        else if (it->second.flows != w.flows || it->second.clients.size() != w.clients.size())
            mm.push_back(k + ": " + std::to_string(it->second.flows) + " flows from " +
                         std::to_string(it->second.clients.size()) + " clients, expected " +
                         std::to_string(w.flows) + " from " + std::to_string(w.clients.size()));
    for (const auto &[k, g] : got)
        if (!want.count(k))
            mm.push_back(k + ": not in the expected JA4s");
    INFO(mm.size() << " mismatches of " << want.size() << " fingerprints (" << tunnelled
                   << " tunnelled expected flows left out):\n"
                   << join(mm));
    CHECK(want.size() >= 30);
    CHECK(tunnelled <= 4);
    CHECK(mm.empty());
}
