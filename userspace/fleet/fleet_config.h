// SPDX-License-Identifier: Apache-2.0
#pragma once
// [fleet]: where an edge sensor sends its traffic summaries, and where the
// fleet evaluator reads them (docs/fleet.md). Absent: no export.
#include <cstdint>
#include <string>

namespace exf::fleet {

struct FleetConfig {
    bool enabled = false;  // a [fleet] table is present
    // ClickHouse's HTTP interface: http://HOST[:PORT] or https://...
    std::string clickhouse = "http://127.0.0.1:8123";
    std::string database = "exfilmon";
    std::string user = "default";
    std::string password_file;  // "" : no password; never inline
    std::string sensor;         // "" : the host name
    uint64_t interval_ms = 10000;
    // How long one statement may take, on this side (the HTTP request) and
    // on the server's (max_execution_time): the exporter's inserts and the
    // evaluator's reads. Large fleets raise it (docs/fleet.md, "Sizing").
    uint64_t timeout_ms = 10000;
    // The fleet evaluator drops traffic older than this (whole day
    // partitions; ClickHouse 18.16 has no TTL). At least the longest rule
    // window.
    uint64_t retention_ms = 30ull * 86'400'000;
    // The evaluator keeps every window in memory, reading each batch once
    // ("memory"), or runs each rule as a query over the window at every
    // evaluation ("sql": exact at every window's old end, but its cost
    // grows with the window's rows).
    bool evaluate_in_memory = true;
    // https: the CA the server's certificate must chain to ("" : the
    // system's), and an optional client certificate.
    std::string ca_file, cert_file, key_file;

    bool operator==(const FleetConfig &) const = default;
};

}  // namespace exf::fleet
