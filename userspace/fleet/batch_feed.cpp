// SPDX-License-Identifier: Apache-2.0
#include "fleet/batch_feed.h"

#include <algorithm>
#include <string_view>
#include <vector>

#include "fleet/rule_sql.h"

namespace exf::fleet {

namespace {

constexpr uint64_t kHourS = 3600;
// How much one statement of a rebuild reads: bounded answers (a 10-minute
// slice of a 20-sensor fleet is about a million rows).
constexpr uint64_t kRawSliceS = 600;
constexpr uint64_t kHourlySliceS = 6 * kHourS;
constexpr size_t kBatchesPerRead = 256;

constexpr const char *kColumns =
    "sensor, client, subnet, cohort, sni, ja4, bytes_in, bytes_out, tls_flows, peak_concurrent, "
    "requests";

std::string at(uint64_t s) { return "toDateTime(" + std::to_string(s) + ")"; }

uint64_t number(std::string_view s)
{
    uint64_t n = 0;
    for (char c : s) {
        if (c < '0' || c > '9')
            return 0;
        n = n * 10 + uint64_t(c - '0');
    }
    return n;
}

// Calls fn with each line's fields (escaped as ClickHouse writes them).
template <typename Fn>
void for_each_tsv_line(std::string_view body, Fn &&fn)
{
    std::vector<std::string_view> fields;
    while (!body.empty()) {
        size_t end = std::min(body.find('\n'), body.size());
        std::string_view line = body.substr(0, end);
        body.remove_prefix(std::min(end + 1, body.size()));
        fields.clear();
        for (size_t tab; (tab = line.find('\t')) != std::string_view::npos;) {
            fields.push_back(line.substr(0, tab));
            line.remove_prefix(tab + 1);
        }
        fields.push_back(line);
        fn(fields);
    }
}

// A row of "t_s, kColumns" (TabSeparated); false when it is not one.
bool parse_row(const std::vector<std::string_view> &f, bool hour, FleetRow &row)
{
    if (f.size() != 12)
        return false;
    row.t_s = uint32_t(number(f[0]));
    row.hour = hour;
    row.sensor = tsv_unescape(f[1]);
    row.client = tsv_unescape(f[2]);
    row.subnet = tsv_unescape(f[3]);
    row.cohort = tsv_unescape(f[4]);
    row.sni = tsv_unescape(f[5]);
    row.ja4 = tsv_unescape(f[6]);
    row.bytes_in = number(f[7]);
    row.bytes_out = number(f[8]);
    row.tls_flows = number(f[9]);
    row.peak_concurrent = uint32_t(std::min<uint64_t>(number(f[10]), UINT32_MAX));
    row.requests = number(f[11]);
    return true;
}

std::string raw_sql(const std::string &db, const std::string &where)
{
    return "SELECT toUInt32(period_start), " + std::string(kColumns) + " FROM " + db +
           ".traffic FINAL WHERE " + where + " FORMAT TabSeparated";
}

std::string period_range(uint64_t from_s, uint64_t to_s)
{
    return "period_start >= " + at(from_s) + " AND period_start < " + at(to_s);
}

}  // namespace

BatchFeed::BatchFeed(ClickHouse &ch, std::string database) : ch_(ch), db_(std::move(database)) {}

uint64_t BatchFeed::batch_id(const std::string &sensor, uint64_t period_s)
{
    uint64_t sensor_id = sensor_ids_.emplace(sensor, uint32_t(sensor_ids_.size())).first->second;
    return sensor_id << 32 | (period_s & 0xffffffffu);
}

Reply BatchFeed::read_rows(FleetWindows &windows, const std::string &sql, bool note_batches)
{
    Reply r = ch_.query(sql);
    if (!r.ok())
        return r;
    bool hour = !note_batches;
    FleetRow row;
    for_each_tsv_line(r.body, [&](const std::vector<std::string_view> &fields) {
        if (!parse_row(fields, hour, row))
            return;
        windows.add(row);
        rows_read_++;
        if (note_batches && read_.insert(batch_id(row.sensor, row.t_s)).second)
            batches_read_++;
    });
    r.body.clear();
    return r;
}

Reply BatchFeed::rebuild(FleetWindows &windows, uint64_t from_s, uint64_t raw_from_s, uint64_t to_s)
{
    floor_s_ = raw_from_s;
    for (uint64_t a = from_s / kHourS * kHourS; a < raw_from_s; a += kHourlySliceS) {
        uint64_t b = std::min(a + kHourlySliceS, raw_from_s);
        Reply r = read_rows(windows,
                            "SELECT toUInt32(hour), " + std::string(kColumns) + " FROM " + db_ +
                                ".traffic_hourly FINAL WHERE hour >= " + at(a) + " AND hour < " +
                                at(b) + " FORMAT TabSeparated",
                            false);
        if (!r.ok())
            return r;
    }
    for (uint64_t a = raw_from_s; a < to_s; a += kRawSliceS) {
        Reply r =
            read_rows(windows, raw_sql(db_, period_range(a, std::min(a + kRawSliceS, to_s))), true);
        if (!r.ok())
            return r;
    }
    return {};
}

Reply BatchFeed::poll(FleetWindows &windows, uint64_t since_s, uint64_t until_s)
{
    since_s = std::max(since_s, floor_s_);
    Reply r = ch_.query("SELECT sensor, toUInt32(period_start) FROM " + db_ + ".traffic WHERE " +
                        period_range(since_s, until_s) +
                        " GROUP BY sensor, period_start ORDER BY period_start FORMAT TabSeparated");
    if (!r.ok())
        return r;
    std::vector<std::pair<std::string, uint64_t>> unread;
    for_each_tsv_line(r.body, [&](const std::vector<std::string_view> &f) {
        if (f.size() != 2)
            return;
        std::string sensor = tsv_unescape(f[0]);
        uint64_t period = number(f[1]);
        if (!read_.count(batch_id(sensor, period)))
            unread.emplace_back(std::move(sensor), period);
    });
    for (size_t i = 0; i < unread.size(); i += kBatchesPerRead) {
        size_t end = std::min(unread.size(), i + kBatchesPerRead);
        std::string in;
        for (size_t j = i; j < end; j++)
            in += std::string(in.empty() ? "" : ", ") + "(" + sql_quote(unread[j].first) + ", " +
                  std::to_string(unread[j].second) + ")";
        // Ordered by period: the range bounds what the server scans.
        std::string where = "period_start >= " + at(unread[i].second) +
                            " AND period_start <= " + at(unread[end - 1].second) +
                            " AND (sensor, toUInt32(period_start)) IN (" + in + ")";
        Reply rows = read_rows(windows, raw_sql(db_, where), true);
        if (!rows.ok())
            return rows;
        for (size_t j = i; j < end; j++)  // one that no longer exists is not asked for again
            if (read_.insert(batch_id(unread[j].first, unread[j].second)).second)
                batches_read_++;
    }
    return {};
}

void BatchFeed::forget_before(uint64_t before_s)
{
    for (auto it = read_.begin(); it != read_.end();)
        it = (*it & 0xffffffffu) < before_s ? read_.erase(it) : std::next(it);
}

}  // namespace exf::fleet
