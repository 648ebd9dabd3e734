// SPDX-License-Identifier: Apache-2.0
#pragma once
// The harvest stage, shared by `exfilmon run` and `exfilmon replay`: turns a
// source's tables (the kernel's maps, or a replay datapath's) into
// aggregator inputs.
//
// The time given to run() is the aggregator's clock in milliseconds; flows'
// first-seen times (FlowRow) are on the same clock in nanoseconds (the
// kernel's monotonic clock live, packet time in replay).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aggregate/aggregator.h"
#include "capture/changes.h"
#include "capture/maps.h"
#include "common/addr.h"
#include "flows/flow_tracker.h"
#include "harvest/deltas.h"
#include "sources/source.h"

namespace exf {

// What a harvest counts, handed over beside the aggregator to a stage that
// keeps its own sums (the fleet's periods, apps/daemon_fleet.h): the same
// traffic, opens and closes the aggregator gets, in the same order, each
// with its flow's JA4. A flow whose SNI is not known counts for the client
// alone, as in the aggregator: sni and ja4 are then "".
class HarvestSink {
public:
    virtual ~HarvestSink() = default;
    // Before each harvest's inputs (now_ms: the harvest's clock).
    virtual void harvest_begins(uint64_t now_ms) = 0;
    virtual void add_traffic(const Addr16 &client, std::string_view sni, std::string_view ja4,
                             const agg::Traffic &t) = 0;
    virtual void flow_opened(const Addr16 &client, std::string_view sni, std::string_view ja4) = 0;
    virtual void flow_closed(const Addr16 &client, std::string_view sni, std::string_view ja4) = 0;
};

// One harvest: exact per-client deltas from the client table, and per-flow
// deltas to attribute to API hosts the part of each client's traffic whose
// flow's SNI is known; the rest goes to the client's entities alone. A flow
// whose ClientHello is not parsed yet (younger than kHelloWaitNs) is held
// back, together with the same amount of its client's delta, until it is.
class HarvestStage {
public:
    void run(agg::Aggregator &a, LiveSource &src, const FlowTracker &tracker, uint64_t now_ms,
             HarvestSink *sink = nullptr)
    {
        // Clients first: the datapath adds each packet to its flow before
        // its client, so the flow table read after the client table holds
        // every packet the client table does, and perhaps a few more. Those
        // are attributed now and owed by the client (owed_) until its table
        // shows them at a later harvest. (Read the other way round, a packet
        // could be counted as client-only first and attributed later: twice.)
        auto t = src.tables();
        run(a, t.flows, t.clients, tracker, now_ms, true, sink);
    }

    // The same from tables read by the caller (replay: a Datapath's).
    // wait_for_hellos false: no flow is held back for its ClientHello (the
    // traffic counted while no daemon ran: its hellos are not expected
    // before it is put into the windows, at its own time).
    void run(agg::Aggregator &a, const std::vector<FlowRow> &flow_rows,
             const std::vector<ClientRow> &client_rows, const FlowTracker &tracker, uint64_t now_ms,
             bool wait_for_hellos = true, HarvestSink *sink = nullptr)
    {
        const uint64_t now_ns = now_ms * 1000000ull;
        auto flows = flows_.harvest(flow_rows, ready_fn(tracker, now_ns, wait_for_hellos), now_ns,
                                    kFlowIdleNs);
        apply({a, sink}, flows, clients_.harvest(client_rows), tracker, now_ms);
    }

    // The same from what changed since the last read (capture/changes.h):
    // the entries not given are as last accounted.
    void run(agg::Aggregator &a, const TableChanges &c, const FlowTracker &tracker, uint64_t now_ms,
             HarvestSink *sink = nullptr)
    {
        if (c.full)
            return run(a, c.tables.flows, c.tables.clients, tracker, now_ms, true, sink);
        const uint64_t now_ns = now_ms * 1000000ull;
        auto flows = flows_.harvest_changed(c.tables.flows, c.flows_gone,
                                            ready_fn(tracker, now_ns, true), now_ns, kFlowIdleNs);
        apply({a, sink}, flows, clients_.harvest_changed(c.tables.clients, c.clients_gone), tracker,
              now_ms);
    }

