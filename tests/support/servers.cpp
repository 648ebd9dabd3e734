// SPDX-License-Identifier: Apache-2.0
#include "support/servers.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "support/test_env.h"

namespace exf::test {

namespace {

std::atomic<unsigned> g_curl_counter{0};

std::string read_file(const std::filesystem::path &p)
{
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_file(const std::filesystem::path &p, const std::string &text)
{
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out)
        throw Error("cannot write " + p.string());
}

std::vector<std::string> split(const std::string &s, char sep)
{
    std::vector<std::string> out;
    size_t start = 0;
    for (;;) {
        auto at = s.find(sep, start);
        out.push_back(s.substr(start, at - start));
        if (at == std::string::npos)
            return out;
        start = at + 1;
    }
}

std::vector<std::string> lines_of(const std::string &text)
{
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        out.push_back(line);
    return out;
}

uint64_t to_u64(const std::string &s, const std::string &what)
{
    if (s.empty() || s == "-")
        return 0;
    if (s.find_first_not_of("0123456789") != std::string::npos)
        throw Error("not a number in " + what + ": \"" + s + "\"");
    return std::stoull(s);
}

bool is_ipv6(const std::string &addr) { return addr.find(':') != std::string::npos; }

// sockaddr for addr:port (IPv4 or IPv6 literal).
socklen_t make_sockaddr(const std::string &addr, uint16_t port, sockaddr_storage &ss)
{
    std::memset(&ss, 0, sizeof(ss));
    if (is_ipv6(addr)) {
        auto *s6 = reinterpret_cast<sockaddr_in6 *>(&ss);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        if (inet_pton(AF_INET6, addr.c_str(), &s6->sin6_addr) != 1)
            throw Error("bad IPv6 address " + addr);
        return sizeof(sockaddr_in6);
    }
    auto *s4 = reinterpret_cast<sockaddr_in *>(&ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    if (inet_pton(AF_INET, addr.c_str(), &s4->sin_addr) != 1)
        throw Error("bad IPv4 address " + addr);
    return sizeof(sockaddr_in);
}

// A TCP socket created in ns ("" = this thread's namespace); it stays there.
int tcp_socket_in(const std::string &ns, const std::string &addr)
{
    auto make = [&] {
        int fd = socket(is_ipv6(addr) ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            throw_errno("socket", errno);
        return fd;
    };
    return ns.empty() ? make() : in_netns(ns, make);
}

std::string where(const std::string &ns) { return ns.empty() ? "the test's namespace" : ns; }

}  // namespace

std::string tail_of(const std::filesystem::path &p, size_t max)
{
    auto text = read_file(p);
    if (text.size() > max)
        text = "..." + text.substr(text.size() - max);
    return text;
}

namespace {

// Items of /v1/items until the document has at least `bytes` bytes.
std::string make_items_json(size_t bytes)
{
    std::string s = "{\"items\":[";
    static const char *const kTags[] = {"\"red\"", "\"green\"", "\"blue\"", "\"cyan\""};
    for (unsigned i = 1;; i++) {
        char item[200];
        std::snprintf(item, sizeof(item),
                      "%s{\"id\":%u,\"sku\":\"EXF-%06u\",\"name\":\"item %04u\","
                      "\"price_cents\":%u,\"tags\":[%s]}",
                      i == 1 ? "" : ",", i, i * 7919u % 1000000u, i, 100u + i * 37u % 9000u,
                      kTags[i % 4]);
        s += item;
        if (s.size() + 40 >= bytes || i > 100000)
            break;
    }
    s += "],\"next\":null}\n";
    return s;
}

// The events of /v1/stream: "data: {\"delta\":\"...\"}\n\n", `bytes` each,
// words of generated-looking text (letters and spaces only: nginx's echo
// directive would read '$' as a variable).
std::vector<std::string> make_stream_events(int count, size_t bytes)
{
    static const char *const kWords[] = {"model", "answer", "token", "stream", "vector",
                                         "the",   "of",     "api",   "delta",  "result"};
    const std::string head = "data: {\"delta\":\"", tail = "\"}\n\n";
    size_t text_bytes = bytes > head.size() + tail.size() ? bytes - head.size() - tail.size() : 1;
    std::vector<std::string> events;
    for (int e = 0; e < count; e++) {
        std::string text;
        for (unsigned w = unsigned(e) + 1; text.size() < text_bytes; w = w * 1103515245u + 12345u)
            text += std::string(kWords[(w >> 8) % 10]) + ' ';
        text.resize(text_bytes);
        events.push_back(head + text + tail);
    }
    return events;
}

// Debian's nginx-light brings it (libnginx-mod-http-echo).
const char *const kNginxEchoModule = "/usr/lib/nginx/modules/ngx_http_echo_module.so";

// location = /v1/stream: each event echoed and flushed on its own, so that
// each leaves as it is written (an HTTP/1.1 chunk, an HTTP/2 DATA frame).
std::string stream_location(const std::vector<std::string> &events)
{
    if (events.empty())
        return "";
    std::string loc = "    location = /v1/stream { default_type text/event-stream; ";
    for (auto &e : events) {
        std::string escaped;
        for (char ch : e)
            escaped += ch == '\n'  ? std::string("\\n")
                       : ch == '"' ? std::string("\\\"")
                                   : std::string(1, ch);
        loc += "echo -n \"" + escaped + "\"; echo_flush; ";
    }
    return loc + "}\n";
}

void write_random_file(const std::filesystem::path &p, uint64_t size, uint64_t seed)
{
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    std::mt19937_64 rng(seed);
    std::vector<uint64_t> buf(8192);
    uint64_t left = size;
    while (left > 0) {
        for (auto &w : buf)
            w = rng();
        uint64_t n = std::min<uint64_t>(left, buf.size() * sizeof(uint64_t));
        out.write(reinterpret_cast<const char *>(buf.data()), std::streamsize(n));
        left -= n;
    }
    out.close();
    if (!out)
        throw Error("cannot write " + p.string());
}

}  // namespace

// ---- certificates -----------------------------------------------------------

TestPki make_test_pki(Lab &lab, const std::filesystem::path &dir,
                      const std::vector<std::string> &dns_names,
                      const std::vector<std::string> &ip_addrs)
{
    if (dns_names.empty() && ip_addrs.empty())
        throw Error("make_test_pki: no names");
    std::filesystem::create_directories(dir);
    TestPki pki;
    pki.ca_cert = dir / "ca.pem";
    pki.ca_key = dir / "ca.key";
    pki.cert = dir / "server.pem";
    pki.key = dir / "server.key";
    pki.dns_names = dns_names;
    pki.ip_addrs = ip_addrs;
    std::string san;
    for (auto &n : dns_names)
        san += (san.empty() ? "DNS:" : ",DNS:") + n;
    for (auto &a : ip_addrs)
        san += (san.empty() ? "IP:" : ",IP:") + a;
    // A private config: nothing from /etc/ssl/openssl.cnf.
    auto cnf = dir / "openssl.cnf";
    write_file(cnf, "[req]\n"
                    "distinguished_name = dn\n"
                    "prompt = no\n"
                    "[dn]\n"
                    "CN = exfilmon test CA\n"
                    "[v3_ca]\n"
                    "basicConstraints = critical,CA:TRUE\n"
                    "keyUsage = critical,keyCertSign,cRLSign\n"
                    "subjectKeyIdentifier = hash\n"
                    "[v3_leaf]\n"
                    "basicConstraints = critical,CA:FALSE\n"
                    "keyUsage = critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage = serverAuth,clientAuth\n"
                    "subjectKeyIdentifier = hash\n"
                    "authorityKeyIdentifier = keyid\n"
                    "subjectAltName = " +
                        san + "\n");
    const std::vector<std::string> newkey = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                                             "-nodes"};
    auto with = [](std::vector<std::string> a, const std::vector<std::string> &b) {
        a.insert(a.end(), b.begin(), b.end());
        return a;
    };
    lab.run_ok("",
               with({"openssl", "req", "-x509", "-config", cnf.string(), "-extensions", "v3_ca",
                     "-days", "2", "-keyout", pki.ca_key.string(), "-out", pki.ca_cert.string()},
                    newkey));
    auto csr = dir / "server.csr";
    std::string cn = dns_names.empty() ? ip_addrs.front() : dns_names.front();
    lab.run_ok("", with({"openssl", "req", "-new", "-config", cnf.string(), "-subj", "/CN=" + cn,
                         "-keyout", pki.key.string(), "-out", csr.string()},
                        newkey));
    std::random_device rd;
    char serial[32];
    std::snprintf(serial, sizeof(serial), "0x%08x%08x", rd(), rd());
    lab.run_ok("", {"openssl", "x509", "-req", "-in", csr.string(), "-CA", pki.ca_cert.string(),
                    "-CAkey", pki.ca_key.string(), "-set_serial", serial, "-days", "2", "-extfile",
                    cnf.string(), "-extensions", "v3_leaf", "-out", pki.cert.string()});
    lab.run_ok("", {"openssl", "verify", "-CAfile", pki.ca_cert.string(), pki.cert.string()});
    return pki;
}

// ---- plain TCP helpers ------------------------------------------------------

uint16_t free_tcp_port(const std::string &ns, const std::string &addr)
{
    int fd = tcp_socket_in(ns, addr);
    sockaddr_storage ss;
    socklen_t len = make_sockaddr(addr, 0, ss);
    if (bind(fd, reinterpret_cast<sockaddr *>(&ss), len) != 0) {
        int e = errno;
        close(fd);
        throw_errno("bind " + addr + ":0 in " + where(ns), e);
    }
    len = sizeof(ss);
    getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &len);
    close(fd);
    return ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6 *>(&ss)->sin6_port)
                                    : ntohs(reinterpret_cast<sockaddr_in *>(&ss)->sin_port);
}

