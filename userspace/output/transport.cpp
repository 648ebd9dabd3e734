// SPDX-License-Identifier: Apache-2.0
#include "output/transport.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/addr.h"
#include "common/error.h"
#include "common/text.h"

namespace exf::output::detail {

namespace {

using namespace std::chrono_literals;

constexpr auto kNoProgressWait = 1s;  // receiver busy this long: WriteResult::again

std::string errstr(int err) { return std::strerror(err); }

// Waits for `events` on fd until deadline or abort; true when poll reported
// anything (the caller's next call finds out what).
bool wait_fd(int fd, short events, Clock::time_point deadline, const std::atomic<bool> &abort)
{
    for (;;) {
        if (abort.load(std::memory_order_relaxed))
            return false;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0)
            return false;
        pollfd p{fd, events, 0};
        int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 100)));
        if (r > 0)
            return true;
        if (r < 0 && errno != EINTR)
            return false;
    }
}

bool is_ip(const std::string &host)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, host.c_str(), buf) == 1 ||
           inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string endpoint(const HostPort &hp) { return format_host_port(hp.host, hp.port); }

// The addresses of hp for one socket type, or nullptr with *why set.
std::unique_ptr<addrinfo, void (*)(addrinfo *)> resolve(const HostPort &hp, int socktype,
                                                        std::string &why)
{
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    addrinfo *res = nullptr;
    int rc = ::getaddrinfo(hp.host.c_str(), hp.port.c_str(), &hints, &res);
    if (rc != 0) {
        why = "resolve " + hp.host + ": " + gai_strerror(rc);
        res = nullptr;
    }
    return {res, [](addrinfo *a) {
                if (a)
                    ::freeaddrinfo(a);
            }};
}

// Writes all of `data` to a non-blocking socket or file. Nothing written
// within kNoProgressWait: again; a part written and then stuck until the
// deadline, or an error: broken.
WriteResult write_all(int fd, std::string_view data, bool socket, Clock::time_point deadline,
                      const std::atomic<bool> &abort, uint64_t &written, std::string &why)
{
    size_t off = 0;
    auto soft = std::min(deadline, Clock::now() + kNoProgressWait);
    while (off < data.size()) {
        ssize_t n = socket ? ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL)
                           : ::write(fd, data.data() + off, data.size() - off);
        if (n > 0) {
            off += static_cast<size_t>(n);
            written += static_cast<uint64_t>(n);
            continue;
        }
        int err = n < 0 ? errno : EIO;
        if (err == EINTR)
            continue;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            if (wait_fd(fd, POLLOUT, off ? deadline : soft, abort))
                continue;
            if (off == 0) {
                why = "receiver busy";
                return WriteResult::again;
            }
            why = "write timed out";
            return WriteResult::broken;
        }
        why = std::string(socket ? "send: " : "write: ") + errstr(err);
        return WriteResult::broken;
    }
    return WriteResult::ok;
}

// Poll says the peer closed (or reset) a stream; POLLIN data is read and
// discarded (collectors do not talk back).
bool plain_alive(int fd)
{
    for (;;) {
        pollfd p{fd, POLLIN | POLLRDHUP, 0};
        int r = ::poll(&p, 1, 0);
        if (r < 0)
            return errno == EINTR;
        if (r == 0)
            return true;
        if (p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL))
            return false;
        char buf[4096];
        ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0)
            return false;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    }
}

std::string ssl_errors()
{
    std::string s;
    while (unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        s += (s.empty() ? "" : "; ") + std::string(buf);
    }
    return s;
}

// tcp and tls
class StreamSink final : public Sink {
public:
    StreamSink(HostPort hp, std::shared_ptr<SSL_CTX> ctx, std::string verify_name)
        : hp_(std::move(hp)), ctx_(std::move(ctx)), verify_name_(std::move(verify_name))
    {}
    ~StreamSink() override { close(); }

    bool open(Clock::time_point deadline, std::string &why) override
    {
        close();
        if (!connect_tcp(deadline, why))
            return false;
        if (ctx_ && !handshake(deadline, why)) {
            close();
            return false;
        }
        return true;
    }

