// SPDX-License-Identifier: Apache-2.0
#pragma once
// Internal to the aggregator: which entity goes when a kind is at its limit.
// Sampled LRU: of a few live entities picked at random, the one least
// recently active. Exact LRU would need a list threaded through every
// entity, touched on every update; sampling costs nothing until the limit.
// The generator is deterministic, so a replay evicts the same entities.
#include <cstdint>

#include "aggregate/entity_table.h"

namespace exf::agg::detail {

class EvictionSampler {
public:
    // The entity to evict from a table that is not empty.
    template <class E, class C>
    uint32_t victim(const EntityTable<E, C> &t)
    {
        uint32_t best = kNoSlot, hw = t.high_water();
        int found = 0;
        for (int tries = 0; tries < 8 * kSample && found < kSample; tries++) {
            uint32_t i = static_cast<uint32_t>(next() % hw);
            if (!t.live(i))
                continue;
            found++;
            if (best == kNoSlot || t.entry(i).last < t.entry(best).last)
                best = i;
        }
        // A sparse table (many freed slots): the first live entity.
        for (uint32_t i = 0; i < hw && best == kNoSlot; i++)
            if (t.live(i))
                best = i;
        return best;
    }

private:
    static constexpr int kSample = 8;

    uint64_t next()  // xorshift64
    {
        rng_ ^= rng_ << 13;
        rng_ ^= rng_ >> 7;
        rng_ ^= rng_ << 17;
        return rng_;
    }

    uint64_t rng_ = 0x853c49e6748fea9bull;
};

}  // namespace exf::agg::detail
