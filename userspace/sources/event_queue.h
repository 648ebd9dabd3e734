// SPDX-License-Identifier: Apache-2.0
#pragma once
// The live event path: EventConsumer, a thread reading the BPF ring buffer
// into a lock-free single-producer queue (EventQueue). When the queue is full
// (the main loop is busy, e.g. harvesting a large table) it stops reading and
// waits, so that the ring buffer holds what arrives meanwhile: an event is
// lost only when the ring buffer is full too, and the kernel counts it
// (EXF_C_RB_FULL).
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include <boost/lockfree/spsc_queue.hpp>

#include "capture/maps.h"

namespace exf {

struct EventSlot {
    uint32_t size = 0;
    std::array<uint8_t, sizeof(exf_hello_event)> bytes;
};

// Fixed slots handed between one producer and one consumer thread without
// locks or allocation.
class EventQueue {
public:
    explicit EventQueue(size_t size);
    EventQueue(const EventQueue &) = delete;
    EventQueue &operator=(const EventQueue &) = delete;

    // Producer side. When no slot is free it waits for the consumer (sleeping
    // 100 us at a time) until one is, or until *stop is set: then (or with
    // stop == nullptr, never waiting) the event is dropped and counted.
    // Returns whether the event was queued.
    bool push(std::span<const uint8_t> e, const std::atomic<bool> *stop = nullptr);
    // Consumer side: hands each queued event to fn, at most one queue's
    // worth per call, so that a producer refilling as fast as slots free up
    // (a backlog in the ring buffer) cannot hold the caller's loop.
    template <typename F>
    size_t pop_all(F &&fn)
    {
        size_t n = 0;
        EventSlot *slot;
        while (n < slots_.size() && queue_.pop(slot)) {
            fn(std::span<const uint8_t>(slot->bytes.data(), slot->size));
            free_.push(slot);
            n++;
        }
        return n;
    }
    uint64_t received() const { return received_.load(std::memory_order_relaxed); }
    uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
    // Events that had to wait for a free slot (the queue was full).
    uint64_t waited() const { return waited_.load(std::memory_order_relaxed); }

private:
    std::vector<EventSlot> slots_;
    boost::lockfree::spsc_queue<EventSlot *> queue_;  // producer -> consumer
    boost::lockfree::spsc_queue<EventSlot *> free_;   // consumer -> producer
    std::atomic<uint64_t> received_{0}, dropped_{0}, waited_{0};
};

// The ring buffer reader thread, feeding an EventQueue.
class EventConsumer {
public:
    EventConsumer(int ringbuf_fd, EventQueue &queue);  // throws exf::Error
    ~EventConsumer();
    EventConsumer(const EventConsumer &) = delete;
    EventConsumer &operator=(const EventConsumer &) = delete;

private:
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace exf
