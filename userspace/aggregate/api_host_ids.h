// SPDX-License-Identifier: Apache-2.0
#pragma once
// Internal to the aggregator: the ids by which clients, groups and client x
// API host entities name an API host. An id is the API host's slot in the
// low 20 bits and a generation (1..4095) above, so an id held elsewhere goes
// stale when its API host is dropped and the slot reused. 0 is "none".
#include <cstdint>
#include <vector>

#include "aggregate/entities.h"
#include "aggregate/entity_table.h"
#include "aggregate/limits.h"
#include "aggregate/windows.h"

namespace exf::agg::detail {

class ApiHostIds {
public:
    using Table = EntityTable<ApiHostEntry, WideCell>;

    uint32_t id(uint32_t slot) const { return (uint32_t(gen_[slot]) << kSlotBits) | slot; }

    // The live API host's slot the id names, else kNoSlot.
    uint32_t slot(uint32_t id, const Table &api_hosts) const
    {
        uint32_t slot = id & kSlotMask;
        if (id == 0 || !api_hosts.live(slot) || gen_[slot] != (id >> kSlotBits))
            return kNoSlot;
        return slot;
    }

    // A slot handed out for a new API host.
    void used(uint32_t slot)
    {
        if (gen_.size() <= slot)
            gen_.resize(slot + 1, 1);
    }

    // The slot's API host is dropped: ids naming it go stale.
    void retire(uint32_t slot) { gen_[slot] = static_cast<uint16_t>(gen_[slot] % kMaxGen + 1); }

    size_t memory_bytes() const { return gen_.capacity() * sizeof(uint16_t); }

private:
    static constexpr uint32_t kSlotBits = 20;
    static constexpr uint32_t kSlotMask = (1u << kSlotBits) - 1;
    static constexpr uint32_t kMaxGen = 4095;
    static_assert(kMaxApiHosts.hi <= (1u << kSlotBits), "an API host's slot must fit its id");

    std::vector<uint16_t> gen_;  // per API host slot
};

}  // namespace exf::agg::detail
