// SPDX-License-Identifier: Apache-2.0
#pragma once
// Reading capture files (pcap and pcapng, through libpcap) as Ethernet frames,
// the form the tc programs take in a replay.
//
// Ethernet captures pass through unchanged. Other link types get a synthetic
// 14-byte Ethernet header (zero MAC addresses) in place of their own link
// header; its ethertype comes from the link header (Linux cooked, BSD
// loopback, PPP, Cisco HDLC) or from the IP version nibble (raw IP). A link
// header naming something that is not IPv4/IPv6 gives ethertype 0, which the
// kernel counts as not IP. A packet whose captured bytes are shorter than its
// (non-Ethernet) link header yields an empty frame: there is nothing to replay.
//
// The path "-" is standard input (a pipe too: read as it comes, never
// rewound); messages call it "standard input".
//
// Errors: opening a missing, unreadable or unrecognised file, or a link type
// not listed in pcap_reader.cpp, throws exf::Error naming the file; a
// gzip-compressed file (magic 1f 8b) is recognised as such, and the error
// says how to decompress it (zlib is not a dependency). Damage
// found while reading (a truncated or corrupt record) ends the packets: next()
// returns false and error() says "<file>: packet <N>: <what>", N being the
// 1-based number of the packet that could not be read. The packets before it
// have been delivered.
//
// Speed: a regular file in the classic pcap format as this host writes it
// (magic a1b2c3d4 or a1b23c4d, version 2.4, Ethernet) is read in 256 KiB
// positioned reads instead of libpcap's 4 KiB stdio reads and copies, record
// by record with the same checks; the first record that is not plainly good
// (cut short, longer than the snapshot length, a timestamp libpcap would
// read as negative) and everything after it go to libpcap, positioned at
// that record, so damage is reported in libpcap's words as before.
// Everything else (pcapng, other byte orders and versions, pipes) is read by
// libpcap.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

typedef struct pcap pcap_t;

namespace exf {

// The capture path that means standard input, and a path as messages name it.
inline const std::string kStdinCapture = "-";
std::string capture_name(const std::string &path);

struct Packet {
    uint64_t ts_ns = 0;          // capture time, nanoseconds since the epoch
    uint32_t orig_len = 0;       // length on the wire (the record's len, link header included)
    uint32_t cap_len = 0;        // bytes captured (the record's caplen, link header included)
    std::vector<uint8_t> frame;  // Ethernet (real or synthetic) + L3; reused between calls
};

// The same without a copy per call: frame points into the reader's buffer,
// valid until the next call, its Ethernet header at an address that is 2 mod
// 4 as the kernel places packets (NET_IP_ALIGN; the userspace datapath then
// need not copy it, see capture/user_datapath.cpp).
struct PacketRef {
    uint64_t ts_ns = 0;
    uint32_t orig_len = 0;
    uint32_t cap_len = 0;
    std::span<const uint8_t> frame;
};

class PcapReader {
public:
    explicit PcapReader(const std::string &path);  // throws exf::Error
    ~PcapReader();
    PcapReader(const PcapReader &) = delete;
    PcapReader &operator=(const PcapReader &) = delete;

    // Fills pkt with the next packet; false at the end of the file or on
    // damage (then error() is not empty). pkt.frame's capacity is reused.
    bool next(Packet &pkt);
    bool next(PacketRef &pkt);
    // Empty, or what stopped the reading, with the file and packet number.
    const std::string &error() const { return error_; }
    uint64_t packets_read() const { return packets_; }
    // The capture's link type as libpcap reports it (a DLT_* value).
    int linktype() const { return linktype_; }
    const std::string &path() const { return path_; }

private:
    struct Record {
        uint64_t ts_ns;
        uint32_t orig_len, cap_len;
        const uint8_t *data;
    };
    bool read_record(Record &r);
    bool fast_read(Record &r);
    bool fast_fill(uint64_t end);
    void fast_start();
    void fast_stop();
    // The frame a record gives: its size (0: nothing to replay) and, for
    // other link types than Ethernet, the synthetic header.
    struct Shape {
        size_t size = 0;
        size_t skip = 0;  // link header bytes replaced
        uint16_t ethertype = 0;
        bool synthetic = false;
    };
    Shape shape_of(const Record &r) const;
    void write_frame(const Record &r, const Shape &sh, uint8_t *out) const;

    std::string path_;
    pcap_t *pcap_ = nullptr;
    int linktype_ = 0;
    uint64_t packets_ = 0;
    bool done_ = false;
    std::string error_;
    // The fast path (see above); off when fast_fd_ < 0.
    int fast_fd_ = -1;
    bool fast_nsec_ = false;
    uint32_t fast_snaplen_ = 0;  // records above it go to libpcap
    uint64_t fast_off_ = 0;      // file offset of the next record
    std::vector<uint8_t> rbuf_;  // file bytes from rbuf_off_, rbuf_len_ of them
    uint64_t rbuf_off_ = 0;
    size_t rbuf_len_ = 0;
    std::vector<uint8_t> buf_;  // PacketRef frames, at offset 2
};

// True if the reader turns this DLT_* link type into Ethernet frames.
bool pcap_linktype_supported(int dlt);

}  // namespace exf
