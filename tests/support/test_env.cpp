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

bool require_root()
{
    if (geteuid() == 0)
        return true;
    if (in_ci())
        FAIL("this test needs root (eBPF, network namespaces) and CI=true: a skip is a failure");
    WARN("SKIPPED: this test needs root (eBPF, network namespaces)");
    return false;
}

std::filesystem::path shared_pcaps()
{
    std::filesystem::path dir;
    if (const char *env = std::getenv("EXFILMON_SHARED_PCAPS"))
        dir = env;
    else
        dir = std::filesystem::path(EXF_SOURCE_DIR).parent_path() / "shared" / "pcaps";
    if (std::filesystem::is_directory(dir))
        return dir;
    if (in_ci())
        FAIL("shared captures folder " << dir.string() << " is missing and CI=true");
    WARN("SKIPPED: shared captures folder " << dir.string() << " not found");
    return {};
}

std::filesystem::path exfilmon_binary() { return EXF_BINARY; }
std::filesystem::path source_dir() { return EXF_SOURCE_DIR; }

}  // namespace exf::test
