// SPDX-License-Identifier: Apache-2.0
// The Output: a bounded in-order spool and one worker thread per output.
//
// The spool holds rendered messages oldest first. The worker writes them in
// order; a datagram or file write delivers one at once, a stream write
// leaves it in flight until the kernel says the peer acknowledged its bytes
// (transport.h). A message leaves the spool only when delivered; when a
// stream breaks, the in-flight messages are written again, first, on the
// next connection. Connection attempts back off from 100 ms doubling to 10 s;
// the backoff starts over after a connection that lasted a second or more.
#include <pthread.h>
#include <sys/un.h>
#include <unistd.h>

#include <condition_variable>
#include <csignal>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "common/files.h"
#include "common/log.h"
#include "output/output.h"
#include "output/spool.h"
#include "output/transport.h"

namespace exf::output {

namespace {

using detail::Clock;
using detail::Sink;
using detail::SpoolFile;
using detail::WriteResult;
using namespace std::chrono_literals;

constexpr auto kBackoffMin = 100ms;
constexpr auto kBackoffMax = 10s;
constexpr auto kStableConnection = 1s;  // lasted this long: the backoff starts over
constexpr auto kConnectTimeout = 10s;
constexpr auto kWriteTimeout = 30s;
constexpr auto kAckPoll = 5ms;       // while messages are in flight, doubling to
constexpr auto kAckPollMax = 200ms;  // this while no acknowledgement comes
constexpr auto kIdlePoll = 200ms;    // liveness check of an idle connection
constexpr auto kRetryBusy = 100ms;   // receiver busy (WriteResult::again)
constexpr auto kStopGrace = 2s;      // the destructor delivers for this long
constexpr auto kLogEvery = 60s;      // the same problem is logged at most this often
constexpr size_t kWriteBatch = 256;
constexpr size_t kCompactAfter = 4096;  // spool file: rewritten after this many delivered
constexpr auto kSpoolRetryMin = 1s;     // a spool file that cannot be written: tried again after
constexpr auto kSpoolRetryMax = 10s;    // this, doubling to this

using Render = std::function<std::string(const detect::AlertRecord &)>;

class QueuedOutput final : public Output {
public:
    QueuedOutput(std::unique_ptr<Sink> sink, Render render, std::string desc, uint32_t spool_size,
                 std::unique_ptr<SpoolFile> spool)
        : sink_(std::move(sink)), render_(std::move(render)), desc_(std::move(desc)),
          cap_(spool_size ? spool_size : 1), spool_(std::move(spool))
    {
        if (spool_) {
            stats_.spool_file = spool_->path();
            q_ = spool_->take_loaded();
            while (q_.size() > cap_) {
                q_.pop_back();
                stats_.dropped++;
            }
            persisted_ = q_.size();
            if (!q_.empty())
                spdlog::info("output {}: {} alerts from {} to deliver", desc_, q_.size(),
                             spool_->path());
            std::string why;
            if (!spool_->open_error().empty())
                spool_failed(spool_->open_error());
            else if (stats_.dropped && !spool_->rewrite(q_, why))
                spool_failed(why);
        }
        if (sink_->is_open()) {  // files open at once
            stats_.connected = true;
            ever_connected_ = true;
            connected_at_ = Clock::now();
        }
    }

    void start() override
    {
        thread_ = std::thread([this] { run(); });
    }

    ~QueuedOutput() override
    {
        if (!thread_.joinable())
            return;
        {
            std::unique_lock lk(mu_);
            stop_ = true;
            stop_at_ = Clock::now() + kStopGrace;
            cv_.notify_all();
            // A blocked connect or write gets a little longer, then is cut short.
            done_cv_.wait_for(lk, kStopGrace + 500ms, [&] { return done_; });
        }
        sink_->abort = true;
        thread_.join();
    }

