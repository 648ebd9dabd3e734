// SPDX-License-Identifier: Apache-2.0
#include "harvest/drain.h"

#include <atomic>
#include <chrono>
#include <exception>
#include <thread>
#include <vector>

namespace exf {

DrainResult run_draining(const std::function<void()> &work, const PopFn &pop, const EventFn &fn,
                         size_t max_bytes)
{
    DrainResult r;
    std::vector<uint8_t> bytes;
    std::vector<uint32_t> sizes;
    std::atomic<bool> stop{false};
    // The helper is the queue's consumer until it is joined (thread start
    // and join order its pops with the caller's before and after). The
    // harvest itself stays on the calling thread, with its allocations in
    // that thread's malloc arena as before.
    std::thread drainer([&] {
        auto stage = [&](std::span<const uint8_t> e) {
            bytes.insert(bytes.end(), e.begin(), e.end());
            sizes.push_back(uint32_t(e.size()));
        };
        while (!stop.load(std::memory_order_acquire)) {
            size_t n = 0;
            if (bytes.size() < max_bytes)
                n = pop(stage);
            else
                r.limit_reached = true;
            if (n == 0)
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    });
    std::exception_ptr error;
    try {
        work();
    } catch (...) {
        error = std::current_exception();
    }
    stop.store(true, std::memory_order_release);
    drainer.join();
    r.staged = sizes.size();
    r.staged_bytes = bytes.size();
    size_t off = 0;
    for (uint32_t s : sizes) {
        fn(std::span<const uint8_t>(bytes.data() + off, s));
        off += s;
    }
    if (error)
        std::rethrow_exception(error);
    return r;
}

}  // namespace exf