bool tcp_connects(const std::string &ns, const std::string &addr, uint16_t port,
                  std::chrono::milliseconds timeout)
{
    int fd = tcp_socket_in(ns, addr);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    sockaddr_storage ss;
    socklen_t len = make_sockaddr(addr, port, ss);
    int rc = connect(fd, reinterpret_cast<sockaddr *>(&ss), len);
    int err = rc == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        int r;
        do
            r = poll(&p, 1, int(timeout.count()));
        while (r < 0 && errno == EINTR);
        if (r == 0) {
            close(fd);
            return false;  // nobody answered: not accepting
        }
        socklen_t el = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
    }
    close(fd);
    if (err == 0)
        return true;
    if (err == ECONNREFUSED || err == ETIMEDOUT)
        return false;
    throw_errno("connect " + addr + ":" + std::to_string(port) + " from " + where(ns), err);
}

void wait_listening_while_running(Lab &lab, const std::string &ns, uint16_t port, int count,
                                  Process &proc, const std::filesystem::path &log,
                                  std::chrono::milliseconds timeout)
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        try {
            lab.wait_listening(ns, port, count, 0ms);
            return;
        } catch (const Error &) {}
        if (!proc.running())
            throw Error("`" + proc.name() + "` exited with status " +
                        std::to_string(proc.status()) + " before listening on port " +
                        std::to_string(port) + ": " + tail_of(log));
        if (std::chrono::steady_clock::now() > deadline)
            throw Error("`" + proc.name() + "` not listening on port " + std::to_string(port) +
                        " in " + where(ns) + " after " + std::to_string(timeout.count()) +
                        " ms: " + tail_of(log));
        std::this_thread::sleep_for(20ms);
    }
}

