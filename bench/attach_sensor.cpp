// SPDX-License-Identifier: Apache-2.0
// attach_sensor: load the sensor (or the empty program) and attach it to an
// interface's tc ingress and egress until SIGTERM/SIGINT; for bench/bpf_cost.sh,
// which runs it inside a network namespace with `ip netns exec`.
//
// Usage: attach_sensor IFNAME [--empty | --object FILE.bpf.o]
//  default   the embedded sensor (exf::BpfSensor + exf::TcAttachment);
//  --empty   the empty TC_ACT_OK program on both hooks (the baseline);
//  --object  exf_tc_ingress/exf_tc_egress of another build of exfilmon.bpf.c
//            (an optimisation prototype), default map sizes and TLS ports.
// Prints "ready ingress_id=N egress_id=M" once attached. The sensor drains
// its ring buffer like the daemon does (epoll, woken by the kernel). On exit
// it prints the programs' run_time_ns/run_cnt and, for the sensor, the
// health counters (wire packets, events).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <signal.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "baseline/empty_program.h"
#include "capture/bpf_sensor.h"
#include "capture/events.h"
#include "capture/maps.h"
#include "capture/tc_attach.h"
#include "common/error.h"

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

struct ProgStats {
    uint32_t id = 0;
    uint64_t run_time_ns = 0, run_cnt = 0;
};

ProgStats prog_stats(int fd)
{
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
        exf::throw_errno("BPF program info", errno);
    return {info.id, info.run_time_ns, info.run_cnt};
}

// Programs given by fd on both hooks (TcAttachment takes a BpfSensor).
class FdAttachment {
public:
    FdAttachment(int in_fd, int eg_fd, const std::string &ifname)
    {
        ifindex_ = int(if_nametoindex(ifname.c_str()));
        if (ifindex_ == 0)
            exf::throw_errno("interface " + ifname, errno);
        auto hook = make_hook(BPF_TC_INGRESS);
        int err = bpf_tc_hook_create(&hook);
        if (err && err != -EEXIST)
            exf::throw_errno("create clsact qdisc on " + ifname, err);
        created_ = err == 0;
        for (int i = 0; i < 2; i++) {
            auto h = make_hook(i ? BPF_TC_EGRESS : BPF_TC_INGRESS);
            opts_[i] = {};
            opts_[i].sz = sizeof(opts_[i]);
            opts_[i].prog_fd = i ? eg_fd : in_fd;
            if ((err = bpf_tc_attach(&h, &opts_[i])) != 0) {
                detach();
                exf::throw_errno("attach tc program on " + ifname, err);
            }
            attached_[i] = true;
        }
    }
    ~FdAttachment() { detach(); }
    FdAttachment(const FdAttachment &) = delete;
    FdAttachment &operator=(const FdAttachment &) = delete;

private:
    bpf_tc_hook make_hook(bpf_tc_attach_point where) const
    {
        bpf_tc_hook h{};
        h.sz = sizeof(h);
        h.ifindex = ifindex_;
        h.attach_point = where;
        return h;
    }
    void detach() noexcept
    {
        for (int i = 0; i < 2; i++) {
            if (!attached_[i])
                continue;
            auto h = make_hook(i ? BPF_TC_EGRESS : BPF_TC_INGRESS);
            bpf_tc_opts o{};
            o.sz = sizeof(o);
            o.handle = opts_[i].handle;
            o.priority = opts_[i].priority;
            bpf_tc_detach(&h, &o);
            attached_[i] = false;
        }
        if (created_) {
            auto h = make_hook(bpf_tc_attach_point(BPF_TC_INGRESS | BPF_TC_EGRESS));
            bpf_tc_hook_destroy(&h);
            created_ = false;
        }
    }
    int ifindex_ = 0;
    bool created_ = false;
    bool attached_[2] = {false, false};
    bpf_tc_opts opts_[2]{};
};

// Another build of the sensor's object file.
class ObjectFile {
public:
    explicit ObjectFile(const std::string &path)
    {
        obj_ = bpf_object__open_file(path.c_str(), nullptr);
        if (!obj_)
            exf::throw_errno("open " + path, errno);
        if (int err = bpf_object__load(obj_); err) {
            bpf_object__close(obj_);
            exf::throw_errno("load " + path, err);
        }
        auto *in = bpf_object__find_program_by_name(obj_, "exf_tc_ingress");
        auto *eg = bpf_object__find_program_by_name(obj_, "exf_tc_egress");
        auto *ev = bpf_object__find_map_by_name(obj_, "exf_events");
        auto *h = bpf_object__find_map_by_name(obj_, "exf_health");
        if (!in || !eg || !ev || !h) {
            bpf_object__close(obj_);
            throw exf::Error(path + ": not an exfilmon object");
        }
        in_ = bpf_program__fd(in);
        eg_ = bpf_program__fd(eg);
        events_ = bpf_map__fd(ev);
        health_ = bpf_map__fd(h);
    }
    ~ObjectFile() { bpf_object__close(obj_); }
    ObjectFile(const ObjectFile &) = delete;
    ObjectFile &operator=(const ObjectFile &) = delete;
    int in_ = -1, eg_ = -1, events_ = -1, health_ = -1;

private:
    bpf_object *obj_ = nullptr;
};

