#pragma once
// Runs a program (no shell) and collects its exit status and output.
#include <string>
#include <vector>

namespace exf::test {

struct ProcResult {
    int status = -1;  // exit status, or 128 + signal
    std::string out, err;
};

ProcResult run_program(const std::vector<std::string> &argv);

}  // namespace exf::test
