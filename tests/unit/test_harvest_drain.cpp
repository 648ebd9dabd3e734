// SPDX-License-Identifier: Apache-2.0
// run_draining: the event queue keeps being emptied while a harvest runs,
// and what it took reaches the consumer after the harvest, in order.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "harvest/drain.h"
#include "sources/event_queue.h"

using namespace exf;
using namespace std::chrono_literals;

namespace {

// A ring buffer reader stand-in: pushes n 3-byte events numbered from 0 into
// the queue, waiting for free slots as EventConsumer does.
struct Producer {
    EventQueue &q;
    int n;
    std::atomic<bool> stop{false};
    std::atomic<int> pushed{0};
    std::thread t;
    Producer(EventQueue &queue, int count) : q(queue), n(count)
    {
        t = std::thread([this] {
            for (int i = 0; i < n; i++) {
                uint8_t e[3] = {uint8_t(i), uint8_t(i >> 8), 0xab};
                if (!q.push(e, &stop))
                    return;
                pushed++;
            }
        });
    }
    ~Producer()
    {
        stop = true;
        t.join();
    }
    // Waits until all are pushed; false after limit.
    bool wait_all(std::chrono::milliseconds limit) const
    {
        auto end = std::chrono::steady_clock::now() + limit;
        while (pushed.load() < n)
            if (std::chrono::steady_clock::now() > end)
                return false;
            else
                std::this_thread::sleep_for(1ms);
        return true;
    }
    // Waits until pushing has not progressed for quiet; returns the count.
    int wait_stuck(std::chrono::milliseconds quiet) const
    {
        int last = -1;
        while (pushed.load() != last) {
            last = pushed.load();
            std::this_thread::sleep_for(quiet);
        }
        return last;
    }
};

int number(std::span<const uint8_t> e)
{
    REQUIRE(e.size() == 3);
    CHECK(e[2] == 0xab);
    return e[0] | e[1] << 8;
}

}  // namespace

TEST_CASE(
    "A harvest lets the reader go on: events queued meanwhile are drained and handed on after it",
    "[pipeline]")
{
    EventQueue q(4);
    constexpr int kEvents = 500;
    Producer p(q, kEvents);
    std::atomic<bool> work_done{false};
    bool all_pushed_during_work = false;
    std::vector<int> got;
    bool any_before_done = false;
    auto r = run_draining(
        [&] {
            // A long harvest: 500 events arrive through a 4-slot queue.
            all_pushed_during_work = p.wait_all(10s);
            work_done = true;
        },
        [&](const EventFn &fn) { return q.pop_all(fn); },
        [&](std::span<const uint8_t> e) {
            any_before_done |= !work_done.load();
            got.push_back(number(e));
        },
        1 << 20);
    CHECK(all_pushed_during_work);  // the reader never had to wait for the harvest's end
    CHECK_FALSE(any_before_done);   // the consumer saw nothing while the harvest ran
    CHECK_FALSE(r.limit_reached);
    // Whatever the last pop missed is still queued: take it now.
    q.pop_all([&](std::span<const uint8_t> e) { got.push_back(number(e)); });
    REQUIRE(got.size() == size_t(kEvents));
    for (int i = 0; i < kEvents; i++)
        REQUIRE(got[size_t(i)] == i);  // all of them, in order
    CHECK(r.staged >= uint64_t(kEvents - 4));
    CHECK(r.staged_bytes == 3 * r.staged);
    CHECK(q.dropped() == 0);
}

TEST_CASE("Draining during a harvest stops at its byte limit and the reader then waits",
          "[pipeline]")
{
    EventQueue q(4);
    constexpr int kEvents = 200;
    Producer p(q, kEvents);
    int pushed_during_work = 0;
    std::vector<int> got;
    auto r = run_draining([&] { pushed_during_work = p.wait_stuck(100ms); },
                          [&](const EventFn &fn) { return q.pop_all(fn); },
                          [&](std::span<const uint8_t> e) { got.push_back(number(e)); },
                          30);  // 10 events of 3 bytes
    CHECK(r.limit_reached);
    // Staging stops once it holds 30 bytes, one pop (4 events) past at most;
    // then 4 more fill the queue and the reader waits.
    CHECK(r.staged >= 10);
    CHECK(r.staged <= 14);
    CHECK(got.size() == r.staged);
    CHECK(pushed_during_work <= int(r.staged) + 4 + 1);
    CHECK(pushed_during_work < kEvents);
    // Nothing was lost: the rest arrives through the queue as usual.
    while (got.size() < size_t(kEvents)) {
        q.pop_all([&](std::span<const uint8_t> e) { got.push_back(number(e)); });
        std::this_thread::sleep_for(100us);
    }
    for (int i = 0; i < kEvents; i++)
        REQUIRE(got[size_t(i)] == i);
    CHECK(q.dropped() == 0);
}

TEST_CASE("A harvest that throws still hands on the events drained meanwhile", "[pipeline]")
{
    EventQueue q(4);
    Producer p(q, 10);
    std::vector<int> got;
    CHECK_THROWS_WITH(run_draining(
                          [&] {
                              if (!p.wait_all(10s))  // no Catch assertions off the test's thread
                                  throw std::runtime_error("the producer is stuck");
                              // Give the drain loop time to take the last ones.
                              std::this_thread::sleep_for(50ms);
                              throw std::runtime_error("read flows: Bad file descriptor");
                          },
                          [&](const EventFn &fn) { return q.pop_all(fn); },
                          [&](std::span<const uint8_t> e) { got.push_back(number(e)); }, 1 << 20),
                      "read flows: Bad file descriptor");
    REQUIRE(got.size() == 10);
    for (int i = 0; i < 10; i++)
        CHECK(got[size_t(i)] == i);
}
