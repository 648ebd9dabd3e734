// SPDX-License-Identifier: Apache-2.0
#pragma once
// The report of `exfilmon replay` (apps/replay.h): per client and per flow,
// from a datapath's tables and the flow tracker's records, as JSON lines or
// tables.
//
// Output (stdout):
//  * json: one object per line (JSON Lines), in this order: alert lines as
//    they are raised, {"type":"alert", ...} followed by the fields of the
//    json output format (output/output.h format_json: ECS names; shadow
//    rules' alerts included, marked "shadow":true under "exfilmon"), then
//      {"type":"client","client":"203.0.113.7","tls_flows":N,"bytes_in":N,
//       "bytes_out":N,"packets_in":N,"packets_out":N,"sni":["a.example",...],
//       "entity":"203.0.113.7","requests":N}
//    per client address, sorted by address (the 16-byte form: IPv4 first),
//    with tls_flows = the client table's tls_flows_opened, sni the distinct
//    SNIs of that client's flows, sorted, and entity the client entity the
//    address counts for in the rules and alerts (its [aggregate] client
//    prefix: "2001:db8:1:2::/64" for 2001:db8:1:2::7 by default), requests
//    the client table's request count (client turns, docs/datapath.md
//    "Requests"; so is a flow's); then,
//    with --flows,
//      {"type":"flow","client":..,"client_port":N,"server":..,"server_port":N,
//       "transport":"tcp"|"quic","sni":..,"alpn":[..],"tls_version":..,
//       "ja4":..,"bytes_in":N,"bytes_out":N,"packets_in":N,"packets_out":N,
//       "requests":N}
//    per TLS/QUIC flow: the flow table's plus those ended by a 5-tuple reuse
//    (their final counters from the REUSE event), sorted by client address,
//    then first seen; then per JA4 fingerprint (a fingerprint cohort),
//      {"type":"ja4","ja4":..,"tls_flows":N,"bytes_in":N,"bytes_out":N,
//       "distinct_clients":N,"distinct_subnets":N,"sni":[..],"clients":[..]}
//    sorted by ja4: its TLS/QUIC flows over the whole capture, the client
//    entities and subnets ([aggregate] prefixes) they came from, their SNIs
//    and client entities, sorted. sni, alpn, tls_version and ja4 are null while no
//    ClientHello is known (a TCP flow whose first payload is not a complete
//    ClientHello; a QUIC flow whose client Initials could not be decrypted
//    or did not hold the whole ClientHello: the FlowTracker's default QUIC
//    decoder, tls/quic_initial.h, fills them in for QUIC as for TCP, with
//    JA4's 'q' prefix); sni is also null for a hello without server_name,
//    alpn [] for a hello without ALPN. Addresses as
//    exf::format_addr gives them (dotted quad, RFC 5952).
//    SNI and ALPN are attacker-controlled bytes: they are emitted as JSON
//    strings with every invalid UTF-8 sequence replaced by U+FFFD (nlohmann's
//    error_handler_t::replace, each maximal invalid subpart -> one U+FFFD) and
//    control characters escaped (\u00XX), so every line is valid JSON.
//  * table (default): for people, aligned columns. First the alerts (time,
//    state, severity, the alert's sentence); then the clients grouped by the
//    client entity the rules measure (ENTITY; several addresses of one IPv6
//    /64 under one entity, with a total row "(N addresses)"), entities by
//    bytes_out (descending), addresses by bytes_out within their entity, the
//    first 3 SNIs of each then "(+N)"; with --flows a table of flows, also by
//    bytes_out, with each flow's anomalies. Non-printable or non-ASCII bytes
//    in SNI/ALPN and alert sentences print as \xNN (a backslash as \x5c), so
//    a name cannot move the terminal's cursor.
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "aggregate/aggregator.h"
#include "capture/datapath.h"
#include "common/addr.h"
#include "flows/flow_tracker.h"

namespace exf {

// A detection's finding. Printed as one line {"type":"alert", <fields...>}
// (json) or in an ALERTS section (table). "type" in fields is ignored.
struct Alert {
    nlohmann::ordered_json fields = nlohmann::ordered_json::object();
};

struct ClientReport {
    Addr16 addr{};
    std::string client;
    std::string entity;  // the client entity of the rules: "2001:db8::/64"
    uint64_t tls_flows = 0, bytes_in = 0, bytes_out = 0, packets_in = 0, packets_out = 0;
    uint64_t requests = 0;
    std::vector<std::string> sni;  // distinct, sorted (raw bytes)
};

struct FlowReport {
    Addr16 client_addr{}, server_addr{};
    std::string client, server;
    uint16_t client_port = 0, server_port = 0;
    std::string transport;  // "tcp" | "quic"
    uint64_t first_ns = 0;
    uint64_t bytes_in = 0, bytes_out = 0, packets_in = 0, packets_out = 0;
    uint64_t requests = 0;
    bool reused = false;         // ended by a 5-tuple reuse (final counters from the event)
    std::optional<TlsMeta> tls;  // nullopt: no ClientHello known
    std::vector<std::string> anomalies;
};

struct Ja4Report {
    std::string ja4;
    uint64_t tls_flows = 0, bytes_in = 0, bytes_out = 0;
    std::set<std::string> sni, clients, subnets;  // client entities, subnet entities
};

struct ReplayReport {
    std::vector<ClientReport> clients;  // by address
    std::vector<Ja4Report> ja4;         // by fingerprint
    std::vector<FlowReport> flows;      // by client address, then first seen
    size_t flow_count = 0;              // TLS/QUIC flows, also when flows was not filled in
};

// The report from a datapath's tables, the tracker's records, and the records
// finalized by REUSE events (FlowTracker on_flow_end with finalized set).
// with_flows false: flows stays empty (the clients' SNIs are the same).
// agg: the client prefixes that name each client's entity.
ReplayReport build_report(const Datapath &dp, const FlowTracker &tracker,
                          const std::vector<FlowRecord> &reused, bool with_flows = true,
                          const agg::AggConfig &agg = {});

// One JSON line per client, then (flows) per flow; each line ends with '\n'.
void write_json(const ReplayReport &r, bool flows, std::ostream &out);
// The ALERTS table, then the clients (and flows) tables.
void write_table(const ReplayReport &r, const std::vector<Alert> &alerts, bool flows,
                 std::ostream &out);
// The JSON text of one line (no newline), invalid UTF-8 replaced.
std::string client_json(const ClientReport &c);
std::string flow_json(const FlowReport &f);
std::string alert_json(const Alert &a);
std::string ja4_json(const Ja4Report &j);

}  // namespace exf
