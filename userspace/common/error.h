// SPDX-License-Identifier: Apache-2.0
#pragma once
// One error style for setup paths: exf::Error carries the errno (0 if none)
// and a message with context, e.g. "attach tc egress on eth0: Operation not
// permitted". Hot paths never throw; they count. userspace/README.md
// ("Errors") has the style for every kind of code.
#include <stdexcept>
#include <string>

namespace exf {

class Error : public std::runtime_error {
public:
    Error(const std::string &what, int err = 0) : std::runtime_error(what), err_(err) {}
    int err() const { return err_; }

private:
    int err_;
};

// "context: strerror(err)"; err may be negative (libbpf style).
[[noreturn]] void throw_errno(const std::string &context, int err);

}  // namespace exf
