// SPDX-License-Identifier: Apache-2.0
#pragma once
// Internal to the aggregator: which entities of one kind were updated since
// a time, so that Aggregator::for_each_active_since() costs the entities
// updated, not the table (the detector asks once per rule and evaluation;
// a scan of a million clients is 5 to 8 ms).
//
// The slots noted, in update order, cut into segments of one clock
// millisecond each. An entity is noted when it is created or its `last`
// moves to a later millisecond, so every live entity last updated at or
// after from() has a note at its `last`. Nothing is taken out when an
// entity goes: a reader keeps a note only for a live slot whose `last` is
// at or after its since, and reads each slot once (a slot updated at
// several milliseconds, or freed and reused, has several notes).
//
// Sized by updates, not by entities: it is off, and costs one branch per
// update, until the first read. A read that it does not cover (the first,
// one for a time before from()) scans the table, and the log restarts from
// the clock with the entities last updated then. A covered read forgets
// the notes before its since (the detector's since only moves forward);
// past an eighth of the table (at least kMinCap) notes since the last read,
// it turns off until the next read.
#include <algorithm>
#include <cstdint>
#include <vector>

namespace exf::agg::detail {

class UpdateLog {
public:
    static constexpr size_t kMinCap = 4096;

    // Whether the notes hold every entity updated at or after since.
    bool covers(uint64_t since) const { return on_ && since >= from_; }

    // Slot i, of a table of table_size live entities, is updated at now (the
    // clock); `last` is its `last` before (fresh: it was just created).
    void note(uint32_t i, uint64_t last, uint64_t now, bool fresh, size_t table_size)
    {
        if (!on_ || (!fresh && last >= now))
            return;
        if (slots_.size() - read_size_ >= std::max(kMinCap, table_size / 8)) {
            off();
            return;
        }
        if (segs_.empty() || segs_.back().ms != now)
            segs_.push_back({now, uint32_t(slots_.size())});
        slots_.push_back(i);
    }

    // Starts over at now, the clock, with the slots last updated at now.
    void restart(uint64_t now, std::vector<uint32_t> at_now)
    {
        on_ = true;
        from_ = now;
        slots_ = std::move(at_now);
        read_size_ = slots_.size();
        segs_.clear();
        if (!slots_.empty())
            segs_.push_back({now, 0});
    }

    // Forgets everything: the next read scans the table.
    void off()
    {
        on_ = false;
        slots_ = {};
        read_size_ = 0;
        segs_ = {};
    }

    // f(slot) for every note at or after since (covers(since)), after
    // forgetting the notes before it.
    template <class F>
    void read_since(uint64_t since, F &&f)
    {
        forget_before(since);
        for (uint32_t i : slots_)
            f(i);
    }

    size_t memory_bytes() const
    {
        return slots_.capacity() * sizeof(uint32_t) + segs_.capacity() * sizeof(Segment);
    }

private:
    struct Segment {
        uint64_t ms;     // the clock of its notes
        uint32_t begin;  // its first note in slots_
    };

    void forget_before(uint64_t since)
    {
        auto keep = std::lower_bound(segs_.begin(), segs_.end(), since,
                                     [](const Segment &s, uint64_t t) { return s.ms < t; });
        uint32_t cut = keep == segs_.end() ? uint32_t(slots_.size()) : keep->begin;
        slots_.erase(slots_.begin(), slots_.begin() + cut);
        segs_.erase(segs_.begin(), keep);
        for (auto &s : segs_)
            s.begin -= cut;
        from_ = std::max(from_, since);
        read_size_ = slots_.size();
        // A first harvest may note every entity once: not kept for good.
        if (slots_.capacity() > 4 * std::max(slots_.size(), kMinCap))
            slots_.shrink_to_fit();
        if (segs_.capacity() > 4 * std::max(segs_.size(), kMinCap))
            segs_.shrink_to_fit();
    }

    bool on_ = false;
    uint64_t from_ = 0;
    std::vector<uint32_t> slots_;
    size_t read_size_ = 0;  // notes at the last read
    std::vector<Segment> segs_;
};

}  // namespace exf::agg::detail
