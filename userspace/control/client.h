// SPDX-License-Identifier: Apache-2.0
#pragma once
// `exfilmon status` and `exfilmon top`: clients of the daemon's control
// socket (control_server.h, protocol in snapshot.h).
//
// Exit codes: 0 ok; 1 the daemon is not reachable (no socket, nobody
// listening, permission denied: the message says what to check) or did not
// answer; 2 usage (a request the daemon rejected, e.g. an unknown window).
//
// Table views show strings from the wire (SNI) and from the configuration
// through ascii_escape() (common/text.h): no terminal escape sequence can
// reach the terminal.
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace exf::control {

inline constexpr const char *kDefaultSocket = "/run/exfilmon/control.sock";

struct StatusOptions {
    std::string socket = kDefaultSocket;
    bool json = false;  // --format json: the daemon's response object, one line
};

struct TopOptions {
    std::string socket = kDefaultSocket;
    std::string kind = "client", window = "10m", sort = "bytes_out";
    unsigned n = 20;
    uint64_t interval_ms = 2000;
    bool once = false;
    bool json = false;  // with once: one JSON snapshot
};

int run_status(const StatusOptions &o, std::ostream &out, std::ostream &err);
// Without once: redraws every interval (ANSI clear screen) until q, Ctrl-C
// or SIGTERM; reads single keys from a terminal on stdin.
int run_top(const TopOptions &o, std::ostream &out, std::ostream &err);

// One request, one response. On failure: nullopt, `why` says what to check
// and `exit_code` is 1 (unreachable) or 2 (the daemon rejected the request).
std::optional<nlohmann::json> request(const std::string &socket, const nlohmann::json &req,
                                      std::string &why, int &exit_code,
                                      std::chrono::milliseconds timeout = std::chrono::seconds(5));

// The table views of a status and a top response.
std::string render_status(const nlohmann::json &status);
std::string render_top(const nlohmann::json &top);

}  // namespace exf::control
