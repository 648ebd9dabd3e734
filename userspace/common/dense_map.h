// SPDX-License-Identifier: Apache-2.0
#pragma once
// Hash tables for the per-packet and per-harvest paths (the userspace
// datapath's maps, the harvesters, the flow tracker): open addressing with
// linear probing over a small slot array (8 bytes a slot: item index and 32
// bits of the hash), the items themselves in chunks that never move, so a
// pointer to a value stays valid until that value is erased (as with the
// node-based std::unordered_map they replace). Erasing shifts the probe
// run back (no tombstones) and puts the item on a free list that the next
// insert reuses.
//
// Keys are compared and hashed as raw bytes (trivially copyable, no
// padding that could hold garbage: the kernel-boundary keys and Addr16).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

namespace exf {

namespace detail {
__extension__ typedef unsigned __int128 dense_u128;
inline uint64_t dense_mix(uint64_t a, uint64_t b)
{
    dense_u128 r = dense_u128(a) * b;
    return uint64_t(r) ^ uint64_t(r >> 64);
}
}  // namespace detail

// A 64-bit hash of n bytes (wyhash-style multiply-fold mixing).
inline uint64_t hash_bytes(const void *p, size_t n)
{
    constexpr uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull,
                       k2 = 0x8ebc6af09c88c6e3ull, k3 = 0x589965cc75374cc3ull;
    const auto *b = static_cast<const uint8_t *>(p);
    uint64_t h = k0 ^ n;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        uint64_t x, y;
        std::memcpy(&x, b + i, 8);
        std::memcpy(&y, b + i + 8, 8);
        h = detail::dense_mix(x ^ k1 ^ h, y ^ k2);
    }
    if (i < n) {
        uint64_t x = 0, y = 0;
        size_t left = n - i;
        std::memcpy(&x, b + i, left < 8 ? left : 8);
        if (left > 8)
            std::memcpy(&y, b + i + 8, left - 8);
        h = detail::dense_mix(x ^ k1 ^ h, y ^ k3);
    }
    return detail::dense_mix(h ^ k2, k1 ^ n);
}

template <typename K, typename V>
class DenseMap {
public:
    static_assert(std::is_trivially_copyable_v<K>);
    struct Item {
        K key;
        V value;
    };

    DenseMap() = default;
    DenseMap(const DenseMap &) = delete;
    DenseMap &operator=(const DenseMap &) = delete;
    DenseMap(DenseMap &&) = default;
    DenseMap &operator=(DenseMap &&) = default;

    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }

    V *find(const K &k)
    {
        uint32_t idx = find_index(k, hash32(k));
        return idx ? &item(idx - 1).value : nullptr;
    }
    const V *find(const K &k) const { return const_cast<DenseMap *>(this)->find(k); }

    // The value of k, inserted value-initialised when absent; second: inserted.
    std::pair<V *, bool> try_emplace(const K &k)
    {
        const uint32_t h = hash32(k);
        if (uint32_t idx = find_index(k, h))
            return {&item(idx - 1).value, false};
        return {&insert_new(k, h), true};
    }

    // Cache hints for a lookup of k a little later: the slot, then (once
    // the slot is likely in cache) the item it holds.
    void prefetch_slot(const K &k) const
    {
        if (!slots_.empty())
            __builtin_prefetch(&slots_[hash32(k) & mask_]);
    }
    void prefetch_item(const K &k) const
    {
        if (slots_.empty())
            return;
        const Slot s = slots_[hash32(k) & mask_];
        if (s.idx)
            __builtin_prefetch(&const_cast<DenseMap *>(this)->item(s.idx - 1));
    }

    bool erase(const K &k)
    {
        const uint32_t h = hash32(k);
        if (slots_.empty())
            return false;
        size_t pos = h & mask_;
        while (true) {
            Slot s = slots_[pos];
            if (!s.idx)
                return false;
            if (s.tag == h && same(item(s.idx - 1).key, k))
                break;
            pos = (pos + 1) & mask_;
        }
        const uint32_t idx = slots_[pos].idx - 1;
        remove_slot(pos);
        Item &it = item(idx);
        it.value = V{};
        live_[idx] = 0;
        free_.push_back(idx);
        size_--;
        return true;
    }

    void clear()
    {
        slots_.clear();
        chunks_.clear();
        live_.clear();
        free_.clear();
        size_ = 0;
        used_ = 0;
        mask_ = 0;
    }

    void reserve(size_t n)
    {
        if (n * 2 > slots_.size())
            rehash(n * 2);
    }

    // Calls f(key, value) for every item, in storage order (not sorted).
    template <typename F>
    void for_each(F &&f)
    {
        for (uint32_t i = 0; i < used_; i++)
            if (live_[i]) {
                Item &it = item(i);
                f(static_cast<const K &>(it.key), it.value);
            }
    }
    template <typename F>
    void for_each(F &&f) const
    {
        for (uint32_t i = 0; i < used_; i++)
            if (live_[i]) {
                const Item &it = const_cast<DenseMap *>(this)->item(i);
                f(it.key, it.value);
            }
    }
    // Erases every item for which pred(key, value) is true.
    template <typename P>
    void erase_if(P &&pred)
    {
        for (uint32_t i = 0; i < used_; i++)
            if (live_[i]) {
                Item &it = item(i);
                if (pred(static_cast<const K &>(it.key), it.value)) {
                    K k = it.key;
                    erase(k);
                }
            }
    }

