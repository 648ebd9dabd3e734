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
// Errors: opening a missing, unreadable or unrecognised file, or a link type
// not listed in pcap_reader.cpp, throws exf::Error naming the file. Damage
// found while reading (a truncated or corrupt record) ends the packets: next()
// returns false and error() says "<file>: packet <N>: <what>", N being the
// 1-based number of the packet that could not be read. The packets before it
// have been delivered.
#include <cstdint>
#include <string>
#include <vector>

typedef struct pcap pcap_t;

namespace exf {

struct Packet {
    uint64_t ts_ns = 0;     // capture time, nanoseconds since the epoch
    uint32_t orig_len = 0;  // length on the wire (the record's len, link header included)
    uint32_t cap_len = 0;   // bytes captured (the record's caplen, link header included)
    std::vector<uint8_t> frame;  // Ethernet (real or synthetic) + L3; reused between calls
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
    // Empty, or what stopped the reading, with the file and packet number.
    const std::string &error() const { return error_; }
    uint64_t packets_read() const { return packets_; }
    // The capture's link type as libpcap reports it (a DLT_* value).
    int linktype() const { return linktype_; }
    const std::string &path() const { return path_; }

private:
    std::string path_;
    pcap_t *pcap_ = nullptr;
    int linktype_ = 0;
    uint64_t packets_ = 0;
    bool done_ = false;
    std::string error_;
};

// True if the reader turns this DLT_* link type into Ethernet frames.
bool pcap_linktype_supported(int dlt);

}  // namespace exf
