// SPDX-License-Identifier: Apache-2.0
#include "common/error.h"

#include <cstring>

namespace exf {

void throw_errno(const std::string &context, int err)
{
    if (err < 0)
        err = -err;
    throw Error(context + ": " + std::strerror(err), err);
}

}  // namespace exf
