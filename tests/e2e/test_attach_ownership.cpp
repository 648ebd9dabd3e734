// SPDX-License-Identifier: Apache-2.0
// Attaching and detaching never break other tools or another exfilmon:
//  - a tc filter another tool adds after exfilmon attached, and the clsact
//    qdisc exfilmon created, survive exfilmon's exit;
//  - a second `exfilmon run` on an interface or a pin directory a live one
//    owns exits 1 naming the first (PID), and the first goes on untouched;
//  - another tool's program in exfilmon's slot (priority 1, handle 0xe8f1)
//    is never replaced.
//  - with pins, a clean stop leaves exfilmon's filters attached (they count
//    for the next start); `exfilmon detach` removes them, and only them,
//    and refuses while a daemon runs there.
// Taking over the filter of an exfilmon that was stopped or killed, with
// the counts, is in test_daemon_restart.cpp.
#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>

#include "support/mounts.h"
#include "support/netns.h"
#include "support/proc.h"
#include "support/test_env.h"

using namespace exf::test;
using namespace std::chrono_literals;

namespace {

bool contains(const std::string &hay, const std::string &needle)
{
    return hay.find(needle) != std::string::npos;
}

struct Host {
    Lab lab;
    std::string srv, cli;
    Lab::Veth veth;
    Host()
    {
        srv = lab.add_netns("srv");
        cli = lab.add_netns("cli");
        veth = lab.add_veth(srv, cli);
    }
    std::filesystem::path config(const std::string &name, const std::string &bpf_section,
                                 unsigned flow_table_size = 4096)
    {
        auto cfg = lab.dir() / (name + ".toml");
        std::ofstream(cfg) << "[bpf]\nflow_table_size = " << flow_table_size << "\n"
                           << bpf_section << "[daemon]\nstate_dir = \"\"\n[control]\nsocket = \""
                           << (lab.dir() / (name + ".sock")).string()
                           << "\"\n[metrics]\nenabled = false\n";
        return cfg;
    }
    Process &daemon(const std::filesystem::path &cfg, const std::string &ifname,
                    const std::filesystem::path &out)
    {
        return lab.spawn(
            srv,
            {exfilmon_binary().string(), "run", "--config", cfg.string(), "--interface", ifname},
            {lab.dir(), out});
    }
    std::string filters(const std::string &hook)
    {
        return lab.run_ok(srv, {"tc", "filter", "show", "dev", veth.a, hook});
    }
    std::string qdiscs() { return lab.run_ok(srv, {"tc", "qdisc", "show", "dev", veth.a}); }
    // Another tool's tc program (the empty one), as iproute2 attaches it.
    void add_foreign_filter(const std::string &hook, const std::string &pref,
                            const std::string &handle = "")
    {
        std::vector<std::string> argv{"tc", "filter", "add", "dev", veth.a, hook, "pref", pref};
        if (!handle.empty()) {
            argv.push_back("handle");
            argv.push_back(handle);
        }
        for (const char *a : {"bpf", "da", "obj", EXF_EMPTY_BPF_OBJ, "sec", "tc"})
            argv.push_back(a);
        lab.run_ok(srv, argv);
    }
};

}  // namespace

TEST_CASE("A tc filter added after exfilmon attached survives its exit, with the qdisc",
          "[e2e][daemon][attach]")
{
    if (!require_root())
        return;
    Host h;
    auto out = h.lab.dir() / "d.out";
    auto &d = h.daemon(h.config("d", "pin = false\n"), h.veth.a, out);
    REQUIRE(wait_for(out, "attached to " + h.veth.a, 20s));
    REQUIRE(contains(slurp(out), "clsact qdisc created"));
    // On egress only: the qdisc must stay for a filter on either hook.
    h.add_foreign_filter("egress", "7");

    CHECK(d.stop(SIGTERM, 10s) == 0);
    INFO(slurp(out));
    auto egress = h.filters("egress"), ingress = h.filters("ingress");
    CHECK(contains(h.qdiscs(), "clsact"));
    CHECK(contains(egress, "exf_empty.bpf.o"));
    CHECK_FALSE(contains(egress, "exf_tc"));
    CHECK_FALSE(contains(ingress, "exf_tc"));
    CHECK(contains(slurp(out), "clsact qdisc on " + h.veth.a + " kept"));
}

TEST_CASE("A second exfilmon on the same interface exits 1 naming the first",
          "[e2e][sanitize][daemon][attach]")
{
    if (!require_root())
        return;
    Host h;
    auto out1 = h.lab.dir() / "d1.out", out2 = h.lab.dir() / "d2.out";
    auto &d1 = h.daemon(h.config("d1", "pin = false\n"), h.veth.a, out1);
    REQUIRE(wait_for(out1, "attached to " + h.veth.a, 20s));
    auto ingress = h.filters("ingress"), egress = h.filters("egress");
    REQUIRE(contains(ingress, "exf_tc_ingress"));

    auto &d2 = h.daemon(h.config("d2", "pin = false\n"), h.veth.a, out2);
    CHECK(d2.wait(20s) == 1);
    auto msg = slurp(out2);
    INFO(msg);
    CHECK(contains(msg, "interface " + h.veth.a));
    CHECK(contains(msg, "PID " + std::to_string(d1.pid())));
    // The first one's filters (same program ids) are still in place.
    CHECK(h.filters("ingress") == ingress);
    CHECK(h.filters("egress") == egress);
    CHECK(d1.running());
    CHECK(d1.stop(SIGTERM, 10s) == 0);
    CHECK_FALSE(contains(h.filters("ingress"), "exf_tc"));
}

