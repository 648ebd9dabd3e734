// SPDX-License-Identifier: Apache-2.0
#include "aggregate/aggregator.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <type_traits>

#include "aggregate/api_host_ids.h"
#include "aggregate/entities.h"
#include "aggregate/entity_hash.h"
#include "aggregate/entity_state.h"
#include "aggregate/entity_table.h"
#include "aggregate/entity_tables.h"
#include "aggregate/entity_windows.h"
#include "aggregate/eviction.h"
#include "aggregate/update_log.h"
#include "common/error.h"
#include "common/state_codec.h"

namespace exf::agg {

using detail::ApiHostEntry;
using detail::ApiHostIds;
using detail::ClientApiHostEntry;
using detail::ClientEntry;
using detail::CohortEntry;
using detail::EntityHasher;
using detail::EntityTable;
using detail::EntityTables;
using detail::EvictionSampler;
using detail::HostEntry;
using detail::Ja4Entry;
using detail::Ja4SniEntry;
using detail::kApiHostHeaderMin;
using detail::kClients;
using detail::kCohortHeaderMin;
using detail::kHasTop;
using detail::kHasTopClients;
using detail::kNoSlot;
using detail::kSubnets;
using detail::kTopK;
using detail::MemberEntry;
using detail::MemberRole;
using detail::read_api_host_header;
using detail::read_cohort_header;
using detail::SavedIds;
using detail::SubnetEntry;
using detail::Tally;
using detail::TopSnis;
using detail::UpdateLog;

namespace {

// Heap bytes of a string (0 when it fits the small-string buffer).
int64_t heap_bytes(const std::string &s)
{
    return s.capacity() > 15 ? static_cast<int64_t>(s.capacity() + 1) : 0;
}

uint64_t kib_up(uint64_t bytes) { return (bytes >> 10) + ((bytes & 1023) != 0); }

std::string join(const std::vector<std::string> &v)
{
    std::string s;
    for (auto &x : v)
        s += (s.empty() ? "" : "; ") + x;
    return s;
}

}  // namespace

// ---------------------------------------------------------------------------
std::vector<std::string> AggConfig::validate() const
{
    std::vector<std::string> p;
    if (windows_ms.empty())
        p.push_back("at least one window is needed");
    if (windows_ms.size() > kMaxWindows)
        p.push_back("at most " + std::to_string(kMaxWindows) + " windows");
    for (size_t i = 0; i < windows_ms.size(); i++) {
        uint64_t w = windows_ms[i];
        if (!kWindowMs.contains(w))
            p.push_back("window " + std::to_string(w) + " ms is outside " +
                        window_name(kWindowMs.lo) + ".." + window_name(kWindowMs.hi));
        for (size_t j = 0; j < i; j++)
            if (windows_ms[j] == w)
                p.push_back("window " + window_name(w) + " is listed twice");
    }
    auto within = [&](uint64_t v, const char *what, const Range &r) {
        if (!r.contains(v))
            p.push_back(std::string(what) + " must be " + std::to_string(r.lo) + ".." +
                        std::to_string(r.hi));
    };
    within(client_prefix_v4, "IPv4 client prefix", kPrefixV4);
    within(client_prefix_v6, "IPv6 client prefix", kPrefixV6);
    within(subnet_prefix_v4, "IPv4 subnet prefix", kPrefixV4);
    within(subnet_prefix_v6, "IPv6 subnet prefix", kPrefixV6);
    if (subnet_prefix_v4 > client_prefix_v4)
        p.push_back("IPv4 subnet prefix /" + std::to_string(subnet_prefix_v4) +
                    " is longer than the client prefix /" + std::to_string(client_prefix_v4));
    if (subnet_prefix_v6 > client_prefix_v6)
        p.push_back("IPv6 subnet prefix /" + std::to_string(subnet_prefix_v6) +
                    " is longer than the client prefix /" + std::to_string(client_prefix_v6));
    within(max_clients, "max_clients", kMaxClients);
    within(max_subnets, "max_subnets", kMaxSubnets);
    within(max_api_hosts, "max_api_hosts", kMaxApiHosts);
    within(max_client_api_hosts, "max_client_api_hosts", kMaxClientApiHosts);
    within(max_cohorts, "max_cohorts", kMaxCohorts);
    within(max_ja4, "max_ja4", kMaxJa4);
    within(max_ja4_snis, "max_ja4_snis", kMaxJa4Snis);
    within(max_memberships, "max_memberships", kMaxMemberships);
    for (auto &r : cohorts) {
        if (r.prefix > family_bits(r.addr))
            p.push_back("cohort " + format_addr(r.addr) + "/" + std::to_string(r.prefix) +
                        ": prefix too long");
        if (r.label.empty())
            p.push_back("cohort " + format_addr(r.addr) + "/" + std::to_string(r.prefix) +
                        ": empty label");
    }
    return p;
}

size_t AggConfig::limit(EntityKind k) const
{
    switch (k) {
    case EntityKind::client: return max_clients;
    case EntityKind::subnet: return max_subnets;
    case EntityKind::api_host: return max_api_hosts;
    case EntityKind::client_api_host: return max_client_api_hosts;
    case EntityKind::cohort: return max_cohorts;
    case EntityKind::ja4: return max_ja4;
    case EntityKind::ja4_sni: return max_ja4_snis;
    case EntityKind::host: break;
    }
    return 1;
}

// ---------------------------------------------------------------------------
struct AggImpl {
    AggConfig cfg_;
    uint64_t longest_ = 0;
    CohortMatcher cohort_matcher_;
    std::vector<uint64_t> cohort_hash_;  // per cohort label index
    EntityTables tables_;
    ApiHostIds api_host_ids_;
    uint64_t clock_ = 0;
    EvictionSampler eviction_;
    EntityHasher hash_;
    uint64_t updates_ = 0;
    std::array<uint64_t, kEntityKinds> evicted_{}, expired_{};
    uint64_t members_evicted_ = 0, members_expired_ = 0;
    // No entity's `last` is older than this (the oldest survivor of the last
    // sweep: the clock only moves forward, and so does every `last`; merged
    // entities keep the later one), so nothing can expire before the clock
    // passes it by longest_. A restored aggregator starts without it.
    std::optional<uint64_t> oldest_last_;
    // Per kind: the entities updated lately, for for_each_active_since()
    // (update_log.h). Reads keep them (const queries, one thread).
    mutable std::array<UpdateLog, kEntityKinds> updated_;

    explicit AggImpl(const AggConfig &c) : cfg_(c), tables_(c.windows_ms.size())
    {
        longest_ = *std::max_element(c.windows_ms.begin(), c.windows_ms.end());
        set_cohorts();
    }

    const std::vector<uint64_t> &windows_ms() const { return cfg_.windows_ms; }
    size_t window_count() const { return cfg_.windows_ms.size(); }

    void set_cohorts()
    {
        cohort_matcher_ = CohortMatcher(cfg_.cohorts);
        cohort_hash_.clear();
        for (uint32_t i = 0; i < cohort_matcher_.labels(); i++)
            cohort_hash_.push_back(hash_.str(cohort_matcher_.label(i)));
        cohort_hash_.shrink_to_fit();
    }

    uint64_t tick(uint64_t now)
    {
        if (now > clock_)
            clock_ = now;
        return clock_;
    }

