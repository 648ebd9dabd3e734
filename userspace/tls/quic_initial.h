// SPDX-License-Identifier: Apache-2.0
#pragma once
// QUIC client Initial packets: decryption and the ClientHello in their
// CRYPTO frames (RFC 9000, RFC 9001, RFC 9369). Bounds-checked, no I/O, no
// exceptions; the crypto is OpenSSL's (HKDF via EVP_KDF, AES-128-ECB for
// header protection, AES-128-GCM for the payload).
//
// Versions (quic_version_info): v1 (0x00000001), v2 (0x6b3343cf: its own
// salt, the "quicv2 key/iv/hp" labels and its long-header type bits, Initial
// = 0b01), the IETF drafts 22 to 34 (0xff000016..0xff000022: the salt of
// their draft; drafts 33 and 34 use v1's), Facebook mvfst (0xfaceb001 as
// draft 22, 0xfaceb002 and 0xfaceb00e as draft 27) and Google's QUIC over TLS
// T050/T051 (their salts; IETF long header, gQUIC frames). Any other version
// (gQUIC Q0xx, the reserved versions that force version negotiation) has no
// known Initial salt: its packets are skipped with quic_unknown_version.
//
// QuicInitialDecoder takes a flow's client datagrams in order. In each one it
// walks the coalesced long-header packets (Initial, 0-RTT, Handshake; a short
// header, or a first byte without the long-header bit such as zero padding,
// ends the datagram), skips all but Initials, and for an Initial:
//   * derives the client Initial keys from the Destination Connection ID of
//     the client's first Initial (RFC 9001 5.2): later Initials keep those
//     keys even when the client moved to the server's connection ID. If they
//     do not authenticate a packet, the keys of the packet's own DCID are
//     tried: that is the new connection ID after a Retry (or a new attempt
//     after version negotiation), and from then on it is the key DCID;
//   * removes header protection (a 16-byte sample 4 bytes after the packet
//     number's start), reconstructs the packet number from the largest one
//     seen (RFC 9000 A.3), and opens the payload with AES-128-GCM, the
//     unprotected header as associated data;
//   * parses the frames allowed in Initial packets: PADDING, PING, ACK
//     (0x02/0x03), CRYPTO, CONNECTION_CLOSE (0x1c, and 0x1d leniently). Any
//     other frame type is quic_unknown_frame and ends that packet's frames
//     (its length is unknown); the CRYPTO frames before it are kept.
// CRYPTO data is reassembled by offset with the TCP path's reassembler
// (tls::HelloReassembler, handshake framing: out of order, overlapping,
// across frames and packets, gaps wait for their bytes, the first copy of a
// byte wins) and parsed by the same ClientHello parser as TCP
// (parse_client_hello_handshake, is_quic set: JA4 prefix 'q').
//
// Anomaly names (anomalies(): distinct, in the order first seen; the
// problems of single packets do not stop the flow, a later packet may still
// give the hello):
//   quic_truncated_packet   a long header, its token or its Length field
//                           runs past the datagram
//   quic_bad_cid_length     a connection ID longer than 20 bytes
//   quic_unknown_version    no Initial salt known for the version
//   quic_short_packet       an Initial too short for the header protection
//                           sample (RFC 9001 5.4.2) or the AEAD tag
//   quic_decrypt_failed     an Initial the keys do not authenticate
//   quic_reserved_bits      reserved header bits not zero after unmasking
//   quic_bad_frame          a frame that runs past its packet or a varint
//                           out of range
//   quic_unknown_frame      a frame type not allowed in Initial packets
//   quic_crypto_beyond_limit CRYPTO data at an offset the reassembler does
//                           not keep (HelloReassembler::kMaxBytes)
//   quic_crypto_conflict    overlapping CRYPTO bytes that differ
//   <HelloAnomaly name>     the ClientHello parser's (tls::to_string): a
//                           content anomaly of a complete hello, or why the
//                           CRYPTO stream is not a ClientHello (failed)
// failure() when failed: the parser's reason for a malformed stream, or from
// finish() (no more datagrams will come):
//   quic_hello_beyond_capture  CRYPTO data held, the hello incomplete
//   the first anomaly           no CRYPTO data, and a packet was bad
//   quic_no_initial             no Initial packet at all
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "tls/client_hello.h"

