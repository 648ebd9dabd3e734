#pragma once
// Bytes from the wire (SNI, ALPN, labels) for logs and terminals.
#include <cstddef>
#include <string>
#include <string_view>

namespace exf {

// Printable ASCII out of any bytes: a byte outside 0x20..0x7e, and the
// backslash itself, becomes "\xNN", so nothing can move a terminal's cursor
// or forge a log line. At most `cap` input bytes.
std::string ascii_escape(std::string_view in, size_t cap = std::string_view::npos);

}  // namespace exf
