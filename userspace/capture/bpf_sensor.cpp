#include "capture/bpf_sensor.h"

#include <bpf/libbpf.h>

#include <cerrno>

#include "capture/shared_layout.h"
#include "common/error.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include "exf_empty.skel.h"
#include "exfilmon.skel.h"
#pragma GCC diagnostic pop

namespace exf {

std::string validate(const SensorOptions &o)
{
    if (o.flow_table_size < 1024)
        return "flow table size must be at least 1024";
    if (o.client_table_size < 256)
        return "client table size must be at least 256";
    if (o.ringbuf_bytes < 65536 || (o.ringbuf_bytes & (o.ringbuf_bytes - 1)))
        return "ring buffer size must be a power of two of at least 64 KiB";
    if (o.tls_ports.empty() || o.tls_ports.size() > EXF_MAX_TLS_PORTS)
        return "between 1 and " + std::to_string(EXF_MAX_TLS_PORTS) + " TLS ports";
    for (auto p : o.tls_ports)
        if (p == 0)
            return "TLS port 0 is not valid";
    return {};
}

BpfSensor::BpfSensor(const SensorOptions &opts) : opts_(opts)
{
    if (auto why = validate(opts); !why.empty())
        throw Error("BPF options: " + why, EINVAL);
    skel_ = exfilmon::open();
    if (!skel_)
        throw_errno("open BPF object", errno);
    int err = bpf_map__set_max_entries(skel_->maps.exf_flows, opts.flow_table_size);
    if (!err)
        err = bpf_map__set_max_entries(skel_->maps.exf_clients, opts.client_table_size);
    if (!err)
        err = bpf_map__set_max_entries(skel_->maps.exf_events, opts.ringbuf_bytes);
    if (err) {
        exfilmon::destroy(skel_);
        throw_errno("size BPF maps", err);
    }
    for (size_t i = 0; i < opts.tls_ports.size(); i++)
        skel_->rodata->exf_tls_ports[i] = opts.tls_ports[i];
    for (size_t i = opts.tls_ports.size(); i < EXF_MAX_TLS_PORTS; i++)
        skel_->rodata->exf_tls_ports[i] = 0;
    skel_->rodata->exf_n_tls_ports = uint32_t(opts.tls_ports.size());
    skel_->rodata->exf_use_pkt_time = opts.packet_time ? 1 : 0;
    err = exfilmon::load(skel_);
    if (err) {
        exfilmon::destroy(skel_);
        skel_ = nullptr;
        if (err == -EPERM || err == -EACCES)
            throw Error("load BPF programs: " + std::string(strerror(-err)) +
                            " (needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON, or root)",
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

EmptyProgram::EmptyProgram()
{
    skel_ = exf_empty::open_and_load();
    if (!skel_)
        throw_errno("load empty BPF program", errno);
}

EmptyProgram::~EmptyProgram() { exf_empty::destroy(skel_); }

int EmptyProgram::fd() const { return bpf_program__fd(skel_->progs.exf_empty); }

}  // namespace exf
