#include "common/text.h"

#include <cstdio>

namespace exf {

std::string ascii_escape(std::string_view in, size_t cap)
{
    std::string out;
    out.reserve(in.size() < cap ? in.size() : cap);
    for (size_t i = 0; i < in.size() && i < cap; i++) {
        auto c = static_cast<unsigned char>(in[i]);
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += static_cast<char>(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        }
    }
    return out;
}

}  // namespace exf
