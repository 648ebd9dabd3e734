#include "output/spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

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

SpoolFile::SpoolFile(std::string path) : path_(std::move(path))
{
    fd_ = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0)
        throw_errno("spool_file " + path_, errno);
    std::string data;
    char buf[65536];
    for (;;) {
        ssize_t n = ::pread(fd_, buf, sizeof buf, static_cast<off_t>(data.size()));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            ::close(fd_);
            throw_errno("spool_file " + path_, err);
        }
        if (n == 0)
            break;
        data.append(buf, static_cast<size_t>(n));
    }
    loaded_ = parse(data);
    std::string why;
    if (!rewrite(loaded_, why)) {
        ::close(fd_);
        throw Error("spool_file " + why);
    }
}

SpoolFile::~SpoolFile()
{
    if (fd_ >= 0)
        ::close(fd_);
}

bool SpoolFile::write(const std::string &rec, std::string &why)
{
    size_t off = 0;
    while (off < rec.size()) {
        ssize_t n = ::write(fd_, rec.data() + off, rec.size() - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            why = "spool_file " + path_ + ": " + std::strerror(n < 0 ? errno : EIO);
            return false;
        }
        off += static_cast<size_t>(n);
    }
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
    if (::ftruncate(fd_, 0) != 0) {
        why = "spool_file " + path_ + ": " + std::strerror(errno);
        return false;
    }
    return true;
}

bool SpoolFile::rewrite(const std::deque<std::string> &msgs, std::string &why)
{
    std::string tmp = path_ + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_TRUNC | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        why = tmp + ": " + std::strerror(errno);
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
        if (n <= 0) {
            why = tmp + ": " + std::strerror(n < 0 ? errno : EIO);
            ::close(fd);
            ::unlink(tmp.c_str());
            return false;
        }
        off += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0 || ::rename(tmp.c_str(), path_.c_str()) != 0) {
        why = path_ + ": " + std::strerror(errno);
        ::close(fd);
        ::unlink(tmp.c_str());
        return false;
    }
    ::close(fd);
    // Continue appending to the new file.
    int nfd = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
    if (nfd < 0) {
        why = path_ + ": " + std::strerror(errno);
        return false;
    }
    ::close(fd_);
    fd_ = nfd;
    return true;
}

}  // namespace exf::output::detail
