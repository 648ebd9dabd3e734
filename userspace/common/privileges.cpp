// SPDX-License-Identifier: Apache-2.0
#include "common/privileges.h"

#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common/error.h"

namespace exf {

namespace {

int last_cap()
{
    std::ifstream in("/proc/sys/kernel/cap_last_cap");
    int n = 40;
    in >> n;
    return n;
}

bool capget_all(__user_cap_data_struct (&data)[2])
{
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    return syscall(SYS_capget, &hdr, data) == 0;
}

}  // namespace

int thread_count()
{
    std::ifstream in("/proc/self/status");
    std::string key;
    while (in >> key) {
        if (key == "Threads:") {
            int n = 0;
            in >> n;
            return n;
        }
        in.ignore(4096, '\n');
    }
    return 0;
}

uint64_t effective_capabilities()
{
    __user_cap_data_struct data[2]{};
    if (!capget_all(data))
        return 0;
    return uint64_t(data[0].effective) | (uint64_t(data[1].effective) << 32);
}

std::string keep_only_capabilities(std::initializer_list<int> keep)
{
    if (int threads = thread_count(); threads != 1)
        throw Error("capabilities not dropped: " + std::to_string(threads) +
                    " threads already run and would keep every capability (capset acts on "
                    "the calling thread only): drop before starting threads");
    uint64_t want = 0;
    for (int c : keep)
        want |= uint64_t(1) << c;
    // The bounding set first (needs CAP_SETPCAP, which goes next): no later
    // exec can regain anything. Without CAP_SETPCAP (a unit that already
    // bounds it) this is left to the unit.
    bool bounded = true;
    for (int c = 0; c <= last_cap(); c++)
        if (!(want & (uint64_t(1) << c)) && prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1 &&
            prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0)
            bounded = false;
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    __user_cap_data_struct data[2]{};
    if (!capget_all(data))
        return std::string("capabilities not dropped: capget: ") + std::strerror(errno);
    uint64_t permitted = uint64_t(data[0].permitted) | (uint64_t(data[1].permitted) << 32);
    uint64_t kept = permitted & want;
    for (int i = 0; i < 2; i++) {
        data[i].effective = data[i].permitted = uint32_t(kept >> (32 * i));
        data[i].inheritable = 0;
    }
    __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
    if (syscall(SYS_capset, &hdr, data) != 0)
        return std::string("capabilities not dropped: capset: ") + std::strerror(errno);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    std::string names;
    for (int c : keep)
        if (kept & (uint64_t(1) << c))
            names +=
                std::string(names.empty() ? "" : ", ") + (c == CAP_BPF         ? "CAP_BPF"
                                                          : c == CAP_NET_ADMIN ? "CAP_NET_ADMIN"
                                                                               : std::to_string(c));
    return "capabilities dropped; kept: " + (names.empty() ? std::string("none") : names) +
           (bounded ? "" : " (bounding set left to the service unit)");
}

gid_t group_id(const std::string &group)
{
    struct group g {
    }, *res = nullptr;
    std::vector<char> buf(16384);
    if (getgrnam_r(group.c_str(), &g, buf.data(), buf.size(), &res) != 0 || !res)
        throw Error("group '" + group + "' does not exist");
    return g.gr_gid;
}

}  // namespace exf
