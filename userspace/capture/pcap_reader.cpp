#include "capture/pcap_reader.h"

#include <pcap/pcap.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/error.h"

namespace exf {

namespace {

constexpr size_t kEthHdr = 14;
constexpr uint16_t kEthIPv4 = 0x0800;
constexpr uint16_t kEthIPv6 = 0x86DD;

// Link types by number, so that the BSD variants of DLT_RAW and DLT_LOOP are
// recognised whatever this platform's <pcap/dlt.h> says.
enum : int {
    kDltNull = 0,          // BSD loopback: 4-byte AF_ value, host byte order
    kDltEthernet = 1,
    kDltPpp = 9,           // PPP, optionally with ff 03 address/control
    kDltRaw12 = 12,        // raw IP (DLT_RAW, most platforms)
    kDltRaw14 = 14,        // raw IP (DLT_RAW on OpenBSD)
    kDltPppSerial = 50,    // PPP in HDLC-like framing, or Cisco HDLC
    kDltLinktypeRaw = 101, // LINKTYPE_RAW (libpcap usually maps it to 12)
    kDltCiscoHdlc = 104,   // address, control, 2-byte ethertype
    kDltLoop = 108,        // BSD loopback: 4-byte AF_ value, network byte order
    kDltLinuxSll = 113,    // Linux cooked v1: 16 bytes, protocol at 14
    kDltPppPppd = 166,     // PPP; the ff of ff 03 is a direction byte
    kDltPppWithDir = 204,  // direction byte, then PPP
    kDltCiscoHdlcWithDir = 205,
    kDltIPv4 = 228,
    kDltIPv6 = 229,
    kDltLinuxSll2 = 276,   // Linux cooked v2: 20 bytes, protocol at 0
};

uint16_t be16(const uint8_t *p) { return uint16_t((p[0] << 8) | p[1]); }

uint16_t ethertype_from_ip_version(const uint8_t *l3, size_t len)
{
    if (len == 0)
        return 0;
    switch (l3[0] >> 4) {
    case 4: return kEthIPv4;
    case 6: return kEthIPv6;
    default: return 0;
    }
}

// BSD AF_INET6 differs per system: 24 (NetBSD, OpenBSD, BSD/OS), 28 (FreeBSD),
// 30 (macOS). Linux's 10 is not used in these headers.
uint16_t ethertype_from_af(uint32_t af)
{
    switch (af) {
    case 2: return kEthIPv4;
    case 24:
    case 28:
    case 30: return kEthIPv6;
    default: return 0;
    }
}

uint16_t ethertype_from_ppp(uint16_t proto)
{
    switch (proto) {
    case 0x0021: return kEthIPv4;
    case 0x0057: return kEthIPv6;
    default: return 0;
    }
}

// PPP starting at p (after any direction pseudo-header): optional ff 03,
// then a 1-byte (protocol field compression: odd first byte) or 2-byte
// protocol. Returns the header length, 0 if cut short.
size_t ppp_header(const uint8_t *p, size_t len, uint16_t &ethertype)
{
    size_t off = 0;
    if (len >= 2 && p[0] == 0xff && p[1] == 0x03)
        off = 2;
    if (off >= len)
        return 0;
    if (p[off] & 1) {
        ethertype = ethertype_from_ppp(p[off]);
        return off + 1;
    }
    if (off + 2 > len)
        return 0;
    ethertype = ethertype_from_ppp(be16(p + off));
    return off + 2;
}

// Cisco HDLC: address (0x0f unicast, 0x8f broadcast), control 0, ethertype.
size_t chdlc_header(const uint8_t *p, size_t len, uint16_t &ethertype)
{
    if (len < 4)
        return 0;
    ethertype = be16(p + 2);
    return 4;
}

// The link header's length and the ethertype it implies; 0 when the captured
// bytes are shorter than the header (and for the raw-IP types, which have none).
size_t link_header(int dlt, const uint8_t *p, size_t len, uint16_t &ethertype)
{
    ethertype = 0;
    switch (dlt) {
    case kDltRaw12:
    case kDltRaw14:
    case kDltLinktypeRaw:
        ethertype = ethertype_from_ip_version(p, len);
        return 0;  // no link header
    case kDltIPv4:
        ethertype = kEthIPv4;
        return 0;
    case kDltIPv6:
        ethertype = kEthIPv6;
        return 0;
    case kDltNull:
    case kDltLoop: {
        if (len < 4)
            return 0;
        uint32_t af;
        if (dlt == kDltLoop) {
            af = (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
        } else {
            // Host byte order of the capturing machine: AF_ values are small,
            // so whichever order gives a value below 65536 is the right one.
            uint32_t le = p[0] | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) |
                          (uint32_t(p[3]) << 24);
            uint32_t be = (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) |
                          (uint32_t(p[2]) << 8) | p[3];
            af = (le & 0xffff0000u) ? be : le;
        }
        ethertype = ethertype_from_af(af);
        return 4;
    }
    case kDltLinuxSll:
        if (len < 16)
            return 0;
        ethertype = be16(p + 14);
        return 16;
    case kDltLinuxSll2:
        if (len < 20)
            return 0;
        ethertype = be16(p);
        return 20;
    case kDltPpp:
        return ppp_header(p, len, ethertype);
    case kDltPppSerial:
        if (len >= 1 && (p[0] == 0x0f || p[0] == 0x8f))
            return chdlc_header(p, len, ethertype);
        return ppp_header(p, len, ethertype);
    case kDltPppPppd: {
        // Direction byte in place of ff, then 03, then the protocol.
        if (len < 2)
            return 0;
        size_t n = ppp_header(p + 2, len - 2, ethertype);
        return n ? n + 2 : 0;
    }
    case kDltPppWithDir: {
        if (len < 1)
            return 0;
        size_t n = ppp_header(p + 1, len - 1, ethertype);
        return n ? n + 1 : 0;
    }
    case kDltCiscoHdlc:
        return chdlc_header(p, len, ethertype);
    case kDltCiscoHdlcWithDir: {
        if (len < 1)
            return 0;
        size_t n = chdlc_header(p + 1, len - 1, ethertype);
        return n ? n + 1 : 0;
    }
    default:
        return 0;
    }
}

std::string linktype_text(int dlt)
{
    std::string s = "link type " + std::to_string(dlt);
    if (const char *name = pcap_datalink_val_to_name(dlt)) {
        s += " (";
        s += name;
        if (const char *desc = pcap_datalink_val_to_description(dlt)) {
            s += ", ";
            s += desc;
        }
        s += ")";
    }
    return s;
}

// The first four bytes of a file, in hex, for an "unknown format" error.
std::string magic_text(const std::string &path)
{
    std::FILE *f = std::fopen(path.c_str(), "rb");
    if (!f)
        return "unreadable";
    uint8_t b[4];
    size_t n = std::fread(b, 1, sizeof(b), f);
    std::fclose(f);
    std::string s = "first bytes";
    char hex[4];
    for (size_t i = 0; i < n; i++) {
        std::snprintf(hex, sizeof(hex), " %02x", b[i]);
        s += hex;
    }
    return n ? s : "empty file";
}

}  // namespace

bool pcap_linktype_supported(int dlt)
{
    switch (dlt) {
    case kDltNull: case kDltEthernet: case kDltPpp: case kDltRaw12: case kDltRaw14:
    case kDltPppSerial: case kDltLinktypeRaw: case kDltCiscoHdlc: case kDltLoop:
    case kDltLinuxSll: case kDltPppPppd: case kDltPppWithDir: case kDltCiscoHdlcWithDir:
    case kDltIPv4: case kDltIPv6: case kDltLinuxSll2:
        return true;
    default:
        return false;
    }
}

PcapReader::PcapReader(const std::string &path) : path_(path)
{
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    pcap_ = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO,
                                                    errbuf);
    if (!pcap_) {
        std::string why = errbuf;
        // libpcap names the file itself when fopen fails: say it once.
        if (why.rfind(path + ": ", 0) == 0)
            why.erase(0, path.size() + 2);
        if (why.find("unknown file format") != std::string::npos)
            why += " (" + magic_text(path) + "; expected pcap or pcapng)";
        throw Error(path + ": cannot read capture: " + why);
    }
    linktype_ = pcap_datalink(pcap_);
    if (!pcap_linktype_supported(linktype_)) {
        std::string what = path + ": unsupported " + linktype_text(linktype_) +
                           "; supported: Ethernet, Linux cooked (SLL, SLL2), raw IP, "
                           "BSD loopback (NULL, LOOP), PPP, Cisco HDLC";
        pcap_close(pcap_);
        pcap_ = nullptr;
        throw Error(what, EPROTONOSUPPORT);
    }
}

