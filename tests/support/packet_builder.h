// SPDX-License-Identifier: Apache-2.0
#pragma once
// Frames built in tests: Ethernet, VLAN tags, IPv4 (options) or IPv6
// (extension headers), TCP or UDP, payload. Lengths and checksums are
// filled in unless a test overrides them to build broken packets.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace exf::test {

using Bytes = std::vector<uint8_t>;

enum TcpFlag : uint8_t { FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10 };

struct Ipv6Ext {
    uint8_t type;  // 0 hop-by-hop, 43 routing, 60 destination options, 44 fragment, 51 AH
    Bytes body;    // after the next-header byte; padded to the header's unit
    uint16_t frag_offset = 0;  // fragment header only, in 8-byte units
    bool more_fragments = false;
};

struct FrameSpec {
    std::string src = "192.0.2.10";
    std::string dst = "198.51.100.1";
    uint16_t sport = 40000;
    uint16_t dport = 443;
    uint8_t proto = 6;  // 6 TCP, 17 UDP, anything else: raw L4 bytes = payload
    std::vector<std::pair<uint16_t, uint16_t>> vlans;  // (tpid, vid), outermost first
    uint8_t tcp_flags = ACK;
    uint32_t seq = 1000;
    uint32_t ack = 0;
    Bytes payload;
    Bytes ip_options;            // IPv4 options (padded to 4 bytes)
    std::vector<Ipv6Ext> v6ext;  // IPv6 extension headers, in order
    uint16_t frag_off = 0;       // IPv4 fragment offset (8-byte units)
    bool more_fragments = false;
    // Overrides for broken packets.
    std::optional<uint8_t> ihl;       // IPv4 header length field (words)
    std::optional<uint16_t> ip_len;   // IPv4 total length / IPv6 payload length
    std::optional<uint8_t> tcp_doff;  // TCP data offset (words)
    uint8_t tcp_option_words = 0;     // NOP options appended (4 bytes each)
};

Bytes build_frame(const FrameSpec &s);
// The same flow in the other direction (addresses and ports swapped).
FrameSpec reverse(FrameSpec s);

// A syntactically valid TLS 1.2-record ClientHello of exactly total_len
// bytes (record header included; padded with a padding extension), carrying
// server_name sni.
Bytes client_hello(size_t total_len, const std::string &sni = "api.example.com");

// A QUIC v1 long-header Initial datagram payload of len bytes (not encrypted:
// the kernel only looks at the header).
Bytes quic_initial(size_t len, uint32_t version = 1);

}  // namespace exf::test
