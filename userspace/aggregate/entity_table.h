// SPDX-License-Identifier: Apache-2.0
#pragma once
// Internal to the aggregator: a compact hash table of entities.
//
// Entries live in a slab of fixed-size chunks (no reallocation, no per-node
// allocation): one array of headers E, and one of cells C with `nwin` cells
// per entry. A slot index (uint32) names an entry for its lifetime; freed
// slots are reused. The index is open addressing with linear probing over
// 8-byte slots {32-bit hash tag, slot index}, at most 3/4 full, with
// backward-shift deletion (no tombstones). Growing the index needs only the
// tags; the entries are not touched.
//
// Memory: chunks * chunk_entries * (sizeof(E) + nwin * sizeof(C)) for the slab
// (at most one partly used chunk, plus freed slots until compact()), 8 bytes
// per index slot (between 1.33 and 2.67 slots per entry), 4 bytes per free
// slot in the free list, plus whatever the caller reports through
// add_extra_bytes() (heap strings).
//
// E must be default-constructible and have a `bool live` member.
#include <cstdint>
#include <memory>
#include <vector>

namespace exf::agg::detail {

inline constexpr uint32_t kNoSlot = UINT32_MAX;

// 64-bit finalizer (splitmix64).
inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

template <class E, class C>
class EntityTable {
public:
    // chunk_shift: log2 of the entries per slab chunk.
    EntityTable(size_t nwin, unsigned chunk_shift) : nwin_(nwin), shift_(chunk_shift) {}

    size_t size() const { return live_; }
    uint32_t high_water() const { return used_; }  // slots ever handed out
    size_t nwin() const { return nwin_; }
    bool live(uint32_t i) const { return i < used_ && entry(i).live; }

    E &entry(uint32_t i) { return heads_[i >> shift_][i & mask()]; }
    const E &entry(uint32_t i) const { return heads_[i >> shift_][i & mask()]; }
    C *cells(uint32_t i) { return cells_[i >> shift_].get() + size_t(i & mask()) * nwin_; }
    const C *cells(uint32_t i) const
    {
        return cells_[i >> shift_].get() + size_t(i & mask()) * nwin_;
    }

    // eq(const E&) -> bool
    template <class Eq>
    uint32_t find(uint64_t hash, Eq &&eq) const
    {
        if (index_.empty())
            return kNoSlot;
        uint32_t tag = static_cast<uint32_t>(hash);
        size_t m = index_.size() - 1;
        for (size_t p = tag & m;; p = (p + 1) & m) {
            const Slot &s = index_[p];
            if (s.idx == kNoSlot)
                return kNoSlot;
            if (s.tag == tag && eq(entry(s.idx)))
                return s.idx;
        }
    }

    // A new live entry (E{} with live = true, zeroed cells), indexed under
    // `hash`; the caller sets its key.
    uint32_t insert(uint64_t hash)
    {
        uint32_t i;
        if (!free_.empty()) {
            i = free_.back();
            free_.pop_back();
        } else {
            if ((used_ >> shift_) >= heads_.size()) {
                heads_.emplace_back(new E[size_t(1) << shift_]);
                cells_.emplace_back(new C[(size_t(1) << shift_) * nwin_]);
            }
            i = used_++;
        }
        E &e = entry(i);
        e = E{};
        e.live = true;
        C *c = cells(i);
        for (size_t w = 0; w < nwin_; w++)
            c[w] = C{};
        live_++;
        index_add(hash, i);
        return i;
    }

    // Frees slot i, indexed under `hash`.
    void erase(uint32_t i, uint64_t hash)
    {
        index_remove(hash, i);
        entry(i) = E{};
        free_.push_back(i);
        live_--;
    }

    // Re-indexes live entry i from old_hash to new_hash (its key changed).
    void rehash_entry(uint32_t i, uint64_t old_hash, uint64_t new_hash)
    {
        index_remove(old_hash, i);
        index_add(new_hash, i);
    }

    template <class F>
    void for_each_live(F &&f) const
    {
        for (uint32_t i = 0; i < used_; i++)
            if (entry(i).live)
                f(i);
    }

    // Changes the number of windows: new cell w copies old cell map[w], or is
    // zero when map[w] < 0.
    void reshape(size_t nwin, const std::vector<int> &map)
    {
        std::vector<std::unique_ptr<C[]>> fresh;
        size_t per = size_t(1) << shift_;
        for (size_t k = 0; k < cells_.size(); k++) {
            std::unique_ptr<C[]> c(new C[per * nwin]);
            for (size_t e = 0; e < per; e++)
                for (size_t w = 0; w < nwin; w++)
                    c[e * nwin + w] = map[w] >= 0 ? cells_[k][e * nwin_ + size_t(map[w])] : C{};
            fresh.push_back(std::move(c));
        }
        cells_ = std::move(fresh);
        nwin_ = nwin;
    }

