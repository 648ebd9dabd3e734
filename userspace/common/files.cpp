// SPDX-License-Identifier: Apache-2.0
#include "common/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/error.h"

namespace exf {

namespace {

std::string errno_text(int err) { return std::strerror(err); }

std::string directory_of(const std::string &path)
{
    auto dir = std::filesystem::path(path).parent_path();
    return dir.empty() ? "." : dir.string();
}

}  // namespace

std::string readable_file_problem(const std::string &path)
{
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        return errno_text(errno);
    if (S_ISDIR(st.st_mode))
        return errno_text(EISDIR);
    if (::access(path.c_str(), R_OK) != 0)
        return errno_text(errno);
    return {};
}

std::string writable_file_problem(const std::string &path, int *err)
{
    auto fail = [&](int code, const std::string &what) {
        if (err)
            *err = code;
        return what.empty() ? errno_text(code) : what + ": " + errno_text(code);
    };
    std::string dir = directory_of(path);
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0)
        return fail(errno, "its directory " + dir);
    if (!S_ISDIR(st.st_mode))
        return fail(ENOTDIR, "its directory " + dir);
    if (::access(dir.c_str(), W_OK | X_OK) != 0)
        return fail(errno, "its directory " + dir);
    if (::stat(path.c_str(), &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return fail(EISDIR, "");
        if (::access(path.c_str(), W_OK) != 0)
            return fail(errno, "");
    }
    return {};
}

std::string read_whole_file(const std::string &path)
{
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        throw_errno(path, errno);
    std::string data;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            throw_errno(path, err);
        }
        if (n == 0)
            break;
        data.append(buf, size_t(n));
    }
    ::close(fd);
    return data;
}

std::string writable_by_others(const std::string &path)
{
    struct stat st {};
    for (auto &p : {std::filesystem::path(path), std::filesystem::absolute(path).parent_path()}) {
        // A sticky directory (/tmp) lets others add files, not replace ours.
        if (::stat(p.c_str(), &st) == 0 && (st.st_mode & S_IWOTH) &&
            !(p != std::filesystem::path(path) && (st.st_mode & S_ISVTX))) {
            char mode[8];
            std::snprintf(mode, sizeof(mode), "%04o", unsigned(st.st_mode & 07777));
            return (p == std::filesystem::path(path) ? std::string("the file")
                                                     : "its directory " + p.string()) +
                   " is writable by others (mode " + mode +
                   "): refusing it; remove that permission (chmod o-w)";
        }
    }
    return "";
}

}  // namespace exf