    // The tables as they are now become the accounted state, and nothing
    // goes to the aggregator: for maps taken over from an earlier run whose
    // state is unknown, whose lifetime totals are not new traffic.
    void prime(const std::vector<FlowRow> &flow_rows, const std::vector<ClientRow> &client_rows,
               uint64_t now_ms)
    {
        flows_.harvest(
            flow_rows, [](const FlowRow &) { return true; }, now_ms * 1000000ull, kFlowIdleNs);
        clients_.harvest(client_rows);
        held_ = {};
        owed_ = {};
    }

    // What has been accounted (the tables' counters as last read, and the
    // bytes held and owed between them), for the state file.
    void save(StateWriter &w) const
    {
        clients_.save(w);
        flows_.save(w);
        for (auto *m : {&held_, &owed_}) {
            w.u64(m->size());
            m->for_each([&](const Addr16 &a, const Sums &s) {
                w.pod(a);
                w.pod(s);
            });
        }
    }
    // Throws exf::Error on bad input, leaving the stage as it was.
    void restore(StateReader &r)
    {
        Harvester clients;
        FlowHarvester flows;
        clients.restore(r);
        flows.restore(r);
        DenseMap<Addr16, Sums> maps[2];
        for (auto &m : maps) {
            uint64_t n = r.count(sizeof(Addr16) + sizeof(Sums));
            for (uint64_t i = 0; i < n; i++) {
                auto a = r.pod<Addr16>();
                *m.try_emplace(a).first = r.pod<Sums>();
            }
        }
        clients_ = std::move(clients);
        flows_ = std::move(flows);
        held_ = std::move(maps[0]);
        owed_ = std::move(maps[1]);
    }

private:
    struct Sums {
        uint64_t bytes_in = 0, bytes_out = 0, pkts_in = 0, pkts_out = 0, flows = 0;
        uint64_t requests = 0;
        void add(const FlowDelta &d)
        {
            bytes_in += d.bytes_in;
            bytes_out += d.bytes_out;
            pkts_in += d.pkts_in;
            pkts_out += d.pkts_out;
            flows += d.opened ? 1 : 0;
            requests += d.requests;
        }
        void plus(const Sums &o)
        {
            bytes_in += o.bytes_in;
            bytes_out += o.bytes_out;
            pkts_in += o.pkts_in;
            pkts_out += o.pkts_out;
            flows += o.flows;
            requests += o.requests;
        }
    };
    // A flow's API host and JA4 (its fingerprint cohort), each null when
    // its ClientHello is not parsed or does not carry it.
    struct FlowNames {
        const std::string *sni = nullptr, *ja4 = nullptr;
        std::string_view sni_view() const { return sni ? std::string_view(*sni) : ""; }
        std::string_view ja4_view() const { return ja4 ? std::string_view(*ja4) : ""; }
    };
    struct Edge {
        uint64_t ns;
        bool close;
        Addr16 client;
        FlowNames names;
    };
    using ClientSums = DenseMap<Addr16, Sums>;

    // Where a harvest's inputs go: the aggregator, and the sink when there
    // is one, each input to both.
    struct Feed {
        agg::Aggregator &a;
        HarvestSink *sink;
        void begin(uint64_t now_ms) const
        {
            if (sink)
                sink->harvest_begins(now_ms);
        }
        void traffic(uint64_t now_ms, const Addr16 &client, FlowNames n,
                     const agg::Traffic &t) const
        {
            a.add_traffic(now_ms, client, n.sni_view(), t, n.ja4_view());
            if (sink)
                sink->add_traffic(client, n.sni_view(), n.ja4_view(), t);
        }
        void opened(uint64_t now_ms, const Addr16 &client, FlowNames n) const
        {
            a.flow_opened(now_ms, client, n.sni_view(), n.ja4_view());
            if (sink)
                sink->flow_opened(client, n.sni_view(), n.ja4_view());
        }
        void closed(uint64_t now_ms, const Addr16 &client, FlowNames n) const
        {
            a.flow_closed(now_ms, client, n.sni_view(), n.ja4_view());
            if (sink)
                sink->flow_closed(client, n.sni_view(), n.ja4_view());
        }
    };