PcapReader::~PcapReader()
{
    if (pcap_)
        pcap_close(pcap_);
}

bool PcapReader::next(Packet &pkt)
{
    if (done_)
        return false;
    pcap_pkthdr *hdr = nullptr;
    const u_char *data = nullptr;
    int rc = pcap_next_ex(pcap_, &hdr, &data);
    if (rc == PCAP_ERROR_BREAK) {  // end of file
        done_ = true;
        return false;
    }
    if (rc != 1) {
        done_ = true;
        error_ = path_ + ": packet " + std::to_string(packets_ + 1) + ": " +
                 (rc == PCAP_ERROR ? std::string(pcap_geterr(pcap_))
                                   : "libpcap error " + std::to_string(rc));
        return false;
    }
    packets_++;
    pkt.ts_ns = uint64_t(hdr->ts.tv_sec) * 1000000000ull + uint64_t(hdr->ts.tv_usec);
    pkt.orig_len = hdr->len;
    pkt.cap_len = hdr->caplen;
    const size_t len = hdr->caplen;
    if (linktype_ == kDltEthernet) {
        pkt.frame.resize(len);
        if (len)
            std::memcpy(pkt.frame.data(), data, len);
        return true;
    }
    uint16_t ethertype = 0;
    size_t skip = link_header(linktype_, data, len, ethertype);
    const bool headerless = linktype_ == kDltRaw12 || linktype_ == kDltRaw14 ||
                            linktype_ == kDltLinktypeRaw || linktype_ == kDltIPv4 ||
                            linktype_ == kDltIPv6;
    if (skip == 0 && !headerless) {  // captured bytes shorter than the link header
        pkt.frame.clear();
        return true;
    }
    const size_t l3 = len - skip;
    pkt.frame.resize(kEthHdr + l3);
    uint8_t *f = pkt.frame.data();
    std::memset(f, 0, 12);
    f[12] = uint8_t(ethertype >> 8);
    f[13] = uint8_t(ethertype);
    if (l3)
        std::memcpy(f + kEthHdr, data + skip, l3);
    return true;
}

}  // namespace exf
