// SPDX-License-Identifier: Apache-2.0
#include "detect/detector.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include "common/dense_map.h"
#include "common/error.h"
#include "common/state_codec.h"
#include "detect/figures.h"

namespace exf::detect {

namespace {

// The same into s (its capacity reused).
void key_bytes_into(const agg::EntityKey &k, std::string &s)
{
    s.assign(reinterpret_cast<const char *>(k.addr.data()), k.addr.size());
    s += char(k.prefix);
    s += k.name;
    if (!k.ja4.empty()) {  // kinds without a fingerprint keep the bytes they had
        s += '\0';
        s += k.ja4;
    }
}

// A map key for an entity: the masked address, its prefix, the name and
// the fingerprint.
std::string key_bytes(const agg::EntityKey &k)
{
    std::string s;
    key_bytes_into(k, s);
    return s;
}

// The window's value: the sliding estimate (aggregate/windows.h), except for
// an entity younger than the window, whose traffic is all inside it: then the
// two buckets' sum, which is exact.
agg::WindowValue window_value(const agg::EntityRef &ref, size_t w, uint64_t window_ms,
                              uint64_t now_ms)
{
    bool young = ref.first_seen_ms() + window_ms > now_ms;
    return ref.value(w, now_ms, young ? agg::Estimate::upper : agg::Estimate::sliding);
}

// The value a rule compares: out_in_ratio only counts from min_bytes_out.
double rule_value(const Rule &rule, const Figures &f)
{
    if (rule.metric == Metric::out_in_ratio && double(f.window.bytes_out) < rule.min_bytes_out)
        return 0;
    return metric_value(rule.metric, f);
}

size_t window_index(const agg::Aggregator &a, uint64_t window_ms)
{
    for (size_t i = 0; i < a.windows(); i++)
        if (a.window_ms(i) == window_ms)
            return i;
    return SIZE_MAX;
}

// One sensor's figures: its own aggregator (times on its clock, converted to
// wall clock for records). Every entity there went through this sensor.
class AggregatorFigures final : public FigureSource {
public:
    explicit AggregatorFigures(const agg::Aggregator &a) : a_(a) {}

    bool for_each(const Rule &rule, uint64_t now_ms, const Visit &fn) override
    {
        size_t w = window_index(a_, rule.window_ms);
        if (w == SIZE_MAX)
            return false;  // the configuration adds every rule window to the aggregator
        a_.for_each(rule.entity, [&](const agg::EntityRef &ref) {
            fn(ref.key(), figures(ref, window_value(ref, w, rule.window_ms, now_ms)));
        });
        return true;
    }

    std::optional<SourceMark> mark() const override
    {
        return SourceMark{a_.clock_ms(), a_.generation()};
    }

    bool for_each_updated(const Rule &rule, uint64_t now_ms, uint64_t since_ms,
                          const Visit &fn) override
    {
        size_t w = window_index(a_, rule.window_ms);
        if (w == SIZE_MAX)
            return false;
        a_.for_each_active_since(rule.entity, since_ms, [&](const agg::EntityRef &ref) {
            fn(ref.key(), figures(ref, window_value(ref, w, rule.window_ms, now_ms)));
        });
        return true;
    }

    std::optional<Figures> find(const Rule &rule, const agg::EntityKey &key,
                                uint64_t now_ms) override
    {
        auto ref = a_.find(rule.entity, key);
        if (!ref)
            return std::nullopt;
        size_t w = window_index(a_, rule.window_ms);
        return figures(*ref, w < a_.windows() ? window_value(*ref, w, rule.window_ms, now_ms)
                                              : agg::WindowValue{});
    }

