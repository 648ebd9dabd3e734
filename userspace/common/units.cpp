// SPDX-License-Identifier: Apache-2.0
#include "common/units.h"

#include <cctype>
#include <limits>
#include <string>

namespace exf {

namespace {
bool mul_ok(uint64_t a, uint64_t b, uint64_t &out)
{
    if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a)
        return false;
    out = a * b;
    return true;
}

// Reads digits (with an optional fraction) at i; returns value scaled by 1e6.
bool read_number(std::string_view t, size_t &i, uint64_t &micro)
{
    size_t start = i;
    uint64_t whole = 0, frac = 0, scale = 1000000;
    while (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i]))) {
        if (whole > (std::numeric_limits<uint64_t>::max() / 10 - 9) / 1000000)
            return false;
        whole = whole * 10 + uint64_t(t[i++] - '0');
    }
    if (i < t.size() && t[i] == '.') {
        i++;
        size_t fstart = i;
        while (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i]))) {
            if (scale > 1) {
                scale /= 10;
                frac += uint64_t(t[i] - '0') * scale;
            }
            i++;
        }
        if (i == fstart)
            return false;
    }
    if (i == start)
        return false;
    micro = whole * 1000000 + frac;
    return true;
}
}  // namespace

std::optional<uint64_t> parse_size(std::string_view t)
{
    while (!t.empty() && t.back() == ' ')
        t.remove_suffix(1);
    size_t i = 0;
    uint64_t micro;
    if (!read_number(t, i, micro))
        return std::nullopt;
    while (i < t.size() && t[i] == ' ')
        i++;
    std::string unit(t.substr(i));
    uint64_t mult;
    if (unit.empty() || unit == "B")
        mult = 1;
    else if (unit == "KiB")
        mult = 1ull << 10;
    else if (unit == "MiB")
        mult = 1ull << 20;
    else if (unit == "GiB")
        mult = 1ull << 30;
    else if (unit == "TiB")
        mult = 1ull << 40;
    else if (unit == "KB" || unit == "kB")
        mult = 1000ull;
    else if (unit == "MB")
        mult = 1000000ull;
    else if (unit == "GB")
        mult = 1000000000ull;
    else if (unit == "TB")
        mult = 1000000000000ull;
    else
        return std::nullopt;
    uint64_t out;
    if (!mul_ok(micro, mult, out))
        return std::nullopt;
    return out / 1000000;
}

std::optional<uint64_t> parse_duration_ms(std::string_view t)
{
    size_t i = 0;
    uint64_t total = 0;
    if (t.empty())
        return std::nullopt;
    while (i < t.size()) {
        uint64_t micro;
        if (!read_number(t, i, micro))
            return std::nullopt;
        size_t u = i;
        while (i < t.size() && std::isalpha(static_cast<unsigned char>(t[i])))
            i++;
        std::string_view unit = t.substr(u, i - u);
        uint64_t ms;
        if (unit == "ms")
            ms = 1;
        else if (unit == "s")
            ms = 1000;
        else if (unit == "m")
            ms = 60000;
        else if (unit == "h")
            ms = 3600000;
        else if (unit == "d")
            ms = 86400000;
        else
            return std::nullopt;
        uint64_t part;
        if (!mul_ok(micro, ms, part))
            return std::nullopt;
        part /= 1000000;
        if (total > std::numeric_limits<uint64_t>::max() - part)
            return std::nullopt;
        total += part;
    }
    return total;
}

}  // namespace exf
