// SPDX-License-Identifier: Apache-2.0
#include "state/state_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "common/dense_map.h"
#include "common/error.h"
#include "common/log.h"
#include "common/state_codec.h"

namespace exf {

namespace state_file {

namespace {

// The header: magic, version, payload length, payload checksum.
constexpr char kMagic[8] = {'E', 'X', 'F', 'S', 'T', 'A', 'T', 'E'};
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 8 + 8;

// The configuration the windows were counted under: restored with it, then
// changed to today's (Aggregator::reconfigure keeps what can be kept).
void put_layout(StateWriter &w, const agg::AggConfig &c)
{
    w.u64(c.windows_ms.size());
    for (uint64_t ms : c.windows_ms)
        w.u64(ms);
    for (uint8_t p :
         {c.client_prefix_v4, c.client_prefix_v6, c.subnet_prefix_v4, c.subnet_prefix_v6})
        w.u8(p);
}

agg::AggConfig get_layout(StateReader &r, agg::AggConfig c)
{
    c.windows_ms.resize(r.count(8));
    for (auto &ms : c.windows_ms)
        ms = r.u64();
    for (uint8_t *p :
         {&c.client_prefix_v4, &c.client_prefix_v6, &c.subnet_prefix_v4, &c.subnet_prefix_v6})
        *p = r.u8();
    auto problems = c.validate();
    if (!problems.empty())
        throw Error("the saved aggregation settings are invalid: " + problems.front());
    return c;
}

bool same_layout(const agg::AggConfig &a, const agg::AggConfig &b)
{
    return a.windows_ms == b.windows_ms && a.client_prefix_v4 == b.client_prefix_v4 &&
           a.client_prefix_v6 == b.client_prefix_v6 && a.subnet_prefix_v4 == b.subnet_prefix_v4 &&
           a.subnet_prefix_v6 == b.subnet_prefix_v6;
}

uint64_t longest(const std::vector<uint64_t> &windows)
{
    return windows.empty() ? 0 : *std::max_element(windows.begin(), windows.end());
}

}  // namespace

std::string boot_id()
{
    std::ifstream f("/proc/sys/kernel/random/boot_id");
    std::string id;
    std::getline(f, id);
    return id;
}

std::string encode_payload(const StateContext &ctx, const agg::Aggregator &a,
                           const detect::Detector &d, const HarvestStage &h, uint64_t mono_ms,
                           uint64_t wall_ms, const std::string &boot, size_t size_hint,
                           std::string_view fleet)
{
    StateWriter w;
    w.reserve(size_hint);
    w.str(boot);
    w.str(ctx.owner);
    w.str(ctx.tables);
    w.u64(mono_ms);
    w.u64(wall_ms);
    put_layout(w, a.config());
    a.save_state(w);
    d.save_state(w);
    h.save(w);
    if (!fleet.empty())
        w.str(fleet);
    return w.take();
}

std::string header_for(std::string_view payload)
{
    StateWriter head;
    head.raw(kMagic, sizeof(kMagic));
    head.u32(kVersion);
    head.u32(0);
    head.u64(payload.size());
    head.u64(hash_bytes(payload.data(), payload.size()));
    return head.take();
}

std::string encode(const StateContext &ctx, const agg::Aggregator &a, const detect::Detector &d,
                   const HarvestStage &h, uint64_t mono_ms, uint64_t wall_ms,
                   const std::string &boot, std::string_view fleet)
{
    std::string payload = encode_payload(ctx, a, d, h, mono_ms, wall_ms, boot, 0, fleet);
    return header_for(payload) + payload;
}

Decoded decode(std::string_view bytes, const StateContext &ctx, uint64_t now_mono_ms,
               const std::string &boot)
{
    if (bytes.size() < kHeaderBytes ||
        bytes.compare(0, sizeof(kMagic), std::string_view(kMagic, 8)) != 0)
        throw Error("not an exfilmon state file");
    StateReader head(bytes.substr(sizeof(kMagic), kHeaderBytes - sizeof(kMagic)));
    uint32_t version = head.u32();
    head.u32();
    uint64_t len = head.u64(), sum = head.u64();
    if (version != kVersion)
        throw Error("state file version " + std::to_string(version) +
                    (version < kVersion ? " (an older exfilmon's)" : "") + ", this build reads " +
                    std::to_string(kVersion));
    std::string_view payload = bytes.substr(kHeaderBytes);
    if (payload.size() != len)
        throw Error("truncated (" + std::to_string(payload.size()) + " of " + std::to_string(len) +
                    " bytes)");
    if (hash_bytes(payload.data(), payload.size()) != sum)
        throw Error("checksum mismatch (corrupt)");
    StateReader r(payload);
    std::string saved_boot = r.str(), owner = r.str(), tables = r.str();
    uint64_t mono = r.u64();
    r.u64();  // wall clock: for people reading a dump
    if (boot.empty() || saved_boot != boot)
        throw Error("written in another boot (its clock times do not apply)");
    if (owner != ctx.owner)
        throw Error("written for another configuration file ('" + owner + "')");
    if (mono > now_mono_ms)
        throw Error("written in the future of this boot's clock");
    agg::AggConfig saved = get_layout(r, ctx.aggregate);
    if (now_mono_ms - mono > longest(ctx.aggregate.windows_ms))
        throw Error("too old: " + std::to_string((now_mono_ms - mono) / 1000) +
                    " s, longer than the longest window");
    Decoded out(saved, ctx.detect);
    out.saved_mono_ms = mono;
    out.aggregator.restore_state(r);
    std::string why;
    if (!same_layout(saved, ctx.aggregate) && !out.aggregator.reconfigure(ctx.aggregate, why))
        throw Error("the saved windows cannot take today's settings: " + why);
    out.detector.restore_state(r);
    out.harvest.restore(r);
    if (!r.done())
        out.fleet = r.str();
    if (!r.done())
        throw Error("trailing bytes after the state");
    out.harvest_valid = !tables.empty() && tables == ctx.tables;
    return out;
}

void write_atomically(const std::string &path, std::initializer_list<std::string_view> parts)
{
    std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        throw_errno("state file: create " + tmp, errno);
    for (std::string_view bytes : parts)
        for (size_t done = 0; done < bytes.size();) {
            ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                int e = errno;
                ::close(fd);
                ::unlink(tmp.c_str());
                throw_errno("state file: write " + tmp, e);
            }
            done += size_t(n);
        }
    if (::fsync(fd) != 0) {
        int e = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        throw_errno("state file: fsync " + tmp, e);
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        throw_errno("state file: rename " + tmp + " to " + path, e);
    }
    // The rename itself is durable once the directory is synced.
    std::string dir = path.substr(0, path.find_last_of('/') + 1);
    int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

}  // namespace state_file

StateFile::StateFile(std::string dir)
{
    if (dir.empty())
        return;
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        spdlog::error("state directory {}: {}; the state is not kept across restarts", dir,
                      strerror(errno));
        return;
    }
    path_ = dir + "/state.bin";
}

