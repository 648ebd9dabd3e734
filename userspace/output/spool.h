#pragma once
// Internal to output/: the optional spool file, so that alerts waiting for a
// collector survive a restart. Append-only records, one per event:
//
//   M<len>\n<len bytes of rendered message>\n     a message was spooled
//   A<n>\n                                        the n oldest were delivered
//
// Reading applies them in order; a torn last record (crash mid-write) ends
// the file. The file is truncated whenever the spool drains and rewritten
// (temporary file + rename) at start and when the output stops, so it only
// grows while a collector is unreachable. Only the output's worker thread
// writes it.
#include <deque>
#include <string>
#include <string_view>

namespace exf::output::detail {

class SpoolFile {
public:
    // Reads what the file holds (creating it, mode 0600, when missing); throws
    // exf::Error when it cannot be read or created.
    explicit SpoolFile(std::string path);
    ~SpoolFile();
    SpoolFile(const SpoolFile &) = delete;
    SpoolFile &operator=(const SpoolFile &) = delete;

    // The messages left undelivered by the previous run, oldest first.
    std::deque<std::string> take_loaded() { return std::move(loaded_); }

    // Each returns false with `why` set on an I/O error (the spool in memory
    // is unaffected; the caller logs).
    bool append(std::string_view msg, std::string &why);
    bool acked(size_t n, std::string &why);
    bool clear(std::string &why);
    // Replaces the file with exactly these messages.
    bool rewrite(const std::deque<std::string> &msgs, std::string &why);

    const std::string &path() const { return path_; }

private:
    bool write(const std::string &rec, std::string &why);

    std::string path_;
    int fd_ = -1;
    std::deque<std::string> loaded_;
};

}  // namespace exf::output::detail
