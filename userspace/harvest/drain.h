// SPDX-License-Identifier: Apache-2.0
#pragma once
// Draining the event queue while a harvest runs.
//
// A harvest of large tables holds the main loop for up to a couple of
// seconds (reading a 1M-flow table alone takes 0.8-1.6 s on the development
// VM). Without help the event queue fills, the ring buffer reader waits, and
// the BPF ring buffer must hold everything that arrives meanwhile (it drops,
// counted, when full). run_draining() runs the harvest while a helper
// thread, the queue's consumer for that time, keeps emptying the queue into
// a staging buffer; the staged events are then handed on in arrival order,
// after the harvest. So the harvest sees the flow tracker exactly as before
// (events that arrive during a harvest are applied after it, as when they
// waited in the queue), and the ring buffer reader never waits for a
// harvest unless the staging buffer is full.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

namespace exf {

// What one run_draining() call did.
struct DrainResult {
    uint64_t staged = 0;         // events taken from the queue during work()
    uint64_t staged_bytes = 0;   // their bytes
    bool limit_reached = false;  // staging stopped at max_bytes for a while
};

using EventFn = std::function<void(std::span<const uint8_t>)>;
// Pops what is queued, handing each event to the callback; returns how many
// (LiveSource::pop_events, EventQueue::pop_all). Called from the helper.
using PopFn = std::function<size_t(const EventFn &)>;

// Runs work() on this thread; meanwhile a helper thread pops events with
// pop into a staging buffer until work() returns or the buffer holds
// max_bytes (it may exceed it by the last pop's events). Then hands the
// staged events to fn in order, on this thread. An exception from work() is
// rethrown after that.
DrainResult run_draining(const std::function<void()> &work, const PopFn &pop, const EventFn &fn,
                         size_t max_bytes);

// Staging bound the daemon uses: about 90,000 typical ClientHello events.
inline constexpr size_t kHarvestDrainBytes = size_t(64) << 20;

}  // namespace exf
