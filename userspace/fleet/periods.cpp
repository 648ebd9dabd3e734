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

std::vector<TrafficRow> PeriodTable::close_due(uint64_t now_ms)
{
    std::vector<TrafficRow> rows;
    if (start_ms_ == 0 || now_ms < start_ms_ + period_ms_)
        return rows;
    for (auto it = entries_.begin(); it != entries_.end();) {
        auto &[key, e] = *it;
        if (e.traffic_seen) {
            auto &[client, sni, ja4] = key;
            rows.push_back(
                {start_ms_, period_ms_, name_client_(client), sni, ja4, e.traffic, e.peak});
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
        };
        // Wire strings (SNI) may hold any byte: replace what is not UTF-8
        // rather than throw.
        out += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        out += '\n';
    }
    return out;
}

}  // namespace exf::fleet
