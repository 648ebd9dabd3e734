// SPDX-License-Identifier: Apache-2.0
#pragma once
// The Prometheus endpoint: GET /metrics answers in text format 0.0.4
// (snapshot.h render_metrics) from the last MetricsSnapshot the daemon's
// main loop published. The HTTP server (cpp-httplib) runs on its own
// threads and reads only that copy, under a mutex: never the daemon's
// single-threaded state.
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "control/snapshot.h"

namespace httplib {
class Server;
}

namespace exf::control {

class MetricsServer {
public:
    // Binds host:port (an address literal); throws exf::Error when it cannot
    // bind (address in use, not local). Serves from start() on: binding may
    // need privileges, the serving threads must not inherit them.
    MetricsServer(const std::string &host, uint16_t port);
    ~MetricsServer();  // stops the server and joins its thread
    void start();
    MetricsServer(const MetricsServer &) = delete;
    MetricsServer &operator=(const MetricsServer &) = delete;

    void publish(MetricsSnapshot s);
    uint16_t port() const { return port_; }

private:
    std::string render() const;
    std::unique_ptr<httplib::Server> server_;
    std::thread thread_;
    uint16_t port_ = 0;
    mutable std::mutex mu_;
    MetricsSnapshot snap_;
    bool published_ = false;
};

}  // namespace exf::control