StateFile::~StateFile() { collect(true); }

namespace {

// What the kernel counted while no daemon ran, into the windows at the time
// of the last packet counted then (the kernel's last-seen times are on the
// aggregator's clock): traffic that ended long before the restart is not
// put into the windows of the restart. Per client the time within the gap
// is not known, so the latest of them stands for all. Its flows' ClientHellos
// may still be in the ring buffer: their bytes count for the client's
// entities, and for the API host only when the hello was already parsed.
void harvest_gap(LiveSource &src, agg::Aggregator &a, HarvestStage &h, const FlowTracker &tracker,
                 uint64_t now_mono_ms, HarvestSink *sink)
{
    auto t = src.tables();
    uint64_t at = a.clock_ms();
    for (auto &c : t.clients)
        at = std::max<uint64_t>(at, c.stats.last_ns / 1000000);
    at = std::min(at, now_mono_ms);
    h.run(a, t.flows, t.clients, tracker, at, false, sink);
    spdlog::info("traffic counted while no daemon ran: added as of {:.1f} s before this start",
                 double(now_mono_ms - at) / 1000.0);
}

}  // namespace

void StateFile::start_from_state(const StateContext &ctx, LiveSource &src, agg::Aggregator &a,
                                 detect::Detector &d, HarvestStage &h, const FlowTracker &tracker,
                                 uint64_t now_mono_ms, const StateFleetPart *fleet)
{
    bool harvest_restored = false;
    std::string problem;
    if (!enabled()) {
    } else if (std::ifstream f{path_, std::ios::binary}; !f) {
        problem = path_ + ": " + strerror(errno);
    } else {
        std::stringstream bytes;
        bytes << f.rdbuf();
        try {
            auto s = state_file::decode(bytes.str(), ctx, now_mono_ms);
            // First, as the only step that can still refuse the bytes.
            if (fleet && !s.fleet.empty())
                fleet->restore(s.fleet);
            a = std::move(s.aggregator);
            d = std::move(s.detector);
            if (s.harvest_valid) {
                h = std::move(s.harvest);
                harvest_gap(src, a, h, tracker, now_mono_ms, fleet ? fleet->sink : nullptr);
            }
            harvest_restored = s.harvest_valid;
            spdlog::info(
                "state restored from {} (saved {:.1f} s ago): windows, baselines and {} "
                "open alert(s) carry on; {}",
                path_, double(now_mono_ms - s.saved_mono_ms) / 1000.0, d.open_alerts().size(),
                harvest_restored ? "what the kernel counted since was added"
                                 : "the kernel's tables are not the ones it was read from");
        } catch (const std::exception &e) {
            problem = path_ + ": " + e.what();
        }
    }
    if (!enabled())
        spdlog::info("no state directory configured: windows, baselines and alerts start empty");
    else if (!problem.empty())
        spdlog::warn("state not restored ({}): windows, baselines and alerts start empty", problem);
    if (!harvest_restored && ctx.tables_carried_over) {
        // Lifetime totals of maps taken over are not new traffic.
        auto t = src.tables();
        h.prime(t.flows, t.clients, now_mono_ms);
        spdlog::warn("the maps taken over hold {} client(s) counted before this start: taken as "
                     "already counted (what was counted while no daemon ran is not known)",
                     t.clients.size());
    }
}