    void close() override
    {
        if (ssl_) {
            // A close_notify when the session is sound (collectors complain
            // about a TLS connection closed without one).
            if (tls_ok_ && SSL_shutdown(ssl_) < 0)
                ERR_clear_error();
            tls_ok_ = false;
            SSL_free(ssl_);
            ssl_ = nullptr;
        }
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = -1;
        written_ = 0;
    }

    bool is_open() const override { return fd_ >= 0; }

    bool alive() override
    {
        if (fd_ < 0)
            return false;
        if (!ssl_)
            return plain_alive(fd_);
        pollfd p{fd_, POLLIN | POLLRDHUP, 0};
        if (::poll(&p, 1, 0) <= 0)
            return true;
        if (p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL)) {
            tls_ok_ = false;
            return false;
        }
        // Session tickets and the like, or a close_notify.
        ERR_clear_error();
        for (;;) {
            char buf[4096];
            int n = SSL_read(ssl_, buf, sizeof buf);
            if (n > 0)
                continue;
            int e = SSL_get_error(ssl_, n);
            ERR_clear_error();
            tls_ok_ = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
            return tls_ok_;
        }
    }

    WriteResult write(std::string_view msg, Clock::time_point deadline, std::string &why) override
    {
        std::string frame = std::to_string(msg.size()) + " ";
        frame.append(msg);
        if (!ssl_)
            return write_all(fd_, frame, true, deadline, abort, written_, why);
        ERR_clear_error();
        for (;;) {
            int n = SSL_write(ssl_, frame.data(), static_cast<int>(frame.size()));
            if (n > 0)
                return WriteResult::ok;
            int e = SSL_get_error(ssl_, n);
            short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
            if (ev == 0) {
                int err = errno;
                std::string s = ssl_errors();
                why = "TLS write: " + (s.empty() ? errstr(err) : s);
                tls_ok_ = false;
                return WriteResult::broken;
            }
            if (!wait_fd(fd_, ev, deadline, abort)) {
                why = "TLS write timed out";
                tls_ok_ = false;
                return WriteResult::broken;
            }
        }
    }

    bool acks_later() const override { return true; }
    uint64_t bytes_written() const override
    {
        return ssl_ ? BIO_number_written(SSL_get_wbio(ssl_)) : written_;
    }
    uint64_t bytes_unacked() const override
    {
        int n = 0;
        if (fd_ < 0 || ::ioctl(fd_, SIOCOUTQ, &n) != 0)
            return bytes_written();
        return static_cast<uint64_t>(n);
    }

private:
    bool connect_tcp(Clock::time_point deadline, std::string &why)
    {
        auto res = resolve(hp_, SOCK_STREAM, why);
        if (!res)
            return false;
        why = "connect " + endpoint(hp_) + ": no address";
        for (addrinfo *ai = res.get(); ai && fd_ < 0; ai = ai->ai_next) {
            int fd = ::socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                why = "socket: " + errstr(errno);
                continue;
            }
            int err = 0;
            if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
                err = errno;
                if (err == EINPROGRESS) {
                    err = ETIMEDOUT;
                    if (wait_fd(fd, POLLOUT, deadline, abort)) {
                        socklen_t len = sizeof err;
                        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                            err = errno;
                    }
                }
            }
            if (err != 0) {
                why = "connect " + endpoint(hp_) + ": " + errstr(err);
                ::close(fd);
                continue;
            }
            // A collector that vanished without a reset fails writes within
            // 30 s instead of TCP's default of about 15 minutes.
            int one = 1, user_timeout = 30000, idle = 30, intvl = 10, cnt = 3;
            ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
            ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
            ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
            ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
            ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
            fd_ = fd;
        }
        written_ = 0;
        return fd_ >= 0;
    }

    // The name (or address) the collector's certificate must carry. When
    // OpenSSL refuses it (an embedded NUL, say) no connection is made:
    // going on would skip the name check.
    bool expect_peer_name(std::string &why)
    {
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl_);
        bool ok = is_ip(verify_name_)
                      ? X509_VERIFY_PARAM_set1_ip_asc(param, verify_name_.c_str()) == 1
                      : X509_VERIFY_PARAM_set1_host(param, verify_name_.data(),
                                                    verify_name_.size()) == 1 &&
                            SSL_set_tlsext_host_name(ssl_, verify_name_.c_str()) == 1;
        if (!ok)
            why = "TLS with " + endpoint(hp_) + ": OpenSSL refuses the certificate name \"" +
                  ascii_escape(verify_name_, 255) + "\" (server_name): not connecting";
        return ok;
    }

    bool handshake(Clock::time_point deadline, std::string &why)
    {
        ERR_clear_error();
        ssl_ = SSL_new(ctx_.get());
        if (!ssl_ || SSL_set_fd(ssl_, fd_) != 1) {
            why = "TLS setup: " + ssl_errors();
            return false;
        }
        if (!expect_peer_name(why))
            return false;
        for (;;) {
            int r = SSL_connect(ssl_);
            if (r == 1) {
                tls_ok_ = true;
                return true;
            }
            int e = SSL_get_error(ssl_, r);
            short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
            if (ev && wait_fd(fd_, ev, deadline, abort))
                continue;
            std::string prefix = "TLS handshake with " + endpoint(hp_) + ": ";
            long v = SSL_get_verify_result(ssl_);
            if (ev) {
                why = prefix + "timed out";
            } else if (v != X509_V_OK) {
                why = prefix + "certificate verification failed (" +
                      X509_verify_cert_error_string(v) + "; expected name " + verify_name_ + ")";
            } else {
                int err = errno;
                std::string s = ssl_errors();
                why = prefix + (s.empty() ? (err ? errstr(err) : "connection closed") : s);
            }
            ERR_clear_error();
            return false;
        }
    }

    HostPort hp_;
    std::shared_ptr<SSL_CTX> ctx_;
    std::string verify_name_;
    int fd_ = -1;
    SSL *ssl_ = nullptr;
    bool tls_ok_ = false;  // no fatal TLS error: close_notify may be sent
    uint64_t written_ = 0;
};

