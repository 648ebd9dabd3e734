// SPDX-License-Identifier: Apache-2.0
#include "output/spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "common/files.h"

namespace exf::output::detail {

namespace {

std::deque<std::string> parse(const std::string &s)
{
    std::deque<std::string> msgs;
    size_t pos = 0;
    while (pos < s.size()) {
        char type = s[pos];
        size_t nl = s.find('\n', pos);
        if (nl == std::string::npos || nl == pos + 1 || nl - pos > 21)
            break;
        uint64_t n = 0;
        bool digits = true;
        for (size_t i = pos + 1; i < nl; i++) {
            digits = digits && s[i] >= '0' && s[i] <= '9';
            n = n * 10 + static_cast<uint64_t>(s[i] - '0');
        }
        if (!digits)
            break;
        if (type == 'M') {
            if (n > s.size() || nl + 1 + n >= s.size() || s[nl + 1 + n] != '\n')
                break;
            msgs.emplace_back(s.substr(nl + 1, n));
            pos = nl + 2 + n;
        } else if (type == 'A') {
            for (uint64_t i = 0; i < n && !msgs.empty(); i++)
                msgs.pop_front();
            pos = nl + 1;
        } else {
            break;
        }
    }
    return msgs;
}

}  // namespace

bool transient_io_error(int err)
{
    return err == ENOSPC || err == EDQUOT || err == EROFS || err == EIO;
}

SpoolFile::SpoolFile(std::string path) : path_(std::move(path))
{
    std::string data;  // a spool file not yet written is empty
    try {
        data = read_whole_file(path_);
    } catch (const Error &e) {
        if (e.err() != ENOENT)
            throw Error("spool_file " + std::string(e.what()), e.err());
    }
    loaded_ = parse(data);
    std::string why;
    if (!rewrite(loaded_, why)) {
        if (!transient_io_error(last_errno_))
            throw Error("spool_file " + why, last_errno_);
        open_error_ = why;
    }
}

bool SpoolFile::write(const std::string &rec, std::string &why)
{
    auto fail = [&](int err) {
        last_errno_ = err;
        why = "spool_file " + path_ + ": " + std::strerror(err);
        return false;
    };
    // No O_CREAT: a file removed behind our back must not be continued
    // without its earlier records (the caller rewrites it whole).
    int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return fail(errno);
    size_t off = 0;
    while (off < rec.size()) {
        ssize_t n = ::write(fd, rec.data() + off, rec.size() - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int err = n < 0 ? errno : EIO;
            ::close(fd);
            return fail(err);
        }
        off += static_cast<size_t>(n);
    }
    if (::close(fd) != 0 && errno != EINTR)
        return fail(errno);
    return true;
}

bool SpoolFile::append(std::string_view msg, std::string &why)
{
    std::string rec = "M" + std::to_string(msg.size()) + "\n";
    rec.append(msg);
    rec += '\n';
    return write(rec, why);
}

bool SpoolFile::acked(size_t n, std::string &why)
{
    return write("A" + std::to_string(n) + "\n", why);
}

bool SpoolFile::clear(std::string &why)
{
    if (::truncate(path_.c_str(), 0) != 0) {
        last_errno_ = errno;
        why = "spool_file " + path_ + ": " + std::strerror(errno);
        return false;
    }
    return true;
}

bool SpoolFile::rewrite(const std::deque<std::string> &msgs, std::string &why)
{
    std::string tmp = path_ + ".tmp";
    // Messages name the configured path first: the temporary file is ours.
    const std::string via_tmp = path_ + " (writing " + tmp + ")";
    auto fail = [&](const std::string &what, int err, int fd) {
        last_errno_ = err;
        why = what + ": " + std::strerror(err);
        if (fd >= 0)
            ::close(fd);
        ::unlink(tmp.c_str());
        return false;
    };
    int fd = ::open(tmp.c_str(), O_WRONLY | O_TRUNC | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        last_errno_ = errno;
        why = via_tmp + ": " + std::strerror(errno);
        return false;
    }
    std::string data;
    for (const auto &m : msgs)
        data += "M" + std::to_string(m.size()) + "\n" + m + "\n";
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return fail(via_tmp, n < 0 ? errno : EIO, fd);
        off += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0)
        return fail(via_tmp, errno, fd);
    if (::close(fd) != 0 && errno != EINTR)
        return fail(via_tmp, errno, -1);
    if (::rename(tmp.c_str(), path_.c_str()) != 0)
        return fail(path_, errno, -1);
    return true;
}

}  // namespace exf::output::detail
