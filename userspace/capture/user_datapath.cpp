// SPDX-License-Identifier: Apache-2.0
// Userspace maps and ring buffer behind user_shim.h, and the two Datapath
// implementations.
#include <linux/bpf.h>  // BPF_ANY, BPF_NOEXIST, BPF_EXIST
#include <linux/types.h>

#include <array>
#include <cstring>
#include <deque>

#include "capture/datapath.h"
#include "capture/events.h"
#include "capture/test_run.h"
#include "common/dense_map.h"
#include "common/error.h"

extern "C" {
#include "lib/user_shim.h"
}

namespace exf {

namespace {

template <size_t N>
struct KeyBytes {
    std::array<uint8_t, N> b;
};

// A bounded hash map evicting the least recently used entry when full, as
// BPF LRU maps do (exactly: lookups and updates make an entry the most
// recent). Values keep their address while present. The entries live in a
// DenseMap (open addressing, items that never move) and form a doubly
// linked list in recency order.
template <size_t KN, typename V>
class LruMap {
public:
    explicit LruMap(size_t capacity) : capacity_(capacity) {}
    V *lookup(const void *key)
    {
        KeyBytes<KN> k;
        std::memcpy(k.b.data(), key, KN);
        Node *n = map_.find(k);
        if (!n)
            return nullptr;
        to_front(n);
        return &n->value;
    }
    long update(const void *key, const void *val, uint64_t flags)
    {
        KeyBytes<KN> k;
        std::memcpy(k.b.data(), key, KN);
        if (Node *n = map_.find(k)) {
            if (flags == BPF_NOEXIST)
                return -EEXIST;
            std::memcpy(&n->value, val, sizeof(V));
            to_front(n);
            return 0;
        }
        if (flags == BPF_EXIST)
            return -ENOENT;
        if (map_.size() >= capacity_ && tail_) {
            Node *old = tail_;
            unlink(old);
            KeyBytes<KN> gone = old->key;
            map_.erase(gone);
        }
        Node *n = map_.try_emplace(k).first;
        n->key = k;
        std::memcpy(&n->value, val, sizeof(V));
        push_front(n);
        return 0;
    }
    long erase(const void *key)
    {
        KeyBytes<KN> k;
        std::memcpy(k.b.data(), key, KN);
        Node *n = map_.find(k);
        if (!n)
            return -ENOENT;
        unlink(n);
        map_.erase(k);
        return 0;
    }
    template <typename F>
    void for_each(F &&f) const
    {
        map_.for_each([&](const KeyBytes<KN> &k, const Node &n) { f(k.b.data(), n.value); });
    }
    size_t size() const { return map_.size(); }
    void clear()
    {
        map_.clear();
        head_ = tail_ = nullptr;
    }

private:
    struct Node {
        V value;
        Node *prev = nullptr, *next = nullptr;  // toward the most / least recent
        KeyBytes<KN> key;
    };
    void unlink(Node *n)
    {
        (n->prev ? n->prev->next : head_) = n->next;
        (n->next ? n->next->prev : tail_) = n->prev;
        n->prev = n->next = nullptr;
    }
    void push_front(Node *n)
    {
        n->prev = nullptr;
        n->next = head_;
        (head_ ? head_->prev : tail_) = n;
        head_ = n;
    }
    void to_front(Node *n)
    {
        if (head_ == n)
            return;
        unlink(n);
        push_front(n);
    }
    size_t capacity_;
    DenseMap<KeyBytes<KN>, Node> map_;
    Node *head_ = nullptr, *tail_ = nullptr;
};

struct EventQueue {
    std::deque<std::vector<uint8_t>> ready;
    std::vector<uint8_t> pending;
};

// The queue holding this thread's outstanding reservation (the datapath
// reserves, fills and submits or discards one event at a time).
thread_local EventQueue *g_pending_queue = nullptr;

SensorOptions with_packet_time(SensorOptions o)
{
    o.packet_time = true;
    return o;
}

// Empties rows for n new ones, keeping its storage; grown with headroom,
// as the tables grow between harvests (an exact fit would be reallocated,
// into fresh pages, at each).
template <typename Row>
void reuse(std::vector<Row> &rows, size_t n)
{
    rows.clear();
    if (rows.capacity() < n)
        rows.reserve(n + n / 2);
}

class UserDatapath final : public Datapath {
public:
    explicit UserDatapath(const SensorOptions &o)
        : flows_(o.flow_table_size), clients_(o.client_table_size)
    {
        if (auto problems = validate(o); !problems.empty())
            throw Error("datapath options: " + problems.front(), EINVAL);
        std::memset(&inst_, 0, sizeof(inst_));
        inst_.flows = {&flows_, EXF_UMAP_FLOWS};
        inst_.clients = {&clients_, EXF_UMAP_CLIENTS};
        inst_.health = {&health_, EXF_UMAP_HEALTH};
        inst_.events = {&events_, EXF_UMAP_EVENTS};
        inst_.fcache = {&fcache_, EXF_UMAP_FCACHE};
        inst_.fc_gen = {&fc_gen_, EXF_UMAP_FC_GEN};
        inst_.request_min_bytes = o.request_min_bytes;
        for (size_t i = 0; i < o.tls_ports.size(); i++)
            inst_.tls_ports[i] = o.tls_ports[i];
        inst_.n_tls_ports = uint32_t(o.tls_ports.size());
        inst_.use_pkt_time = o.packet_time ? 1 : 0;
    }