    void describe(const Rule &rule, const agg::EntityKey &key, uint64_t now_ms, uint64_t wall_ms,
                  AlertRecord &r) override
    {
        auto ref = a_.find(rule.entity, key);
        if (!ref)
            return;
        uint64_t seen = ref->first_seen_ms();
        r.first_seen_ms = seen <= now_ms ? wall_ms - (now_ms - seen) : wall_ms;
        for (auto &c : ref->top_clients())
            r.top_clients.push_back(
                {agg::format_key(agg::EntityKind::client, c.client), c.tls_flows});
        if (rule.entity == agg::EntityKind::api_host ||
            rule.entity == agg::EntityKind::client_api_host ||
            rule.entity == agg::EntityKind::ja4_sni) {
            r.top_snis.push_back({key.name, r.bytes_out});
        } else {
            for (auto &s : ref->top_snis())
                r.top_snis.push_back({s.sni, s.bytes_out});
        }
    }

private:
    static Figures figures(const agg::EntityRef &ref, const agg::WindowValue &v)
    {
        bool traffic = v.bytes_out || v.bytes_in || v.tls_flows || v.requests || v.peak_concurrent;
        return {v, traffic ? 1u : 0u, ref.last_seen_ms()};
    }
    const agg::Aggregator &a_;
};

uint64_t fnv1a(std::string_view s, uint64_t h = 1469598103934665603ull)
{
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

std::string default_host_name()
{
    char buf[256] = {};
    if (gethostname(buf, sizeof(buf) - 1) != 0 || !buf[0])
        return "localhost";
    return buf;
}

// "*.example.com" matches "a.example.com" and "b.a.example.com", not "example.com".
bool sni_matches(const std::string &pattern, const std::string &sni)
{
    if (pattern.size() > 2 && pattern[0] == '*' && pattern[1] == '.') {
        std::string_view suffix(pattern.data() + 1, pattern.size() - 1);
        return sni.size() > suffix.size() &&
               std::string_view(sni).substr(sni.size() - suffix.size()) == suffix;
    }
    return pattern == sni;
}

bool cidr_contains(const agg::CohortRule &net, const Addr16 &addr, uint8_t prefix)
{
    if (agg::is_v4(net.addr) != agg::is_v4(addr) || prefix < net.prefix)
        return false;
    return agg::mask_addr(addr, net.prefix) == agg::mask_addr(net.addr, net.prefix);
}

// The top JA4 fingerprints per entity: at most 4 per entity (space saving:
// a new one replaces the least frequent, inheriting its count), two
// generations of at most kGeneration entities each, so memory stays bounded.
// It runs for every ClientHello, 4-6 entities each: a fixed-size key (the
// entity's name as a 64-bit hash) and fixed-size entries in an
// open-addressing table, so a hello costs no allocation and no string hash.
class Ja4Tally {
public:
    static constexpr size_t kGeneration = 1u << 17;
    static constexpr size_t kPerEntity = 4;
    static constexpr size_t kMaxJa4 = 40;  // a JA4 has 36 characters

    void add(agg::EntityKind kind, const agg::EntityKey &key, std::string_view ja4)
    {
        ja4 = ja4.substr(0, kMaxJa4);
        const Key k = make_key(kind, key);
        Top *top = cur_.find(k);
        if (!top) {
            if (cur_.size() >= kGeneration) {
                prev_ = std::move(cur_);
                cur_.clear();
            }
            const Top *old = prev_.find(k);
            top = cur_.try_emplace(k).first;
            if (old)
                *top = *old;
        }
        for (uint8_t i = 0; i < top->n; i++)
            if (top->e[i].name() == ja4) {
                top->e[i].count++;
                return;
            }
        if (top->n < kPerEntity) {
            top->e[top->n++].set(ja4, 1);
            return;
        }
        Entry *least = &top->e[0];
        for (auto &e : top->e)
            if (e.count < least->count)
                least = &e;
        least->set(ja4, least->count + 1);
    }

    std::vector<NamedCount> top(agg::EntityKind kind, const agg::EntityKey &key) const
    {
        const Key k = make_key(kind, key);
        const Top *t = cur_.find(k);
        if (!t)
            t = prev_.find(k);
        if (!t)
            return {};
        std::vector<NamedCount> out;
        for (uint8_t i = 0; i < t->n; i++)
            out.push_back({std::string(t->e[i].name()), t->e[i].count});
        std::stable_sort(out.begin(), out.end(), [](auto &a, auto &b) {
            return a.value != b.value ? a.value > b.value : a.name < b.name;
        });
        return out;
    }

    size_t memory_bytes() const
    {
        // Items plus about two 8-byte slots each (the table stays at most half full).
        return (cur_.size() + prev_.size()) * (sizeof(Key) + sizeof(Top) + 16);
    }

private:
    struct Key {
        uint64_t name_hash;  // 0 for no name
        uint8_t addr[16];
        uint8_t kind;
        uint8_t prefix;
        uint8_t pad[6];
    };
    static_assert(sizeof(Key) == 32);
    struct Entry {
        uint64_t count;
        uint8_t len;
        char text[kMaxJa4];
        std::string_view name() const { return {text, len}; }
        void set(std::string_view s, uint64_t c)
        {
            len = uint8_t(s.size());
            std::memcpy(text, s.data(), s.size());
            count = c;
        }
    };
    struct Top {
        Entry e[kPerEntity];
        uint8_t n = 0;
    };
    static Key make_key(agg::EntityKind kind, const agg::EntityKey &key)
    {
        Key k{};
        k.name_hash = key.name.empty() ? 0 : hash_bytes(key.name.data(), key.name.size()) | 1;
        std::memcpy(k.addr, key.addr.data(), 16);
        k.kind = uint8_t(kind);
        k.prefix = key.prefix;
        return k;
    }
    DenseMap<Key, Top> cur_, prev_;
};

}  // namespace

struct Detector::Impl {
    struct Track {
        agg::EntityKey key;
        std::string id;
        uint32_t streak = 0;
        bool open = false, muted = false;
        uint64_t seen = 0;       // evaluation epoch it last held
        uint64_t opened_ms = 0;  // aggregator clock
        uint64_t opened_wall = 0;
        uint64_t last_sent_ms = 0, last_true_ms = 0;
        uint32_t count = 0;
        double value = 0, threshold = 0;
        std::optional<double> baseline;
    };
    struct Level {
        double ewma = 0;
        uint64_t last_bucket = 0, first_ms = 0, samples = 0;
    };
    struct RuleState {
        Rule rule;
        std::unordered_map<std::string, Track> tracks;
        std::unordered_map<std::string, Level> levels;
        uint64_t last_sweep_bucket = 0;
        // What the last evaluation covered (visits_all): the aggregator's
        // clock and generation then, and the rule's window bucket.
        bool covered = false;
        SourceMark covered_mark;
        uint64_t covered_bucket = 0;
        // out_in_ratio: the entities whose bytes out reached min_bytes_out at
        // the last evaluation, the only ones whose ratio may rise while idle.
        std::vector<agg::EntityKey> watch, next_watch;
    };
    struct Candidate {
        std::string k;
        double value, threshold;
        std::optional<double> baseline;
    };

