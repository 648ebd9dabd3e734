// SPDX-License-Identifier: Apache-2.0
// The libpcap backend: packet sockets on each interface, the userspace build
// of the datapath (same source as the tc programs), one capture thread.
// Limits (documented in docs/deploy.md): libpcap sees GRO/GSO super-packets
// without their segment count, so with offloads on it counts super-packets
// and their IP length (turn GRO/GSO/TSO off on the monitored interface for
// wire-exact counts); a kernel buffer overrun drops packets (pcap_stats,
// reported in the capture_drops log line).
#include <pcap/pcap.h>
#include <poll.h>
#include <time.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <thread>

#include "capture/datapath.h"
#include "common/error.h"
#include "common/log.h"
#include "sources/event_queue.h"
#include "sources/source.h"

namespace exf {

namespace {

constexpr int kSnaplen = 4096 + 256;  // a whole 4 KiB hello after the headers

uint64_t monotonic_ns()
{
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

class PcapSource final : public LiveSource {
public:
    PcapSource(const Config &cfg, const std::vector<std::string> &interfaces)
        : queue_(cfg.event_queue_size)
    {
        SensorOptions o = cfg.bpf;
        o.packet_time = false;
        dp_ = make_user_datapath(o);
        for (auto &ifname : interfaces)
            open(ifname);
        spdlog::info("libpcap backend capturing on {} interface{}", handles_.size(),
                     handles_.size() == 1 ? "" : "s");
    }
    // Packets that arrive before the thread starts wait in the socket buffers.
    void start() override
    {
        thread_ = std::thread([this] { loop(); });
    }
    ~PcapSource() override
    {
        stop_ = true;
        if (thread_.joinable())
            thread_.join();
        for (auto &h : handles_) {
            pcap_stat st{};
            if (pcap_stats(h.pcap, &st) == 0 && (st.ps_drop || st.ps_ifdrop))
                spdlog::warn("{}: capture_drops kernel {} interface {}", h.ifname, st.ps_drop,
                             st.ps_ifdrop);
            pcap_close(h.pcap);
        }
    }

    Tables tables() override
    {
        std::lock_guard lock(mu_);
        return dp_->tables();
    }
    HealthCounters health() override
    {
        std::lock_guard lock(mu_);
        return dp_->health();
    }
    size_t pop_events(const EventFn &fn) override { return queue_.pop_all(fn); }
    uint64_t events_received() const override { return queue_.received(); }
    uint64_t events_dropped() const override { return queue_.dropped(); }

private:
    struct Handle {
        std::string ifname;
        pcap_t *pcap;
        int fd;
    };

    void open(const std::string &ifname)
    {
        char err[PCAP_ERRBUF_SIZE] = {};
        pcap_t *p = pcap_create(ifname.c_str(), err);
        if (!p)
            throw Error("libpcap on " + ifname + ": " + err);
        pcap_set_snaplen(p, kSnaplen);
        pcap_set_promisc(p, 0);
        pcap_set_timeout(p, 100);
        pcap_set_buffer_size(p, 32 << 20);
        int rc = pcap_activate(p);
        if (rc < 0) {
            std::string why = pcap_geterr(p);
            pcap_close(p);
            if (rc == PCAP_ERROR_PERM_DENIED)
                why += " (needs CAP_NET_RAW, or root)";
            throw Error("libpcap on " + ifname + ": " + why);
        }
        if (pcap_datalink(p) != DLT_EN10MB) {
            int dlt = pcap_datalink(p);
            pcap_close(p);
            throw Error("libpcap on " + ifname + ": link type " + std::to_string(dlt) +
                        " is not Ethernet; the libpcap backend supports Ethernet interfaces");
        }
        if (pcap_setnonblock(p, 1, err) != 0) {
            pcap_close(p);
            throw Error("libpcap on " + ifname + ": " + err);
        }
        handles_.push_back({ifname, p, pcap_get_selectable_fd(p)});
        spdlog::info("capturing on {} with libpcap", ifname);
    }

    static void on_packet(u_char *user, const pcap_pkthdr *h, const u_char *bytes)
    {
        auto *self = reinterpret_cast<PcapSource *>(user);
        self->dp_->process(std::span<const uint8_t>(bytes, h->caplen), monotonic_ns());
    }

    void loop()
    {
        std::vector<pollfd> fds;
        for (auto &h : handles_)
            fds.push_back({h.fd, POLLIN, 0});
        while (!stop_.load(std::memory_order_relaxed)) {
            int n = poll(fds.data(), fds.size(), 100);
            if (n < 0 && errno != EINTR) {
                spdlog::error("libpcap backend: poll: {}", strerror(errno));
                return;
            }
            for (size_t i = 0; i < handles_.size(); i++) {
                std::lock_guard lock(mu_);
                int got = pcap_dispatch(handles_[i].pcap, 512, on_packet,
                                        reinterpret_cast<u_char *>(this));
                if (got < 0) {
                    spdlog::error("libpcap on {}: {}", handles_[i].ifname,
                                  pcap_geterr(handles_[i].pcap));
                    fds[i].fd = -1;  // stop polling this one; the others go on
                }
                dp_->drain_events([this](std::span<const uint8_t> e) { queue_.push(e); });
            }
        }
    }

    std::unique_ptr<Datapath> dp_;
    std::mutex mu_;  // dp_: the capture thread writes, the daemon reads tables
    EventQueue queue_;
    std::vector<Handle> handles_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace

std::unique_ptr<LiveSource> make_pcap_source(const Config &cfg,
                                             const std::vector<std::string> &interfaces)
{
    return std::make_unique<PcapSource>(cfg, interfaces);
}

}  // namespace exf
