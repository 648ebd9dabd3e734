// SPDX-License-Identifier: Apache-2.0
#include "support/packet_builder.h"

#include <arpa/inet.h>

#include <stdexcept>

namespace exf::test {

namespace {
void put16(Bytes &b, uint16_t v)
{
    b.push_back(uint8_t(v >> 8));
    b.push_back(uint8_t(v));
}
void put32(Bytes &b, uint32_t v)
{
    put16(b, uint16_t(v >> 16));
    put16(b, uint16_t(v));
}
void set16(Bytes &b, size_t at, uint16_t v)
{
    b[at] = uint8_t(v >> 8);
    b[at + 1] = uint8_t(v);
}
uint16_t csum(const uint8_t *p, size_t n)
{
    uint32_t s = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        s += uint32_t(p[i] << 8 | p[i + 1]);
    if (n & 1)
        s += uint32_t(p[n - 1] << 8);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return uint16_t(~s);
}
}  // namespace

Bytes build_frame(const FrameSpec &s)
{
    bool v6 = s.src.find(':') != std::string::npos;
    uint8_t src[16], dst[16];
    if (inet_pton(v6 ? AF_INET6 : AF_INET, s.src.c_str(), src) != 1 ||
        inet_pton(v6 ? AF_INET6 : AF_INET, s.dst.c_str(), dst) != 1)
        throw std::invalid_argument("bad address in FrameSpec");

    // L4
    Bytes l4;
    if (s.proto == 6) {
        put16(l4, s.sport);
        put16(l4, s.dport);
        put32(l4, s.seq);
        put32(l4, s.ack);
        uint8_t words = uint8_t(5 + s.tcp_option_words);
        l4.push_back(uint8_t((s.tcp_doff ? *s.tcp_doff : words) << 4));
        l4.push_back(s.tcp_flags);
        put16(l4, 65535);
        put16(l4, 0);
        put16(l4, 0);
        for (int i = 0; i < s.tcp_option_words * 4; i++)
            l4.push_back(1);  // NOP
    } else if (s.proto == 17) {
        put16(l4, s.sport);
        put16(l4, s.dport);
        put16(l4, uint16_t(8 + s.payload.size()));
        put16(l4, 0);
    }
    l4.insert(l4.end(), s.payload.begin(), s.payload.end());

    Bytes f(12, 0);
    f[0] = 0x02;
    f[6] = 0x02;
    f[11] = 0x01;
    for (auto &[tpid, vid] : s.vlans) {
        put16(f, tpid);
        put16(f, vid);
    }
    if (!v6) {
        put16(f, 0x0800);
        size_t ip = f.size();
        Bytes opts = s.ip_options;
        while (opts.size() % 4)
            opts.push_back(0);
        uint8_t ihl = uint8_t(5 + opts.size() / 4);
        f.push_back(uint8_t(0x40 | (s.ihl ? *s.ihl : ihl)));
        f.push_back(0);
        put16(f, s.ip_len ? *s.ip_len : uint16_t(ihl * 4 + l4.size()));
        put16(f, 0x1234);
        put16(f, uint16_t((s.more_fragments ? 0x2000 : 0) | (s.frag_off & 0x1fff)));
        f.push_back(64);
        f.push_back(s.proto);
        put16(f, 0);
        f.insert(f.end(), src, src + 4);
        f.insert(f.end(), dst, dst + 4);
        f.insert(f.end(), opts.begin(), opts.end());
        set16(f, ip + 10, csum(&f[ip], size_t(ihl) * 4));
    } else {
        put16(f, 0x86DD);
        Bytes ext;
        uint8_t first_next = s.v6ext.empty() ? s.proto : s.v6ext[0].type;
        for (size_t i = 0; i < s.v6ext.size(); i++) {
            auto &e = s.v6ext[i];
            uint8_t next = i + 1 < s.v6ext.size() ? s.v6ext[i + 1].type : s.proto;
            ext.push_back(next);
            if (e.type == 44) {
                ext.push_back(0);
                put16(ext, uint16_t((e.frag_offset << 3) | (e.more_fragments ? 1 : 0)));
                put32(ext, 0xabcd);
            } else if (e.type == 51) {
                Bytes body = e.body;
                while ((body.size() + 2) % 4)
                    body.push_back(0);
                ext.push_back(uint8_t((body.size() + 2) / 4 - 2));
                ext.insert(ext.end(), body.begin(), body.end());
            } else {
                Bytes body = e.body;
                while ((body.size() + 2) % 8)
                    body.push_back(0);
                ext.push_back(uint8_t((body.size() + 2) / 8 - 1));
                ext.insert(ext.end(), body.begin(), body.end());
            }
        }
        put32(f, 0x60000000);
        put16(f, s.ip_len ? *s.ip_len : uint16_t(ext.size() + l4.size()));
        f.push_back(first_next);
        f.push_back(64);
        f.insert(f.end(), src, src + 16);
        f.insert(f.end(), dst, dst + 16);
        f.insert(f.end(), ext.begin(), ext.end());
    }
    f.insert(f.end(), l4.begin(), l4.end());
    return f;
}

Bytes client_hello(size_t total_len, const std::string &sni)
{
    // Fixed parts: record(5) + handshake hdr(4) + version(2) + random(32) +
    // sid(1) + ciphers(2+4) + compression(2) + ext len(2) + SNI ext.
    Bytes ext;
    put16(ext, 0x0000);
    put16(ext, uint16_t(sni.size() + 5));
    put16(ext, uint16_t(sni.size() + 3));
    ext.push_back(0);
    put16(ext, uint16_t(sni.size()));
    ext.insert(ext.end(), sni.begin(), sni.end());
    size_t fixed = 5 + 4 + 2 + 32 + 1 + 6 + 2 + 2 + ext.size();
    if (total_len < fixed + 4)
        throw std::invalid_argument("client_hello: too short");
    size_t pad = total_len - fixed - 4;
    put16(ext, 0x0015);  // padding extension
    put16(ext, uint16_t(pad));
    ext.insert(ext.end(), pad, 0);

    Bytes body;
    put16(body, 0x0303);
    for (int i = 0; i < 32; i++)
        body.push_back(uint8_t(i));
    body.push_back(0);
    put16(body, 4);
    put16(body, 0x1301);
    put16(body, 0xc02f);
    body.push_back(1);
    body.push_back(0);
    put16(body, uint16_t(ext.size()));
    body.insert(body.end(), ext.begin(), ext.end());

    Bytes out;
    out.push_back(0x16);
    put16(out, 0x0301);
    put16(out, uint16_t(body.size() + 4));
    out.push_back(0x01);
    out.push_back(uint8_t(body.size() >> 16));
    put16(out, uint16_t(body.size()));
    out.insert(out.end(), body.begin(), body.end());
    return out;
}

Bytes quic_initial(size_t len, uint32_t version)
{
    Bytes b;
    b.push_back(0xc3);  // long header, fixed bit, Initial, pn length 4
    put32(b, version);
    b.push_back(8);
    for (int i = 0; i < 8; i++)
        b.push_back(uint8_t(0xa0 + i));
    b.push_back(0);  // SCID length
    b.push_back(0);  // token length
    while (b.size() < len)
        b.push_back(uint8_t(b.size()));
    b.resize(len);
    return b;
}

FrameSpec reverse(FrameSpec s)
{
    std::swap(s.src, s.dst);
    std::swap(s.sport, s.dport);
    return s;
}

}  // namespace exf::test
