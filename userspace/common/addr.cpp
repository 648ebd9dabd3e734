// SPDX-License-Identifier: Apache-2.0
#include "common/addr.h"

#include <arpa/inet.h>

#include <cstring>

namespace exf {

bool is_v4_mapped(const uint8_t *a)
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::memcmp(a, prefix, sizeof(prefix)) == 0;
}

std::string format_addr(const uint8_t *a)
{
    char buf[INET6_ADDRSTRLEN];
    if (is_v4_mapped(a))
        inet_ntop(AF_INET, a + 12, buf, sizeof(buf));
    else
        inet_ntop(AF_INET6, a, buf, sizeof(buf));
    return buf;
}

std::optional<Addr16> parse_addr(std::string_view text)
{
    std::string s(text);
    Addr16 out{};
    in_addr v4;
    if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
        out[10] = out[11] = 0xff;
        std::memcpy(out.data() + 12, &v4, 4);
        return out;
    }
    if (inet_pton(AF_INET6, s.c_str(), out.data()) == 1)
        return out;
    return std::nullopt;
}

std::string format_host_port(std::string_view host, std::string_view port)
{
    std::string h(host);
    if (h.find(':') != std::string::npos)
        h = "[" + h + "]";
    return h + ":" + std::string(port);
}

}  // namespace exf
