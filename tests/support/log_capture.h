// SPDX-License-Identifier: Apache-2.0
#pragma once
// Captures what the code under test logs through spdlog's default logger
// (in this process: outputs, the pipeline), for tests that assert a log line
// and how often it appears. Install it before starting the threads that log
// and destroy it after they stopped: spdlog's sink list is not synchronized
// against concurrent logging.
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace exf::test {

class LogCapture {
public:
    LogCapture() : sink_(std::make_shared<Sink>())
    {
        spdlog::default_logger()->sinks().push_back(sink_);
    }
    ~LogCapture()
    {
        auto &sinks = spdlog::default_logger()->sinks();
        sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    }
    LogCapture(const LogCapture &) = delete;
    LogCapture &operator=(const LogCapture &) = delete;

    // Everything logged so far, one "[level] message" a line.
    std::vector<std::string> lines() { return sink_->lines(); }
    std::string text()
    {
        std::string t;
        for (auto &l : lines())
            t += l + "\n";
        return t;
    }
    // Lines containing every one of the needles.
    size_t count(std::initializer_list<std::string> needles)
    {
        size_t n = 0;
        for (auto &line : lines())
            n += std::all_of(needles.begin(), needles.end(), [&](const std::string &s) {
                return line.find(s) != std::string::npos;
            });
        return n;
    }

private:
    class Sink final : public spdlog::sinks::base_sink<std::mutex> {
    public:
        std::vector<std::string> lines()
        {
            std::lock_guard lk(mutex_);
            return lines_;
        }

    protected:
        void sink_it_(const spdlog::details::log_msg &msg) override
        {
            lines_.push_back("[" +
                             std::string(spdlog::level::to_string_view(msg.level).data(),
                                         spdlog::level::to_string_view(msg.level).size()) +
                             "] " + std::string(msg.payload.data(), msg.payload.size()));
        }
        void flush_() override {}

    private:
        std::vector<std::string> lines_;
    };
    std::shared_ptr<Sink> sink_;
};

}  // namespace exf::test
