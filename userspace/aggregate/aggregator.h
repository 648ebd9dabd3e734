// SPDX-License-Identifier: Apache-2.0
#pragma once
// The aggregation stage: per entity (client, subnet, API host, client x API
// host, cohort, host, JA4, JA4 x API host; entity_key.h) and per sliding window (windows.h), bytes
// out and in, TLS flows opened, peak concurrent flows, and for groups the
// number of distinct clients and of the distinct subnets they came from.
// docs/aggregation.md has the design and figures.
//
// Single writer: one thread owns an Aggregator; nothing here locks. Const
// queries may run on that thread between updates.
//
// Time: milliseconds on the caller's clock (monotonic live, packet time in
// replay; never wall clock). Time never goes backward: the aggregator keeps
// the latest time it was given (clock_ms()) and counts an input stamped
// earlier at that time; queries read at max(now_ms, clock_ms()). A timestamp
// far in the future therefore drags everything after it along.
//
// Memory per entity, with n windows, plus 8 bytes per index slot (1.33 to
// 2.67 slots per entity: the index doubles at 3/4 full):
//   client            72 + 44 n   (248 with the 4 default windows; measured
//                                  270 B/client at 100k, index and slab slack
//                                  included)
//   client x API host 40 + 44 n   (216)
//   subnet            88 + 88 n   (440)
//   API host          56 + 88 n   (408) + 2 + the name past 15 bytes
//   cohort           104 + 88 n   (456) + the label past 15 bytes
//   ja4              208 + 88 n   (560) + the JA4 (37)
//   ja4 x API host   192 + 88 n   (544) + the JA4 and the name past 15 bytes
//   membership        48          (the members behind distinct counts)
//   host             one entity
// Slabs grow by chunks of 1024 entities (16 for cohorts, 64 for JA4s, 256
// for API hosts and JA4 x API hosts). With the default limits the worst case
// is about 280 MB of clients, 243 MB of client x API host, 120 MB of
// subnets, 46 MB of API hosts, 1.9 MB of cohorts, 10 MB of JA4s, 41 MB of
// JA4 x API hosts and 67 MB of memberships (sizes from sizeof and the
// formulas above). memory_bytes() reports what is allocated;
// docs/aggregation.md has the design and measurements.
//
// Eviction: when a kind is at its limit, creating an entity evicts the least
// recently updated of 8 sampled ones (approximate LRU; evictions(kind) counts
// them). An evicted client is no longer counted in its groups' distinct
// clients; if it comes back it is a new entity (first_seen restarts).
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aggregate/cohorts.h"
#include "aggregate/entity_key.h"
#include "aggregate/limits.h"
#include "aggregate/windows.h"
#include "common/addr.h"

namespace exf {
class StateReader;
class StateWriter;
}  // namespace exf

namespace exf::agg {

// Deltas since the previous report for one client and API host.
struct Traffic {
    uint64_t bytes_in = 0;      // client to server
    uint64_t bytes_out = 0;     // server to client: the exfiltration side
    uint64_t pkts_in = 0;       // accepted, not aggregated
    uint64_t pkts_out = 0;      // accepted, not aggregated
    uint64_t flows_opened = 0;  // TLS flows opened: the tls_flows metric
    uint64_t requests = 0;      // API calls (client turns, docs/datapath.md)
};

struct WindowValue {
    uint64_t bytes_out = 0, bytes_in = 0, tls_flows = 0;
    uint32_t peak_concurrent = 0;
    uint32_t distinct_clients = 0;  // groups (is_group()); 0 otherwise
    uint32_t distinct_subnets = 0;  // groups but subnet (counts_subnets()); 0 otherwise
    uint64_t requests = 0;          // API calls (client turns)
    bool operator==(const WindowValue &) const = default;
};

// `concurrent` sorts by the window's peak concurrent flows.
enum class SortBy : uint8_t {
    bytes_out,
    bytes_in,
    tls_flows,
    concurrent,
    distinct_clients,
    distinct_subnets,
    requests
};

struct AggConfig {
    // Window lengths, in the order window indices refer to them: within
    // kWindowMs, no duplicates, at most kMaxWindows (aggregate/limits.h,
    // as every bound validate() checks).
    std::vector<uint64_t> windows_ms{60'000, 600'000, 3'600'000, 86'400'000};
    uint8_t client_prefix_v4 = 32, client_prefix_v6 = 64;
    // Must not be longer than the client prefix of the same family.
    uint8_t subnet_prefix_v4 = 24, subnet_prefix_v6 = 48;
    std::vector<CohortRule> cohorts;  // e.g. load_cohorts(path).rules
    // Entity limits (approximate-LRU eviction past them).
    size_t max_clients = size_t(1) << 20;
    size_t max_subnets = size_t(1) << 18;
    size_t max_api_hosts = size_t(1) << 16;  // at most 2^20
    size_t max_client_api_hosts = size_t(1) << 20;
    size_t max_cohorts = 4096;
    size_t max_ja4 = size_t(1) << 14;       // fingerprints
    size_t max_ja4_snis = size_t(1) << 16;  // fingerprint x API host
    // (member, group) pairs behind the distinct counts the other kinds do
    // not hold themselves: a fingerprint's clients, a group's subnets.
    size_t max_memberships = size_t(1) << 20;

