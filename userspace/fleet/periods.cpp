// SPDX-License-Identifier: Apache-2.0
#include "fleet/periods.h"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace exf::fleet {

PeriodTable::PeriodTable(uint32_t period_ms, NameClient name_client)
    : period_ms_(std::max<uint32_t>(period_ms, 1)), name_client_(std::move(name_client))
{}

PeriodTable::Entry &PeriodTable::at(uint64_t now_ms, const Addr16 &client, std::string_view sni,
                                    std::string_view ja4)
{
    if (start_ms_ == 0)
        start_ms_ = period_of(now_ms);
    auto [it, added] = entries_.try_emplace(Key{client, std::string(sni), std::string(ja4)});
    return it->second;
}

void PeriodTable::add(uint64_t now_ms, const Addr16 &client, std::string_view sni,
                      std::string_view ja4, const agg::Traffic &t)
{
    auto &e = at(now_ms, client, sni, ja4);
    e.traffic.bytes_in += t.bytes_in;
    e.traffic.bytes_out += t.bytes_out;
    e.traffic.pkts_in += t.pkts_in;
    e.traffic.pkts_out += t.pkts_out;
    e.traffic.flows_opened += t.flows_opened;
    e.traffic.requests += t.requests;
    e.traffic_seen = true;
}

void PeriodTable::flow_opened(uint64_t now_ms, const Addr16 &client, std::string_view sni,
                              std::string_view ja4)
{
    auto &e = at(now_ms, client, sni, ja4);
    e.open++;
    e.peak = std::max(e.peak, e.open);
}

void PeriodTable::flow_closed(uint64_t now_ms, const Addr16 &client, std::string_view sni,
                              std::string_view ja4)
{
    auto &e = at(now_ms, client, sni, ja4);
    if (e.open > 0)
        e.open--;
}

namespace {

// One row per key of the table: a row whose names repeat an earlier row's
// is added to it.
class RowMerger {
public:
    explicit RowMerger(std::vector<TrafficRow> &rows) : rows_(rows) {}
    void add(TrafficRow row)
    {
        auto key =
            std::make_tuple(row.names.client, row.names.subnet, row.names.cohort, row.sni, row.ja4);
        auto [it, added] = index_.try_emplace(std::move(key), rows_.size());
        if (added) {
            rows_.push_back(std::move(row));
            return;
        }
        auto &into = rows_[it->second];
        into.traffic.bytes_in += row.traffic.bytes_in;
        into.traffic.bytes_out += row.traffic.bytes_out;
        into.traffic.pkts_in += row.traffic.pkts_in;
        into.traffic.pkts_out += row.traffic.pkts_out;
        into.traffic.flows_opened += row.traffic.flows_opened;
        into.traffic.requests += row.traffic.requests;
        into.peak_concurrent += row.peak_concurrent;
    }

private:
    std::vector<TrafficRow> &rows_;
    std::map<std::tuple<std::string, std::string, std::string, std::string, std::string>, size_t>
        index_;
};

}  // namespace

std::vector<TrafficRow> PeriodTable::close_due(uint64_t now_ms)
{
    std::vector<TrafficRow> rows;
    if (start_ms_ == 0 || now_ms < start_ms_ + period_ms_)
        return rows;
    RowMerger merged(rows);
    for (auto it = entries_.begin(); it != entries_.end();) {
        auto &[key, e] = *it;
        if (e.traffic_seen) {
            auto &[client, sni, ja4] = key;
            merged.add({start_ms_, period_ms_, name_client_(client), sni, ja4, e.traffic, e.peak});
        }
        // A key with flows still open carries them, and its peak starts from
        // them, into the next period.
        if (e.open == 0) {
            it = entries_.erase(it);
            continue;
        }
        e = Entry{{}, e.open, e.open, false};
        ++it;
    }
    start_ms_ = period_of(now_ms);
    return rows;
}

void PeriodTable::save(StateWriter &w) const
{
    w.u64(start_ms_);
    w.u64(entries_.size());
    for (const auto &[key, e] : entries_) {
        const auto &[client, sni, ja4] = key;
        w.pod(client);
        w.str(sni);
        w.str(ja4);
        w.pod(e.traffic);
        w.u32(e.open);
        w.u32(e.peak);
        w.u8(e.traffic_seen ? 1 : 0);
    }
}

void PeriodTable::restore(StateReader &r)
{
    uint64_t start = r.u64();
    // An entry takes at least its address, two string lengths, its sums
    // and flow counts.
    constexpr size_t kMinEntry = sizeof(Addr16) + 16 + sizeof(agg::Traffic) + 9;
    std::map<Key, Entry> entries;
    for (uint64_t n = r.count(kMinEntry); n > 0; n--) {
        auto client = r.pod<Addr16>();
        std::string sni = r.str(), ja4 = r.str();
        Entry e;
        e.traffic = r.pod<agg::Traffic>();
        e.open = r.u32();
        e.peak = r.u32();
        e.traffic_seen = r.u8() != 0;
        entries[Key{client, std::move(sni), std::move(ja4)}] = e;
    }
    start_ms_ = start;
    entries_ = std::move(entries);
}

std::string to_json_rows(const std::vector<TrafficRow> &rows, const std::string &sensor)
{
    std::string out;
    for (const auto &r : rows) {
        nlohmann::json j = {
            {"period_start", r.period_start_ms / 1000},
            {"period_ms", r.period_ms},
            {"sensor", sensor},
            {"client", r.names.client},
            {"subnet", r.names.subnet},
            {"cohort", r.names.cohort},
            {"sni", r.sni},
            {"ja4", r.ja4},
            {"bytes_in", r.traffic.bytes_in},
            {"bytes_out", r.traffic.bytes_out},
            {"packets_in", r.traffic.pkts_in},
            {"packets_out", r.traffic.pkts_out},
            {"tls_flows", r.traffic.flows_opened},
            {"peak_concurrent", r.peak_concurrent},
            {"requests", r.traffic.requests},
        };
        // Wire strings (SNI) may hold any byte: replace what is not UTF-8
        // rather than throw.
        out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        out += '\n';
    }
    return out;
}

}  // namespace exf::fleet