class UdpSink final : public Sink {
public:
    explicit UdpSink(HostPort hp) : hp_(std::move(hp)) {}
    ~UdpSink() override { close(); }

    bool open(Clock::time_point, std::string &why) override
    {
        close();
        auto res = resolve(hp_, SOCK_DGRAM, why);
        if (!res)
            return false;
        for (addrinfo *ai = res.get(); ai && fd_ < 0; ai = ai->ai_next) {
            int fd = ::socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd >= 0 && ::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
                fd_ = fd;
                break;
            }
            why = "connect " + endpoint(hp_) + ": " + errstr(errno);
            if (fd >= 0)
                ::close(fd);
        }
        return fd_ >= 0;
    }
    void close() override
    {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = -1;
    }
    bool is_open() const override { return fd_ >= 0; }

    WriteResult write(std::string_view msg, Clock::time_point deadline, std::string &why) override
    {
        bool retried = false;
        auto soft = std::min(deadline, Clock::now() + kNoProgressWait);
        for (;;) {
            if (::send(fd_, msg.data(), msg.size(), MSG_NOSIGNAL) >= 0)
                return WriteResult::ok;
            int err = errno;
            if (err == EINTR)
                continue;
            // An ICMP port unreachable for an earlier datagram: send this one again.
            if (err == ECONNREFUSED && !retried) {
                retried = true;
                continue;
            }
            if (err == ECONNREFUSED)
                return WriteResult::ok;  // fire and forget, as syslog over UDP is
            if (err == EMSGSIZE) {
                why = "datagram too big (" + std::to_string(msg.size()) + " bytes)";
                return WriteResult::too_big;
            }
            if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
                if (wait_fd(fd_, POLLOUT, soft, abort))
                    continue;
                why = "send: " + errstr(err);
                return WriteResult::again;
            }
            why = "send " + endpoint(hp_) + ": " + errstr(err);
            return WriteResult::broken;
        }
    }

private:
    HostPort hp_;
    int fd_ = -1;
};

class UnixSink final : public Sink {
public:
    explicit UnixSink(std::string path) : path_(std::move(path)) {}
    ~UnixSink() override { close(); }

