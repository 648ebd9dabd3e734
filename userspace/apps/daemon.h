// SPDX-License-Identifier: Apache-2.0
#pragma once
// `exfilmon run`: load, attach, run the live pipeline until SIGINT/SIGTERM,
// reload the configuration on SIGHUP, detach cleanly. The main loop also
// serves the control socket of `exfilmon status` / `top` and publishes the
// figures the metrics endpoint serves (userspace/control/); when either
// cannot start (socket served by another daemon, port in use) that is
// logged as an error and the sensor runs on without it.
#include <iosfwd>
#include <string>
#include <vector>

namespace exf {

struct DaemonOptions {
    std::string config_path;              // empty: built-in defaults
    std::vector<std::string> interfaces;  // overrides the configuration's
    bool verbose = false;
};

// Returns the process exit status (0 ok, 1 runtime failure, 2 configuration).
int run_daemon(const DaemonOptions &opts);

// `exfilmon detach`: removes the tc filters a clean stop left attached
// ([bpf] keep_attached) from the interfaces given, or from every interface
// of the network namespace. 0 when done (also when none was attached), 1
// when an interface is in use by a running daemon or cannot be detached.
int run_detach(const std::vector<std::string> &interfaces, std::ostream &out, std::ostream &err);

}  // namespace exf
