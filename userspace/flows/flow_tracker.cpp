// SPDX-License-Identifier: Apache-2.0
#include "flows/flow_tracker.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "common/dense_map.h"
#include "tls/hello_reassembler.h"
#include "tls/quic_initial.h"

namespace exf {

namespace {

constexpr uint8_t kTcp = 6;
constexpr uint8_t kUdp = 17;

// Where a version ranks among offered versions: 1.3 highest, its drafts just
// below, then 1.2 ... SSL 2, DTLS by its own order below TLS, unknowns last.
int version_rank(uint16_t v)
{
    switch (v) {
    case 0x0304: return 1000;
    case 0x0303: return 800;
    case 0x0302: return 700;
    case 0x0301: return 600;
    case 0x0300: return 500;
    case 0x0002: return 400;
    case 0xfefc: return 300;
    case 0xfefd: return 200;
    case 0xfeff: return 100;
    default: break;
    }
    if ((v >> 8) == 0x7f)
        return 900 + (v & 0xff) / 4;  // drafts 0..255 -> 900..963, still below 1.3
    return 0;
}

// tls::QuicInitialDecoder behind the tracker's seam.
class InitialDecoder final : public QuicHelloDecoder {
public:
    Status add(uint32_t datagram_index, std::span<const uint8_t> udp_payload) override
    {
        auto st = d_.add(udp_payload);
        if (st == tls::QuicInitialDecoder::Status::need_more &&
            datagram_index + 1 >= EXF_QUIC_MAX_DGRAMS)
            st = d_.finish();  // the kernel hands over no more
        switch (st) {
        case tls::QuicInitialDecoder::Status::done: return Status::done;
        case tls::QuicInitialDecoder::Status::failed: return Status::failed;
        case tls::QuicInitialDecoder::Status::need_more: break;
        }
        return Status::need_more;
    }
    const tls::ClientHello &hello() const override { return d_.hello(); }
    std::string_view failure() const override { return d_.failure(); }
    std::vector<std::string_view> anomalies() const override { return d_.anomalies(); }

private:
    tls::QuicInitialDecoder d_;
};

}  // namespace

std::unique_ptr<QuicHelloDecoder> make_quic_initial_decoder()
{
    return std::make_unique<InitialDecoder>();
}

std::string tls_version_name(uint16_t v)
{
    switch (v) {
    case 0x0304: return "1.3";
    case 0x0303: return "1.2";
    case 0x0302: return "1.1";
    case 0x0301: return "1.0";
    case 0x0300: return "ssl3";
    case 0x0002: return "ssl2";
    case 0xfeff: return "dtls1.0";
    case 0xfefd: return "dtls1.2";
    case 0xfefc: return "dtls1.3";
    default: break;
    }
    char buf[24];
    if ((v >> 8) == 0x7f)
        std::snprintf(buf, sizeof(buf), "1.3-draft-%u", unsigned(v & 0xff));
    else
        std::snprintf(buf, sizeof(buf), "0x%04x", unsigned(v));
    return buf;
}

uint16_t highest_tls_version(std::span<const uint16_t> versions)
{
    uint16_t best = 0;
    int best_rank = -1;
    for (uint16_t v : versions) {
        if (tls::is_grease(v))
            continue;
        int r = version_rank(v);
        if (r > best_rank || (r == best_rank && v > best)) {
            best = v;
            best_rank = r;
        }
    }
    return best;
}

std::string_view to_string(HelloState s)
{
    switch (s) {
    case HelloState::none: return "none";
    case HelloState::pending: return "pending";
    case HelloState::done: return "done";
    case HelloState::malformed: return "malformed";
    }
    return "?";
}

bool FlowRecord::has_anomaly(std::string_view name) const
{
    return std::find(anomalies.begin(), anomalies.end(), name) != anomalies.end();
}

size_t FlowKeyHash::operator()(const exf_flow_key &k) const noexcept
{
    return size_t(hash_bytes(&k, sizeof(k)));  // 8 bytes at a time, not bytewise
}

bool FlowKeyEq::operator()(const exf_flow_key &a, const exf_flow_key &b) const noexcept
{
    return std::memcmp(&a, &b, sizeof(a)) == 0;
}

FlowTracker::FlowTracker(FlowTrackerOptions opts) : opts_(opts)
{
    if (opts_.max_flows == 0)
        opts_.max_flows = 1;
    if (opts_.quic_initial)
        quic_factory_ = [](const FlowRecord &) { return make_quic_initial_decoder(); };
}

FlowTracker::~FlowTracker() = default;

void FlowTracker::count(std::string_view name)
{
    auto it = anomalies_.find(name);
    if (it == anomalies_.end())
        anomalies_.emplace(std::string(name), 1);
    else
        it->second++;
}

void FlowTracker::flag(FlowRecord &r, std::string_view name)
{
    if (r.has_anomaly(name))
        return;
    r.anomalies.emplace_back(name);
    count(name);
}

uint64_t FlowTracker::anomaly_count(std::string_view name) const
{
    auto it = anomalies_.find(name);
    return it == anomalies_.end() ? 0 : it->second;
}

const FlowRecord *FlowTracker::lookup(const exf_flow_key &key) const
{
    const List::iterator *it = by_key_.find(key);
    return it ? &**it : nullptr;
}

void FlowTracker::touch(const exf_flow_key &key) const
{
    // splice() keeps every iterator valid, by_key_'s included.
    if (const List::iterator *it = by_key_.find(key))
        records_.splice(records_.end(), records_, *it);
}

void FlowTracker::evict_if_full()
{
    while (records_.size() >= opts_.max_flows) {
        auto it = records_.begin();
        if (on_evict_)
            on_evict_(*it);
        if (!it->finalized) {
            const List::iterator *k = by_key_.find(it->key);
            if (k && *k == it)
                by_key_.erase(it->key);
        }
        tcp_.erase(it->id);
        quic_.erase(it->id);
        records_.pop_front();
        stats_.evicted++;
    }
}

FlowRecord &FlowTracker::record_for(const exf_event_hdr &h)
{
    if (List::iterator *it = by_key_.find(h.key)) {
        FlowRecord &r = **it;
        r.last_event_ns = std::max(r.last_event_ns, uint64_t(h.ts_ns));
        return r;
    }
    evict_if_full();
    FlowRecord r;
    r.id = next_id_++;
    r.key = h.key;
    r.kind = h.kind;
    r.client = h.client;
    r.first_event_ns = r.last_event_ns = h.ts_ns;
    records_.push_back(std::move(r));
    auto it = std::prev(records_.end());
    if (auto [slot, added] = by_key_.try_emplace(h.key); added)
        *slot = it;
    stats_.records++;
    return *it;
}

void FlowTracker::finalize(List::iterator it)
{
    if (it->finalized)
        return;
    it->finalized = true;
    const List::iterator *k = by_key_.find(it->key);
    if (k && *k == it)
        by_key_.erase(it->key);
}

void FlowTracker::on_event(std::span<const uint8_t> ev)
{
    stats_.events++;
    auto bad = [this](std::string_view name) {
        stats_.bad_events++;
        count(name);
    };
    if (ev.size() < sizeof(exf_event_hdr))
        return bad("event_short");
    exf_event_hdr h;
    std::memcpy(&h, ev.data(), sizeof(h));
    const uint8_t proto = h.key.proto;
    if (h.type == EXF_EV_HELLO) {
        if (ev.size() < EXF_HELLO_EVENT_HDR_SIZE)
            return bad("event_short");
        exf_hello_event e;
        std::memcpy(&e, ev.data(), EXF_HELLO_EVENT_HDR_SIZE);
        if (h.len == 0 || h.len > EXF_CHUNK_MAX ||
            EXF_HELLO_EVENT_HDR_SIZE + size_t(h.len) > ev.size())
            return bad("event_bad_length");
        if (!((proto == kTcp && h.kind == EXF_KIND_TLS) ||
              (proto == kUdp && h.kind == EXF_KIND_QUIC)))
            return bad("event_bad_key");
        if (h.client != EXF_CLIENT_LO && h.client != EXF_CLIENT_HI)
            return bad("event_bad_client");
        stats_.hello_events++;
        on_hello(e, ev.subspan(EXF_HELLO_EVENT_HDR_SIZE, h.len));
    } else if (h.type == EXF_EV_FLOW_END) {
        if (ev.size() < sizeof(exf_flow_end_event))
            return bad("event_short");
        if ((proto != kTcp && proto != kUdp) || (h.kind != EXF_KIND_TLS && h.kind != EXF_KIND_QUIC))
            return bad("event_bad_key");
        if (h.reason != EXF_END_FIN && h.reason != EXF_END_RST && h.reason != EXF_END_REUSE)
            return bad("event_bad_reason");
        exf_flow_end_event e;
        std::memcpy(&e, ev.data(), sizeof(e));
        stats_.end_events++;
        on_end(e);
    } else {
        bad("event_unknown_type");
    }
}

void FlowTracker::on_hello(const exf_hello_event &e, std::span<const uint8_t> data)
{
    const exf_event_hdr &h = e.hdr;
    if (h.key.proto == kTcp) {
        // The kernel's client ISN for this entry: constant over its events.
        const uint32_t isn = e.seq - e.offset;
        if (List::iterator *it = by_key_.find(h.key)) {
            const List::iterator rec = *it;
            FlowRecord &old = *rec;
            if (old.isn_known && old.isn != isn) {
                // A new kernel entry without a REUSE event: a different flow.
                flag(old, "flow_restarted");
                settle_pending(old);
                finalize(rec);
                if (on_end_)
                    on_end_(old);
            }
        }
    }
    FlowRecord &r = record_for(h);
    r.hello_events++;
    if (h.key.proto == kUdp) {
        if (!quic_factory_ || r.hello == HelloState::done || r.hello == HelloState::malformed)
            return;
        auto &dec = quic_[r.id];
        if (!dec) {
            dec = quic_factory_(r);
            if (!dec) {
                quic_.erase(r.id);
                return;
            }
        }
        r.hello = HelloState::pending;
        auto st = dec->add(e.seq, data);
        if (st == QuicHelloDecoder::Status::done) {
            for (auto a : dec->anomalies())
                flag(r, a);
            record_hello(r, dec->hello());
            quic_.erase(r.id);
        } else if (st == QuicHelloDecoder::Status::failed) {
            r.hello = HelloState::malformed;
            const std::string_view why =
                dec->failure().empty() ? std::string_view("quic_hello_failed") : dec->failure();
            for (auto a : dec->anomalies())
                if (a != why)
                    flag(r, a);
            flag(r, why);
            quic_.erase(r.id);
        }
        return;
    }

    if (!r.isn_known) {
        r.isn_known = true;
        r.isn = e.seq - e.offset;
    }
    if (r.hello == HelloState::done || r.hello == HelloState::malformed)
        return;  // a retransmission after the result
    auto &ra = tcp_[r.id];
    if (!ra)
        ra = std::make_unique<tls::HelloReassembler>(tls::HelloReassembler::Framing::tls_record);
    r.hello = HelloState::pending;
    auto st = ra->add(e.offset, data);
    if (ra->conflicts() > 0)
        flag(r, "hello_conflict");
    if (st == tls::HelloReassembler::Status::need_more && ra->contiguous() >= EXF_HELLO_MAX) {
        // The kernel hands over no more than this: it will never complete.
        r.hello = HelloState::malformed;
        flag(r, "hello_beyond_capture");
        tcp_.erase(r.id);
        return;
    }
    take_result(r);
}

void FlowTracker::take_result(FlowRecord &r)
{
    auto it = tcp_.find(r.id);
    if (it == tcp_.end())
        return;
    tls::HelloReassembler &ra = *it->second;
    switch (ra.status()) {
    case tls::HelloReassembler::Status::need_more: return;
    case tls::HelloReassembler::Status::done:
        if (ra.anomaly() != tls::HelloAnomaly::none)
            flag(r, tls::to_string(ra.anomaly()));
        record_hello(r, ra.hello());
        break;
    case tls::HelloReassembler::Status::malformed:
        r.hello = HelloState::malformed;
        flag(r, tls::to_string(ra.anomaly()));
        break;
    }
    tcp_.erase(it);
}

void FlowTracker::settle_pending(FlowRecord &r)
{
    if (auto it = tcp_.find(r.id); it != tcp_.end()) {
        it->second->finish();
        take_result(r);
    }
    if (auto it = quic_.find(r.id); it != quic_.end()) {
        r.hello = HelloState::malformed;
        for (auto a : it->second->anomalies())
            flag(r, a);
        flag(r, "quic_hello_incomplete");
        quic_.erase(it);
    }
}

void FlowTracker::record_hello(FlowRecord &r, const tls::ClientHello &h)
{
    TlsMeta &m = r.tls;
    m = TlsMeta{};
    m.known = true;
    if (h.has_sni)
        m.sni = h.sni;
    m.sni_is_ip = h.sni_is_ip;
    m.alpn = h.alpn;
    for (uint16_t v : h.supported_versions)
        if (!tls::is_grease(v))
            m.versions.push_back(v);
    if (m.versions.empty())
        m.versions.push_back(h.legacy_version);
    uint16_t top = highest_tls_version(m.versions);
    m.tls_version = top ? tls_version_name(top) : std::string();
    tls::Ja4Options o;
    o.transport = h.is_quic ? tls::Ja4Transport::quic : tls::Ja4Transport::tcp;
    o.alpn_rule = opts_.alpn_rule;
    m.ja4 = ja4_.ja4(h, o);
    m.ech = h.ech;
    r.hello = HelloState::done;
    stats_.hellos_done++;
    if (on_meta_)
        on_meta_(r);
}

void FlowTracker::on_end(const exf_flow_end_event &e)
{
    FlowRecord &r = record_for(e.hdr);
    r.ended = true;
    r.end_reason = e.hdr.reason;
    r.has_counters = true;
    r.counters = e.flow;
    if (r.client == EXF_CLIENT_UNKNOWN)
        r.client = e.hdr.client;
    // The client's bytes are over (FIN both ways, RST, a new connection).
    settle_pending(r);
    if (e.hdr.reason == EXF_END_REUSE) {
        if (const List::iterator *it = by_key_.find(e.hdr.key))
            finalize(*it);
    }
    if (on_end_)
        on_end_(r);
}

void FlowTracker::finish()
{
    for (auto &r : records_)
        if (r.hello == HelloState::pending)
            settle_pending(r);
}

}  // namespace exf