TEST_CASE("A second exfilmon on the same pin directory exits 1 naming the first",
          "[e2e][daemon][attach][pin]")
{
    if (!require_root())
        return;
    Host h;
    auto other = h.lab.add_veth(h.srv, h.cli);
    BpffsMount bpffs(h.lab.dir() / "bpffs");
    auto pin_dir = (bpffs.dir() / "exfilmon").string();
    auto pins = "pin = true\npin_path = \"" + pin_dir + "\"\n";
    auto out1 = h.lab.dir() / "d1.out", out2 = h.lab.dir() / "d2.out";
    auto &d1 = h.daemon(h.config("d1", pins), h.veth.a, out1);
    REQUIRE(wait_for(out1, "attached to " + h.veth.a, 20s));
    auto pinned = std::filesystem::last_write_time(pin_dir + "/exf_clients");

    // Another interface, and another table size: the pins would not fit it,
    // and without the lock it would replace them under the first one.
    auto &d2 = h.daemon(h.config("d2", pins, 8192), other.a, out2);
    CHECK(d2.wait(20s) == 1);
    auto msg = slurp(out2);
    INFO(msg);
    CHECK(contains(msg, "pin directory " + pin_dir));
    CHECK(contains(msg, "PID " + std::to_string(d1.pid())));
    // The first one's pins were neither replaced nor touched.
    CHECK(std::filesystem::last_write_time(pin_dir + "/exf_clients") == pinned);
    CHECK_FALSE(contains(msg, "replacing them"));
    CHECK(d1.running());
    CHECK(d1.stop(SIGTERM, 10s) == 0);
}

TEST_CASE("exfilmon never replaces another tool's program in its tc slot",
          "[e2e][sanitize][daemon][attach]")
{
    if (!require_root())
        return;
    Host h;
    h.lab.run_ok(h.srv, {"tc", "qdisc", "add", "dev", h.veth.a, "clsact"});
    h.add_foreign_filter("ingress", "1", "0xe8f1");
    auto before = h.filters("ingress");
    REQUIRE(contains(before, "exf_empty.bpf.o"));

    auto out = h.lab.dir() / "d.out";
    auto &d = h.daemon(h.config("d", "pin = false\n"), h.veth.a, out);
    CHECK(d.wait(20s) == 1);
    auto msg = slurp(out);
    INFO(msg);
    CHECK(contains(msg, "exf_empty.bpf.o"));
    CHECK(contains(msg, "not exfilmon's"));
    CHECK(h.filters("ingress") == before);
    CHECK(h.filters("egress").empty());
    CHECK(contains(h.qdiscs(), "clsact"));
}

TEST_CASE(
    "With pins a clean stop leaves the filters counting and exfilmon detach removes only them",
    "[e2e][sanitize][daemon][attach][pin]")
{
    if (!require_root())
        return;
    Host h;
    BpffsMount bpffs(h.lab.dir() / "bpffs");
    auto pins = "pin = true\npin_path = \"" + (bpffs.dir() / "exfilmon").string() + "\"\n";
    auto detach = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {exfilmon_binary().string(), "detach"});
        return h.lab.run(h.srv, args);
    };
    auto ours_on = [&](const std::string &hook) { return contains(h.filters(hook), "exf_tc_"); };
    h.lab.run_ok(h.srv, {"tc", "qdisc", "add", "dev", h.veth.a, "clsact"});
    h.add_foreign_filter("egress", "7");

    auto out1 = h.lab.dir() / "d1.out";
    auto &d1 = h.daemon(h.config("d1", pins), h.veth.a, out1);
    REQUIRE(wait_for(out1, "attached to " + h.veth.a, 20s));
    CHECK(d1.stop(SIGTERM, 10s) == 0);
    INFO(slurp(out1));
    CHECK(contains(slurp(out1), "left attached to " + h.veth.a));
    CHECK(ours_on("ingress"));
    CHECK(ours_on("egress"));

    // The next daemon takes them over; detach leaves a running one alone.
    auto out2 = h.lab.dir() / "d2.out";
    auto &d2 = h.daemon(h.config("d2", pins), h.veth.a, out2);
    REQUIRE(wait_for(out2, "attached to " + h.veth.a, 20s));
    CHECK(contains(slurp(out2), "took over"));
    auto refused = detach({"--interface", h.veth.a});
    CHECK(refused.status == 1);
    CHECK(contains(refused.output, "PID " + std::to_string(d2.pid())));
    CHECK(ours_on("ingress"));
    CHECK(d2.stop(SIGTERM, 10s) == 0);

    auto done = detach({});  // every interface of the namespace
    INFO(done.output);
    CHECK(done.status == 0);
    CHECK(contains(done.output, "detached from " + h.veth.a + " (2 filters)"));
    CHECK_FALSE(ours_on("ingress"));
    CHECK_FALSE(ours_on("egress"));
    CHECK(contains(h.filters("egress"), "exf_empty.bpf.o"));
    auto again = detach({"--interface", h.veth.a});
    CHECK(again.status == 0);
    CHECK(contains(again.output, "no exfilmon filter attached"));
    CHECK(detach({"--interface", "exf-nosuchif"}).status == 1);

    // keep_attached = false: a clean stop detaches, pins or not.
    auto out3 = h.lab.dir() / "d3.out";
    auto &d3 = h.daemon(h.config("d3", pins + "keep_attached = false\n"), h.veth.a, out3);
    REQUIRE(wait_for(out3, "attached to " + h.veth.a, 20s));
    CHECK(d3.stop(SIGTERM, 10s) == 0);
    CHECK(contains(slurp(out3), "detached from " + h.veth.a));
    CHECK_FALSE(ours_on("ingress"));
    CHECK_FALSE(ours_on("egress"));
}
