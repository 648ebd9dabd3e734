// SPDX-License-Identifier: Apache-2.0
// The datapath's options (capture/bpf_sensor.h validate()): every problem is
// listed, like the other stages' configuration checks, and a datapath built
// from bad options is refused with the first of them.
#include <catch2/catch.hpp>

#include "capture/bpf_sensor.h"
#include "capture/datapath.h"
#include "common/error.h"

using exf::SensorOptions;

TEST_CASE("Sensor options: validate lists every problem and the datapath refuses the first",
          "[capture]")
{
    CHECK(exf::validate(SensorOptions{}).empty());

    SensorOptions bad;
    bad.flow_table_size = 1023;
    bad.client_table_size = 255;
    bad.ringbuf_bytes = 3u << 16;
    bad.tls_ports = {443, 0};
    CHECK(exf::validate(bad) ==
          std::vector<std::string>{"flow table size must be at least 1024",
                                   "client table size must be at least 256",
                                   "ring buffer size must be a power of two of at least 64 KiB",
                                   "TLS port 0 is not valid"});
    CHECK_THROWS_WITH(exf::make_user_datapath(bad),
                      "datapath options: flow table size must be at least 1024");

    SensorOptions no_ports;
    no_ports.tls_ports.clear();
    CHECK(exf::validate(no_ports) ==
          std::vector<std::string>{"between 1 and " + std::to_string(EXF_MAX_TLS_PORTS) +
                                   " TLS ports"});
    CHECK_THROWS_WITH(exf::make_user_datapath(no_ports), "datapath options: between 1 and " +
                                                             std::to_string(EXF_MAX_TLS_PORTS) +
                                                             " TLS ports");
}

TEST_CASE("Sensor options: tables and the ring buffer stay within the bounds [bpf] states",
          "[capture]")
{
    // One home for each bound (bpf_sensor.h): what [bpf] refuses, validate refuses.
    SensorOptions big;
    big.flow_table_size = exf::kFlowTableSize.hi + 1;
    big.client_table_size = exf::kClientTableSize.hi + 1;
    big.ringbuf_bytes = 1u << 31;
    CHECK(exf::validate(big) ==
          std::vector<std::string>{"flow table size must be at most 67108864",
                                   "client table size must be at most 67108864",
                                   "ring buffer size must be at most 1 GiB"});
    SensorOptions top;
    top.flow_table_size = exf::kFlowTableSize.hi;
    top.client_table_size = exf::kClientTableSize.hi;
    top.ringbuf_bytes = 1u << 30;
    CHECK(exf::validate(top).empty());
}