    DetectConfig cfg;
    std::string host;
    std::vector<RuleState> rules;
    std::vector<RuleState> retired;  // dropped by reconfigure: open alerts to resolve
    Ja4Tally ja4;
    DetectStats stats;
    uint64_t epoch = 0;

    explicit Impl(DetectConfig c) { apply(std::move(c)); }

    void apply(DetectConfig c)
    {
        std::vector<RuleState> next;
        for (auto &r : c.rules) {
            RuleState rs;
            for (auto &old : rules)
                if (old.rule.name == r.name && old.rule.entity == r.entity &&
                    old.rule.metric == r.metric && old.rule.window_ms == r.window_ms) {
                    rs.tracks = std::move(old.tracks);
                    rs.levels = std::move(old.levels);
                    rs.last_sweep_bucket = old.last_sweep_bucket;
                    break;
                }
            rs.rule = r;
            next.push_back(std::move(rs));
        }
        for (auto &old : rules)
            if (!old.tracks.empty())
                retired.push_back(std::move(old));
        rules = std::move(next);
        cfg = std::move(c);
        host = cfg.host_name.empty() ? default_host_name() : cfg.host_name;
        // Open alerts of kept rules are compared with the new settings from
        // now on: their live view, updates and resolution say so.
        for (auto &rs : rules)
            for (auto &[k, t] : rs.tracks) {
                if (!rs.rule.baseline)
                    t.baseline.reset();
                if (rs.rule.threshold || t.baseline)
                    t.threshold = compared_with(rs.rule, sni_scale(rs.rule.entity, t.key), t.value,
                                                t.baseline);
            }
    }

    // What a value x is compared with: the threshold (scaled by the SNI
    // override) when x reaches it or the rule has no learned level for the
    // entity, else max(floor, factor x level).
    static double compared_with(const Rule &rule, double scale, double x,
                                std::optional<double> base)
    {
        bool reaches = rule.threshold && x > 0 && x >= *rule.threshold * scale;
        if (rule.threshold && (reaches || !rule.baseline || !base))
            return *rule.threshold * scale;
        return std::max(rule.baseline->floor * scale, rule.baseline->factor * *base);
    }

    size_t tracked() const
    {
        size_t n = 0;
        for (auto &r : rules)
            n += r.tracks.size();
        return n;
    }

    double sni_scale(agg::EntityKind kind, const agg::EntityKey &key) const
    {
        if (cfg.sni_scale.empty() ||
            (kind != agg::EntityKind::api_host && kind != agg::EntityKind::client_api_host))
            return 1.0;
        if (auto it = cfg.sni_scale.find(key.name); it != cfg.sni_scale.end())
            return it->second;
        for (size_t dot = key.name.find('.'); dot != std::string::npos;
             dot = key.name.find('.', dot + 1))
            if (auto it = cfg.sni_scale.find("*" + key.name.substr(dot)); it != cfg.sni_scale.end())
                return it->second;
        return 1.0;
    }

    bool allowed(const Rule &rule, agg::EntityKind kind, const agg::EntityKey &key) const
    {
        for (auto &a : cfg.allow) {
            if (!a.rules.empty() &&
                std::find(a.rules.begin(), a.rules.end(), rule.name) == a.rules.end())
                continue;
            switch (kind) {
            case agg::EntityKind::client:
            case agg::EntityKind::subnet:
                if (a.cidr && cidr_contains(*a.cidr, key.addr, key.prefix))
                    return true;
                break;
            case agg::EntityKind::client_api_host:
                if ((a.cidr && cidr_contains(*a.cidr, key.addr, key.prefix)) ||
                    (!a.sni.empty() && sni_matches(a.sni, key.name)))
                    return true;
                break;
            case agg::EntityKind::ja4_sni:
            case agg::EntityKind::api_host:
                if (!a.sni.empty() && sni_matches(a.sni, key.name))
                    return true;
                break;
            case agg::EntityKind::cohort:
                if (!a.cohort.empty() && a.cohort == key.name)
                    return true;
                break;
            case agg::EntityKind::ja4:
            case agg::EntityKind::host: break;
            }
        }
        return false;
    }

    std::string make_id(const Rule &rule, agg::EntityKind kind, const agg::EntityKey &key,
                        uint64_t wall_ms) const
    {
        uint64_t h = fnv1a(host);
        h = fnv1a(std::string_view("\0", 1), h);
        h = fnv1a(rule.name, h);
        h = fnv1a(std::string(1, char(kind)) + key_bytes(key), h);
        h = fnv1a(std::to_string(wall_ms), h);
        char buf[17];
        std::snprintf(buf, sizeof(buf), "%016llx", (unsigned long long)h);
        return buf;
    }