    uint8_t client_prefix(const Addr16 &a) const { return cfg_.client_prefix(a); }
    uint8_t subnet_prefix(const Addr16 &a) const
    {
        return is_v4(a) ? cfg_.subnet_prefix_v4 : cfg_.subnet_prefix_v6;
    }

    size_t limit(EntityKind k) const { return cfg_.limit(k); }

    // --- lookups --------------------------------------------------------------
    uint32_t find_client(const EntityTable<ClientEntry, CompactCell> &t, const Addr16 &a,
                         uint8_t p) const
    {
        return t.find(hash_.addr(a, p),
                      [&](const ClientEntry &e) { return e.prefix == p && e.addr == a; });
    }
    uint32_t find_subnet(const Addr16 &a, uint8_t p) const
    {
        return tables_.subnets.find(
            hash_.addr(a, p), [&](const SubnetEntry &e) { return e.prefix == p && e.addr == a; });
    }
    uint32_t find_client_api_host(const Addr16 &a, uint8_t p, uint32_t sni) const
    {
        return tables_.client_api_hosts.find(
            hash_.addr(a, p, sni), [&](const ClientApiHostEntry &e) {
                return e.api_host_id == sni && e.prefix == p && e.addr == a;
            });
    }
    uint32_t find_api_host(std::string_view name) const
    {
        return tables_.api_hosts.find(hash_.str(name),
                                      [&](const ApiHostEntry &e) { return e.name == name; });
    }
    uint32_t find_cohort(std::string_view label, uint64_t h) const
    {
        return tables_.cohorts.find(h, [&](const CohortEntry &e) { return e.label == label; });
    }
    uint32_t find_cohort(std::string_view label) const
    {
        return find_cohort(label, hash_.str(label));
    }
    uint32_t find_ja4(std::string_view ja4) const
    {
        return tables_.ja4s.find(hash_.str(ja4), [&](const Ja4Entry &e) { return e.ja4 == ja4; });
    }
    uint32_t find_ja4_sni(std::string_view ja4, std::string_view sni) const
    {
        return tables_.ja4_snis.find(hash_.ja4_sni(ja4, sni), [&](const Ja4SniEntry &e) {
            return e.ja4 == ja4 && e.sni == sni;
        });
    }

    // Groups of a client entity (kNoSlot when absent).
    struct Groups {
        uint32_t subnet = kNoSlot, cohort = kNoSlot, host = kNoSlot;
    };
    Groups groups_of(const ClientEntry &c) const
    {
        Groups g;
        uint8_t sp = subnet_prefix(c.addr);
        g.subnet = find_subnet(mask_addr(c.addr, sp), sp);
        if (auto l = cohort_matcher_.match(c.addr))
            g.cohort = find_cohort(cohort_matcher_.label(*l), cohort_hash_[*l]);
        g.host = tables_.host.live(0) ? 0 : kNoSlot;
        return g;
    }

    // --- create, evict, drop --------------------------------------------------
    // The entity eq matches, or (create) a new one at now, evicting one past
    // the kind's limit; fresh says it is new. kNoSlot when absent and !create.
    template <class E, class C, class Eq>
    uint32_t find_or_add(EntityTable<E, C> &t, EntityKind k, uint64_t h, Eq &&eq, bool create,
                         bool &fresh, uint64_t now)
    {
        fresh = false;
        uint32_t i = t.find(h, eq);
        if (i != kNoSlot)
            updated_[size_t(k)].note(i, t.entry(i).last, now, false, t.size());
        if (i != kNoSlot || !create)
            return i;
        i = insert(t, k, h);
        E &e = t.entry(i);
        e.first = e.last = now;
        fresh = true;
        updated_[size_t(k)].note(i, 0, now, true, t.size());
        return i;
    }

    // A slot for a new entity, evicting one first when the kind is at its limit.
    template <class E, class C>
    uint32_t insert(EntityTable<E, C> &t, EntityKind k, uint64_t h)
    {
        if constexpr (std::is_same_v<E, MemberEntry>) {
            while (t.size() >= cfg_.max_memberships && t.size() > 0) {
                drop_member(eviction_.victim(t));
                members_evicted_++;
            }
        } else {
            while (t.size() >= limit(k) && t.size() > 0)
                evict_one(t, k);
        }
        uint32_t i = t.insert(h);
        if constexpr (std::is_same_v<E, ApiHostEntry>)
            api_host_ids_.used(i);
        return i;
    }

    template <class E, class C>
    void evict_one(EntityTable<E, C> &t, EntityKind k)
    {
        drop(k, eviction_.victim(t));
        evicted_[size_t(k)]++;
    }

    void drop(EntityKind k, uint32_t i)
    {
        switch (k) {
        case EntityKind::client: {
            const ClientEntry &c = tables_.clients.entry(i);
            Groups g = groups_of(c);
            if (g.subnet != kNoSlot)
                member_gone(windows_ms(), tables_.subnets.entry(g.subnet),
                            tables_.subnets.cells(g.subnet), c.last);
            if (g.cohort != kNoSlot)
                member_gone(windows_ms(), tables_.cohorts.entry(g.cohort),
                            tables_.cohorts.cells(g.cohort), c.last);
            if (g.host != kNoSlot)
                member_gone(windows_ms(), tables_.host.entry(0), tables_.host.cells(0), c.last);
            tables_.clients.erase(i, hash_(c));
            break;
        }
        case EntityKind::client_api_host: {
            const ClientApiHostEntry &p = tables_.client_api_hosts.entry(i);
            uint32_t a = api_host_ids_.slot(p.api_host_id, tables_.api_hosts);
            if (a != kNoSlot)
                member_gone(windows_ms(), tables_.api_hosts.entry(a), tables_.api_hosts.cells(a),
                            p.last);
            tables_.client_api_hosts.erase(i, hash_(p));
            break;
        }
        case EntityKind::api_host: {
            const ApiHostEntry &a = tables_.api_hosts.entry(i);
            tables_.api_hosts.add_extra_bytes(-heap_bytes(a.name));
            api_host_ids_.retire(i);
            tables_.api_hosts.erase(i, hash_(a));
            break;
        }
        case EntityKind::subnet: tables_.subnets.erase(i, hash_(tables_.subnets.entry(i))); break;
        case EntityKind::cohort: {
            const CohortEntry &c = tables_.cohorts.entry(i);
            tables_.cohorts.add_extra_bytes(-heap_bytes(c.label));
            tables_.cohorts.erase(i, hash_(c));
            break;
        }
        case EntityKind::host: tables_.host.erase(i, 0); break;
        case EntityKind::ja4: {
            const Ja4Entry &e = tables_.ja4s.entry(i);
            tables_.ja4s.add_extra_bytes(-heap_bytes(e.ja4));
            tables_.ja4s.erase(i, hash_(e));
            break;
        }
        case EntityKind::ja4_sni: {
            const Ja4SniEntry &e = tables_.ja4_snis.entry(i);
            tables_.ja4_snis.add_extra_bytes(-heap_bytes(e.ja4) - heap_bytes(e.sni));
            tables_.ja4_snis.erase(i, hash_(e));
            break;
        }
        }
    }

    // One update's inputs and what its steps learn along the way.
    struct Update {
        uint64_t now;
        const Traffic *d;
        int conc;     // +1 flow opened, -1 flow closed, 0 traffic only
        bool create;  // a flow's close creates nothing
        Addr16 client_addr;
        uint8_t client_prefix;
        Addr16 subnet_addr;
        uint8_t subnet_prefix;
        std::string_view ja4;                // "" when not known
        uint32_t api = kNoSlot, sni_id = 0;  // the API host's slot and id
        std::string_view sni;                // folded
        bool api_fresh = false;
        uint32_t client = kNoSlot;
        bool client_had = false;  // the client existed before, last active at client_old
        uint64_t client_old = 0;
    };

