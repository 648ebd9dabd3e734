// SPDX-License-Identifier: Apache-2.0
#include "support/netns.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "capture/tc_attach.h"
#include "common/error.h"
#include "support/mounts.h"

namespace exf::test {

namespace {

constexpr std::string_view kPrefix = "exft";  // test namespaces: exft<pid>-<n>-<role>

// Unique in this process across Labs: names never repeat.
std::atomic<unsigned> g_counter{0};

std::string read_text(const std::filesystem::path &p)
{
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

int exit_status(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

std::string join(const std::vector<std::string> &argv)
{
    std::string s;
    for (auto &a : argv) {
        if (!s.empty())
            s += ' ';
        s += a;
    }
    return s;
}

// Pids of processes inside a named namespace (`ip netns pids` without the
// fork): every /proc/<pid>/ns/net that is the same inode as the ns file.
std::vector<pid_t> pids_in_netns(const std::string &ns)
{
    std::vector<pid_t> out;
    struct stat nst {};
    if (stat(netns_path(ns).c_str(), &nst) != 0)
        return out;
    DIR *d = opendir("/proc");
    if (!d)
        return out;
    while (dirent *e = readdir(d)) {
        char *end = nullptr;
        long pid = std::strtol(e->d_name, &end, 10);
        if (!end || *end || pid <= 0)
            continue;
        struct stat pst {};
        std::string p = std::string("/proc/") + e->d_name + "/ns/net";
        if (stat(p.c_str(), &pst) == 0 && pst.st_dev == nst.st_dev && pst.st_ino == nst.st_ino)
            out.push_back(pid_t(pid));
    }
    closedir(d);
    return out;
}

// Kills what runs in ns and removes it (the kernel then deletes its veths).
void delete_netns(const std::string &ns) noexcept
{
    for (pid_t p : pids_in_netns(ns))
        if (p != getpid())
            kill(p, SIGKILL);
    std::string path = netns_path(ns);
    // What `ip netns del` does: detach the bind mount, remove the file.
    if (umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
        return;
    unlink(path.c_str());
}

}  // namespace

std::string netns_path(const std::string &ns) { return "/run/netns/" + ns; }

// ---- NetnsEnter -------------------------------------------------------------

NetnsEnter::NetnsEnter(const std::string &ns)
{
    saved_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (saved_ < 0)
        throw_errno("open own network namespace", errno);
    int fd = open(netns_path(ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        close(saved_);
        throw_errno("open network namespace " + ns, e);
    }
    if (setns(fd, CLONE_NEWNET) != 0) {
        int e = errno;
        close(fd);
        close(saved_);
        throw_errno("enter network namespace " + ns, e);
    }
    close(fd);
}

NetnsEnter::~NetnsEnter()
{
    if (setns(saved_, CLONE_NEWNET) != 0) {
        std::fprintf(stderr, "FATAL: cannot restore the thread's network namespace: %s\n",
                     std::strerror(errno));
        std::abort();
    }
    close(saved_);
}

// ---- NsTcAttachment ---------------------------------------------------------

NsTcAttachment::NsTcAttachment(const std::string &ns, const BpfSensor &sensor,
                               const std::string &ifname)
    : ns_(ns)
{
    NetnsEnter enter(ns);
    att_ = std::make_unique<TcAttachment>(sensor, ifname);
}

NsTcAttachment::~NsTcAttachment()
{
    try {
        NetnsEnter enter(ns_);
        att_.reset();
    } catch (...) {
        // The namespace is gone and its interface and filters with it.
        // Detaching from this thread's namespace could remove filters of an
        // unrelated interface with the same ifindex: leak the object instead.
        (void)att_.release();
    }
}

// ---- Process ----------------------------------------------------------------

bool Process::reap(bool block)
{
    if (reaped_)
        return true;
    int st = 0;
    pid_t r;
    do
        r = waitpid(pid_, &st, block ? 0 : WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == pid_) {
        reaped_ = true;
        status_ = exit_status(st);
    } else if (r < 0) {  // ECHILD: not ours any more
        reaped_ = true;
    }
    if (reaped_)
        finish_copy();
    return reaped_;
}

void Process::copy_terminal(int master, int out)
{
    copier_ = std::thread([this, master, out] {
        char buf[4096];
        for (;;) {
            pollfd pfd{master, POLLIN, 0};
            int r = poll(&pfd, 1, 100);
            if (r < 0 && errno == EINTR)
                continue;
            if (r == 0) {
                if (exited_)
                    break;  // drained
                continue;
            }
            ssize_t n = read(master, buf, sizeof(buf));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;  // EIO: every writer closed the terminal
            for (ssize_t off = 0; off < n;) {
                ssize_t w = write(out, buf + off, size_t(n - off));
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0)
                    break;
                off += w;
            }
        }
        close(master);
        close(out);
    });
}

void Process::finish_copy()
{
    exited_ = true;
    if (copier_.joinable())
        copier_.join();
}

bool Process::running() { return !reap(false); }

int Process::wait(std::chrono::milliseconds timeout)
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!reap(false)) {
        if (std::chrono::steady_clock::now() >= deadline) {
            kill(pid_, SIGKILL);
            reap(true);
            return -1;
        }
        std::this_thread::sleep_for(5ms);
    }
    return status_;
}

int Process::stop(int sig, std::chrono::milliseconds grace)
{
    if (reap(false))
        return status_;
    kill(pid_, sig);
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (!reap(false)) {
        if (std::chrono::steady_clock::now() >= deadline) {
            kill(pid_, SIGKILL);
            reap(true);
            break;
        }
        std::this_thread::sleep_for(5ms);
    }
    return status_;
}

Process::~Process()
{
    if (!reaped_) {
        kill(pid_, SIGKILL);
        reap(true);
    }
}

// ---- Capture ----------------------------------------------------------------

CaptureStats Capture::stop(std::chrono::milliseconds quiet)
{
    if (!proc)
        throw Error("capture not started");
    // tcpdump reads its ring asynchronously: SIGINT discards what it has not
    // read yet. Wait for the file to stop growing first.
    std::error_code ec;
    auto size = std::filesystem::file_size(pcap, ec);
    auto last_change = std::chrono::steady_clock::now();
    auto deadline = last_change + 10s;
    while (std::chrono::steady_clock::now() - last_change < quiet &&
           std::chrono::steady_clock::now() < deadline && proc->running()) {
        std::this_thread::sleep_for(20ms);
        auto now_size = std::filesystem::file_size(pcap, ec);
        if (now_size != size) {
            size = now_size;
            last_change = std::chrono::steady_clock::now();
        }
    }
    proc->stop(SIGINT, 10s);
    std::string text = read_text(log);
    // tcpdump's summary: "N packets captured", "N packets received by
    // filter", "N packets dropped by kernel".
    auto number_before = [&](const std::string &what) {
        auto at = text.find(" packets " + what);
        if (at == std::string::npos)
            throw Error("tcpdump printed no \"" + what + "\" count: " + text);
        auto start = text.rfind('\n', at);
        start = start == std::string::npos ? 0 : start + 1;
        return std::stoull(text.substr(start, at - start));
    };
    CaptureStats st;
    st.captured = number_before("captured");
    st.received = number_before("received by filter");
    st.dropped = number_before("dropped by kernel");
    return st;
}

// ---- helpers ----------------------------------------------------------------

bool is_documentation_addr(const std::string &cidr)
{
    auto slash = cidr.find('/');
    std::string addr = cidr.substr(0, slash);
    int len = -1;
    if (slash != std::string::npos) {
        try {
            len = std::stoi(cidr.substr(slash + 1));
        } catch (...) {
            return false;
        }
    }
    unsigned char b[16];
    if (inet_pton(AF_INET, addr.c_str(), b) == 1) {
        if (len != -1 && (len < 24 || len > 32))
            return false;
        return (b[0] == 192 && b[1] == 0 && b[2] == 2) ||
               (b[0] == 198 && b[1] == 51 && b[2] == 100) ||
               (b[0] == 203 && b[1] == 0 && b[2] == 113);
    }
    if (inet_pton(AF_INET6, addr.c_str(), b) == 1) {
        if (len != -1 && (len < 32 || len > 128))
            return false;
        return b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8;
    }
    return false;
}

namespace {
// pid of "exft<pid>-..." when that process is gone, else 0.
pid_t dead_owner(std::string_view name)
{
    if (name.substr(0, kPrefix.size()) != kPrefix)
        return 0;
    auto rest = name.substr(kPrefix.size());
    auto dash = rest.find('-');
    if (dash == 0 || dash == std::string_view::npos)
        return 0;
    std::string digits(rest.substr(0, dash));
    if (digits.find_first_not_of("0123456789") != std::string::npos)
        return 0;
    pid_t pid = pid_t(std::strtol(digits.c_str(), nullptr, 10));
    if (pid == getpid())
        return 0;  // ours (another Lab of this process)
    return kill(pid, 0) != 0 && errno == ESRCH ? pid : 0;
}

std::vector<std::string> stale_entries(const char *dir)
{
    std::vector<std::string> out;
    if (DIR *d = opendir(dir)) {
        while (dirent *e = readdir(d))
            if (dead_owner(e->d_name))
                out.emplace_back(e->d_name);
        closedir(d);
    }
    return out;
}
}  // namespace

void clean_stale_labs() noexcept
{
    for (auto &ns : stale_entries("/run/netns"))
        delete_netns(ns);
    for (auto &dir : stale_entries("/tmp")) {
        std::error_code ec;
        // A TmpfsMount its test process did not live to unmount.
        detach_mounts_under(std::filesystem::path("/tmp") / dir);
        std::filesystem::remove_all(std::filesystem::path("/tmp") / dir, ec);
    }
}

uint64_t net_counter(const std::string &ns, const std::string &group, const std::string &field)
{
    std::string text = in_netns(ns, [] {
        return read_text("/proc/thread-self/net/snmp") + read_text("/proc/thread-self/net/netstat");
    });
    std::istringstream in(text);
    std::string names, values;
    const std::string head = group + ":";
    while (std::getline(in, names)) {
        if (names.rfind(head + " ", 0) != 0)
            continue;
        std::getline(in, values);
        std::istringstream n(names), v(values);
        std::string key, val;
        while (n >> key && v >> val)
            if (key == field)
                return std::stoull(val);
    }
    throw Error("no " + group + " " + field + " in /proc/net/{snmp,netstat} of " + ns);
}

LinkStats link_stats(const std::string &ns, const std::string &ifname)
{
    std::string text = in_netns(ns, [] { return read_text("/proc/thread-self/net/dev"); });
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        auto colon = line.find(':');
        if (colon == std::string::npos)
            continue;
        std::string name = line.substr(0, colon);
        name.erase(0, name.find_first_not_of(' '));
        if (name != ifname)
            continue;
        // rx: bytes packets errs drop fifo frame compressed multicast; tx: bytes packets errs drop
        // ...
        std::istringstream v(line.substr(colon + 1));
        uint64_t f[16] = {};
        for (auto &x : f)
            v >> x;
        return LinkStats{f[1], f[3], f[9], f[11]};
    }
    throw Error("no interface " + ifname + " in /proc/net/dev of " + ns);
}

// ---- Lab --------------------------------------------------------------------

Lab::Lab()
{
    clean_stale_labs();
    prefix_ = std::string(kPrefix) + std::to_string(getpid()) + "-";
    std::string tmpl = "/tmp/" + prefix_ + "XXXXXX";
    if (!mkdtemp(tmpl.data()))
        throw_errno("create lab directory", errno);
    dir_ = tmpl;
}

Lab::~Lab()
{
    stop_all();
    for (auto it = namespaces_.rbegin(); it != namespaces_.rend(); ++it)
        delete_netns(*it);
    if (std::getenv("EXF_TEST_KEEP_LAB")) {  // debugging: keep captures and logs
        std::fprintf(stderr, "lab directory kept: %s\n", dir_.c_str());
        return;
    }
    std::error_code ec;
    detach_mounts_under(dir_);  // a TmpfsMount that outlived its Lab
    std::filesystem::remove_all(dir_, ec);
}

void Lab::stop_all() noexcept
{
    for (auto it = procs_.rbegin(); it != procs_.rend(); ++it)
        it->stop(SIGTERM, 2s);
}

pid_t Lab::fork_child(const std::string &ns, int out_fd, const std::filesystem::path &cwd,
                      const std::function<void()> &exec_fn)
{
    int nsfd = -1;
    if (!ns.empty()) {
        nsfd = open(netns_path(ns).c_str(), O_RDONLY | O_CLOEXEC);
        if (nsfd < 0)
            throw_errno("open network namespace " + ns, errno);
    }
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    std::string cwd_s = cwd.string();
    pid_t parent = getpid();
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        if (nsfd >= 0) {
            if (setns(nsfd, CLONE_NEWNET) != 0)
                _exit(126);
            // As `ip netns exec`: a private mount tree with /sys showing this
            // network namespace's interfaces.
            if (unshare(CLONE_NEWNS) == 0 &&
                mount("", "/", nullptr, MS_SLAVE | MS_REC, nullptr) == 0) {
                umount2("/sys", MNT_DETACH);
                mount(ns.c_str(), "/sys", "sysfs", 0, nullptr);
            }
        }
        int out = out_fd >= 0 ? out_fd : devnull;
        dup2(devnull, 0);
        dup2(out, 1);
        dup2(out, 2);
        if (!cwd_s.empty() && chdir(cwd_s.c_str()) != 0)
            _exit(125);
        exec_fn();
        _exit(127);
    }
    int e = errno;
    if (nsfd >= 0)
        close(nsfd);
    if (devnull >= 0)
        close(devnull);
    if (pid < 0)
        throw_errno("fork", e);
    return pid;
}

