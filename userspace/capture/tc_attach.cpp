// SPDX-License-Identifier: Apache-2.0
#include "capture/tc_attach.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <vector>

#include "capture/bpf_sensor.h"
#include "common/error.h"
#include "common/log.h"

namespace exf {

namespace {
// Our slot on each hook. First in the chain (priority 1), so that other
// filters cannot hide packets from us; our programs return TC_ACT_UNSPEC so
// theirs still run. A fixed handle: a filter left by an exfilmon killed
// earlier is found and replaced, never doubled.
constexpr uint32_t kFilterHandle = 0xe8f1;
constexpr uint32_t kFilterPriority = 1;
// The names of our programs (bpf/exfilmon.bpf.c) as libbpf records them in
// the filter (TCA_BPF_NAME "NAME:[ID]"): how a dead exfilmon's filter is told
// from another tool's.
constexpr const char *kOurPrograms[] = {"exf_tc_ingress:", "exf_tc_egress:"};

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

bpf_tc_opts our_slot(int prog_fd = 0, uint32_t flags = 0)
{
    bpf_tc_opts opts{};
    opts.sz = sizeof(opts);
    opts.prog_fd = prog_fd;
    opts.handle = kFilterHandle;
    opts.priority = kFilterPriority;
    opts.flags = flags;
    return opts;
}

std::string slot_text()
{
    char s[64];
    std::snprintf(s, sizeof(s), "priority %u handle 0x%x", kFilterPriority, kFilterHandle);
    return s;
}

const char *hook_name(bool ingress) { return ingress ? "ingress" : "egress"; }

uint32_t prog_id_of(int prog_fd)
{
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0)
        throw_errno("BPF program info", errno);
    return info.id;
}

// One tc filter as the kernel lists it.
struct TcFilter {
    uint32_t prio = 0, handle = 0;
    std::string kind;      // "bpf", "matchall", ...
    std::string bpf_name;  // bpf: what the attacher named it ("NAME:[ID]", "file.o:[sec]")
    uint32_t bpf_id = 0;   // bpf: the program's id

    bool in_our_slot() const { return prio == kFilterPriority && handle == kFilterHandle; }
    bool is_exfilmon() const
    {
        for (auto *p : kOurPrograms)
            if (kind == "bpf" && bpf_name.rfind(p, 0) == 0)
                return true;
        return false;
    }
    std::string describe() const
    {
        std::string s = "a " + kind + " filter";
        if (!bpf_name.empty())
            s += " \"" + bpf_name + "\"";
        if (bpf_id)
            s += " (program id " + std::to_string(bpf_id) + ")";
        return s;
    }
};

void parse_filter_attrs(const rtattr *a, int len, TcFilter &f, bool options)
{
    for (; RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        const char *data = static_cast<const char *>(RTA_DATA(a));
        size_t n = RTA_PAYLOAD(a);
        if (!options && a->rta_type == TCA_KIND)
            f.kind.assign(data, strnlen(data, n));
        else if (!options && a->rta_type == TCA_OPTIONS)
            parse_filter_attrs(static_cast<const rtattr *>(RTA_DATA(a)), int(n), f, true);
        else if (options && a->rta_type == TCA_BPF_NAME)
            f.bpf_name.assign(data, strnlen(data, n));
        else if (options && a->rta_type == TCA_BPF_ID && n >= 4)
            std::memcpy(&f.bpf_id, data, 4);
    }
}

// Every filter on one clsact hook, from a netlink dump (RTM_GETTFILTER),
// which lists each priority's chain head as well: empty means no filter.
// NLMSG_OK with its signs spelled out: the macro compares the __u32 length
// with an int, which clang's -Wsign-compare refuses. len stays signed so that
// NLMSG_NEXT past the last message ends the walk instead of wrapping.
bool nlmsg_fits(const nlmsghdr *nh, int len)
{
    return len >= int(sizeof(nlmsghdr)) && nh->nlmsg_len >= sizeof(nlmsghdr) &&
           nh->nlmsg_len <= unsigned(len);
}

std::vector<TcFilter> list_filters(int ifindex, bool ingress)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        throw_errno("netlink socket", errno);
    struct {
        nlmsghdr nh;
        tcmsg tc;
    } req{};
    req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(tcmsg));
    req.nh.nlmsg_type = RTM_GETTFILTER;
    req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.nh.nlmsg_seq = 1;
    req.tc.tcm_family = AF_UNSPEC;
    req.tc.tcm_ifindex = ifindex;
    req.tc.tcm_parent = TC_H_MAKE(TC_H_CLSACT, ingress ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
    if (send(fd, &req, req.nh.nlmsg_len, 0) < 0) {
        int err = errno;
        close(fd);
        throw_errno("list tc filters", err);
    }
    std::vector<TcFilter> out;
    alignas(nlmsghdr) char buf[32768];
    for (;;) {
        ssize_t got = recv(fd, buf, sizeof(buf), 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            int err = got < 0 ? errno : EPROTO;
            close(fd);
            throw_errno("list tc filters", err);
        }
        int len = int(got);
        for (auto *nh = reinterpret_cast<nlmsghdr *>(buf); nlmsg_fits(nh, len);
             nh = NLMSG_NEXT(nh, len)) {
            if (nh->nlmsg_type == NLMSG_DONE) {
                close(fd);
                return out;
            }
            if (nh->nlmsg_type == NLMSG_ERROR) {
                int err = -static_cast<nlmsgerr *>(NLMSG_DATA(nh))->error;
                close(fd);
                throw_errno("list tc filters", err);
            }
            if (nh->nlmsg_type != RTM_NEWTFILTER)
                continue;
            auto *t = static_cast<tcmsg *>(NLMSG_DATA(nh));
            TcFilter f;
            f.prio = TC_H_MAJ(t->tcm_info) >> 16;
            f.handle = t->tcm_handle;
            parse_filter_attrs(TCA_RTA(t), int(TCA_PAYLOAD(nh)), f, false);
            out.push_back(std::move(f));
        }
    }
}

