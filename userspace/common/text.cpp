// SPDX-License-Identifier: Apache-2.0
#include "common/text.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <system_error>

namespace exf {

std::string ascii_escape(std::string_view in, size_t cap)
{
    std::string out;
    out.reserve(in.size() < cap ? in.size() : cap);
    for (size_t i = 0; i < in.size() && i < cap; i++) {
        auto c = static_cast<unsigned char>(in[i]);
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += static_cast<char>(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        }
    }
    return out;
}

// A finite double as printf's "%.Nf" prints it, through std::to_chars
// (the same digits, exactly rounded): glibc's printf takes a bignum path for
// large values, up to 309 integer digits (DBL_MAX), which would make printing
// absurd values most of an alert's formatting cost.
std::string format_fixed(double v, int decimals)
{
    char buf[400];  // room for any finite double with 3 decimals
    auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, decimals);
    if (r.ec != std::errc())  // cannot happen with this room; never a cut-off number
        return std::isnan(v) ? "nan" : "inf";
    return std::string(buf, r.ptr);
}

std::string format_number(double v)
{
    if (!std::isfinite(v))
        return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
    if (v == std::floor(v) && std::fabs(v) < 1e15)
        return format_fixed(v, 0);
    std::string s = format_fixed(v, 3);
    while (s.back() == '0')
        s.pop_back();
    if (s.back() == '.')
        s.pop_back();
    return s == "-0" ? "0" : s;
}

}  // namespace exf
