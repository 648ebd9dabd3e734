// SPDX-License-Identifier: Apache-2.0
#include "capture/owner_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace exf {

namespace {

// "PID 1234 (exfilmon)" for the process holding an flock on fd's file, from
// /proc/locks (pids as this process's namespace sees them).
std::string holder_of(int fd)
{
    struct stat st {};
    if (fstat(fd, &st) != 0)
        return "another process";
    char id[64];
    std::snprintf(id, sizeof(id), "%02x:%02x:%llu", major(st.st_dev), minor(st.st_dev),
                  static_cast<unsigned long long>(st.st_ino));
    std::ifstream locks("/proc/locks");
    std::string line;
    while (std::getline(locks, line)) {
        std::istringstream ls(line);
        std::string num, type, mode, rw, pid, file;
        if (!(ls >> num >> type) || type == "->")  // "->": waiting, not holding
            continue;
        if (type == "FLOCK" && ls >> mode >> rw >> pid >> file && file == id) {
            std::string comm;
            std::getline(std::ifstream("/proc/" + pid + "/comm"), comm);
            return "PID " + pid + (comm.empty() ? "" : " (" + comm + ")");
        }
    }
    return "another process";
}

// Takes the lock on fd or closes fd and throws: busy names the holder.
void lock_or_throw(int fd, const std::string &what, const std::string &hint)
{
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        return;
    int err = errno;
    std::string holder = err == EWOULDBLOCK ? holder_of(fd) : "";
    close(fd);
    if (err != EWOULDBLOCK)
        throw_errno("lock " + what, err);
    throw Error(what + " is in use by a running exfilmon, " + holder + ": " + hint, EBUSY);
}

bool same_file(int fd, const std::string &path)
{
    struct stat a {
    }, b{};
    return fstat(fd, &a) == 0 && stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

}  // namespace

OwnerLock OwnerLock::directory(const std::string &dir, const std::string &what)
{
    int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        throw_errno("open " + dir + " to lock it", errno);
    lock_or_throw(fd, what,
                  "one daemon per pin directory; stop it first, or give this one another "
                  "bpf.pin_path");
    return OwnerLock(fd, "");
}

// Where the attach locks live: the service's RuntimeDirectory= (systemd
// passes it as $RUNTIME_DIRECTORY, owned by the service user), else kRunDir.
static std::string lock_dir()
{
    const char *env = std::getenv("RUNTIME_DIRECTORY");
    if (!env || !*env)
        return OwnerLock::kRunDir;
    std::string dirs = env;
    return dirs.substr(0, dirs.find(':'));  // several RuntimeDirectory= entries
}

OwnerLock OwnerLock::interface(const std::string &ifname)
{
    // The thread's namespace: a test attaches from a thread inside one.
    struct stat ns {};
    if (stat("/proc/thread-self/ns/net", &ns) != 0)
        throw_errno("network namespace of this thread", errno);
    const std::string dir = lock_dir();
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
        throw_errno("create " + dir + " (the attach locks)", errno);
    std::string path = dir + "/tc-" + std::to_string(ns.st_ino) + "-" + ifname + ".lock";
    // A released lock file is removed by its owner while locked, so a file
    // locked here may just have been removed: then lock the new one.
    for (int attempt = 0; attempt < 8; attempt++) {
        int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
            throw_errno("open lock file " + path, errno);
        lock_or_throw(fd, "interface " + ifname + " (lock " + path + ")",
                      "one daemon per interface; stop it first");
        if (same_file(fd, path))
            return OwnerLock(fd, path);
        close(fd);
    }
    throw Error("lock file " + path + " keeps being replaced", EAGAIN);
}

OwnerLock::OwnerLock(OwnerLock &&o) noexcept : fd_(o.fd_), unlink_path_(std::move(o.unlink_path_))
{
    o.fd_ = -1;
    o.unlink_path_.clear();
}

OwnerLock::~OwnerLock()
{
    if (fd_ < 0)
        return;
    if (!unlink_path_.empty())
        unlink(unlink_path_.c_str());
    close(fd_);
}

}  // namespace exf