// ---- nginx access log -------------------------------------------------------

const char *const kNginxLogFormat =
    "$remote_addr\\t$remote_port\\t$server_addr\\t$server_port\\t$ssl_server_name\\t"
    "$ssl_protocol\\t$request_method\\t$request_uri\\t$status\\t$bytes_sent\\t"
    "$body_bytes_sent\\t$request_length\\t$connection\\t$connection_requests\\t$pid\\t$msec";

std::vector<AccessRecord> parse_access_log(const std::filesystem::path &file)
{
    std::vector<AccessRecord> out;
    size_t lineno = 0;
    for (auto &line : lines_of(read_file(file))) {
        lineno++;
        if (line.empty())
            continue;
        auto f = split(line, '\t');
        std::string what = file.string() + ":" + std::to_string(lineno);
        if (f.size() != 16)
            throw Error(what + ": " + std::to_string(f.size()) + " fields, want 16: " + line);
        auto text = [](const std::string &s) { return s == "-" ? std::string() : s; };
        AccessRecord r;
        r.client = text(f[0]);
        r.client_port = uint16_t(to_u64(f[1], what));
        r.server = text(f[2]);
        r.server_port = uint16_t(to_u64(f[3], what));
        r.sni = text(f[4]);
        r.tls_protocol = text(f[5]);
        r.method = text(f[6]);
        r.path = text(f[7]);
        r.status = int(to_u64(f[8], what));
        r.bytes_sent = to_u64(f[9], what);
        r.body_bytes_sent = to_u64(f[10], what);
        r.request_length = to_u64(f[11], what);
        r.connection = to_u64(f[12], what);
        r.connection_requests = to_u64(f[13], what);
        r.pid = pid_t(to_u64(f[14], what));
        r.msec = f[15] == "-" ? 0 : std::stod(f[15]);
        out.push_back(std::move(r));
    }
    return out;
}

