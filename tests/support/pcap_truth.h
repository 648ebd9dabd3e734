// SPDX-License-Identifier: Apache-2.0
#pragma once
// An independent count of TCP (or UDP) traffic from a tcpdump capture: per
// flow and direction, packets and IP-level bytes (IPv4 total length, IPv6
// payload length + 40), for flows of the given client addresses.
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>

#include "common/addr.h"

namespace exf::test {

struct Tuple {
    exf::Addr16 client{};
    uint16_t cport = 0;
    exf::Addr16 server{};
    uint16_t sport = 0;
    auto operator<=>(const Tuple &) const = default;
};

struct DirCount {
    uint64_t pkts = 0, bytes = 0;
    uint32_t max_ip_len = 0;
};

struct FlowTruth {
    DirCount in, out;  // in: client to server
    bool client_syn = false;
};

struct PcapTruth {
    std::map<Tuple, FlowTruth> flows;
    uint64_t tcp_frames = 0;
    uint64_t udp_frames = 0;    // with ip_proto 17
    uint64_t other_frames = 0;  // neither ip_proto nor parseable
};

// ip_proto: 6 counts TCP flows, 17 UDP flows (client_syn stays false).
PcapTruth read_pcap(const std::filesystem::path &file, const std::set<exf::Addr16> &clients,
                    uint8_t ip_proto = 6);

}  // namespace exf::test
