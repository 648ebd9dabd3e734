// SPDX-License-Identifier: Apache-2.0
// exf::PcapReader: link types turned into Ethernet frames, timestamps,
// pcapng, and damaged files (packets before the damage are delivered, then a
// clear error). Every capture is written by the test into a temporary folder.
#include <stdlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "capture/pcap_reader.h"
#include "common/error.h"

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

namespace {

struct TempDir {
    fs::path path;
    TempDir()
    {
        std::string tmpl = (fs::temp_directory_path() / "exf-pcap-XXXXXX").string();
        REQUIRE(mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir()
    {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string write(const std::string &name, const Bytes &data) const
    {
        fs::path p = path / name;
        std::ofstream out(p, std::ios::binary);
        out.write(reinterpret_cast<const char *>(data.data()), std::streamsize(data.size()));
        REQUIRE(out.good());
        return p.string();
    }
};

void put16(Bytes &b, uint16_t v, bool be = false)
{
    if (be) {
        b.push_back(uint8_t(v >> 8));
        b.push_back(uint8_t(v));
    } else {
        b.push_back(uint8_t(v));
        b.push_back(uint8_t(v >> 8));
    }
}
void put32(Bytes &b, uint32_t v, bool be = false)
{
    if (be) {
        put16(b, uint16_t(v >> 16), true);
        put16(b, uint16_t(v), true);
    } else {
        put16(b, uint16_t(v));
        put16(b, uint16_t(v >> 16));
    }
}
void append(Bytes &b, const Bytes &x) { b.insert(b.end(), x.begin(), x.end()); }
Bytes cat(Bytes a, const Bytes &b)
{
    append(a, b);
    return a;
}

// Classic pcap: global header, then records.
struct PcapWriter {
    bool be = false;
    bool nano = false;
    Bytes out;
    explicit PcapWriter(uint32_t linktype, uint32_t snaplen = 65535, bool big_endian = false,
                        bool nanosecond = false)
        : be(big_endian), nano(nanosecond)
    {
        put32(out, nano ? 0xa1b23c4d : 0xa1b2c3d4, be);
        put16(out, 2, be);
        put16(out, 4, be);
        put32(out, 0, be);  // thiszone
        put32(out, 0, be);  // sigfigs
        put32(out, snaplen, be);
        put32(out, linktype, be);
    }
    PcapWriter &record(const Bytes &data, uint32_t sec = 1, uint32_t frac = 0, int64_t caplen = -1,
                       int64_t origlen = -1)
    {
        put32(out, sec, be);
        put32(out, frac, be);
        put32(out, caplen < 0 ? uint32_t(data.size()) : uint32_t(caplen), be);
        put32(out, origlen < 0 ? uint32_t(data.size()) : uint32_t(origlen), be);
        // The data written: what caplen says, or all of it when caplen claims more.
        size_t n = caplen < 0 ? data.size() : std::min(data.size(), size_t(caplen));
        out.insert(out.end(), data.begin(), data.begin() + std::ptrdiff_t(n));
        return *this;
    }
};

// pcapng: section header, interface blocks, enhanced packet blocks.
struct PcapngWriter {
    Bytes out;
    static void block(Bytes &out, uint32_t type, Bytes body)
    {
        while (body.size() % 4)
            body.push_back(0);
        uint32_t len = uint32_t(12 + body.size());
        put32(out, type);
        put32(out, len);
        append(out, body);
        put32(out, len);
    }
    PcapngWriter()
    {
        Bytes shb;
        put32(shb, 0x1A2B3C4D);
        put16(shb, 1);
        put16(shb, 0);
        put32(shb, 0xffffffff);  // section length: unknown
        put32(shb, 0xffffffff);
        block(out, 0x0A0D0D0A, shb);
    }
    PcapngWriter &interface(uint16_t linktype, int tsresol = -1)
    {
        Bytes idb;
        put16(idb, linktype);
        put16(idb, 0);
        put32(idb, 0);  // snaplen: none
        if (tsresol >= 0) {
            put16(idb, 9);  // if_tsresol
            put16(idb, 1);
            idb.push_back(uint8_t(tsresol));
            idb.insert(idb.end(), 3, 0);
            put32(idb, 0);  // opt_endofopt
        }
        block(out, 1, idb);
        return *this;
    }
    PcapngWriter &packet(const Bytes &data, uint64_t ts, uint32_t iface = 0)
    {
        Bytes epb;
        put32(epb, iface);
        put32(epb, uint32_t(ts >> 32));
        put32(epb, uint32_t(ts));
        put32(epb, uint32_t(data.size()));
        put32(epb, uint32_t(data.size()));
        append(epb, data);
        block(out, 6, epb);
        return *this;
    }
};

// An IPv4 / IPv6 packet (header only, then zero bytes) of the given length.
Bytes ipv4(size_t len = 40)
{
    Bytes b(len, 0);
    b[0] = 0x45;
    b[2] = uint8_t(len >> 8);
    b[3] = uint8_t(len);
    b[9] = 6;
    b[12] = 192, b[13] = 0, b[14] = 2, b[15] = 1;
    return b;
}
Bytes ipv6(size_t len = 60)
{
    Bytes b(len, 0);
    b[0] = 0x60;
    b[4] = uint8_t((len - 40) >> 8);
    b[5] = uint8_t(len - 40);
    b[6] = 17;
    b[7] = 64;
    return b;
}
Bytes ether(uint16_t type, const Bytes &l3)
{
    Bytes b = {0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2};
    put16(b, type, true);
    append(b, l3);
    return b;
}
// The synthetic frame the reader is expected to produce.
Bytes synthetic(uint16_t type, const Bytes &l3)
{
    Bytes b(12, 0);
    put16(b, type, true);
    append(b, l3);
    return b;
}

std::vector<exf::Packet> read_all(exf::PcapReader &r)
{
    std::vector<exf::Packet> out;
    exf::Packet p;
    while (r.next(p))
        out.push_back(p);
    return out;
}

std::string open_error(const std::string &path)
{
    try {
        exf::PcapReader r(path);
    } catch (const exf::Error &e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("pcap reader passes Ethernet frames through with ns timestamps and lengths",
          "[unit][pcap]")
{
    TempDir dir;
    Bytes f1 = ether(0x0800, ipv4(40));
    Bytes f2 = ether(0x86DD, ipv6(100));

    SECTION("microsecond pcap, little endian")
    {
        PcapWriter w(1);
        w.record(f1, 1700000000, 123456).record(f2, 1700000001, 999999, 64, 1514);
        exf::PcapReader r(dir.write("us.pcap", w.out));
        CHECK(r.linktype() == 1);
        auto pkts = read_all(r);
        REQUIRE(r.error().empty());
        REQUIRE(pkts.size() == 2);
        CHECK(r.packets_read() == 2);
        CHECK(pkts[0].ts_ns == 1700000000ull * 1000000000ull + 123456000ull);
        CHECK(pkts[0].frame == f1);
        CHECK(pkts[0].orig_len == f1.size());
        CHECK(pkts[1].ts_ns == 1700000001ull * 1000000000ull + 999999000ull);
        // A record cut at 64 bytes by the capture's snaplen: the wire length stays.
        CHECK(pkts[1].frame == Bytes(f2.begin(), f2.begin() + 64));
        CHECK(pkts[1].cap_len == 64);
        CHECK(pkts[1].orig_len == 1514);
    }
    SECTION("nanosecond pcap, big endian")
    {
        PcapWriter w(1, 65535, true, true);
        w.record(f1, 1700000000, 123456789);
        exf::PcapReader r(dir.write("ns.pcap", w.out));
        auto pkts = read_all(r);
        REQUIRE(r.error().empty());
        REQUIRE(pkts.size() == 1);
        CHECK(pkts[0].ts_ns == 1700000000ull * 1000000000ull + 123456789ull);
        CHECK(pkts[0].frame == f1);
    }
    SECTION("pcapng, nanosecond and default (microsecond) resolution")
    {
        PcapngWriter w;
        w.interface(1, 9).packet(f1, 1234567890123456789ull).packet(f2, 1234567890123456790ull);
        exf::PcapReader r(dir.write("ns.pcapng", w.out));
        CHECK(r.linktype() == 1);
        auto pkts = read_all(r);
        REQUIRE(r.error().empty());
        REQUIRE(pkts.size() == 2);
        CHECK(pkts[0].ts_ns == 1234567890123456789ull);
        CHECK(pkts[1].ts_ns == 1234567890123456790ull);
        CHECK(pkts[0].frame == f1);
        CHECK(pkts[1].frame == f2);

        PcapngWriter u;
        u.interface(1).packet(f1, 1500000);  // 1.5 s in microseconds
        exf::PcapReader ru(dir.write("us.pcapng", u.out));
        auto upkts = read_all(ru);
        REQUIRE(upkts.size() == 1);
        CHECK(upkts[0].ts_ns == 1500000000ull);
    }
}

TEST_CASE("pcap reader gives other link types a synthetic Ethernet header", "[unit][pcap]")
{
    TempDir dir;
    const Bytes v4 = ipv4(48), v6 = ipv6(72);
    struct Case {
        const char *name;
        uint32_t linktype;
        Bytes link_header_v4, link_header_v6;
    };
    Bytes sll_v4 = {0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00};
    Bytes sll_v6 = {0, 4, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x86, 0xdd};
    Bytes sll2_v4 = {0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0};
    Bytes sll2_v6 = {0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 4, 6, 1, 2, 3, 4, 5, 6, 0, 0};
    const std::vector<Case> cases = {
        {"Linux cooked SLL", 113, sll_v4, sll_v6},
        {"Linux cooked SLL2", 276, sll2_v4, sll2_v6},
        {"raw IP (LINKTYPE_RAW 101)", 101, {}, {}},
        {"raw IP (DLT_RAW 12)", 12, {}, {}},
        {"raw IP (OpenBSD DLT_RAW 14)", 14, {}, {}},
        {"BSD loopback, little-endian AF_INET / AF_INET6 (macOS 30)",
         0,
         {2, 0, 0, 0},
         {30, 0, 0, 0}},
        {"BSD loopback, big-endian AF_INET / AF_INET6 (FreeBSD 28)",
         0,
         {0, 0, 0, 2},
         {0, 0, 0, 28}},
        {"OpenBSD loopback DLT_LOOP, network order (AF_INET6 24)",
         108,
         {0, 0, 0, 2},
         {0, 0, 0, 24}},
        {"PPP with address and control", 9, {0xff, 0x03, 0x00, 0x21}, {0xff, 0x03, 0x00, 0x57}},
        {"PPP, compressed address and protocol", 9, {0x21}, {0x00, 0x57}},
        {"PPP in HDLC framing (PPP_SERIAL 50)",
         50,
         {0xff, 0x03, 0x00, 0x21},
         {0xff, 0x03, 0x00, 0x57}},
        {"Cisco HDLC in PPP_SERIAL 50", 50, {0x0f, 0x00, 0x08, 0x00}, {0x8f, 0x00, 0x86, 0xdd}},
        {"Cisco HDLC (104)", 104, {0x0f, 0x00, 0x08, 0x00}, {0x0f, 0x00, 0x86, 0xdd}},
        {"PPP with direction byte (204)", 204, {0x01, 0xff, 0x03, 0x00, 0x21}, {0x00, 0x00, 0x57}},
        {"pppd PPP (166)", 166, {0x00, 0x03, 0x00, 0x21}, {0x01, 0x03, 0x00, 0x57}},
        {"Cisco HDLC with direction byte (205)",
         205,
         {0x00, 0x0f, 0x00, 0x08, 0x00},
         {0x01, 0x0f, 0x00, 0x86, 0xdd}},
    };
    for (const auto &c : cases) {
        SECTION(c.name)
        {
            PcapWriter w(c.linktype);
            w.record(cat(c.link_header_v4, v4), 10, 1);
            w.record(cat(c.link_header_v6, v6), 10, 2, -1, 9000);
            exf::PcapReader r(dir.write("lt.pcap", w.out));
            auto pkts = read_all(r);
            INFO(c.name << ", libpcap link type " << r.linktype());
            REQUIRE(r.error().empty());
            REQUIRE(pkts.size() == 2);
            CHECK(pkts[0].frame == synthetic(0x0800, v4));
            CHECK(pkts[1].frame == synthetic(0x86DD, v6));
            CHECK(pkts[0].ts_ns == 10000001000ull);
            CHECK(pkts[1].orig_len == 9000);
        }
    }
    SECTION("IPv4 and IPv6 link types (228, 229) take the ethertype from the link type")
    {
        PcapWriter w4(228);
        w4.record(v4);
        exf::PcapReader r4(dir.write("v4.pcap", w4.out));
        auto p4 = read_all(r4);
        REQUIRE(p4.size() == 1);
        CHECK(p4[0].frame == synthetic(0x0800, v4));
        PcapWriter w6(229);
        w6.record(v6);
        exf::PcapReader r6(dir.write("v6.pcap", w6.out));
        auto p6 = read_all(r6);
        REQUIRE(p6.size() == 1);
        CHECK(p6[0].frame == synthetic(0x86DD, v6));
    }
    SECTION("a link header naming something else than IP gives ethertype 0 (not IP)")
    {
        PcapWriter w(0);
        w.record(cat({7, 0, 0, 0}, v4));  // AF 7: not IPv4/IPv6
        PcapWriter p(9);
        p.record(cat({0xc0, 0x21}, Bytes(8, 0)));  // LCP
        PcapWriter raw(101);
        raw.record(Bytes(20, 0x55));  // version nibble 5
        const std::vector<std::pair<std::string, const PcapWriter *>> files = {
            {"null.pcap", &w}, {"lcp.pcap", &p}, {"raw.pcap", &raw}};
        for (const auto &[name, wr] : files) {
            exf::PcapReader r(dir.write(name, wr->out));
            auto pkts = read_all(r);
            INFO(name);
            REQUIRE(pkts.size() == 1);
            REQUIRE(pkts[0].frame.size() >= 14);
            CHECK(pkts[0].frame[12] == 0);
            CHECK(pkts[0].frame[13] == 0);
        }
    }
    SECTION("a packet shorter than its link header gives an empty frame, reading goes on")
    {
        PcapWriter w(113);
        w.record(Bytes(10, 0)).record(cat(sll_v4, v4));
        exf::PcapReader r(dir.write("short.pcap", w.out));
        auto pkts = read_all(r);
        REQUIRE(r.error().empty());
        REQUIRE(pkts.size() == 2);
        CHECK(pkts[0].frame.empty());
        CHECK(pkts[0].cap_len == 10);
        CHECK(pkts[1].frame == synthetic(0x0800, v4));
    }
}

TEST_CASE("pcap reader reuses the frame buffer after warm-up", "[unit][pcap]")
{
    TempDir dir;
    PcapWriter w(113);
    Bytes sll = {0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00};
    w.record(cat(sll, ipv4(1500)));
    for (int i = 0; i < 50; i++)
        w.record(cat(sll, ipv4(40 + size_t(i) * 20)));
    exf::PcapReader r(dir.write("reuse.pcap", w.out));
    exf::Packet p;
    REQUIRE(r.next(p));
    const uint8_t *buf = p.frame.data();
    size_t cap = p.frame.capacity();
    while (r.next(p)) {
        CHECK(p.frame.data() == buf);
        CHECK(p.frame.capacity() == cap);
    }
    CHECK(r.packets_read() == 51);
    CHECK(r.error().empty());
}

TEST_CASE("pcap reader reports damaged files after delivering the good packets", "[unit][pcap]")
{
    TempDir dir;
    const Bytes f = ether(0x0800, ipv4(60));  // 74 bytes
    PcapWriter good(1);
    good.record(f, 1).record(f, 2);

    SECTION("record cut short in its data")
    {
        PcapWriter w = good;
        w.record(f, 3);
        w.out.resize(w.out.size() - 30);
        auto path = dir.write("cut-data.pcap", w.out);
        exf::PcapReader r(path);
        auto pkts = read_all(r);
        CHECK(pkts.size() == 2);
        CHECK(r.packets_read() == 2);
        CHECK_THAT(r.error(), Catch::StartsWith(path + ": packet 3: "));
        CHECK_THAT(r.error(), Catch::Contains("truncated dump file") &&
                                  Catch::Contains("74 captured bytes, only got 44"));
        exf::Packet p;
        CHECK_FALSE(r.next(p));  // stays at the end
    }
    SECTION("record header cut short")
    {
        PcapWriter w = good;
        w.out.insert(w.out.end(), {1, 2, 3, 4, 5, 6, 7});
        auto path = dir.write("cut-header.pcap", w.out);
        exf::PcapReader r(path);
        auto pkts = read_all(r);
        CHECK(pkts.size() == 2);
        CHECK_THAT(r.error(), Catch::StartsWith(path + ": packet 3: ") &&
                                  Catch::Contains("16 header bytes, only got 7"));
    }
    SECTION("huge capture length field")
    {
        PcapWriter w = good;
        w.record(f, 3, 0, 0xfffffff0, 0xfffffff0);
        w.record(f, 4);
        auto path = dir.write("huge.pcap", w.out);
        exf::PcapReader r(path);
        auto pkts = read_all(r);
        CHECK(pkts.size() == 2);
        CHECK_THAT(r.error(), Catch::StartsWith(path + ": packet 3: ") &&
                                  Catch::Contains("invalid packet capture length 4294967280"));
    }
    SECTION("huge original length with a sane capture length is delivered as is")
    {
        PcapWriter w(1);
        w.record(f, 1, 0, -1, 0xffffffff);
        exf::PcapReader r(dir.write("huge-orig.pcap", w.out));
        auto pkts = read_all(r);
        REQUIRE(r.error().empty());
        REQUIRE(pkts.size() == 1);
        CHECK(pkts[0].orig_len == 0xffffffffu);
        CHECK(pkts[0].frame == f);
    }
    SECTION("snaplen 0 in the file header: packets are read")
    {
        PcapWriter w(1, 0);
        w.record(f, 1).record(f, 2);
        exf::PcapReader r(dir.write("snap0.pcap", w.out));
        auto pkts = read_all(r);
        CHECK(r.error().empty());
        REQUIRE(pkts.size() == 2);
        CHECK(pkts[1].frame == f);
    }
    SECTION("only a file header: no packets, no error")
    {
        PcapWriter w(1);
        exf::PcapReader r(dir.write("empty-body.pcap", w.out));
        CHECK(read_all(r).empty());
        CHECK(r.error().empty());
    }
    SECTION("pcapng cut in a block, and a block with an absurd length")
    {
        PcapngWriter w;
        w.interface(1, 6).packet(f, 1).packet(f, 2).packet(f, 3);
        Bytes cut = w.out;
        cut.resize(cut.size() - 10);
        auto path = dir.write("cut.pcapng", cut);
        exf::PcapReader r(path);
        CHECK(read_all(r).size() == 2);
        CHECK_THAT(r.error(), Catch::StartsWith(path + ": packet 3: ") &&
                                  Catch::Contains("truncated pcapng dump file"));

        PcapngWriter one;
        one.interface(1, 6).packet(f, 1);
        Bytes bad = w.out;
        const size_t second = one.out.size();  // where the second packet block starts
        bad[second + 4] = 0xf0, bad[second + 5] = 0xff, bad[second + 6] = 0xff;
        bad[second + 7] = 0x7f;
        auto badpath = dir.write("badlen.pcapng", bad);
        exf::PcapReader rb(badpath);
        CHECK(read_all(rb).size() == 1);
        CHECK_THAT(rb.error(), Catch::StartsWith(badpath + ": packet 2: ") &&
                                   Catch::Contains("block size 2147483632"));
    }
    SECTION("pcapng packet on an interface that was never described")
    {
        PcapngWriter w;
        w.interface(1).packet(f, 1).packet(f, 2, 5);
        auto path = dir.write("noif.pcapng", w.out);
        exf::PcapReader r(path);
        CHECK(read_all(r).size() == 1);
        CHECK_THAT(r.error(),
                   Catch::StartsWith(path + ": packet 2: ") && Catch::Contains("interface 5"));
    }
}

TEST_CASE("pcap reader refuses files it cannot read with the file named", "[unit][pcap]")
{
    TempDir dir;
    const Bytes f = ether(0x0800, ipv4(60));

    SECTION("wrong magic")
    {
        PcapWriter w(1);
        w.record(f);
        w.out[0] = 0x12, w.out[1] = 0x34, w.out[2] = 0x56, w.out[3] = 0x78;
        auto path = dir.write("magic.pcap", w.out);
        CHECK(open_error(path) == path + ": cannot read capture: unknown file format "
                                         "(first bytes 12 34 56 78; expected pcap or pcapng)");
    }
    SECTION("gzip-compressed: recognised by its magic, with the way to decompress it")
    {
        // A gzip member header (RFC 1952: 1f 8b, deflate, no flags) and some body.
        auto path = dir.write("capture.pcap.gz",
                              Bytes{0x1f, 0x8b, 0x08, 0x00, 0, 0, 0,  0,  0,  3,  1,  2,  3,
                                    4,    5,    6,    7,    8, 9, 10, 11, 12, 13, 14, 15, 16});
        CHECK(open_error(path) == path + ": gzip-compressed capture; decompress it first (zcat " +
                                      path + " | exfilmon replay -)");
    }
    SECTION("empty file and truncated file header")
    {
        auto empty = dir.write("empty.pcap", {});
        CHECK_THAT(open_error(empty), Catch::StartsWith(empty + ": cannot read capture: ") &&
                                          Catch::Contains("truncated dump file"));
        PcapWriter w(1);
        w.out.resize(10);
        auto cut = dir.write("cut-header.pcap", w.out);
        CHECK_THAT(open_error(cut), Catch::StartsWith(cut + ": cannot read capture: ") &&
                                        Catch::Contains("24 file header bytes, only got 6"));
    }
    SECTION("missing file")
    {
        auto path = (dir.path / "nope.pcap").string();
        CHECK(open_error(path) == path + ": cannot read capture: No such file or directory");
    }
    SECTION("unsupported link type")
    {
        PcapWriter w(147);  // LINKTYPE_USER0
        w.record(f);
        auto path = dir.write("user0.pcap", w.out);
        CHECK_THAT(open_error(path), Catch::StartsWith(path + ": unsupported link type 147") &&
                                         Catch::Contains("supported: Ethernet"));
        PcapWriter w2(105);  // IEEE 802.11
        w2.record(f);
        auto path2 = dir.write("wifi.pcap", w2.out);
        CHECK_THAT(open_error(path2),
                   Catch::StartsWith(path2 + ": unsupported link type 105 (IEEE802_11"));
        CHECK_FALSE(exf::pcap_linktype_supported(105));
        CHECK(exf::pcap_linktype_supported(276));
    }
    SECTION("pcapng with interfaces of different link types")
    {
        PcapngWriter w;
        w.interface(1).interface(113).packet(f, 1);
        auto path = dir.write("mixed.pcapng", w.out);
        // libpcap refuses the second interface block when it reads it.
        std::string err = open_error(path);
        if (err.empty()) {
            exf::PcapReader r(path);
            CHECK(read_all(r).empty());
            err = r.error();
            CHECK_THAT(err, Catch::StartsWith(path + ": packet 1: "));
        }
        CHECK_THAT(err, Catch::Contains("type 113 different from the type of the first interface"));
    }
}