    void send(const detect::AlertRecord &a) override
    {
        std::string msg = render_(a);
        std::lock_guard lk(mu_);
        stats_.queued++;
        if (q_.size() >= cap_) {
            stats_.dropped++;  // the newest goes, as rsyslog's full queue does
            return;
        }
        q_.push_back(std::move(msg));
        pushed_++;
        cv_.notify_all();
    }

    OutputStats stats() const override
    {
        std::lock_guard lk(mu_);
        OutputStats s = stats_;
        s.spooled_now = q_.size();
        return s;
    }

    bool flush(uint64_t timeout_ms) override
    {
        std::unique_lock lk(mu_);
        return done_cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms),
                                 [&] { return q_.empty(); });
    }

    std::string describe() const override { return desc_; }

private:
    void run();
    static void block_sigpipe();
    bool wait_for_work(uint64_t &seen_pushed);
    Clock::time_point next_wake(Clock::time_point now, bool open) const;
    void deliver();
    void write_batch();
    bool account_write(WriteResult r, const std::string &why);
    void finish();
    void connect(Clock::time_point now);
    void broken(const std::string &why);
    void check_acks();
    void pop_delivered(size_t n);
    void persist_new();
    void spool_failed(const std::string &why);
    void spool_written();
    void retry_spool();
    void problem(const std::string &why);
    void note_drops();
    Clock::time_point op_deadline(Clock::duration d);

    std::unique_ptr<Sink> sink_;
    Render render_;
    std::string desc_;
    size_t cap_;
    std::unique_ptr<SpoolFile> spool_;
    std::thread thread_;

    // Shared with send(), stats(), flush() and the destructor.
    mutable std::mutex mu_;
    std::condition_variable cv_;       // to the worker: new message, stop
    std::condition_variable done_cv_;  // from the worker: spool drained, thread done
    std::deque<std::string> q_;        // the spool, oldest first
    OutputStats stats_;
    uint64_t pushed_ = 0;
    bool stop_ = false;
    Clock::time_point stop_at_;
    bool done_ = false;

    // Worker only.
    size_t in_flight_ = 0;        // q_'s first messages written on this connection
    std::deque<uint64_t> ends_;   // their end offsets in the stream
    size_t persisted_ = 0;        // q_'s first messages in the spool file
    size_t file_acked_ = 0;       // delivered messages still in the spool file
    bool spool_ok_ = true;        // false: the file is not written, memory only
    bool spool_failing_ = false;  // a failure was logged, no data written since
    int spool_errno_ = 0;         // the cause last logged
    Clock::time_point spool_retry_at_{};
    Clock::duration spool_backoff_ = kSpoolRetryMin;
    Clock::duration ack_poll_ = kAckPoll;
    Clock::duration backoff_ = kBackoffMin;
    Clock::time_point next_attempt_{}, connected_at_{};
    bool ever_connected_ = false;
    Clock::time_point busy_until_{};
    std::string last_logged_;
    Clock::time_point last_log_{};
    uint64_t drops_logged_ = 0;
    Clock::time_point last_drop_log_{};
};

Clock::time_point QueuedOutput::op_deadline(Clock::duration d)
{
    auto t = Clock::now() + d;
    std::lock_guard lk(mu_);
    return stop_ ? std::min(t, stop_at_) : t;
}

void QueuedOutput::problem(const std::string &why)
{
    auto now = Clock::now();
    {
        std::lock_guard lk(mu_);
        stats_.last_error = why;
    }
    if (why != last_logged_ || now - last_log_ >= kLogEvery) {
        spdlog::warn("output {}: {}", desc_, why);
        last_logged_ = why;
        last_log_ = now;
    }
}

void QueuedOutput::note_drops()
{
    uint64_t dropped, held;
    {
        std::lock_guard lk(mu_);
        dropped = stats_.dropped;
        held = q_.size();
    }
    auto now = Clock::now();
    if (dropped > drops_logged_ && (drops_logged_ == 0 || now - last_drop_log_ >= kLogEvery)) {
        spdlog::warn("output {}: spool full ({} alerts held), {} alerts dropped ({} in all)", desc_,
                     held, dropped - drops_logged_, dropped);
        drops_logged_ = dropped;
        last_drop_log_ = now;
    }
}

