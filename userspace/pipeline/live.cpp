#include "pipeline/live.h"

#include <algorithm>
#include <cstring>

#include "capture/events.h"
#include "common/log.h"

namespace exf {

EventQueue::EventQueue(size_t size) : slots_(size), queue_(size), free_(size)
{
    for (auto &s : slots_)
        free_.push(&s);
}

void EventQueue::push(std::span<const uint8_t> e)
{
    received_.fetch_add(1, std::memory_order_relaxed);
    EventSlot *slot;
    if (!free_.pop(slot)) {
        dropped_.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    slot->size = uint32_t(std::min(e.size(), slot->bytes.size()));
    std::memcpy(slot->bytes.data(), e.data(), slot->size);
    queue_.push(slot);  // cannot fail: at most size slots exist
}

EventConsumer::EventConsumer(int ringbuf_fd, EventQueue &queue)
{
    // The reader is created here so that a failure is reported to the caller.
    auto reader = std::make_shared<EventReader>(
        ringbuf_fd, [&queue](std::span<const uint8_t> e) { queue.push(e); });
    thread_ = std::thread([this, reader] {
        while (!stop_.load(std::memory_order_relaxed)) {
            try {
                // Events come without wakeups (see exf_wake_flags): poll
                // sleeps up to 50 ms, then whatever is there is consumed.
                reader->poll(50);
                reader->drain();
            } catch (const std::exception &e) {
                spdlog::error("{}", e.what());
                return;
            }
        }
        reader->drain();
    });
}

EventConsumer::~EventConsumer()
{
    stop_ = true;
    if (thread_.joinable())
        thread_.join();
}

size_t Harvester::Hash::operator()(const Addr16 &a) const noexcept
{
    uint64_t x, y;
    std::memcpy(&x, a.data(), 8);
    std::memcpy(&y, a.data() + 8, 8);
    uint64_t h = (x * 0x9e3779b97f4a7c15ull) ^ (y + 0x7f4a7c159e3779b9ull + (x << 6));
    return size_t(h ^ (h >> 31));
}

std::vector<ClientDelta> Harvester::harvest(const std::vector<ClientRow> &rows)
{
    std::vector<ClientDelta> out;
    decltype(last_) next;
    next.reserve(rows.size());
    for (auto &r : rows) {
        Addr16 a;
        std::memcpy(a.data(), r.key.addr, 16);
        const exf_client_stats &cur = r.stats;
        exf_client_stats prev{};
        if (auto it = last_.find(a); it != last_.end())
            prev = it->second;
        // An entry evicted and created again has a new creation time: its
        // whole value is new. Otherwise a counter below the previous reading
        // is a reading that missed counts on their way from the flow cache
        // to the tables (maps.h read_tables): they show later, so the
        // previous reading stands until the counter passes it.
        if (prev.first_ns && cur.first_ns && prev.first_ns != cur.first_ns)
            prev = exf_client_stats{};
        auto grow = [](__u64 c, __u64 &p) -> __u64 {
            uint64_t d = c > p ? c - p : 0;
            p = std::max(c, p);
            return d;
        };
        ClientDelta d{a, {}, cur};
        d.delta.tls_flows_opened = grow(cur.tls_flows_opened, prev.tls_flows_opened);
        d.delta.tls_flows_closed = grow(cur.tls_flows_closed, prev.tls_flows_closed);
        d.delta.pkts_in = grow(cur.pkts_in, prev.pkts_in);
        d.delta.pkts_out = grow(cur.pkts_out, prev.pkts_out);
        d.delta.bytes_in = grow(cur.bytes_in, prev.bytes_in);
        d.delta.bytes_out = grow(cur.bytes_out, prev.bytes_out);
        d.delta.last_ns = cur.last_ns;
        prev.last_ns = std::max(prev.last_ns, cur.last_ns);
        prev.first_ns = cur.first_ns ? cur.first_ns : prev.first_ns;
        if (d.delta.tls_flows_opened || d.delta.tls_flows_closed || d.delta.pkts_in ||
            d.delta.pkts_out)
            out.push_back(d);
        next.emplace(a, prev);
    }
    last_ = std::move(next);
    return out;
}

size_t FlowHarvester::KeyHash::operator()(const exf_flow_key &k) const noexcept
{
    uint64_t h = 0xcbf29ce484222325ull;
    const auto *b = reinterpret_cast<const uint8_t *>(&k);
    for (size_t i = 0; i < sizeof(k); i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return size_t(h);
}

bool FlowHarvester::KeyEq::operator()(const exf_flow_key &a, const exf_flow_key &b) const noexcept
{
    return std::memcmp(&a, &b, sizeof(a)) == 0;
}

std::vector<FlowDelta> FlowHarvester::harvest(const std::vector<FlowRow> &rows,
                                              const std::function<bool(const FlowRow &)> &ready,
                                              uint64_t now_ns, uint64_t idle_ns)
{
    std::vector<FlowDelta> out;
    decltype(last_) next;
    next.reserve(rows.size());
    for (auto &r : rows) {
        const exf_flow &f = r.flow;
        if (f.kind != EXF_KIND_TLS && f.kind != EXF_KIND_QUIC)
            continue;
        Seen prev{};
        bool known = false;
        if (auto it = last_.find(r.key); it != last_.end() && it->second.flow.first_ns == f.first_ns) {
            prev = it->second;
            known = true;
        }
        bool fin = f.flags & EXF_FF_CLOSED;
        bool idle = !fin && idle_ns && now_ns > f.last_ns + idle_ns;
        unsigned in = flow_in_dir(f);
        FlowDelta d{r.key, f};
        d.pending = !ready(r);
        d.opened = !known;
        // Counters as accounted: never below an earlier reading (a reading
        // can miss counts on their way from the flow cache to the table;
        // they show later; see Harvester::harvest).
        exf_flow acc = f;
        for (int k = 0; k < 2; k++) {
            acc.pkts[k] = std::max(f.pkts[k], prev.flow.pkts[k]);
            acc.bytes[k] = std::max(f.bytes[k], prev.flow.bytes[k]);
        }
        d.pkts_in = acc.pkts[in] - prev.flow.pkts[in];
        d.pkts_out = acc.pkts[in ^ 1] - prev.flow.pkts[in ^ 1];
        d.bytes_in = acc.bytes[in] - prev.flow.bytes[in];
        d.bytes_out = acc.bytes[in ^ 1] - prev.flow.bytes[in ^ 1];
        bool grew = d.pkts_in || d.pkts_out;
        d.resumed = known && prev.idle && grew;
        bool was_closed = known && prev.closed && !d.resumed;
        d.closed = (fin || idle) && !was_closed;
        if (d.opened || d.closed || d.resumed || grew)
            out.push_back(d);
        if (d.pending) {
            if (known)
                next.emplace(r.key, prev);
            continue;
        }
        next.emplace(r.key, Seen{acc, fin || idle || was_closed, idle || (was_closed && prev.idle)});
    }
    // Flows that left the table (or whose 5-tuple now holds a new flow)
    // without a reported end: they end now, at their last packet.
    for (auto &[key, seen] : last_) {
        if (seen.closed)
            continue;
        auto it = next.find(key);
        if (it != next.end() && it->second.flow.first_ns == seen.flow.first_ns)
            continue;
        FlowDelta d{key, seen.flow};
        d.closed = true;
        out.push_back(d);
    }
    last_ = std::move(next);
    return out;
}

}  // namespace exf
