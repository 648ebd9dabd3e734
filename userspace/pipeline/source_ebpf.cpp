#include "capture/bpf_sensor.h"
#include "capture/tc_attach.h"
#include "pipeline/live.h"
#include "pipeline/source.h"

namespace exf {

namespace {

class EbpfSource final : public LiveSource {
public:
    EbpfSource(const Config &cfg, const std::vector<std::string> &interfaces)
        : sensor_(cfg.bpf), queue_(cfg.event_queue_size)
    {
        for (auto &ifname : interfaces)
            attached_.push_back(std::make_unique<TcAttachment>(sensor_, ifname));
        consumer_ = std::make_unique<EventConsumer>(sensor_.events_fd(), queue_);
    }
    ~EbpfSource() override
    {
        consumer_.reset();  // stop reading before detaching
        attached_.clear();
    }
    std::vector<ClientRow> clients() override { return read_clients(sensor_.clients_fd()); }
    std::vector<FlowRow> flows() override { return read_flows(sensor_.flows_fd()); }
    HealthCounters health() override { return read_health(sensor_.health_fd()); }
    size_t pop_events(const EventFn &fn) override { return queue_.pop_all(fn); }
    uint64_t events_received() const override { return queue_.received(); }
    uint64_t events_dropped() const override { return queue_.dropped(); }

private:
    BpfSensor sensor_;
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
