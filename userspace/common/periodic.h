// SPDX-License-Identifier: Apache-2.0
#pragma once
// A step that runs every interval on the caller's clock in milliseconds (the
// daemon's monotonic clock, replay's packet time): the one rule for when a
// harvest, an evaluation or any other periodic step is due.
#include <algorithm>
#include <cstdint>

namespace exf {

class Periodic {
public:
    explicit Periodic(uint64_t interval_ms) : interval_ms_(interval_ms) {}
    // The first run is due at once, or one interval after now.
    void start(uint64_t now_ms, bool at_once = false)
    {
        next_ms_ = at_once ? now_ms : now_ms + interval_ms_;
        started_ = true;
    }
    bool started() const { return started_; }
    // True when the step is due; the next one is then due an interval from
    // now (a late step does not bunch up the following ones).
    bool due(uint64_t now_ms)
    {
        if (now_ms < next_ms_)
            return false;
        next_ms_ = now_ms + interval_ms_;
        return true;
    }
    // A new interval applies from now, not after the old one ran out.
    void set_interval(uint64_t interval_ms, uint64_t now_ms)
    {
        interval_ms_ = interval_ms;
        next_ms_ = std::min(next_ms_, now_ms + interval_ms);
    }

private:
    uint64_t interval_ms_;
    uint64_t next_ms_ = 0;
    bool started_ = false;
};

}  // namespace exf
