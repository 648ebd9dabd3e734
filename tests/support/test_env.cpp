// SPDX-License-Identifier: Apache-2.0
#include "support/test_env.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include <catch2/catch.hpp>

namespace exf::test {

bool in_ci()
{
    const char *ci = std::getenv("CI");
    return ci && (std::strcmp(ci, "true") == 0 || std::strcmp(ci, "1") == 0);
}

bool require(bool met, const std::string &why)
{
    if (met)
        return true;
    if (in_ci())
        FAIL(why << " and CI=true: a skip is a failure");
    WARN("SKIPPED: " << why);
    return false;
}

bool require_root()
{
    return require(geteuid() == 0, "this test needs root (eBPF, network namespaces)");
}

std::filesystem::path shared_pcaps()
{
    std::filesystem::path dir;
    if (const char *env = std::getenv("EXFILMON_SHARED_PCAPS"))
        dir = env;
    else
        dir = std::filesystem::path(EXF_SOURCE_DIR).parent_path() / "shared" / "pcaps";
    if (require(std::filesystem::is_directory(dir),
                "shared captures folder " + dir.string() + " not found"))
        return dir;
    return {};
}

std::filesystem::path exfilmon_binary() { return EXF_BINARY; }
std::filesystem::path source_dir() { return EXF_SOURCE_DIR; }

}  // namespace exf::test
