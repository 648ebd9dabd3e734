// SPDX-License-Identifier: Apache-2.0
#pragma once
// Reaching into a running `exfilmon run` from a test (needs root):
//
//  - AttachedPrograms: the tc programs the daemon attached to an interface,
//    found with `tc -j filter show` inside the interface's namespace and
//    opened by id. BPF_PROG_TEST_RUN on them runs the daemon's own
//    datapath (its tables, its ring buffer, read by its own threads) on
//    frames built by the test: as many as wanted, as fast as the kernel
//    runs them, each one certainly seen (no link, no queue to drop it).
//  - rss_bytes(): a process's resident memory (VmRSS).
//  - metric_value(): one sample of a Prometheus text page.
//  - daemon_status(): `exfilmon status --format json` over the control socket.
#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "support/netns.h"

namespace exf::test {

class AttachedPrograms {
public:
    // Throws exf::Error when ifname in ns has no exf_tc_ingress and
    // exf_tc_egress filter.
    AttachedPrograms(Lab &lab, const std::string &ns, const std::string &ifname);
    ~AttachedPrograms();
    AttachedPrograms(const AttachedPrograms &) = delete;
    AttachedPrograms &operator=(const AttachedPrograms &) = delete;

    int ingress() const { return ingress_; }
    int egress() const { return egress_; }
    // Runs one frame through the ingress (client to server on a server's
    // interface) or egress program; throws exf::Error if the run fails.
    void ingress(std::span<const uint8_t> frame) const { run(ingress_, frame); }
    void egress(std::span<const uint8_t> frame) const { run(egress_, frame); }

private:
    static void run(int fd, std::span<const uint8_t> frame);
    int ingress_ = -1, egress_ = -1;
};

// VmRSS of pid in bytes (0 when it cannot be read).
uint64_t rss_bytes(pid_t pid);

// The value of the sample "NAME{LABELS} VALUE" (series = "NAME{LABELS}", or
// "NAME" alone); -1 when absent.
double metric_value(const std::string &text, const std::string &series);

// `exfilmon status --socket SOCK --format json`, parsed; throws exf::Error
// when the daemon does not answer.
nlohmann::json daemon_status(const std::string &socket);

}  // namespace exf::test
