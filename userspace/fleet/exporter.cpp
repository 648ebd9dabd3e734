// SPDX-License-Identifier: Apache-2.0
#include "fleet/exporter.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "common/files.h"

namespace exf::fleet {

namespace fs = std::filesystem;

namespace {

constexpr const char *kSuffix = ".jsonl";

uint64_t wall_ms()
{
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// Writes the file under a temporary name, syncs it and renames it: a crash
// leaves the old file, or none, never half of one.
bool write_atomically(const fs::path &path, const std::string &text, std::string &why)
{
    fs::path tmp = path;
    tmp += ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0;
    for (size_t done = 0; ok && done < text.size();) {
        ssize_t n = ::write(fd, text.data() + done, text.size() - done);
        ok = n > 0;
        done += ok ? size_t(n) : 0;
    }
    ok = ok && ::fsync(fd) == 0;
    if (fd >= 0)
        ::close(fd);
    ok = ok && ::rename(tmp.c_str(), path.c_str()) == 0;
    if (!ok) {
        why = "spool " + path.string() + ": " + std::strerror(errno);
        ::unlink(tmp.c_str());
    }
    return ok;
}

}  // namespace

Exporter::Exporter(const FleetConfig &cfg, ExporterOptions opts)
    : opts_(std::move(opts)), ch_(cfg), backoff_(opts_.backoff_min),
      delivery_log_("delivery", "periods are kept and sent when it works again")
{
    if (opts_.spool_dir.empty())
        return;
    std::error_code ec;
    fs::create_directories(opts_.spool_dir, ec);
    if (ec)
        throw Error("fleet spool " + opts_.spool_dir.string() + ": " + ec.message());
    fs::permissions(opts_.spool_dir, fs::perms::owner_all, ec);
    load_spool();
}

Exporter::~Exporter()
{
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable())
        thread_.join();
}

void Exporter::start()
{
    if (!thread_.joinable())
        thread_ = std::thread([this] { run(); });
}

fs::path Exporter::file_of(uint64_t period_start_ms) const
{
    return opts_.spool_dir / (std::to_string(period_start_ms) + kSuffix);
}

void Exporter::remove_file(uint64_t period_start_ms) const
{
    std::error_code ec;
    if (!opts_.spool_dir.empty())
        fs::remove(file_of(period_start_ms), ec);
}

// Batches an earlier run left, oldest first; torn temporary files go.
void Exporter::load_spool()
{
    std::vector<uint64_t> periods;
    for (auto &e : fs::directory_iterator(opts_.spool_dir)) {
        std::string name = e.path().filename().string();
        uint64_t start = 0;
        auto [end, err] = std::from_chars(name.data(), name.data() + name.size(), start);
        if (err == std::errc() && std::string_view(end) == kSuffix)
            periods.push_back(start);
        else if (name.ends_with(".tmp"))
            fs::remove(e.path());
    }
    std::sort(periods.begin(), periods.end());
    for (uint64_t p : periods)
        queue_.push_back({p, read_whole_file(file_of(p)), true, 0});
    stats_.spool_depth = queue_.size();
    if (!queue_.empty())
        spdlog::info("fleet: {} periods left in {} from an earlier run are sent first",
                     queue_.size(), opts_.spool_dir.string());
    drop_oldest_over_limit();
}

void Exporter::submit(uint64_t period_start_ms, std::string rows)
{
    {
        std::lock_guard lk(mu_);
        auto same = std::find_if(queue_.begin(), queue_.end(), [&](const Batch &b) {
            return b.period_start_ms == period_start_ms;
        });
        if (same != queue_.end()) {
            same->rows = std::move(rows);
            same->on_disk = false;
            same->generation++;
        } else {
            queue_.push_back({period_start_ms, std::move(rows), false, 0});
        }
        drop_oldest_over_limit();
        stats_.spool_depth = queue_.size();
    }
    wake_.notify_one();
}

// With mu_ held. The batch being sent (the front, while sending_) stays.
void Exporter::drop_oldest_over_limit()
{
    while (queue_.size() > std::max<size_t>(opts_.max_batches, 1)) {
        auto victim = queue_.begin() + (sending_ ? 1 : 0);
        if (victim == queue_.end())
            break;
        remove_file(victim->period_start_ms);
        queue_.erase(victim);
        if (stats_.dropped_batches++ == 0 || stats_.dropped_batches % 1000 == 0)
            spdlog::warn("fleet: the spool holds {} periods at most: the oldest are dropped ({} "
                         "so far)",
                         opts_.max_batches, stats_.dropped_batches);
    }
}

// With mu_ held: a batch waits in memory that the spool can take now (after
// a failed write, the next try is with the next send).
bool Exporter::unspooled() const
{
    return !opts_.spool_dir.empty() && !spool_failing_ &&
           std::any_of(queue_.begin(), queue_.end(), [](const Batch &b) { return !b.on_disk; });
}

bool Exporter::next_batch(Batch &b, std::chrono::steady_clock::time_point retry_at, bool &send)
{
    std::unique_lock lk(mu_);
    for (;;) {
        if (stopping_)
            return false;
        send = !queue_.empty() && std::chrono::steady_clock::now() >= retry_at;
        // A batch submitted during a backoff goes to disk at once, not at
        // the next try.
        if (send || unspooled())
            break;
        if (queue_.empty())
            wake_.wait(lk);
        else
            wake_.wait_until(lk, retry_at);
    }
    if (send) {
        b = queue_.front();
        sending_ = true;
    }
    return true;
}

// Every batch not yet on disk goes there, before the oldest is sent: what
// waits survives a restart.
void Exporter::spool_pending()
{
    if (opts_.spool_dir.empty())
        return;
    std::vector<Batch> pending;
    {
        std::lock_guard lk(mu_);
        for (const auto &b : queue_)
            if (!b.on_disk)
                pending.push_back(b);
    }
    for (const auto &b : pending) {
        std::string why;
        bool ok = write_atomically(file_of(b.period_start_ms), b.rows, why);
        std::lock_guard lk(mu_);
        spool_failing_ = !ok;
        if (!ok) {
            if (stats_.spool_write_errors++ == 0)
                spdlog::warn("fleet: {}; periods wait in memory", why);
            return;
        }
        bool still_queued = false;
        for (auto &q : queue_)
            if (q.period_start_ms == b.period_start_ms) {
                still_queued = true;
                q.on_disk = q.on_disk || q.generation == b.generation;
            }
        if (!still_queued)  // dropped while it was being written
            remove_file(b.period_start_ms);
    }
}

void Exporter::delivered(const Batch &b)
{
    std::lock_guard lk(mu_);
    sending_ = false;
    stats_.batches_sent++;
    stats_.rows_sent += std::count(b.rows.begin(), b.rows.end(), '\n');
    stats_.bytes_sent += b.rows.size();
    stats_.last_success_ms = wall_ms();
    delivery_log_.succeeded();
    stats_.last_error.clear();
    backoff_ = opts_.backoff_min;
    // Replaced while it was in flight: the new rows go next.
    if (queue_.front().generation == b.generation) {
        remove_file(b.period_start_ms);
        queue_.pop_front();
    }
    stats_.spool_depth = queue_.size();
    if (queue_.empty())
        idle_.notify_all();
}

void Exporter::failed(const std::string &why)
{
    std::lock_guard lk(mu_);
    sending_ = false;
    stats_.failures++;
    delivery_log_.failed(why);
    stats_.last_error = why;
}

void Exporter::run()
{
    auto retry_at = std::chrono::steady_clock::now();
    Batch b;
    bool send = false;
    while (next_batch(b, retry_at, send)) {
        spool_pending();
        if (!send)
            continue;
        Reply r = ch_.insert_json_rows(ch_.database() + ".traffic", b.rows);
        if (r.ok()) {
            delivered(b);
            continue;
        }
        failed(r.why);
        retry_at = std::chrono::steady_clock::now() + backoff_;
        backoff_ = std::min(backoff_ * 2, opts_.backoff_max);
    }
}

bool Exporter::durable(uint64_t period_start_ms) const
{
    std::lock_guard lk(mu_);
    for (const auto &b : queue_)
        if (b.period_start_ms == period_start_ms)
            return b.on_disk;
    return true;
}

ExportStats Exporter::stats() const
{
    std::lock_guard lk(mu_);
    return stats_;
}

bool Exporter::drain(std::chrono::milliseconds timeout)
{
    std::unique_lock lk(mu_);
    return idle_.wait_for(lk, timeout, [&] { return queue_.empty() && !sending_; });
}

}  // namespace exf::fleet
