// SPDX-License-Identifier: Apache-2.0
#include "control/metrics_server.h"

#include <httplib.h>

#include <chrono>

#include "common/addr.h"
#include "common/error.h"

namespace exf::control {

MetricsServer::MetricsServer(const std::string &host, uint16_t port)
    : server_(std::make_unique<httplib::Server>())
{
    // Two worker threads are plenty for a scrape every few seconds.
    server_->new_task_queue = [] { return new httplib::ThreadPool(2); };
    server_->set_read_timeout(5, 0);
    server_->set_write_timeout(5, 0);
    server_->set_keep_alive_max_count(10);
    server_->Get("/metrics", [this](const httplib::Request &, httplib::Response &res) {
        res.set_content(render(), "text/plain; version=0.0.4; charset=utf-8");
    });
    server_->Get("/", [](const httplib::Request &, httplib::Response &res) {
        res.set_content("exfilmon: metrics at /metrics\n", "text/plain");
    });
    if (!server_->bind_to_port(host.c_str(), port))
        throw Error("metrics: cannot listen on " + format_host_port(host, std::to_string(port)) +
                    " (address in use or not local? set [metrics] listen, or enabled = false)");
    port_ = port;
}

void MetricsServer::start()
{
    thread_ = std::thread([this] { server_->listen_after_bind(); });
}

MetricsServer::~MetricsServer()
{
    if (!thread_.joinable())
        return;
    // stop() only acts on a running server: give the thread its start.
    for (int i = 0; i < 1000 && !server_->is_running(); i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    server_->stop();
    if (thread_.joinable())
        thread_.join();
}

void MetricsServer::publish(MetricsSnapshot s)
{
    std::lock_guard lock(mu_);
    snap_ = std::move(s);
    published_ = true;
}

std::string MetricsServer::render() const
{
    MetricsSnapshot copy;
    {
        std::lock_guard lock(mu_);
        if (!published_)
            return "";  // before the first harvest
        copy = snap_;
    }
    return render_metrics(copy);
}

}  // namespace exf::control
