// SPDX-License-Identifier: Apache-2.0
#include "report/replay_report.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <ostream>
#include <set>
#include <sstream>
#include <tuple>

#include "common/text.h"

namespace exf {

namespace {

using ojson = nlohmann::ordered_json;

std::string dump(const ojson &j)
{
    // Attacker-controlled strings: invalid UTF-8 becomes U+FFFD, never an
    // exception or an invalid line.
    return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

Addr16 to_addr(const uint8_t *a)
{
    Addr16 out;
    std::memcpy(out.data(), a, 16);
    return out;
}

FlowReport flow_report(const exf_flow_key &k, const exf_flow &f)
{
    FlowReport r;
    r.client_addr = to_addr(flow_client_addr(k, f));
    r.server_addr = to_addr(flow_server_addr(k, f));
    r.client = format_addr(r.client_addr);
    r.server = format_addr(r.server_addr);
    r.client_port = flow_client_port(k, f);
    r.server_port = flow_server_port(k, f);
    r.transport = f.kind == EXF_KIND_QUIC ? "quic" : "tcp";
    r.first_ns = f.first_ns;
    unsigned in = flow_in_dir(f);
    r.packets_in = f.pkts[in];
    r.packets_out = f.pkts[in ^ 1];
    r.bytes_in = f.bytes[in];
    r.bytes_out = f.bytes[in ^ 1];
    r.requests = f.requests;
    return r;
}

void attach_meta(FlowReport &r, const FlowRecord *rec)
{
    if (!rec)
        return;
    if (rec->tls.known)
        r.tls = rec->tls;
    r.anomalies = rec->anomalies;
}

auto flow_order(const FlowReport &f)
{
    return std::tie(f.client_addr, f.first_ns, f.client_port, f.server_addr, f.server_port,
                    f.transport, f.bytes_in, f.bytes_out, f.packets_in, f.packets_out);
}

ojson nullable(const std::optional<std::string> &s) { return s ? ojson(*s) : ojson(nullptr); }

// At most `max` items, then "(+N)"; each item printable.
std::string table_cell_list(const std::vector<std::string> &v, size_t max = SIZE_MAX)
{
    std::string s;
    for (size_t i = 0; i < v.size() && i < max; i++) {
        if (!s.empty())
            s += ',';
        s += ascii_escape(v[i]);
    }
    if (v.size() > max)
        s += " (+" + std::to_string(v.size() - max) + ")";
    return s;
}

// Aligned columns; numeric columns right-aligned.
void print_columns(std::ostream &out, const std::vector<std::string> &head,
                   const std::vector<std::vector<std::string>> &rows,
                   const std::vector<bool> &right)
{
    std::vector<size_t> w(head.size());
    for (size_t i = 0; i < head.size(); i++)
        w[i] = head[i].size();
    for (const auto &r : rows)
        for (size_t i = 0; i < r.size(); i++)
            w[i] = std::max(w[i], r[i].size());
    auto line = [&](const std::vector<std::string> &cells) {
        std::string s;
        for (size_t i = 0; i < cells.size(); i++) {
            bool last = i + 1 == cells.size();
            size_t pad = w[i] - cells[i].size();
            if (i)
                s += "  ";
            if (right[i])
                s.append(pad, ' ');
            s += cells[i];
            if (!right[i] && !last)
                s.append(pad, ' ');
        }
        out << s << "\n";
    };
    line(head);
    for (const auto &r : rows)
        line(r);
}

// The alerts, first: what a reader looks for.
void write_alerts_table(const std::vector<Alert> &alerts, std::ostream &out)
{
    // Any stage's alert: a field it lacks prints as "-".
    auto text = [](const nlohmann::ordered_json &j, const char *obj, const char *key) {
        const auto *v = &j;
        if (obj) {
            auto it = j.find(obj);
            if (it == j.end() || !it->is_object())
                return std::string("-");
            v = &*it;
        }
        auto it = v->find(key);
        return it != v->end() && it->is_string() ? ascii_escape(it->get<std::string>())
                                                 : std::string("-");
    };
    std::vector<std::vector<std::string>> rows;
    for (const auto &a : alerts)
        rows.push_back({text(a.fields, nullptr, "@timestamp"), text(a.fields, "exfilmon", "state"),
                        text(a.fields, "exfilmon", "severity"),
                        text(a.fields, nullptr, "message")});
    out << "ALERTS (" << alerts.size() << (alerts.empty() ? ": no rule fired" : ", as raised")
        << ")\n";
    if (!rows.empty())
        print_columns(out, {"TIME", "STATE", "SEVERITY", "ALERT"}, rows,
                      {false, false, false, false});
}

// The client addresses that count for one entity of the rules, and their sums.
struct EntityGroup {
    std::string entity;
    std::vector<const ClientReport *> members;  // by bytes out
    ClientReport total;                         // sni: the members' SNIs, distinct
};

bool more_bytes_out(const ClientReport *a, const ClientReport *b)
{
    return a->bytes_out > b->bytes_out;
}

// The clients by entity, the heaviest entity (bytes out) first.
std::vector<EntityGroup> group_by_entity(const std::vector<ClientReport> &clients)
{
    std::map<std::string, EntityGroup> by_entity;
    for (const auto &c : clients) {
        EntityGroup &g = by_entity[c.entity];
        g.entity = c.entity;
        g.members.push_back(&c);
        g.total.tls_flows += c.tls_flows;
        g.total.bytes_out += c.bytes_out;
        g.total.bytes_in += c.bytes_in;
        g.total.packets_out += c.packets_out;
        g.total.packets_in += c.packets_in;
    }
    std::vector<EntityGroup> groups;
    for (auto &[entity, g] : by_entity) {
        std::set<std::string> sni;
        for (const auto *c : g.members)
            sni.insert(c->sni.begin(), c->sni.end());
        g.total.sni.assign(sni.begin(), sni.end());
        std::stable_sort(g.members.begin(), g.members.end(), more_bytes_out);
        groups.push_back(std::move(g));
    }
    std::stable_sort(groups.begin(), groups.end(), [](const EntityGroup &a, const EntityGroup &b) {
        return more_bytes_out(&a.total, &b.total);
    });
    return groups;
}

// Client addresses under the entity the rules measure (an IPv6 client is its
// /64 by default): the rows that add up to an alert's value sit together,
// under a total row when there are several.
void write_clients_table(const ReplayReport &r, std::ostream &out)
{
    const auto groups = group_by_entity(r.clients);
    std::vector<std::vector<std::string>> rows;
    auto row = [&rows](const std::string &entity, const std::string &address,
                       const ClientReport &c) {
        rows.push_back({entity, address, std::to_string(c.tls_flows), std::to_string(c.bytes_out),
                        std::to_string(c.bytes_in), std::to_string(c.packets_out),
                        std::to_string(c.packets_in), table_cell_list(c.sni, 3)});
    };
    for (const auto &g : groups) {
        if (g.members.size() > 1)
            row(g.entity, "(" + std::to_string(g.members.size()) + " addresses)", g.total);
        for (const auto *c : g.members)
            row(g.entity, c->client, *c);
    }
    auto count = [](size_t n, const char *one, const char *many) {
        return std::to_string(n) + " " + (n == 1 ? one : many);
    };
    out << "CLIENTS (" << count(r.clients.size(), "address", "addresses") << " in "
        << count(groups.size(), "client entity", "client entities")
        << " of the rules, by bytes out)\n";
    print_columns(
        out,
        {"CLIENT", "ADDRESS", "TLS_FLOWS", "BYTES_OUT", "BYTES_IN", "PKTS_OUT", "PKTS_IN", "SNI"},
        rows, {false, false, true, true, true, true, true, false});
}

// Per fingerprint: every TLS/QUIC flow whose ClientHello gave a JA4.
// A JA4's client and subnet entities as keys (address, prefix), formatted
// once each at the end: formatting them per flow was most of the report's
// time. Sorted and deduplicated; their names then go into the report's sets.
struct EntityKeys {
    std::vector<std::pair<Addr16, uint8_t>> keys;
    void add(const agg::EntityKey &k) { keys.emplace_back(k.addr, k.prefix); }
    void format_into(agg::EntityKind kind, std::set<std::string> &out)
    {
        std::sort(keys.begin(), keys.end());
        keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
        for (const auto &[addr, prefix] : keys) {
            agg::EntityKey k;
            k.addr = addr;
            k.prefix = prefix;
            out.insert(agg::format_key(kind, k));
        }
    }
};

std::vector<Ja4Report> ja4_reports(const Tables &tables, const FlowTracker &tracker,
                                   const std::vector<FlowRecord> &reused, const agg::AggConfig &agg)
{
    struct Ja4Entities {
        Ja4Report report;
        EntityKeys clients, subnets;
    };
    std::map<std::string, Ja4Entities> by;
    auto add = [&](const exf_flow_key &k, const exf_flow &f, const FlowRecord *rec) {
        if ((f.kind != EXF_KIND_TLS && f.kind != EXF_KIND_QUIC) || !rec || !rec->tls.known ||
            rec->tls.ja4.empty())
            return;
        auto [it, added] = by.try_emplace(rec->tls.ja4);
        Ja4Report &j = it->second.report;
        if (added)
            j.ja4 = rec->tls.ja4;
        j.tls_flows++;
        const unsigned in = flow_in_dir(f);
        j.bytes_in += f.bytes[in];
        j.bytes_out += f.bytes[in ^ 1];
        if (rec->tls.sni && !rec->tls.sni->empty())
            j.sni.insert(*rec->tls.sni);
        const Addr16 client = to_addr(flow_client_addr(k, f));
        it->second.clients.add(agg.client_key(client));
        uint8_t sp = agg::is_v4(client) ? agg.subnet_prefix_v4 : agg.subnet_prefix_v6;
        it->second.subnets.add(agg::prefix_key(client, sp));
    };
    for (const auto &row : tables.flows)
        add(row.key, row.flow, tracker.lookup(row.key));
    for (const auto &rec : reused)
        if (rec.has_counters)
            add(rec.key, rec.counters, &rec);
    std::vector<Ja4Report> out;
    for (auto &[k, e] : by) {
        e.clients.format_into(agg::EntityKind::client, e.report.clients);
        e.subnets.format_into(agg::EntityKind::subnet, e.report.subnets);
        out.push_back(std::move(e.report));
    }
    return out;
}

void write_ja4_table(const ReplayReport &r, std::ostream &out)
{
    std::vector<std::vector<std::string>> rows;
    for (const auto &j : r.ja4)
        rows.push_back({j.ja4, std::to_string(j.tls_flows), std::to_string(j.bytes_out),
                        std::to_string(j.bytes_in), std::to_string(j.clients.size()),
                        std::to_string(j.subnets.size()),
                        table_cell_list({j.sni.begin(), j.sni.end()}, 3)});
    out << "\nFINGERPRINTS (" << r.ja4.size() << " JA4, by fingerprint)\n";
    print_columns(out, {"JA4", "TLS_FLOWS", "BYTES_OUT", "BYTES_IN", "CLIENTS", "SUBNETS", "SNI"},
                  rows, {false, true, true, true, true, true, false});
}

}  // namespace

ReplayReport build_report(const Datapath &dp, const FlowTracker &tracker,
                          const std::vector<FlowRecord> &reused, bool with_flows,
                          const agg::AggConfig &agg)
{
    ReplayReport rep;
    const Tables tables = dp.tables();
    std::map<Addr16, std::set<std::string>> snis;
    if (!with_flows) {
        // Only the clients' SNIs: what the flows below would give, without
        // formatting and sorting every flow.
        auto add = [&](const exf_flow_key &k, const exf_flow &f, const FlowRecord *rec) {
            rep.flow_count++;
            if (rec && rec->tls.known && rec->tls.sni)
                snis[to_addr(flow_client_addr(k, f))].insert(*rec->tls.sni);
        };
        for (const auto &row : tables.flows)
            if (row.flow.kind == EXF_KIND_TLS || row.flow.kind == EXF_KIND_QUIC)
                add(row.key, row.flow, tracker.lookup(row.key));
        for (const auto &rec : reused)
            if (rec.has_counters)
                add(rec.key, rec.counters, &rec);
    }
    for (const auto &row : tables.flows) {
        if (!with_flows || (row.flow.kind != EXF_KIND_TLS && row.flow.kind != EXF_KIND_QUIC))
            continue;
        FlowReport f = flow_report(row.key, row.flow);
        attach_meta(f, tracker.lookup(row.key));
        rep.flows.push_back(std::move(f));
    }
    for (const auto &rec : reused) {
        if (!rec.has_counters || !with_flows)
            continue;
        FlowReport f = flow_report(rec.key, rec.counters);
        f.reused = true;
        attach_meta(f, &rec);
        rep.flows.push_back(std::move(f));
    }
    std::sort(rep.flows.begin(), rep.flows.end(), [](const FlowReport &a, const FlowReport &b) {
        if (flow_order(a) != flow_order(b))
            return flow_order(a) < flow_order(b);
        return a.reused && !b.reused;  // the ended flow first
    });

    if (with_flows)
        rep.flow_count = rep.flows.size();
    for (const auto &f : rep.flows)
        if (f.tls && f.tls->sni)
            snis[f.client_addr].insert(*f.tls->sni);
    for (const auto &row : tables.clients) {
        ClientReport c;
        c.addr = to_addr(row.key.addr);
        c.client = format_addr(c.addr);
        c.entity = agg::format_key(agg::EntityKind::client, agg.client_key(c.addr));
        c.tls_flows = row.stats.tls_flows_opened;
        c.bytes_in = row.stats.bytes_in;
        c.bytes_out = row.stats.bytes_out;
        c.packets_in = row.stats.pkts_in;
        c.packets_out = row.stats.pkts_out;
        c.requests = row.stats.requests;
        if (auto it = snis.find(c.addr); it != snis.end())
            c.sni.assign(it->second.begin(), it->second.end());
        rep.clients.push_back(std::move(c));
    }
    std::sort(rep.clients.begin(), rep.clients.end(),
              [](const ClientReport &a, const ClientReport &b) { return a.addr < b.addr; });
    rep.ja4 = ja4_reports(tables, tracker, reused, agg);
    return rep;
}

std::string client_json(const ClientReport &c)
{
    ojson j;
    j["type"] = "client";
    j["client"] = c.client;
    j["tls_flows"] = c.tls_flows;
    j["bytes_in"] = c.bytes_in;
    j["bytes_out"] = c.bytes_out;
    j["packets_in"] = c.packets_in;
    j["packets_out"] = c.packets_out;
    j["sni"] = c.sni;
    j["entity"] = c.entity;
    j["requests"] = c.requests;
    return dump(j);
}

std::string ja4_json(const Ja4Report &r)
{
    ojson j;
    j["type"] = "ja4";
    j["ja4"] = r.ja4;
    j["tls_flows"] = r.tls_flows;
    j["bytes_in"] = r.bytes_in;
    j["bytes_out"] = r.bytes_out;
    j["distinct_clients"] = r.clients.size();
    j["distinct_subnets"] = r.subnets.size();
    j["sni"] = std::vector<std::string>(r.sni.begin(), r.sni.end());
    j["clients"] = std::vector<std::string>(r.clients.begin(), r.clients.end());
    return dump(j);
}

std::string flow_json(const FlowReport &f)
{
    ojson j;
    j["type"] = "flow";
    j["client"] = f.client;
    j["client_port"] = f.client_port;
    j["server"] = f.server;
    j["server_port"] = f.server_port;
    j["transport"] = f.transport;
    if (f.tls) {
        j["sni"] = nullable(f.tls->sni);
        j["alpn"] = f.tls->alpn;
        j["tls_version"] = f.tls->tls_version.empty() ? ojson(nullptr) : ojson(f.tls->tls_version);
        j["ja4"] = f.tls->ja4;
    } else {
        j["sni"] = nullptr;
        j["alpn"] = nullptr;
        j["tls_version"] = nullptr;
        j["ja4"] = nullptr;
    }
    j["bytes_in"] = f.bytes_in;
    j["bytes_out"] = f.bytes_out;
    j["packets_in"] = f.packets_in;
    j["packets_out"] = f.packets_out;
    j["requests"] = f.requests;
    return dump(j);
}

std::string alert_json(const Alert &a)
{
    ojson j;
    j["type"] = "alert";
    if (a.fields.is_object())
        for (const auto &[k, v] : a.fields.items())
            if (k != "type")
                j[k] = v;
    return dump(j);
}

void write_json(const ReplayReport &r, bool flows, std::ostream &out)
{
    for (const auto &c : r.clients)
        out << client_json(c) << "\n";
    if (flows)
        for (const auto &f : r.flows)
            out << flow_json(f) << "\n";
    for (const auto &j : r.ja4)
        out << ja4_json(j) << "\n";
}

void write_table(const ReplayReport &r, const std::vector<Alert> &alerts, bool flows,
                 std::ostream &out)
{
    write_alerts_table(alerts, out);
    out << "\n";
    write_clients_table(r, out);
    write_ja4_table(r, out);
    if (!flows)
        return;
    std::vector<const FlowReport *> fs;
    for (const auto &f : r.flows)
        fs.push_back(&f);
    std::stable_sort(fs.begin(), fs.end(), [](const FlowReport *a, const FlowReport *b) {
        return a->bytes_out > b->bytes_out;
    });
    std::vector<std::vector<std::string>> rows;
    auto ep = [](const std::string &a, uint16_t p) {
        return format_host_port(a, std::to_string(p));
    };
    for (const auto *f : fs) {
        std::string sni = "-", alpn = "-", ver = "-", ja4 = "-";
        if (f->tls) {
            sni = f->tls->sni ? ascii_escape(*f->tls->sni) : "(none)";
            alpn = f->tls->alpn.empty() ? "(none)" : table_cell_list(f->tls->alpn);
            ver = f->tls->tls_version.empty() ? "-" : f->tls->tls_version;
            ja4 = f->tls->ja4;
        }
        std::string anomalies = table_cell_list(f->anomalies);
        rows.push_back({ep(f->client, f->client_port), ep(f->server, f->server_port),
                        f->transport + (f->reused ? " (reused)" : ""), std::to_string(f->bytes_out),
                        std::to_string(f->bytes_in), std::to_string(f->packets_out),
                        std::to_string(f->packets_in), ver, sni, alpn, ja4,
                        anomalies.empty() ? "-" : anomalies});
    }
    out << "\nFLOWS (" << r.flows.size() << ", by bytes out)\n";
    print_columns(out,
                  {"CLIENT", "SERVER", "TRANSPORT", "BYTES_OUT", "BYTES_IN", "PKTS_OUT", "PKTS_IN",
                   "TLS", "SNI", "ALPN", "JA4", "ANOMALIES"},
                  rows,
                  {false, false, false, true, true, true, true, false, false, false, false, false});
}

}  // namespace exf
