// SPDX-License-Identifier: Apache-2.0
#pragma once
// The checks `exfilmon run` makes before it attaches anything, in one place:
// `exfilmon check-config` runs the same function, so it accepts only what
// run accepts, and SIGHUP refuses what run would refuse.
#include <string>

#include "config/config.h"

namespace exf {

// load_config (without a path, the built-in defaults), then what only this
// host can tell, each issue at its key's FILE:LINE:COLUMN:
//   * every [[outputs]] table (output::check_output): its address parses,
//     its host name resolves (a warning when it does not: it may later), the
//     directories of path and spool_file exist and are writable, its TLS
//     files are readable and valid;
//   * [control]: the group exists.
// Attaching, the bpffs pins and the ports to listen on are tried only by run.
// SIGHUP skips the name lookups: the daemon's loop never waits for DNS
// (the outputs resolve on their own threads).
enum class NameLookup { resolve, skip };
ConfigResult load_config_for_run(const std::string &path, NameLookup names = NameLookup::resolve);

// Exit status of `run`, `replay` and `check-config` for a refused configuration.
inline constexpr int kConfigErrorExit = 2;

}  // namespace exf
