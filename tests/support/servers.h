// SPDX-License-Identifier: Apache-2.0
#pragma once
// Real servers and clients for end-to-end tests, run in a Lab (needs root):
//
//  - TestPki:       a throwaway CA and a server certificate made with the
//                   openssl CLI at test time (SANs for several host names).
//  - NginxServer:   Debian's nginx in a namespace, TLS on 443 (and more
//                   ports), JSON endpoints, large random downloads, PUT
//                   uploads, and a tab-separated access log that
//                   parse_access_log() reads: the server-side truth.
//  - RsyslogServer: Debian's rsyslogd on loopback TCP (and optionally TLS),
//                   writing every received message raw, one a line, to a
//                   file in the lab directory; stop / start / restart.
//  - run_curls():   many HTTPS clients from distinct source addresses, curl
//                   reporting per transfer its local port and byte counts.
//
// Everything lives under lab.dir() and dies with the Lab (processes are
// spawned through it). Declare servers after the Lab they use.
//
//   exf::test::Lab lab;
//   auto srv = lab.add_netns("srv"), cli = lab.add_netns("cli");
//   auto v = lab.add_veth(srv, cli);
//   lab.add_addr(srv, v.a, "198.51.100.1/24");
//   lab.add_addr(cli, v.b, "198.51.100.10/24");
//   NginxOptions o;
//   o.downloads = {{"5m", 5 << 20}};
//   NginxServer nginx(lab, srv, o);                          // started, listening
//   CurlJob job;                                             // one curl process
//   job.ns = cli;
//   job.source = "198.51.100.10";                            // --interface
//   job.server = "198.51.100.1";                             // --resolve target
//   job.ca_cert = nginx.ca_cert();
//   job.urls = {NginxServer::url("api.example.com", "/v1/items")};
//   auto r = run_curl(lab, job);                             // r.ok(), r.body_bytes()
//   nginx.wait_for_requests(1);
//   auto by_client = totals_by_client(nginx.access_log());
//
//   RsyslogServer rs(lab, {});                               // test's namespace
//   rs.start();                                              // listening
//   send_syslog_tcp("", "127.0.0.1", rs.port(), {rfc5424("hello")});
//   rs.wait_for_count(1);                                    // rs.messages()
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "support/netns.h"

