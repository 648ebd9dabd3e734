// SPDX-License-Identifier: Apache-2.0
#pragma once
// Internal to output/: the byte pipes an Output's worker writes rendered
// messages through, one Sink per output, used by that worker thread only.
//
//   unix   datagram socket connected to the path (rsyslog imuxsock,
//          journald); a path that only takes streams (connect says
//          EPROTOTYPE) gets a stream socket and NUL-terminated messages,
//          as glibc's syslog(3) does.
//   udp    one datagram per message, no framing.
//   tcp    octet counting, "LEN SP MSG" (RFC 6587 3.4.1).
//   tls    the same framing (RFC 5425) over TLS 1.2 or later; the
//          collector's certificate must chain to ca_file (the system store
//          when empty) and match server_name (default: the address's host;
//          an IP address is matched against the certificate's IP SANs).
//   file   one message per line, appended (O_APPEND, created 0640); "-" is
//          stdout. The path is stat()ed before every write and reopened when
//          its inode changed or it vanished (logrotate's move-and-create).
//
// Every socket is non-blocking; each call takes a deadline and gives up
// there, or at once when `abort` is set (the Output is being destroyed).
//
// Stream sockets acknowledge late: bytes_written() counts what was handed to
// the kernel since open() (TLS: the encrypted bytes, handshake included) and
// bytes_unacked() what of it the peer has not acknowledged yet (SIOCOUTQ;
// a unix stream reports everything unacknowledged until the peer read it all).
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "output/output.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace exf::output::detail {

using Clock = std::chrono::steady_clock;

enum class WriteResult : uint8_t {
    ok,       // handed to the kernel whole
    again,    // nothing written (receiver busy): keep the connection, retry later
    broken,   // the connection failed: reopen, then resend what is unacknowledged
    too_big,  // this message can never be sent (datagram too large)
};

class Sink {
public:
    virtual ~Sink() = default;
    // Connects (opens); false with `why` set when it cannot now.
    virtual bool open(Clock::time_point deadline, std::string &why) = 0;
    virtual void close() = 0;
    virtual bool is_open() const = 0;
    // Open and, for streams, the peer has not closed or reset the connection.
    // Reads and discards anything the peer sent.
    virtual bool alive() { return is_open(); }
    // Writes one message with the transport's framing.
    virtual WriteResult write(std::string_view msg, Clock::time_point deadline,
                              std::string &why) = 0;
    virtual bool acks_later() const { return false; }
    virtual uint64_t bytes_written() const { return 0; }
    virtual uint64_t bytes_unacked() const { return 0; }

    std::atomic<bool> abort{false};
};

// "" when hp resolves for the transport's socket type, else why not.
std::string resolve_problem(const HostPort &hp, Transport t);

// The TLS context of a tls output: its CA, certificate and key loaded.
// Throws exf::Error naming the file ("ca_file PATH: ...").
std::shared_ptr<SSL_CTX> make_tls_context(const OutputConfig &cfg);

// Throws exf::Error when the configuration cannot work (bad address,
// unreadable CA, certificate or key).
std::unique_ptr<Sink> make_sink(const OutputConfig &cfg);

}  // namespace exf::output::detail
