// SPDX-License-Identifier: Apache-2.0
#pragma once
#include <optional>
#include <string>

namespace exf {

// Interface of the default route (IPv4 first, then IPv6), from /proc.
std::optional<std::string> default_route_interface();

}  // namespace exf