void QueuedOutput::connect(Clock::time_point now)
{
    std::string why;
    if (!sink_->open(op_deadline(kConnectTimeout), why)) {
        {
            std::lock_guard lk(mu_);
            stats_.connect_failures++;
        }
        problem(why);
        next_attempt_ = Clock::now() + backoff_;
        backoff_ = std::min<Clock::duration>(backoff_ * 2, kBackoffMax);
        return;
    }
    {
        std::lock_guard lk(mu_);
        stats_.connected = true;
        if (ever_connected_)
            stats_.reconnects++;
    }
    if (!last_logged_.empty())
        spdlog::info("output {}: connected", desc_);
    last_logged_.clear();
    ever_connected_ = true;
    connected_at_ = now;
    in_flight_ = 0;
    ends_.clear();
}

void QueuedOutput::broken(const std::string &why)
{
    sink_->close();
    {
        std::lock_guard lk(mu_);
        stats_.connected = false;
    }
    problem(why);
    in_flight_ = 0;  // written again, first, on the next connection
    ends_.clear();
    auto now = Clock::now();
    if (now - connected_at_ >= kStableConnection)
        backoff_ = kBackoffMin;
    next_attempt_ = now + backoff_;
    backoff_ = std::min<Clock::duration>(backoff_ * 2, kBackoffMax);
}

void QueuedOutput::pop_delivered(size_t n)
{
    if (n == 0)
        return;
    size_t from_file = std::min(n, persisted_);
    persisted_ -= from_file;
    bool empty;
    {
        std::lock_guard lk(mu_);
        for (size_t i = 0; i < n; i++)
            q_.pop_front();
        stats_.sent += n;
        empty = q_.empty();
        if (empty)
            done_cv_.notify_all();
    }
    if (!spool_ || from_file == 0)
        return;
    std::string why;
    bool ok;
    file_acked_ += from_file;
    if (persisted_ == 0 && empty) {
        ok = spool_->clear(why);
        file_acked_ = 0;
    } else if (file_acked_ >= kCompactAfter && file_acked_ > persisted_) {
        // A collector that keeps up but never quite drains the spool: keep
        // the file from growing.
        std::deque<std::string> held;
        {
            std::lock_guard lk(mu_);
            held.assign(q_.begin(), q_.begin() + static_cast<std::ptrdiff_t>(persisted_));
        }
        ok = spool_->rewrite(held, why);
        file_acked_ = 0;
    } else {
        ok = spool_->acked(from_file, why);
        if (ok)
            spool_written();
    }
    if (!ok)
        spool_failed(why);
}

void QueuedOutput::check_acks()
{
    if (in_flight_ == 0)
        return;
    uint64_t written = sink_->bytes_written();
    uint64_t acked = written - std::min(written, sink_->bytes_unacked());
    size_t n = 0;
    while (n < ends_.size() && ends_[n] <= acked)
        n++;
    ends_.erase(ends_.begin(), ends_.begin() + static_cast<std::ptrdiff_t>(n));
    ack_poll_ = n ? kAckPoll : std::min<Clock::duration>(ack_poll_ * 2, kAckPollMax);
    in_flight_ -= n;
    pop_delivered(n);
}

// The spool file cannot be written: memory only from now on (persisted_ 0:
// nothing more is appended or acknowledged in the file) until retry_spool()
// rewrites it whole. Logged when it starts and when its cause changes, not
// per alert: a rewrite of an empty spool succeeds on a full disk too, so the
// condition counts as over only once data was written again (spool_written).
void QueuedOutput::spool_failed(const std::string &why)
{
    int err = spool_->last_errno();
    {
        std::lock_guard lk(mu_);
        stats_.spool_write_errors++;
        stats_.spool_file_ok = false;
        stats_.last_error = why;
    }
    if (!spool_failing_ || err != spool_errno_)
        spdlog::warn("output {}: spool file {} cannot be written ({}): alerts are kept in memory "
                     "only until it can",
                     desc_, spool_->path(), err ? std::strerror(err) : why.c_str());
    spool_failing_ = true;
    spool_errno_ = err;
    if (spool_ok_)
        spool_backoff_ = kSpoolRetryMin;
    spool_ok_ = false;
    persisted_ = 0;
    file_acked_ = 0;
    spool_retry_at_ = Clock::now() + spool_backoff_;
    spool_backoff_ = std::min<Clock::duration>(spool_backoff_ * 2, kSpoolRetryMax);
}