    AlertRecord record(FigureSource &src, const RuleState &rs, const Track &t, AlertState state,
                       uint64_t now_ms, uint64_t wall_ms) const
    {
        const Rule &rule = rs.rule;
        AlertRecord r;
        r.time_ms = wall_ms;
        r.host = host;
        r.id = t.id;
        r.state = state;
        r.rule = rule.name;
        r.severity = rule.severity;
        r.shadow = rule.shadow;
        r.entity_kind = rule_entity_name(rule.entity);
        r.metric = metric_name(rule.metric);
        r.window_ms = rule.window_ms;
        r.value = t.value;
        r.threshold = t.threshold;
        r.baseline = t.baseline;
        r.opened_ms = t.opened_wall;
        r.count = t.count;
        name_entity(r, rule.entity, t.key);
        add_figures(r, src, rule, t.key, now_ms, wall_ms);
        if (r.top_ja4.empty())
            r.top_ja4 = ja4.top(rule.entity, t.key);
        if (r.ja4)  // a fingerprint cohort: its own JA4, with the flows it opened
            r.top_ja4 = {{*r.ja4, r.tls_flows}};
        return r;
    }

    // What the record is about: its entity text and the client, subnet, SNI
    // or cohort fields that the entity kind has.
    void name_entity(AlertRecord &r, agg::EntityKind kind, const agg::EntityKey &key) const
    {
        auto addr_text = [&] {
            std::string s = format_addr(key.addr);
            if (key.prefix < agg::family_bits(key.addr))
                s += "/" + std::to_string(key.prefix);
            return s;
        };
        switch (kind) {
        case agg::EntityKind::client:
            r.client = addr_text();
            r.entity = *r.client;
            break;
        case agg::EntityKind::subnet:
            r.subnet = agg::format_key(kind, key);
            r.entity = *r.subnet;
            break;
        case agg::EntityKind::api_host:
            r.sni = key.name;
            r.entity = key.name;
            break;
        case agg::EntityKind::client_api_host:
            r.client = addr_text();
            r.sni = key.name;
            r.entity = *r.client + " -> " + key.name;
            break;
        case agg::EntityKind::cohort:
            r.cohort = key.name;
            r.entity = key.name;
            break;
        case agg::EntityKind::host: r.entity = host; break;
        case agg::EntityKind::ja4:
            r.ja4 = key.ja4;
            r.entity = key.ja4;
            break;
        case agg::EntityKind::ja4_sni:
            r.ja4 = key.ja4;
            r.sni = key.name;
            r.entity = agg::format_key(kind, key);
            break;
        }
    }

    // The entity's figures in the rule's window now, when the source still
    // holds it, and what the source says about it (times as wall clock).
    static void add_figures(AlertRecord &r, FigureSource &src, const Rule &rule,
                            const agg::EntityKey &key, uint64_t now_ms, uint64_t wall_ms)
    {
        auto f = src.find(rule, key, now_ms);
        if (!f) {
            if (agg::is_group(rule.entity))
                r.distinct_clients = 0;
            if (agg::counts_subnets(rule.entity))
                r.distinct_subnets = 0;
            return;
        }
        const agg::WindowValue &v = f->window;
        r.bytes_out = v.bytes_out;
        r.bytes_in = v.bytes_in;
        r.tls_flows = v.tls_flows;
        r.peak_concurrent = v.peak_concurrent;
        r.requests = v.requests;
        if (agg::is_group(rule.entity))
            r.distinct_clients = v.distinct_clients;
        if (agg::counts_subnets(rule.entity))
            r.distinct_subnets = v.distinct_subnets;
        src.describe(rule, key, now_ms, wall_ms, r);
    }

    // The learned level's verdict for one entity; updates the level once per window.
    std::optional<double> baseline_for(RuleState &rs, const std::string &k, double x,
                                       uint64_t now_ms, bool alert_open, bool &fire, double scale)
    {
        const Rule &rule = rs.rule;
        const Baseline &b = *rule.baseline;
        uint64_t bucket = now_ms / rule.window_ms;
        auto it = rs.levels.find(k);
        if (it == rs.levels.end()) {
            if (x <= 0 || rs.levels.size() >= cfg.max_baselines)
                return std::nullopt;
            Level L;
            L.first_ms = now_ms;
            L.last_bucket = bucket;
            it = rs.levels.emplace(k, L).first;
            return std::nullopt;  // the first, partial window teaches nothing yet
        }
        Level &L = it->second;
        if (bucket > L.last_bucket && !alert_open) {
            double alpha =
                std::min(1.0, double(rule.window_ms) / double(std::max<uint64_t>(b.learn_ms, 1)));
            uint64_t missed = bucket - L.last_bucket - 1;
            if (L.samples)
                L.ewma *= std::pow(1.0 - alpha, double(std::min<uint64_t>(missed, 1u << 20)));
            L.ewma = L.samples ? alpha * x + (1 - alpha) * L.ewma : x;
            L.samples++;
            L.last_bucket = bucket;
            return std::nullopt;  // this value is what was just learned
        }
        if (bucket > L.last_bucket)
            L.last_bucket = bucket;
        bool learned = L.samples > 0 && now_ms - L.first_ms >= b.learn_ms;
        if (!learned)
            return std::nullopt;
        double limit = std::max(b.floor * scale, b.factor * L.ewma);
        fire = x > limit;
        return L.ewma;
    }

