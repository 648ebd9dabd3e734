// SPDX-License-Identifier: Apache-2.0
#pragma once
// Runs a program (no shell) and collects its exit status and output.
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace exf::test {

using namespace std::chrono_literals;

struct ProcResult {
    int status = -1;  // exit status, or 128 + signal
    std::string out, err;
};

ProcResult run_program(const std::vector<std::string> &argv);

// A file's whole content ("" if it cannot be read).
std::string slurp(const std::filesystem::path &p);

// Waits until the file (a background process's output) holds needle at least
// count times; false when the timeout passes first.
bool wait_for(const std::filesystem::path &p, const std::string &needle,
              std::chrono::milliseconds timeout, size_t count = 1);

// Polls cond every `step` until it holds (true) or the timeout passes (false).
bool eventually(const std::function<bool()> &cond, std::chrono::milliseconds timeout = 20s,
                std::chrono::milliseconds step = 100ms);

// Checks, with Catch2, every thread of process pid (/proc/PID/task/*/status):
// effective and permitted capability sets equal `keep` (CapEff's hex form,
// e.g. "0000008000001000"), the bounding set `bounding` ("" : keep),
// inheritable and ambient sets empty, no_new_privs set. Requires at least
// min_threads threads, so that threads other than the main one are looked at.
void check_least_privilege(pid_t pid, size_t min_threads, const std::string &keep,
                           const std::string &bounding = "");

}  // namespace exf::test