std::map<std::string, ClientTotals> totals_by_client(const std::vector<AccessRecord> &records)
{
    std::map<std::string, ClientTotals> out;
    for (auto &r : records) {
        auto &t = out[r.client];
        t.requests++;
        t.bytes_sent += r.bytes_sent;
        t.body_bytes_sent += r.body_bytes_sent;
        t.request_length += r.request_length;
        t.client_ports.insert(r.client_port);
        t.snis.insert(r.sni);
    }
    return out;
}

// ---- NginxServer ------------------------------------------------------------

NginxServer::NginxServer(Lab &lab, std::string ns, NginxOptions opts)
    : lab_(lab), ns_(std::move(ns)), opts_(std::move(opts)), dir_(lab.dir() / opts_.name)
{
    if (opts_.ports.empty())
        throw Error("NginxServer: no ports");
    namespace fs = std::filesystem;
    fs::create_directories(dir_ / "www" / "v1");
    fs::create_directories(dir_ / "www" / "download");
    fs::create_directories(dir_ / "uploads" / "upload");
    fs::create_directories(dir_ / "tmp");
    if (!opts_.pki)
        opts_.pki = make_test_pki(lab_, dir_ / "pki", opts_.host_names, {"127.0.0.1", "::1"});

    items_json_ = make_items_json(opts_.items_json_bytes);
    write_file(dir_ / "www" / "v1" / "items.json", items_json_);
    write_file(dir_ / "www" / "v1" / "status.json", std::string(kStatusJson));
    auto events = make_stream_events(opts_.stream_events, opts_.stream_event_bytes);
    for (auto &e : events)
        stream_body_ += e;
    uint64_t seed = 1;
    for (auto &[name, size] : opts_.downloads) {
        if (name.empty() || name.find('/') != std::string::npos)
            throw Error("NginxServer: bad download name \"" + name + "\"");
        write_random_file(dir_ / "www" / "download" / name, size, seed++);
    }

    auto d = [&](const char *sub) { return (dir_ / sub).string(); };
    std::ostringstream c;
    c << "# generated by exf::test::NginxServer\n";
    if (opts_.workers > 0)
        c << "master_process on;\nworker_processes " << opts_.workers << ";\nuser root root;\n";
    else
        c << "master_process off;\nworker_processes 1;\n";
    if (!events.empty())
        c << "load_module " << kNginxEchoModule << ";\n";
    c << "pid " << d("nginx.pid") << ";\n"
      << "error_log " << d("error.log") << " info;\n"
      << "events { worker_connections 4096; }\n"
      << "http {\n"
      << "  default_type application/octet-stream;\n"
      << "  types { application/json json; }\n"
      << "  client_body_temp_path " << d("tmp/body") << ";\n"
      << "  proxy_temp_path " << d("tmp/proxy") << ";\n"
      << "  fastcgi_temp_path " << d("tmp/fastcgi") << ";\n"
      << "  uwsgi_temp_path " << d("tmp/uwsgi") << ";\n"
      << "  scgi_temp_path " << d("tmp/scgi") << ";\n"
      << "  log_format exf '" << kNginxLogFormat << "';\n"
      << "  access_log " << d("access.log") << " exf;\n"
      << "  keepalive_timeout 65;\n"
      << "  keepalive_requests 10000;\n"
      << "  server_tokens off;\n";
    if (opts_.gzip)
        c << "  gzip on;\n  gzip_types application/json;\n  gzip_min_length 0;\n"
          << "  gzip_buffers 16 1k;\n";
    c << "  server {\n";
    for (auto port : opts_.ports) {
        const char *h2 = opts_.http2 ? " http2" : "";
        c << "    listen " << port << " ssl" << h2 << " default_server;\n";
        if (opts_.ipv6)
            c << "    listen [::]:" << port << " ssl" << h2 << " default_server;\n";
    }
    c << "    server_name";
    for (auto &h : opts_.host_names)
        c << ' ' << h;
    c << ";\n"
      << "    ssl_certificate " << opts_.pki->cert.string() << ";\n"
      << "    ssl_certificate_key " << opts_.pki->key.string() << ";\n"
      << "    ssl_protocols " << opts_.tls_protocols << ";\n"
      << "    root " << d("www") << ";\n"
      << "    location = /v1/items { default_type application/json; "
         "try_files /v1/items.json =404; }\n"
      << "    location = /v1/status { default_type application/json; "
         "try_files /v1/status.json =404; }\n"
      << "    location /download/ { }\n"
      << stream_location(events);
    if (opts_.slow_rate)
        c << "    location /slow/ { alias " << d("www") << "/download/; limit_rate "
          << opts_.slow_rate << "; }\n";
    c << "    location /upload/ { root " << d("uploads") << "; dav_methods PUT; "
      << "create_full_put_path on; dav_access user:rw; client_max_body_size 0; }\n"
      << "  }\n"
      << "}\n";
    auto conf = dir_ / "nginx.conf";
    write_file(conf, c.str());

    auto out = dir_ / "nginx.out";
    proc_ = &lab_.spawn(ns_,
                        {"/usr/sbin/nginx", "-e", d("error.log"), "-p", dir_.string(), "-c",
                         conf.string(), "-g", "daemon off;"},
                        SpawnOptions{dir_, out});
    try {
        for (auto port : opts_.ports)
            wait_listening_while_running(lab_, ns_, port, opts_.ipv6 ? 2 : 1, *proc_,
                                         error_log_path(), 20s);
    } catch (const Error &e) {
        proc_->stop(SIGKILL, 1s);
        throw Error(std::string(e.what()) + "\nnginx output: " + tail_of(out));
    }
}

