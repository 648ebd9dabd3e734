// SPDX-License-Identifier: Apache-2.0
#pragma once
// Bytes from the wire (SNI, ALPN, labels) for logs and terminals; numbers as
// alerts and logs print them.
#include <cstddef>
#include <string>
#include <string_view>

namespace exf {

// Printable ASCII out of any bytes: a byte outside 0x20..0x7e, and the
// backslash itself, becomes "\xNN", so nothing can move a terminal's cursor
// or forge a log line. At most `cap` input bytes.
std::string ascii_escape(std::string_view in, size_t cap = std::string_view::npos);

// v with exactly `decimals` decimals, as printf's "%.Nf" would print it.
std::string format_fixed(double v, int decimals);
// 2147483648 -> "2147483648", 1250.5 -> "1250.5", 0.1234 -> "0.123":
// integers without decimals, other values with up to 3 (trailing zeros cut).
std::string format_number(double v);

}  // namespace exf