namespace exf::test {

// ---- certificates -----------------------------------------------------------

// A CA and one server certificate it signed (EC P-256, valid two days),
// made with the openssl CLI. The server certificate names every DNS name and
// IP address given (subjectAltName), its CN is the first DNS name.
struct TestPki {
    std::filesystem::path ca_cert, ca_key;
    std::filesystem::path cert, key;  // server certificate and its key
    std::vector<std::string> dns_names, ip_addrs;
};
// Writes the files into dir (created if missing). Throws exf::Error.
TestPki make_test_pki(Lab &lab, const std::filesystem::path &dir,
                      const std::vector<std::string> &dns_names,
                      const std::vector<std::string> &ip_addrs = {});

// ---- plain TCP helpers ------------------------------------------------------

// A TCP port nobody listens on at addr in ns ("": the test's own
// namespace): bound to port 0, read back, closed.
uint16_t free_tcp_port(const std::string &ns, const std::string &addr = "127.0.0.1");
// One connect to addr:port from ns: true when accepted, false when refused
// (or timed out). Throws on other errors (no route, bad address).
bool tcp_connects(const std::string &ns, const std::string &addr, uint16_t port,
                  std::chrono::milliseconds timeout = 2s);
// Waits until `count` sockets listen on port in ns ("" allowed) while proc
// runs; throws with the content of `log` if proc exits or time runs out.
void wait_listening_while_running(Lab &lab, const std::string &ns, uint16_t port, int count,
                                  Process &proc, const std::filesystem::path &log,
                                  std::chrono::milliseconds timeout);

// The last `max` bytes of a file (a server's log, for an error message).
std::string tail_of(const std::filesystem::path &p, size_t max = 4000);

// ---- nginx ------------------------------------------------------------------

struct NginxOptions {
    // Names in the server certificate and server_name (SNI is whichever the
    // client asks for; $ssl_server_name logs it).
    std::vector<std::string> host_names = {"api.example.com", "downloads.example.com"};
    std::vector<uint16_t> ports = {443};  // TLS listeners, e.g. {443, 8443}
    bool ipv6 = true;                     // also listen on [::]:port
    bool http2 = false;                   // `listen ... ssl http2`
    // gzip JSON for clients that accept it: HTTP/1.1 responses then go out
    // chunked (no Content-Length), in nginx's output buffers as they fill.
    bool gzip = false;
    std::string tls_protocols = "TLSv1.2 TLSv1.3";
    // /download/<name>: files of random bytes of these sizes, made at start.
    std::map<std::string, uint64_t> downloads = {{"5m", 5u << 20}};
    // > 0: /slow/<name> serves the same files at most this many bytes/s per
    // connection (nginx's limit_rate, so the wire is paced too, which
    // curl's --limit-rate does not do reliably).
    uint64_t slow_rate = 0;
    // Approximate size of the /v1/items JSON document.
    size_t items_json_bytes = 1500;
    // /v1/stream: generated text streamed as server-sent events
    // (text/event-stream), `stream_events` events of `stream_event_bytes`
    // each, every one flushed on its own (HTTP/1.1: one chunk each), as an
    // API streams a model's answer. 0: no such location. Uses nginx's echo
    // module (libnginx-mod-http-echo).
    int stream_events = 0;
    size_t stream_event_bytes = 400;
    // 0: master_process off, one process serves everything. N > 0: a master
    // and N workers (running as root, so they can read the lab directory).
    int workers = 0;
    // Certificate to use; made for host_names (and IP 127.0.0.1) if unset.
    std::optional<TestPki> pki;
    // Subdirectory of lab.dir() holding config, content, logs, pid file.
    std::string name = "nginx";
};

// One access-log line (log_format "exf", tab separated). nginx writes "-"
// for an empty variable; those fields are empty/0 here.
struct AccessRecord {
    std::string client;        // $remote_addr
    uint16_t client_port = 0;  // $remote_port
    std::string server;        // $server_addr
    uint16_t server_port = 0;  // $server_port
    std::string sni;           // $ssl_server_name ("" without SNI)
    std::string tls_protocol;  // $ssl_protocol
    std::string method;        // $request_method
    std::string path;          // $request_uri (nginx-escaped)
    int status = 0;            // $status
    uint64_t bytes_sent = 0;   // $bytes_sent: response headers + body
    // $body_bytes_sent: the body, plus an interim "HTTP/1.1 100 Continue\r\n\r\n"
    // (25 bytes) when the client sent "Expect: 100-continue" (curl -T does).
    uint64_t body_bytes_sent = 0;
    uint64_t request_length = 0;  // $request_length: request line, headers, body
    uint64_t connection = 0;      // $connection (serial number)
    uint64_t connection_requests = 0;
    pid_t pid = 0;    // $pid of the worker
    double msec = 0;  // $msec: time of the log write
};

// The "exf" log_format NginxServer uses (nginx syntax, tab separated).
extern const char *const kNginxLogFormat;
// Parses a whole access log in that format; throws exf::Error on a bad line.
std::vector<AccessRecord> parse_access_log(const std::filesystem::path &file);

// Server-side truth per client address (or any key).
struct ClientTotals {
    uint64_t requests = 0;
    uint64_t bytes_sent = 0;          // sum of $bytes_sent
    uint64_t body_bytes_sent = 0;     // sum of $body_bytes_sent
    uint64_t request_length = 0;      // sum of $request_length
    std::set<uint16_t> client_ports;  // one per TCP connection
    std::set<std::string> snis;
};
std::map<std::string, ClientTotals> totals_by_client(const std::vector<AccessRecord> &records);

class NginxServer {
public:
    // Makes certificate, content and config, starts nginx in ns and waits
    // until every listener is up. Throws exf::Error (with nginx's output).
    NginxServer(Lab &lab, std::string ns, NginxOptions opts = {});
    ~NginxServer();  // stop(), never throws
    NginxServer(const NginxServer &) = delete;
    NginxServer &operator=(const NginxServer &) = delete;

    // SIGTERM (nginx: fast shutdown), waits; returns the exit status.
    int stop(std::chrono::milliseconds grace = 10s);
    bool running();
    Process &process() { return *proc_; }

