// SPDX-License-Identifier: Apache-2.0
#pragma once
// Per-flow TLS metadata from the datapath's events (bpf/exfilmon_shared.h).
//
// The FlowTracker takes each raw event as the ring buffer (or the userspace
// datapath) hands it over and
//   * validates it: an event shorter than its type needs, of an unknown type,
//     with an impossible length, key or kind is counted under an "event_*"
//     anomaly name and otherwise ignored (never a crash, never a throw);
//   * keeps one record per flow, keyed by the canonical flow key
//     (exf_flow_key), bounded by FlowTrackerOptions::max_flows: when full the
//     record least recently active is evicted (counted in stats().evicted).
//     Active: created, or touch()ed by the harvest for traffic in the
//     flow's table entry; a long-lived busy flow keeps its record (and its
//     SNI attribution) however many short flows come and go beside it;
//   * reassembles a TCP flow's ClientHello from its hello chunks by stream
//     offset (tls::HelloReassembler: out of order, retransmitted and
//     overlapping chunks are fine) and, once complete, records SNI, ALPN, the
//     offered TLS versions, JA4, the ECH flag and the hello's anomalies;
//   * QUIC flows: records transport "quic". Their ClientHello sits in
//     encrypted Initial packets: a QuicHelloDecoder per flow (below) decrypts
//     the client's datagrams. By default (FlowTrackerOptions::quic_initial)
//     it is make_quic_initial_decoder(): tls::QuicInitialDecoder (RFC 9001
//     Initial decryption, CRYPTO reassembly, the TCP path's ClientHello
//     parser; see tls/quic_initial.h). Once the kernel's last datagram
//     (EXF_QUIC_MAX_DGRAMS) came without a complete hello, the flow's hello
//     is malformed (quic_hello_beyond_capture, or why no Initial could be
//     read). set_quic_decoder() replaces the stage; set_quic_decoder(nullptr)
//     removes it (QUIC flows then carry no TLS metadata);
//   * flow-end events: FIN/RST mark the record ended (the counters in the
//     event are a snapshot at close; the kernel keeps the entry). REUSE (a new
//     SYN on the 5-tuple) finalizes the record: its counters are final, it
//     stops being the key's record, and later events for the key start a new
//     record (the kernel's new entry is a different flow).
//
// Anomalies are counted by name over all flows (anomalies()) and listed per
// flow (FlowRecord::anomalies). Names:
//   event_short          an event shorter than its header/type needs
//   event_unknown_type   an event type this build does not know
//   event_bad_length     hello: len 0, above EXF_CHUNK_MAX or beyond the event
//   event_bad_key        protocol neither TCP nor UDP, or kind/protocol mismatch
//   event_bad_reason     flow end: a reason other than FIN, RST, REUSE
//   event_bad_client     hello: the client side is unknown
//   <HelloAnomaly name>  tls::to_string(): not_handshake, bad_sni,
//                        truncated_handshake (a hello the flow never
//                        completed: ended, or the input finished), ...
//   hello_conflict       retransmitted hello bytes that differ from the first copy
//   hello_beyond_capture the hello is longer than the EXF_HELLO_MAX bytes the
//                        kernel hands over (a hello spread over more than
//                        EXF_HELLO_MAX_SEGS segments stays pending instead,
//                        and ends as truncated_* at the flow's end or finish())
//   flow_restarted       hello chunks of a new client ISN on a tracked key
//                        without a REUSE event (the kernel's entry was
//                        evicted and created again): the old record is
//                        finalized without final counters
//   quic_hello_incomplete a QUIC hello still pending at the flow's end or finish()
//   quic_hello_failed    a decoder failed without naming why
//   quic_*, <HelloAnomaly name>
//                        the decoder's (tls/quic_initial.h lists the default
//                        decoder's: quic_decrypt_failed, quic_unknown_version,
//                        quic_unknown_frame, quic_hello_beyond_capture, ...)
//
// Single-threaded: call everything from the thread that reads the events.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "capture/shared_layout.h"
#include "common/addr.h"
#include "common/dense_map.h"
#include "tls/client_hello.h"
#include "tls/ja4.h"

