// SPDX-License-Identifier: Apache-2.0
#pragma once
// The daemon's control socket: a Unix stream socket serving one JSON request
// line per connection with one JSON response line (snapshot.h has the
// protocol), then closing. Served from the daemon's main loop: serve() waits
// at most its timeout for activity, and everything after is non-blocking, so
// a slow or silent client never stalls the loop.
//
// Limits: a request line is at most 4 KiB (longer: an error response); a
// connection gets 2 s in all to send its request and take its response, then
// it is closed; at most 16 connections at once (more are closed at accept).
//
// Access is the socket file's mode: 0600 (root only), or 0660 with `group`
// as its group. The parent directory is created (0755) when missing. A
// socket file left by a dead daemon is replaced; one that a running daemon
// answers on is not (exf::Error).
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace exf::control {

class ControlServer {
public:
    using Handler = std::function<std::string(std::string_view request)>;

    ControlServer(const std::string &path, const std::string &group);  // throws exf::Error
    ~ControlServer();  // closes every connection; removes the socket file if still ours
    ControlServer(const ControlServer &) = delete;
    ControlServer &operator=(const ControlServer &) = delete;

    // Waits up to `timeout` for a connection or data, then accepts, reads,
    // answers complete requests through handler (on this thread) and writes
    // what the peers take without blocking. A connection still without a
    // complete request (or not reading its answer) kConnectionTimeout after
    // it was accepted is closed; a request that arrived in time is answered
    // however long the caller took to call serve() again.
    void serve(std::chrono::milliseconds timeout, const Handler &handler);

    const std::string &path() const { return path_; }
    size_t connections() const { return conns_.size(); }

    static constexpr size_t kMaxRequest = 4096;
    static constexpr size_t kMaxConnections = 16;
    static constexpr std::chrono::milliseconds kConnectionTimeout{2000};

private:
    struct Conn {
        int fd = -1;
        std::string in, out;
        size_t sent = 0;
        bool answered = false;
        std::chrono::steady_clock::time_point deadline;
    };
    void accept_all();
    // False when the connection is finished (to be closed).
    bool progress(Conn &c, const Handler &handler);

    std::string path_;
    int fd_ = -1;
    ino_t ino_ = 0;
    std::vector<Conn> conns_;
};

}  // namespace exf::control
