// SPDX-License-Identifier: Apache-2.0
#include "support/addr.h"

#include <string>

#include <catch2/catch.hpp>

namespace exf::test {

exf::Addr16 addr_of(std::string_view text)
{
    auto a = exf::parse_addr(text);
    INFO("address literal " << std::string(text));
    REQUIRE(a.has_value());
    return *a;
}

}  // namespace exf::test
