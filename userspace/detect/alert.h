// SPDX-License-Identifier: Apache-2.0
#pragma once
// What a detection says: one record per alert transition. The detector
// (detect/detector.h) fills it; the outputs (output/) render it in each format.
//
// Every string marked "wire" holds attacker-controlled bytes exactly as they
// came off the wire (any byte, any length up to 255): each format escapes or
// sanitizes them itself and caps their length.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace exf::detect {

// open: the condition held for `sustain` evaluations; update: it still holds
// (sent at most every `realert`); resolved: it has been false for
// `resolve_after`; summary: a storm of new alerts for one rule was cut to the
// storm limit, `suppressed` counts the entities left out.
enum class AlertState : uint8_t { open, update, resolved, summary };
enum class Severity : uint8_t { info, warning, critical };

const char *state_name(AlertState s);   // "open", "update", "resolved", "summary"
const char *severity_name(Severity s);  // "info", "warning", "critical"

struct NamedCount {
    std::string name;    // SNI (wire) or JA4
    uint64_t value = 0;  // SNI: bytes out (estimate); JA4: flows
};

// One edge host's part of a fleet alert's entity.
struct SensorShare {
    std::string name;        // the sensor's [fleet] sensor name
    uint64_t bytes_out = 0;  // over the rule's window
    double share = 0;        // of the entity's bytes out, 0..1
};

struct AlertRecord {
    uint64_t time_ms = 0;  // Unix epoch milliseconds (packet time in replay)
    std::string host;      // the sensor's host name
    std::string id;        // 16 lowercase hex digits, the same for open/update/resolved
    AlertState state = AlertState::open;
    std::string rule;  // rule name (from the configuration)
    Severity severity = Severity::warning;
    bool shadow = false;  // rule in shadow mode: logged, never sent
    // The rule's vocabulary: client | subnet | sni | client_sni | cohort | host |
    // ja4 | ja4_sni.
    std::string entity_kind;
    // The entity for people: "203.0.113.7", "203.0.113.0/24",
    // "2001:db8:1:2::/64", the SNI (wire), "203.0.113.7 -> api.example.com"
    // (wire), the cohort label, the sensor host name, the JA4, or
    // "<JA4> -> api.example.com" (wire).
    std::string entity;
    std::optional<std::string> client;  // client, client_sni: the address (masked prefix as "a/len"
                                        // when not a full address)
    std::optional<std::string> subnet;  // subnet: "203.0.113.0/24"
    std::optional<std::string> sni;     // sni, client_sni, ja4_sni: the API host (wire)
    std::optional<std::string> ja4;     // ja4, ja4_sni: the fingerprint (the cohort's)
    std::optional<std::string> cohort;  // cohort: the label
    std::string metric;  // bytes_out | bytes_in | tls_flows | requests | concurrent_flows |
                         // distinct_clients | out_in_ratio | distinct_subnets | distinct_sensors
    uint64_t window_ms = 0;
    double value = 0;                // the metric over the window
    double threshold = 0;            // what it was compared with (after SNI scaling; for
                                     // baseline rules max(floor, factor * baseline))
    std::optional<double> baseline;  // baseline rules: the learned level (EWMA)
    // The entity's figures over the rule's window at time_ms.
    uint64_t bytes_out = 0, bytes_in = 0, tls_flows = 0;
    uint32_t peak_concurrent = 0;
    uint64_t requests = 0;                     // API calls (client turns, docs/datapath.md)
    std::optional<uint32_t> distinct_clients;  // subnet, cohort, sni, host, ja4, ja4_sni
    std::optional<uint32_t> distinct_subnets;  // cohort, sni, host, ja4, ja4_sni
    std::vector<NamedCount> top_snis;          // heaviest first, at most 4 (wire names)
    std::vector<NamedCount> top_ja4;           // most frequent first, at most 4
    std::vector<NamedCount> top_clients;       // ja4, ja4_sni: client entity, TLS flows
                                               // opened (estimate); heaviest first, at most 4
    uint64_t first_seen_ms = 0;                // Unix epoch ms the entity was first seen
    uint64_t opened_ms = 0;                    // Unix epoch ms the alert opened
    uint32_t count = 0;                        // evaluations the condition held since it opened
    uint64_t suppressed = 0;                   // summary: entities left out of this storm
    // "local": one sensor's own rules (the formats leave scope and sensors
    // out); "fleet": the fleet evaluator's, over the sums of all sensors,
    // with the sensors the entity's traffic went through, heaviest first.
    std::string scope = "local";
    std::optional<uint32_t> distinct_sensors;  // fleet: sensors the entity used
    std::vector<SensorShare> sensors;          // fleet: at most 16, heaviest first
    bool fleet() const { return scope == "fleet"; }
    // Bytes out per API call over the window (rounded down); none without
    // a call.
    std::optional<uint64_t> bytes_per_request() const
    {
        if (requests == 0)
            return std::nullopt;
        return bytes_out / requests;
    }
};

}  // namespace exf::detect
