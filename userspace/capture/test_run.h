// SPDX-License-Identifier: Apache-2.0
#pragma once
// Running a tc program on one frame through BPF_PROG_TEST_RUN: used by
// replay, the tests and the benchmarks.
#include <cstdint>
#include <span>

namespace exf {

struct TestRunOptions {
    uint64_t tstamp_ns = 0;  // skb->tstamp (packet time in replay)
    uint32_t gso_segs = 0;   // skb's gso_segs (0: not a GSO packet)
    uint32_t gso_size = 0;
    uint32_t repeat = 1;
};

struct TestRunResult {
    int err = 0;               // 0 or -errno of the syscall
    uint32_t retval = 0;       // the program's verdict
    uint32_t duration_ns = 0;  // kernel-measured mean per run
};

// Largest frame the kernel accepts for an skb test run (one page less
// headroom and shared info).
constexpr size_t kMaxTestRunFrame = 3500;

TestRunResult run_tc_program(int prog_fd, std::span<const uint8_t> frame,
                             const TestRunOptions &opts = {});

// Keeps the calling thread on the CPU it runs on, for as long as it lives
// (then the previous affinity is restored). A test run executes on the
// caller's CPU, and the program's flow cache is per CPU: a replay that
// migrated between CPUs would leave a flow's pending counts in another
// CPU's slot when its 5-tuple is reused (the reuse event would miss them).
class CpuPin {
public:
    CpuPin();
    ~CpuPin();
    CpuPin(const CpuPin &) = delete;
    CpuPin &operator=(const CpuPin &) = delete;

private:
    bool pinned_ = false;
    alignas(8) unsigned char old_[128];  // cpu_set_t
};

}  // namespace exf
