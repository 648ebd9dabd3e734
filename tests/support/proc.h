#pragma once
// Runs a program (no shell) and collects its exit status and output.
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace exf::test {

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

}  // namespace exf::test