    void sweep_levels(RuleState &rs, uint64_t now_ms)
    {
        if (!rs.rule.baseline)
            return;
        uint64_t bucket = now_ms / rs.rule.window_ms;
        if (bucket == rs.last_sweep_bucket)
            return;
        rs.last_sweep_bucket = bucket;
        // A level unsampled for two learning periods has decayed to nothing.
        uint64_t keep = std::max<uint64_t>(2, 2 * rs.rule.baseline->learn_ms / rs.rule.window_ms);
        for (auto it = rs.levels.begin(); it != rs.levels.end();)
            it = bucket - it->second.last_bucket > keep ? rs.levels.erase(it) : std::next(it);
    }

    // One rule over every entity of its kind: tracks updated, alerts opened,
    // re-sent and resolved into out.
    void evaluate_rule(FigureSource &src, RuleState &rs, uint64_t now_ms, uint64_t wall_ms,
                       std::vector<AlertRecord> &out)
    {
        std::vector<Candidate> fresh;
        std::string kbuf;  // the entity's key_bytes, reused from entity to entity
        auto visit = [&](const agg::EntityKey &key, const Figures &f) {
            stats.last_eval_entities++;
            observe(src, rs, key, f, now_ms, wall_ms, kbuf, fresh, out);
        };
        auto mark = src.mark();
        rs.next_watch.clear();
        bool read = visits_all(mark, rs, now_ms) ? src.for_each(rs.rule, now_ms, visit)
                                                 : revisit(src, rs, now_ms, visit);
        if (!read)
            return;
        std::swap(rs.watch, rs.next_watch);
        rs.covered = mark.has_value();
        rs.covered_mark = mark.value_or(SourceMark{});
        rs.covered_bucket = now_ms / rs.rule.window_ms;
        open_fresh(src, rs, fresh, now_ms, wall_ms, out);
        end_unseen(src, rs, now_ms, wall_ms, out);
        sweep_levels(rs, now_ms);
    }

    // Whether an entity's value on the metric can only fall while it gets no
    // update: sliding sums decay, peaks and distinct members roll off
    // (aggregate/entity_windows.h). A ratio can rise as its denominator
    // rolls off first: only entities on the watch list can, those whose
    // bytes out reached min_bytes_out (below it the ratio counts as 0, and
    // bytes out fall while idle too).
    static bool idle_value_never_rises(const Rule &rule)
    {
        switch (rule.metric) {
        case Metric::bytes_out:
        case Metric::bytes_in:
        case Metric::tls_flows:
        case Metric::requests:
        case Metric::concurrent_flows:
        case Metric::distinct_clients:
        case Metric::distinct_subnets:
        case Metric::distinct_sensors: return true;
        case Metric::out_in_ratio: return rule.min_bytes_out > 0;
        }
        return false;
    }

    // Whether this evaluation visits every entity of the rule's kind, or only
    // those updated since the last one (the source's mark then) and those
    // with a track or on the watch list. An idle entity's value has not
    // risen, so a rule that did not hold for it still does not: this keeps
    // the evaluation's cost with the traffic, not the tables. Every entity
    // is visited for a source that cannot tell what was updated, at the
    // first evaluation, after a new configuration on either side (values and
    // thresholds may have moved), for metrics that may rise while idle, and
    // for a baseline at the first evaluation of each window, where the
    // levels learn. So an entity whose learning ends while it is idle is
    // compared with its level from its next update on.
    bool visits_all(const std::optional<SourceMark> &mark, const RuleState &rs,
                    uint64_t now_ms) const
    {
        return !mark || !rs.covered || rs.covered_mark.generation != mark->generation ||
               !idle_value_never_rises(rs.rule) ||
               (rs.rule.baseline && now_ms / rs.rule.window_ms != rs.covered_bucket);
    }

    // The entities updated since the last evaluation, then the idle ones
    // that still need a look: tracked ones (a pending alert counts its
    // streak, and an open one stays open, only while the rule holds) and
    // watched ones. False when the source could not be read.
    bool revisit(FigureSource &src, RuleState &rs, uint64_t now_ms,
                 const FigureSource::Visit &visit) const
    {
        uint64_t since = rs.covered_mark.clock_ms;
        if (!src.for_each_updated(rs.rule, now_ms, since, visit))
            return false;
        // observe() must not run while the tracks are iterated.
        std::vector<agg::EntityKey> keys = std::move(rs.watch);
        std::string k;
        std::erase_if(keys, [&](const agg::EntityKey &key) {
            key_bytes_into(key, k);
            return rs.tracks.count(k) > 0;
        });
        for (auto &kt : rs.tracks)
            keys.push_back(kt.second.key);
        for (auto &key : keys) {
            auto f = src.find(rs.rule, key, now_ms);
            if (f && f->updated_ms < since)  // the others were visited above
                visit(key, *f);
        }
        return true;
    }