    // Moves live entries to the front, releases the chunks past them and
    // resizes the index. Slot indices change: only for tables whose slots
    // nobody keeps. hash_of(const E&) -> uint64_t.
    template <class H>
    void compact(H &&hash_of)
    {
        uint32_t dst = 0;
        for (uint32_t src = 0; src < used_; src++) {
            if (!entry(src).live)
                continue;
            if (dst != src) {
                entry(dst) = std::move(entry(src));
                entry(src) = E{};
                for (size_t w = 0; w < nwin_; w++)
                    cells(dst)[w] = cells(src)[w];
            }
            dst++;
        }
        used_ = dst;
        free_.clear();
        free_.shrink_to_fit();
        size_t chunks = (size_t(used_) + mask()) >> shift_;
        heads_.resize(chunks);
        cells_.resize(chunks);
        heads_.shrink_to_fit();
        cells_.shrink_to_fit();
        index_.clear();
        index_.shrink_to_fit();
        live_index_ = 0;
        for (uint32_t i = 0; i < used_; i++)
            index_add(hash_of(entry(i)), i);
    }

    // Worth compacting: most of the slab is free.
    bool sparse() const { return used_ > (uint32_t(1) << shift_) && live_ < used_ / 4; }

    void add_extra_bytes(int64_t d) { extra_ += d; }

    size_t memory_bytes() const
    {
        size_t per = size_t(1) << shift_;
        return heads_.size() * per * (sizeof(E) + nwin_ * sizeof(C)) +
               (heads_.capacity() + cells_.capacity()) * sizeof(void *) +
               index_.capacity() * sizeof(Slot) + free_.capacity() * sizeof(uint32_t) +
               static_cast<size_t>(extra_);
    }

private:
    struct Slot {
        uint32_t tag = 0;
        uint32_t idx = kNoSlot;
    };

    uint32_t mask() const { return (uint32_t(1) << shift_) - 1; }

    void index_add(uint64_t hash, uint32_t i)
    {
        if (index_.empty() || (live_index_ + 1) * 4 > index_.size() * 3)
            grow();
        uint32_t tag = static_cast<uint32_t>(hash);
        size_t m = index_.size() - 1;
        size_t p = tag & m;
        while (index_[p].idx != kNoSlot)
            p = (p + 1) & m;
        index_[p] = Slot{tag, i};
        live_index_++;
    }

    void index_remove(uint64_t hash, uint32_t i)
    {
        uint32_t tag = static_cast<uint32_t>(hash);
        size_t m = index_.size() - 1;
        size_t hole = tag & m;
        while (index_[hole].idx != i) {
            if (index_[hole].idx == kNoSlot)
                return;  // not indexed: nothing to do
            hole = (hole + 1) & m;
        }
        // Backward shift: pull later members of the cluster into the hole
        // when their home position allows it.
        for (size_t j = (hole + 1) & m; index_[j].idx != kNoSlot; j = (j + 1) & m) {
            size_t home = index_[j].tag & m;
            if (((j - home) & m) >= ((j - hole) & m)) {
                index_[hole] = index_[j];
                hole = j;
            }
        }
        index_[hole] = Slot{};
        live_index_--;
    }

    void grow()
    {
        size_t n = index_.empty() ? 16 : index_.size() * 2;
        while ((live_index_ + 1) * 4 > n * 3)
            n *= 2;
        std::vector<Slot> old;
        old.swap(index_);
        index_.assign(n, Slot{});
        size_t m = n - 1;
        for (const Slot &s : old) {
            if (s.idx == kNoSlot)
                continue;
            size_t p = s.tag & m;
            while (index_[p].idx != kNoSlot)
                p = (p + 1) & m;
            index_[p] = s;
        }
    }

    size_t nwin_;
    unsigned shift_;
    std::vector<std::unique_ptr<E[]>> heads_;
    std::vector<std::unique_ptr<C[]>> cells_;
    std::vector<uint32_t> free_;
    std::vector<Slot> index_;
    uint32_t used_ = 0;
    size_t live_ = 0, live_index_ = 0;
    int64_t extra_ = 0;
};

}  // namespace exf::agg::detail
