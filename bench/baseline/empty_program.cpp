// SPDX-License-Identifier: Apache-2.0
#include "baseline/empty_program.h"

#include <cerrno>

#include "common/error.h"
#include "exf_empty.skel.h"

namespace exf::bench {

EmptyProgram::EmptyProgram()
{
    skel_ = exf_empty::open_and_load();
    if (!skel_)
        throw_errno("load empty BPF program", errno);
}

EmptyProgram::~EmptyProgram() { exf_empty::destroy(skel_); }

int EmptyProgram::fd() const { return bpf_program__fd(skel_->progs.exf_empty); }

}  // namespace exf::bench
