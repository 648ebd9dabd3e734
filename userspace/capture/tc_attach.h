// SPDX-License-Identifier: Apache-2.0
#pragma once
// RAII attachment of the sensor's programs to an interface's clsact ingress
// and egress, beside whatever other tools attach there:
//  - one live exfilmon per interface (OwnerLock): a second one is refused;
//  - our slot (fixed handle and priority) is taken over only from an
//    exfilmon that died (its program is ours by name); another program
//    there is an error naming it, never replaced;
//  - on destruction only our own filters are removed (checked by program
//    id), and the clsact qdisc only if we created it and no filter is left
//    on it; after leave_attached() nothing is removed: the filters go on
//    counting into pinned maps until the next daemon takes them over, or
//    detach_left_filters() removes them.
#include <cstdint>
#include <optional>
#include <string>

#include "capture/owner_lock.h"

namespace exf {

class BpfSensor;

class TcAttachment {
public:
    TcAttachment(const BpfSensor &sensor, const std::string &ifname);  // throws exf::Error
    ~TcAttachment();
    TcAttachment(const TcAttachment &) = delete;
    TcAttachment &operator=(const TcAttachment &) = delete;

    const std::string &ifname() const { return ifname_; }
    int ifindex() const { return ifindex_; }
    // A clean stop with pinned maps: keep counting while no daemon runs.
    void leave_attached() noexcept { leave_attached_ = true; }

private:
    struct Hook {
        bool attached = false;
        uint32_t prog_id = 0;  // our program, attached in our slot
    };
    void attach(int prog_fd, bool ingress);
    void detach() noexcept;
    std::string ifname_;
    int ifindex_ = 0;
    std::optional<OwnerLock> lock_;
    bool created_qdisc_ = false;
    bool leave_attached_ = false;
    Hook ingress_, egress_;
};

// Removes the filters an exfilmon left attached to ifname (of the calling
// thread's network namespace) and returns how many. Refuses, with an
// exf::Error naming its PID, while a live daemon owns the interface; never
// touches another tool's filter, nor the clsact qdisc.
int detach_left_filters(const std::string &ifname);

}  // namespace exf