private:
    static constexpr uint32_t kChunkBits = 10, kChunk = 1u << kChunkBits;
    struct Slot {
        uint32_t idx = 0;  // item index + 1; 0: empty
        uint32_t tag = 0;  // the key's 32-bit hash
    };

    static uint32_t hash32(const K &k)
    {
        uint64_t h = hash_bytes(&k, sizeof(K));
        return uint32_t(h ^ (h >> 32));
    }
    static bool same(const K &a, const K &b) { return std::memcmp(&a, &b, sizeof(K)) == 0; }

    Item &item(uint32_t i) { return chunks_[i >> kChunkBits][i & (kChunk - 1)]; }

    uint32_t find_index(const K &k, uint32_t h)
    {
        if (slots_.empty())
            return 0;
        size_t pos = h & mask_;
        while (true) {
            Slot s = slots_[pos];
            if (!s.idx)
                return 0;
            if (s.tag == h && same(item(s.idx - 1).key, k))
                return s.idx;
            pos = (pos + 1) & mask_;
        }
    }

    V &insert_new(const K &k, uint32_t h)
    {
        if ((size_ + 1) * 2 > slots_.size()) {
            rehash(slots_.empty() ? 16 : slots_.size() * 2);
        }
        uint32_t idx;
        if (!free_.empty()) {
            idx = free_.back();
            free_.pop_back();
        } else {
            idx = used_++;
            if ((idx >> kChunkBits) >= chunks_.size())
                chunks_.push_back(std::make_unique<Item[]>(kChunk));
            live_.push_back(0);
        }
        Item &it = item(idx);
        it.key = k;
        it.value = V{};
        live_[idx] = 1;
        place(idx, h);
        size_++;
        return it.value;
    }

    void place(uint32_t idx, uint32_t h)
    {
        size_t pos = h & mask_;
        while (slots_[pos].idx)
            pos = (pos + 1) & mask_;
        slots_[pos] = Slot{idx + 1, h};
    }

    // Backward-shift deletion of the slot at pos.
    void remove_slot(size_t pos)
    {
        size_t j = pos;
        size_t k = pos;
        while (true) {
            k = (k + 1) & mask_;
            if (!slots_[k].idx)
                break;
            size_t home = slots_[k].tag & mask_;
            // Move k to j unless its home lies cyclically in (j, k].
            bool stays = j <= k ? (j < home && home <= k) : (j < home || home <= k);
            if (stays)
                continue;
            slots_[j] = slots_[k];
            j = k;
        }
        slots_[j] = Slot{};
    }

    void rehash(size_t n)
    {
        size_t cap = 16;
        while (cap < n)
            cap *= 2;
        std::vector<Slot> old;
        old.swap(slots_);
        slots_.assign(cap, Slot{});
        mask_ = cap - 1;
        for (const Slot &s : old)
            if (s.idx)
                place(s.idx - 1, s.tag);
    }

    std::vector<Slot> slots_;
    std::vector<std::unique_ptr<Item[]>> chunks_;
    std::vector<uint8_t> live_;
    std::vector<uint32_t> free_;
    size_t size_ = 0;
    uint32_t used_ = 0;
    size_t mask_ = 0;
};

}  // namespace exf