    const std::string &ns() const { return ns_; }
    const NginxOptions &options() const { return opts_; }
    const TestPki &pki() const { return *opts_.pki; }
    const std::filesystem::path &ca_cert() const { return opts_.pki->ca_cert; }
    const std::filesystem::path &dir() const { return dir_; }
    std::filesystem::path access_log_path() const { return dir_ / "access.log"; }
    std::filesystem::path error_log_path() const { return dir_ / "error.log"; }
    // Where PUT /upload/<path> stores the body: uploads_dir() / "upload" / path.
    std::filesystem::path uploads_dir() const { return dir_ / "uploads"; }

    // "https://HOST[:PORT]PATH" (port omitted when 443).
    static std::string url(const std::string &host, const std::string &path, uint16_t port = 443);
    // Size of /download/<name> (throws if there is no such download).
    uint64_t download_size(const std::string &name) const;
    // Size and content of /v1/items (application/json).
    uint64_t items_size() const { return items_json_.size(); }
    const std::string &items_json() const { return items_json_; }
    // /v1/status: a small fixed JSON document.
    static constexpr std::string_view kStatusJson = "{\"status\":\"ok\"}\n";
    // Body of /v1/stream (every response the same), "" without it.
    const std::string &stream_body() const { return stream_body_; }

    std::vector<AccessRecord> access_log() const { return parse_access_log(access_log_path()); }
    // Waits until the access log holds at least n records (nginx logs a
    // request after its last byte left, possibly after the client saw it).
    bool wait_for_requests(size_t n, std::chrono::milliseconds timeout = 30s) const;

private:
    Lab &lab_;
    std::string ns_;
    NginxOptions opts_;
    std::filesystem::path dir_;
    std::string items_json_;
    std::string stream_body_;
    Process *proc_ = nullptr;
};

// ---- curl ---------------------------------------------------------------------

// One curl process: fetches urls in order (reusing connections) or, with
// parallel > 1, up to `parallel` at once (--parallel). Every host:port of
// the URLs resolves to `server` (--resolve); the source address is `source`
// (--interface). Bodies go to /dev/null (or are uploaded with PUT).
struct CurlJob {
    std::string ns;                 // client namespace ("" = test's own)
    std::string source;             // --interface ADDR ("" = kernel's choice)
    std::string server;             // address of every URL's host
    std::filesystem::path ca_cert;  // --cacert (empty: -k, no verification)
    std::vector<std::string> urls;  // https://HOST[:PORT]/PATH
    int parallel = 1;               // > 1: --parallel --parallel-max N
    // With parallel > 1: true opens a connection per transfer at once
    // (--parallel-immediate); false lets HTTP/2 transfers share one
    // connection as concurrent streams.
    bool parallel_immediate = true;
    std::filesystem::path upload;  // non-empty: -T FILE (PUT) for every URL
    bool http2 = false;            // false: --http1.1
    std::vector<std::string> extra_args;
};

// What curl reported for one transfer (-w).
struct CurlTransfer {
    std::string url;
    int http_code = 0;
    int exitcode = -1;
    std::string error;
    uint64_t size_download = 0;  // response body bytes
    uint64_t size_header = 0;    // response header bytes
    uint64_t size_upload = 0;    // request body bytes
    uint64_t size_request = 0;   // request line and header bytes
    std::string local_ip, remote_ip;
    uint16_t local_port = 0, remote_port = 0;
    bool ok() const { return exitcode == 0 && http_code >= 200 && http_code < 300; }
};

struct CurlResult {
    int status = -1;                      // curl's exit status (-1: timed out)
    std::vector<CurlTransfer> transfers;  // in completion order
    size_t expected = 0;                  // number of URLs
    std::string output;                   // everything curl printed
    // Exit 0, one report per URL and each transfer a 2xx.
    bool ok() const;
    uint64_t body_bytes() const;    // sum of size_download
    uint64_t header_bytes() const;  // sum of size_header
    uint64_t upload_bytes() const;  // sum of size_upload
};

// Runs all jobs at once (one curl process each) and waits for all.
std::vector<CurlResult> run_curls(Lab &lab, const std::vector<CurlJob> &jobs,
                                  std::chrono::milliseconds timeout = 180s);
CurlResult run_curl(Lab &lab, const CurlJob &job, std::chrono::milliseconds timeout = 180s);

// ---- rsyslog ------------------------------------------------------------------

struct RsyslogOptions {
    std::string ns;                     // "" = the test's own namespace
    std::string address = "127.0.0.1";  // listen address (a lab namespace's lo is up)
    uint16_t port = 0;                  // plain TCP (imtcp); 0: a free port
    bool tls = false;                   // also a TLS listener (gtls, anonymous clients)
    uint16_t tls_port = 0;              // 0: a free port
    // Certificate for the TLS listener; made for `address` if unset.
    std::optional<TestPki> pki;
    // Subdirectory of lab.dir() (config, work directory, logs).
    std::string name = "rsyslog";
};

// rsyslogd -n -f <conf> -i <pidfile>, with no imuxsock and no imklog (it
// touches neither /dev/log nor system files); each message received on the
// listeners is appended, raw (%rawmsg%, framing removed), as one line to
// messages_path(), in the order each connection delivered them (one queue
// worker). rsyslogd's own messages go to internal_log_path().
class RsyslogServer {
public:
    // Picks ports and writes the config (validated with rsyslogd -N1);
    // does not start.
    RsyslogServer(Lab &lab, RsyslogOptions opts = {});
    ~RsyslogServer();  // stop(), never throws
    RsyslogServer(const RsyslogServer &) = delete;
    RsyslogServer &operator=(const RsyslogServer &) = delete;

