// SPDX-License-Identifier: Apache-2.0
// Alert outputs against real local collectors: UDP, TCP (octet counting),
// unix datagram and stream sockets, TLS with a throwaway CA, and JSON files;
// delivery guarantees (collector down then up, connection closed mid-stream,
// full spool, spool file across restarts). Loopback only; every wait has a
// generous timeout and ends as soon as its condition holds.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "output/output.h"
#include "output/spool.h"
#include "output/transport.h"
#include "support/test_env.h"

using namespace exf;
using namespace exf::output;
using exf::test::require;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

struct TempDir {
    fs::path path;
    TempDir()
    {
        char tmpl[] = "/tmp/exf-output-test-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~TempDir()
    {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 30s)
{
    auto end = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > end)
            return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

std::string hex_id(int i)
{
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016x", i);
    return buf;
}

detect::AlertRecord alert(int i)
{
    detect::AlertRecord a;
    a.time_ms = 1795435200123 + static_cast<uint64_t>(i);
    a.host = "edge-1";
    a.id = hex_id(i);
    a.rule = "client-bulk-pull";
    a.severity = detect::Severity::critical;
    a.entity_kind = "client";
    a.entity = "203.0.113.7";
    a.client = "203.0.113.7";
    a.metric = "bytes_out";
    a.window_ms = 600000;
    a.value = 2254857830;
    a.threshold = 2147483648;
    a.bytes_out = 2254857830;
    a.top_snis = {{"api.example.com", 2000000000}};
    a.first_seen_ms = 1795434600000;
    a.opened_ms = 1795435200123;
    a.count = 1;
    return a;
}

// The alert id in an RFC 5424 message; "" when none.
std::string id_of(const std::string &msg)
{
    size_t p = msg.find(" id=\"");
    return p == std::string::npos ? "" : msg.substr(p + 5, 16);
}

std::vector<std::string> ids(int from, int to)
{
    std::vector<std::string> v;
    for (int i = from; i < to; i++)
        v.push_back(hex_id(i));
    return v;
}

std::vector<std::string> ids_of(const std::vector<std::string> &msgs)
{
    std::vector<std::string> v;
    for (const auto &m : msgs)
        v.push_back(id_of(m));
    return v;
}

std::string rfc5424(int i)
{
    return format_rfc5424(alert(i), 16, "exfilmon", static_cast<int>(::getpid()));
}

OutputConfig syslog_config(Transport t, const std::string &address)
{
    OutputConfig c;
    c.type = OutputType::syslog;
    c.transport = t;
    c.address = address;
    c.format = Format::rfc5424;
    c.origin = "test";
    return c;
}

// A datagram receiver (UDP on loopback or a unix socket).
struct DgramReceiver {
    int fd = -1;
    uint16_t port = 0;

    explicit DgramReceiver(int family = AF_INET)
    {
        fd = ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        if (family == AF_INET) {
            sockaddr_in sa{};
            sa.sin_family = AF_INET;
            sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            REQUIRE(::bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa) == 0);
            socklen_t len = sizeof sa;
            ::getsockname(fd, reinterpret_cast<sockaddr *>(&sa), &len);
            port = ntohs(sa.sin_port);
        }
    }
    explicit DgramReceiver(const fs::path &path)
    {
        fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa) == 0);
    }
    ~DgramReceiver() { ::close(fd); }

    // The next datagram; "" after 20 s without one.
    std::string recv()
    {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 20000) != 1)
            return "";
        char buf[65536];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
    }
};