NginxServer::~NginxServer()
{
    try {
        stop(5s);
    } catch (...) {}
}

int NginxServer::stop(std::chrono::milliseconds grace)
{
    return proc_ ? proc_->stop(SIGTERM, grace) : -1;
}

bool NginxServer::running() { return proc_ && proc_->running(); }

std::string NginxServer::url(const std::string &host, const std::string &path, uint16_t port)
{
    std::string h = is_ipv6(host) && host.front() != '[' ? "[" + host + "]" : host;
    return "https://" + h + (port == 443 ? "" : ":" + std::to_string(port)) + path;
}

uint64_t NginxServer::download_size(const std::string &name) const
{
    auto it = opts_.downloads.find(name);
    if (it == opts_.downloads.end())
        throw Error("NginxServer: no download " + name);
    return it->second;
}

bool NginxServer::wait_for_requests(size_t n, std::chrono::milliseconds timeout) const
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (access_log().size() >= n)
            return true;
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(20ms);
    }
}

// ---- curl -------------------------------------------------------------------

bool CurlResult::ok() const
{
    if (status != 0 || transfers.size() != expected)
        return false;
    for (auto &t : transfers)
        if (!t.ok())
            return false;
    return true;
}

uint64_t CurlResult::body_bytes() const
{
    uint64_t n = 0;
    for (auto &t : transfers)
        n += t.size_download;
    return n;
}

uint64_t CurlResult::header_bytes() const
{
    uint64_t n = 0;
    for (auto &t : transfers)
        n += t.size_header;
    return n;
}

uint64_t CurlResult::upload_bytes() const
{
    uint64_t n = 0;
    for (auto &t : transfers)
        n += t.size_upload;
    return n;
}