    // The limit of a kind (the host: 1).
    size_t limit(EntityKind k) const;

    // Problems, one sentence each; empty when valid.
    std::vector<std::string> validate() const;

    // The client entity an address counts for (its family's client prefix):
    // what client rules measure and alerts name.
    uint8_t client_prefix(const Addr16 &a) const
    {
        return is_v4(a) ? client_prefix_v4 : client_prefix_v6;
    }
    EntityKey client_key(const Addr16 &a) const { return prefix_key(a, client_prefix(a)); }
};

struct SniShare {
    std::string sni;
    // Space-saving estimate of bytes out to this SNI since the entity was
    // first seen: may over-count by the smallest kept share once more than
    // 4 SNIs were seen; clients count in KiB (each update rounded up).
    uint64_t bytes_out = 0;
};

struct ClientShare {
    EntityKey client;  // the client entity (address and prefix)
    // Space-saving estimate of the TLS flows it opened in the group since
    // the group was first seen (over-counts as SniShare does).
    uint64_t tls_flows = 0;
};

struct Row {
    EntityKey key;
    WindowValue value;
    uint64_t first_seen_ms = 0, last_seen_ms = 0;
    uint32_t concurrent = 0;  // open flows now
};

struct AggImpl;

// One entity, read through the aggregator. Valid until the next update,
// expire() or reconfigure().
class EntityRef {
public:
    EntityKind kind() const { return kind_; }
    EntityKey key() const;
    uint64_t first_seen_ms() const;
    uint64_t last_seen_ms() const;
    uint32_t concurrent() const;  // open flows now
    WindowValue value(size_t window, uint64_t now_ms, Estimate e = Estimate::sliding) const;
    // Client, subnet, cohort and host: up to 4 heaviest SNIs by bytes out,
    // heaviest first. Empty for other kinds.
    std::vector<SniShare> top_snis() const;
    // ja4 and ja4_sni: up to 4 clients opening the most TLS flows, heaviest
    // first. Empty for other kinds.
    std::vector<ClientShare> top_clients() const;

private:
    friend struct AggImpl;
    EntityRef(const AggImpl *impl, EntityKind kind, uint32_t slot)
        : impl_(impl), kind_(kind), slot_(slot)
    {}
    const AggImpl *impl_;
    EntityKind kind_;
    uint32_t slot_;
};

class Aggregator {
public:
    // Throws exf::Error when cfg.validate() finds problems.
    explicit Aggregator(const AggConfig &cfg = {});
    ~Aggregator();
    Aggregator(Aggregator &&) noexcept;
    Aggregator &operator=(Aggregator &&) noexcept;
    Aggregator(const Aggregator &) = delete;
    Aggregator &operator=(const Aggregator &) = delete;

    // --- inputs -----------------------------------------------------------
    // Adds deltas to the client, its subnet, cohort and the host, when
    // sni is not empty to the API host and client x API host, and when the
    // flow's JA4 is known (not empty) to the fingerprint and, with an SNI,
    // to the fingerprint x API host.
    void add_traffic(uint64_t now_ms, const Addr16 &client, std::string_view sni, const Traffic &d,
                     std::string_view ja4 = {});
    // One more / one fewer open flow on the same entities (concurrency and
    // its per-window peak only: tls_flows counts Traffic::flows_opened).
    // flow_closed creates nothing and never goes below 0.
    void flow_opened(uint64_t now_ms, const Addr16 &client, std::string_view sni,
                     std::string_view ja4 = {});
    void flow_closed(uint64_t now_ms, const Addr16 &client, std::string_view sni,
                     std::string_view ja4 = {});
    // Drops entities idle for longer than the longest window (the host
    // entity stays) and compacts sparse tables. Returns how many it dropped.
    // Cost: one pass over every entity.
    size_t expire(uint64_t now_ms);