    // --- memberships (entities.h MemberEntry) ----------------------------------
    static Tally tally(MemberRole r) { return r == MemberRole::client ? kClients : kSubnets; }

    // f(group table, slot) for the membership's group when it is live.
    template <class F>
    void with_group(const MemberEntry &m, F &&f)
    {
        with_group_in(*this, m, f);
    }
    template <class F>
    void with_group(const MemberEntry &m, F &&f) const
    {
        with_group_in(*this, m, f);
    }
    template <class Self, class F>
    static void with_group_in(Self &self, const MemberEntry &m, F &f)
    {
        if (m.group_kind >= kEntityKinds)
            return;
        self.tables_.visit(EntityKind(m.group_kind), [&](auto &t) {
            using Cell = std::remove_cvref_t<decltype(*t.cells(0))>;
            if constexpr (std::is_same_v<Cell, WideCell>) {
                uint32_t gi =
                    t.find(m.group, [&](const auto &e) { return self.hash_(e) == m.group; });
                if (gi != kNoSlot)
                    f(t, gi);
            }
        });
    }

    // The membership leaves its group's distinct count.
    void drop_member(uint32_t i)
    {
        const MemberEntry &m = tables_.members.entry(i);
        with_group(m, [&](auto &t, uint32_t gi) {
            member_gone(windows_ms(), t.entry(gi), t.cells(gi), m.last, tally(m.role));
        });
        tables_.members.erase(i, hash_(m));
    }

    // The member (a client, or a subnet: role) is active in group gi of tbl,
    // kind gk under key hash gh, already advanced to now.
    template <class G>
    void touch_member(const Update &u, MemberRole role, const Addr16 &ma, uint8_t mp, EntityKind gk,
                      uint64_t gh, EntityTable<G, WideCell> &tbl, uint32_t gi, bool g_fresh)
    {
        auto &t = tables_.members;
        uint64_t h = hash_.member(ma, mp, role, gk, gh);
        uint32_t mi = t.find(h, [&](const MemberEntry &m) {
            return m.group == gh && m.group_kind == uint8_t(gk) && m.role == role &&
                   m.prefix == mp && m.addr == ma;
        });
        bool had = mi != kNoSlot;
        if (!had) {
            if (!u.create)
                return;
            mi = insert(t, gk, h);
            MemberEntry &m = t.entry(mi);
            m.addr = ma;
            m.prefix = mp;
            m.role = role;
            m.group_kind = uint8_t(gk);
            m.group = gh;
            m.first = m.last = u.now;
        }
        MemberEntry &m = t.entry(mi);
        uint64_t old = m.last;
        m.last = u.now;
        member_seen(windows_ms(), tbl.entry(gi), tbl.cells(gi), g_fresh, had, old, u.now,
                    tally(role));
    }

    void evict_one(EntityKind k)
    {
        tables_.visit(k, [&](auto &t) { evict_one(t, k); });
    }

    // --- the update -----------------------------------------------------------
    // Lower-case ASCII, cut at kMaxSniBytes, into buf.
    static std::string_view fold_sni(std::string_view raw, char (&buf)[kMaxSniBytes])
    {
        size_t n = std::min(raw.size(), kMaxSniBytes);
        for (size_t i = 0; i < n; i++) {
            char c = raw[i];
            buf[i] = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
        }
        return {buf, n};
    }

    // conc: +1 flow opened, -1 flow closed (nothing created), 0 traffic only.
    void touch(uint64_t now_in, const Addr16 &addr, std::string_view sni_raw, std::string_view ja4,
               const Traffic *d, int conc)
    {
        updates_++;
        uint8_t cp = client_prefix(addr), sp = subnet_prefix(addr);
        Addr16 ca = mask_addr(addr, cp);
        Update u{tick(now_in),      d,  conc,
                 conc >= 0,         ca, cp,
                 mask_addr(ca, sp), sp, ja4.substr(0, kMaxJa4Bytes),
                 kNoSlot,           0,  {}};
        char buf[kMaxSniBytes];
        std::string_view sni = fold_sni(sni_raw, buf);
        u.sni = sni;
        // The API host first: its id is part of the client x API host key.
        if (!sni.empty())
            touch_api_host_entry(u, sni);
        touch_client(u);
        touch_groups(u);
        if (u.api != kNoSlot)
            touch_api_host(u);
        if (!u.ja4.empty())
            touch_fingerprint(u);
    }

    // Finds or adds the API host (its counters are updated in touch_api_host).
    void touch_api_host_entry(Update &u, std::string_view sni)
    {
        u.api = find_or_add(
            tables_.api_hosts, EntityKind::api_host, hash_.str(sni),
            [&](const ApiHostEntry &e) { return e.name == sni; }, u.create, u.api_fresh, u.now);
        if (u.api == kNoSlot)
            return;
        if (u.api_fresh) {
            tables_.api_hosts.entry(u.api).name.assign(sni);
            tables_.api_hosts.add_extra_bytes(heap_bytes(tables_.api_hosts.entry(u.api).name));
        }
        u.sni_id = api_host_ids_.id(u.api);
    }

    void touch_client(Update &u)
    {
        bool fresh;
        const Addr16 &ca = u.client_addr;
        uint8_t cp = u.client_prefix;
        u.client = find_or_add(
            tables_.clients, EntityKind::client, hash_.addr(ca, cp),
            [&](const ClientEntry &e) { return e.prefix == cp && e.addr == ca; }, u.create, fresh,
            u.now);
        if (u.client == kNoSlot)
            return;
        ClientEntry &c = tables_.clients.entry(u.client);
        if (fresh) {
            c.addr = ca;
            c.prefix = cp;
        } else {
            u.client_had = true;
            u.client_old = c.last;
        }
        advance(windows_ms(), c, tables_.clients.cells(u.client), u.now);
        count_traffic(windows_ms(), c, tables_.clients.cells(u.client), u.d, u.conc);
        if (u.sni_id && u.d)
            c.top.add(u.sni_id, kib_up(u.d->bytes_out));
    }

    // One group of the client (subnet, cohort, host, ja4, ja4_sni): init
    // fills a new one's key. A fingerprint's clients are counted through
    // memberships (it has no member entities), the others' through the
    // client entity; every group but subnet counts its clients' subnets.
    template <class E, class Eq, class Init>
    void touch_group(const Update &u, EntityTable<E, WideCell> &tbl, EntityKind k, uint64_t h,
                     Eq &&eq, Init &&init)
    {
        bool g_fresh;
        uint32_t gi = find_or_add(tbl, k, h, eq, u.create, g_fresh, u.now);
        if (gi == kNoSlot)
            return;
        E &g = tbl.entry(gi);
        if (g_fresh)
            init(g);
        advance(windows_ms(), g, tbl.cells(gi), u.now);
        count_traffic(windows_ms(), g, tbl.cells(gi), u.d, u.conc);
        if constexpr (kHasTop<E>)
            if (u.sni_id && u.d)
                g.top.add(u.sni_id, u.d->bytes_out);
        if constexpr (kHasTopClients<E>) {
            if (u.d && u.d->flows_opened)
                g.clients.add({u.client_addr, u.client_prefix}, u.d->flows_opened);
            if (u.client != kNoSlot)
                touch_member(u, MemberRole::client, u.client_addr, u.client_prefix, k, h, tbl, gi,
                             g_fresh);
        } else if (u.client != kNoSlot) {
            member_seen(windows_ms(), g, tbl.cells(gi), g_fresh, u.client_had, u.client_old, u.now);
        }
        if (counts_subnets(k))
            touch_member(u, MemberRole::subnet, u.subnet_addr, u.subnet_prefix, k, h, tbl, gi,
                         g_fresh);
    }

