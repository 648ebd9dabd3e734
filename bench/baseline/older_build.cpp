// SPDX-License-Identifier: Apache-2.0
#include "baseline/older_build.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "common/error.h"

namespace exf::bench {

HealthCounters read_health_any_build(int fd)
{
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
        throw_errno("health array info", errno);
    int ncpu = libbpf_num_possible_cpus();
    if (ncpu <= 0)
        throw_errno("count possible CPUs", ncpu);
    HealthCounters out{};
    std::vector<uint64_t> vals(static_cast<size_t>(ncpu));
    uint32_t held = std::min<uint32_t>(info.max_entries, EXF_C__MAX);
    for (uint32_t i = 0; i < held; i++) {
        if (bpf_map_lookup_elem(fd, &i, vals.data()) != 0)
            throw_errno("read health counters", errno);
        for (auto v : vals)
            out[i] += v;
    }
    return out;
}

}  // namespace exf::bench
