// SPDX-License-Identifier: Apache-2.0
#pragma once
// Internal to the aggregator: its entities, one EntityTable per kind, and
// the way to the table of a kind known only at run time (visit).
#include <cstddef>

#include "aggregate/entities.h"
#include "aggregate/entity_key.h"
#include "aggregate/entity_table.h"
#include "aggregate/windows.h"

namespace exf::agg::detail {

// The cell of a table without windows.
struct NoCell {};

struct EntityTables {
    // Members (clients, client x API hosts) keep compact cells; groups keep
    // wide ones, with distinct-member counts.
    EntityTable<ClientEntry, CompactCell> clients;
    EntityTable<SubnetEntry, WideCell> subnets;
    EntityTable<ApiHostEntry, WideCell> api_hosts;
    EntityTable<ClientApiHostEntry, CompactCell> client_api_hosts;
    EntityTable<CohortEntry, WideCell> cohorts;
    EntityTable<HostEntry, WideCell> host;
    EntityTable<Ja4Entry, WideCell> ja4s;
    EntityTable<Ja4SniEntry, WideCell> ja4_snis;
    // Not a kind: the members behind distinct counts (entities.h), no cells.
    EntityTable<MemberEntry, NoCell> members;

    // The second argument: log2 of the entries per slab chunk.
    explicit EntityTables(size_t windows)
        : clients(windows, 10), subnets(windows, 10), api_hosts(windows, 8),
          client_api_hosts(windows, 10), cohorts(windows, 4), host(windows, 0), ja4s(windows, 6),
          ja4_snis(windows, 8), members(0, 10)
    {}

    // f(the table of kind k); every kind's f must return the same type.
    template <class F>
    decltype(auto) visit(EntityKind k, F &&f)
    {
        return visit_in(*this, k, f);
    }
    template <class F>
    decltype(auto) visit(EntityKind k, F &&f) const
    {
        return visit_in(*this, k, f);
    }

    // f(table) for every kind's table.
    template <class F>
    void for_each_table(F &&f)
    {
        for (size_t k = 0; k < kEntityKinds; k++)
            visit(EntityKind(k), f);
    }

private:
    template <class Self, class F>
    static decltype(auto) visit_in(Self &s, EntityKind k, F &f)
    {
        switch (k) {
        case EntityKind::client: return f(s.clients);
        case EntityKind::subnet: return f(s.subnets);
        case EntityKind::api_host: return f(s.api_hosts);
        case EntityKind::client_api_host: return f(s.client_api_hosts);
        case EntityKind::cohort: return f(s.cohorts);
        case EntityKind::ja4: return f(s.ja4s);
        case EntityKind::ja4_sni: return f(s.ja4_snis);
        case EntityKind::host: break;
        }
        return f(s.host);
    }
};

}  // namespace exf::agg::detail