namespace exf {

namespace tls {
class HelloReassembler;
}

// What a flow's ClientHello says; valid when known.
struct TlsMeta {
    bool known = false;              // a complete ClientHello was parsed
    std::optional<std::string> sni;  // raw bytes; nullopt: no server_name
    bool sni_is_ip = false;          // the SNI is an IP literal
    std::vector<std::string> alpn;   // raw bytes, wire order
    std::vector<uint16_t> versions;  // offered: supported_versions without
                                     // GREASE, else {legacy_version}
    std::string tls_version;         // highest offered: "1.3", "1.2", ...
    std::string ja4;
    bool ech = false;  // encrypted_client_hello present (sni is the outer name)
};

enum class HelloState : uint8_t {
    none,       // no hello bytes yet (or a QUIC flow without a decoder)
    pending,    // reassembling
    done,       // TlsMeta known
    malformed,  // never a ClientHello (anomaly says why)
};
std::string_view to_string(HelloState s);

struct FlowRecord {
    uint64_t id = 0;  // creation order, from 1
    exf_flow_key key{};
    uint8_t kind = EXF_KIND_PENDING;  // EXF_KIND_TLS or EXF_KIND_QUIC
    uint8_t client = EXF_CLIENT_UNKNOWN;
    uint64_t first_event_ns = 0, last_event_ns = 0;
    uint32_t hello_events = 0;
    bool isn_known = false;  // TCP: the kernel's client ISN (seq - offset)
    uint32_t isn = 0;

    HelloState hello = HelloState::none;
    TlsMeta tls;
    std::vector<std::string> anomalies;  // distinct names, in the order first seen

    bool ended = false;         // a flow-end event came
    uint8_t end_reason = 0;     // enum exf_end_reason of the last one
    bool has_counters = false;  // counters holds a flow-end event's exf_flow
    exf_flow counters{};
    bool finalized = false;  // REUSE / restart: no longer its key's record

    // "tcp" or "quic".
    std::string_view transport() const { return kind == EXF_KIND_QUIC ? "quic" : "tcp"; }
    // The client's address (its side of the key).
    Addr16 client_addr() const
    {
        Addr16 a;
        std::memcpy(a.data(), client == EXF_CLIENT_HI ? key.hi_addr : key.lo_addr, a.size());
        return a;
    }
    bool has_anomaly(std::string_view name) const;
};

// The QUIC Initial seam: decrypts a QUIC flow's client Initial datagrams (up
// to EXF_QUIC_MAX_DGRAMS, in the event's seq order) and reassembles the
// ClientHello from their CRYPTO frames. One instance per flow.
class QuicHelloDecoder {
public:
    enum class Status : uint8_t { need_more, done, failed };
    virtual ~QuicHelloDecoder() = default;
    virtual Status add(uint32_t datagram_index, std::span<const uint8_t> udp_payload) = 0;
    // done: the ClientHello (is_quic set).
    virtual const tls::ClientHello &hello() const = 0;
    // failed: why, as an anomaly name.
    virtual std::string_view failure() const = 0;
    // Problems seen on the way (also when done), as anomaly names; the
    // tracker flags them on the record when the decoder finishes.
    virtual std::vector<std::string_view> anomalies() const { return {}; }
};

// The default decoder: tls::QuicInitialDecoder, failed once the datagram
// with index EXF_QUIC_MAX_DGRAMS - 1 (the kernel's last) leaves it pending.
std::unique_ptr<QuicHelloDecoder> make_quic_initial_decoder();

struct FlowTrackerOptions {
    size_t max_flows = 65536;  // active plus finalized records kept
    // FoxIO's tools' ALPN characters, which the shared captures' expected JA4s use.
    tls::Ja4AlpnRule alpn_rule = tls::Ja4AlpnRule::foxio_tool;
    // Decrypt QUIC Initials with make_quic_initial_decoder() unless
    // set_quic_decoder() says otherwise.
    bool quic_initial = true;
};

struct FlowTrackerStats {
    uint64_t events = 0;        // events handed in
    uint64_t hello_events = 0;  // valid hello events
    uint64_t end_events = 0;    // valid flow-end events
    uint64_t bad_events = 0;    // events ignored as invalid (see the event_* anomalies)
    uint64_t records = 0;       // records created
    uint64_t evicted = 0;       // records dropped to stay within max_flows
    uint64_t hellos_done = 0;   // records whose TlsMeta became known
};

// Canonical-key hashing for unordered containers.
struct FlowKeyHash {
    size_t operator()(const exf_flow_key &k) const noexcept;
};
struct FlowKeyEq {
    bool operator()(const exf_flow_key &a, const exf_flow_key &b) const noexcept;
};

class FlowTracker {
public:
    using RecordFn = std::function<void(const FlowRecord &)>;
    using QuicDecoderFactory = std::function<std::unique_ptr<QuicHelloDecoder>(const FlowRecord &)>;
    using const_iterator = std::list<FlowRecord>::const_iterator;

