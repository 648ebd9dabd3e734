// SPDX-License-Identifier: Apache-2.0
#pragma once
// Internal to output/: the optional spool file, so that alerts waiting for a
// collector survive a restart. Append-only records, one per event:
//
//   M<len>\n<len bytes of rendered message>\n     a message was spooled
//   A<n>\n                                        the n oldest were delivered
//
// Reading applies them in order; a torn last record (crash mid-write, disk
// full mid-write) ends the file. The file is truncated whenever the spool
// drains and rewritten (temporary file + rename) at start and when the
// output stops, so it only grows while a collector is unreachable. Only the
// output's worker thread writes it.
//
// The file is opened for each operation and closed again: no descriptor is
// held between alerts, so the file system can be remounted (read-only, for
// maintenance) under a running daemon, and a file deleted behind our back
// is noticed (ENOENT) instead of written to unlinked.
//
// Faults. A write that fails (disk full, read-only file system, I/O error,
// file gone) returns false with `why`; the spool in memory is unaffected.
// The caller (output.cpp) then stops writing the file, keeps delivering from
// memory, and tries rewrite() with the whole spool from time to time: once it
// succeeds the file is exact again. Meanwhile the file is stale: it may hold
// alerts delivered since (a restart in that state sends them again) and a
// torn last record (which ends reading).
#include <deque>
#include <string>
#include <string_view>

namespace exf::output::detail {

class SpoolFile {
public:
    // Reads what the file holds (a missing file is empty) and rewrites it
    // (mode 0600). Throws exf::Error when it cannot be read, or cannot be
    // written for a reason that is not a fault of the moment (a missing
    // directory, a permission); on a full or read-only file system, or an
    // I/O error, it does not throw: open_error() says why, and the caller
    // runs with the spool in memory and retries.
    explicit SpoolFile(std::string path);
    SpoolFile(const SpoolFile &) = delete;
    SpoolFile &operator=(const SpoolFile &) = delete;

    // The messages left undelivered by the previous run, oldest first.
    std::deque<std::string> take_loaded() { return std::move(loaded_); }
    // "" when the file was rewritten at open; else why it could not be.
    const std::string &open_error() const { return open_error_; }

    // Each returns false with `why` set on an I/O error (the spool in memory
    // is unaffected; the caller logs).
    bool append(std::string_view msg, std::string &why);
    bool acked(size_t n, std::string &why);
    bool clear(std::string &why);
    // Replaces the file with exactly these messages (temporary file, fsync,
    // rename): the file is either the old one or the new one, never torn.
    bool rewrite(const std::deque<std::string> &msgs, std::string &why);

    const std::string &path() const { return path_; }
    // errno of the last failure (0 before any).
    int last_errno() const { return last_errno_; }

private:
    bool write(const std::string &rec, std::string &why);

    std::string path_;
    std::deque<std::string> loaded_;
    std::string open_error_;
    int last_errno_ = 0;  // of the last failure
};

// errno values that are faults of the moment (the disk, not the
// configuration): ENOSPC, EDQUOT, EROFS, EIO.
bool transient_io_error(int err);

}  // namespace exf::output::detail
