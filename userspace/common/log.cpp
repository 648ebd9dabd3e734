// SPDX-License-Identifier: Apache-2.0
#include "common/log.h"

#include <bpf/libbpf.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace exf {

namespace {
bool g_libbpf_verbose = false;

int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
    if (level == LIBBPF_DEBUG && !g_libbpf_verbose)
        return 0;
    char buf[1024];
    int n = std::vsnprintf(buf, sizeof(buf), fmt, args);
    std::string msg(buf, n > 0 ? std::min<size_t>(size_t(n), sizeof(buf) - 1) : 0);
    while (!msg.empty() && msg.back() == '\n')
        msg.pop_back();
    // Most of libbpf's messages carry this prefix already; say it once.
    static constexpr std::string_view kPrefix = "libbpf: ";
    if (std::string_view(msg).substr(0, kPrefix.size()) == kPrefix)
        msg.erase(0, kPrefix.size());
    switch (level) {
    case LIBBPF_WARN: spdlog::warn("libbpf: {}", msg); break;
    case LIBBPF_INFO: spdlog::info("libbpf: {}", msg); break;
    default: spdlog::debug("libbpf: {}", msg); break;
    }
    return n;
}
}  // namespace

bool init_logging(std::string_view level)
{
    auto lvl = spdlog::level::from_str(std::string(level));
    if (lvl == spdlog::level::off && level != "off")
        return false;
    auto logger = spdlog::get("exfilmon");
    if (!logger)
        logger = spdlog::stderr_color_mt("exfilmon");
    spdlog::set_default_logger(logger);
    if (std::getenv("JOURNAL_STREAM"))
        spdlog::set_pattern("<%l> %v");
    else
        spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    spdlog::set_level(lvl);
    spdlog::flush_on(spdlog::level::trace);  // every line reaches the journal at once
    return true;
}

void route_libbpf_logs(bool verbose)
{
    g_libbpf_verbose = verbose;
    libbpf_set_print(libbpf_print);
}

}  // namespace exf