    void touch_groups(const Update &u)
    {
        uint8_t sp = u.subnet_prefix;
        const Addr16 &sa = u.subnet_addr;
        touch_group(
            u, tables_.subnets, EntityKind::subnet, hash_.addr(sa, sp),
            [&](const SubnetEntry &e) { return e.prefix == sp && e.addr == sa; },
            [&](SubnetEntry &e) {
                e.addr = sa;
                e.prefix = sp;
            });
        if (auto l = cohort_matcher_.match(u.client_addr)) {
            const std::string &label = cohort_matcher_.label(*l);
            touch_group(
                u, tables_.cohorts, EntityKind::cohort, cohort_hash_[*l],
                [&](const CohortEntry &e) { return e.label == label; },
                [&](CohortEntry &e) {
                    e.label = label;
                    tables_.cohorts.add_extra_bytes(heap_bytes(e.label));
                });
        }
        touch_group(
            u, tables_.host, EntityKind::host, 0, [](const HostEntry &) { return true; },
            [](HostEntry &) {});
    }

    // The fingerprint cohort and, with an SNI, its fingerprint x API host.
    void touch_fingerprint(const Update &u)
    {
        std::string_view ja4 = u.ja4;
        touch_group(
            u, tables_.ja4s, EntityKind::ja4, hash_.str(ja4),
            [&](const Ja4Entry &e) { return e.ja4 == ja4; },
            [&](Ja4Entry &e) {
                e.ja4 = ja4;
                tables_.ja4s.add_extra_bytes(heap_bytes(e.ja4));
            });
        if (u.sni.empty())
            return;
        std::string_view sni = u.sni;
        touch_group(
            u, tables_.ja4_snis, EntityKind::ja4_sni, hash_.ja4_sni(ja4, sni),
            [&](const Ja4SniEntry &e) { return e.ja4 == ja4 && e.sni == sni; },
            [&](Ja4SniEntry &e) {
                e.ja4 = ja4;
                e.sni = sni;
                tables_.ja4_snis.add_extra_bytes(heap_bytes(e.ja4) + heap_bytes(e.sni));
            });
    }

    // The API host's counters and its client x API host.
    void touch_api_host(const Update &u)
    {
        ApiHostEntry &a = tables_.api_hosts.entry(u.api);
        advance(windows_ms(), a, tables_.api_hosts.cells(u.api), u.now);
        count_traffic(windows_ms(), a, tables_.api_hosts.cells(u.api), u.d, u.conc);
        bool fresh;
        const Addr16 &ca = u.client_addr;
        uint8_t cp = u.client_prefix;
        uint32_t sid = u.sni_id;
        uint32_t pi = find_or_add(
            tables_.client_api_hosts, EntityKind::client_api_host, hash_.addr(ca, cp, sid),
            [&](const ClientApiHostEntry &e) {
                return e.api_host_id == sid && e.prefix == cp && e.addr == ca;
            },
            u.create, fresh, u.now);
        if (pi == kNoSlot)
            return;
        ClientApiHostEntry &p = tables_.client_api_hosts.entry(pi);
        bool p_had = !fresh;
        uint64_t p_old = p.last;
        if (fresh) {
            p.addr = ca;
            p.prefix = cp;
            p.api_host_id = sid;
        }
        advance(windows_ms(), p, tables_.client_api_hosts.cells(pi), u.now);
        count_traffic(windows_ms(), p, tables_.client_api_hosts.cells(pi), u.d, u.conc);
        // find_or_add() may have evicted another pair of this API host:
        // its counters are already settled against a.last == now.
        member_seen(windows_ms(), tables_.api_hosts.entry(u.api), tables_.api_hosts.cells(u.api),
                    u.api_fresh, p_had, p_old, u.now);
        touch_member(u, MemberRole::subnet, u.subnet_addr, u.subnet_prefix, EntityKind::api_host,
                     hash_.str(u.sni), tables_.api_hosts, u.api, u.api_fresh);
    }

    // A sweep reads every entity (8 ms at a million clients): it runs only
    // when something may be idle for longer than the longest window.
    size_t expire(uint64_t now_in)
    {
        uint64_t now = tick(now_in);
        if (oldest_last_ && now - *oldest_last_ <= longest_)
            return 0;
        size_t n = 0;
        uint64_t oldest = now;
        auto sweep = [&](auto &tbl, EntityKind k) {
            tbl.for_each_live([&](uint32_t i) {
                if (now - tbl.entry(i).last > longest_) {
                    drop(k, i);
                    expired_[size_t(k)]++;
                    n++;
                } else {
                    oldest = std::min(oldest, tbl.entry(i).last);
                }
            });
        };
        // Members before their groups, so that groups see them leave.
        tables_.members.for_each_live([&](uint32_t i) {
            if (now - tables_.members.entry(i).last > longest_) {
                drop_member(i);
                members_expired_++;
            } else {
                oldest = std::min(oldest, tables_.members.entry(i).last);
            }
        });
        sweep(tables_.clients, EntityKind::client);
        sweep(tables_.client_api_hosts, EntityKind::client_api_host);
        sweep(tables_.subnets, EntityKind::subnet);
        sweep(tables_.cohorts, EntityKind::cohort);
        sweep(tables_.ja4_snis, EntityKind::ja4_sni);
        sweep(tables_.ja4s, EntityKind::ja4);
        sweep(tables_.api_hosts, EntityKind::api_host);  // never compacted: slots are ids
        auto hasher = [this](const auto &e) { return hash_(e); };
        auto compact = [&](auto &t, UpdateLog *log) {
            if (!t.sparse())
                return;
            t.compact(hasher);
            if (log)
                log->off();  // its slots moved
        };
        auto log = [&](EntityKind k) { return &updated_[size_t(k)]; };
        compact(tables_.clients, log(EntityKind::client));
        compact(tables_.client_api_hosts, log(EntityKind::client_api_host));
        compact(tables_.subnets, log(EntityKind::subnet));
        compact(tables_.cohorts, log(EntityKind::cohort));
        compact(tables_.ja4s, log(EntityKind::ja4));
        compact(tables_.ja4_snis, log(EntityKind::ja4_sni));
        compact(tables_.members, nullptr);
        oldest_last_ = oldest;
        return n;
    }

    // --- state file -------------------------------------------------------------
    // Every live entity, its header (entity_state.h) then its cells; groups
    // before their members (a member evicted while reading, past a lower
    // limit, leaves its groups).
    template <class E, class C>
    void save_table(StateWriter &w, const EntityTable<E, C> &t) const
    {
        w.u64(t.size());
        t.for_each_live([&](uint32_t i) {
            const E &e = t.entry(i);
            if constexpr (std::is_same_v<E, ApiHostEntry>)
                write_header(w, e, api_host_ids_.id(i));
            else
                write_header(w, e);
            if constexpr (!std::is_same_v<C, detail::NoCell>)
                w.raw(t.cells(i), window_count() * sizeof(C));
        });
    }