    explicit FlowTracker(FlowTrackerOptions opts = {});
    ~FlowTracker();
    FlowTracker(const FlowTracker &) = delete;
    FlowTracker &operator=(const FlowTracker &) = delete;

    // One event's bytes, as read from the ring buffer.
    void on_event(std::span<const uint8_t> event);
    // End of input (replay end, shutdown): hellos still reassembling become
    // malformed with their truncation anomaly.
    void finish();

    // Called once per record when its TlsMeta becomes known (the aggregator
    // attributes the flow's traffic to the SNI from then on).
    void set_on_tls_meta(RecordFn fn) { on_meta_ = std::move(fn); }
    // Called on every flow-end event, after the record took it in (finalized
    // is set for REUSE), and when a record is finalized by a restart.
    void set_on_flow_end(RecordFn fn) { on_end_ = std::move(fn); }
    // Called just before a record is evicted.
    void set_on_evict(RecordFn fn) { on_evict_ = std::move(fn); }
    // The QUIC Initial decryption stage (default: make_quic_initial_decoder
    // when options().quic_initial); nullptr: none.
    void set_quic_decoder(QuicDecoderFactory f) { quic_factory_ = std::move(f); }

    // The key's current record (not finalized), or nullptr.
    const FlowRecord *lookup(const exf_flow_key &key) const;
    // The flow had traffic: its current record (if any) becomes the most
    // recently active, the last to be evicted. Changes only the eviction
    // order (hence const: HarvestStage calls it on the tracker it reads).
    void touch(const exf_flow_key &key) const;
    // Every record kept, active and finalized, least recently active first.
    const_iterator begin() const { return records_.begin(); }
    const_iterator end() const { return records_.end(); }
    size_t size() const { return records_.size(); }
    size_t active() const { return by_key_.size(); }

    // Anomaly name -> count, over all flows and events.
    const std::map<std::string, uint64_t, std::less<>> &anomalies() const { return anomalies_; }
    uint64_t anomaly_count(std::string_view name) const;
    const FlowTrackerStats &stats() const { return stats_; }
    const FlowTrackerOptions &options() const { return opts_; }

private:
    using List = std::list<FlowRecord>;

    void count(std::string_view name);
    void flag(FlowRecord &r, std::string_view name);
    FlowRecord &record_for(const exf_event_hdr &h);
    void on_hello(const exf_hello_event &e, std::span<const uint8_t> data);
    void on_end(const exf_flow_end_event &e);
    void settle_pending(FlowRecord &r);
    void take_result(FlowRecord &r);
    void record_hello(FlowRecord &r, const tls::ClientHello &h);
    void finalize(List::iterator it);
    void evict_if_full();

    FlowTrackerOptions opts_;
    mutable List records_;  // eviction order: touch() moves a record to the back
    DenseMap<exf_flow_key, List::iterator> by_key_;  // open addressing (common/dense_map.h)
    // Reassembly state of records still reassembling, by record id.
    std::unordered_map<uint64_t, std::unique_ptr<tls::HelloReassembler>> tcp_;
    std::unordered_map<uint64_t, std::unique_ptr<QuicHelloDecoder>> quic_;
    std::map<std::string, uint64_t, std::less<>> anomalies_;
    FlowTrackerStats stats_;
    tls::Ja4Cache ja4_;
    uint64_t next_id_ = 1;
    RecordFn on_meta_, on_end_, on_evict_;
    QuicDecoderFactory quic_factory_;
};

// Offered TLS version names: 0x0304 "1.3", 0x0303 "1.2", 0x0302 "1.1",
// 0x0301 "1.0", 0x0300 "ssl3", 0x0002 "ssl2", 0x7fNN "1.3-draft-NN",
// DTLS 0xfeff "dtls1.0", 0xfefd "dtls1.2", 0xfefc "dtls1.3", else "0xNNNN".
std::string tls_version_name(uint16_t v);
// The highest of the offered versions (GREASE ignored; a TLS 1.3 draft ranks
// between 1.2 and 1.3, unknown values lowest); 0 if none.
uint16_t highest_tls_version(std::span<const uint16_t> versions);

}  // namespace exf
