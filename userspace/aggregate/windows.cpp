// SPDX-License-Identifier: Apache-2.0
#include "aggregate/windows.h"

namespace exf::agg {

std::string window_name(uint64_t ms)
{
    static const struct {
        uint64_t ms;
        const char *unit;
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
    if (ms == 0)
        return "0ms";
    // Hours up to 48 read better than days ("24h").
    for (auto &u : units) {
        if (u.ms == 86400000 && ms <= 2 * 86400000ull)
            continue;
        if (ms % u.ms == 0)
            return std::to_string(ms / u.ms) + u.unit;
    }
    return std::to_string(ms) + "ms";
}

uint64_t sliding_estimate(uint64_t cur, uint64_t prev, uint64_t t, uint64_t len)
{
    if (len == 0)
        return cur;
    uint64_t w = len - 1 - t % len;  // milliseconds of the previous bucket still in the window
    // prev * w / len without overflow: len <= kMaxWindowMs keeps (len-1)^2 < 2^64.
    uint64_t part = prev / len * w + (prev % len) * w / len;
    return sat_add(cur, part);
}

}  // namespace exf::agg