    void process(std::span<const uint8_t> frame, uint64_t ts_ns, uint32_t gso_segs) override
    {
        // The shared C code reads the IP, TCP and UDP headers through struct
        // pointers, as BPF may in the kernel. In C those must be aligned
        // (UBSan: misaligned member access), so the frame is placed as the
        // kernel places packets (NET_IP_ALIGN): the Ethernet header at 2 mod 4,
        // which puts every IP/L4 header (VLAN tags, IPv4 options and IPv6
        // extension headers are 4-byte multiples) on a 4-byte boundary.
        if ((reinterpret_cast<uintptr_t>(frame.data()) & 3) != 2) {
            aligned_.resize(frame.size() + 2);  // operator new: 16-byte aligned
            if (!frame.empty())
                std::memcpy(aligned_.data() + 2, frame.data(), frame.size());
            frame = std::span<const uint8_t>(aligned_.data() + 2, frame.size());
        }
        exf_uskb skb{};
        skb.len = uint32_t(frame.size());
        skb.gso_segs = gso_segs;
        skb.tstamp = ts_ns;
        skb.data = long(reinterpret_cast<uintptr_t>(frame.data()));
        skb.data_end = skb.data + long(frame.size());
        inst_.now_ns = ts_ns;
        exf_u_handle(&inst_, &skb);
    }

    void drain_events(const EventFn &fn) override
    {
        while (!events_.ready.empty()) {
            auto e = std::move(events_.ready.front());
            events_.ready.pop_front();
            fn(e);
        }
    }

    Tables tables() const override
    {
        Tables t;
        read_tables(t);
        return t;
    }
    void read_tables(Tables &t) const override
    {
        reuse(t.clients, clients_.size());
        reuse(t.flows, flows_.size());
        clients_.for_each([&](const uint8_t *k, const exf_client_stats &v) {
            ClientRow r;
            std::memcpy(&r.key, k, sizeof(r.key));
            r.stats = v;
            t.clients.push_back(r);
        });
        flows_.for_each([&](const uint8_t *k, const exf_flow &v) {
            FlowRow r;
            std::memcpy(&r.key, k, sizeof(r.key));
            r.flow = v;
            t.flows.push_back(r);
        });
        std::vector<exf_fc_slot> used;
        for (const auto &c : fcache_)
            if (c.used)
                used.push_back(c);
        fold_fcache(t, used);
    }
    HealthCounters health() const override { return health_; }
    const char *name() const override { return "userspace"; }
    void reset() override
    {
        flows_.clear();
        clients_.clear();
        health_ = {};
        fcache_ = {};
        fc_gen_ = {};
        events_.ready.clear();
        events_.pending.clear();
    }

