// SPDX-License-Identifier: Apache-2.0
#include "support/mounts.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"

namespace exf::test {

namespace {

constexpr unsigned long kFlags = MS_NOSUID | MS_NODEV | MS_NOEXEC;

std::string options(uint64_t bytes) { return "size=" + std::to_string(bytes) + ",mode=0700"; }

// Mount points from /proc/self/mountinfo (field 5), octal escapes decoded.
std::vector<std::string> mount_points()
{
    std::vector<std::string> out;
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string id, parent, devno, root, point;
        if (!(f >> id >> parent >> devno >> root >> point))
            continue;
        std::string p;
        for (size_t i = 0; i < point.size(); i++) {
            if (point[i] == '\\' && i + 3 < point.size()) {
                p += char(std::stoi(point.substr(i + 1, 3), nullptr, 8));
                i += 3;
            } else {
                p += point[i];
            }
        }
        out.push_back(p);
    }
    return out;
}

}  // namespace

BpffsMount::BpffsMount(std::filesystem::path dir) : dir_(std::move(dir))
{
    std::filesystem::create_directories(dir_);
    if (::mount("bpf", dir_.c_str(), "bpf", 0, nullptr) != 0)
        throw_errno("mount bpffs on " + dir_.string(), errno);
}

BpffsMount::~BpffsMount() { ::umount2(dir_.c_str(), MNT_DETACH); }

TmpfsMount::TmpfsMount(std::filesystem::path dir, uint64_t bytes)
    : dir_(std::move(dir)), bytes_(bytes)
{
    std::filesystem::create_directories(dir_);
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", kFlags, options(bytes_).c_str()) != 0)
        throw_errno("mount tmpfs on " + dir_.string(), errno);
    mounted_ = true;
}

TmpfsMount::~TmpfsMount()
{
    if (mounted_)
        ::umount2(dir_.c_str(), MNT_DETACH);
}

void TmpfsMount::set_read_only(bool ro)
{
    unsigned long flags = MS_REMOUNT | kFlags | (ro ? MS_RDONLY : 0);
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
        if (::mount(nullptr, dir_.c_str(), nullptr, flags, options(bytes_).c_str()) == 0)
            return;
        int err = errno;
        if (err != EBUSY || std::chrono::steady_clock::now() > until)
            throw_errno(std::string("remount ") + (ro ? "ro " : "rw ") + dir_.string(), err);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

std::filesystem::path TmpfsMount::fill(const std::string &name)
{
    auto path = dir_ / name;
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        throw_errno("create " + path.string(), errno);
    std::vector<char> block(4096, 'x');
    uint64_t written = 0;
    for (;;) {
        ssize_t n = ::write(fd, block.data(), block.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == ENOSPC)
            break;
        if (n <= 0) {
            int err = n < 0 ? errno : EIO;
            ::close(fd);
            throw_errno("fill " + path.string(), err);
        }
        written += uint64_t(n);
        if (written > bytes_ + block.size()) {
            ::close(fd);
            throw Error("fill " + path.string() + ": more than the file system's size went in");
        }
    }
    ::close(fd);
    return path;
}

uint64_t TmpfsMount::free_bytes() const
{
    struct statvfs st {};
    if (::statvfs(dir_.c_str(), &st) != 0)
        throw_errno("statvfs " + dir_.string(), errno);
    return uint64_t(st.f_bavail) * st.f_frsize;
}

void detach_mounts_under(const std::filesystem::path &dir) noexcept
{
    try {
        std::string base = dir.string();
        std::vector<std::string> hits;
        for (auto &p : mount_points())
            if (p == base || p.rfind(base + "/", 0) == 0)
                hits.push_back(p);
        std::sort(hits.begin(), hits.end(),
                  [](const std::string &a, const std::string &b) { return a.size() > b.size(); });
        for (auto &p : hits)
            ::umount2(p.c_str(), MNT_DETACH);
    } catch (...) {}
}

}  // namespace exf::test