    void save(StateWriter &w) const
    {
        w.u64(window_count());
        for (uint64_t len : windows_ms())
            w.u64(len);
        w.u64(clock_);
        save_table(w, tables_.api_hosts);
        save_table(w, tables_.cohorts);
        save_table(w, tables_.subnets);
        save_table(w, tables_.host);
        save_table(w, tables_.ja4s);
        save_table(w, tables_.ja4_snis);
        save_table(w, tables_.clients);
        save_table(w, tables_.client_api_hosts);
        save_members(w);
    }

    // The hash a group's key has in this aggregator (its EntityHasher seed).
    uint64_t group_hash(EntityKind k, const EntityKey &key) const
    {
        switch (k) {
        case EntityKind::api_host:
        case EntityKind::cohort: return hash_.str(key.name);
        case EntityKind::ja4: return hash_.str(key.ja4);
        case EntityKind::ja4_sni: return hash_.ja4_sni(key.ja4, key.name);
        default: break;
        }
        return 0;  // host
    }

    // Memberships name their group by a seeded hash, which another
    // aggregator does not share: each is written with its group's key (and
    // left out when its group is gone).
    void save_members(StateWriter &w) const
    {
        std::vector<std::pair<uint32_t, EntityKey>> kept;
        tables_.members.for_each_live([&](uint32_t i) {
            const MemberEntry &m = tables_.members.entry(i);
            with_group(m, [&](auto &, uint32_t gi) {
                kept.emplace_back(i, key_of(EntityKind(m.group_kind), gi));
            });
        });
        w.u64(kept.size());
        for (auto &[i, key] : kept) {
            MemberEntry m = tables_.members.entry(i);
            m.group = 0;
            w.pod(m);
            w.str(key.name);
            w.str(key.ja4);
        }
    }

    void restore_members(StateReader &r)
    {
        restore_table(
            r, tables_.members, EntityKind::host, sizeof(MemberEntry) + 8,
            [&](StateReader &rd) -> std::optional<MemberEntry> {
                auto m = detail::read_plain_header<MemberEntry>(rd, {});
                EntityKey key;
                key.name = rd.str();
                key.ja4 = rd.str();
                if (!counts_subnets(EntityKind(m->group_kind)) ||
                    (m->role != MemberRole::client && m->role != MemberRole::subnet))
                    throw Error("state: a membership's group or role is out of range");
                m->group = group_hash(EntityKind(m->group_kind), key);
                return m;
            },
            [](uint32_t) {});
    }

    // Reads one table written by save_table: read_header(StateReader &)
    // returns the header, or nullopt to leave the entity out (its API host
    // is gone); after(slot) sees where it went.
    template <class E, class C, class Read, class After>
    void restore_table(StateReader &r, EntityTable<E, C> &t, EntityKind k, size_t min_header,
                       Read &&read_header, After &&after)
    {
        constexpr bool kCells = !std::is_same_v<C, detail::NoCell>;
        uint64_t n = r.count(min_header + (kCells ? window_count() * sizeof(C) : 0));
        for (uint64_t j = 0; j < n; j++) {
            std::optional<E> e = read_header(r);
            std::vector<C> cells(kCells ? window_count() : 0);
            for (auto &c : cells)
                c = r.pod<C>();
            if (!e)
                continue;
            if (!e->live || e->first > e->last || e->last > clock_)
                throw Error("state: an entity's times are inconsistent");
            uint64_t h = hash_(*e);
            if (t.find(h, [&](const E &x) { return same_key(x, *e); }) != kNoSlot)
                throw Error("state: an entity is listed twice");
            uint32_t i = insert(t, k, h);
            if constexpr (std::is_same_v<E, ApiHostEntry>)
                tables_.api_hosts.add_extra_bytes(heap_bytes(e->name));
            if constexpr (std::is_same_v<E, CohortEntry>)
                tables_.cohorts.add_extra_bytes(heap_bytes(e->label));
            if constexpr (std::is_same_v<E, Ja4Entry>)
                tables_.ja4s.add_extra_bytes(heap_bytes(e->ja4));
            if constexpr (std::is_same_v<E, Ja4SniEntry>)
                tables_.ja4_snis.add_extra_bytes(heap_bytes(e->ja4) + heap_bytes(e->sni));
            t.entry(i) = std::move(*e);
            std::copy(cells.begin(), cells.end(), t.cells(i));
            after(i);
        }
    }

    void restore_windows_and_clock(StateReader &r)
    {
        if (r.count(8) != window_count())
            throw Error("state: the aggregator's windows differ");
        for (uint64_t len : windows_ms())
            if (r.u64() != len)
                throw Error("state: the aggregator's windows differ");
        clock_ = r.u64();
    }

    void restore_api_hosts(StateReader &r, SavedIds &ids)
    {
        uint32_t saved_id = 0;
        restore_table(
            r, tables_.api_hosts, EntityKind::api_host, kApiHostHeaderMin,
            [&](StateReader &rd) -> std::optional<ApiHostEntry> {
                return read_api_host_header(rd, saved_id);
            },
            [&](uint32_t i) { ids.now[saved_id] = api_host_ids_.id(i); });
    }

    void restore_cohorts(StateReader &r, const SavedIds &ids)
    {
        restore_table(
            r, tables_.cohorts, EntityKind::cohort, kCohortHeaderMin,
            [&](StateReader &rd) -> std::optional<CohortEntry> {
                return read_cohort_header(rd, ids);
            },
            [](uint32_t) {});
    }

    void restore_fingerprints(StateReader &r, const SavedIds &ids)
    {
        restore_table(
            r, tables_.ja4s, EntityKind::ja4, detail::kJa4HeaderMin,
            [&](StateReader &rd) -> std::optional<Ja4Entry> {
                return detail::read_ja4_header(rd, ids);
            },
            [](uint32_t) {});
        restore_table(
            r, tables_.ja4_snis, EntityKind::ja4_sni, detail::kJa4SniHeaderMin,
            [&](StateReader &rd) -> std::optional<Ja4SniEntry> {
                return detail::read_ja4_sni_header(rd);
            },
            [](uint32_t) {});
    }

    template <class E, class C>
    void restore_plain(StateReader &r, EntityTable<E, C> &t, EntityKind k, const SavedIds &ids)
    {
        restore_table(
            r, t, k, sizeof(E), [&](StateReader &rd) { return read_plain_header<E>(rd, ids); },
            [](uint32_t) {});
    }

    // Into a fresh aggregator configured with the windows the state was
    // saved with, in save()'s order; throws exf::Error on anything
    // inconsistent.
    void restore(StateReader &r)
    {
        restore_windows_and_clock(r);
        SavedIds ids;
        restore_api_hosts(r, ids);
        restore_cohorts(r, ids);
        restore_plain(r, tables_.subnets, EntityKind::subnet, ids);
        restore_plain(r, tables_.host, EntityKind::host, ids);
        restore_fingerprints(r, ids);
        restore_plain(r, tables_.clients, EntityKind::client, ids);
        restore_plain(r, tables_.client_api_hosts, EntityKind::client_api_host, ids);
        restore_members(r);
    }