// A TCP (or TLS) syslog collector on 127.0.0.1: bound at construction, so
// connections are refused until start(); parses octet-counted frames.
class Collector {
public:
    explicit Collector(SSL_CTX *tls = nullptr) : tls_(tls)
    {
        lfd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(lfd_ >= 0);
        int one = 1;
        ::setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(lfd_, reinterpret_cast<sockaddr *>(&sa), sizeof sa) == 0);
        socklen_t len = sizeof sa;
        ::getsockname(lfd_, reinterpret_cast<sockaddr *>(&sa), &len);
        port = ntohs(sa.sin_port);
    }
    ~Collector()
    {
        stop_ = true;
        if (thread_.joinable())
            thread_.join();
        ::close(lfd_);
    }

    void start()
    {
        REQUIRE(::listen(lfd_, 16) == 0);
        thread_ = std::thread([this] { run(); });
    }

    std::string address() const { return "127.0.0.1:" + std::to_string(port); }

    std::vector<std::string> messages() const
    {
        std::lock_guard lk(mu_);
        return msgs_;
    }
    size_t count() const
    {
        std::lock_guard lk(mu_);
        return msgs_.size();
    }
    int connections() const { return connections_; }
    int handshake_failures() const { return handshake_failures_; }
    bool framing_error() const { return framing_error_; }

    // Closes the current connection (after reading what it has) and returns
    // once it is closed; the collector keeps accepting.
    void close_connection()
    {
        std::unique_lock lk(mu_);
        drop_ = true;
        cv_.wait(lk, [&] { return !drop_; });
    }

    uint16_t port = 0;

private:
    void run()
    {
        while (!stop_) {
            pollfd p{lfd_, POLLIN, 0};
            if (::poll(&p, 1, 50) != 1)
                continue;
            int cfd = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (cfd < 0)
                continue;
            timeval tv{5, 0};
            ::setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            SSL *ssl = nullptr;
            if (tls_) {
                ssl = SSL_new(tls_);
                SSL_set_fd(ssl, cfd);
                if (SSL_accept(ssl) != 1) {
                    handshake_failures_++;
                    ERR_clear_error();
                    SSL_free(ssl);
                    ::close(cfd);
                    continue;
                }
            }
            connections_++;
            serve(cfd, ssl);
            if (ssl)
                SSL_free(ssl);
            ::close(cfd);
            std::lock_guard lk(mu_);
            drop_ = false;
            cv_.notify_all();
        }
    }

    void serve(int cfd, SSL *ssl)
    {
        std::string buf;
        while (!stop_) {
            {
                std::lock_guard lk(mu_);
                if (drop_)
                    return;
            }
            if (!(ssl && SSL_pending(ssl) > 0)) {
                pollfd p{cfd, POLLIN, 0};
                if (::poll(&p, 1, 20) != 1)
                    continue;
            }
            char tmp[16384];
            ssize_t n = ssl ? SSL_read(ssl, tmp, sizeof tmp) : ::recv(cfd, tmp, sizeof tmp, 0);
            if (n <= 0)
                return;
            buf.append(tmp, static_cast<size_t>(n));
            // "LEN SP MSG"
            for (;;) {
                size_t sp = buf.find(' ');
                if (sp == std::string::npos)
                    break;
                if (sp == 0 || sp > 9 || buf.find_first_not_of("0123456789") != sp) {
                    framing_error_ = true;
                    return;
                }
                size_t len = std::stoul(buf.substr(0, sp));
                if (buf.size() < sp + 1 + len)
                    break;
                std::lock_guard lk(mu_);
                msgs_.push_back(buf.substr(sp + 1, len));
                buf.erase(0, sp + 1 + len);
            }
        }
    }

    SSL_CTX *tls_;
    int lfd_ = -1;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::atomic<int> connections_{0}, handshake_failures_{0};
    std::atomic<bool> framing_error_{false};
    mutable std::mutex mu_;
    std::condition_variable cv_;
    bool drop_ = false;
    std::vector<std::string> msgs_;
};

// A throwaway CA and a server certificate for collector.test and 127.0.0.1,
// plus an unrelated CA.
struct TestPki {
    TempDir dir;
    std::string ca, other_ca, cert, key;
    bool ok = false;

    TestPki()
    {
        auto p = [&](const char *f) { return (dir.path / f).string(); };
        ca = p("ca.pem");
        other_ca = p("other-ca.pem");
        cert = p("server.pem");
        key = p("server.key");
        std::ofstream(p("ext.cnf")) << "subjectAltName=DNS:collector.test,IP:127.0.0.1\n"
                                       "basicConstraints=CA:FALSE\n";
        std::string d = dir.path.string();
        std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        std::string cmd =
            "cd " + d + " && " + "openssl req -x509 " + ec +
            " -keyout ca.key -out ca.pem -subj /CN=exf-test-ca -days 2 && " + "openssl req -x509 " +
            ec + " -keyout other.key -out other-ca.pem -subj /CN=exf-other-ca -days 2 && " +
            "openssl req " + ec +
            " -keyout server.key -out server.csr -subj /CN=collector.test && " +
            "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
            "-out server.pem -days 2 -extfile ext.cnf";
        ok = std::system((cmd + " >" + d + "/log 2>&1").c_str()) == 0;
    }

