// SPDX-License-Identifier: Apache-2.0
// Writes a generated fleet (bench/fleet_rows.h) straight into ClickHouse's
// traffic table, as JSONEachRow over HTTP through the exporter's own client
// (fleet::ClickHouse) and row text (fleet::to_json_rows). Run by
// bench/fleet.sh; prints what it sent and the insert throughput.
//
//   fleet_gen --url URL --database DB --from S --to S [--sensors N]
//             [--clients N] [--pool N] [--period S]
//             [--pull BYTES_PER_10_MIN [--pull-from S]]
//             [--batch-periods N | --per-sensor]
//
// Periods [from, to) (Unix seconds, multiples of the period). An insert
// holds --batch-periods periods of every sensor (bulk history load,
// default 30), or with --per-sensor one sensor's period: what each
// exporter sends. A thread builds the rows while the main thread inserts.
// --clients 0 with --pull: the puller's rows alone (from --pull-from, default
// --from, to --to). The CPU it used per row is the exporter's cost of
// building the rows' text.
#include <sys/resource.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "fleet/clickhouse.h"
#include "fleet_rows.h"

namespace {

struct Options {
    std::string url, database = "exfilmon";
    exf::bench::FleetSpec fleet;
    uint64_t from_s = 0, to_s = 0;
    uint32_t batch_periods = 30;
    bool per_sensor = false;
};

[[noreturn]] void usage()
{
    std::fprintf(stderr,
                 "usage: fleet_gen --url URL --database DB --from S --to S [--sensors N] "
                 "[--clients N]\n                 [--pool N] [--period S] [--pull BYTES_PER_10_MIN "
                 "[--pull-from S]]\n                 [--batch-periods N | --per-sensor]\n");
    std::exit(2);
}

Options parse(int argc, char **argv)
{
    Options o;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc)
                usage();
            return argv[++i];
        };
        auto num = [&] { return std::strtoull(value().c_str(), nullptr, 10); };
        if (a == "--url")
            o.url = value();
        else if (a == "--database")
            o.database = value();
        else if (a == "--from")
            o.from_s = num();
        else if (a == "--to")
            o.to_s = num();
        else if (a == "--sensors")
            o.fleet.sensors = uint32_t(num());
        else if (a == "--clients")
            o.fleet.clients = uint32_t(num());
        else if (a == "--pool")
            o.fleet.pool = uint32_t(num());
        else if (a == "--period")
            o.fleet.period_s = uint32_t(num());
        else if (a == "--pull")
            o.fleet.pull_bytes = num();
        else if (a == "--pull-from")
            o.fleet.pull_from_s = num();
        else if (a == "--batch-periods")
            o.batch_periods = uint32_t(num());
        else if (a == "--per-sensor")
            o.per_sensor = true;
        else
            usage();
    }
    auto &f = o.fleet;
    if (o.url.empty() || !f.sensors || !f.pool || f.pool < f.clients || !f.period_s ||
        60 % f.period_s || o.from_s % f.period_s || o.to_s <= o.from_s || !o.batch_periods)
        usage();
    f.end_s = o.to_s;
    if (!f.pull_from_s)
        f.pull_from_s = o.from_s;
    return o;
}

// Batches built by one thread, inserted by another, at most two waiting.
class BatchQueue {
public:
    void push(std::string b)
    {
        std::unique_lock l(m_);
        cv_.wait(l, [&] { return q_.size() < 2; });
        q_.push_back(std::move(b));
        cv_.notify_all();
    }
    void close()
    {
        std::lock_guard l(m_);
        closed_ = true;
        cv_.notify_all();
    }
    bool pop(std::string &b)
    {
        std::unique_lock l(m_);
        cv_.wait(l, [&] { return !q_.empty() || closed_; });
        if (q_.empty())
            return false;
        b = std::move(q_.front());
        q_.pop_front();
        cv_.notify_all();
        return true;
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    std::deque<std::string> q_;
    bool closed_ = false;
};

void build(const Options &o, BatchQueue &q, uint64_t &rows)
{
    auto namer = exf::bench::fleet_namer();
    std::string batch;
    uint32_t periods = 0;
    for (uint64_t p = o.from_s; p < o.to_s; p += o.fleet.period_s) {
        for (uint32_t s = 0; s < o.fleet.sensors; s++) {
            auto r = exf::bench::period_rows(o.fleet, namer, s, p);
            rows += r.size();
            batch += exf::fleet::to_json_rows(r, exf::bench::sensor_name(s));
            if (o.per_sensor)
                q.push(std::move(batch)), batch.clear();
        }
        if (!o.per_sensor && ++periods % o.batch_periods == 0)
            q.push(std::move(batch)), batch.clear();
    }
    if (!batch.empty())
        q.push(std::move(batch));
    q.close();
}

}  // namespace

int main(int argc, char **argv)
{
    Options o = parse(argc, argv);
    exf::fleet::FleetConfig cfg;
    cfg.enabled = true;
    cfg.clickhouse = o.url;
    cfg.database = o.database;
    exf::fleet::ClickHouse ch(cfg, std::chrono::seconds(600));

    BatchQueue q;
    uint64_t rows = 0, bytes = 0, inserts = 0;
    auto t0 = std::chrono::steady_clock::now();
    std::thread builder([&] { build(o, q, rows); });
    std::string batch;
    int status = 0;
    while (q.pop(batch)) {
        auto r = ch.insert_json_rows(o.database + ".traffic", batch);
        if (!r.ok()) {
            std::fprintf(stderr, "fleet_gen: %s\n", r.why.c_str());
            status = 1;
            break;
        }
        bytes += batch.size();
        inserts++;
    }
    if (status)
        while (q.pop(batch)) {}  // let the builder finish
    builder.join();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    double cpu = double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    std::printf("FLEET_GEN rows=%llu bytes=%llu inserts=%llu seconds=%.3f rows_per_s=%.0f "
                "cpu_s=%.3f cpu_us_per_row=%.2f "
                "sensors=%u clients=%u pool=%u period_s=%u from=%llu to=%llu per_sensor=%d\n",
                (unsigned long long)rows, (unsigned long long)bytes, (unsigned long long)inserts, s,
                rows / s, cpu, rows ? cpu * 1e6 / double(rows) : 0.0, o.fleet.sensors,
                o.fleet.clients, o.fleet.pool, o.fleet.period_s, (unsigned long long)o.from_s,
                (unsigned long long)o.to_s, int(o.per_sensor));
    return status;
}
