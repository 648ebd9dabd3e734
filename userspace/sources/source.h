// SPDX-License-Identifier: Apache-2.0
#pragma once
// Where live traffic comes from: the eBPF backend (tc programs, pinned maps,
// ring buffer) or the libpcap backend (packet sockets and the same datapath
// source compiled into userspace), for hosts where eBPF cannot be loaded.
// Both expose the same tables and events to the daemon.
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "capture/changes.h"
#include "capture/maps.h"
#include "config/config.h"

namespace exf {

class LiveSource {
public:
    using EventFn = std::function<void(std::span<const uint8_t>)>;
    virtual ~LiveSource() = default;
    // Starts the thread that reads events or packets. Construction attaches
    // and opens everything that needs privileges; start() comes after the
    // capability drop, so that the thread inherits only what is kept.
    virtual void start() = 0;
    // The flow and client tables (flow cache folded in), read together.
    virtual Tables tables() = 0;
    std::vector<ClientRow> clients() { return tables().clients; }
    // What changed since the previous call (the harvest's read): the eBPF
    // backend reads its change log; others read the whole tables.
    virtual TableChanges changes()
    {
        TableChanges c;
        c.tables = tables();
        c.flow_entries = c.tables.flows.size();
        c.client_entries = c.tables.clients.size();
        return c;
    }
    virtual HealthCounters health() = 0;
    // Events queued since the last call (consumer thread only).
    virtual size_t pop_events(const EventFn &fn) = 0;
    virtual uint64_t events_received() const = 0;
    virtual uint64_t events_dropped() const = 0;
    // Events the ring buffer reader held back while the queue was full.
    virtual uint64_t events_waited() const { return 0; }
    // Called about once a second: an attached interface that disappeared is
    // logged (counting goes on on the others) and a configured interface
    // that (re)appears is attached again. True when an attachment changed.
    virtual bool maintain() { return false; }
    // A clean stop with pinned maps: the kernel goes on counting into them
    // until the next start (eBPF backend only).
    virtual void leave_attached() {}
    // Which kernel tables these are (the pinned maps' ids), for the state
    // file (state/state_file.h): "" when they are this run's own.
    virtual std::string tables_identity() const { return {}; }
    // The tables were taken over from an earlier run (reused pins): they
    // hold counts from before this start.
    virtual bool tables_carried_over() const { return false; }
};

// Throws exf::Error with context on failure.
std::unique_ptr<LiveSource> make_ebpf_source(const Config &cfg,
                                             const std::vector<std::string> &interfaces);
std::unique_ptr<LiveSource> make_pcap_source(const Config &cfg,
                                             const std::vector<std::string> &interfaces);

}  // namespace exf
