// SPDX-License-Identifier: Apache-2.0
#pragma once
// Network-namespace lab for end-to-end tests (needs root).
//
// A Lab creates uniquely named namespaces ("exft<pid>-<n>-<role>", visible
// in `ip netns list`) and veth pairs between them, assigns documentation
// addresses only (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
// 2001:db8::/32), sets offloads, runs commands and background processes
// inside a namespace, and tears everything down in its destructor, also when
// the test fails: processes first, then the namespaces (deleting a namespace
// deletes its veths). Its constructor removes namespaces and directories
// left behind by killed test processes (same prefix, pid no longer alive).
//
// Children are started with fork + setns(CLONE_NEWNET) + exec (no shell).
// Like `ip netns exec` they get a private mount namespace with /sys
// remounted for their network namespace (tcpdump and ethtool look there);
// the test process itself is never moved. They die with the test process
// (PR_SET_PDEATHSIG).
//
// To attach tc programs from the test process use NetnsEnter /
// in_netns(): the calling thread alone enters the namespace (setns) and is
// restored afterwards, so bpffs, maps and program fds stay those of the test.
// NsTcAttachment does this for exf::TcAttachment, attach and detach.
//
//   exf::test::Lab lab;                                  // first: destroyed last
//   auto cli = lab.add_netns("cli"), srv = lab.add_netns("srv");
//   auto v = lab.add_veth(cli, srv);                     // v.a in cli, v.b in srv
//   lab.add_addr(cli, v.a, "198.51.100.2/24");
//   lab.add_addr(srv, v.b, "198.51.100.1/24");
//   lab.set_offloads(srv, v.b, false);                   // tso/gso/gro off
//   exf::BpfSensor sensor(exf::SensorOptions{});
//   exf::test::NsTcAttachment att(srv, sensor, v.b);
//   auto cap = lab.start_capture(srv, v.b, "srv");      // tcpdump -w <lab dir>/srv.pcap
//   lab.spawn(srv, {"openssl", "s_server", ...}, {cwd, log});
//   lab.wait_listening(srv, 443);
//   lab.run_ok(cli, {"curl", "-k", "--interface", "198.51.100.2", ...});
//   auto st = cap.stop();                                // st.complete(): nothing lost
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace exf {
class BpfSensor;
class TcAttachment;
}  // namespace exf

namespace exf::test {

using namespace std::chrono_literals;

// Path of a named namespace: /run/netns/<name>.
std::string netns_path(const std::string &ns);

// Enters the network namespace `ns` with the calling thread only; the
// destructor restores the thread's previous namespace (terminates the
// process if that fails: running on in the wrong namespace is worse).
class NetnsEnter {
public:
    explicit NetnsEnter(const std::string &ns);  // throws exf::Error
    ~NetnsEnter();
    NetnsEnter(const NetnsEnter &) = delete;
    NetnsEnter &operator=(const NetnsEnter &) = delete;

private:
    int saved_ = -1;
};

// Runs fn() with the calling thread inside `ns`, restoring it afterwards
// (also when fn throws). Returns what fn returns.
template <typename F>
auto in_netns(const std::string &ns, F &&fn) -> decltype(fn())
{
    NetnsEnter enter(ns);
    return fn();
}

// exf::TcAttachment made and destroyed inside `ns` (ifindex and netlink are
// per namespace: detaching from another namespace would hit the wrong
// interface). Must be destroyed before the Lab that owns `ns`.
class NsTcAttachment {
public:
    NsTcAttachment(const std::string &ns, const BpfSensor &sensor, const std::string &ifname);
    ~NsTcAttachment();
    NsTcAttachment(const NsTcAttachment &) = delete;
    NsTcAttachment &operator=(const NsTcAttachment &) = delete;
    const TcAttachment &get() const { return *att_; }

private:
    std::string ns_;
    std::unique_ptr<TcAttachment> att_;
};

// Result of a finished command: exit status (128 + signal when killed,
// -1 on timeout) and its stdout and stderr, interleaved.
struct CmdResult {
    int status = -1;
    std::string output;
    bool ok() const { return status == 0; }
};

// A child process. Owned by the Lab that started it.
class Process {
public:
    Process(pid_t pid, std::string name) : pid_(pid), name_(std::move(name)) {}
    ~Process();
    Process(const Process &) = delete;
    Process &operator=(const Process &) = delete;

    pid_t pid() const { return pid_; }
    const std::string &name() const { return name_; }
    bool running();
    // Waits for exit; returns the exit status (128 + signal if killed), or
    // -1 after the timeout (the process is then killed).
    int wait(std::chrono::milliseconds timeout = 60s);
    // Sends sig, waits up to grace, then SIGKILL. Returns the exit status.
    int stop(int sig = SIGTERM, std::chrono::milliseconds grace = 3s);
    // Exit status once reaped (else -1).
    int status() const { return status_; }
    // Copies the output of the process's pseudo-terminal (master) into out
    // until it exited and the terminal is drained; owns both descriptors.
    void copy_terminal(int master, int out);

private:
    bool reap(bool block);
    void finish_copy();
    pid_t pid_;
    std::string name_;
    bool reaped_ = false;
    int status_ = -1;
    std::thread copier_;
    std::atomic<bool> exited_{false};
};

struct SpawnOptions {
    std::filesystem::path cwd;       // empty: unchanged
    std::filesystem::path out_file;  // stdout+stderr go here; empty: /dev/null
    // stdout and stderr on a pseudo-terminal (isatty() is true, no \r added),
    // copied into out_file, as when a person starts the program in a shell:
    // INVOCATION_ID and JOURNAL_STREAM (systemd's) are removed too. A
    // process's output has reached out_file once it was stopped or waited for.
    bool terminal = false;
};

// tcpdump's own summary when it stops.
struct CaptureStats {
    uint64_t captured = 0;  // written to the pcap
    uint64_t received = 0;  // "received by filter"
    uint64_t dropped = 0;   // "dropped by kernel"
    // Nothing lost: every packet the filter accepted is in the file.
    bool complete() const { return dropped == 0 && captured == received; }
};

// A tcpdump writing a pcap (immediate mode, packet-buffered); see
// Lab::start_capture.
struct Capture {
    Process *proc = nullptr;
    std::filesystem::path pcap;
    std::filesystem::path log;
    // Waits until the pcap stops growing (quiet for `quiet`), stops tcpdump
    // with SIGINT (so it flushes) and returns its summary (throws if it
    // printed none).
    CaptureStats stop(std::chrono::milliseconds quiet = 300ms);
};

class Lab {
public:
    Lab();   // throws exf::Error
    ~Lab();  // never throws
    Lab(const Lab &) = delete;
    Lab &operator=(const Lab &) = delete;