void StateFile::collect(bool wait)
{
    if (!pending_.valid())
        return;
    if (!wait && pending_.wait_for(std::chrono::seconds(0)) != std::future_status::ready)
        return;
    std::string err = pending_.get();
    finished_ = started_;
    if (err.empty())
        written_ = started_;
    if (err.empty()) {
        if (!last_error_.empty())
            spdlog::info("state file {} written again", path_);
    } else if (err != last_error_) {
        spdlog::error("{}; the last state written stays", err);
    }
    last_error_ = err;
}

uint64_t StateFile::finished()
{
    collect(false);
    return finished_;
}

bool StateFile::writing()
{
    collect(false);
    return pending_.valid();
}

uint64_t StateFile::save(const StateContext &ctx, const agg::Aggregator &a,
                         const detect::Detector &d, const HarvestStage &h, uint64_t mono_ms,
                         uint64_t wall_ms, std::string_view fleet)
{
    if (!enabled())
        return 0;
    collect(false);
    if (pending_.valid()) {
        spdlog::debug("state file: the previous write is still under way; this save is skipped");
        return 0;
    }
    // The copy is taken here (the stages change at the next harvest); the
    // checksum and the disk are the writer thread's.
    std::string payload = state_file::encode_payload(
        ctx, a, d, h, mono_ms, wall_ms, state_file::boot_id(), last_size_ + last_size_ / 8, fleet);
    last_size_ = payload.size();
    pending_ = std::async(std::launch::async, [path = path_, payload = std::move(payload)] {
        try {
            state_file::write_atomically(path, {state_file::header_for(payload), payload});
            return std::string();
        } catch (const Error &e) {
            return std::string(e.what());
        }
    });
    return ++started_;
}

uint64_t StateFile::save_and_wait(const StateContext &ctx, const agg::Aggregator &a,
                                  const detect::Detector &d, const HarvestStage &h,
                                  uint64_t mono_ms, uint64_t wall_ms, std::string_view fleet)
{
    if (!enabled())
        return 0;
    collect(true);
    uint64_t n = save(ctx, a, d, h, mono_ms, wall_ms, fleet);
    collect(true);
    if (last_error_.empty())
        spdlog::info("state saved to {}", path_);
    return n;
}

}  // namespace exf