    // One entity: when the rule holds for it, its track is updated and either
    // re-sent (open) or, once sustained, a candidate to open (into fresh).
    void observe(FigureSource &src, RuleState &rs, const agg::EntityKey &key, const Figures &f,
                 uint64_t now_ms, uint64_t wall_ms, std::string &k, std::vector<Candidate> &fresh,
                 std::vector<AlertRecord> &out)
    {
        const Rule &rule = rs.rule;
        double x = rule_value(rule, f);
        if (rule.metric == Metric::out_in_ratio && x > 0)
            rs.next_watch.push_back(key);
        double scale = sni_scale(rule.entity, key);
        k.clear();
        Track *t = nullptr;
        bool base_fire = false;
        std::optional<double> base;
        if (rule.baseline) {
            t = find_track(rs, key, k);
            base = baseline_for(rs, k, x, now_ms, t && t->open, base_fire, scale);
        }
        bool thr_fire = rule.threshold && x > 0 && x >= *rule.threshold * scale;
        if (!thr_fire && !base_fire)
            return;
        if (allowed(rule, rule.entity, key)) {
            stats.allowed++;
            return;
        }
        double thr = compared_with(rule, scale, x, base);
        if (k.empty())  // without a baseline, the key bytes wait until the rule holds
            t = find_track(rs, key, k);
        if (!t && !(t = start_track(rs, key, k)))
            return;
        t->seen = epoch;
        t->last_true_ms = now_ms;
        t->value = x;
        t->threshold = thr;
        t->baseline = base;
        if (t->open)
            still_open(src, rs, *t, now_ms, wall_ms, out);
        else if (++t->streak >= rule.sustain)
            fresh.push_back({k, x, thr, base});
    }

    // The entity's track, or null; k receives its key bytes.
    static Track *find_track(RuleState &rs, const agg::EntityKey &key, std::string &k)
    {
        key_bytes_into(key, k);
        auto it = rs.tracks.find(k);
        return it == rs.tracks.end() ? nullptr : &it->second;
    }

    // A new track; null (counted as suppressed) when max_open are tracked already.
    Track *start_track(RuleState &rs, const agg::EntityKey &key, const std::string &k)
    {
        if (tracked() >= cfg.max_open) {
            stats.suppressed++;
            return nullptr;
        }
        Track nt;
        nt.key = key;
        return &rs.tracks.emplace(k, std::move(nt)).first->second;
    }

    // An open alert that still holds: counted, and re-sent every realert_ms unless muted.
    void still_open(FigureSource &src, const RuleState &rs, Track &t, uint64_t now_ms,
                    uint64_t wall_ms, std::vector<AlertRecord> &out)
    {
        t.count++;
        if (!t.muted && now_ms - t.last_sent_ms >= cfg.realert_ms) {
            t.last_sent_ms = now_ms;
            out.push_back(record(src, rs, t, AlertState::update, now_ms, wall_ms));
            stats.updated++;
        }
    }

    // Opens, the heaviest first; past the storm limit, muted and summarized.
    void open_fresh(FigureSource &src, RuleState &rs, std::vector<Candidate> &fresh,
                    uint64_t now_ms, uint64_t wall_ms, std::vector<AlertRecord> &out)
    {
        const Rule &rule = rs.rule;
        std::stable_sort(fresh.begin(), fresh.end(),
                         [](const Candidate &x, const Candidate &y) { return x.value > y.value; });
        size_t n_muted = 0;
        const Track *heaviest_muted = nullptr;
        for (size_t i = 0; i < fresh.size(); i++) {
            Track &t = rs.tracks.at(fresh[i].k);
            t.open = true;
            t.count = 1;
            t.opened_ms = now_ms;
            t.opened_wall = wall_ms;
            t.last_sent_ms = now_ms;
            t.id = make_id(rule, rule.entity, t.key, wall_ms);
            if (i < cfg.storm_limit) {
                out.push_back(record(src, rs, t, AlertState::open, now_ms, wall_ms));
                stats.opened++;
            } else {
                t.muted = true;
                n_muted++;
                if (!heaviest_muted)
                    heaviest_muted = &t;
            }
        }
        if (n_muted)
            summarize_muted(src, rs, *heaviest_muted, n_muted, now_ms, wall_ms, out);
    }

    // One summary record for the alerts muted past the storm limit, named
    // after the heaviest of them.
    void summarize_muted(FigureSource &src, const RuleState &rs, const Track &heaviest,
                         size_t n_muted, uint64_t now_ms, uint64_t wall_ms,
                         std::vector<AlertRecord> &out)
    {
        Track s = heaviest;
        s.id = make_id(rs.rule, rs.rule.entity, s.key, wall_ms ^ 0x5u);
        auto rec = record(src, rs, s, AlertState::summary, now_ms, wall_ms);
        rec.suppressed = n_muted;
        out.push_back(std::move(rec));
        stats.summaries++;
        stats.muted += n_muted;
    }

    // Not holding this evaluation: pending ones start over; open ones
    // resolve after resolve_after.
    void end_unseen(FigureSource &src, RuleState &rs, uint64_t now_ms, uint64_t wall_ms,
                    std::vector<AlertRecord> &out)
    {
        const Rule &rule = rs.rule;
        for (auto it = rs.tracks.begin(); it != rs.tracks.end();) {
            Track &t = it->second;
            if (t.seen == epoch) {
                ++it;
                continue;
            }
            if (!t.open) {
                it = rs.tracks.erase(it);
                continue;
            }
            if (now_ms - t.last_true_ms < cfg.resolve_after_ms) {
                ++it;
                continue;
            }
            if (!t.muted) {
                // The figures now; value is the metric now (below the threshold).
                auto f = src.find(rule, t.key, now_ms);
                t.value = f ? metric_value(rule.metric, *f) : 0;
                out.push_back(record(src, rs, t, AlertState::resolved, now_ms, wall_ms));
                stats.resolved++;
            }
            it = rs.tracks.erase(it);
        }
    }

