// SPDX-License-Identifier: Apache-2.0
#include <net/if.h>

#include <ostream>

#include "apps/daemon.h"
#include "capture/tc_attach.h"
#include "common/error.h"

namespace exf {

namespace {

std::vector<std::string> every_interface()
{
    std::vector<std::string> names;
    if (auto *list = if_nameindex()) {
        for (auto *i = list; i->if_index != 0; i++)
            names.emplace_back(i->if_name);
        if_freenameindex(list);
    }
    return names;
}

}  // namespace

int run_detach(const std::vector<std::string> &interfaces, std::ostream &out, std::ostream &err)
{
    int status = 0, removed = 0;
    for (auto &ifname : interfaces.empty() ? every_interface() : interfaces) {
        try {
            int n = detach_left_filters(ifname);
            if (n > 0)
                out << "detached from " << ifname << " (" << n << " filter" << (n > 1 ? "s" : "")
                    << ")\n";
            removed += n;
        } catch (const Error &e) {
            err << "exfilmon detach: " << e.what() << "\n";
            status = 1;
        }
    }
    if (removed == 0 && status == 0)
        out << "no exfilmon filter attached" << (interfaces.empty() ? std::string() : " there")
            << "\n";
    return status;
}

}  // namespace exf
