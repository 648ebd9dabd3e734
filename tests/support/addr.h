// SPDX-License-Identifier: Apache-2.0
#pragma once
// Address literals in tests: the 16-byte form of an IPv4 or IPv6 text,
// failing the test (not crashing) on a typo.
#include <string_view>

#include "common/addr.h"

namespace exf::test {

exf::Addr16 addr_of(std::string_view text);

}  // namespace exf::test
