#include "capture/test_run.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <cerrno>
#include <vector>

namespace exf {

TestRunResult run_tc_program(int prog_fd, std::span<const uint8_t> frame,
                             const TestRunOptions &o)
{
    __sk_buff ctx{};
    ctx.tstamp = o.tstamp_ns;
    ctx.gso_segs = o.gso_segs;
    ctx.gso_size = o.gso_size;
    std::vector<uint8_t> out(frame.size() + 256);
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    opts.data_in = frame.data();
    opts.data_size_in = uint32_t(frame.size());
    opts.data_out = out.data();
    opts.data_size_out = uint32_t(out.size());
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

}  // namespace exf
