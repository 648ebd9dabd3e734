// SPDX-License-Identifier: Apache-2.0
#include <net/if.h>

#include <bpf/bpf.h>

#include "capture/bpf_sensor.h"
#include "capture/tc_attach.h"
#include "common/log.h"
#include "sources/event_queue.h"
#include "sources/source.h"

namespace exf {

namespace {

class EbpfSource final : public LiveSource {
public:
    EbpfSource(const Config &cfg, const std::vector<std::string> &interfaces)
        : sensor_(cfg.bpf), changes_(sensor_), queue_(cfg.event_queue_size)
    {
        for (auto &ifname : interfaces) {
            names_.push_back(ifname);
            attached_.push_back(std::make_unique<TcAttachment>(sensor_, ifname));
        }
    }
    // Events that arrive before the reader starts wait in the ring buffer.
    void start() override
    {
        consumer_ = std::make_unique<EventConsumer>(sensor_.events_fd(), queue_);
    }
    ~EbpfSource() override
    {
        consumer_.reset();  // stop reading before detaching
        attached_.clear();
    }
    void leave_attached() override
    {
        for (auto &att : attached_)
            if (att)
                att->leave_attached();
    }
    Tables tables() override { return sensor_.tables(); }
    TableChanges changes() override { return changes_.read(); }
    HealthCounters health() override { return read_health(sensor_.health_fd()); }
    size_t pop_events(const EventFn &fn) override { return queue_.pop_all(fn); }
    uint64_t events_received() const override { return queue_.received(); }
    uint64_t events_dropped() const override { return queue_.dropped(); }
    uint64_t events_waited() const override { return queue_.waited(); }

    // Map ids are unique within a boot: the same ids are the same maps.
    std::string tables_identity() const override
    {
        if (!sensor_.options().pin)
            return {};
        std::string id = "bpf maps";
        for (int fd : {sensor_.clients_fd(), sensor_.flows_fd(), sensor_.fcache_fd()}) {
            bpf_map_info info{};
            __u32 len = sizeof(info);
            if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
                return {};
            id += " " + std::to_string(info.id);
        }
        return id;
    }
    bool tables_carried_over() const override { return sensor_.reused_pins(); }

    bool maintain() override
    {
        bool changed = false;
        for (size_t i = 0; i < names_.size(); i++) {
            const auto &name = names_[i];
            int now = int(if_nametoindex(name.c_str()));
            auto &att = attached_[i];
            if (att && now != att->ifindex()) {
                spdlog::warn("interface {} (ifindex {}) {}: counting goes on on the others; it "
                             "is attached again when it returns",
                             name, att->ifindex(), now ? "was replaced" : "disappeared");
                att.reset();  // its filters went with it; nothing else to undo
                changed = true;
            }
            if (!att && now) {
                try {
                    att = std::make_unique<TcAttachment>(sensor_, name);
                    spdlog::info("interface {} is back (ifindex {}): attached again", name,
                                 att->ifindex());
                    changed = true;
                } catch (const std::exception &e) {
                    spdlog::error("interface {} is back but cannot be attached: {}", name,
                                  e.what());
                }
            }
        }
        return changed;
    }

private:
    std::vector<std::string> names_;
    BpfSensor sensor_;
    ChangeReader changes_;
    EventQueue queue_;
    std::vector<std::unique_ptr<TcAttachment>> attached_;
    std::unique_ptr<EventConsumer> consumer_;
};

}  // namespace

std::unique_ptr<LiveSource> make_ebpf_source(const Config &cfg,
                                             const std::vector<std::string> &interfaces)
{
    return std::make_unique<EbpfSource>(cfg, interfaces);
}

}  // namespace exf
