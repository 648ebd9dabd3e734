// SPDX-License-Identifier: Apache-2.0
// The verifier gate: every program we ship loads, and its verified
// instruction count stays well under the kernel's 1,000,000 limit, so a change
// that nears it is noticed here rather than on a user's host. The counts are
// printed for docs/datapath.md.
#include <catch2/catch.hpp>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstdio>

#include "capture/bpf_sensor.h"
#include "support/test_env.h"

using namespace exf;
using exf::test::require_root;

namespace {
bpf_prog_info info_of(int fd)
{
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    REQUIRE(bpf_obj_get_info_by_fd(fd, &info, &len) == 0);
    return info;
}
}  // namespace

TEST_CASE("Every shipped program variant passes the verifier with headroom", "[bpf][verifier]")
{
    if (!require_root())
        return;
    // The variants: live (clock from the kernel) and replay (packet time);
    // the TLS port list only changes read-only data.
    for (bool packet_time : {false, true}) {
        SensorOptions o;
        o.packet_time = packet_time;
        o.tls_ports = {443, 8443, 9443, 10443, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
        BpfSensor s(o);
        for (int fd : {s.ingress_fd(), s.egress_fd()}) {
            auto info = info_of(fd);
            std::printf("program %s packet_time=%d: verified_insns %u, xlated %u bytes, jited %u "
                        "bytes\n",
                        info.name, packet_time, info.verified_insns, info.xlated_prog_len,
                        info.jited_prog_len);
            INFO(info.name);
            CHECK(info.verified_insns > 0);
            // Half the limit: room for growth, and a signal before trouble.
            CHECK(info.verified_insns < 500000);
        }
    }
}