int attach_main(const std::string &ifname, bool empty, const std::string &object)
{
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    libbpf_set_print(nullptr);

    std::unique_ptr<exf::BpfSensor> sensor;
    std::unique_ptr<exf::bench::EmptyProgram> prog;
    std::unique_ptr<ObjectFile> obj;
    std::unique_ptr<exf::TcAttachment> att;
    std::unique_ptr<FdAttachment> fdatt;
    std::unique_ptr<exf::EventReader> reader;
    uint64_t events = 0;
    int in_fd, eg_fd, health_fd = -1;
    auto count = [&](std::span<const uint8_t>) { events++; };
    if (empty) {
        prog = std::make_unique<exf::bench::EmptyProgram>();
        fdatt = std::make_unique<FdAttachment>(prog->fd(), prog->fd(), ifname);
        in_fd = eg_fd = prog->fd();
    } else if (!object.empty()) {
        obj = std::make_unique<ObjectFile>(object);
        reader = std::make_unique<exf::EventReader>(obj->events_, count);
        fdatt = std::make_unique<FdAttachment>(obj->in_, obj->eg_, ifname);
        in_fd = obj->in_;
        eg_fd = obj->eg_;
        health_fd = obj->health_;
    } else {
        sensor = std::make_unique<exf::BpfSensor>(exf::SensorOptions{});
        reader = std::make_unique<exf::EventReader>(sensor->events_fd(), count);
        att = std::make_unique<exf::TcAttachment>(*sensor, ifname);
        in_fd = sensor->ingress_fd();
        eg_fd = sensor->egress_fd();
        health_fd = sensor->health_fd();
    }
    std::printf("ready ingress_id=%u egress_id=%u\n", prog_stats(in_fd).id, prog_stats(eg_fd).id);
    std::fflush(stdout);

    while (!g_stop) {
        if (reader)
            reader->poll(100);
        else
            pause();
    }
    if (reader)
        reader->drain();

    auto in = prog_stats(in_fd), eg = prog_stats(eg_fd);
    std::printf("stats ingress run_time_ns=%llu run_cnt=%llu", (unsigned long long)in.run_time_ns,
                (unsigned long long)in.run_cnt);
    if (!empty)
        std::printf(" egress run_time_ns=%llu run_cnt=%llu", (unsigned long long)eg.run_time_ns,
                    (unsigned long long)eg.run_cnt);
    std::printf("\n");
    if (health_fd >= 0) {
        auto h = exf::read_health(health_fd);
        std::printf("health packets=%llu bytes=%llu tls_flows=%llu hello_events=%llu "
                    "end_events=%llu rb_full=%llu events_read=%llu\n",
                    (unsigned long long)h[EXF_C_PACKETS], (unsigned long long)h[EXF_C_BYTES],
                    (unsigned long long)h[EXF_C_TLS_FLOWS],
                    (unsigned long long)h[EXF_C_HELLO_EVENTS],
                    (unsigned long long)h[EXF_C_END_EVENTS], (unsigned long long)h[EXF_C_RB_FULL],
                    (unsigned long long)events);
    }
    std::fflush(stdout);
    return 0;
}

}  // namespace

int main(int argc, char **argv)
{
    std::string ifname, object;
    bool empty = false, bad = argc < 2;
    for (int i = 1; i < argc && !bad; i++) {
        std::string a = argv[i];
        if (a == "--empty")
            empty = true;
        else if (a == "--object" && i + 1 < argc)
            object = argv[++i];
        else if (a[0] != '-' && ifname.empty())
            ifname = a;
        else
            bad = true;
    }
    if (bad || ifname.empty() || (empty && !object.empty())) {
        std::fprintf(stderr, "usage: %s IFNAME [--empty | --object FILE.bpf.o]\n", argv[0]);
        return 2;
    }
    try {
        return attach_main(ifname, empty, object);
    } catch (const std::exception &e) {
        std::fprintf(stderr, "attach_sensor: %s\n", e.what());
        return 1;
    }
}
