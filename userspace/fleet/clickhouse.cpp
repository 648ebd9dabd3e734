// SPDX-License-Identifier: Apache-2.0
#include "fleet/clickhouse.h"

#include <httplib.h>

#include <algorithm>
#include <regex>

#include "common/error.h"
#include "common/files.h"

namespace exf::fleet {

namespace {

// ClickHouse's answer to an error starts "Code: N, e.displayText() = ...".
int exception_code(const std::string &body)
{
    static const std::regex code(R"(^Code: (\d+))");
    std::smatch m;
    return std::regex_search(body, m, code) ? std::stoi(m[1]) : 0;
}

std::string first_line(const std::string &s)
{
    auto end = s.find('\n');
    return s.substr(0, std::min<size_t>(end, 300));
}

// Codes of 18.16 and current releases: 81 unknown database, 60 unknown
// table, 193 wrong password, 192 unknown user, 516 authentication failed,
// 159 max_execution_time exceeded.
constexpr int kTimeoutExceeded = 159;

Failure classify(int status, int code)
{
    if (code == 81 || code == 60)
        return Failure::no_schema;
    if (status == 401 || status == 403 || code == 192 || code == 193 || code == 516)
        return Failure::authentication;
    return Failure::refused;
}

std::string explain(Failure f, const std::string &url, const std::string &user,
                    const std::string &answer)
{
    switch (f) {
    case Failure::authentication:
        return "ClickHouse at " + url + " refused user '" + user + "' (" + answer +
               "): check [fleet] user and password_file";
    case Failure::no_schema:
        return "ClickHouse at " + url + " has no exfilmon schema (" + answer +
               "): run exfilmon fleet init --config FILE";
    default: return "ClickHouse at " + url + " refused the request: " + answer;
    }
}

// cpp-httplib's names ("Connection", "Read") as a sentence would say them.
std::string describe(httplib::Error e)
{
    switch (e) {
    case httplib::Error::Connection: return "connection refused or no route";
    case httplib::Error::ConnectionTimeout: return "connection timed out";
    case httplib::Error::Read: return "no answer (read failed or timed out)";
    case httplib::Error::Write: return "the request could not be sent";
    case httplib::Error::SSLConnection: return "TLS handshake failed";
    case httplib::Error::SSLLoadingCerts: return "the CA or client certificate could not be loaded";
    case httplib::Error::SSLServerVerification:
        return "the server's certificate does not verify (check [fleet] ca_file)";
    default: return httplib::to_string(e);
    }
}

}  // namespace

std::string clickhouse_url_problem(const std::string &url)
{
    static const std::regex form(
        R"(^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:(\d{1,5}))?/?$)");
    std::smatch m;
    if (!std::regex_match(url, m, form))
        return "expected http://HOST[:PORT] or https://HOST[:PORT]";
    if (m[3].matched) {
        long port = std::stol(m[3]);
        if (port < 1 || port > 65535)
            return "port " + std::string(m[3]) + " is outside 1..65535";
    }
    return "";
}

std::string read_password_file(const std::string &path)
{
    if (auto why = writable_by_others(path); !why.empty())
        throw Error("[fleet] password_file " + path + ": " + why);
    std::string pw;
    try {
        pw = read_whole_file(path);
    } catch (const Error &e) {
        throw Error(std::string("[fleet] password_file ") + e.what());
    }
    while (!pw.empty() && (pw.back() == '\n' || pw.back() == '\r'))
        pw.pop_back();
    return pw;
}

ClickHouse::ClickHouse(const FleetConfig &cfg)
    : ClickHouse(cfg, std::chrono::milliseconds(cfg.timeout_ms))
{}

ClickHouse::ClickHouse(const FleetConfig &cfg, std::chrono::milliseconds timeout)
    : url_(cfg.clickhouse), user_(cfg.user), database_(cfg.database)
{
    if (auto why = clickhouse_url_problem(url_); !why.empty())
        throw Error("[fleet] clickhouse '" + url_ + "': " + why);
    if (url_.back() == '/')
        url_.pop_back();
    if (!cfg.password_file.empty())
        password_ = read_password_file(cfg.password_file);
    if (url_.starts_with("https://") && !cfg.cert_file.empty())
        http_ = std::make_unique<httplib::Client>(url_, cfg.cert_file, cfg.key_file);
    else
        http_ = std::make_unique<httplib::Client>(url_);
    if (!cfg.ca_file.empty())
        http_->set_ca_cert_path(cfg.ca_file.c_str());
    http_->enable_server_certificate_verification(true);
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout);
    auto usecs = std::chrono::duration_cast<std::chrono::microseconds>(timeout - secs);
    max_execution_s_ = std::max<long long>(1, secs.count());
    http_->set_connection_timeout(secs.count(), usecs.count());
    http_->set_read_timeout(secs.count(), usecs.count());
    http_->set_write_timeout(secs.count(), usecs.count());
    http_->set_keep_alive(true);
    // A request's headers and body go out in two writes: with Nagle's
    // algorithm the body waits for the server's delayed ACK of the
    // headers, 40 ms per statement.
    http_->set_tcp_nodelay(true);
}

ClickHouse::~ClickHouse() = default;

Reply ClickHouse::post(const std::string &path, const std::string &body)
{
    httplib::Headers headers = {{"X-ClickHouse-User", user_}};
    if (!password_.empty())
        headers.emplace("X-ClickHouse-Key", password_);
    auto res = http_->Post(path.c_str(), headers, body, "text/plain");
    Reply r;
    if (!res) {
        r.failure = Failure::unreachable;
        r.why = res.error() == httplib::Error::Read
                    ? "ClickHouse at " + url_ + " gave no answer within " + timeout_text() +
                          ": the server is slower than that or stopped answering"
                    : "cannot reach ClickHouse at " + url_ + ": " + describe(res.error()) +
                          " (is it running? check [fleet] clickhouse)";
        return r;
    }
    r.status = res->status;
    r.body = res->body;
    if (res->status == 200)
        return r;
    int code = exception_code(res->body);
    r.failure = classify(res->status, code);
    r.why = code == kTimeoutExceeded
                ? "ClickHouse at " + url_ + " stopped a statement at " + timeout_text()
                : explain(r.failure, url_, user_,
                          "HTTP " + std::to_string(res->status) + ": " + first_line(res->body));
    return r;
}

std::string ClickHouse::timeout_text() const
{
    return std::to_string(max_execution_s_) +
           " s ([fleet] timeout; raise it for a large fleet: docs/fleet.md, \"Sizing\")";
}

Reply ClickHouse::query(const std::string &sql)
{
    return post("/?max_execution_time=" + std::to_string(max_execution_s_), sql);
}

Reply ClickHouse::insert_json_rows(const std::string &table, const std::string &rows)
{
    // The statement travels in the URL, the rows in the body.
    std::string path = "/?query=" + httplib::detail::encode_query_param("INSERT INTO " + table +
                                                                        " FORMAT JSONEachRow");
    return post(path, rows);
}

}  // namespace exf::fleet