namespace exf::tls {

class HelloReassembler;

// Long-header packet types, by meaning (the wire bits differ in v2).
enum class QuicPacketType : uint8_t { initial, zero_rtt, handshake, retry };

struct QuicVersionInfo {
    uint32_t version = 0;
    std::string_view name;           // "v1", "v2", "draft-29", "mvfst-27", "T051", ...
    std::array<uint8_t, 20> salt{};  // the Initial salt
    bool v2 = false;                 // RFC 9369 labels and packet type bits
    bool gquic_frames = false;       // Google T050/T051: gQUIC frame types
};

// nullptr: no Initial salt known for this version.
const QuicVersionInfo *quic_version_info(uint32_t version);

// The packet type of a long header's first byte under the version's rules.
QuicPacketType quic_packet_type(uint8_t first_byte, bool v2);

struct QuicInitialKeys {
    std::array<uint8_t, 32> secret{};  // client_initial_secret or server_initial_secret
    std::array<uint8_t, 16> key{};
    std::array<uint8_t, 12> iv{};
    std::array<uint8_t, 16> hp{};
};

enum class QuicSide : uint8_t { client, server };

// Initial keys for a version and the client's first DCID; nullopt for an
// unknown version or a crypto library failure.
std::optional<QuicInitialKeys> quic_initial_keys(uint32_t version, std::span<const uint8_t> dcid,
                                                 QuicSide side = QuicSide::client);

// A QUIC variable-length integer (RFC 9000 16) at data[pos]; advances pos.
// nullopt (pos unchanged) if it runs past the data.
std::optional<uint64_t> quic_read_varint(std::span<const uint8_t> data, size_t &pos);

// A long-header packet's invariant and version-specific fields, as parsed
// from the start of `packet` (a datagram from a packet's first byte).
struct QuicLongHeader {
    uint8_t first = 0;  // protected first byte
    uint32_t version = 0;
    const QuicVersionInfo *info = nullptr;  // nullptr: unknown version
    QuicPacketType type = QuicPacketType::initial;
    std::span<const uint8_t> dcid, scid, token;
    size_t pn_offset = 0;  // packet number (Initial, 0-RTT, Handshake)
    size_t size = 0;       // the whole packet (0 for Retry/unknown: the rest)
};

enum class QuicHeaderStatus : uint8_t {
    ok,
    not_long,             // first bit clear: a short header, or padding
    version_negotiation,  // version 0
    unknown_version,      // invariant fields parsed; the rest is version specific
    truncated,
    bad_cid_length,
};

QuicHeaderStatus quic_parse_long_header(std::span<const uint8_t> packet, QuicLongHeader &out);

// One Initial packet decrypted (header protection removed, payload opened).
struct QuicOpenedPacket {
    uint64_t packet_number = 0;
    uint8_t first = 0;             // unprotected first byte
    std::vector<uint8_t> header;   // unprotected header, packet number included
    std::vector<uint8_t> payload;  // plaintext frames
};

enum class QuicOpenStatus : uint8_t { ok, too_short, auth_failed };

// `packet` spans exactly hdr.size bytes. largest_pn: the largest packet
// number already opened in this space (nullopt: none yet).
QuicOpenStatus quic_open_packet(std::span<const uint8_t> packet, const QuicLongHeader &hdr,
                                const QuicInitialKeys &keys, std::optional<uint64_t> largest_pn,
                                QuicOpenedPacket &out);

struct QuicCryptoFrame {
    uint64_t offset = 0;
    std::span<const uint8_t> data;
};

// Frames of an Initial packet's plaintext: CRYPTO frames appended to `out`.
// Returns "" or the anomaly that stopped the walk (quic_bad_frame,
// quic_unknown_frame). gquic_frames (Google's T050/T051, which put gQUIC
// frames in IETF-style packets): PADDING 0x00 (the rest of the packet), PING
// 0x07, CRYPTO 0x08 (offset, length and data as IETF CRYPTO); any other gQUIC
// frame (ACK 0x40-0x7f, ...) ends the walk without an anomaly, its layout
// not being parsed here.
std::string_view quic_parse_initial_frames(std::span<const uint8_t> payload,
                                           std::vector<QuicCryptoFrame> &out,
                                           bool gquic_frames = false);

class QuicInitialDecoder {
public:
    enum class Status : uint8_t { need_more, done, failed };

    QuicInitialDecoder();
    ~QuicInitialDecoder();
    QuicInitialDecoder(const QuicInitialDecoder &) = delete;
    QuicInitialDecoder &operator=(const QuicInitialDecoder &) = delete;

    // One client UDP datagram. After done or failed, further datagrams are ignored.
    Status add(std::span<const uint8_t> datagram);
    // No more datagrams: a pending decoder fails (see failure()).
    Status finish();

    Status status() const { return status_; }
    // done: the ClientHello (is_quic set).
    const ClientHello &hello() const;
    // failed: why, an anomaly name.
    std::string_view failure() const { return failure_; }
    // Every anomaly seen, distinct, in order (static strings).
    const std::vector<std::string_view> &anomalies() const { return anomalies_; }
    // The version of the first Initial opened (0: none yet).
    uint32_t version() const { return version_; }
    uint32_t initials_opened() const { return opened_; }
    // CRYPTO stream bytes held contiguously from offset 0.
    uint32_t crypto_contiguous() const;

private:
    void note(std::string_view anomaly);
    void packet(std::span<const uint8_t> pkt, const QuicLongHeader &hdr);
    const QuicInitialKeys *keys_for(uint32_t version, std::span<const uint8_t> dcid);
    void crypto(const QuicCryptoFrame &f);

    struct CachedKeys {
        uint32_t version;
        std::vector<uint8_t> dcid;
        QuicInitialKeys keys;
    };

    Status status_ = Status::need_more;
    std::string_view failure_;
    std::vector<std::string_view> anomalies_;
    std::vector<CachedKeys> keys_;    // a few (version, DCID) pairs
    std::optional<size_t> key_dcid_;  // index in keys_ of the key DCID
    std::optional<uint64_t> largest_pn_;
    uint32_t version_ = 0;
    uint32_t opened_ = 0;
    bool crypto_seen_ = false;
    std::unique_ptr<HelloReassembler> crypto_;
};

std::string_view to_string(QuicInitialDecoder::Status s);

}  // namespace exf::tls
