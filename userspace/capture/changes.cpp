// SPDX-License-Identifier: Apache-2.0
#include "capture/changes.h"

#include <bpf/bpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "capture/bpf_sensor.h"
#include "common/error.h"

extern "C" {
#include "lib/user_shim.h"
}

namespace exf {

namespace {

size_t page_round(size_t n)
{
    size_t page = size_t(sysconf(_SC_PAGESIZE));
    return (n + page - 1) / page * page;
}

void *map_array(int fd, size_t bytes, int prot)
{
    void *p = mmap(nullptr, bytes, prot, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        throw_errno("map the change log", errno);
    return p;
}

uint32_t map_entries(int fd)
{
    bpf_map_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
        throw_errno("read the change log's size", errno);
    return info.max_entries;
}

template <class K>
void sort_unique(std::vector<K> &keys)
{
    auto less = [](const K &a, const K &b) { return std::memcmp(&a, &b, sizeof(K)) < 0; };
    auto same = [](const K &a, const K &b) { return std::memcmp(&a, &b, sizeof(K)) == 0; };
    std::sort(keys.begin(), keys.end(), less);
    keys.erase(std::unique(keys.begin(), keys.end(), same), keys.end());
}

// LRU hash tables may evict before they are full: each CPU keeps a share
// of the free entries (the kernel's LOCAL_FREE_TARGET, 128) to itself.
uint64_t eviction_slack(unsigned ncpu) { return uint64_t(ncpu) * 256 + 1024; }

}  // namespace

ChangeReader::ChangeReader(const BpfSensor &sensor, unsigned full_every)
    : sensor_(sensor), ncpu_(possible_cpus()), full_every_(full_every)
{
    ctl_bytes_ = page_round(sizeof(exf_change_ctl));
    ctl_ = static_cast<exf_change_ctl *>(
        map_array(sensor.change_ctl_fd(), ctl_bytes_, PROT_READ | PROT_WRITE));
    uint32_t entries = map_entries(sensor.changes_fd());
    cap_ = entries / EXF_CHG_BUFS;
    log_bytes_ = page_round(size_t(entries) * sizeof(exf_flow_key));
    try {
        log_ = static_cast<const exf_flow_key *>(
            map_array(sensor.changes_fd(), log_bytes_, PROT_READ));
    } catch (...) {
        munmap(ctl_, ctl_bytes_);
        throw;
    }
    flow_capacity_ = sensor.options().flow_table_size;
    client_capacity_ = sensor.options().client_table_size;
}

ChangeReader::~ChangeReader()
{
    munmap(const_cast<exf_flow_key *>(log_), log_bytes_);
    munmap(ctl_, ctl_bytes_);
}

// The buffer of the epoch after next is emptied (it was read at the two
// harvests after its epoch, and nothing writes it) before the datapath
// moves on to the next epoch.
uint32_t ChangeReader::next_epoch()
{
    uint32_t e = __atomic_load_n(&ctl_->epoch, __ATOMIC_ACQUIRE);
    __atomic_store_n(&ctl_->count[(e + 1) % EXF_CHG_BUFS], 0u, __ATOMIC_RELEASE);
    uint32_t next = e + 1 ? e + 1 : 1;  // 0 is the epoch of new entries
    __atomic_store_n(&ctl_->epoch, next, __ATOMIC_SEQ_CST);
    return e;
}

void ChangeReader::take_buffer(uint32_t buf, LoggedKeys &keys) const
{
    uint32_t n = __atomic_load_n(&ctl_->count[buf], __ATOMIC_ACQUIRE);
    if (n > cap_) {
        keys.overflow = true;
        n = cap_;
    }
    const exf_flow_key *k = log_ + size_t(buf) * cap_;
    for (uint32_t i = 0; i < n; i++) {
        exf_flow_key key;
        std::memcpy(&key, &k[i], sizeof(key));
        if (key.proto == EXF_CHG_CLIENT) {
            exf_client_key ck;
            std::memcpy(ck.addr, key.lo_addr, 16);
            keys.clients.push_back(ck);
        } else {
            keys.flows.push_back(key);
        }
    }
}

// The epoch that just ended, and the one before it again: a CPU that read
// that epoch just before the bump may have logged or changed an entry
// after the previous harvest read its buffer.
ChangeReader::LoggedKeys ChangeReader::logged_keys(uint32_t epoch) const
{
    LoggedKeys keys;
    take_buffer(epoch % EXF_CHG_BUFS, keys);
    take_buffer((epoch + EXF_CHG_BUFS - 1) % EXF_CHG_BUFS, keys);
    sort_unique(keys.flows);
    sort_unique(keys.clients);
    return keys;
}

bool ChangeReader::full_read_due(const LoggedKeys &keys, uint64_t flows_new,
                                 uint64_t clients_new) const
{
    if (first_ || keys.overflow || (full_every_ && since_full_ + 1 >= full_every_))
        return true;
    // Entry counts of a full read taken while entries were created are
    // not exact: read again once the tables are quiet (then it is).
    if (recount_ && !flows_new && !clients_new)
        return true;
    // Evictions are seen only in a full read: one is possible when entries
    // were created into a table close to full.
    uint64_t slack = eviction_slack(ncpu_);
    return (flows_new && flow_entries_ + flows_new + slack > flow_capacity_) ||
           (clients_new && client_entries_ + clients_new + slack > client_capacity_);
}

TableChanges ChangeReader::read()
{
    auto created = read_health(sensor_.health_fd());
    uint64_t flows_new = created[EXF_C_FLOW_NEW] - flows_created_;
    uint64_t clients_new = created[EXF_C_CLIENT_NEW] - clients_created_;
    LoggedKeys keys = logged_keys(next_epoch());
    TableChanges out;
    if (full_read_due(keys, flows_new, clients_new)) {
        read_full(out);
        // Entries created during the read may or may not be in it: the
        // count is exact only when none were.
        auto after = read_health(sensor_.health_fd());
        bool exact = after[EXF_C_FLOW_NEW] == created[EXF_C_FLOW_NEW] &&
                     after[EXF_C_CLIENT_NEW] == created[EXF_C_CLIENT_NEW];
        flow_entries_ = out.tables.flows.size();
        client_entries_ = out.tables.clients.size();
        first_ = false;
        recount_ = !exact;
        since_full_ = 0;
    } else {
        out.full = false;
        read_changed(keys, out);
        flow_entries_ += flows_new;
        client_entries_ += clients_new;
        since_full_++;
    }
    flows_created_ = created[EXF_C_FLOW_NEW];
    clients_created_ = created[EXF_C_CLIENT_NEW];
    out.flow_entries = flow_entries_;
    out.client_entries = client_entries_;
    return out;
}

void ChangeReader::read_full(TableChanges &out)
{
    auto before = read_fcache_all(sensor_.fcache_fd());
    out.tables.clients = read_clients(sensor_.clients_fd());
    out.tables.flows = read_flows(sensor_.flows_fd());
    auto after = read_fcache_all(sensor_.fcache_fd());
    cache_.assign(after.size(), exf_fc_slot{});
    for (size_t i = 0; i < after.size() && i < before.size(); i++)
        if (stable_slot(before[i], after[i]))
            cache_[i] = after[i];
    fold_cache(out);
    out.keys_read = out.tables.flows.size() + out.tables.clients.size();
}

// As read_tables: the slots before and after the entries, clients before
// flows (harvest/harvest_stage.h says why).
void ChangeReader::read_changed(const LoggedKeys &keys, TableChanges &out)
{
    auto slots = touched_slots(keys.flows);
    auto before = read_slots(slots);
    read_clients_by_key(keys.clients, out);
    read_flows_by_key(keys.flows, out);
    auto after = read_slots(slots);
    for (size_t s = 0; s < slots.size(); s++)
        for (unsigned c = 0; c < ncpu_; c++) {
            size_t i = s * ncpu_ + c;
            bool ok = stable_slot(before[i], after[i]);
            cache_[size_t(slots[s]) * ncpu_ + c] = ok ? after[i] : exf_fc_slot{};
        }
    fold_cache(out);
    out.keys_read = keys.flows.size() + keys.clients.size();
}

// A slot is written only by the slow path of the flow it holds or takes
// (which logs that flow): the slots of the logged flows are all that can
// have changed.
std::vector<uint32_t> ChangeReader::touched_slots(const std::vector<exf_flow_key> &flows) const
{
    std::vector<uint32_t> slots;
    slots.reserve(flows.size());
    for (const auto &k : flows)
        slots.push_back(exf_u_fc_index(&k));
    std::sort(slots.begin(), slots.end());
    slots.erase(std::unique(slots.begin(), slots.end()), slots.end());
    return slots;
}

std::vector<exf_fc_slot> ChangeReader::read_slots(const std::vector<uint32_t> &slots) const
{
    std::vector<exf_fc_slot> out(slots.size() * ncpu_);
    for (size_t s = 0; s < slots.size(); s++)
        if (bpf_map_lookup_elem(sensor_.fcache_fd(), &slots[s], &out[s * ncpu_]))
            throw_errno("read the flow cache", errno);
    return out;
}

void ChangeReader::read_clients_by_key(const std::vector<exf_client_key> &keys,
                                       TableChanges &out) const
{
    std::vector<exf_client_stats> vals(ncpu_);
    for (const auto &k : keys) {
        if (bpf_map_lookup_elem(sensor_.clients_fd(), &k, vals.data()) == 0)
            out.tables.clients.push_back(sum_client(k, vals.data(), ncpu_));
        else if (errno == ENOENT)
            out.clients_gone.push_back(k);
        else
            throw_errno("read the client table", errno);
    }
}

void ChangeReader::read_flows_by_key(const std::vector<exf_flow_key> &keys, TableChanges &out) const
{
    exf_flow f;
    for (const auto &k : keys) {
        if (bpf_map_lookup_elem(sensor_.flows_fd(), &k, &f) == 0)
            out.tables.flows.push_back(flow_row(k, f));
        else if (errno == ENOENT)
            out.flows_gone.push_back(k);
        else
            throw_errno("read the flow table", errno);
    }
}

// Every used slot (not only the ones read now) adds to the rows read: a
// client's reading holds the pending counts of all its cached flows.
void ChangeReader::fold_cache(TableChanges &out) const
{
    std::vector<exf_fc_slot> used;
    for (const auto &c : cache_)
        if (c.used)
            used.push_back(c);
    CacheFold fold(used);
    fold.add_to_flows(out.tables.flows);
    fold.add_to_clients(out.tables.clients);
    if (out.full) {
        for (const auto &ck : fold.clients_in_order())
            fold.add_missing_client(out.tables.clients, ck);
        return;
    }
    // A logged client gone from the table whose flows hold pending counts
    // has a reading, as in a full read.
    std::erase_if(out.clients_gone, [&](const exf_client_key &k) {
        return fold.add_missing_client(out.tables.clients, k);
    });
}

}  // namespace exf
