// SPDX-License-Identifier: Apache-2.0
#pragma once
// Small helpers shared by the benchmark tools.
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <string>
#include <vector>

namespace exf::bench {

// The median (mean of the two middle values for an even count); NaN if empty.
inline double median(std::vector<double> v)
{
    if (v.empty())
        return NAN;
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// This process's resident set size (VmRSS), in bytes; 0 if unreadable.
inline uint64_t rss_bytes()
{
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmRSS:", 0) == 0)
            return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
    return 0;
}

// One judged figure, printed as the machine-readable line that
// bench/results_table.py reads (its header defines the format; bench/result.sh
// prints the same line for the shell benchmarks).
struct BenchResult {
    std::string metric;  // stable id, e.g. "kernel.tls_est_v4_64"
    double value = NAN;  // median over the runs
    double min = NAN;    // range over the runs; NaN: none recorded
    double max = NAN;
    size_t runs = 0;
    std::string unit;
    std::string target;  // "<= 35", ">= 0.98" or "none"
};

namespace detail {

inline std::string json_string(const std::string &s)
{
    std::string o = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\')
            o += '\\';
        if (static_cast<unsigned char>(c) >= 0x20)
            o += c;
    }
    return o + "\"";
}

inline std::string json_number(double v)
{
    if (!std::isfinite(v))
        return "null";
    char b[64];
    std::snprintf(b, sizeof(b), "%.6g", v);
    return b;
}

inline std::string first_line_of(const std::string &command)
{
    std::string out;
    if (FILE *p = popen(command.c_str(), "r")) {
        char b[256];
        if (std::fgets(b, sizeof(b), p))
            out = b;
        pclose(p);
    }
    while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
        out.pop_back();
    return out;
}

}  // namespace detail

// The source tree's commit, "+uncommitted" when bpf/, userspace/ or bench/
// differ from it: a figure is only worth what can be rebuilt.
inline std::string source_commit()
{
    std::string git = std::string("git -C '") + EXF_BENCH_SOURCE_DIR + "' ";
    std::string c = detail::first_line_of(git + "rev-parse --short HEAD 2>/dev/null");
    if (c.empty())
        return "unrecorded";
    if (!detail::first_line_of(git + "status --porcelain bpf userspace bench 2>/dev/null").empty())
        c += "+uncommitted";
    return c;
}

// "N CPU <model>, kernel <release>", as bench/result.sh writes it.
inline std::string machine()
{
    std::ifstream f("/proc/cpuinfo");
    std::string line, model = "unknown CPU";
    while (std::getline(f, line))
        if (line.rfind("model name", 0) == 0) {
            model = line.substr(line.find(':') + 2);
            break;
        }
    utsname u{};
    uname(&u);
    return std::to_string(sysconf(_SC_NPROCESSORS_ONLN)) + " CPU " + model + ", kernel " +
           u.release;
}

inline std::string command_line(int argc, char **argv)
{
    std::string c = "bench/";
    std::string a0 = argv[0];
    c += a0.substr(a0.rfind('/') + 1);
    for (int i = 1; i < argc; i++)
        c += std::string(" ") + argv[i];
    return c;
}

inline std::string utc_now()
{
    char b[32];
    std::time_t t = std::time(nullptr);
    std::strftime(b, sizeof(b), "%Y-%m-%dT%H:%MZ", std::gmtime(&t));
    return b;
}

// Prints `BENCH_RESULT {json}` on stdout. date is when the run started.
inline void print_result(const BenchResult &r, const std::string &date, const std::string &command)
{
    using detail::json_number;
    using detail::json_string;
    std::printf("BENCH_RESULT {\"metric\": %s, \"value\": %s, \"min\": %s, \"max\": %s, "
                "\"runs\": %zu, \"unit\": %s, \"target\": %s, \"date\": %s, \"commit\": %s, "
                "\"machine\": %s, \"command\": %s}\n",
                json_string(r.metric).c_str(), json_number(r.value).c_str(),
                json_number(r.min).c_str(), json_number(r.max).c_str(), r.runs,
                json_string(r.unit).c_str(), json_string(r.target).c_str(),
                json_string(date).c_str(), json_string(source_commit()).c_str(),
                json_string(machine()).c_str(), json_string(command).c_str());
}

}  // namespace exf::bench
