// SPDX-License-Identifier: Apache-2.0
// The floor of `exfilmon replay --datapath bpf` (benchmark 4, offline
// analysis): one BPF_PROG_TEST_RUN system call per packet, as the replay
// makes them (capture/test_run.h run_tc_program, packet time in the skb),
// over the frames of a capture, with the empty tc program (bpf/empty.bpf.c:
// return TC_ACT_OK) and with the exfilmon program (fresh maps, ring buffer
// not read). Wall time per run, so the syscall, the kernel's skb and socket
// set-up around the program, and the copies are all in it.
//
//   test_run_floor CAPTURE [--packets N] [--rounds R]
//
// Prints "TEST_RUN_FLOOR program=empty|exfilmon round=R packets=N wall_s=...
// ns_per_packet=... pps=..." lines, then the median per program. Root (or
// CAP_BPF) needed.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "baseline/empty_program.h"
#include "capture/bpf_sensor.h"
#include "capture/pcap_reader.h"
#include "capture/test_run.h"
#include "common/error.h"

#include "bench_util.h"

namespace {

struct Frame {
    std::vector<uint8_t> bytes;
    uint64_t ts_ns;
};

double run(int fd, const std::vector<Frame> &frames)
{
    auto t0 = std::chrono::steady_clock::now();
    for (const auto &f : frames) {
        exf::TestRunOptions o;
        o.tstamp_ns = f.ts_ns;
        auto r = exf::run_tc_program(fd, f.bytes, o);
        if (r.err)
            exf::throw_errno("BPF test run", r.err);
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char **argv)
{
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s CAPTURE [--packets N] [--rounds R]\n", argv[0]);
        return 2;
    }
    size_t max_packets = 200000, rounds = 3;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--packets"))
            max_packets = std::strtoull(argv[i + 1], nullptr, 10);
        else if (!std::strcmp(argv[i], "--rounds"))
            rounds = std::strtoull(argv[i + 1], nullptr, 10);
    }
    const std::string started = exf::bench::utc_now();
    const std::string command = exf::bench::command_line(argc, argv);
    try {
        // The frames first, as the replay would hand them over (the frames
        // the kernel would refuse are left out, as the replay counts them
        // without a test run).
        std::vector<Frame> frames;
        exf::PcapReader reader(argv[1]);
        exf::Packet p;
        while (frames.size() < max_packets && reader.next(p)) {
            if (p.frame.size() < 54 || p.frame.size() > exf::kMaxTestRunFrame)
                continue;
            frames.push_back({p.frame, p.ts_ns});
        }
        exf::CpuPin pin;
        exf::bench::EmptyProgram empty;
        exf::SensorOptions so;
        so.pin = false;
        so.packet_time = true;
        std::vector<double> e, x;
        for (size_t r = 1; r <= rounds; r++) {
            // A new sensor per round: the exfilmon program starts with empty
            // tables each time, as a replay does.
            exf::BpfSensor sensor(so);
            for (int k = 0; k < 2; k++) {
                const bool is_empty = (k == 0) == (r % 2 == 1);
                double s = run(is_empty ? empty.fd() : sensor.ingress_fd(), frames);
                (is_empty ? e : x).push_back(s);
                std::printf("TEST_RUN_FLOOR program=%s round=%zu packets=%zu wall_s=%.3f "
                            "ns_per_packet=%.0f pps=%.0f\n",
                            is_empty ? "empty" : "exfilmon", r, frames.size(), s,
                            s * 1e9 / double(frames.size()), double(frames.size()) / s);
                std::fflush(stdout);
            }
        }
        auto median = [](std::vector<double> v) {
            std::sort(v.begin(), v.end());
            return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
        };
        for (int k = 0; k < 2; k++) {
            double s = median(k ? x : e);
            std::printf(
                "TEST_RUN_FLOOR_MEDIAN program=%s packets=%zu ns_per_packet=%.0f pps=%.0f\n",
                k ? "exfilmon" : "empty", frames.size(), s * 1e9 / double(frames.size()),
                double(frames.size()) / s);
        }
        // The floor under `replay --datapath bpf`: no target of its own, it
        // says how far that target (packets/s) can be reached here.
        for (int k = 0; k < 2; k++) {
            const auto &w = k ? x : e;
            auto [fast, slow] = std::minmax_element(w.begin(), w.end());
            double n = double(frames.size());
            exf::bench::print_result(
                {std::string("offline.test_run_floor_pps_") + (k ? "exfilmon" : "empty"),
                 n / median(w), n / *slow, n / *fast, w.size(), "packets/s", "none"},
                started, command);
        }
    } catch (const std::exception &ex) {
        std::fprintf(stderr, "test_run_floor: %s\n", ex.what());
        return 1;
    }
    return 0;
}
