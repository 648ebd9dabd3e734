// SPDX-License-Identifier: Apache-2.0
#pragma once
// The rules configs/exfilmon.toml ships, for an end-to-end test that runs
// them (scaled to seconds of traffic) against the real daemon: the test
// reads them from the file, so it follows every change to a shipped rule.
//
//   auto rules = shipped_rules();                 // as the daemon loads them
//   for (auto &r : rules) ...                     // scale thresholds, windows
//   cfg << rules_toml(rules);                     // [[rules]] tables again
#include <string>
#include <vector>

#include "detect/rules.h"

namespace exf::test {

// configs/exfilmon.toml's [[rules]], parsed by the daemon's own loader;
// throws exf::Error with its messages when the file does not load.
std::vector<detect::Rule> shipped_rules();

// The rules as [[rules]] tables that parse back to the same rules
// (windows and learning times in milliseconds, sizes in bytes).
std::string rules_toml(const std::vector<detect::Rule> &rules);

}  // namespace exf::test
