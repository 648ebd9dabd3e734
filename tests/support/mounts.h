// SPDX-License-Identifier: Apache-2.0
#pragma once
// Mounts of a test's own. A small tmpfs for disk-fault tests (needs root): mounted on a directory
// of the test's own (a Lab directory), in the test process's mount namespace, and unmounted by the
// destructor, also when the test fails. A test process killed before that leaves the mount on its
// Lab directory: the next Lab (clean_stale_labs) detaches it before removing the directory.
//
//   exf::test::Lab lab;
//   exf::test::TmpfsMount disk(lab.dir() / "disk", 64 * 1024);
//   auto filler = disk.fill();          // no space left (ENOSPC from now on)
//   std::filesystem::remove(filler);    // space again
//   disk.set_read_only(true);           // EROFS on every write
#include <cstdint>
#include <filesystem>

namespace exf::test {

class TmpfsMount {
public:
    // Creates dir and mounts a tmpfs of `bytes` on it (mode 0700). Throws exf::Error.
    TmpfsMount(std::filesystem::path dir, uint64_t bytes);
    ~TmpfsMount();  // lazy unmount (MNT_DETACH); never throws
    TmpfsMount(const TmpfsMount &) = delete;
    TmpfsMount &operator=(const TmpfsMount &) = delete;

    const std::filesystem::path &dir() const { return dir_; }
    // Remounts read-only or read-write (the superblock: every write on it
    // fails with EROFS). A file open for writing on it makes the kernel
    // refuse (EBUSY): retried for up to 10 s, then throws.
    void set_read_only(bool ro);
    // Writes `name` in the mount until the file system is full (ENOSPC);
    // returns its path. Throws if the file system does not fill up.
    std::filesystem::path fill(const std::string &name = "filler");
    // Bytes still free (statvfs).
    uint64_t free_bytes() const;

private:
    std::filesystem::path dir_;
    uint64_t bytes_;
    bool mounted_ = false;
};

// A private bpffs instance on a directory of the test's own (pins shared by
// the daemons of one test, beside nobody else's), lazily unmounted by the
// destructor. Throws exf::Error.
class BpffsMount {
public:
    explicit BpffsMount(std::filesystem::path dir);
    ~BpffsMount();
    BpffsMount(const BpffsMount &) = delete;
    BpffsMount &operator=(const BpffsMount &) = delete;
    const std::filesystem::path &dir() const { return dir_; }

private:
    std::filesystem::path dir_;
};

// Detaches every mount at or below dir (deepest first); used for the
// directories of dead test processes. Never throws.
void detach_mounts_under(const std::filesystem::path &dir) noexcept;

}  // namespace exf::test
