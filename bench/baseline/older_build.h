// SPDX-License-Identifier: Apache-2.0
#pragma once
// bpf_cost --compare loads another build of the program (an older object),
// whose health array may hold fewer counters than this build knows.
#include "capture/maps.h"

namespace exf::bench {

// The counters the array holds, summed over CPUs; the ones it lacks read 0.
HealthCounters read_health_any_build(int fd);

}  // namespace exf::bench