    // Ready: the tracker has decided about the flow's ClientHello (parsed
    // or malformed), or it is too old to still expect one (no hello at
    // all, or a QUIC flow before Initial decryption exists). The kernel's
    // HELLO_DONE flag is not enough: the event may still be queued.
    static std::function<bool(const FlowRow &)> ready_fn(const FlowTracker &tracker,
                                                         uint64_t now_ns, bool wait_for_hellos)
    {
        return [&tracker, now_ns, wait_for_hellos](const FlowRow &r) {
            auto *rec = tracker.lookup(r.key);
            return !wait_for_hellos ||
                   (rec &&
                    (rec->hello == HelloState::done || rec->hello == HelloState::malformed)) ||
                   now_ns > r.flow.first_ns + kHelloWaitNs;
        };
    }

    static FlowNames names_of(const FlowTracker &tracker, const exf_flow_key &k)
    {
        auto *rec = tracker.lookup(k);
        if (!rec || !rec->tls.known)
            return {};
        FlowNames n;
        if (rec->tls.sni && !rec->tls.sni->empty())
            n.sni = &*rec->tls.sni;
        if (!rec->tls.ja4.empty())
            n.ja4 = &rec->tls.ja4;
        return n;
    }

    // One harvest's deltas into the aggregator: flows attributed to their
    // API hosts, opens and closes, then each client's remainder.
    void apply(const Feed &feed, std::vector<FlowDelta> &flows,
               const std::vector<ClientDelta> &clients, const FlowTracker &tracker, uint64_t now_ms)
    {
        feed.begin(now_ms);
        ClientSums attributed, pending;
        auto edges = attribute_flows(feed, flows, tracker, now_ms, attributed, pending);
        apply_edges(feed, edges, now_ms);
        account_clients(feed, clients, attributed, pending, now_ms);
        feed.a.expire(now_ms);
    }

    // Inputs in a fixed order (flows by first seen, then key; clients by
    // address), not the tables' hash order: the aggregator's results that
    // depend on order (top SNIs, ties) are then the same whatever the
    // source (kernel maps, the userspace datapath).
    std::vector<Edge> attribute_flows(const Feed &feed, std::vector<FlowDelta> &deltas,
                                      const FlowTracker &tracker, uint64_t now_ms,
                                      ClientSums &attributed, ClientSums &pending)
    {
        std::vector<Edge> edges;
        std::sort(deltas.begin(), deltas.end(), [](const FlowDelta &x, const FlowDelta &y) {
            if (x.flow.first_ns != y.flow.first_ns)
                return x.flow.first_ns < y.flow.first_ns;
            return std::memcmp(&x.key, &y.key, sizeof(x.key)) < 0;
        });
        for (auto &d : deltas) {
            // A flow with traffic keeps its tracker record (its SNI) ahead
            // of idle ones when the tracker is full.
            if (d.pkts_in || d.pkts_out)
                tracker.touch(d.key);
            Addr16 client;
            std::memcpy(client.data(), flow_client_addr(d.key, d.flow), 16);
            if (d.pending) {
                pending.try_emplace(client).first->add(d);
                continue;
            }
            FlowNames names = names_of(tracker, d.key);
            // Opens and closes are applied below in the order they happened.
            if (d.opened)
                edges.push_back({d.flow.first_ns, false, client, names});
            if (d.resumed)
                edges.push_back({d.flow.last_ns, false, client, names});
            if (d.closed)
                edges.push_back({std::max(d.flow.last_ns, d.flow.first_ns), true, client, names});
            if (!names.sni && !names.ja4)
                continue;  // its traffic is counted for the client alone, below
            if (!d.opened && !d.pkts_in && !d.pkts_out)
                continue;  // an end only
            feed.traffic(
                now_ms, client, names,
                {d.bytes_in, d.bytes_out, d.pkts_in, d.pkts_out, d.opened ? 1u : 0u, d.requests});
            attributed.try_emplace(client).first->add(d);
        }
        return edges;
    }

    // Concurrency from the flows' own first and last packet times, so that
    // flows opened and closed between two harvests still overlap (or not)
    // as they did; a close before an open at the same time.
    static void apply_edges(const Feed &feed, std::vector<Edge> &edges, uint64_t now_ms)
    {
        std::stable_sort(edges.begin(), edges.end(), [](const Edge &x, const Edge &y) {
            return x.ns != y.ns ? x.ns < y.ns : x.close > y.close;
        });
        for (auto &e : edges) {
            if (e.close)
                feed.closed(now_ms, e.client, e.names);
            else
                feed.opened(now_ms, e.client, e.names);
        }
    }