namespace {
std::function<void()> execer(const std::vector<std::string> &argv, std::vector<char *> &store)
{
    store.clear();
    for (auto &a : argv)
        store.push_back(const_cast<char *>(a.c_str()));
    store.push_back(nullptr);
    char **args = store.data();
    return [args] { execvp(args[0], args); };
}
}  // namespace

CmdResult Lab::run(const std::string &ns, const std::vector<std::string> &argv,
                   std::chrono::milliseconds timeout)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        throw_errno("pipe", errno);
    std::vector<char *> store;
    pid_t pid;
    try {
        pid = fork_child(ns, p[1], {}, execer(argv, store));
    } catch (...) {
        close(p[0]);
        close(p[1]);
        throw;
    }
    close(p[1]);
    Process proc(pid, argv.empty() ? "" : argv[0]);
    CmdResult res;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    bool timed_out = false;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        pollfd pfd{p[0], POLLIN, 0};
        int r = poll(&pfd, 1, int(left.count()));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            timed_out = r == 0;
            break;
        }
        char buf[4096];
        ssize_t n = read(p[0], buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        res.output.append(buf, size_t(n));
    }
    close(p[0]);
    if (timed_out) {
        proc.stop(SIGKILL, 1s);
        res.status = -1;
        res.output += "\n[timed out after " + std::to_string(timeout.count()) + " ms]";
        return res;
    }
    res.status = proc.wait(std::max(std::chrono::milliseconds(1000),
                                    std::chrono::duration_cast<std::chrono::milliseconds>(
                                        deadline - std::chrono::steady_clock::now())));
    return res;
}

