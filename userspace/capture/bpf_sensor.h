// SPDX-License-Identifier: Apache-2.0
#pragma once
// RAII owner of the embedded BPF programs and maps (libbpf skeleton):
// open -> configure (rodata, map sizes) -> load. Attaching is TcAttachment's
// job; reading maps is in capture/maps.h.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "capture/maps.h"
#include "capture/owner_lock.h"
#include "common/units.h"

struct exfilmon;

namespace exf {

// The bounds of SensorOptions' sizes: validate() enforces them and the
// configuration reader states them ([bpf]).
inline constexpr Range kFlowTableSize{1024, 1u << 26};
inline constexpr Range kClientTableSize{256, 1u << 26};
inline constexpr Range kRingbufBytes{64u << 10, 1u << 30};  // and a power of two
// At least 1: a pure ACK (no payload) never takes a turn.
inline constexpr Range kRequestMinBytes{1, 65535};

struct SensorOptions {
    uint32_t flow_table_size = 262144;
    uint32_t client_table_size = 131072;
    uint32_t ringbuf_bytes = 4u << 20;  // power of two, >= page size
    std::vector<uint16_t> tls_ports{443, 8443};
    // The smallest TCP/UDP payload that takes a turn in the request count
    // (docs/datapath.md, "Requests").
    uint32_t request_min_bytes = EXF_REQUEST_MIN_BYTES;
    bool packet_time = false;  // replay: timestamps from skb->tstamp
    // Pin the maps under pin_path (bpffs, mounted if needed) and reuse maps
    // pinned there by an earlier run, so counts survive a daemon restart.
    // One live sensor per pin directory: a second one is refused (OwnerLock).
    bool pin = false;
    std::string pin_path = "/sys/fs/bpf/exfilmon";
    // With pin: a clean stop leaves the tc filters attached, counting into
    // the pinned maps until the next start takes them over, so a restart
    // loses nothing (`exfilmon detach` removes them).
    bool keep_attached = true;
};

class BpfSensor {
public:
    explicit BpfSensor(const SensorOptions &opts);  // throws exf::Error
    ~BpfSensor();
    BpfSensor(const BpfSensor &) = delete;
    BpfSensor &operator=(const BpfSensor &) = delete;

    int ingress_fd() const;
    int egress_fd() const;
    int flows_fd() const;
    int clients_fd() const;
    int health_fd() const;
    int events_fd() const;
    int fcache_fd() const;
    int change_ctl_fd() const;  // the change log (capture/changes.h)
    int changes_fd() const;
    // The flow and client tables with the flow cache folded in (maps.h).
    Tables tables() const;
    // Empties the flow and client tables, the flow cache and its generations,
    // and the health counters: the state of a fresh load, without the
    // verifier's second or so (replaying capture after capture).
    void clear_tables() const;
    const SensorOptions &options() const { return opts_; }
    // True when the maps were taken over from an earlier run's pins.
    bool reused_pins() const { return reused_pins_; }
    struct exfilmon *skeleton() const { return skel_; }

private:
    void open_and_configure();
    int init_change_log();
    SensorOptions opts_;
    std::optional<OwnerLock> pin_lock_;
    ::exfilmon *skel_ = nullptr;
    bool reused_pins_ = false;
};

// Keys per buffer of the change log: enough for an eighth of the tables to
// change between two harvests; more reads the whole tables.
uint32_t change_log_capacity(const SensorOptions &opts);

// Checks options against the bounds above: every problem found, in a fixed
// order; empty when valid.
std::vector<std::string> validate(const SensorOptions &opts);

}  // namespace exf