// Data reached the spool file: a failure logged before is over.
void QueuedOutput::spool_written()
{
    if (!spool_failing_)
        return;
    spool_failing_ = false;
    size_t held;
    {
        std::lock_guard lk(mu_);
        stats_.spool_file_ok = true;
        held = q_.size();
    }
    spdlog::info("output {}: spool file {} can be written again ({} alerts held)", desc_,
                 spool_->path(), held);
}

void QueuedOutput::retry_spool()
{
    if (Clock::now() < spool_retry_at_)
        return;
    std::deque<std::string> held;
    {
        std::lock_guard lk(mu_);
        held = q_;  // only this thread pops: these stay q_'s first messages
    }
    std::string why;
    if (!spool_->rewrite(held, why)) {
        spool_failed(why);
        return;
    }
    persisted_ = held.size();
    file_acked_ = 0;
    spool_ok_ = true;
    if (!held.empty())
        spool_written();
}

void QueuedOutput::persist_new()
{
    if (!spool_)
        return;
    if (!spool_ok_) {
        retry_spool();
        if (!spool_ok_)
            return;
    }
    for (;;) {
        const std::string *m;
        {
            std::lock_guard lk(mu_);
            if (persisted_ >= q_.size())
                return;
            m = &q_[persisted_];  // only this thread pops: the reference stays valid
        }
        std::string why;
        if (!spool_->append(*m, why)) {
            spool_failed(why);
            return;
        }
        spool_written();
        persisted_++;
    }
}

// The worker: wait for work, deliver what it can, and when told to stop,
// leave what is undelivered in the spool file.
void QueuedOutput::run()
{
    block_sigpipe();
    uint64_t seen_pushed = 0;
    while (wait_for_work(seen_pushed))
        deliver();
    finish();
}

// A closed stdout pipe is an error, not death.
void QueuedOutput::block_sigpipe()
{
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
}

// Sleeps until the next thing to do is due, a message arrives or a stop is
// asked for. False: stop now (nothing left, or the grace period is over).
bool QueuedOutput::wait_for_work(uint64_t &seen_pushed)
{
    auto now = Clock::now();
    bool open = sink_->is_open();
    std::unique_lock lk(mu_);
    if (stop_ && (q_.empty() || now >= stop_at_))
        return false;
    auto wake = next_wake(now, open);
    bool was_stopping = stop_;
    cv_.wait_until(lk, wake, [&] { return pushed_ != seen_pushed || stop_ != was_stopping; });
    seen_pushed = pushed_;
    return true;
}

// When the worker has something to do unprompted. Called with mu_ held.
Clock::time_point QueuedOutput::next_wake(Clock::time_point now, bool open) const
{
    Clock::time_point wake;
    if (!open)
        wake = next_attempt_;
    else if (q_.size() > in_flight_ && now >= busy_until_)
        wake = now;  // more to write
    else if (in_flight_)
        wake = now + ack_poll_;
    else if (q_.size() > in_flight_)
        wake = busy_until_;
    else
        wake = now + kIdlePoll;
    if (spool_ && !spool_ok_)
        wake = std::min(wake, spool_retry_at_);
    if (stop_)
        wake = std::min(wake, stop_at_);
    return wake;
}

