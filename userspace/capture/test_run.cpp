// SPDX-License-Identifier: Apache-2.0
#include "capture/test_run.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <sched.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace exf {

TestRunResult run_tc_program(int prog_fd, std::span<const uint8_t> frame, const TestRunOptions &o)
{
    __sk_buff ctx{};
    ctx.tstamp = o.tstamp_ns;
    ctx.gso_segs = o.gso_segs;
    ctx.gso_size = o.gso_size;
    // No data_out: nobody reads the packet back, and copying it out (with a
    // buffer allocated per run) is a measurable part of a replay's cost.
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    opts.data_in = frame.data();
    opts.data_size_in = uint32_t(frame.size());
    opts.ctx_in = &ctx;
    opts.ctx_size_in = sizeof(ctx);
    opts.repeat = o.repeat;
    TestRunResult r;
    if (bpf_prog_test_run_opts(prog_fd, &opts) != 0)
        r.err = -errno;
    r.retval = opts.retval;
    r.duration_ns = opts.duration;
    return r;
}

static_assert(sizeof(cpu_set_t) <= 128);

CpuPin::CpuPin()
{
    auto *old = reinterpret_cast<cpu_set_t *>(old_);
    int cpu = sched_getcpu();
    if (cpu < 0 || sched_getaffinity(0, sizeof(cpu_set_t), old) != 0)
        return;  // best effort: counts stay exact per client either way
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pinned_ = sched_setaffinity(0, sizeof(one), &one) == 0;
}

CpuPin::~CpuPin()
{
    if (pinned_)
        sched_setaffinity(0, sizeof(cpu_set_t), reinterpret_cast<cpu_set_t *>(old_));
}

}  // namespace exf
