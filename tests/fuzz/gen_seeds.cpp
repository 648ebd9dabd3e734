// SPDX-License-Identifier: Apache-2.0
// Writes the fuzz targets' seed corpus: exf_fuzz_seeds <dir> [source dir]
// creates <dir>/<target>/<name> for every target of tests/fuzz, from the
// test builders (tests/support) and, for the flow tracker, from the events
// the userspace datapath emits for the datapath seeds. Deterministic: the
// committed tests/fuzz/corpus is its output.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "capture/datapath.h"
#include "fuzz_util.h"
#include "support/packet_builder.h"
#include "support/tls_builder.h"

namespace fs = std::filesystem;
using namespace exf;
using namespace exf::test;

namespace {

fs::path g_root;

void put(const std::string &target, const std::string &name, const std::vector<uint8_t> &b)
{
    fs::create_directories(g_root / target);
    std::ofstream(g_root / target / name, std::ios::binary)
        .write(reinterpret_cast<const char *>(b.data()), std::streamsize(b.size()));
}

void put(const std::string &target, const std::string &name, const std::string &s)
{
    put(target, name, std::vector<uint8_t>(s.begin(), s.end()));
}

void client_hellos()
{
    auto tls13 = HelloBuilder()
                     .ciphers({0x1301, 0x1302, 0xc02b})
                     .sni("api.example.com")
                     .alpn({"h2", "http/1.1"})
                     .supported_versions({0x0304, 0x0303})
                     .signature_algorithms({0x0403, 0x0804})
                     .supported_groups({0x001d, 0x0017})
                     .ec_point_formats({0})
                     .key_share({{0x001d, 32}});
    put("client_hello", "browser_like", HelloBuilder::browser_like().record());
    put("client_hello", "browser_like_split_records", HelloBuilder::browser_like().records(300));
    put("client_hello", "tls13", tls13.record());
    put("client_hello", "tls13_bare_handshake", tls13.handshake());
    put("client_hello", "tls12_minimal", HelloBuilder().record());
    put("client_hello", "no_extensions", HelloBuilder().no_extensions_block().record());
    put("client_hello", "ip_sni_grease",
        HelloBuilder().sni("192.0.2.1").grease_extension(0x1a1a).alpn({"\xba\xad"}).record());
    auto cut = HelloBuilder::browser_like().record();
    cut.resize(cut.size() / 2);
    put("client_hello", "truncated", cut);
}

struct Session {
    std::string name;
    std::vector<Bytes> frames;
};

std::vector<Session> sessions()
{
    std::vector<Session> out;
    auto tcp = [](const std::string &src, const std::string &dst, uint8_t flags, uint32_t seq,
                  Bytes payload, bool to_server,
                  std::vector<std::pair<uint16_t, uint16_t>> vlans = {}) {
        FrameSpec s;
        s.src = to_server ? src : dst;
        s.dst = to_server ? dst : src;
        s.sport = to_server ? 40000 : 443;
        s.dport = to_server ? 443 : 40000;
        s.tcp_flags = flags;
        s.seq = seq;
        s.payload = std::move(payload);
        s.vlans = std::move(vlans);
        return build_frame(s);
    };
    for (bool v6 : {false, true}) {
        std::string c = v6 ? "2001:db8::10" : "192.0.2.10";
        std::string sv = v6 ? "2001:db8:1::1" : "198.51.100.1";
        auto vl = v6 ? std::vector<std::pair<uint16_t, uint16_t>>{{0x8100, 7}}
                     : std::vector<std::pair<uint16_t, uint16_t>>{};
        Session s{v6 ? "tls_session_v6_vlan" : "tls_session_v4", {}};
        auto hello = HelloBuilder::browser_like().record();
        s.frames.push_back(tcp(c, sv, SYN, 999, {}, true, vl));
        s.frames.push_back(tcp(c, sv, SYN | ACK, 5000, {}, false, vl));
        Bytes a(hello.begin(), hello.begin() + 1000), b(hello.begin() + 1000, hello.end());
        s.frames.push_back(tcp(c, sv, ACK | PSH, 1000, a, true, vl));
        s.frames.push_back(tcp(c, sv, ACK | PSH, 1000 + 1000, b, true, vl));
        s.frames.push_back(tcp(c, sv, ACK | PSH, 5001, Bytes(1400, 0x17), false, vl));
        s.frames.push_back(tcp(c, sv, FIN | ACK, 1000 + uint32_t(hello.size()), {}, true, vl));
        s.frames.push_back(tcp(c, sv, FIN | ACK, 6401, {}, false, vl));
        out.push_back(std::move(s));
    }
    {
        Session s{"midstream_rst_reuse", {}};
        auto hello = HelloBuilder().sni("x.example").record();
        s.frames.push_back(tcp("192.0.2.20", "198.51.100.2", ACK | PSH, 77, hello, true));
        s.frames.push_back(tcp("192.0.2.20", "198.51.100.2", RST, 77, {}, false));
        s.frames.push_back(tcp("192.0.2.20", "198.51.100.2", SYN, 9000, {}, true));
        s.frames.push_back(tcp("192.0.2.20", "198.51.100.2", ACK | PSH, 9001,
                               Bytes{0x47, 0x45, 0x54, 0x20}, true));
        out.push_back(std::move(s));
    }
    {
        Session s{"quic_and_other", {}};
        FrameSpec q;
        q.proto = 17;
        q.dport = 443;
        q.payload = quic_initial(1200);
        s.frames.push_back(build_frame(q));
        q.src = "2001:db8::5";
        q.dst = "2001:db8::6";
        q.v6ext = {{0, Bytes(6, 0)}, {44, {}, 0, true}};
        s.frames.push_back(build_frame(q));
        FrameSpec frag;
        frag.frag_off = 10;
        frag.payload = Bytes(64, 1);
        s.frames.push_back(build_frame(frag));
        FrameSpec bad;
        bad.ihl = 3;
        s.frames.push_back(build_frame(bad));
        s.frames.push_back(Bytes(10, 0xff));
        out.push_back(std::move(s));
    }
    return out;
}

void datapath_and_events()
{
    for (auto &s : sessions()) {
        Bytes in;
        for (auto &f : s.frames) {
            Bytes rec{0x08};  // gso 0, 1 ms step
            rec.insert(rec.end(), f.begin(), f.end());
            fuzz::append_record(in, rec);
        }
        put("datapath", s.name, in);

        SensorOptions o;
        o.packet_time = true;
        o.flow_table_size = 1024;
        o.client_table_size = 256;
        auto dp = make_user_datapath(o);
        Bytes events;
        uint64_t ts = 1'700'000'000'000'000'000ull;
        for (auto &f : s.frames) {
            dp->process(f, ts += 1'000'000);
            dp->drain_events([&](std::span<const uint8_t> e) { fuzz::append_record(events, e); });
        }
        if (!events.empty())
            put("flow_tracker", s.name, events);
    }
}

void configs(const fs::path &src)
{
    std::ifstream f(src / "configs" / "exfilmon.toml", std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    put("config", "exfilmon.toml", ss.str());
    put("config", "values.toml", R"([capture]
interfaces = ["eth0", "eth1"]
backend = "pcap"
[bpf]
flow_table_size = 4096
client_table_size = 1024
ringbuf_size = "1MiB"
tls_ports = [443, 9443, 10443]
[daemon]
report_interval = "2s"
[log]
level = "debug"
)");
    put("config", "rules.toml", R"([detect]
interval = "2s"
realert = "1m"
storm_limit = 5
[[rules]]
name = "client-bulk-pull"
entity = "client"
metric = "bytes_out"
window = "5m"
threshold = "2GiB"
severity = "critical"
sustain = 2
[[rules]]
name = "baseline"
entity = "sni"
metric = "bytes_out"
window = "1h"
baseline = { factor = 8.0, floor = "200MiB", learn = "24h" }
[[allow]]
cidr = "198.51.100.0/24"
[[allow]]
sni = "*.Backup.example.com"
rules = ["client-bulk-pull"]
[sni_overrides."downloads.example.com"]
scale = 20.0
[[outputs]]
type = "syslog"
transport = "tls"
address = "[2001:db8::1]:6514"
format = "cef"
facility = "auth"
[[outputs]]
type = "json"
path = "-"
)");
    put("config", "syntax_error.toml", "[bpf\nflow_table_size = \"big\"\n");
}

void le32(Bytes &b, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b.push_back(uint8_t(v >> (8 * i)));
}
void le16(Bytes &b, uint16_t v)
{
    b.push_back(uint8_t(v));
    b.push_back(uint8_t(v >> 8));
}

// Classic pcap, little endian: magic a1b2c3d4 (µs) or a1b23c4d (ns).
Bytes pcap_file(uint32_t magic, uint32_t linktype, const std::vector<Bytes> &pkts)
{
    Bytes b;
    le32(b, magic);
    le16(b, 2);
    le16(b, 4);
    le32(b, 0);
    le32(b, 0);
    le32(b, 65535);
    le32(b, linktype);
    uint32_t t = 1700000000;
    for (auto &p : pkts) {
        le32(b, t++);
        le32(b, 123);
        le32(b, uint32_t(p.size()));
        le32(b, uint32_t(p.size()));
        b.insert(b.end(), p.begin(), p.end());
    }
    return b;
}

void pad4(Bytes &b)
{
    while (b.size() % 4)
        b.push_back(0);
}

// pcapng: section header, one interface, enhanced packet blocks.
Bytes pcapng_file(uint16_t linktype, const std::vector<Bytes> &pkts)
{
    Bytes b;
    le32(b, 0x0a0d0d0a);
    le32(b, 28);
    le32(b, 0x1a2b3c4d);
    le16(b, 1);
    le16(b, 0);
    le32(b, 0xffffffff);
    le32(b, 0xffffffff);
    le32(b, 28);
    le32(b, 1);
    le32(b, 20);
    le16(b, linktype);
    le16(b, 0);
    le32(b, 0);
    le32(b, 20);
    for (auto &p : pkts) {
        Bytes blk;
        le32(blk, 0);
        le32(blk, 0x00060000);
        le32(blk, 0x12345678);
        le32(blk, uint32_t(p.size()));
        le32(blk, uint32_t(p.size()));
        blk.insert(blk.end(), p.begin(), p.end());
        pad4(blk);
        uint32_t total = uint32_t(blk.size() + 12);
        le32(b, 6);
        le32(b, total);
        b.insert(b.end(), blk.begin(), blk.end());
        le32(b, total);
    }
    return b;
}

void pcaps()
{
    auto sess = sessions();
    auto &eth = sess[0].frames;
    std::vector<Bytes> l3, sll, null;
    for (auto &f : eth) {
        Bytes ip(f.begin() + 14, f.end());
        l3.push_back(ip);
        Bytes s{0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00};
        s.insert(s.end(), ip.begin(), ip.end());
        sll.push_back(s);
        Bytes n{2, 0, 0, 0};
        n.insert(n.end(), ip.begin(), ip.end());
        null.push_back(n);
    }
    put("pcap_reader", "ethernet_us.pcap", pcap_file(0xa1b2c3d4, 1, eth));
    put("pcap_reader", "raw_ns.pcap", pcap_file(0xa1b23c4d, 101, l3));
    put("pcap_reader", "linux_sll.pcap", pcap_file(0xa1b2c3d4, 113, sll));
    put("pcap_reader", "bsd_null.pcap", pcap_file(0xa1b2c3d4, 0, null));
    put("pcap_reader", "ethernet.pcapng", pcapng_file(1, sess[1].frames));
    auto cut = pcap_file(0xa1b2c3d4, 1, eth);
    cut.resize(cut.size() - 100);
    put("pcap_reader", "truncated.pcap", cut);
}

void alerts()
{
    // FuzzedDataProvider takes integers from the end and strings from the
    // front: a few shapes of each.
    Bytes a;
    for (const char *s : {"client-bulk-pull", "203.0.113.7 -> api.example.com", "203.0.113.7",
                          "api.example.com\\", "cohort-\xff\xfe", "cdn.example.com"}) {
        a.insert(a.end(), s, s + std::strlen(s));
        a.push_back('\\');
        a.push_back('x');
    }
    for (int i = 0; i < 160; i++)
        a.push_back(uint8_t(i * 37 + 11));
    put("alert_format", "mixed", a);
    Bytes b(a.rbegin(), a.rend());
    put("alert_format", "reversed", b);
    put("alert_format", "hostile",
        std::string("evil|name=x\\ \n\r\x1b[31m]\"\0\xc3\x28", 26) + std::string(200, '\xe2'));
}

}  // namespace

int main(int argc, char **argv)
{
    if (argc < 2) {
        std::cerr << "usage: exf_fuzz_seeds CORPUS_DIR [SOURCE_DIR]\n";
        return 2;
    }
    g_root = argv[1];
    fs::path src = argc > 2 ? fs::path(argv[2]) : fs::path(".");
    client_hellos();
    datapath_and_events();
    configs(src);
    pcaps();
    alerts();
    return 0;
}
