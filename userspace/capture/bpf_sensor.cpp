// SPDX-License-Identifier: Apache-2.0
#include "capture/bpf_sensor.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "capture/shared_layout.h"
#include "common/error.h"
#include "common/log.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include "exfilmon.skel.h"
#pragma GCC diagnostic pop

namespace exf {

std::vector<std::string> validate(const SensorOptions &o)
{
    std::vector<std::string> problems;
    // Each bound from bpf_sensor.h; "at least" words are pinned by
    // tests/unit/test_sensor_options.cpp.
    auto table = [&](uint64_t v, const char *what, const Range &r) {
        if (v < r.lo)
            problems.push_back(std::string(what) + " must be at least " + std::to_string(r.lo));
        else if (v > r.hi)
            problems.push_back(std::string(what) + " must be at most " + std::to_string(r.hi));
    };
    table(o.flow_table_size, "flow table size", kFlowTableSize);
    table(o.client_table_size, "client table size", kClientTableSize);
    static_assert(kRingbufBytes.lo == 64u << 10 && kRingbufBytes.hi == 1u << 30,
                  "the messages name these");
    if (o.ringbuf_bytes < kRingbufBytes.lo || (o.ringbuf_bytes & (o.ringbuf_bytes - 1)))
        problems.push_back("ring buffer size must be a power of two of at least 64 KiB");
    else if (o.ringbuf_bytes > kRingbufBytes.hi)
        problems.push_back("ring buffer size must be at most 1 GiB");
    if (o.tls_ports.empty() || o.tls_ports.size() > EXF_MAX_TLS_PORTS)
        problems.push_back("between 1 and " + std::to_string(EXF_MAX_TLS_PORTS) + " TLS ports");
    if (std::find(o.tls_ports.begin(), o.tls_ports.end(), uint16_t(0)) != o.tls_ports.end())
        problems.push_back("TLS port 0 is not valid");
    table(o.request_min_bytes, "request_min_bytes", kRequestMinBytes);
    return problems;
}

namespace {

constexpr const char *kPinnedMaps[] = {"exf_flows",      "exf_clients", "exf_fcache",
                                       "exf_fc_gen",     "exf_health",  "exf_events",
                                       "exf_change_ctl", "exf_changes"};

// Mounts bpffs on /sys/fs/bpf if the pin path lies there and it is not mounted.
void ensure_bpffs(const std::string &pin_path)
{
    auto on_bpffs = [](const std::string &dir) {
        struct statfs st {};
        return statfs(dir.c_str(), &st) == 0 && st.f_type == BPF_FS_MAGIC;
    };
    std::string parent = pin_path.substr(0, pin_path.find_last_of('/'));
    if (parent.empty())
        parent = "/";
    if (on_bpffs(parent))
        return;
    if (parent != "/sys/fs/bpf")
        throw Error("pin_path " + pin_path + ": " + parent +
                        " is not on a bpffs mount (mount -t bpf bpf " + parent +
                        ", or set bpf.pin = false)",
                    EINVAL);
    if (mount("bpf", "/sys/fs/bpf", "bpf", 0, nullptr) != 0)
        throw_errno("mount bpffs on /sys/fs/bpf (needed for pinning; or set bpf.pin = false)",
                    errno);
    spdlog::info("mounted bpffs on /sys/fs/bpf");
}

bool pinned_exists(const std::string &path)
{
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

void BpfSensor::open_and_configure()
{
    skel_ = exfilmon::open();
    if (!skel_)
        throw_errno("open BPF object", errno);
    const SensorOptions &opts = opts_;
    int err = bpf_map__set_max_entries(skel_->maps.exf_flows, opts.flow_table_size);
    if (!err)
        err = bpf_map__set_max_entries(skel_->maps.exf_clients, opts.client_table_size);
    if (!err)
        err = bpf_map__set_max_entries(skel_->maps.exf_events, opts.ringbuf_bytes);
    if (!err)
        err = bpf_map__set_max_entries(skel_->maps.exf_changes,
                                       EXF_CHG_BUFS * change_log_capacity(opts));
    if (err) {
        exfilmon::destroy(skel_);
        skel_ = nullptr;
        throw_errno("size BPF maps", err);
    }
    for (size_t i = 0; i < opts.tls_ports.size(); i++)
        skel_->rodata->exf_tls_ports[i] = opts.tls_ports[i];
    for (size_t i = opts.tls_ports.size(); i < EXF_MAX_TLS_PORTS; i++)
        skel_->rodata->exf_tls_ports[i] = 0;
    skel_->rodata->exf_n_tls_ports = uint32_t(opts.tls_ports.size());
    skel_->rodata->exf_use_pkt_time = opts.packet_time ? 1 : 0;
    skel_->rodata->exf_rb_wake_bytes = opts.ringbuf_bytes / 2;
    skel_->rodata->exf_request_min_bytes = opts.request_min_bytes;
    if (opts.pin) {
        for (auto *name : kPinnedMaps) {
            auto *m = bpf_object__find_map_by_name(skel_->obj, name);
            std::string path = opts.pin_path + "/" + name;
            if (int e = bpf_map__set_pin_path(m, path.c_str())) {
                exfilmon::destroy(skel_);
                skel_ = nullptr;
                throw_errno("set pin path " + path, e);
            }
        }
    }
}

BpfSensor::BpfSensor(const SensorOptions &opts) : opts_(opts)
{
    if (auto problems = validate(opts); !problems.empty())
        throw Error("BPF options: " + problems.front(), EINVAL);
    if (opts.pin) {
        ensure_bpffs(opts.pin_path);
        if (mkdir(opts.pin_path.c_str(), 0700) != 0 && errno != EEXIST)
            throw_errno("create pin directory " + opts.pin_path, errno);
        // Before the pins are read or replaced: they may be a live daemon's.
        pin_lock_.emplace(OwnerLock::directory(opts.pin_path, "pin directory " + opts.pin_path +
                                                                  " (bpf.pin_path)"));
        reused_pins_ = pinned_exists(opts.pin_path + "/exf_clients");
    }
    open_and_configure();
    int err = exfilmon::load(skel_);
    if (err && opts.pin && reused_pins_) {
        // Pinned maps of another shape (an upgrade changed a struct, or the
        // configuration changed a table size): they cannot be reused.
        spdlog::warn("maps pinned under {} do not match this build or configuration ({}); "
                     "replacing them: counts from before this start are lost",
                     opts.pin_path, strerror(-err));
        exfilmon::destroy(skel_);
        for (auto *name : kPinnedMaps)
            unlink((opts.pin_path + "/" + name).c_str());
        reused_pins_ = false;
        open_and_configure();
        err = exfilmon::load(skel_);
    }
    if (!err)
        err = init_change_log();
    if (reused_pins_ && !err)
        spdlog::info("reusing the maps pinned under {}: counts continue", opts.pin_path);
    if (err) {
        exfilmon::destroy(skel_);
        skel_ = nullptr;
        if (err == -EPERM || err == -EACCES)
            throw Error("load BPF programs: " + std::string(strerror(-err)) +
                            ": exfilmon needs CAP_BPF (programs and maps), CAP_PERFMON (the "
                            "verifier's full checks) and CAP_NET_ADMIN (tc attach). Run it as "
                            "root, or grant them: the unit configs/exfilmon.service does with "
                            "AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_NET_ADMIN. Without "
                            "eBPF, set [capture] backend = \"pcap\" (needs CAP_NET_RAW)",
                        -err);
        throw_errno("load BPF programs", err);
    }
}

BpfSensor::~BpfSensor()
{
    if (skel_)
        exfilmon::destroy(skel_);
}

int BpfSensor::ingress_fd() const { return bpf_program__fd(skel_->progs.exf_tc_ingress); }
int BpfSensor::egress_fd() const { return bpf_program__fd(skel_->progs.exf_tc_egress); }
int BpfSensor::flows_fd() const { return bpf_map__fd(skel_->maps.exf_flows); }
int BpfSensor::clients_fd() const { return bpf_map__fd(skel_->maps.exf_clients); }
int BpfSensor::health_fd() const { return bpf_map__fd(skel_->maps.exf_health); }
int BpfSensor::events_fd() const { return bpf_map__fd(skel_->maps.exf_events); }
int BpfSensor::fcache_fd() const { return bpf_map__fd(skel_->maps.exf_fcache); }
int BpfSensor::change_ctl_fd() const { return bpf_map__fd(skel_->maps.exf_change_ctl); }
int BpfSensor::changes_fd() const { return bpf_map__fd(skel_->maps.exf_changes); }

void BpfSensor::clear_tables() const
{
    for (const auto &row : read_flows(flows_fd()))
        if (bpf_map_delete_elem(flows_fd(), &row.key) && errno != ENOENT)
            throw_errno("clear the flow table", errno);
    for (const auto &row : read_clients(clients_fd()))
        if (bpf_map_delete_elem(clients_fd(), &row.key) && errno != ENOENT)
            throw_errno("clear the client table", errno);
    clear_fcache(fcache_fd());
    const exf_fc_gen_entry gen{};
    for (uint32_t i = 0; i < EXF_FC_SLOTS; i++)
        if (bpf_map_update_elem(bpf_map__fd(skel_->maps.exf_fc_gen), &i, &gen, BPF_ANY))
            throw_errno("clear the flow cache generations", errno);
    std::vector<uint64_t> zero(possible_cpus(), 0);
    for (uint32_t i = 0; i < EXF_C__MAX; i++)
        if (bpf_map_update_elem(health_fd(), &i, zero.data(), BPF_ANY))
            throw_errno("clear the health counters", errno);
    if (!read_flows(flows_fd()).empty() || !read_clients(clients_fd()).empty())
        throw Error("the flow or client table is not empty after clearing it");
}

uint32_t change_log_capacity(const SensorOptions &o)
{
    uint64_t cap = (uint64_t(o.flow_table_size) + o.client_table_size) / 8;
    return uint32_t(std::clamp<uint64_t>(cap, 4096, 1u << 20));
}

// Epoch 0 is what new entries carry: the first epoch is 1. A log taken over
// from an earlier run keeps its epoch (entries carry epochs of it).
int BpfSensor::init_change_log()
{
    uint32_t zero = 0;
    exf_change_ctl ctl{};
    if (bpf_map_lookup_elem(change_ctl_fd(), &zero, &ctl))
        return -errno;
    if (ctl.epoch != 0 && ctl.cap == change_log_capacity(opts_))
        return 0;
    ctl.cap = change_log_capacity(opts_);
    ctl.epoch = std::max(ctl.epoch, 1u);
    if (bpf_map_update_elem(change_ctl_fd(), &zero, &ctl, BPF_ANY))
        return -errno;
    return 0;
}
Tables BpfSensor::tables() const { return read_tables(flows_fd(), clients_fd(), fcache_fd()); }

}  // namespace exf