namespace {

constexpr std::string_view kCurlMark = "EXFCURL\t";

// "https://HOST[:PORT]/..." -> (HOST, PORT); HOST without brackets.
std::pair<std::string, uint16_t> host_port_of(const std::string &url)
{
    auto scheme = url.find("://");
    if (scheme == std::string::npos)
        throw Error("bad URL " + url);
    std::string rest = url.substr(scheme + 3);
    rest = rest.substr(0, rest.find('/'));
    uint16_t port = url.rfind("http://", 0) == 0 ? 80 : 443;
    std::string host = rest;
    if (!rest.empty() && rest.front() == '[') {
        auto close_b = rest.find(']');
        host = rest.substr(1, close_b - 1);
        if (close_b + 1 < rest.size() && rest[close_b + 1] == ':')
            port = uint16_t(std::stoi(rest.substr(close_b + 2)));
    } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
        host = rest.substr(0, colon);
        port = uint16_t(std::stoi(rest.substr(colon + 1)));
    }
    return {host, port};
}

std::vector<std::string> curl_argv(const CurlJob &job)
{
    std::vector<std::string> a = {
        "curl",       "-sS", job.http2 ? "--http2" : "--http1.1", "--connect-timeout", "20",
        "--max-time", "600"};
    if (job.ca_cert.empty())
        a.push_back("-k");
    else
        a.insert(a.end(), {"--cacert", job.ca_cert.string()});
    if (!job.source.empty())
        a.insert(a.end(), {"--interface", job.source});
    if (!job.server.empty()) {
        std::set<std::string> seen;
        std::string srv = is_ipv6(job.server) ? "[" + job.server + "]" : job.server;
        for (auto &u : job.urls) {
            auto [host, port] = host_port_of(u);
            std::string r = host + ":" + std::to_string(port) + ":" + srv;
            if (seen.insert(r).second)
                a.insert(a.end(), {"--resolve", r});
        }
    }
    if (job.parallel > 1) {
        a.insert(a.end(), {"--parallel", "--parallel-max", std::to_string(job.parallel)});
        if (job.parallel_immediate)
            a.push_back("--parallel-immediate");
    }
    a.insert(a.end(), {"-w", std::string(kCurlMark) +
                                 "%{url_effective}\t%{http_code}\t%{exitcode}\t%{size_download}\t"
                                 "%{size_header}\t%{size_upload}\t%{size_request}\t%{local_ip}\t"
                                 "%{local_port}\t%{remote_ip}\t%{remote_port}\t%{errormsg}\n"});
    a.insert(a.end(), job.extra_args.begin(), job.extra_args.end());
    for (auto &u : job.urls) {
        a.insert(a.end(), {"-o", "/dev/null"});
        if (!job.upload.empty())
            a.insert(a.end(), {"-T", job.upload.string()});
        a.push_back(u);
    }
    return a;
}

std::vector<CurlTransfer> parse_curl_output(const std::string &text)
{
    std::vector<CurlTransfer> out;
    for (auto &line : lines_of(text)) {
        auto at = line.find(kCurlMark);
        if (at == std::string::npos)
            continue;
        auto f = split(line.substr(at + kCurlMark.size()), '\t');
        if (f.size() < 12)
            throw Error("bad curl report line: " + line);
        CurlTransfer t;
        t.url = f[0];
        t.http_code = int(to_u64(f[1], "curl http_code"));
        t.exitcode = int(to_u64(f[2], "curl exitcode"));
        t.size_download = to_u64(f[3], "curl size_download");
        t.size_header = to_u64(f[4], "curl size_header");
        t.size_upload = to_u64(f[5], "curl size_upload");
        t.size_request = to_u64(f[6], "curl size_request");
        t.local_ip = f[7];
        t.local_port = uint16_t(to_u64(f[8], "curl local_port"));
        t.remote_ip = f[9];
        t.remote_port = uint16_t(to_u64(f[10], "curl remote_port"));
        t.error = f[11];
        out.push_back(std::move(t));
    }
    return out;
}

}  // namespace

std::vector<CurlResult> run_curls(Lab &lab, const std::vector<CurlJob> &jobs,
                                  std::chrono::milliseconds timeout)
{
    struct Running {
        Process *proc;
        std::filesystem::path out;
    };
    std::vector<Running> running;
    for (auto &job : jobs) {
        auto out = lab.dir() / ("curl-" + std::to_string(++g_curl_counter) + ".out");
        running.push_back({&lab.spawn(job.ns, curl_argv(job), SpawnOptions{{}, out}), out});
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<CurlResult> results;
    for (size_t i = 0; i < jobs.size(); i++) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        CurlResult r;
        r.status = running[i].proc->wait(std::max(left, std::chrono::milliseconds(1)));
        r.expected = jobs[i].urls.size();
        r.output = read_file(running[i].out);
        r.transfers = parse_curl_output(r.output);
        results.push_back(std::move(r));
    }
    return results;
}