    // Scratch directory of this lab, removed by the destructor (kept when
    // EXF_TEST_KEEP_LAB is set, for debugging).
    const std::filesystem::path &dir() const { return dir_; }

    // New namespace "exft<pid>-<n>-<role>" with lo up, IPv6 DAD off (so
    // addresses are usable at once); returns its name.
    std::string add_netns(std::string_view role);

    struct Veth {
        std::string a, b;  // a in ns_a, b in ns_b; both up
    };
    // Veth pair with unique names (at most 15 characters).
    Veth add_veth(const std::string &ns_a, const std::string &ns_b);

    // Adds "ADDR/PREFIX" to an interface. Only documentation prefixes are
    // accepted (throws otherwise). Call repeatedly for several addresses.
    void add_addr(const std::string &ns, const std::string &ifname, const std::string &cidr);
    // `ip route replace DEST via GW` in ns (DEST may be "default").
    void add_route(const std::string &ns, const std::string &dest, const std::string &via,
                   bool ipv6);
    // ethtool -K IF tso/gso/gro on|off.
    void set_offloads(const std::string &ns, const std::string &ifname, bool tso, bool gso,
                      bool gro);
    void set_offloads(const std::string &ns, const std::string &ifname, bool on)
    {
        set_offloads(ns, ifname, on, on, on);
    }
    // Writes /proc/sys/<key with dots as slashes> inside ns (net.* keys).
    void sysctl(const std::string &ns, const std::string &key, const std::string &value);

    // Runs argv inside ns (empty ns: the test's own namespace) and waits.
    CmdResult run(const std::string &ns, const std::vector<std::string> &argv,
                  std::chrono::milliseconds timeout = 30s);
    // Same, but throws exf::Error with the output when the exit status is not 0.
    std::string run_ok(const std::string &ns, const std::vector<std::string> &argv,
                       std::chrono::milliseconds timeout = 30s);

    // Background process inside ns; stopped by stop_all() / the destructor.
    Process &spawn(const std::string &ns, const std::vector<std::string> &argv,
                   const SpawnOptions &opts = {});
    // Background child running fn() inside ns (a forked copy of the test
    // process; fn's return value is the exit status). Keep fn to plain
    // system calls: the child must not touch Catch2 or the sensor.
    Process &spawn_fn(const std::string &ns, const std::string &name, std::function<int()> fn);

    // tcpdump -i IF -w FILE -s snaplen [filter], waits until it is listening.
    Capture start_capture(const std::string &ns, const std::string &ifname, const std::string &name,
                          const std::string &filter = "tcp", int snaplen = 128);

    // Waits until `count` TCP sockets listen on `port` in ns (/proc/net/tcp{,6});
    // empty ns: the test's own namespace.
    void wait_listening(const std::string &ns, uint16_t port, int count = 1,
                        std::chrono::milliseconds timeout = 10s);

    // Stops every background process (SIGTERM, then SIGKILL).
    void stop_all() noexcept;

private:
    Process &spawn_on_terminal(const std::string &ns, const std::vector<std::string> &argv,
                               const SpawnOptions &opts);
    pid_t fork_child(const std::string &ns, int out_fd, const std::filesystem::path &cwd,
                     const std::function<void()> &exec_fn);
    std::string prefix_;
    std::filesystem::path dir_;
    std::vector<std::string> namespaces_;
    std::list<Process> procs_;
};

// Removes /run/netns/exft<pid>-* namespaces and /tmp/exft<pid>-* lab
// directories whose pid is no longer alive (left by killed test runs).
// Lab() calls it.
void clean_stale_labs() noexcept;

// True when cidr ("addr/len" or "addr") lies in a documentation prefix.
bool is_documentation_addr(const std::string &cidr);

// Interface counters of ifname in ns (/proc/net/dev read inside it).
struct LinkStats {
    uint64_t rx_packets = 0, rx_dropped = 0, tx_packets = 0, tx_dropped = 0;
};
LinkStats link_stats(const std::string &ns, const std::string &ifname);

// A counter of ns's /proc/net/snmp or /proc/net/netstat (read inside ns),
// e.g. ("Tcp", "InSegs"), ("TcpExt", "TCPSynRetrans"). Throws if absent.
uint64_t net_counter(const std::string &ns, const std::string &group, const std::string &field);
inline uint64_t tcp_mib(const std::string &ns, const std::string &field)
{
    return net_counter(ns, "Tcp", field);
}

}  // namespace exf::test
