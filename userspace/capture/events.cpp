// SPDX-License-Identifier: Apache-2.0
#include "capture/events.h"

#include <bpf/libbpf.h>

#include <cerrno>

#include "common/error.h"

namespace exf {

EventReader::EventReader(int fd, Callback cb) : cb_(std::move(cb))
{
    rb_ = ring_buffer__new(fd, &EventReader::on_event, this, nullptr);
    if (!rb_)
        throw_errno("open BPF ring buffer", errno);
}

EventReader::~EventReader() { ring_buffer__free(rb_); }

int EventReader::on_event(void *ctx, void *data, size_t size)
{
    auto *self = static_cast<EventReader *>(ctx);
    self->cb_(std::span<const uint8_t>(static_cast<const uint8_t *>(data), size));
    return 0;
}

int EventReader::poll(int timeout_ms)
{
    int n = ring_buffer__poll(rb_, timeout_ms);
    if (n == -EINTR)
        return 0;
    if (n < 0)
        throw_errno("poll BPF ring buffer", n);
    return n;
}

int EventReader::drain()
{
    int n = ring_buffer__consume(rb_);
    if (n < 0)
        throw_errno("read BPF ring buffer", n);
    return n;
}

int EventReader::epoll_fd() const { return ring_buffer__epoll_fd(rb_); }

}  // namespace exf
