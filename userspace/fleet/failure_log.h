// SPDX-License-Identifier: Apache-2.0
#pragma once
// A failure that recurs while a server is away (an insert retried, a read
// repeated every evaluation) is logged when its cause changes and when it
// ends, once each: an hour's outage costs two lines, not one per attempt.
#include <spdlog/spdlog.h>

#include <cstdint>
#include <string>

namespace exf::fleet {

class FailureLog {
public:
    // what: the operation as the log names it ("hourly rollup"); meanwhile:
    // what happens until it works again ("periods are kept and sent ...").
    FailureLog(std::string what, std::string meanwhile)
        : what_(std::move(what)), meanwhile_(std::move(meanwhile))
    {}

    void failed(const std::string &why)
    {
        failures_in_a_row_++;
        if (why != last_error_)
            spdlog::warn("fleet: {}: {}; {}", what_, why, meanwhile_);
        last_error_ = why;
    }

    void succeeded()
    {
        if (!last_error_.empty())
            spdlog::info("fleet: {} works again, after {} failed attempt(s)", what_,
                         failures_in_a_row_);
        last_error_.clear();
        failures_in_a_row_ = 0;
    }

    const std::string &last_error() const { return last_error_; }  // "" when working

private:
    std::string what_, meanwhile_;
    std::string last_error_;
    uint64_t failures_in_a_row_ = 0;
};

}  // namespace exf::fleet