    LruMap<sizeof(exf_flow_key), exf_flow> flows_;
    LruMap<sizeof(exf_client_key), exf_client_stats> clients_;
    HealthCounters health_{};
    std::array<exf_fc_slot, EXF_FC_SLOTS> fcache_{};  // one CPU's flow cache
    std::array<exf_fc_gen_entry, EXF_FC_SLOTS> fc_gen_{};
    EventQueue events_;
    exf_uinstance inst_;
    std::vector<uint8_t> aligned_;  // frames copied to the kernel's alignment
};

class BpfTestRunDatapath final : public Datapath {
public:
    explicit BpfTestRunDatapath(SensorOptions o)
        : sensor_(with_packet_time(std::move(o))),
          reader_(sensor_.events_fd(), [this](std::span<const uint8_t> b) {
              if (sink_)
                  (*sink_)(b);
          })
    {}
    void process(std::span<const uint8_t> frame, uint64_t ts_ns, uint32_t gso_segs) override
    {
        TestRunOptions o;
        o.tstamp_ns = ts_ns;
        o.gso_segs = gso_segs;
        if (frame.size() > kMaxTestRunFrame)
            frame = frame.first(kMaxTestRunFrame);  // the IP length field still counts
        // The kernel refuses test frames shorter than an Ethernet header, or
        // than the IPv4/IPv6 header their ethertype announces. Those are
        // counted here as the program would count them.
        if (frame.size() < 14) {
            extra_[EXF_C_PACKETS]++;
            extra_[EXF_C_TRUNC_L2]++;
            return;
        }
        uint16_t ethertype = uint16_t(frame[12] << 8 | frame[13]);
        if ((ethertype == 0x0800 && frame.size() < 14 + 20) ||
            (ethertype == 0x86DD && frame.size() < 14 + 40)) {
            extra_[EXF_C_PACKETS]++;
            extra_[EXF_C_TRUNC_L3]++;
            return;
        }
        auto r = run_tc_program(sensor_.ingress_fd(), frame, o);
        if (r.err)
            throw_errno("BPF test run of a " + std::to_string(frame.size()) + "-byte frame", r.err);
    }
    void drain_events(const EventFn &fn) override
    {
        sink_ = &fn;
        reader_.drain();
        sink_ = nullptr;
    }
    Tables tables() const override { return sensor_.tables(); }
    HealthCounters health() const override
    {
        auto h = read_health(sensor_.health_fd());
        for (size_t i = 0; i < h.size(); i++)
            h[i] += extra_[i];
        return h;
    }
    const char *name() const override { return "bpf"; }
    void reset() override
    {
        sensor_.clear_tables();
        extra_ = {};
        reader_.drain();  // sink_ is null: the events are dropped
    }

private:
    HealthCounters extra_{};
    CpuPin pin_;  // one CPU's flow cache for the whole replay
    BpfSensor sensor_;
    EventReader reader_;
    const EventFn *sink_ = nullptr;
};

}  // namespace

std::unique_ptr<Datapath> make_user_datapath(const SensorOptions &opts)
{
    return std::make_unique<UserDatapath>(opts);
}

std::unique_ptr<Datapath> make_bpf_test_run_datapath(SensorOptions opts)
{
    return std::make_unique<BpfTestRunDatapath>(std::move(opts));
}

}  // namespace exf

using exf::EventQueue;

using exf::HealthCounters;

extern "C" {

void *exf_u_map_lookup(struct exf_umap *m, const void *key)
{
    switch (m->kind) {
    case EXF_UMAP_FLOWS:
        return static_cast<exf::LruMap<sizeof(exf_flow_key), exf_flow> *>(m->impl)->lookup(key);
    case EXF_UMAP_CLIENTS:
        return static_cast<exf::LruMap<sizeof(exf_client_key), exf_client_stats> *>(m->impl)
            ->lookup(key);
    case EXF_UMAP_HEALTH: {
        uint32_t idx;
        std::memcpy(&idx, key, sizeof(idx));
        auto *h = static_cast<HealthCounters *>(m->impl);
        return idx < h->size() ? &(*h)[idx] : nullptr;
    }
    case EXF_UMAP_FCACHE: {
        uint32_t idx;
        std::memcpy(&idx, key, sizeof(idx));
        auto *c = static_cast<std::array<exf_fc_slot, EXF_FC_SLOTS> *>(m->impl);
        return idx < c->size() ? &(*c)[idx] : nullptr;
    }
    case EXF_UMAP_FC_GEN: {
        uint32_t idx;
        std::memcpy(&idx, key, sizeof(idx));
        auto *g = static_cast<std::array<exf_fc_gen_entry, EXF_FC_SLOTS> *>(m->impl);
        return idx < g->size() ? &(*g)[idx] : nullptr;
    }
    default: return nullptr;
    }
}

long exf_u_map_update(struct exf_umap *m, const void *key, const void *val, __u64 flags)
{
    switch (m->kind) {
    case EXF_UMAP_FLOWS:
        return static_cast<exf::LruMap<sizeof(exf_flow_key), exf_flow> *>(m->impl)->update(key, val,
                                                                                           flags);
    case EXF_UMAP_CLIENTS:
        return static_cast<exf::LruMap<sizeof(exf_client_key), exf_client_stats> *>(m->impl)
            ->update(key, val, flags);
    default: return -EINVAL;
    }
}

long exf_u_map_delete(struct exf_umap *m, const void *key)
{
    switch (m->kind) {
    case EXF_UMAP_FLOWS:
        return static_cast<exf::LruMap<sizeof(exf_flow_key), exf_flow> *>(m->impl)->erase(key);
    case EXF_UMAP_CLIENTS:
        return static_cast<exf::LruMap<sizeof(exf_client_key), exf_client_stats> *>(m->impl)->erase(
            key);
    default: return -EINVAL;
    }
}

void *exf_u_rb_reserve(struct exf_umap *m, __u64 size)
{
    auto *q = static_cast<EventQueue *>(m->impl);
    q->pending.assign(size, 0);
    exf::g_pending_queue = q;
    return q->pending.data();
}

void exf_u_rb_submit(void *)
{
    if (auto *q = exf::g_pending_queue) {
        q->ready.push_back(std::move(q->pending));
        q->pending.clear();
        exf::g_pending_queue = nullptr;
    }
}

void exf_u_rb_discard(void *)
{
    if (auto *q = exf::g_pending_queue) {
        q->pending.clear();
        exf::g_pending_queue = nullptr;
    }
}

}  // extern "C"
