// SPDX-License-Identifier: Apache-2.0
#pragma once
// The BPF ring buffer of hello and flow-end events.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

struct ring_buffer;

namespace exf {

class EventReader {
public:
    // The callback sees each event's bytes; it must not block.
    using Callback = std::function<void(std::span<const uint8_t>)>;
    EventReader(int ringbuf_fd, Callback cb);  // throws exf::Error
    ~EventReader();
    EventReader(const EventReader &) = delete;
    EventReader &operator=(const EventReader &) = delete;

    // Waits up to timeout_ms; returns events handled (EINTR counts as 0).
    int poll(int timeout_ms);
    // Drains what is there without waiting.
    int drain();
    int epoll_fd() const;

private:
    static int on_event(void *ctx, void *data, size_t size);
    Callback cb_;
    ring_buffer *rb_ = nullptr;
};

}  // namespace exf
