// SPDX-License-Identifier: Apache-2.0
#include "capture/netdev.h"

#include <fstream>
#include <limits>
#include <sstream>

namespace exf {

std::optional<std::string> default_route_interface()
{
    std::optional<std::string> best;
    {
        std::ifstream in("/proc/net/route");
        std::string line;
        std::getline(in, line);  // header
        unsigned long best_metric = std::numeric_limits<unsigned long>::max();
        while (std::getline(in, line)) {
            std::istringstream ls(line);
            std::string ifname, dest, gw, flags, refcnt, use, metric, mask;
            if (!(ls >> ifname >> dest >> gw >> flags >> refcnt >> use >> metric >> mask))
                continue;
            if (dest != "00000000" || mask != "00000000")
                continue;
            unsigned long m = std::stoul(metric);
            if (m < best_metric) {
                best_metric = m;
                best = ifname;
            }
        }
    }
    if (best)
        return best;
    std::ifstream in6("/proc/net/ipv6_route");
    std::string line;
    while (std::getline(in6, line)) {
        std::istringstream ls(line);
        std::string dst, dlen, src, slen, nh, metric, refcnt, use, flags, ifname;
        if (!(ls >> dst >> dlen >> src >> slen >> nh >> metric >> refcnt >> use >> flags >> ifname))
            continue;
        if (dst == std::string(32, '0') && dlen == "00" && ifname != "lo")
            return ifname;
    }
    return std::nullopt;
}

}  // namespace exf