    // --- reconfiguration ------------------------------------------------------
    template <class E, class C>
    void merge(EntityTable<E, C> &t, uint32_t dst_i, uint32_t src_i)
    {
        E &dst = t.entry(dst_i);
        E &src = t.entry(src_i);
        uint64_t at = std::max(dst.last, src.last);
        advance(windows_ms(), dst, t.cells(dst_i), at);
        advance(windows_ms(), src, t.cells(src_i), at);
        for (size_t w = 0; w < window_count(); w++)
            merge_into(t.cells(dst_i)[w], t.cells(src_i)[w]);
        dst.first = std::min(dst.first, src.first);
        detail::add(dst.conc, src.conc);
        if constexpr (kHasTop<E>) {
            for (int k = 0; k < kTopK; k++)
                if (src.top.id[k])
                    dst.top.add(src.top.id[k], detail::load(src.top.w[k]));
        }
    }

    // Entities keyed by (address, prefix[, sni]) whose prefix is longer than
    // the new one move to the shorter key, merging with an entity already there.
    template <class E, class C>
    void rekey(EntityTable<E, C> &t, uint8_t p4, uint8_t p6)
    {
        t.for_each_live([&](uint32_t i) {
            E &e = t.entry(i);
            uint8_t np = is_v4(e.addr) ? p4 : p6;
            if (np >= e.prefix)
                return;
            uint64_t old_h = hash_(e);
            E probe;
            probe.addr = mask_addr(e.addr, np);
            probe.prefix = np;
            if constexpr (std::is_same_v<E, ClientApiHostEntry>)
                probe.api_host_id = e.api_host_id;
            uint64_t new_h = hash_(probe);
            uint32_t j = t.find(new_h, [&](const E &x) {
                if constexpr (std::is_same_v<E, ClientApiHostEntry>)
                    if (x.api_host_id != probe.api_host_id)
                        return false;
                return x.prefix == probe.prefix && x.addr == probe.addr;
            });
            if (j != kNoSlot && j != i) {
                merge(t, j, i);
                t.erase(i, old_h);
            } else {
                e.addr = probe.addr;
                e.prefix = probe.prefix;
                t.rehash_entry(i, old_h, new_h);
            }
        });
    }

    void recount()
    {
        auto zero = [&](auto &tbl) {
            tbl.for_each_live([&](uint32_t i) {
                for (size_t w = 0; w < window_count(); w++) {
                    WideCell &c = tbl.cells(i)[w];
                    c.members[0] = c.members[1] = c.subnets[0] = c.subnets[1] = 0;
                }
            });
        };
        zero(tables_.subnets);
        zero(tables_.cohorts);
        zero(tables_.host);
        zero(tables_.api_hosts);
        zero(tables_.ja4s);
        zero(tables_.ja4_snis);
        tables_.members.for_each_live([&](uint32_t i) {
            const MemberEntry &m = tables_.members.entry(i);
            with_group(m, [&](auto &t, uint32_t gi) {
                member_count(windows_ms(), t.entry(gi), t.cells(gi), m.last, tally(m.role));
            });
        });
        tables_.clients.for_each_live([&](uint32_t i) {
            const ClientEntry &c = tables_.clients.entry(i);
            Groups g = groups_of(c);
            if (g.subnet != kNoSlot)
                member_count(windows_ms(), tables_.subnets.entry(g.subnet),
                             tables_.subnets.cells(g.subnet), c.last);
            if (g.cohort != kNoSlot)
                member_count(windows_ms(), tables_.cohorts.entry(g.cohort),
                             tables_.cohorts.cells(g.cohort), c.last);
            if (g.host != kNoSlot)
                member_count(windows_ms(), tables_.host.entry(0), tables_.host.cells(0), c.last);
        });
        tables_.client_api_hosts.for_each_live([&](uint32_t i) {
            const ClientApiHostEntry &p = tables_.client_api_hosts.entry(i);
            uint32_t a = api_host_ids_.slot(p.api_host_id, tables_.api_hosts);
            if (a != kNoSlot)
                member_count(windows_ms(), tables_.api_hosts.entry(a), tables_.api_hosts.cells(a),
                             p.last);
        });
    }

    void reconfigure(const AggConfig &nc)
    {
        if (nc.windows_ms != cfg_.windows_ms) {
            std::vector<int> map(nc.windows_ms.size(), -1);
            for (size_t i = 0; i < nc.windows_ms.size(); i++)
                for (size_t j = 0; j < cfg_.windows_ms.size(); j++)
                    if (nc.windows_ms[i] == cfg_.windows_ms[j])
                        map[i] = static_cast<int>(j);
            size_t n = nc.windows_ms.size();
            tables_.for_each_table([&](auto &t) { t.reshape(n, map); });
        }
        bool client_px = nc.client_prefix_v4 != cfg_.client_prefix_v4 ||
                         nc.client_prefix_v6 != cfg_.client_prefix_v6;
        bool subnet_px = nc.subnet_prefix_v4 != cfg_.subnet_prefix_v4 ||
                         nc.subnet_prefix_v6 != cfg_.subnet_prefix_v6;
        cfg_ = nc;
        longest_ = *std::max_element(cfg_.windows_ms.begin(), cfg_.windows_ms.end());
        if (client_px) {
            rekey(tables_.clients, cfg_.client_prefix_v4, cfg_.client_prefix_v6);
            rekey(tables_.client_api_hosts, cfg_.client_prefix_v4, cfg_.client_prefix_v6);
        }
        if (subnet_px)
            rekey(tables_.subnets, cfg_.subnet_prefix_v4, cfg_.subnet_prefix_v6);
        if (client_px || subnet_px)
            drop_stale_members();
        set_cohorts();
        for (size_t k = 0; k < kEntityKinds; k++)
            while (size(EntityKind(k)) > limit(EntityKind(k)))
                evict_one(EntityKind(k));
        while (tables_.members.size() > cfg_.max_memberships) {
            drop_member(eviction_.victim(tables_.members));
            members_evicted_++;
        }
        recount();
        for (auto &log : updated_)
            log.off();  // entities re-keyed, merged, recounted
    }

    // Memberships under a prefix no longer configured: their members are
    // counted again, under the new prefix, from their next activity (merging
    // them would need their per-group history, which they do not keep).
    void drop_stale_members()
    {
        auto &t = tables_.members;
        t.for_each_live([&](uint32_t i) {
            const MemberEntry &m = t.entry(i);
            uint8_t want =
                m.role == MemberRole::client ? client_prefix(m.addr) : subnet_prefix(m.addr);
            if (m.prefix != want)
                t.erase(i, hash_(m));  // recount() follows
        });
    }

    // --- queries --------------------------------------------------------------
    size_t size(EntityKind k) const
    {
        return tables_.visit(k, [](const auto &t) { return t.size(); });
    }

    size_t memory(EntityKind k) const
    {
        size_t ids = k == EntityKind::api_host ? api_host_ids_.memory_bytes() : 0;
        return ids + updated_[size_t(k)].memory_bytes() +
               tables_.visit(k, [](const auto &t) { return t.memory_bytes(); });
    }

    size_t memory() const
    {
        size_t n = sizeof(AggImpl) + tables_.members.memory_bytes();
        for (size_t k = 0; k < kEntityKinds; k++)
            n += memory(EntityKind(k));
        n += cohort_matcher_.memory_bytes() + cohort_hash_.capacity() * sizeof(uint64_t);
        n += cfg_.windows_ms.capacity() * sizeof(uint64_t) +
             cfg_.cohorts.capacity() * sizeof(CohortRule);
        for (auto &r : cfg_.cohorts)
            n += static_cast<size_t>(heap_bytes(r.label));
        return n;
    }