    // Starts rsyslogd and waits until its listeners are up (throws with its
    // output otherwise). Same ports and files every time: messages append.
    void start(std::chrono::milliseconds timeout = 20s);
    // SIGTERM, waits; returns the exit status (-1 when not running).
    int stop(std::chrono::milliseconds grace = 10s);
    void restart()
    {
        stop();
        start();
    }
    bool running();

    uint16_t port() const { return opts_.port; }
    uint16_t tls_port() const { return opts_.tls_port; }
    const std::string &address() const { return opts_.address; }
    const std::string &ns() const { return opts_.ns; }
    // CA of the TLS listener's certificate (empty without TLS).
    std::filesystem::path ca_cert() const { return opts_.pki ? opts_.pki->ca_cert : ""; }
    const std::filesystem::path &dir() const { return dir_; }
    std::filesystem::path config_path() const { return dir_ / "rsyslog.conf"; }
    std::filesystem::path messages_path() const { return dir_ / "messages.log"; }
    std::filesystem::path internal_log_path() const { return dir_ / "internal.log"; }

    // Lines of messages_path() (each a received message).
    std::vector<std::string> messages() const;
    // Polls messages() until pred holds; false after the timeout.
    bool wait_for_messages(const std::function<bool(const std::vector<std::string> &)> &pred,
                           std::chrono::milliseconds timeout = 20s) const;
    bool wait_for_count(size_t n, std::chrono::milliseconds timeout = 20s) const;

private:
    Lab &lab_;
    RsyslogOptions opts_;
    std::filesystem::path dir_;
    Process *proc_ = nullptr;
    unsigned starts_ = 0;
};

// An RFC 5424 message: "<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG" with
// the current UTC time (microseconds) and PRI = facility * 8 + severity.
std::string rfc5424(const std::string &msg, const std::string &app = "exftest",
                    const std::string &msgid = "-", int facility = 1, int severity = 6,
                    const std::string &host = "exf-lab", const std::string &sd = "-");
// Sends messages over one TCP connection from ns ("" = test's own) to
// addr:port, octet-counted ("LEN SP MSG", RFC 6587) or LF-terminated, then
// closes it. Throws exf::Error when it cannot connect or write.
void send_syslog_tcp(const std::string &ns, const std::string &addr, uint16_t port,
                     const std::vector<std::string> &messages, bool octet_counted = true);
// Same over TLS with `openssl s_client`, verifying the server certificate
// against ca_cert (and its IP SAN against addr).
void send_syslog_tls(Lab &lab, const std::string &ns, const std::string &addr, uint16_t port,
                     const std::filesystem::path &ca_cert, const std::vector<std::string> &messages,
                     bool octet_counted = true);

}  // namespace exf::test
