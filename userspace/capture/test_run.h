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
    int err = 0;            // 0 or -errno of the syscall
    uint32_t retval = 0;    // the program's verdict
    uint32_t duration_ns = 0;  // kernel-measured mean per run
};

// Largest frame the kernel accepts for an skb test run (one page less
// headroom and shared info).
constexpr size_t kMaxTestRunFrame = 3500;

TestRunResult run_tc_program(int prog_fd, std::span<const uint8_t> frame,
                             const TestRunOptions &opts = {});

}  // namespace exf
