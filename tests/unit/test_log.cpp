// SPDX-License-Identifier: Apache-2.0
// Logging: libbpf's messages reach the log once, with one "libbpf: " prefix.
#include <catch2/catch.hpp>

#include <bpf/libbpf.h>

#include "common/log.h"
#include "support/log_capture.h"

TEST_CASE("libbpf messages are logged once with a single libbpf prefix", "[log]")
{
    REQUIRE(exf::init_logging("info"));
    exf::test::LogCapture log;
    exf::route_libbpf_logs(false);
    // libbpf warns when it cannot open an object file.
    bpf_object *obj = bpf_object__open_file("/nonexistent/exfilmon-test.bpf.o", nullptr);
    CHECK(libbpf_get_error(obj) != 0);
    INFO(log.text());
    CHECK(log.count({"libbpf: ", "/nonexistent/exfilmon-test.bpf.o"}) == 1);
    CHECK(log.text().find("libbpf: libbpf:") == std::string::npos);
    CHECK(log.count({"[warning] libbpf: "}) >= 1);
}