    std::shared_ptr<SSL_CTX> server_ctx() const
    {
        std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
        REQUIRE(SSL_CTX_use_certificate_chain_file(ctx.get(), cert.c_str()) == 1);
        REQUIRE(SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM) == 1);
        return ctx;
    }
};

}  // namespace

TEST_CASE("Output addresses", "[output]")
{
    CHECK(parse_host_port("127.0.0.1:6514", "1").host == "127.0.0.1");
    CHECK(parse_host_port("127.0.0.1:6514", "1").port == "6514");
    CHECK(parse_host_port("[2001:db8::1]:514", "1").host == "2001:db8::1");
    CHECK(parse_host_port("[2001:db8::1]:514", "1").port == "514");
    CHECK(parse_host_port("2001:db8::1", "6514").host == "2001:db8::1");
    CHECK(parse_host_port("collector.example.com", "6514").port == "6514");
    CHECK_THROWS_AS(parse_host_port("127.0.0.1:99999", "1"), Error);
    CHECK_THROWS_AS(parse_host_port("127.0.0.1:", "1"), Error);
    CHECK_THROWS_AS(parse_host_port(":514", "1"), Error);
    CHECK_THROWS_AS(parse_host_port("[::1", "1"), Error);
    // A dotted quad is an IPv4 address or nothing (no resolver is asked).
    CHECK_THROWS_WITH(parse_host_port("256.1.1.1:514", "1"),
                      "address 256.1.1.1:514: 256.1.1.1 is not an IPv4 address");
    CHECK(parse_host_port("10.1.2.3:514", "1").host == "10.1.2.3");
    CHECK(parse_host_port("2001.example:514", "1").host == "2001.example");

    CHECK_THROWS_AS(make_output(syslog_config(Transport::tcp, "127.0.0.1:x")), Error);
    auto tls = syslog_config(Transport::tls, "127.0.0.1:6514");
    tls.ca_file = "/nonexistent/ca.pem";
    CHECK_THROWS_AS(make_output(tls), Error);
    // What check-config reports for it, at its key.
    auto problems = check_output(tls, false);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].key == "ca_file");
    CHECK_FALSE(problems[0].warning);
    CHECK(make_output(syslog_config(Transport::tcp, "127.0.0.1:6514"))->describe() ==
          "syslog tcp 127.0.0.1:6514 rfc5424");
}

TEST_CASE("Output UDP one datagram per alert", "[output]")
{
    DgramReceiver rx;
    auto out = make_output(syslog_config(Transport::udp, "127.0.0.1:" + std::to_string(rx.port)));
    for (int i = 0; i < 3; i++)
        out->send(alert(i));
    for (int i = 0; i < 3; i++)
        CHECK(rx.recv() == rfc5424(i));
    CHECK(out->flush(10000));
    CHECK(out->stats().sent == 3);
    CHECK(out->stats().dropped == 0);
}

TEST_CASE("Output UDP over IPv6 with RFC 3164", "[output]")
{
    int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_addr = in6addr_loopback;
    if (!require(fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof sa) == 0,
                 "no IPv6 loopback here")) {
        if (fd >= 0)
            ::close(fd);
        return;
    }
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr *>(&sa), &len);
    auto cfg = syslog_config(Transport::udp, "[::1]:" + std::to_string(ntohs(sa.sin6_port)));
    cfg.format = Format::rfc3164;
    cfg.facility = 3;
    auto out = make_output(cfg);
    out->send(alert(7));
    pollfd p{fd, POLLIN, 0};
    REQUIRE(::poll(&p, 1, 20000) == 1);
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ::close(fd);
    CHECK(std::string(buf, static_cast<size_t>(std::max<ssize_t>(n, 0))) ==
          format_rfc3164(alert(7), 3, "exfilmon", static_cast<int>(::getpid())));
}

