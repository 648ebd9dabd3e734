#pragma once
// Least privilege: once attached, the daemon keeps only the capabilities it
// still needs and drops the rest for good (effective, permitted, inheritable,
// ambient and, when allowed, the bounding set), then sets no_new_privs.
#include <cstdint>
#include <initializer_list>
#include <string>

namespace exf {

// Keeps only `keep` (CAP_* numbers) of what the process has. Returns a line
// for the log: what is kept, or why nothing could be dropped.
std::string keep_only_capabilities(std::initializer_list<int> keep);

// The process's effective capabilities as a bit mask (bit n = CAP n).
uint64_t effective_capabilities();

}  // namespace exf
