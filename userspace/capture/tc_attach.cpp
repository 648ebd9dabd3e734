#include "capture/tc_attach.h"

#include <bpf/libbpf.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "capture/bpf_sensor.h"
#include "common/error.h"
#include "common/log.h"

namespace exf {

namespace {
constexpr uint32_t kFilterHandle = 0xe8f1;
constexpr uint32_t kFilterPriority = 1;

// On a loopback device every packet passes egress and then ingress: attach
// ingress only, or each packet would count twice.
bool is_loopback(const std::string &ifname)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    ifreq ifr{};
    ifname.copy(ifr.ifr_name, IFNAMSIZ - 1);
    bool lo = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_LOOPBACK);
    close(fd);
    return lo;
}

bpf_tc_hook make_hook(int ifindex, bpf_tc_attach_point where)
{
    bpf_tc_hook hook{};
    hook.sz = sizeof(hook);
    hook.ifindex = ifindex;
    hook.attach_point = where;
    return hook;
}
}  // namespace

TcAttachment::TcAttachment(const BpfSensor &sensor, const std::string &ifname) : ifname_(ifname)
{
    ifindex_ = int(if_nametoindex(ifname.c_str()));
    if (ifindex_ == 0)
        throw_errno("attach to interface " + ifname, errno);

    auto hook = make_hook(ifindex_, BPF_TC_INGRESS);
    int err = bpf_tc_hook_create(&hook);
    if (err && err != -EEXIST)
        throw_errno("create clsact qdisc on " + ifname, err);
    created_qdisc_ = err == 0;

    struct {
        bpf_tc_attach_point where;
        int fd;
        const char *name;
        bool *done;
        unsigned *handle, *prio;
    } points[] = {
        {BPF_TC_INGRESS, sensor.ingress_fd(), "ingress", &ingress_, &ingress_handle_, &ingress_prio_},
        {BPF_TC_EGRESS, sensor.egress_fd(), "egress", &egress_, &egress_handle_, &egress_prio_},
    };
    bool loopback = is_loopback(ifname);
    for (auto &pt : points) {
        if (loopback && pt.where == BPF_TC_EGRESS)
            continue;
        auto h = make_hook(ifindex_, pt.where);
        bpf_tc_opts opts{};
        opts.sz = sizeof(opts);
        opts.prog_fd = pt.fd;
        // First in the chain (priority 1), so that other filters cannot hide
        // packets from us; our programs return TC_ACT_UNSPEC so theirs still
        // run. A fixed handle: a filter left by an exfilmon killed earlier is
        // replaced, never doubled.
        opts.handle = kFilterHandle;
        opts.priority = kFilterPriority;
        opts.flags = BPF_TC_F_REPLACE;
        err = bpf_tc_attach(&h, &opts);
        if (err) {
            int saved = err;
            detach();
            throw_errno(std::string("attach tc ") + pt.name + " on " + ifname, saved);
        }
        *pt.done = true;
        *pt.handle = opts.handle;
        *pt.prio = opts.priority;
    }
    spdlog::info("attached to {} (ifindex {}) {}{}", ifname, ifindex_,
                 loopback ? "ingress only (loopback: egress would count each packet twice)"
                          : "ingress and egress",
                 created_qdisc_ ? ", clsact qdisc created" : "");
}

void TcAttachment::detach() noexcept
{
    auto drop = [&](bpf_tc_attach_point where, bool &done, unsigned handle, unsigned prio,
                    const char *name) {
        if (!done)
            return;
        auto h = make_hook(ifindex_, where);
        bpf_tc_opts opts{};
        opts.sz = sizeof(opts);
        opts.handle = handle;
        opts.priority = prio;
        int err = bpf_tc_detach(&h, &opts);
        if (err && err != -ENOENT && err != -ENODEV && err != -EINVAL)
            spdlog::warn("detach tc {} on {}: {}", name, ifname_, strerror(-err));
        done = false;
    };
    drop(BPF_TC_INGRESS, ingress_, ingress_handle_, ingress_prio_, "ingress");
    drop(BPF_TC_EGRESS, egress_, egress_handle_, egress_prio_, "egress");
    if (created_qdisc_) {
        auto h = make_hook(ifindex_, bpf_tc_attach_point(BPF_TC_INGRESS | BPF_TC_EGRESS));
        bpf_tc_hook_destroy(&h);
        created_qdisc_ = false;
    }
}

TcAttachment::~TcAttachment()
{
    detach();
    spdlog::info("detached from {}", ifname_);
}

}  // namespace exf
