// SPDX-License-Identifier: Apache-2.0
#include "tls/hello_reassembler.h"

#include <algorithm>
#include <cstring>

namespace exf::tls {

HelloReassembler::HelloReassembler(Framing framing, bool is_quic)
    : framing_(framing), is_quic_(is_quic)
{}

void HelloReassembler::reset()
{
    status_ = Status::need_more;
    anomaly_ = HelloAnomaly::none;
    consumed_ = 0;
    conflicts_ = 0;
    evaluated_ = 0;
    buf_.clear();
    n_ranges_ = 0;
    hello_.clear();
}

uint32_t HelloReassembler::contiguous() const
{
    return n_ranges_ > 0 && ranges_[0].begin == 0 ? ranges_[0].end : 0;
}

void HelloReassembler::settle(Status s, HelloAnomaly a)
{
    status_ = s;
    anomaly_ = a;
    // The result is final: give the memory back.
    std::vector<uint8_t>().swap(buf_);
    n_ranges_ = 0;
}

HelloReassembler::Status HelloReassembler::evaluate(std::span<const uint8_t> prefix)
{
    auto parse = [&](ClientHello *out) {
        return framing_ == Framing::tls_record ? parser_.parse_record(prefix, out)
                                               : parser_.parse_handshake(prefix, out, is_quic_);
    };
    // Framing check first (no allocation); the full parse once complete.
    ParseResult r = parse(nullptr);
    if (r.complete())
        r = parse(&hello_);
    switch (r.status) {
    case ParseStatus::complete:
        consumed_ = static_cast<uint32_t>(r.consumed);
        settle(Status::done, r.anomaly);
        break;
    case ParseStatus::malformed:
        hello_.clear();
        settle(Status::malformed, r.anomaly);
        break;
    case ParseStatus::need_more:
        anomaly_ = r.anomaly;
        if (r.needed > kMaxBytes || prefix.size() >= kMaxBytes)
            settle(Status::malformed, HelloAnomaly::too_long);
        break;
    }
    return status_;
}

bool HelloReassembler::insert_range(uint32_t begin, uint32_t end)
{
    // ranges_ is sorted and disjoint, with no two ranges touching.
    std::array<Range, kMaxRanges + 1> merged;
    size_t n = 0;
    Range cur{begin, end};
    bool placed = false;
    for (size_t i = 0; i < n_ranges_; ++i) {
        const Range r = ranges_[i];
        if (r.end < cur.begin) {
            merged[n++] = r;
        } else if (cur.end < r.begin) {
            if (!placed) {
                merged[n++] = cur;
                placed = true;
            }
            merged[n++] = r;
        } else {
            cur.begin = std::min(cur.begin, r.begin);
            cur.end = std::max(cur.end, r.end);
        }
    }
    if (!placed)
        merged[n++] = cur;
    if (n > kMaxRanges)
        return false;
    std::copy(merged.begin(), merged.begin() + static_cast<std::ptrdiff_t>(n), ranges_.begin());
    n_ranges_ = n;
    return true;
}

HelloReassembler::Status HelloReassembler::add(uint32_t offset, std::span<const uint8_t> bytes)
{
    if (status_ != Status::need_more || bytes.empty())
        return status_;
    if (offset >= kMaxBytes)
        return status_;  // beyond the cap: dropped
    const uint64_t want_end = static_cast<uint64_t>(offset) + bytes.size();
    const auto end = static_cast<uint32_t>(std::min<uint64_t>(want_end, kMaxBytes));
    bytes = bytes.first(end - offset);

    // Fast path: the first bytes of the stream, nothing held yet.
    if (offset == 0 && n_ranges_ == 0) {
        if (evaluate(bytes) != Status::need_more)
            return status_;
        evaluated_ = end;  // the buffered copy below needs no second look
    }

    if (buf_.size() < end) {
        if (buf_.capacity() < end)
            buf_.reserve(std::max<size_t>(end, std::min<size_t>(2 * buf_.capacity(), kMaxBytes)));
        buf_.resize(end);
    }
    // Copy into the gaps; compare where bytes are already held.
    uint32_t cur = offset;
    auto copy = [&](uint32_t from, uint32_t to) {
        std::memcpy(&buf_[from], &bytes[from - offset], to - from);
    };
    for (size_t i = 0; i < n_ranges_ && cur < end; ++i) {
        const Range r = ranges_[i];
        if (r.end <= cur)
            continue;
        if (r.begin >= end)
            break;
        if (r.begin > cur)
            copy(cur, r.begin);
        const uint32_t ov_begin = std::max(cur, r.begin);
        const uint32_t ov_end = std::min(end, r.end);
        for (uint32_t k = ov_begin; k < ov_end; ++k)
            if (buf_[k] != bytes[k - offset])
                ++conflicts_;
        cur = ov_end;
    }
    if (cur < end)
        copy(cur, end);

    if (!insert_range(offset, end)) {
        hello_.clear();
        settle(Status::malformed, HelloAnomaly::too_fragmented);
        return status_;
    }
    const uint32_t have = contiguous();
    if (have > evaluated_) {
        evaluated_ = have;
        return evaluate(std::span<const uint8_t>(buf_.data(), have));
    }
    return status_;
}

HelloReassembler::Status HelloReassembler::finish()
{
    if (status_ == Status::need_more) {
        const HelloAnomaly a =
            anomaly_ == HelloAnomaly::none
                ? (framing_ == Framing::tls_record ? HelloAnomaly::truncated_record
                                                   : HelloAnomaly::truncated_handshake)
                : anomaly_;
        settle(Status::malformed, a);
    }
    return status_;
}

std::string_view to_string(HelloReassembler::Status s)
{
    switch (s) {
    case HelloReassembler::Status::need_more: return "need_more";
    case HelloReassembler::Status::done: return "done";
    case HelloReassembler::Status::malformed: return "malformed";
    }
    return "unknown";
}

}  // namespace exf::tls