std::string Lab::run_ok(const std::string &ns, const std::vector<std::string> &argv,
                        std::chrono::milliseconds timeout)
{
    auto r = run(ns, argv, timeout);
    if (!r.ok())
        throw Error("`" + join(argv) + "` in " + (ns.empty() ? "host" : ns) + " exited " +
                    std::to_string(r.status) + ": " + r.output);
    return r.output;
}

Process &Lab::spawn(const std::string &ns, const std::vector<std::string> &argv,
                    const SpawnOptions &opts)
{
    if (opts.terminal)
        return spawn_on_terminal(ns, argv, opts);
    int out = -1;
    if (!opts.out_file.empty()) {
        out = open(opts.out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out < 0)
            throw_errno("open " + opts.out_file.string(), errno);
    }
    std::vector<char *> store;
    pid_t pid;
    try {
        pid = fork_child(ns, out, opts.cwd, execer(argv, store));
    } catch (...) {
        if (out >= 0)
            close(out);
        throw;
    }
    if (out >= 0)
        close(out);
    return procs_.emplace_back(pid, join(argv));
}

Process &Lab::spawn_on_terminal(const std::string &ns, const std::vector<std::string> &argv,
                                const SpawnOptions &opts)
{
    const std::string out_path = opts.out_file.empty() ? "/dev/null" : opts.out_file.string();
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0)
        throw_errno("open " + out_path, errno);
    int master = -1, slave = -1;
    if (openpty(&master, &slave, nullptr, nullptr, nullptr) != 0) {
        int e = errno;
        close(out);
        throw_errno("openpty", e);
    }
    fcntl(master, F_SETFD, FD_CLOEXEC);
    fcntl(slave, F_SETFD, FD_CLOEXEC);
    termios t{};
    if (tcgetattr(slave, &t) == 0) {
        t.c_oflag &= ~tcflag_t(OPOST);  // the file gets the program's bytes, no \r\n
        tcsetattr(slave, TCSANOW, &t);
    }
    std::vector<std::string> args = {"/usr/bin/env", "-u", "INVOCATION_ID", "-u", "JOURNAL_STREAM"};
    args.insert(args.end(), argv.begin(), argv.end());
    std::vector<char *> store;
    pid_t pid;
    try {
        pid = fork_child(ns, slave, opts.cwd, execer(args, store));
    } catch (...) {
        close(slave);
        close(master);
        close(out);
        throw;
    }
    close(slave);  // the child's copies are the terminal's only writers
    Process &p = procs_.emplace_back(pid, join(argv));
    p.copy_terminal(master, out);
    return p;
}