TEST_CASE("Output unix datagram socket and its restart", "[output]")
{
    TempDir dir;
    auto path = dir.path / "log";
    auto rx = std::make_unique<DgramReceiver>(path);
    auto out = make_output(syslog_config(Transport::unix_socket, path.string()));
    out->send(alert(0));
    CHECK(rx->recv() == rfc5424(0));
    REQUIRE(eventually([&] { return out->stats().sent == 1; }));
    CHECK(out->stats().connected);

    // The receiver goes away: alerts wait, then arrive in order once it is back.
    rx.reset();
    fs::remove(path);
    out->send(alert(1));
    out->send(alert(2));
    REQUIRE(
        eventually([&] { return out->stats().write_errors + out->stats().connect_failures > 0; }));
    CHECK(out->stats().sent == 1);
    rx = std::make_unique<DgramReceiver>(path);
    CHECK(rx->recv() == rfc5424(1));
    CHECK(rx->recv() == rfc5424(2));
    CHECK(out->flush(20000));
    CHECK(out->stats().sent == 3);
    CHECK(out->stats().dropped == 0);
}

TEST_CASE("Output unix stream socket NUL-terminated", "[output]")
{
    TempDir dir;
    auto path = dir.path / "log";
    int lfd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path.c_str());
    REQUIRE(::bind(lfd, reinterpret_cast<sockaddr *>(&sa), sizeof sa) == 0);
    REQUIRE(::listen(lfd, 4) == 0);
    auto out = make_output(syslog_config(Transport::unix_socket, path.string()));
    out->send(alert(0));
    out->send(alert(1));
    pollfd p{lfd, POLLIN, 0};
    REQUIRE(::poll(&p, 1, 20000) == 1);
    int cfd = ::accept(lfd, nullptr, nullptr);
    REQUIRE(cfd >= 0);
    std::string got;
    std::string want = rfc5424(0) + '\0' + rfc5424(1) + '\0';
    while (got.size() < want.size()) {
        pollfd q{cfd, POLLIN, 0};
        if (::poll(&q, 1, 20000) != 1)
            break;
        char buf[8192];
        ssize_t n = ::recv(cfd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        got.append(buf, static_cast<size_t>(n));
    }
    CHECK(got == want);
    CHECK(out->flush(20000));
    CHECK(out->stats().sent == 2);
    ::close(cfd);
    ::close(lfd);
}

TEST_CASE("Output TCP octet counting in order", "[output]")
{
    Collector c;
    c.start();
    auto out = make_output(syslog_config(Transport::tcp, c.address()));
    for (int i = 0; i < 20; i++)
        out->send(alert(i));
    REQUIRE(eventually([&] { return c.count() >= 20; }));
    auto msgs = c.messages();
    REQUIRE(msgs.size() == 20);
    for (int i = 0; i < 20; i++)
        CHECK(msgs[static_cast<size_t>(i)] == rfc5424(i));
    CHECK(out->flush(20000));
    auto s = out->stats();
    CHECK(s.sent == 20);
    CHECK(s.queued == 20);
    CHECK(s.connected);
    CHECK(s.spooled_now == 0);
    CHECK_FALSE(c.framing_error());
}

TEST_CASE("Output TCP collector down then up", "[output]")
{
    Collector c;  // bound, not listening: connections refused
    auto out = make_output(syslog_config(Transport::tcp, c.address()));
    for (int i = 0; i < 50; i++)
        out->send(alert(i));
    REQUIRE(eventually([&] { return out->stats().connect_failures >= 1; }));
    auto s = out->stats();
    CHECK_FALSE(s.connected);
    CHECK(s.sent == 0);
    CHECK(s.spooled_now == 50);
    CHECK(s.last_error.find("Connection refused") != std::string::npos);

    c.start();
    REQUIRE(eventually([&] { return c.count() >= 50; }));
    CHECK(out->flush(20000));
    CHECK(ids_of(c.messages()) == ids(0, 50));
    CHECK(out->stats().sent == 50);
    CHECK(out->stats().dropped == 0);
}