    WindowValue value(EntityKind k, uint32_t i, size_t w, uint64_t now, Estimate est) const
    {
        if (w >= window_count())
            return {};
        uint64_t t = std::max(now, clock_);
        return tables_.visit(k, [&](const auto &tbl) {
            return window_value(windows_ms(), tbl.entry(i), tbl.cells(i), w, t, est);
        });
    }

    // When an entity of any kind was first and last seen, and its open flows.
    struct Activity {
        uint64_t first, last;
        uint32_t conc;
    };
    Activity activity(EntityKind k, uint32_t i) const
    {
        return tables_.visit(k, [&](const auto &t) {
            const auto &e = t.entry(i);
            return Activity{e.first, e.last, uint32_t(e.conc)};
        });
    }

    EntityKey key_of(EntityKind k, uint32_t i) const
    {
        EntityKey key;
        switch (k) {
        case EntityKind::client:
            key.addr = tables_.clients.entry(i).addr;
            key.prefix = tables_.clients.entry(i).prefix;
            break;
        case EntityKind::subnet:
            key.addr = tables_.subnets.entry(i).addr;
            key.prefix = tables_.subnets.entry(i).prefix;
            break;
        case EntityKind::client_api_host: {
            const ClientApiHostEntry &p = tables_.client_api_hosts.entry(i);
            key.addr = p.addr;
            key.prefix = p.prefix;
            uint32_t a = api_host_ids_.slot(p.api_host_id, tables_.api_hosts);
            if (a != kNoSlot)
                key.name = tables_.api_hosts.entry(a).name;  // empty once the API host is gone
            break;
        }
        case EntityKind::api_host: key.name = tables_.api_hosts.entry(i).name; break;
        case EntityKind::cohort: key.name = tables_.cohorts.entry(i).label; break;
        case EntityKind::ja4: key.ja4 = tables_.ja4s.entry(i).ja4; break;
        case EntityKind::ja4_sni:
            key.ja4 = tables_.ja4_snis.entry(i).ja4;
            key.name = tables_.ja4_snis.entry(i).sni;
            break;
        case EntityKind::host: break;
        }
        return key;
    }

    uint32_t slot_of(EntityKind k, const EntityKey &key) const
    {
        switch (k) {
        case EntityKind::client:
            return find_client(tables_.clients, mask_addr(key.addr, key.prefix), key.prefix);
        case EntityKind::subnet: return find_subnet(mask_addr(key.addr, key.prefix), key.prefix);
        case EntityKind::api_host: return find_api_host(normalize_sni(key.name));
        case EntityKind::client_api_host: {
            uint32_t a = find_api_host(normalize_sni(key.name));
            if (a == kNoSlot)
                return kNoSlot;
            return find_client_api_host(mask_addr(key.addr, key.prefix), key.prefix,
                                        api_host_ids_.id(a));
        }
        case EntityKind::cohort: return find_cohort(key.name);
        case EntityKind::ja4: return find_ja4(key.ja4);
        case EntityKind::ja4_sni: return find_ja4_sni(key.ja4, normalize_sni(key.name));
        case EntityKind::host: return tables_.host.live(0) ? 0 : kNoSlot;
        }
        return kNoSlot;
    }

    std::vector<SniShare> top_snis(EntityKind k, uint32_t i) const
    {
        std::vector<SniShare> out;
        auto collect = [&](const auto &top, uint64_t scale) {
            for (int j = 0; j < kTopK; j++) {
                uint32_t a = api_host_ids_.slot(top.id[j], tables_.api_hosts);
                if (a != kNoSlot)
                    out.push_back(
                        {tables_.api_hosts.entry(a).name, detail::load(top.w[j]) * scale});
            }
        };
        switch (k) {
        case EntityKind::client: collect(tables_.clients.entry(i).top, 1024); break;
        case EntityKind::subnet: collect(tables_.subnets.entry(i).top, 1); break;
        case EntityKind::cohort: collect(tables_.cohorts.entry(i).top, 1); break;
        case EntityKind::host: collect(tables_.host.entry(i).top, 1); break;
        case EntityKind::ja4: collect(tables_.ja4s.entry(i).top, 1); break;
        default: break;
        }
        std::stable_sort(out.begin(), out.end(), [](const SniShare &a, const SniShare &b) {
            return a.bytes_out > b.bytes_out;
        });
        return out;
    }

    std::vector<ClientShare> top_clients(EntityKind k, uint32_t i) const
    {
        std::vector<ClientShare> out;
        auto collect = [&](const detail::TopClients &top) {
            for (int j = 0; j < kTopK; j++)
                if (top.id[j] != detail::ClientId{})
                    out.push_back({prefix_key(top.id[j].addr, top.id[j].prefix), top.w[j]});
        };
        if (k == EntityKind::ja4)
            collect(tables_.ja4s.entry(i).clients);
        else if (k == EntityKind::ja4_sni)
            collect(tables_.ja4_snis.entry(i).clients);
        std::stable_sort(out.begin(), out.end(), [](const ClientShare &a, const ClientShare &b) {
            return a.tls_flows > b.tls_flows;
        });
        return out;
    }

    template <class F>
    void for_each_slot(EntityKind k, F &&f) const
    {
        tables_.visit(k, [&](const auto &t) { t.for_each_live(f); });
    }

    EntityRef ref(EntityKind k, uint32_t i) const { return EntityRef(this, k, i); }

