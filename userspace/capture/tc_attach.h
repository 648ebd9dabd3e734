#pragma once
// RAII attachment of the sensor's programs to an interface's clsact ingress
// and egress. Tolerates an existing clsact qdisc; on destruction detaches
// only our own filters, and removes the qdisc only if we created it.
#include <string>

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

private:
    void detach() noexcept;
    std::string ifname_;
    int ifindex_ = 0;
    bool created_qdisc_ = false;
    bool ingress_ = false, egress_ = false;
    unsigned ingress_handle_ = 0, ingress_prio_ = 0;
    unsigned egress_handle_ = 0, egress_prio_ = 0;
};

}  // namespace exf