    bool open(Clock::time_point deadline, std::string &why) override
    {
        close();
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::memcpy(sa.sun_path, path_.c_str(), path_.size() + 1);
        for (int type : {SOCK_DGRAM, SOCK_STREAM}) {
            int fd = ::socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                why = "socket: " + errstr(errno);
                return false;
            }
            int err = 0;
            if (::connect(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa) != 0) {
                err = errno;
                if (err == EINPROGRESS || err == EAGAIN) {
                    err = ETIMEDOUT;
                    if (wait_fd(fd, POLLOUT, deadline, abort)) {
                        socklen_t len = sizeof err;
                        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                            err = errno;
                    }
                }
            }
            if (err == 0) {
                fd_ = fd;
                stream_ = type == SOCK_STREAM;
                written_ = 0;
                return true;
            }
            ::close(fd);
            why = "connect " + path_ + ": " + errstr(err);
            if (err != EPROTOTYPE)
                return false;
        }
        return false;
    }
    void close() override
    {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = -1;
        written_ = 0;
    }
    bool is_open() const override { return fd_ >= 0; }
    bool alive() override { return fd_ >= 0 && (!stream_ || plain_alive(fd_)); }

    WriteResult write(std::string_view msg, Clock::time_point deadline, std::string &why) override
    {
        if (stream_) {
            std::string frame(msg);
            frame += '\0';
            return write_all(fd_, frame, true, deadline, abort, written_, why);
        }
        auto soft = std::min(deadline, Clock::now() + kNoProgressWait);
        for (;;) {
            if (::send(fd_, msg.data(), msg.size(), MSG_NOSIGNAL) >= 0)
                return WriteResult::ok;
            int err = errno;
            if (err == EINTR)
                continue;
            if (err == EMSGSIZE) {
                why = "datagram too big (" + std::to_string(msg.size()) + " bytes)";
                return WriteResult::too_big;
            }
            if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
                if (wait_fd(fd_, POLLOUT, soft, abort))
                    continue;
                why = "send " + path_ + ": " + errstr(err);
                return WriteResult::again;
            }
            why = "send " + path_ + ": " + errstr(err);
            return WriteResult::broken;
        }
    }

    bool acks_later() const override { return stream_; }
    uint64_t bytes_written() const override { return written_; }
    uint64_t bytes_unacked() const override
    {
        // Unix sockets report buffer memory, not bytes: all or nothing.
        int n = 0;
        if (fd_ < 0 || ::ioctl(fd_, SIOCOUTQ, &n) != 0 || n > 0)
            return written_;
        return 0;
    }

private:
    std::string path_;
    int fd_ = -1;
    bool stream_ = false;
    uint64_t written_ = 0;
};

class FileSink final : public Sink {
public:
    explicit FileSink(std::string path) : path_(std::move(path)) {}
    ~FileSink() override { close(); }

    bool open(Clock::time_point, std::string &why) override
    {
        close();
        if (path_ == "-") {
            fd_ = STDOUT_FILENO;
            return true;
        }
        int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        struct stat st {};
        if (fd < 0 || ::fstat(fd, &st) != 0) {
            why = "open " + path_ + ": " + errstr(errno);
            if (fd >= 0)
                ::close(fd);
            return false;
        }
        fd_ = fd;
        dev_ = st.st_dev;
        ino_ = st.st_ino;
        return true;
    }
    void close() override
    {
        if (fd_ > STDERR_FILENO)
            ::close(fd_);
        fd_ = -1;
    }
    bool is_open() const override { return fd_ >= 0; }

    WriteResult write(std::string_view msg, Clock::time_point deadline, std::string &why) override
    {
        if (path_ != "-") {
            struct stat st {};
            if (::stat(path_.c_str(), &st) != 0 || st.st_dev != dev_ || st.st_ino != ino_) {
                // Rotated (moved away or removed): continue in a new file.
                if (!open(deadline, why))
                    return WriteResult::broken;
            }
        }
        std::string line(msg);
        line += '\n';
        uint64_t written = 0;
        auto r = write_all(fd_, line, false, deadline, abort, written, why);
        if (r != WriteResult::ok)
            why = path_ + ": " + why;
        return r;
    }

private:
    std::string path_;
    int fd_ = -1;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
};

bool valid_port(const std::string &p)
{
    if (p.empty() || p.size() > 5 || !std::all_of(p.begin(), p.end(), ::isdigit))
        return false;
    int v = std::stoi(p);
    return v >= 1 && v <= 65535;
}

}  // namespace