    // f(slot) for the live entities of kind k last updated at or after
    // since, in slot order: from the kind's update log when it covers since,
    // else by a scan that restarts the log (update_log.h).
    template <class F>
    void for_each_updated(EntityKind k, uint64_t since, F &&f) const
    {
        UpdateLog &log = updated_[size_t(k)];
        tables_.visit(k, [&](const auto &t) {
            if (!log.covers(since)) {
                std::vector<uint32_t> at_clock;
                t.for_each_live([&](uint32_t i) {
                    uint64_t last = t.entry(i).last;
                    if (last == clock_)
                        at_clock.push_back(i);
                    if (last >= since)
                        f(i);
                });
                log.restart(clock_, std::move(at_clock));
                return;
            }
            // A bit per slot: each slot once, whatever its notes, in slot order.
            std::vector<uint64_t> bits((size_t(t.high_water()) + 63) / 64);
            log.read_since(since, [&](uint32_t i) {
                if (t.live(i) && t.entry(i).last >= since)
                    bits[i / 64] |= uint64_t(1) << (i % 64);
            });
            for (size_t w = 0; w < bits.size(); w++)
                for (uint64_t b = bits[w]; b; b &= b - 1)
                    f(uint32_t(w * 64 + size_t(std::countr_zero(b))));
        });
    }
};

// ---------------------------------------------------------------------------
EntityKey EntityRef::key() const { return impl_->key_of(kind_, slot_); }
uint64_t EntityRef::first_seen_ms() const { return impl_->activity(kind_, slot_).first; }
uint64_t EntityRef::last_seen_ms() const { return impl_->activity(kind_, slot_).last; }
uint32_t EntityRef::concurrent() const { return impl_->activity(kind_, slot_).conc; }
WindowValue EntityRef::value(size_t window, uint64_t now_ms, Estimate e) const
{
    return impl_->value(kind_, slot_, window, now_ms, e);
}
std::vector<SniShare> EntityRef::top_snis() const { return impl_->top_snis(kind_, slot_); }
std::vector<ClientShare> EntityRef::top_clients() const { return impl_->top_clients(kind_, slot_); }

// Unique in the process, so that two aggregators never share one.
static uint64_t next_generation()
{
    static std::atomic<uint64_t> last{0};
    return ++last;
}

// ---------------------------------------------------------------------------
Aggregator::Aggregator(const AggConfig &cfg)
{
    auto problems = cfg.validate();
    if (!problems.empty())
        throw Error("aggregator configuration: " + join(problems));
    impl_ = std::make_unique<AggImpl>(cfg);
    generation_ = next_generation();
}

Aggregator::~Aggregator() = default;
Aggregator::Aggregator(Aggregator &&) noexcept = default;
Aggregator &Aggregator::operator=(Aggregator &&) noexcept = default;

void Aggregator::add_traffic(uint64_t now_ms, const Addr16 &client, std::string_view sni,
                             const Traffic &d, std::string_view ja4)
{
    impl_->touch(now_ms, client, sni, ja4, &d, 0);
}

void Aggregator::flow_opened(uint64_t now_ms, const Addr16 &client, std::string_view sni,
                             std::string_view ja4)
{
    impl_->touch(now_ms, client, sni, ja4, nullptr, +1);
}

void Aggregator::flow_closed(uint64_t now_ms, const Addr16 &client, std::string_view sni,
                             std::string_view ja4)
{
    impl_->touch(now_ms, client, sni, ja4, nullptr, -1);
}

size_t Aggregator::expire(uint64_t now_ms) { return impl_->expire(now_ms); }

const AggConfig &Aggregator::config() const { return impl_->cfg_; }

void Aggregator::save_state(StateWriter &w) const { impl_->save(w); }

void Aggregator::restore_state(StateReader &r)
{
    auto fresh = std::make_unique<AggImpl>(impl_->cfg_);
    fresh->restore(r);
    impl_ = std::move(fresh);
    generation_ = next_generation();
}

bool Aggregator::reconfigure(const AggConfig &cfg, std::string &why)
{
    auto problems = cfg.validate();
    if (!problems.empty()) {
        why = join(problems);
        return false;
    }
    impl_->reconfigure(cfg);
    generation_ = next_generation();
    return true;
}

EntityKey Aggregator::client_key(const Addr16 &addr) const
{
    return prefix_key(addr, impl_->client_prefix(addr));
}

EntityKey Aggregator::subnet_key(const Addr16 &addr) const
{
    return prefix_key(addr, impl_->subnet_prefix(addr));
}

EntityKey Aggregator::client_api_key(const Addr16 &addr, std::string_view sni) const
{
    return agg::client_api_key(addr, impl_->client_prefix(addr), sni);
}

std::optional<std::string> Aggregator::cohort_of(const Addr16 &addr) const
{
    auto l = impl_->cohort_matcher_.match(mask_addr(addr, impl_->client_prefix(addr)));
    if (!l)
        return std::nullopt;
    return impl_->cohort_matcher_.label(*l);
}

size_t Aggregator::windows() const { return impl_->window_count(); }
uint64_t Aggregator::window_ms(size_t window) const
{
    return window < impl_->window_count() ? impl_->windows_ms()[window] : 0;
}
uint64_t Aggregator::clock_ms() const { return impl_->clock_; }

std::optional<EntityRef> Aggregator::find(EntityKind kind, const EntityKey &key) const
{
    uint32_t i = impl_->slot_of(kind, key);
    if (i == kNoSlot)
        return std::nullopt;
    return impl_->ref(kind, i);
}

WindowValue Aggregator::value(EntityKind kind, const EntityKey &key, size_t window, uint64_t now_ms,
                              Estimate e) const
{
    auto r = find(kind, key);
    return r ? r->value(window, now_ms, e) : WindowValue{};
}

std::vector<Row> Aggregator::top(EntityKind kind, size_t window, SortBy by, size_t n,
                                 uint64_t now_ms, Estimate e) const
{
    std::vector<Row> rows;
    if (window >= impl_->window_count() || n == 0)
        return rows;
    struct Cand {
        uint64_t metric, out, first;
        uint32_t slot;
        WindowValue v;
    };
    // a ranks before b
    auto before = [](const Cand &a, const Cand &b) {
        if (a.metric != b.metric)
            return a.metric > b.metric;
        if (a.out != b.out)
            return a.out > b.out;
        if (a.first != b.first)
            return a.first < b.first;
        return a.slot < b.slot;
    };
    std::vector<Cand> heap;  // the worst kept candidate on top
    heap.reserve(std::min<size_t>(n, 4096) + 1);
    impl_->for_each_slot(kind, [&](uint32_t i) {
        WindowValue v = impl_->value(kind, i, window, now_ms, e);
        uint64_t m = 0;
        switch (by) {
        case SortBy::bytes_out: m = v.bytes_out; break;
        case SortBy::bytes_in: m = v.bytes_in; break;
        case SortBy::tls_flows: m = v.tls_flows; break;
        case SortBy::concurrent: m = v.peak_concurrent; break;
        case SortBy::distinct_clients: m = v.distinct_clients; break;
        case SortBy::distinct_subnets: m = v.distinct_subnets; break;
        case SortBy::requests: m = v.requests; break;
        }
        if (m == 0)
            return;
        Cand c{m, v.bytes_out, impl_->activity(kind, i).first, i, v};
        if (heap.size() < n) {
            heap.push_back(c);
            std::push_heap(heap.begin(), heap.end(), before);
        } else if (before(c, heap.front())) {
            std::pop_heap(heap.begin(), heap.end(), before);
            heap.back() = c;
            std::push_heap(heap.begin(), heap.end(), before);
        }
    });
    std::sort(heap.begin(), heap.end(), before);
    rows.reserve(heap.size());
    for (auto &c : heap) {
        auto b = impl_->activity(kind, c.slot);
        rows.push_back(Row{impl_->key_of(kind, c.slot), c.v, b.first, b.last, b.conc});
    }
    return rows;
}

void Aggregator::for_each(EntityKind kind, const std::function<void(const EntityRef &)> &fn) const
{
    impl_->for_each_slot(kind, [&](uint32_t i) { fn(impl_->ref(kind, i)); });
}

void Aggregator::for_each_active_since(EntityKind kind, uint64_t since_ms,
                                       const std::function<void(const EntityRef &)> &fn) const
{
    impl_->for_each_updated(kind, since_ms, [&](uint32_t i) { fn(impl_->ref(kind, i)); });
}

std::vector<SniShare> Aggregator::top_snis(EntityKind kind, const EntityKey &key) const
{
    auto r = find(kind, key);
    return r ? r->top_snis() : std::vector<SniShare>{};
}

size_t Aggregator::size(EntityKind kind) const { return impl_->size(kind); }
uint64_t Aggregator::evictions(EntityKind kind) const { return impl_->evicted_[size_t(kind)]; }
uint64_t Aggregator::expirations(EntityKind kind) const { return impl_->expired_[size_t(kind)]; }
uint64_t Aggregator::updates() const { return impl_->updates_; }
size_t Aggregator::memberships() const { return impl_->tables_.members.size(); }
uint64_t Aggregator::membership_evictions() const { return impl_->members_evicted_; }
uint64_t Aggregator::membership_expirations() const { return impl_->members_expired_; }
size_t Aggregator::memory_bytes() const { return impl_->memory(); }
size_t Aggregator::memory_bytes(EntityKind kind) const { return impl_->memory(kind); }

}  // namespace exf::agg