TEST_CASE("Output TCP collector closes mid-stream", "[output]")
{
    Collector c;
    c.start();
    auto out = make_output(syslog_config(Transport::tcp, c.address()));
    for (int i = 0; i < 20; i++)
        out->send(alert(i));
    // Everything read and acknowledged, then the collector hangs up.
    REQUIRE(eventually([&] { return c.count() == 20 && out->stats().sent == 20; }));
    c.close_connection();
    for (int i = 20; i < 50; i++)
        out->send(alert(i));
    REQUIRE(eventually([&] { return c.count() >= 50; }));
    CHECK(out->flush(20000));
    auto got = ids_of(c.messages());
    CHECK(got == ids(0, 50));                                                   // all, in order
    CHECK(std::set<std::string>(got.begin(), got.end()).size() == got.size());  // no duplicate
    CHECK(c.connections() == 2);
    CHECK(out->stats().reconnects == 1);
    CHECK(out->stats().sent == 50);
}

TEST_CASE("Output full spool drops the newest", "[output]")
{
    Collector c;
    auto cfg = syslog_config(Transport::tcp, c.address());
    cfg.spool_size = 10;
    auto out = make_output(cfg);
    for (int i = 0; i < 25; i++)
        out->send(alert(i));
    auto s = out->stats();
    CHECK(s.queued == 25);
    CHECK(s.dropped == 15);
    CHECK(s.spooled_now == 10);

    c.start();
    REQUIRE(eventually([&] { return c.count() >= 10; }));
    CHECK(out->flush(20000));
    CHECK(ids_of(c.messages()) == ids(0, 10));
    CHECK(out->stats().sent == 10);
    CHECK(out->stats().dropped == 15);
}

TEST_CASE("Output spool file survives a restart", "[output]")
{
    TempDir dir;
    auto spool = dir.path / "spool";
    Collector c;
    auto cfg = syslog_config(Transport::tcp, c.address());
    cfg.spool_file = spool.string();
    {
        auto out = make_output(cfg);
        for (int i = 0; i < 5; i++)
            out->send(alert(i));
        REQUIRE(eventually([&] { return out->stats().connect_failures >= 1; }));
        CHECK_FALSE(out->flush(10));
    }  // stops after trying for a while: the collector is still down
    CHECK(fs::file_size(spool) > 0);

    c.start();
    auto out = make_output(cfg);
    CHECK(out->stats().spooled_now == 5);
    out->send(alert(5));
    REQUIRE(eventually([&] { return c.count() >= 6; }));
    CHECK(out->flush(20000));
    CHECK(ids_of(c.messages()) == ids(0, 6));
    CHECK(out->stats().sent == 6);
    CHECK(eventually([&] { return fs::file_size(spool) == 0; }));  // drained

    // Delivered alerts do not come back.
    out.reset();
    auto again = make_output(cfg);
    CHECK(again->stats().spooled_now == 0);
}