    // --- configuration ----------------------------------------------------
    const AggConfig &config() const;
    // Applies a new configuration, keeping counters where it can:
    //  - windows of the same length keep their counters (even when they
    //    move in the list); new windows count from now on (their distinct
    //    clients are rebuilt at once from last-seen times);
    //  - a shorter client or subnet prefix re-keys existing entities (several
    //    merge into one); a longer one cannot split counters: old entities keep
    //    their old prefix until they expire, new traffic creates new ones;
    //  - cohort entities are keyed by label: labels kept keep their counters;
    //    clients follow the new rules from their next update;
    //  - lower limits evict down to them.
    // Distinct-client counts are then recounted. On an invalid configuration
    // nothing changes, false is returned and why holds every problem.
    bool reconfigure(const AggConfig &cfg, std::string &why);

    // --- state file (state/state_file.h) ---------------------------------
    // Every entity with its windows and the clock. restore_state() replaces
    // this aggregator's entities with the saved ones; the windows must be
    // the ones saved (construct with them, then reconfigure()); limits apply
    // as configured now. Throws exf::Error on bad input, changing nothing.
    void save_state(StateWriter &w) const;
    void restore_state(StateReader &r);

    // --- keys under the current configuration -----------------------------
    EntityKey client_key(const Addr16 &addr) const;
    EntityKey subnet_key(const Addr16 &addr) const;
    EntityKey client_api_key(const Addr16 &addr, std::string_view sni) const;
    EntityKey api_host_key(std::string_view sni) const { return name_key(normalize_sni(sni)); }
    EntityKey cohort_key(std::string_view label) const { return name_key(label); }
    EntityKey ja4_key(std::string_view ja4, std::string_view sni = {}) const
    {
        return agg::ja4_key(ja4, sni);
    }
    // Label of the cohort addr belongs to (matched as its client entity).
    std::optional<std::string> cohort_of(const Addr16 &addr) const;

    // --- queries ----------------------------------------------------------
    size_t windows() const;
    uint64_t window_ms(size_t window) const;
    uint64_t clock_ms() const;

    std::optional<EntityRef> find(EntityKind kind, const EntityKey &key) const;
    // Zeros for an unknown entity or window index.
    WindowValue value(EntityKind kind, const EntityKey &key, size_t window, uint64_t now_ms,
                      Estimate e = Estimate::sliding) const;
    // The n largest by `by` over the window, largest first; ties by bytes
    // out, then the older entity first. Entities reading 0 on `by` are left
    // out. Empty for an unknown window. Cost: one pass over the kind.
    std::vector<Row> top(EntityKind kind, size_t window, SortBy by, size_t n, uint64_t now_ms,
                         Estimate e = Estimate::sliding) const;
    void for_each(EntityKind kind, const std::function<void(const EntityRef &)> &fn) const;
    // The entities of the kind updated at or after since_ms (the clock), in
    // slot order. It costs the entities updated since, from a list kept per
    // kind from the first call on; the first call, and one with since_ms
    // earlier than the call before, pass over the whole kind.
    void for_each_active_since(EntityKind kind, uint64_t since_ms,
                               const std::function<void(const EntityRef &)> &fn) const;
    std::vector<SniShare> top_snis(EntityKind kind, const EntityKey &key) const;

    // --- accounting -------------------------------------------------------
    size_t size(EntityKind kind) const;
    uint64_t evictions(EntityKind kind) const;
    uint64_t expirations(EntityKind kind) const;
    uint64_t updates() const;  // inputs processed
    // Changes on every reconfigure() and restore_state(): after one, an
    // entity's values may have changed without an update (entities merged,
    // members recounted, windows replaced). No two aggregators share one.
    uint64_t generation() const { return generation_; }
    // The (member, group) pairs behind distinct counts (AggConfig::
    // max_memberships) and how many were evicted at that limit.
    size_t memberships() const;
    uint64_t membership_evictions() const;
    uint64_t membership_expirations() const;
    // Bytes the structures allocate (slab chunks, indexes, free lists, heap
    // strings, cohort tables), in total or for one kind's table.
    size_t memory_bytes() const;
    size_t memory_bytes(EntityKind kind) const;

private:
    std::unique_ptr<AggImpl> impl_;
    uint64_t generation_ = 0;
};

}  // namespace exf::agg
