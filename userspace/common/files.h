// SPDX-License-Identifier: Apache-2.0
#pragma once
// Checks on the files a configuration names, each returning "" when the file
// is fine, else why not ("Is a directory", "No such file or directory",
// "its directory /var/lib/x: Permission denied"): the caller puts the key
// and the path in front of it.
#include <string>

namespace exf {

// A file we read: it can be opened for reading and is not a directory.
std::string readable_file_problem(const std::string &path);

// A file we create or append to: its directory exists and is writable, and
// the file, when it exists, is not a directory and is writable. *err, when
// given, gets the errno of the problem (EROFS: a read-only file system).
std::string writable_file_problem(const std::string &path, int *err = nullptr);

// The whole content of a file; throws exf::Error "PATH: strerror" (a
// directory: "PATH: Is a directory").
std::string read_whole_file(const std::string &path);

// Why a file the daemon trusts (configuration, cohorts) must be refused: it,
// or its directory unless sticky, is writable by others. "" when it is not.
std::string writable_by_others(const std::string &path);

}  // namespace exf
