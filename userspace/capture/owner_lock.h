// SPDX-License-Identifier: Apache-2.0
#pragma once
// One live daemon per interface and per pin directory. An OwnerLock is an
// flock() on a file: the kernel drops it when its owner exits, however it
// exits (SIGKILL too), so a restart after a crash takes over what the dead
// daemon left, while a second daemon beside a live one is refused with an
// error naming the live one's PID (read from /proc/locks).
#include <string>

namespace exf {

class OwnerLock {
public:
    // Locks the existing directory dir (a pin directory: the lock is on
    // its inode, so every path to it is the same lock). `what` says what
    // is owned, for the error: "pin directory /sys/fs/bpf/exfilmon".
    static OwnerLock directory(const std::string &dir, const std::string &what);
    // Locks interface ifname of the calling thread's network namespace
    // (names are per namespace), through a lock file under $RUNTIME_DIRECTORY
    // (systemd's RuntimeDirectory=) or else kRunDir, created
    // if missing and removed when released.
    static OwnerLock interface(const std::string &ifname);

    OwnerLock(OwnerLock &&o) noexcept;
    OwnerLock &operator=(OwnerLock &&o) = delete;
    OwnerLock(const OwnerLock &) = delete;
    ~OwnerLock();

    static constexpr const char *kRunDir = "/run/exfilmon";

private:
    OwnerLock(int fd, std::string unlink_path) : fd_(fd), unlink_path_(std::move(unlink_path)) {}
    int fd_ = -1;
    std::string unlink_path_;  // a lock file of ours: removed on release
};

}  // namespace exf