    // --- state file -----------------------------------------------------------
    // Per rule: what identifies it (and what its records need once it is no
    // longer configured), its tracks and its levels.
    static void save_rule(StateWriter &w, const RuleState &rs)
    {
        w.str(rs.rule.name);
        w.u8(uint8_t(rs.rule.entity));
        w.u8(uint8_t(rs.rule.metric));
        w.u64(rs.rule.window_ms);
        w.u8(uint8_t(rs.rule.severity));
        w.u8(rs.rule.shadow);
        w.u64(rs.last_sweep_bucket);
        w.u64(rs.tracks.size());
        for (auto &[k, t] : rs.tracks) {
            w.str(k);
            w.pod(t.key.addr);
            w.u8(t.key.prefix);
            w.str(t.key.name);
            w.str(t.key.ja4);
            w.str(t.id);
            w.u32(t.streak);
            w.u8(uint8_t(t.open) | uint8_t(t.muted) << 1 | uint8_t(t.baseline.has_value()) << 2);
            w.u64(t.seen);
            w.u64(t.opened_ms);
            w.u64(t.opened_wall);
            w.u64(t.last_sent_ms);
            w.u64(t.last_true_ms);
            w.u32(t.count);
            w.f64(t.value);
            w.f64(t.threshold);
            w.f64(t.baseline.value_or(0));
        }
        w.u64(rs.levels.size());
        for (auto &[k, l] : rs.levels) {
            w.str(k);
            w.pod(l);
        }
    }

    static RuleState load_rule(StateReader &r)
    {
        RuleState rs;
        rs.rule.name = r.str();
        uint8_t entity = r.u8(), metric = r.u8();
        if (entity >= agg::kEntityKinds || metric > uint8_t(Metric::requests))
            throw Error("state: a rule's entity or metric is out of range");
        rs.rule.entity = agg::EntityKind(entity);
        rs.rule.metric = Metric(metric);
        rs.rule.window_ms = r.u64();
        uint8_t severity = r.u8();
        if (severity > uint8_t(Severity::critical))
            throw Error("state: a rule's severity is out of range");
        rs.rule.severity = Severity(severity);
        rs.rule.shadow = r.u8() != 0;
        rs.last_sweep_bucket = r.u64();
        for (uint64_t n = r.count(90); n; n--) {
            std::string k = r.str();
            Track t;
            t.key.addr = r.pod<Addr16>();
            t.key.prefix = r.u8();
            t.key.name = r.str();
            t.key.ja4 = r.str();
            t.id = r.str();
            t.streak = r.u32();
            uint8_t flags = r.u8();
            t.open = flags & 1;
            t.muted = flags & 2;
            t.seen = r.u64();
            t.opened_ms = r.u64();
            t.opened_wall = r.u64();
            t.last_sent_ms = r.u64();
            t.last_true_ms = r.u64();
            t.count = r.u32();
            t.value = r.f64();
            t.threshold = r.f64();
            double base = r.f64();
            if (flags & 4)
                t.baseline = base;
            if (k != key_bytes(t.key))
                throw Error("state: an alert's key does not match its entity");
            rs.tracks.emplace(std::move(k), std::move(t));
        }
        for (uint64_t n = r.count(8 + sizeof(Level)); n; n--) {
            std::string k = r.str();
            rs.levels.emplace(std::move(k), r.pod<Level>());
        }
        return rs;
    }

    void save(StateWriter &w) const
    {
        w.u64(epoch);
        w.u64(rules.size() + retired.size());
        for (auto *v : {&rules, &retired})
            for (auto &rs : *v)
                save_rule(w, rs);
    }

