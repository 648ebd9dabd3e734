// SPDX-License-Identifier: Apache-2.0
#include "support/pcap_truth.h"

#include <pcap/pcap.h>

#include <algorithm>
#include <cstring>

#include <catch2/catch.hpp>

namespace exf::test {

namespace {
uint16_t be16(const uint8_t *p) { return uint16_t(p[0] << 8 | p[1]); }

}  // namespace

// Per-flow, per-direction packets and IP-level bytes (IPv4 total length,
// IPv6 payload length + 40) of TCP (or, with ip_proto 17, UDP) packets from
// or to one of `clients`.
PcapTruth read_pcap(const std::filesystem::path &file, const std::set<exf::Addr16> &clients,
                    uint8_t ip_proto)
{
    REQUIRE((ip_proto == 6 || ip_proto == 17));
    const uint32_t l4_min = ip_proto == 6 ? 14 : 8;  // through TCP flags / the UDP header
    char err[PCAP_ERRBUF_SIZE] = {};
    pcap_t *p = pcap_open_offline(file.c_str(), err);
    INFO("pcap " << file.string() << ": " << err);
    REQUIRE(p != nullptr);
    REQUIRE(pcap_datalink(p) == DLT_EN10MB);
    PcapTruth t;
    pcap_pkthdr *h;
    const u_char *d;
    while (pcap_next_ex(p, &h, &d) == 1) {
        uint32_t cap = h->caplen, l3 = 14;
        if (cap < l3) {
            t.other_frames++;
            continue;
        }
        uint16_t et = be16(d + 12);
        exf::Addr16 src{}, dst{};
        uint32_t ip_len = 0, l4 = 0;
        uint8_t proto = 0;
        if (et == 0x0800 && cap >= l3 + 20) {
            const uint8_t *ip = d + l3;
            ip_len = be16(ip + 2);
            if (ip_len == 0)  // TSO without a length
                ip_len = h->len - l3;
            proto = ip[9];
            l4 = l3 + (ip[0] & 0x0f) * 4u;
            src[10] = src[11] = dst[10] = dst[11] = 0xff;
            std::memcpy(&src[12], ip + 12, 4);
            std::memcpy(&dst[12], ip + 16, 4);
        } else if (et == 0x86dd && cap >= l3 + 40) {
            const uint8_t *ip = d + l3;
            ip_len = be16(ip + 4) + 40u;
            if (ip_len == 40)  // BIG TCP
                ip_len = h->len - l3;
            proto = ip[6];  // this test's traffic has no extension headers
            l4 = l3 + 40;
            std::memcpy(src.data(), ip + 8, 16);
            std::memcpy(dst.data(), ip + 24, 16);
        }
        if (proto != ip_proto || cap < l4 + l4_min) {
            t.other_frames++;
            continue;
        }
        (ip_proto == 6 ? t.tcp_frames : t.udp_frames)++;
        const uint8_t *th = d + l4;
        uint16_t sp = be16(th), dp = be16(th + 2);
        uint8_t flags = ip_proto == 6 ? th[13] : 0;
        bool in = clients.count(src) > 0;
        if (!in && !clients.count(dst))
            continue;
        Tuple k = in ? Tuple{src, sp, dst, dp} : Tuple{dst, dp, src, sp};
        auto &f = t.flows[k];
        auto &dc = in ? f.in : f.out;
        dc.pkts++;
        dc.bytes += ip_len;
        dc.max_ip_len = std::max(dc.max_ip_len, ip_len);
        if (in && (flags & 0x12) == 0x02)
            f.client_syn = true;
    }
    pcap_close(p);
    return t;
}

}  // namespace exf::test