// One round: spool the new messages, then connect, or collect the
// acknowledgements and write what is not yet in flight.
void QueuedOutput::deliver()
{
    persist_new();
    note_drops();
    auto now = Clock::now();
    if (!sink_->is_open()) {
        if (now >= next_attempt_)
            connect(now);
        return;
    }
    check_acks();
    if (!sink_->alive()) {
        broken("connection closed by the collector");
        return;
    }
    if (now < busy_until_)
        return;
    write_batch();
    check_acks();
}

// Writes up to kWriteBatch messages past those in flight; stops early when
// the receiver is busy or the connection breaks.
void QueuedOutput::write_batch()
{
    for (size_t i = 0; i < kWriteBatch; i++) {
        const std::string *m;
        {
            std::lock_guard lk(mu_);
            if (in_flight_ >= q_.size())
                return;
            m = &q_[in_flight_];  // only this thread pops: the reference stays valid
        }
        std::string why;
        auto r = sink_->write(*m, op_deadline(kWriteTimeout), why);
        if (!account_write(r, why))
            return;
    }
}

// Accounts for one write's result. False: write no more in this batch.
bool QueuedOutput::account_write(WriteResult r, const std::string &why)
{
    if (r == WriteResult::ok && sink_->acks_later()) {
        in_flight_++;
        ends_.push_back(sink_->bytes_written());
    } else if (r == WriteResult::ok) {
        pop_delivered(1);
    } else if (r == WriteResult::again) {
        busy_until_ = Clock::now() + kRetryBusy;
        return false;
    } else if (r == WriteResult::too_big) {
        problem(why + ", dropped");
        pop_delivered(1);
        std::lock_guard lk(mu_);
        stats_.sent--;
        stats_.dropped++;
    } else {
        {
            std::lock_guard lk(mu_);
            stats_.write_errors++;
        }
        broken(why);
        return false;
    }
    return true;
}

// Stopping: what was acknowledged leaves; the rest stays in the spool file.
void QueuedOutput::finish()
{
    if (sink_->is_open())
        check_acks();
    std::lock_guard lk(mu_);
    if (spool_) {
        std::string why;
        if (!spool_->rewrite(q_, why)) {
            stats_.spool_write_errors++;
            stats_.spool_file_ok = false;
            spdlog::warn("output {}: {}: {} alerts undelivered, the file is as it was when "
                         "writing it stopped",
                         desc_, why, q_.size());
        } else if (!q_.empty())
            spdlog::info("output {}: {} alerts left in {}", desc_, q_.size(), spool_->path());
    } else if (!q_.empty()) {
        spdlog::warn("output {}: stopping with {} alerts undelivered", desc_, q_.size());
    }
    sink_->close();
    stats_.connected = false;
    done_ = true;
    done_cv_.notify_all();
}

const char *transport_name(Transport t)
{
    switch (t) {
    case Transport::unix_socket: return "unix";
    case Transport::udp: return "udp";
    case Transport::tcp: return "tcp";
    case Transport::tls: return "tls";
    }
    return "?";
}

const char *format_name(Format f)
{
    switch (f) {
    case Format::rfc5424: return "rfc5424";
    case Format::rfc5424_json: return "rfc5424-json";
    case Format::cef: return "cef";
    case Format::rfc3164: return "rfc3164";
    case Format::json: return "json";
    }
    return "?";
}

// The key a TLS file error is about: make_tls_context starts its
// messages with it ("ca_file PATH: ...").
std::string tls_key_of(const std::string &message)
{
    for (const char *key : {"ca_file", "cert_file", "key_file"})
        if (message.rfind(key, 0) == 0)
            return key;
    return "ca_file";
}