    void restore(StateReader &r)
    {
        uint64_t saved_epoch = r.u64();
        std::vector<RuleState> saved;
        for (uint64_t n = r.count(32); n; n--)
            saved.push_back(load_rule(r));
        // As apply(): the same rule carries on, with today's settings.
        for (auto &rs : rules) {
            rs.covered = false;
            for (auto &old : saved)
                if (old.rule.name == rs.rule.name && old.rule.entity == rs.rule.entity &&
                    old.rule.metric == rs.rule.metric && old.rule.window_ms == rs.rule.window_ms) {
                    rs.tracks = std::move(old.tracks);
                    rs.levels = std::move(old.levels);
                    rs.last_sweep_bucket = old.last_sweep_bucket;
                    old.tracks.clear();
                    break;
                }
        }
        for (auto &old : saved) {
            std::erase_if(old.tracks, [](const auto &kt) { return !kt.second.open; });
            if (!old.tracks.empty())
                retired.push_back(std::move(old));
        }
        epoch = saved_epoch;
    }
};

Detector::Detector(DetectConfig cfg)
{
    auto problems = validate(cfg);
    if (!problems.empty())
        throw Error("detection rules: " + problems.front());
    impl_ = std::make_unique<Impl>(std::move(cfg));
}
Detector::~Detector() = default;
Detector::Detector(Detector &&) noexcept = default;
Detector &Detector::operator=(Detector &&) noexcept = default;

bool Detector::reconfigure(DetectConfig cfg, std::string &why)
{
    auto problems = validate(cfg);
    if (!problems.empty()) {
        why = problems.front();
        return false;
    }
    impl_->apply(std::move(cfg));
    return true;
}

const DetectConfig &Detector::config() const { return impl_->cfg; }

void Detector::on_tls(const agg::Aggregator &a, uint64_t, const Addr16 &client,
                      std::string_view sni, std::string_view ja4)
{
    if (ja4.empty())
        return;
    auto &t = impl_->ja4;
    t.add(agg::EntityKind::client, a.client_key(client), ja4);
    t.add(agg::EntityKind::subnet, a.subnet_key(client), ja4);
    t.add(agg::EntityKind::host, agg::host_key(), ja4);
    if (auto c = a.cohort_of(client))
        t.add(agg::EntityKind::cohort, a.cohort_key(*c), ja4);
    if (!sni.empty()) {
        t.add(agg::EntityKind::api_host, a.api_host_key(sni), ja4);
        t.add(agg::EntityKind::client_api_host, a.client_api_key(client, sni), ja4);
    }
    // A fingerprint cohort's top JA4 is itself: its record names it (ja4).
}

std::vector<AlertRecord> Detector::evaluate(const agg::Aggregator &a, uint64_t now_ms,
                                            uint64_t wall_ms)
{
    AggregatorFigures figures(a);
    return evaluate(figures, now_ms, wall_ms);
}

std::vector<AlertRecord> Detector::evaluate(FigureSource &src, uint64_t now_ms, uint64_t wall_ms)
{
    auto t0 = std::chrono::steady_clock::now();
    std::vector<AlertRecord> out;
    impl_->epoch++;
    impl_->stats.last_eval_entities = 0;
    for (auto &rs : impl_->retired)
        for (auto &[k, t] : rs.tracks)
            if (t.open && !t.muted) {
                out.push_back(impl_->record(src, rs, t, AlertState::resolved, now_ms, wall_ms));
                impl_->stats.resolved++;
            }
    impl_->retired.clear();
    for (auto &rs : impl_->rules)
        impl_->evaluate_rule(src, rs, now_ms, wall_ms, out);
    auto &s = impl_->stats;
    s.evaluations++;
    s.open_now = 0;
    for (auto &rs : impl_->rules)
        for (auto &[k, t] : rs.tracks)
            s.open_now += t.open ? 1 : 0;
    s.last_eval_us = uint64_t(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count());
    return out;
}

bool Detector::resume(const OpenAlert &a, uint64_t now_ms)
{
    for (auto &rs : impl_->rules) {
        const Rule &rule = rs.rule;
        if (rule.name != a.rule || rule.entity != a.kind || rule.metric != a.metric)
            continue;
        std::string k = key_bytes(a.key);
        if (rs.tracks.contains(k))
            return false;
        Impl::Track t;
        t.key = a.key;
        t.id = a.id;
        t.open = true;
        t.streak = rule.sustain;
        t.seen = impl_->epoch;
        t.opened_ms = now_ms;
        t.opened_wall = a.opened_wall_ms;
        t.last_sent_ms = now_ms;
        t.last_true_ms = now_ms;
        t.count = std::max<uint32_t>(a.count, 1);
        t.value = a.value;
        t.threshold = a.threshold;
        rs.tracks.emplace(std::move(k), std::move(t));
        return true;
    }
    return false;
}

double metric_value(Metric m, const Figures &f)
{
    const agg::WindowValue &v = f.window;
    switch (m) {
    case Metric::bytes_out: return double(v.bytes_out);
    case Metric::bytes_in: return double(v.bytes_in);
    case Metric::tls_flows: return double(v.tls_flows);
    case Metric::requests: return double(v.requests);
    case Metric::concurrent_flows: return double(v.peak_concurrent);
    case Metric::distinct_clients: return double(v.distinct_clients);
    case Metric::distinct_subnets: return double(v.distinct_subnets);
    case Metric::out_in_ratio:
        return double(v.bytes_out) / double(std::max<uint64_t>(v.bytes_in, 1));
    case Metric::distinct_sensors: return double(f.distinct_sensors);
    }
    return 0;
}

const DetectStats &Detector::stats() const { return impl_->stats; }

void Detector::save_state(StateWriter &w) const { impl_->save(w); }

void Detector::restore_state(StateReader &r)
{
    auto fresh = std::make_unique<Impl>(impl_->cfg);
    fresh->restore(r);
    impl_ = std::move(fresh);
}

std::vector<OpenAlert> Detector::open_alerts() const
{
    std::vector<OpenAlert> out;
    for (auto &rs : impl_->rules) {
        size_t first = out.size();
        for (auto &[k, t] : rs.tracks)
            if (t.open)
                out.push_back({t.id, rs.rule.name, rs.rule.severity, rs.rule.shadow, t.muted,
                               rs.rule.entity, t.key, rs.rule.metric, t.value, t.threshold,
                               t.opened_wall});
        std::stable_sort(out.begin() + ptrdiff_t(first), out.end(), [](auto &a, auto &b) {
            return a.opened_wall_ms != b.opened_wall_ms ? a.opened_wall_ms < b.opened_wall_ms
                                                        : a.id < b.id;
        });
    }
    return out;
}

size_t Detector::memory_bytes() const
{
    size_t n = impl_->ja4.memory_bytes();
    for (auto &rs : impl_->rules)
        n += rs.tracks.size() * (sizeof(Impl::Track) + 64) +
             rs.levels.size() * (sizeof(Impl::Level) + 64);
    return n;
}

}  // namespace exf::detect
