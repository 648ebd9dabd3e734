// SPDX-License-Identifier: Apache-2.0
#pragma once
// The empty TC_ACT_OK program (bpf/empty.bpf.c), loaded as the baseline the
// benchmarks subtract: what any tc program costs before it does anything.
struct exf_empty;

namespace exf::bench {

class EmptyProgram {
public:
    EmptyProgram();  // throws exf::Error
    ~EmptyProgram();
    EmptyProgram(const EmptyProgram &) = delete;
    EmptyProgram &operator=(const EmptyProgram &) = delete;
    int fd() const;

private:
    ::exf_empty *skel_ = nullptr;
};

}  // namespace exf::bench
