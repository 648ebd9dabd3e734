// SPDX-License-Identifier: Apache-2.0
#include "capture/pcap_reader.h"

#include <pcap/pcap.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

#include "common/error.h"

namespace exf {

namespace {

constexpr size_t kEthHdr = 14;
// The fast path: bytes read at a time, and libpcap's largest capture length
// for Ethernet (max_snaplen_for_dlt: MAXIMUM_SNAPLEN). No thread reads
// ahead: on a 2-vCPU machine shared with other work it costs more than it
// saves.
constexpr size_t kReadChunk = 256u << 10;
constexpr uint32_t kMaxEthernetCaplen = 262144;
constexpr uint16_t kEthIPv4 = 0x0800;
constexpr uint16_t kEthIPv6 = 0x86DD;

// Link types by number, so that the BSD variants of DLT_RAW and DLT_LOOP are
// recognised whatever this platform's <pcap/dlt.h> says.
enum : int {
    kDltNull = 0,  // BSD loopback: 4-byte AF_ value, host byte order
    kDltEthernet = 1,
    kDltPpp = 9,            // PPP, optionally with ff 03 address/control
    kDltRaw12 = 12,         // raw IP (DLT_RAW, most platforms)
    kDltRaw14 = 14,         // raw IP (DLT_RAW on OpenBSD)
    kDltPppSerial = 50,     // PPP in HDLC-like framing, or Cisco HDLC
    kDltLinktypeRaw = 101,  // LINKTYPE_RAW (libpcap usually maps it to 12)
    kDltCiscoHdlc = 104,    // address, control, 2-byte ethertype
    kDltLoop = 108,         // BSD loopback: 4-byte AF_ value, network byte order
    kDltLinuxSll = 113,     // Linux cooked v1: 16 bytes, protocol at 14
    kDltPppPppd = 166,      // PPP; the ff of ff 03 is a direction byte
    kDltPppWithDir = 204,   // direction byte, then PPP
    kDltCiscoHdlcWithDir = 205,
    kDltIPv4 = 228,
    kDltIPv6 = 229,
    kDltLinuxSll2 = 276,  // Linux cooked v2: 20 bytes, protocol at 0
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
    case kDltIPv4: ethertype = kEthIPv4; return 0;
    case kDltIPv6: ethertype = kEthIPv6; return 0;
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
            uint32_t le =
                p[0] | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
            uint32_t be =
                (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
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
    case kDltPpp: return ppp_header(p, len, ethertype);
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
    case kDltCiscoHdlc: return chdlc_header(p, len, ethertype);
    case kDltCiscoHdlcWithDir: {
        if (len < 1)
            return 0;
        size_t n = chdlc_header(p + 1, len - 1, ethertype);
        return n ? n + 1 : 0;
    }
    default: return 0;
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

// The first bytes of a capture, for an "unknown format" error.
std::vector<uint8_t> first_bytes(const std::string &path)
{
    std::vector<uint8_t> b(4);
    std::FILE *f = std::fopen(path.c_str(), "rb");
    b.resize(f ? std::fread(b.data(), 1, b.size(), f) : 0);
    if (f)
        std::fclose(f);
    return b;
}

std::string magic_text(const std::vector<uint8_t> &b)
{
    std::string s = "first bytes";
    char hex[4];
    for (uint8_t c : b) {
        std::snprintf(hex, sizeof(hex), " %02x", c);
        s += hex;
    }
    return b.empty() ? "empty file" : s;
}

bool is_gzip(const std::vector<uint8_t> &b)
{
    return b.size() >= 2 && b[0] == 0x1f && b[1] == 0x8b;
}

// Standard input for libpcap, its first bytes read here first: libpcap
// consumes them, and they are what explains an unknown format. A stdio
// stream that hands out those bytes, then reads fd 0 (a pipe cannot be
// rewound).
struct StdinStream {
    std::vector<uint8_t> head;
    size_t pos = 0;
};

ssize_t stdin_stream_read(void *cookie, char *buf, size_t size)
{
    auto *s = static_cast<StdinStream *>(cookie);
    if (s->pos < s->head.size()) {
        size_t n = std::min(size, s->head.size() - s->pos);
        std::memcpy(buf, s->head.data() + s->pos, n);
        s->pos += n;
        return ssize_t(n);
    }
    ssize_t n;
    do
        n = ::read(STDIN_FILENO, buf, size);
    while (n < 0 && errno == EINTR);
    return n;
}

int stdin_stream_close(void *cookie)
{
    delete static_cast<StdinStream *>(cookie);  // fd 0 stays open
    return 0;
}

std::FILE *open_stdin(std::vector<uint8_t> &head)
{
    auto *s = new StdinStream;
    s->head.resize(4);
    size_t got = 0;
    while (got < s->head.size()) {
        ssize_t n = ::read(STDIN_FILENO, s->head.data() + got, s->head.size() - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            delete s;
            throw Error(capture_name(kStdinCapture) + ": cannot read: " + std::strerror(e), e);
        }
        if (n == 0)
            break;
        got += size_t(n);
    }
    s->head.resize(got);
    head = s->head;
    std::FILE *f = fopencookie(s, "rb", {stdin_stream_read, nullptr, nullptr, stdin_stream_close});
    if (!f) {
        delete s;
        throw Error(capture_name(kStdinCapture) + ": cannot read: " + std::strerror(errno));
    }
    return f;
}

}  // namespace

bool pcap_linktype_supported(int dlt)
{
    switch (dlt) {
    case kDltNull:
    case kDltEthernet:
    case kDltPpp:
    case kDltRaw12:
    case kDltRaw14:
    case kDltPppSerial:
    case kDltLinktypeRaw:
    case kDltCiscoHdlc:
    case kDltLoop:
    case kDltLinuxSll:
    case kDltPppPppd:
    case kDltPppWithDir:
    case kDltCiscoHdlcWithDir:
    case kDltIPv4:
    case kDltIPv6:
    case kDltLinuxSll2: return true;
    default: return false;
    }
}

std::string capture_name(const std::string &path)
{
    return path == kStdinCapture ? "standard input" : path;
}

PcapReader::PcapReader(const std::string &path) : path_(path)
{
    const std::string name = capture_name(path);
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    std::vector<uint8_t> head;
    if (path == kStdinCapture) {
        std::FILE *in = open_stdin(head);
        pcap_ = pcap_fopen_offline_with_tstamp_precision(in, PCAP_TSTAMP_PRECISION_NANO, errbuf);
        if (!pcap_)
            std::fclose(in);
    } else {
        pcap_ = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO,
                                                        errbuf);
    }
    if (!pcap_) {
        std::string why = errbuf;
        // libpcap names the file itself when fopen fails: say it once.
        if (why.rfind(path + ": ", 0) == 0)
            why.erase(0, path.size() + 2);
        if (why.find("unknown file format") != std::string::npos) {
            if (head.empty())
                head = first_bytes(path);
            // zlib is not a dependency: say how to decompress instead.
            if (is_gzip(head))
                throw Error(name + ": gzip-compressed capture; decompress it first (zcat " +
                            (path == kStdinCapture ? std::string("FILE") : path) +
                            " | exfilmon replay -)");
            why += " (" + magic_text(head) + "; expected pcap or pcapng)";
        }
        throw Error(name + ": cannot read capture: " + why);
    }
    linktype_ = pcap_datalink(pcap_);
    if (!pcap_linktype_supported(linktype_)) {
        std::string what = name + ": unsupported " + linktype_text(linktype_) +
                           "; supported: Ethernet, Linux cooked (SLL, SLL2), raw IP, "
                           "BSD loopback (NULL, LOOP), PPP, Cisco HDLC";
        pcap_close(pcap_);
        pcap_ = nullptr;
        throw Error(what, EPROTONOSUPPORT);
    }
    fast_start();
}

PcapReader::~PcapReader()
{
    fast_stop();
    if (pcap_)
        pcap_close(pcap_);
}

void PcapReader::fast_start()
{
    if (linktype_ != kDltEthernet)
        return;
    std::FILE *f = pcap_file(pcap_);
    if (!f)
        return;
    const int fd = fileno(f);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return;
    // The file header as libpcap has just read it: only the plain format in
    // this host's byte order (no swapping, no length interchange, 16-byte
    // record headers), and libpcap positioned right after it.
    uint8_t h[24];
    if (pread(fd, h, sizeof(h), 0) != ssize_t(sizeof(h)) || std::ftell(f) != long(sizeof(h)))
        return;
    uint32_t magic, linktype;
    uint16_t major, minor;
    std::memcpy(&magic, h, 4);
    std::memcpy(&major, h + 4, 2);
    std::memcpy(&minor, h + 6, 2);
    std::memcpy(&linktype, h + 20, 4);
    if ((magic != 0xa1b2c3d4u && magic != 0xa1b23c4du) || major != 2 || minor != 4 ||
        linktype != uint32_t(kDltEthernet))
        return;
    const int snap = pcap_snapshot(pcap_);
    if (snap <= 0)
        return;
    fast_snaplen_ = std::min<uint32_t>(uint32_t(snap), kMaxEthernetCaplen);
    fast_nsec_ = magic == 0xa1b23c4du;
    fast_off_ = sizeof(h);
    fast_fd_ = fd;
}

void PcapReader::fast_stop()
{
    fast_fd_ = -1;
    rbuf_ = std::vector<uint8_t>();
    rbuf_len_ = 0;
}

// Makes the file's bytes [fast_off_, end) available in rbuf_; false when
// the file ends before (libpcap then reads it, and says why).
bool PcapReader::fast_fill(uint64_t end)
{
    if (fast_off_ >= rbuf_off_ && end <= rbuf_off_ + rbuf_len_)
        return true;
    size_t keep = 0;
    if (fast_off_ >= rbuf_off_ && fast_off_ < rbuf_off_ + rbuf_len_) {
        keep = size_t(rbuf_off_ + rbuf_len_ - fast_off_);
        std::memmove(rbuf_.data(), rbuf_.data() + (fast_off_ - rbuf_off_), keep);
    }
    rbuf_off_ = fast_off_;
    rbuf_len_ = keep;
    const size_t need = size_t(end - fast_off_);
    if (rbuf_.size() < std::max(need, kReadChunk))
        rbuf_.resize(std::max(need, kReadChunk));
    while (rbuf_len_ < need) {
        ssize_t n = pread(fast_fd_, rbuf_.data() + rbuf_len_, rbuf_.size() - rbuf_len_,
                          off_t(rbuf_off_ + rbuf_len_));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        rbuf_len_ += size_t(n);
    }
    return true;
}

// The next record, or false when it is not plainly good (or the file ends):
// libpcap takes over from fast_off_.
bool PcapReader::fast_read(Record &r)
{
    if (!fast_fill(fast_off_ + 16))
        return false;
    uint32_t hdr[4];  // seconds, micro- or nanoseconds, caplen, len
    std::memcpy(hdr, rbuf_.data() + (fast_off_ - rbuf_off_), sizeof(hdr));
    // libpcap reads both timestamp fields as signed 32-bit values; records
    // with the top bit set, or longer than the snapshot length, are its call.
    if (hdr[0] > uint32_t(INT32_MAX) || hdr[1] > uint32_t(INT32_MAX) || hdr[2] > fast_snaplen_)
        return false;
    const uint64_t end = fast_off_ + 16 + hdr[2];
    if (!fast_fill(end))
        return false;
    r.ts_ns = uint64_t(hdr[0]) * 1000000000ull +
              (fast_nsec_ ? uint64_t(hdr[1]) : uint64_t(hdr[1]) * 1000);
    r.cap_len = hdr[2];
    r.orig_len = hdr[3];
    r.data = rbuf_.data() + (fast_off_ + 16 - rbuf_off_);
    fast_off_ = end;
    return true;
}

bool PcapReader::read_record(Record &r)
{
    if (done_)
        return false;
    if (fast_fd_ >= 0) {
        if (fast_read(r)) {
            packets_++;
            return true;
        }
        // libpcap goes on from this record, and reports what is wrong with it.
        const uint64_t at = fast_off_;
        fast_stop();
        if (std::fseek(pcap_file(pcap_), long(at), SEEK_SET) != 0) {
            done_ = true;
            error_ = capture_name(path_) + ": packet " + std::to_string(packets_ + 1) +
                     ": cannot seek: " + std::strerror(errno);
            return false;
        }
    }
    pcap_pkthdr *hdr = nullptr;
    const u_char *data = nullptr;
    int rc = pcap_next_ex(pcap_, &hdr, &data);
    if (rc == PCAP_ERROR_BREAK) {  // end of file
        done_ = true;
        return false;
    }
    if (rc != 1) {
        done_ = true;
        error_ = capture_name(path_) + ": packet " + std::to_string(packets_ + 1) + ": " +
                 (rc == PCAP_ERROR ? std::string(pcap_geterr(pcap_))
                                   : "libpcap error " + std::to_string(rc));
        return false;
    }
    packets_++;
    r.ts_ns = uint64_t(hdr->ts.tv_sec) * 1000000000ull + uint64_t(hdr->ts.tv_usec);
    r.orig_len = hdr->len;
    r.cap_len = hdr->caplen;
    r.data = data;
    return true;
}

// Ethernet passes through; other link types get a synthetic Ethernet header.
PcapReader::Shape PcapReader::shape_of(const Record &r) const
{
    Shape sh;
    const size_t len = r.cap_len;
    if (linktype_ == kDltEthernet) {
        sh.size = len;
        return sh;
    }
    sh.skip = link_header(linktype_, r.data, len, sh.ethertype);
    const bool headerless = linktype_ == kDltRaw12 || linktype_ == kDltRaw14 ||
                            linktype_ == kDltLinktypeRaw || linktype_ == kDltIPv4 ||
                            linktype_ == kDltIPv6;
    if (sh.skip == 0 && !headerless)  // captured bytes shorter than the link header
        return sh;                    // empty
    sh.synthetic = true;
    sh.size = kEthHdr + (len - sh.skip);
    return sh;
}

void PcapReader::write_frame(const Record &r, const Shape &sh, uint8_t *f) const
{
    if (!sh.synthetic) {
        if (sh.size)
            std::memcpy(f, r.data, sh.size);
        return;
    }
    const size_t l3 = sh.size - kEthHdr;
    std::memset(f, 0, 12);
    f[12] = uint8_t(sh.ethertype >> 8);
    f[13] = uint8_t(sh.ethertype);
    if (l3)
        std::memcpy(f + kEthHdr, r.data + sh.skip, l3);
}

bool PcapReader::next(Packet &pkt)
{
    Record r;
    if (!read_record(r))
        return false;
    pkt.ts_ns = r.ts_ns;
    pkt.orig_len = r.orig_len;
    pkt.cap_len = r.cap_len;
    const Shape sh = shape_of(r);
    pkt.frame.resize(sh.size);
    write_frame(r, sh, pkt.frame.data());
    return true;
}

bool PcapReader::next(PacketRef &pkt)
{
    Record r;
    if (!read_record(r))
        return false;
    pkt.ts_ns = r.ts_ns;
    pkt.orig_len = r.orig_len;
    pkt.cap_len = r.cap_len;
    const Shape sh = shape_of(r);
    // At 2 mod 4 (operator new gives 16-byte alignment), as the kernel
    // places packets: the userspace datapath then reads it in place.
    if (buf_.size() < sh.size + 2)
        buf_.resize(std::max<size_t>(sh.size + 2, 2048));
    write_frame(r, sh, buf_.data() + 2);
    pkt.frame = std::span<const uint8_t>(buf_.data() + 2, sh.size);
    return true;
}

}  // namespace exf
