// SPDX-License-Identifier: Apache-2.0
#pragma once
// ClickHouse over its HTTP interface (cpp-httplib): one statement per
// request, the body a query or the rows of an INSERT. Failures are
// classified, so that a caller can tell "fix the configuration" (exit 2)
// from "the server is away" (retry) and print the fix.
#include <chrono>
#include <memory>
#include <string>

#include "fleet/fleet_config.h"

namespace httplib {
class Client;
}

namespace exf::fleet {

enum class Failure : uint8_t {
    none,
    unreachable,     // no connection, a timeout, TLS: the server may come back
    authentication,  // the user or password is refused
    no_schema,       // the database or a table is missing: `exfilmon fleet init`
    refused,         // the server answered with another error
};

struct Reply {
    Failure failure = Failure::none;
    int status = 0;    // HTTP status; 0 when no answer came
    std::string body;  // the answer (the server's message on an error)
    std::string why;   // a sentence naming what failed and the fix; "" when ok
    bool ok() const { return failure == Failure::none; }
};

// A configuration error (exit 2): authentication, a missing or other schema.
inline bool is_configuration_failure(Failure f)
{
    return f == Failure::authentication || f == Failure::no_schema;
}

class ClickHouse {
public:
    // Throws exf::Error when the URL is not http(s)://HOST[:PORT] or the
    // password file cannot be read (naming the file and key). Every
    // query() carries max_execution_time of the timeout's whole seconds (at
    // least 1): a read this client gives up on is stopped by the server
    // too, rather than left running beside its retries. The timeout is
    // [fleet] timeout unless given.
    explicit ClickHouse(const FleetConfig &cfg);
    ClickHouse(const FleetConfig &cfg, std::chrono::milliseconds timeout);
    ~ClickHouse();
    ClickHouse(const ClickHouse &) = delete;
    ClickHouse &operator=(const ClickHouse &) = delete;

    // Runs one statement; the result's body is the server's answer.
    Reply query(const std::string &sql);
    // INSERT INTO table FORMAT JSONEachRow with these rows (one JSON object
    // per line). ClickHouse takes a batch whole or not at all.
    Reply insert_json_rows(const std::string &table, const std::string &rows);

    const std::string &url() const { return url_; }
    const std::string &database() const { return database_; }

private:
    Reply post(const std::string &path, const std::string &body);
    std::string timeout_text() const;  // the timeout, and the key that sets it

    std::string url_, user_, password_, database_;
    long long max_execution_s_ = 1;
    std::unique_ptr<httplib::Client> http_;
};

// "https://h:8443" and friends: "" when `url` is usable, else the problem.
std::string clickhouse_url_problem(const std::string &url);
// The password file's content without its final newline. Throws exf::Error
// when it is unreadable or writable by others.
std::string read_password_file(const std::string &path);

}  // namespace exf::fleet