Process &Lab::spawn_fn(const std::string &ns, const std::string &name, std::function<int()> fn)
{
    pid_t pid = fork_child(ns, -1, {}, [&fn] {
        int rc = 125;
        try {
            rc = fn();
        } catch (...) {}
        _exit(rc);
    });
    return procs_.emplace_back(pid, name);
}

Capture Lab::start_capture(const std::string &ns, const std::string &ifname,
                           const std::string &name, const std::string &filter, int snaplen)
{
    Capture c;
    c.pcap = dir_ / (name + ".pcap");
    c.log = dir_ / (name + ".log");
    std::vector<std::string> argv = {"tcpdump",
                                     "-i",
                                     ifname,
                                     "-n",
                                     "-p",
                                     "-U",
                                     "--immediate-mode",
                                     "-s",
                                     std::to_string(snaplen),
                                     "-B",
                                     "32768",
                                     "-Z",
                                     "root",
                                     "-w",
                                     c.pcap.string()};
    if (!filter.empty())
        argv.push_back(filter);
    c.proc = &spawn(ns, argv, SpawnOptions{{}, c.log});
    auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
        if (read_text(c.log).find("listening on") != std::string::npos)
            return c;
        if (!c.proc->running())
            throw Error("tcpdump on " + ifname + " in " + ns + " exited: " + read_text(c.log));
        if (std::chrono::steady_clock::now() > deadline)
            throw Error("tcpdump on " + ifname + " in " + ns + " not listening after 10 s");
        std::this_thread::sleep_for(10ms);
    }
}

