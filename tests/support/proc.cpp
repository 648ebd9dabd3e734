// SPDX-License-Identifier: Apache-2.0
#include "support/proc.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include <catch2/catch.hpp>
#include <stdexcept>
#include <thread>

extern char **environ;

namespace exf::test {

ProcResult run_program(const std::vector<std::string> &argv)
{
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
        throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    std::vector<char *> args;
    for (auto &a : argv)
        args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid;
    int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    close(err[1]);
    ProcResult r;
    if (rc != 0) {
        close(out[0]);
        close(err[0]);
        throw std::runtime_error("cannot run " + argv[0]);
    }
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    int open_fds = 2;
    char buf[4096];
    while (open_fds > 0) {
        if (poll(fds, 2, -1) < 0)
            break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP)))
                continue;
            ssize_t n = read(fds[i].fd, buf, sizeof(buf));
            if (n <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            } else {
                (i == 0 ? r.out : r.err).append(buf, size_t(n));
            }
        }
    }
    int st = 0;
    waitpid(pid, &st, 0);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return r;
}

std::string slurp(const std::filesystem::path &p)
{
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool wait_for(const std::filesystem::path &p, const std::string &needle,
              std::chrono::milliseconds timeout, size_t count)
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        auto text = slurp(p);
        size_t n = 0;
        for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
            n++;
        if (n >= count)
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
}

bool eventually(const std::function<bool()> &cond, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step)
{
    for (auto deadline = std::chrono::steady_clock::now() + timeout;;
         std::this_thread::sleep_for(step)) {
        if (cond())
            return true;
        if (std::chrono::steady_clock::now() > deadline)
            return false;
    }
}

namespace {

std::map<std::string, std::string> status_fields(const std::filesystem::path &status)
{
    std::ifstream in(status);
    std::map<std::string, std::string> fields;
    std::string line;
    while (std::getline(in, line))
        if (auto colon = line.find(':'); colon != std::string::npos)
            fields[line.substr(0, colon)] = line.substr(line.find_last_of(" \t") + 1);
    return fields;
}

}  // namespace

void check_least_privilege(pid_t pid, size_t min_threads, const std::string &keep,
                           const std::string &bounding)
{
    // The daemon starts its threads just after it logs the drop.
    auto tasks = std::filesystem::path("/proc") / std::to_string(pid) / "task";
    auto count = [&] {
        auto it = std::filesystem::directory_iterator(tasks);
        return size_t(std::distance(begin(it), end(it)));
    };
    for (int i = 0; i < 100 && count() < min_threads; i++)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    size_t threads = 0;
    for (auto &task : std::filesystem::directory_iterator(tasks)) {
        auto f = status_fields(task.path() / "status");
        INFO("thread " << task.path().filename().string() << " (" << f["Name"] << ")");
        CHECK(f["CapEff"] == keep);
        CHECK(f["CapPrm"] == keep);
        CHECK(f["CapBnd"] == (bounding.empty() ? keep : bounding));
        CHECK(f["CapInh"] == "0000000000000000");
        CHECK(f["CapAmb"] == "0000000000000000");
        CHECK(f["NoNewPrivs"] == "1");
        threads++;
    }
    CHECK(threads >= min_threads);
}

}  // namespace exf::test
