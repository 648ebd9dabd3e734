// SPDX-License-Identifier: Apache-2.0
#pragma once
// Logging through spdlog. Under systemd (JOURNAL_STREAM set) no timestamps
// of our own: journald adds them. libbpf's messages are routed here; its
// debug output only with verbose logging.
#include <spdlog/spdlog.h>

#include <string_view>

namespace exf {

// level: trace|debug|info|warn|error; returns false if unknown.
bool init_logging(std::string_view level = "info");
// Route libbpf's print callback into spdlog (debug lines only when verbose).
void route_libbpf_logs(bool verbose);

}  // namespace exf