void check_syslog_address(const OutputConfig &cfg, bool resolve, std::vector<OutputProblem> &out)
{
    if (cfg.transport == Transport::unix_socket) {
        if (cfg.address.size() >= sizeof(sockaddr_un::sun_path))
            out.push_back({"address", "unix socket path too long (at most " +
                                          std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
                                          " bytes): " + cfg.address});
        return;
    }
    try {
        auto hp = parse_host_port(cfg.address, default_port(cfg.transport));
        if (auto why = resolve ? detail::resolve_problem(hp, cfg.transport) : ""; !why.empty())
            out.push_back({"address",
                           "address " + cfg.address + ": " + why +
                               " (now; alerts are spooled until it resolves)",
                           true});
    } catch (const Error &e) {
        out.push_back({"address", e.what()});
    }
    if (cfg.transport == Transport::tls) {
        try {
            detail::make_tls_context(cfg);
        } catch (const Error &e) {
            out.push_back({tls_key_of(e.what()), e.what()});
        }
    }
}

}  // namespace

std::vector<OutputProblem> check_output(const OutputConfig &cfg, bool resolve)
{
    std::vector<OutputProblem> out;
    int err = 0;
    if (cfg.type == OutputType::json) {
        if (!cfg.path.empty() && cfg.path != "-")
            if (auto why = writable_file_problem(cfg.path); !why.empty())
                out.push_back({"path", "path " + cfg.path + ": " + why});
    } else {
        check_syslog_address(cfg, resolve, out);
    }
    if (!cfg.spool_file.empty())
        if (auto why = writable_file_problem(cfg.spool_file, &err); !why.empty()) {
            // A read-only file system is a fault of the moment: the output
            // runs with the spool in memory and retries (spool.h).
            bool transient = detail::transient_io_error(err);
            out.push_back(
                {"spool_file",
                 "spool_file " + cfg.spool_file + ": " + why +
                     (transient ? " (alerts are kept in memory until it can be written)" : ""),
                 transient});
        }
    return out;
}

std::unique_ptr<Output> make_output(const OutputConfig &cfg)
{
    auto out = open_output(cfg);
    out->start();
    return out;
}

std::unique_ptr<Output> open_output(const OutputConfig &cfg)
{
    std::string desc;
    Render render;
    if (cfg.type == OutputType::json) {
        desc = "json " + (cfg.path.empty() || cfg.path == "-" ? std::string("stdout") : cfg.path);
        render = [](const detect::AlertRecord &a) { return format_json(a); };
    } else {
        std::string addr = cfg.address;
        if (cfg.transport == Transport::unix_socket && addr.empty())
            addr = "/dev/log";
        desc = std::string("syslog ") + transport_name(cfg.transport) + " " + addr + " " +
               format_name(cfg.format);
        if (cfg.facility < 0 || cfg.facility > 23)
            throw Error("output " + desc + ": facility " + std::to_string(cfg.facility) +
                        " out of range 0..23");
        int facility = cfg.facility;
        std::string app = cfg.app_name;
        int pid = static_cast<int>(::getpid());
        using Syslog = std::string (*)(const detect::AlertRecord &, int, const std::string &, int);
        Syslog fn = nullptr;
        switch (cfg.format) {
        case Format::rfc5424: fn = format_rfc5424; break;
        case Format::rfc5424_json: fn = format_rfc5424_json; break;
        case Format::cef: fn = format_cef; break;
        case Format::rfc3164: fn = format_rfc3164; break;
        case Format::json: throw Error("output " + desc + ": format json is for type = \"json\"");
        }
        render = [=](const detect::AlertRecord &a) { return fn(a, facility, app, pid); };
    }
    // Names are resolved by the output's own thread, when it connects: the
    // caller (the daemon's main loop, on reload) never waits for DNS.
    for (auto &p : check_output(cfg, false))
        if (!p.warning)
            throw Error("output " + desc + ": " + p.message);
    try {
        auto sink = detail::make_sink(cfg);
        std::unique_ptr<SpoolFile> spool;
        if (!cfg.spool_file.empty())
            spool = std::make_unique<SpoolFile>(cfg.spool_file);
        return std::make_unique<QueuedOutput>(std::move(sink), std::move(render), desc,
                                              cfg.spool_size, std::move(spool));
    } catch (const Error &e) {
        throw Error("output " + desc + ": " + e.what(), e.err());
    }
}

}  // namespace exf::output