CurlResult run_curl(Lab &lab, const CurlJob &job, std::chrono::milliseconds timeout)
{
    return run_curls(lab, {job}, timeout).front();
}

// ---- RsyslogServer ----------------------------------------------------------

RsyslogServer::RsyslogServer(Lab &lab, RsyslogOptions opts)
    : lab_(lab), opts_(std::move(opts)), dir_(lab.dir() / opts_.name)
{
    namespace fs = std::filesystem;
    fs::create_directories(dir_ / "work");
    if (opts_.port == 0)
        opts_.port = free_tcp_port(opts_.ns, opts_.address);
    if (opts_.tls) {
        if (opts_.tls_port == 0) {
            do
                opts_.tls_port = free_tcp_port(opts_.ns, opts_.address);
            while (opts_.tls_port == opts_.port);
        }
        if (!opts_.pki)
            opts_.pki = make_test_pki(lab_, dir_ / "pki", {"syslog.example.com"}, {opts_.address});
    }
    auto q = [](const fs::path &p) { return "\"" + p.string() + "\""; };
    std::ostringstream c;
    c << "# generated by exf::test::RsyslogServer: no imuxsock, no imklog\n"
      << "global(workDirectory=" << q(dir_ / "work") << " processInternalMessages=\"on\"";
    if (opts_.tls)
        c << "\n       defaultNetstreamDriverCAFile=" << q(opts_.pki->ca_cert)
          << "\n       defaultNetstreamDriverCertFile=" << q(opts_.pki->cert)
          << "\n       defaultNetstreamDriverKeyFile=" << q(opts_.pki->key);
    c << ")\n"
      // One worker: messages are written in the order they arrived (per
      // connection), so tests can check delivery order.
      << "main_queue(queue.workerThreads=\"1\")\n"
      << "module(load=\"imtcp\" maxSessions=\"1000\")\n"
      << "template(name=\"exf_raw\" type=\"string\" string=\"%rawmsg%\\n\")\n"
      << "ruleset(name=\"exf_in\") {\n"
      << "  action(type=\"omfile\" file=" << q(messages_path())
      << " template=\"exf_raw\" flushOnTXEnd=\"on\" asyncWriting=\"off\")\n"
      << "}\n"
      << "input(type=\"imtcp\" address=\"" << opts_.address << "\" port=\"" << opts_.port
      << "\" ruleset=\"exf_in\")\n";
    if (opts_.tls)
        c << "input(type=\"imtcp\" address=\"" << opts_.address << "\" port=\"" << opts_.tls_port
          << "\" ruleset=\"exf_in\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" "
             "streamDriver.authMode=\"anon\")\n";
    c << "*.* action(type=\"omfile\" file=" << q(internal_log_path()) << ")\n";
    write_file(config_path(), c.str());
    auto check = lab_.run(opts_.ns, {"/usr/sbin/rsyslogd", "-N1", "-f", config_path().string()});
    if (!check.ok() || check.output.find("error") != std::string::npos)
        throw Error("rsyslogd -N1 rejects " + config_path().string() + ": " + check.output);
}

RsyslogServer::~RsyslogServer()
{
    try {
        stop(5s);
    } catch (...) {}
}

void RsyslogServer::start(std::chrono::milliseconds timeout)
{
    if (running())
        throw Error("rsyslogd already running");
    auto pidfile = dir_ / "rsyslogd.pid";
    std::filesystem::remove(pidfile);  // a stale one (SIGKILL) would stop it
    auto out = dir_ / ("rsyslogd-" + std::to_string(++starts_) + ".out");
    proc_ = &lab_.spawn(
        opts_.ns,
        {"/usr/sbin/rsyslogd", "-n", "-f", config_path().string(), "-i", pidfile.string()},
        SpawnOptions{dir_, out});
    try {
        wait_listening_while_running(lab_, opts_.ns, opts_.port, 1, *proc_, out, timeout);
        if (opts_.tls)
            wait_listening_while_running(lab_, opts_.ns, opts_.tls_port, 1, *proc_, out, timeout);
    } catch (const Error &e) {
        proc_->stop(SIGKILL, 1s);
        throw Error(std::string(e.what()) +
                    "\nrsyslogd internal log: " + tail_of(internal_log_path()));
    }
}