// What holds our slot on a hook, if anything.
std::optional<TcFilter> in_our_slot(int ifindex, bool ingress)
{
    for (auto &f : list_filters(ifindex, ingress))
        if (f.in_our_slot())
            return f;
    return std::nullopt;
}

}  // namespace

TcAttachment::TcAttachment(const BpfSensor &sensor, const std::string &ifname) : ifname_(ifname)
{
    ifindex_ = int(if_nametoindex(ifname.c_str()));
    if (ifindex_ == 0)
        throw_errno("attach to interface " + ifname, errno);
    lock_.emplace(OwnerLock::interface(ifname));

    auto hook = make_hook(ifindex_, BPF_TC_INGRESS);
    int err = bpf_tc_hook_create(&hook);
    if (err && err != -EEXIST)
        throw_errno("create clsact qdisc on " + ifname, err);
    created_qdisc_ = err == 0;

    bool loopback = is_loopback(ifname);
    try {
        attach(sensor.ingress_fd(), true);
        if (!loopback)
            attach(sensor.egress_fd(), false);
    } catch (...) {
        detach();
        throw;
    }
    spdlog::info("attached to {} (ifindex {}) {}{}", ifname, ifindex_,
                 loopback ? "ingress only (loopback: egress would count each packet twice)"
                          : "ingress and egress",
                 created_qdisc_ ? ", clsact qdisc created" : "");
}

void TcAttachment::attach(int prog_fd, bool ingress)
{
    std::string where = std::string("tc ") + hook_name(ingress) + " on " + ifname_;
    auto held = in_our_slot(ifindex_, ingress);
    if (held && !held->is_exfilmon())
        throw Error(where + ": " + slot_text() + " holds " + held->describe() +
                        ", not exfilmon's; exfilmon does not replace it (remove it, or move it "
                        "to another priority)",
                    EEXIST);
    // Ours there: left by an exfilmon that died (a live one holds the
    // interface's lock). Take it over in place, so that counting goes on.
    auto opts = our_slot(prog_fd, held ? BPF_TC_F_REPLACE : 0);
    auto h = make_hook(ifindex_, ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
    if (int err = bpf_tc_attach(&h, &opts))
        throw_errno("attach " + where, err);
    if (held)
        spdlog::info("{}: took over {} left by an earlier exfilmon", where, held->describe());
    (ingress ? ingress_ : egress_) = Hook{true, prog_id_of(prog_fd)};
}

void TcAttachment::detach() noexcept
{
    bool unknown = false;  // a listing failed: leave the qdisc
    for (bool ingress : {true, false}) {
        Hook &hk = ingress ? ingress_ : egress_;
        if (!hk.attached)
            continue;
        hk.attached = false;
        try {
            auto held = in_our_slot(ifindex_, ingress);
            if (!held || held->bpf_id != hk.prog_id) {
                if (held)
                    spdlog::warn("detach tc {} on {}: our slot now holds {}, left in place",
                                 hook_name(ingress), ifname_, held->describe());
                continue;
            }
        } catch (const Error &) {
            // Gone with its interface, or netlink failed: detach blind.
            unknown = true;
        }
        auto h = make_hook(ifindex_, ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
        auto opts = our_slot();
        int err = bpf_tc_detach(&h, &opts);
        if (err && err != -ENOENT && err != -ENODEV && err != -EINVAL)
            spdlog::warn("detach tc {} on {}: {}", hook_name(ingress), ifname_, strerror(-err));
    }
    if (!created_qdisc_ || unknown)
        return;
    created_qdisc_ = false;
    // Removing the qdisc removes every filter on it: only when none is left
    // (another tool may have added its own since we created it).
    try {
        if (!list_filters(ifindex_, true).empty() || !list_filters(ifindex_, false).empty()) {
            spdlog::info("clsact qdisc on {} kept: other filters are on it", ifname_);
            return;
        }
    } catch (const Error &) {
        return;
    }
    auto h = make_hook(ifindex_, bpf_tc_attach_point(BPF_TC_INGRESS | BPF_TC_EGRESS));
    bpf_tc_hook_destroy(&h);
}

TcAttachment::~TcAttachment()
{
    if (leave_attached_) {
        spdlog::info("left attached to {}: counting into the pinned maps goes on until the next "
                     "start takes it over (`exfilmon detach` removes it)",
                     ifname_);
        return;
    }
    detach();
    spdlog::info("detached from {}", ifname_);
}

int detach_left_filters(const std::string &ifname)
{
    int ifindex = int(if_nametoindex(ifname.c_str()));
    if (ifindex == 0)
        throw_errno("detach from interface " + ifname, errno);
    auto left_there = [&](bool ingress) {
        auto held = in_our_slot(ifindex, ingress);
        return held && held->is_exfilmon() ? held : std::nullopt;
    };
    if (!left_there(true) && !left_there(false))
        return 0;
    OwnerLock lock = OwnerLock::interface(ifname);  // not while a daemon counts there
    int removed = 0;
    for (bool ingress : {true, false}) {
        auto held = left_there(ingress);
        if (!held)
            continue;
        auto h = make_hook(ifindex, ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
        auto opts = our_slot();
        if (int err = bpf_tc_detach(&h, &opts))
            throw_errno(std::string("detach tc ") + hook_name(ingress) + " on " + ifname, err);
        removed++;
    }
    return removed;
}

}  // namespace exf