std::shared_ptr<SSL_CTX> make_tls_context(const OutputConfig &cfg)
{
    ERR_clear_error();
    std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
    if (!ctx)
        throw Error("TLS: " + ssl_errors());
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (!cfg.ca_file.empty()) {
        if (SSL_CTX_load_verify_locations(ctx.get(), cfg.ca_file.c_str(), nullptr) != 1)
            throw Error("ca_file " + cfg.ca_file + ": " + ssl_errors());
    } else if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
        throw Error("TLS: the system CA store: " + ssl_errors());
    }
    if (cfg.cert_file.empty() != cfg.key_file.empty())
        throw Error("cert_file and key_file go together");
    if (!cfg.cert_file.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx.get(), cfg.cert_file.c_str()) != 1)
            throw Error("cert_file " + cfg.cert_file + ": " + ssl_errors());
        if (SSL_CTX_use_PrivateKey_file(ctx.get(), cfg.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
            throw Error("key_file " + cfg.key_file + ": " + ssl_errors());
        if (SSL_CTX_check_private_key(ctx.get()) != 1)
            throw Error("key_file " + cfg.key_file + " does not match cert_file " + cfg.cert_file);
    }
    return ctx;
}

std::string resolve_problem(const HostPort &hp, Transport t)
{
    std::string why;
    resolve(hp, t == Transport::udp ? SOCK_DGRAM : SOCK_STREAM, why);
    return why;
}

}  // namespace exf::output::detail

namespace exf::output {

const char *default_port(Transport t) { return t == Transport::tls ? "6514" : "514"; }

HostPort parse_host_port(const std::string &address, const char *default_port)
{
    HostPort hp;
    if (!address.empty() && address[0] == '[') {
        size_t close = address.find(']');
        if (close == std::string::npos)
            throw Error("address " + address + ": missing ']'");
        hp.host = address.substr(1, close - 1);
        std::string rest = address.substr(close + 1);
        if (rest.empty())
            hp.port = default_port;
        else if (rest[0] == ':')
            hp.port = rest.substr(1);
        else
            throw Error("address " + address + ": expected [host]:port");
    } else if (std::count(address.begin(), address.end(), ':') == 1) {
        size_t colon = address.find(':');
        hp.host = address.substr(0, colon);
        hp.port = address.substr(colon + 1);
    } else {
        hp.host = address;  // a name, an IPv4 or a bare IPv6 address
        hp.port = default_port;
    }
    if (hp.host.empty())
        throw Error("address '" + address + "': no host");
    // All digits and dots is an IPv4 address or nothing: no host name
    // ends in a numeric label, and a resolver would only fail at run time.
    if (hp.host.find_first_not_of("0123456789.") == std::string::npos && !detail::is_ip(hp.host))
        throw Error("address " + address + ": " + hp.host + " is not an IPv4 address");
    if (!detail::valid_port(hp.port))
        throw Error("address " + address + ": bad port '" + hp.port + "'");
    return hp;
}

}  // namespace exf::output

namespace exf::output::detail {

std::unique_ptr<Sink> make_sink(const OutputConfig &cfg)
{
    if (cfg.type == OutputType::json) {
        std::string path = cfg.path.empty() ? "-" : cfg.path;
        auto sink = std::make_unique<FileSink>(path);
        std::string why;
        if (!sink->open(Clock::now(), why))
            throw Error("json output " + why);
        return sink;
    }
    switch (cfg.transport) {
    case Transport::unix_socket: {
        // make_output checked the path's length (check_output).
        return std::make_unique<UnixSink>(cfg.address.empty() ? "/dev/log" : cfg.address);
    }
    case Transport::udp:
        return std::make_unique<UdpSink>(parse_host_port(cfg.address, default_port(cfg.transport)));
    case Transport::tcp:
        return std::make_unique<StreamSink>(
            parse_host_port(cfg.address, default_port(cfg.transport)), nullptr, "");
    case Transport::tls: {
        HostPort hp = parse_host_port(cfg.address, default_port(cfg.transport));
        auto ctx = make_tls_context(cfg);
        std::string name = cfg.server_name.empty() ? hp.host : cfg.server_name;
        return std::make_unique<StreamSink>(std::move(hp), std::move(ctx), std::move(name));
    }
    }
    throw Error("unknown transport");
}

}  // namespace exf::output::detail
