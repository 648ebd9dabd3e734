// SPDX-License-Identifier: Apache-2.0
#include "support/daemon_probe.h"

#include <bpf/bpf.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <tuple>

#include "capture/test_run.h"
#include "common/error.h"
#include "support/proc.h"
#include "support/test_env.h"

namespace exf::test {

namespace {

// The id of the exf_tc_<want> program in `tc -j filter show` output.
uint32_t find_prog(const std::string &tc_json, const std::string &want)
{
    auto j = nlohmann::json::parse(tc_json, nullptr, false);
    if (!j.is_array())
        return 0;
    for (auto &f : j) {
        auto opts = f.find("options");
        if (opts == f.end() || !opts->contains("prog"))
            continue;
        auto &prog = (*opts)["prog"];
        if (prog.value("name", "") == want && prog.contains("id"))
            return prog["id"].get<uint32_t>();
    }
    return 0;
}

}  // namespace

AttachedPrograms::AttachedPrograms(Lab &lab, const std::string &ns, const std::string &ifname)
{
    try {
        for (auto [dir, name, fd] : {std::tuple{"ingress", "exf_tc_ingress", &ingress_},
                                     std::tuple{"egress", "exf_tc_egress", &egress_}}) {
            auto out = lab.run_ok(ns, {"tc", "-j", "filter", "show", "dev", ifname, dir});
            uint32_t id = find_prog(out, name);
            if (!id)
                throw Error("no " + std::string(name) + " attached to " + ifname + " in " + ns +
                            ": " + out);
            *fd = bpf_prog_get_fd_by_id(id);
            if (*fd < 0)
                throw_errno("open program " + std::to_string(id), errno);
        }
    } catch (...) {
        if (ingress_ >= 0)
            ::close(ingress_);
        if (egress_ >= 0)
            ::close(egress_);
        throw;
    }
}

AttachedPrograms::~AttachedPrograms()
{
    if (ingress_ >= 0)
        ::close(ingress_);
    if (egress_ >= 0)
        ::close(egress_);
    ingress_ = egress_ = -1;
}

void AttachedPrograms::run(int fd, std::span<const uint8_t> frame)
{
    auto r = run_tc_program(fd, frame);
    if (r.err != 0)
        throw_errno("BPF_PROG_TEST_RUN", -r.err);
}

uint64_t rss_bytes(pid_t pid)
{
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmRSS:", 0) == 0)
            return std::stoull(line.substr(6)) * 1024;  // "VmRSS:   12345 kB"
    return 0;
}

double metric_value(const std::string &text, const std::string &series)
{
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line))
        if (line.rfind(series + " ", 0) == 0)
            return std::stod(line.substr(series.size() + 1));
    return -1;
}

nlohmann::json daemon_status(const std::string &socket)
{
    auto r =
        run_program({exfilmon_binary().string(), "status", "--socket", socket, "--format", "json"});
    if (r.status != 0)
        throw Error("exfilmon status: exit " + std::to_string(r.status) + ": " + r.err);
    return nlohmann::json::parse(r.out);
}

}  // namespace exf::test
