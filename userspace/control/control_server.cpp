// SPDX-License-Identifier: Apache-2.0
#include "control/control_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "common/privileges.h"

namespace exf::control {

namespace {

sockaddr_un unix_addr(const std::string &path)
{
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.size() >= sizeof(a.sun_path))
        throw Error("control socket " + path + ": path too long (at most 107 bytes)");
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    return a;
}

// True when a process accepts connections on the socket file.
bool answers(const sockaddr_un &a)
{
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool ok = ::connect(fd, reinterpret_cast<const sockaddr *>(&a), sizeof(a)) == 0;
    ::close(fd);
    return ok;
}

}  // namespace

ControlServer::ControlServer(const std::string &path, const std::string &group) : path_(path)
{
    auto addr = unix_addr(path);
    gid_t gid = 0;
    if (!group.empty()) {
        try {
            gid = group_id(group);
        } catch (const Error &e) {
            throw Error("control socket " + path + ": " + e.what());
        }
    }
    auto dir = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!std::filesystem::exists(dir, ec)) {
        std::filesystem::create_directories(dir, ec);
        if (ec)
            throw Error("control socket: cannot create " + dir.string() + ": " + ec.message());
        ::chmod(dir.c_str(), 0755);
    }
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            throw Error("control socket " + path + ": the path exists and is not a socket");
        if (answers(addr))
            throw Error("control socket " + path +
                        ": another exfilmon is serving it (stop it, or set [control] socket)");
        ::unlink(path.c_str());  // left by a daemon that died
    }
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd_ < 0)
        throw_errno("control socket: socket", errno);
    // Never reachable by others, not even between bind and chmod.
    mode_t old = ::umask(0177);
    int rc = ::bind(fd_, reinterpret_cast<const sockaddr *>(&addr), sizeof(addr));
    int err = errno;
    ::umask(old);
    if (rc != 0) {
        ::close(fd_);
        throw_errno("control socket: bind " + path, err);
    }
    auto fail = [&](const std::string &what) {
        int e = errno;
        ::close(fd_);
        ::unlink(path.c_str());
        throw_errno("control socket " + path + ": " + what, e);
    };
    // Without CAP_CHOWN (the hardened unit) the daemon must be a member of
    // the group: SupplementaryGroups= in the unit.
    if (!group.empty() && ::chown(path.c_str(), uid_t(-1), gid) != 0)
        fail("chown to group " + group +
             " (needs CAP_CHOWN or membership: SupplementaryGroups=" + group + " in the unit)");
    if (!group.empty() && ::chmod(path.c_str(), 0660) != 0)
        fail("chmod 0660");
    if (::listen(fd_, 16) != 0)
        fail("listen");
    if (::stat(path.c_str(), &st) == 0)
        ino_ = st.st_ino;
}

ControlServer::~ControlServer()
{
    for (auto &c : conns_)
        ::close(c.fd);
    if (fd_ >= 0)
        ::close(fd_);
    struct stat st {};
    if (::stat(path_.c_str(), &st) == 0 && st.st_ino == ino_)
        ::unlink(path_.c_str());
}

void ControlServer::accept_all()
{
    for (;;) {
        int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;  // EAGAIN, or a connection that went away
        if (conns_.size() >= kMaxConnections) {
            ::close(fd);
            continue;
        }
        Conn c;
        c.fd = fd;
        c.deadline = std::chrono::steady_clock::now() + kConnectionTimeout;
        conns_.push_back(std::move(c));
    }
}

bool ControlServer::progress(Conn &c, const Handler &handler)
{
    if (!c.answered) {
        char buf[1024];
        bool eof = false;
        for (;;) {
            ssize_t n = ::recv(c.fd, buf, sizeof(buf), 0);
            if (n > 0) {
                c.in.append(buf, size_t(n));
                if (c.in.size() > kMaxRequest)
                    break;
                continue;
            }
            if (n == 0)
                eof = true;
            else if (errno == EINTR)
                continue;
            else if (errno != EAGAIN && errno != EWOULDBLOCK)
                return false;
            break;
        }
        auto nl = c.in.find('\n');
        if (nl != std::string::npos && nl <= kMaxRequest) {
            c.out = handler(std::string_view(c.in).substr(0, nl));
            c.answered = true;
        } else if (c.in.size() > kMaxRequest) {
            c.out = "{\"ok\":false,\"error\":\"request longer than 4096 bytes\"}\n";
            c.answered = true;
        } else if (eof) {
            if (c.in.empty())
                return false;
            c.out = handler(c.in);  // a last line without its newline
            c.answered = true;
        }
    }
    while (c.answered && c.sent < c.out.size()) {
        ssize_t n = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
        if (n > 0) {
            c.sent += size_t(n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        return false;  // the peer went away
    }
    return !(c.answered && c.sent == c.out.size());
}

void ControlServer::serve(std::chrono::milliseconds timeout, const Handler &handler)
{
    std::vector<pollfd> fds;
    fds.push_back({fd_, POLLIN, 0});
    for (auto &c : conns_)
        fds.push_back({c.fd, short(c.answered ? POLLOUT : POLLIN), 0});
    // A timeout or a signal (the caller's loop checks its flags): only the
    // deadlines are checked.
    if (::poll(fds.data(), fds.size(), int(timeout.count())) <= 0)
        for (auto &p : fds)
            p.revents = 0;
    auto now = std::chrono::steady_clock::now();
    for (size_t i = 0; i < conns_.size();) {
        auto &c = conns_[i];
        bool ready = i + 1 < fds.size() && fds[i + 1].revents;
        // What a peer sent is served even past its deadline: the time may
        // have gone by in the daemon (a long harvest between two calls),
        // not in the peer. Only a peer that is still silent, or not
        // reading its answer, at its deadline is dropped.
        bool keep = (!ready || progress(c, handler)) && now < c.deadline;
        if (keep) {
            i++;
            continue;
        }
        ::close(c.fd);
        conns_.erase(conns_.begin() + ptrdiff_t(i));
        fds.erase(fds.begin() + ptrdiff_t(i + 1));
    }
    if (fds[0].revents & POLLIN)
        accept_all();
}

}  // namespace exf::control