void Lab::wait_listening(const std::string &ns, uint16_t port, int count,
                         std::chrono::milliseconds timeout)
{
    auto count_listeners = [&] {
        int n = 0;
        for (const char *f : {"/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"}) {
            std::istringstream in(read_text(f));
            std::string line;
            std::getline(in, line);  // header
            while (std::getline(in, line)) {
                std::istringstream ls(line);
                std::string sl, local, remote, st;
                ls >> sl >> local >> remote >> st;
                auto colon = local.rfind(':');
                if (st == "0A" && colon != std::string::npos &&
                    std::stoul(local.substr(colon + 1), nullptr, 16) == port)
                    n++;
            }
        }
        return n;
    };
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int n = ns.empty() ? count_listeners() : in_netns(ns, count_listeners);
        if (n >= count)
            return;
        if (std::chrono::steady_clock::now() > deadline)
            throw Error("port " + std::to_string(port) + " in " + (ns.empty() ? "host" : ns) +
                        ": " + std::to_string(n) + " listeners after timeout, want " +
                        std::to_string(count));
        std::this_thread::sleep_for(10ms);
    }
}

std::string Lab::add_netns(std::string_view role)
{
    std::string name = prefix_ + std::to_string(++g_counter) + "-" + std::string(role);
    auto r = run("", {"ip", "netns", "add", name});
    if (!r.ok() && r.output.find("exists") != std::string::npos) {
        delete_netns(name);  // left by an earlier process with our pid
        r = run("", {"ip", "netns", "add", name});
    }
    if (!r.ok())
        throw Error("ip netns add " + name + ": " + r.output);
    namespaces_.push_back(name);
    // Addresses usable at once: no duplicate address detection.
    sysctl(name, "net.ipv6.conf.all.accept_dad", "0");
    sysctl(name, "net.ipv6.conf.default.accept_dad", "0");
    run_ok(name, {"ip", "link", "set", "lo", "up"});
    return name;
}