    // Every client with a table delta or flow bytes of its own, in address
    // order (a sorted vector: at a million clients a std::map's tree would
    // be most of the harvest's userspace time), with its table delta.
    std::vector<std::pair<Addr16, Sums>> clients_in_order(const std::vector<ClientDelta> &changed,
                                                          const ClientSums &attributed,
                                                          const ClientSums &pending) const
    {
        ClientSums in_by_client;
        in_by_client.reserve(changed.size() + attributed.size() + pending.size() + held_.size() +
                             owed_.size());
        for (auto &c : changed)
            *in_by_client.try_emplace(c.client).first = {
                c.delta.bytes_in, c.delta.bytes_out,        c.delta.pkts_in,
                c.delta.pkts_out, c.delta.tls_flows_opened, c.delta.requests};
        for (auto *m : {&attributed, &pending, &held_, &owed_})
            m->for_each(
                [&](const Addr16 &client, const Sums &) { in_by_client.try_emplace(client); });
        std::vector<std::pair<Addr16, Sums>> order;
        order.reserve(in_by_client.size());
        in_by_client.for_each(
            [&](const Addr16 &client, const Sums &row) { order.emplace_back(client, row); });
        std::sort(order.begin(), order.end(), [](const auto &x, const auto &y) {
            return std::memcmp(x.first.data(), y.first.data(), 16) < 0;
        });
        return order;
    }

    // Per client: what its table delta (plus bytes held for flows that
    // were pending) leaves after the attributed and pending flows, and
    // after what earlier harvests attributed ahead of the client table
    // (owed_: the two tables are read at different moments, so a flow's
    // packets may show in its delta before they show in its client's).
    void account_clients(const Feed &feed, const std::vector<ClientDelta> &changed,
                         const ClientSums &attributed, const ClientSums &pending, uint64_t now_ms)
    {
        ClientSums held_next, owed_next;
        for (auto &[client, row] : clients_in_order(changed, attributed, pending)) {
            Sums in = row, taken;
            if (auto *h = held_.find(client))
                in.plus(*h);
            for (const ClientSums *m : {&attributed, &pending, &std::as_const(owed_)})
                if (auto *it = m->find(client))
                    taken.plus(*it);
            Sums owed;
            agg::Traffic t{split(in.bytes_in, taken.bytes_in, owed.bytes_in),
                           split(in.bytes_out, taken.bytes_out, owed.bytes_out),
                           split(in.pkts_in, taken.pkts_in, owed.pkts_in),
                           split(in.pkts_out, taken.pkts_out, owed.pkts_out),
                           split(in.flows, taken.flows, owed.flows),
                           split(in.requests, taken.requests, owed.requests)};
            if (t.bytes_in || t.bytes_out || t.pkts_in || t.pkts_out || t.flows_opened ||
                t.requests)
                feed.traffic(now_ms, client, {}, t);
            if (owed.bytes_in || owed.bytes_out || owed.pkts_in || owed.pkts_out || owed.flows ||
                owed.requests)
                *owed_next.try_emplace(client).first = owed;
            if (auto *p = pending.find(client))
                *held_next.try_emplace(client).first = *p;
        }
        owed_ = std::move(owed_next);
        held_ = std::move(held_next);
    }

    // total - minus, or 0 with the shortfall added to *owed.
    static uint64_t split(uint64_t total, uint64_t minus, uint64_t &owed)
    {
        if (total >= minus)
            return total - minus;
        owed += minus - total;
        return 0;
    }
    static constexpr uint64_t kHelloWaitNs = 2'000'000'000ull;
    // A flow without a packet for this long counts as closed for concurrency
    // (peak concurrent flows) until it sends again; flows that leave the
    // kernel's table without FIN or RST count as closed then.
    static constexpr uint64_t kFlowIdleNs = 120'000'000'000ull;
    Harvester clients_;
    FlowHarvester flows_;
    DenseMap<Addr16, Sums> held_;  // reported by the client table, not yet attributed
    DenseMap<Addr16, Sums> owed_;  // attributed before the client table showed it
};

}  // namespace exf
