// SPDX-License-Identifier: Apache-2.0
#pragma once
// Reassembles a client's first bytes from TCP segments (or QUIC CRYPTO frames)
// until they hold a complete ClientHello.
//
// Segments are given as (offset from the client's first payload byte, bytes)
// and may arrive out of order, retransmitted or overlapping. Where segments
// overlap, the bytes already held win (a differing copy is counted in
// conflicts(), a classic evasion sign). Only the first kMaxBytes of the stream
// are kept: bytes beyond are dropped, and if no complete hello fits in them the
// flow ends as malformed / too_long.
//
// The common case, a hello wholly inside the first segment at offset 0, is
// parsed straight from the caller's bytes without copying. Once the result is
// known (done or malformed) the buffer is released and further add() calls
// return the same status.
#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "tls/client_hello.h"

namespace exf::tls {

class HelloReassembler {
public:
    enum class Status : uint8_t { need_more, done, malformed };
    // tls_record: a TCP stream starting at a TLS record header.
    // handshake:  a bare handshake message (QUIC CRYPTO stream).
    enum class Framing : uint8_t { tls_record, handshake };

    static constexpr uint32_t kMaxBytes = 16 * 1024;
    static constexpr size_t kMaxRanges = 32;  // disjoint held ranges (holes + 1)

    explicit HelloReassembler(Framing framing = Framing::tls_record, bool is_quic = false);

    Status add(uint32_t offset, std::span<const uint8_t> bytes);
    // The stream ended (FIN, RST, timeout): a pending hello becomes malformed
    // with its truncation anomaly.
    Status finish();
    void reset();

    Status status() const { return status_; }
    // done: none or a content anomaly; malformed: the reason; need_more: the
    // truncation seen on the contiguous prefix so far (none before any).
    HelloAnomaly anomaly() const { return anomaly_; }
    // Valid when done.
    const ClientHello &hello() const { return hello_; }
    // done: stream bytes that hold the hello (offsets [0, consumed)).
    uint32_t consumed() const { return consumed_; }
    // Bytes held contiguously from offset 0.
    uint32_t contiguous() const;
    // Bytes currently buffered (0 after a result).
    size_t buffered() const { return buf_.size(); }
    // Overlapping bytes that differed from the copy already held.
    uint32_t conflicts() const { return conflicts_; }

private:
    struct Range {
        uint32_t begin;
        uint32_t end;
    };

    Status evaluate(std::span<const uint8_t> prefix);
    bool insert_range(uint32_t begin, uint32_t end);
    void settle(Status s, HelloAnomaly a);

    Framing framing_;
    bool is_quic_;
    Status status_ = Status::need_more;
    HelloAnomaly anomaly_ = HelloAnomaly::none;
    uint32_t consumed_ = 0;
    uint32_t conflicts_ = 0;
    uint32_t evaluated_ = 0;  // contiguous length at the last evaluation
    std::vector<uint8_t> buf_;
    std::array<Range, kMaxRanges> ranges_{};
    size_t n_ranges_ = 0;
    ClientHelloParser parser_;
    ClientHello hello_;
};

std::string_view to_string(HelloReassembler::Status s);

}  // namespace exf::tls
