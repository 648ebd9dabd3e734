// SPDX-License-Identifier: Apache-2.0
#include "sources/event_queue.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "capture/events.h"
#include "common/log.h"

namespace exf {

EventQueue::EventQueue(size_t size) : slots_(size), queue_(size), free_(size)
{
    for (auto &s : slots_)
        free_.push(&s);
}

bool EventQueue::push(std::span<const uint8_t> e, const std::atomic<bool> *stop)
{
    received_.fetch_add(1, std::memory_order_relaxed);
    EventSlot *slot;
    if (!free_.pop(slot)) {
        if (stop)
            waited_.fetch_add(1, std::memory_order_relaxed);
        for (;;) {
            if (!stop || stop->load(std::memory_order_relaxed)) {
                dropped_.fetch_add(1, std::memory_order_relaxed);
                return false;
            }
            std::this_thread::sleep_for(std::chrono::microseconds(100));
            if (free_.pop(slot))
                break;
        }
    }
    slot->size = uint32_t(std::min(e.size(), slot->bytes.size()));
    std::memcpy(slot->bytes.data(), e.data(), slot->size);
    queue_.push(slot);  // cannot fail: at most size slots exist
    return true;
}

EventConsumer::EventConsumer(int ringbuf_fd, EventQueue &queue)
{
    // The reader is created here so that a failure is reported to the caller.
    auto reader = std::make_shared<EventReader>(
        ringbuf_fd, [this, &queue](std::span<const uint8_t> e) { queue.push(e, &stop_); });
    thread_ = std::thread([this, reader] {
        while (!stop_.load(std::memory_order_relaxed)) {
            try {
                // Events come without wakeups (see exf_wake_flags): poll
                // sleeps up to 50 ms, then whatever is there is consumed.
                reader->poll(50);
                reader->drain();
            } catch (const std::exception &e) {
                spdlog::error("{}", e.what());
                return;
            }
        }
        reader->drain();
    });
}

EventConsumer::~EventConsumer()
{
    stop_ = true;
    if (thread_.joinable())
        thread_.join();
}

}  // namespace exf