TEST_CASE("Output spool file records and a torn tail", "[output]")
{
    TempDir dir;
    auto path = dir.path / "spool";
    std::ofstream(path) << "M3\nabc\nM3\nd\nf\nA1\nM2\nxyM9\ntorn";
    {
        detail::SpoolFile f(path.string());
        auto loaded = f.take_loaded();
        CHECK(loaded == std::deque<std::string>{"d\nf"});  // 'xy' lacks its newline: torn
        std::string why;
        CHECK(f.append("ghi", why));
        CHECK(f.acked(1, why));
        CHECK(f.append("jk", why));
    }
    detail::SpoolFile again(path.string());
    CHECK(again.take_loaded() == std::deque<std::string>{"ghi", "jk"});
    std::ifstream in(path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(text == "M3\nghi\nM2\njk\n");  // rewritten at open
}

TEST_CASE("Output spool file removed behind its back is rewritten whole", "[output]")
{
    TempDir dir;
    auto spool = dir.path / "spool";
    Collector c;  // down
    auto cfg = syslog_config(Transport::tcp, c.address());
    cfg.spool_file = spool.string();
    auto out = make_output(cfg);
    for (int i = 0; i < 3; i++)
        out->send(alert(i));
    REQUIRE(eventually([&] { return fs::exists(spool) && fs::file_size(spool) > 0; }));
    // Continuing the file without its first records would mislead the next
    // start: the next append fails (ENOENT), counted; the alerts stay in
    // memory; the whole spool is written again a second later.
    fs::remove(spool);
    for (int i = 3; i < 5; i++)
        out->send(alert(i));
    REQUIRE(eventually([&] { return out->stats().spool_write_errors >= 1; }));
    CHECK(out->stats().spooled_now == 5);
    REQUIRE(eventually([&] { return out->stats().spool_file_ok; }));
    {
        fs::copy_file(spool, dir.path / "check");
        detail::SpoolFile check((dir.path / "check").string());
        std::vector<std::string> held;
        for (auto &m : check.take_loaded())
            held.push_back(id_of(m));
        CHECK(held == ids(0, 5));
    }
    c.start();
    REQUIRE(eventually([&] { return c.count() >= 5; }));
    CHECK(out->flush(20000));
    CHECK(ids_of(c.messages()) == ids(0, 5));
    CHECK(out->stats().dropped == 0);
    CHECK(eventually([&] { return fs::file_size(spool) == 0; }));
}

TEST_CASE("Output spool file in a missing directory is a configuration error", "[output]")
{
    TempDir dir;
    auto cfg = syslog_config(Transport::tcp, "127.0.0.1:9");
    cfg.spool_file = (dir.path / "no" / "such" / "spool").string();
    try {
        make_output(cfg);
        FAIL("make_output accepted a spool file in a missing directory");
    } catch (const Error &e) {
        CHECK(std::string(e.what()).find("No such file or directory") != std::string::npos);
        CHECK(std::string(e.what()).find(cfg.spool_file + ":") != std::string::npos);
        // The path configured, not the temporary file the spool writes first.
        CHECK(std::string(e.what()).find(".tmp") == std::string::npos);
    }
    CHECK(detail::transient_io_error(ENOSPC));
    CHECK(detail::transient_io_error(EROFS));
    CHECK_FALSE(detail::transient_io_error(ENOENT));
    CHECK_FALSE(detail::transient_io_error(EACCES));
}

TEST_CASE("Output TLS verifies the collector", "[output]")
{
    TestPki pki;
    REQUIRE(pki.ok);
    auto server = pki.server_ctx();

    SECTION("right CA and name deliver")
    {
        Collector c(server.get());
        c.start();
        auto cfg = syslog_config(Transport::tls, c.address());
        cfg.ca_file = pki.ca;
        cfg.server_name = "collector.test";
        auto out = make_output(cfg);
        for (int i = 0; i < 5; i++)
            out->send(alert(i));
        REQUIRE(eventually([&] { return c.count() >= 5; }));
        CHECK(out->flush(20000));
        auto msgs = c.messages();
        REQUIRE(msgs.size() == 5);
        for (int i = 0; i < 5; i++)
            CHECK(msgs[static_cast<size_t>(i)] == rfc5424(i));
        CHECK(out->stats().connected);
        CHECK(out->stats().sent == 5);
    }
    SECTION("the address's IP matches an IP SAN by default")
    {
        Collector c(server.get());
        c.start();
        auto cfg = syslog_config(Transport::tls, c.address());
        cfg.ca_file = pki.ca;
        auto out = make_output(cfg);
        out->send(alert(1));
        REQUIRE(eventually([&] { return c.count() >= 1; }));
        CHECK(out->flush(20000));
        CHECK(c.messages() == std::vector<std::string>{rfc5424(1)});
    }
    SECTION("collector down then up over TLS")
    {
        Collector c(server.get());
        auto cfg = syslog_config(Transport::tls, c.address());
        cfg.ca_file = pki.ca;
        cfg.server_name = "collector.test";
        auto out = make_output(cfg);
        for (int i = 0; i < 30; i++)
            out->send(alert(i));
        REQUIRE(eventually([&] { return out->stats().connect_failures >= 1; }));
        c.start();
        REQUIRE(eventually([&] { return c.count() >= 30; }));
        CHECK(out->flush(20000));
        CHECK(ids_of(c.messages()) == ids(0, 30));
    }
}

TEST_CASE("Output TLS refuses a wrong CA or name", "[output]")
{
    TestPki pki;
    REQUIRE(pki.ok);
    auto server = pki.server_ctx();
    struct Refusal {
        const char *what;
        bool other_ca;
        const char *name;
        const char *error;
    };
    for (const auto &r :
         {Refusal{"wrong CA", true, "collector.test", "unable to get local issuer certificate"},
          Refusal{"wrong name", false, "other.test", "hostname mismatch"}}) {
        INFO(r.what);
        Collector c(server.get());
        c.start();
        auto cfg = syslog_config(Transport::tls, c.address());
        cfg.ca_file = r.other_ca ? pki.other_ca : pki.ca;
        cfg.server_name = r.name;
        auto out = make_output(cfg);
        for (int i = 0; i < 3; i++)
            out->send(alert(i));
        REQUIRE(eventually([&] { return out->stats().connect_failures >= 2; }));
        auto s = out->stats();
        CHECK_FALSE(s.connected);
        CHECK(s.sent == 0);
        CHECK(s.spooled_now == 3);
        CHECK(s.last_error.find("certificate verification failed") != std::string::npos);
        INFO(s.last_error);
        CHECK(s.last_error.find(r.error) != std::string::npos);
        CHECK(c.count() == 0);
        CHECK(c.connections() == 0);
    }
}

TEST_CASE("Output TLS refuses to connect when OpenSSL refuses the expected name", "[output]")
{
    // A TOML string may hold "\u0000": OpenSSL refuses such a name, and
    // handing it over as a C string would check only its first part.
    TestPki pki;
    REQUIRE(pki.ok);
    auto server = pki.server_ctx();
    Collector c(server.get());
    c.start();
    auto cfg = syslog_config(Transport::tls, c.address());
    cfg.ca_file = pki.ca;
    cfg.server_name = std::string("collector.test\0.example.org", 27);
    auto out = make_output(cfg);
    out->send(alert(1));
    REQUIRE(eventually([&] { return out->stats().connect_failures >= 1; }));
    auto s = out->stats();
    INFO(s.last_error);
    CHECK(s.last_error.find(
              "OpenSSL refuses the certificate name \"collector.test\\x00.example.org\"") !=
          std::string::npos);
    CHECK(s.sent == 0);
    CHECK(c.count() == 0);
}

TEST_CASE("Output JSON file lines and rotation", "[output]")
{
    TempDir dir;
    auto path = dir.path / "alerts.json";
    OutputConfig cfg;
    cfg.type = OutputType::json;
    cfg.format = Format::json;
    cfg.path = path.string();
    auto out = make_output(cfg);
    CHECK(out->describe() == "json " + path.string());
    CHECK(out->stats().connected);
    for (int i = 0; i < 3; i++)
        out->send(alert(i));
    REQUIRE(out->flush(20000));
    auto lines = [](const fs::path &p) {
        std::vector<std::string> v;
        std::ifstream in(p);
        for (std::string l; std::getline(in, l);)
            v.push_back(l);
        return v;
    };
    auto first = lines(path);
    REQUIRE(first.size() == 3);
    for (int i = 0; i < 3; i++) {
        CHECK(first[static_cast<size_t>(i)] == format_json(alert(i)));
        CHECK(nlohmann::json::parse(first[static_cast<size_t>(i)])["event"]["id"] == hex_id(i));
    }
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    mode_t mask = ::umask(0);
    ::umask(mask);
    CHECK((st.st_mode & 0777) == (0640 & ~mask));

    // logrotate moves the file away: new alerts go to a new file.
    fs::rename(path, dir.path / "alerts.json.1");
    out->send(alert(3));
    out->send(alert(4));
    REQUIRE(out->flush(20000));
    CHECK(lines(dir.path / "alerts.json.1").size() == 3);
    auto second = lines(path);
    REQUIRE(second.size() == 2);
    CHECK(second[0] == format_json(alert(3)));
    CHECK(out->stats().sent == 5);
}
