// SPDX-License-Identifier: Apache-2.0
#pragma once
// Shared by the libFuzzer targets (tests/fuzz/*.cpp, docs/reliability.md).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>
#include <vector>

// An invariant of the code under test: on failure, print it and abort, which
// libFuzzer reports as a crash (with the input saved).
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);      \
            std::abort();                                                                          \
        }                                                                                          \
    } while (0)

namespace exf::fuzz {

// The record framing of the multi-record targets (datapath, flow tracker):
// each record is a 2-byte big-endian length and that many bytes; a last
// record whose length runs past the input takes what is left.
inline std::vector<std::span<const uint8_t>> split_records(std::span<const uint8_t> in)
{
    std::vector<std::span<const uint8_t>> out;
    while (in.size() >= 2) {
        size_t n = size_t(in[0]) << 8 | in[1];
        in = in.subspan(2);
        n = n < in.size() ? n : in.size();
        out.push_back(in.first(n));
        in = in.subspan(n);
    }
    return out;
}

inline void append_record(std::vector<uint8_t> &out, std::span<const uint8_t> rec)
{
    out.push_back(uint8_t(rec.size() >> 8));
    out.push_back(uint8_t(rec.size()));
    out.insert(out.end(), rec.begin(), rec.end());
}

}  // namespace exf::fuzz
