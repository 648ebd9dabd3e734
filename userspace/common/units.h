// SPDX-License-Identifier: Apache-2.0
#pragma once
// Sizes ("500MiB", "2GB", "4096") and durations ("10m", "1h30m", "500ms").
#include <cstdint>
#include <optional>
#include <string_view>

namespace exf {

// Binary (KiB, MiB, GiB, TiB) and decimal (KB, MB, GB, TB) units, or B/none.
std::optional<uint64_t> parse_size(std::string_view text);
// Units ms, s, m, h, d; several may follow each other ("1h30m").
std::optional<uint64_t> parse_duration_ms(std::string_view text);

// An inclusive range of allowed values. A module states each of its limits
// once as a Range, checks against it, and the configuration reader words it
// for users from the same constant.
struct Range {
    uint64_t lo, hi;
    constexpr bool contains(uint64_t v) const { return v >= lo && v <= hi; }
};

}  // namespace exf
