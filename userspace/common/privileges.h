// SPDX-License-Identifier: Apache-2.0
#pragma once
// Least privilege: once attached, the daemon keeps only the capabilities it
// still needs and drops the rest for good (effective, permitted, inheritable,
// ambient and, when allowed, the bounding set), then sets no_new_privs.
// capset() and these prctl()s act on the calling thread only: the drop must
// happen while the process has one thread, so that every thread started
// later inherits the reduced sets.
#include <sys/types.h>

#include <cstdint>
#include <initializer_list>
#include <string>

namespace exf {

// Keeps only `keep` (CAP_* numbers) of what the process has. Returns a line
// for the log: what is kept, or why nothing could be dropped. Throws
// exf::Error when the process already runs other threads (they would keep
// every capability).
std::string keep_only_capabilities(std::initializer_list<int> keep);

// How many threads the process runs (/proc/self/status "Threads:").
int thread_count();

// The process's effective capabilities as a bit mask (bit n = CAP n).
uint64_t effective_capabilities();

// The id of a group by name; throws exf::Error "group 'NAME' does not exist".
gid_t group_id(const std::string &group);

}  // namespace exf