int RsyslogServer::stop(std::chrono::milliseconds grace)
{
    if (!proc_)
        return -1;
    int st = proc_->stop(SIGTERM, grace);
    proc_ = nullptr;
    return st;
}

bool RsyslogServer::running() { return proc_ && proc_->running(); }

std::vector<std::string> RsyslogServer::messages() const
{
    return lines_of(read_file(messages_path()));
}

bool RsyslogServer::wait_for_messages(
    const std::function<bool(const std::vector<std::string> &)> &pred,
    std::chrono::milliseconds timeout) const
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (pred(messages()))
            return true;
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(20ms);
    }
}

bool RsyslogServer::wait_for_count(size_t n, std::chrono::milliseconds timeout) const
{
    return wait_for_messages([n](const std::vector<std::string> &m) { return m.size() >= n; },
                             timeout);
}

// ---- syslog clients ---------------------------------------------------------

std::string rfc5424(const std::string &msg, const std::string &app, const std::string &msgid,
                    int facility, int severity, const std::string &host, const std::string &sd)
{
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    tm t{};
    gmtime_r(&ts.tv_sec, &t);
    char stamp[128];
    std::snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", t.tm_year + 1900,
                  t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec / 1000);
    return "<" + std::to_string(facility * 8 + severity) + ">1 " + stamp + " " + host + " " + app +
           " " + std::to_string(getpid()) + " " + msgid + " " + sd + " " + msg;
}

namespace {
std::string frame(const std::vector<std::string> &messages, bool octet_counted)
{
    std::string data;
    for (auto &m : messages)
        data += octet_counted ? std::to_string(m.size()) + " " + m : m + "\n";
    return data;
}
}  // namespace

void send_syslog_tcp(const std::string &ns, const std::string &addr, uint16_t port,
                     const std::vector<std::string> &messages, bool octet_counted)
{
    int fd = tcp_socket_in(ns, addr);
    sockaddr_storage ss;
    socklen_t len = make_sockaddr(addr, port, ss);
    std::string to = addr + ":" + std::to_string(port) + " from " + where(ns);
    if (connect(fd, reinterpret_cast<sockaddr *>(&ss), len) != 0) {
        int e = errno;
        close(fd);
        throw_errno("connect " + to, e);
    }
    std::string data = frame(messages, octet_counted);
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = errno;
            close(fd);
            throw_errno("send to " + to, e);
        }
        off += size_t(n);
    }
    // Orderly close: FIN after the data; wait for the server's FIN (it
    // closes once it has read everything) so nothing is lost to a RST.
    shutdown(fd, SHUT_WR);
    pollfd p{fd, POLLIN, 0};
    char buf[256];
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline && poll(&p, 1, 100) >= 0) {
        if (p.revents && read(fd, buf, sizeof(buf)) <= 0)
            break;
    }
    close(fd);
}

void send_syslog_tls(Lab &lab, const std::string &ns, const std::string &addr, uint16_t port,
                     const std::filesystem::path &ca_cert, const std::vector<std::string> &messages,
                     bool octet_counted)
{
    auto in = lab.dir() / ("syslog-tls-" + std::to_string(++g_curl_counter) + ".in");
    write_file(in, frame(messages, octet_counted));
    std::string target = is_ipv6(addr) ? "[" + addr + "]:" + std::to_string(port)
                                       : addr + ":" + std::to_string(port);
    // -quiet implies -ign_eof; -no_ign_eof: close (close_notify) at the
    // end of the input.
    lab.run_ok(ns,
               {"sh", "-c",
                "exec openssl s_client -connect \"$1\" -CAfile \"$2\" -verify_return_error "
                "-verify_ip \"$3\" -quiet -no_ign_eof < \"$4\"",
                "send_syslog_tls", target, ca_cert.string(), addr, in.string()},
               60s);
}

}  // namespace exf::test