Lab::Veth Lab::add_veth(const std::string &ns_a, const std::string &ns_b)
{
    // "xf<pid>-<n>a": at most 2 + 7 + 1 + 4 + 1 = 15 characters.
    std::string base = "xf" + std::to_string(getpid()) + "-" + std::to_string(++g_counter);
    if (base.size() + 1 > 15)
        base = "xf" + std::to_string(getpid() % 100000) + "-" + std::to_string(g_counter % 10000);
    Veth v{base + "a", base + "b"};
    run_ok("", {"ip", "link", "add", "name", v.a, "netns", ns_a, "type", "veth", "peer", "name",
                v.b, "netns", ns_b});
    run_ok(ns_a, {"ip", "link", "set", v.a, "up"});
    run_ok(ns_b, {"ip", "link", "set", v.b, "up"});
    return v;
}

void Lab::add_addr(const std::string &ns, const std::string &ifname, const std::string &cidr)
{
    if (!is_documentation_addr(cidr))
        throw Error("refusing non-documentation address " + cidr);
    std::vector<std::string> argv = {"ip", "addr", "add", cidr, "dev", ifname};
    if (cidr.find(':') != std::string::npos)
        argv.push_back("nodad");
    run_ok(ns, argv);
}

void Lab::add_route(const std::string &ns, const std::string &dest, const std::string &via,
                    bool ipv6)
{
    run_ok(ns, {"ip", ipv6 ? "-6" : "-4", "route", "replace", dest, "via", via});
}

void Lab::set_offloads(const std::string &ns, const std::string &ifname, bool tso, bool gso,
                       bool gro)
{
    auto onoff = [](bool b) { return std::string(b ? "on" : "off"); };
    run_ok(ns, {"ethtool", "-K", ifname, "tso", onoff(tso), "gso", onoff(gso), "gro", onoff(gro)});
}

void Lab::sysctl(const std::string &ns, const std::string &key, const std::string &value)
{
    std::string path = "/proc/sys/" + key;
    for (auto &c : path)
        if (c == '.')
            c = '/';
    in_netns(ns, [&] {
        int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            throw_errno("open " + path + " in " + ns, errno);
        ssize_t n = write(fd, value.data(), value.size());
        int e = errno;
        close(fd);
        if (n != ssize_t(value.size()))
            throw_errno("write " + path + " in " + ns, e);
    });
}

}  // namespace exf::test
