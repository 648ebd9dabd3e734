// SPDX-License-Identifier: Apache-2.0
// Every source file names its license in an SPDX line near its top: the
// BPF programs and their headers are dual GPL-2.0-only/BSD-2-Clause (the
// kernel's helpers need a GPL-compatible license), the rest Apache-2.0.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

const fs::path kRoot = EXF_SOURCE_DIR;
const std::string kApache = "Apache-2.0";
const std::string kBpfDual = "(GPL-2.0-only OR BSD-2-Clause)";

// The folders that hold sources, and what below them is data, not source.
const std::vector<std::string> kSourceDirs = {"bpf",     "userspace", "tests",   "bench",   "cmake",
                                              "scripts", ".ci",       "configs", "docs/man"};
bool is_data(const std::string &rel)
{
    return rel.starts_with("tests/fuzz/corpus/") || rel.starts_with("bench/results/");
}

std::string first_lines(const fs::path &p, int n)
{
    std::ifstream in(p);
    std::string all, line;
    for (int i = 0; i < n && std::getline(in, line); i++)
        all += line + "\n";
    return all;
}

bool is_source(const fs::path &p)
{
    static const std::vector<std::string> kExt = {".c",    ".cpp", ".h",    ".sh",
                                                  ".bash", ".py",  ".cmake"};
    if (p.filename() == "CMakeLists.txt")
        return true;
    for (const auto &e : kExt)
        if (p.extension() == e)
            return true;
    return first_lines(p, 1).starts_with("#!");
}

std::string expected_license(const std::string &rel)
{
    bool bpf_code = rel.starts_with("bpf/") && (rel.ends_with(".c") || rel.ends_with(".h"));
    return bpf_code ? kBpfDual : kApache;
}

// "FILE: what is wrong" for each source file whose first two lines (a
// shebang may come first) lack its SPDX line.
std::vector<std::string> files_without_spdx()
{
    std::vector<std::string> bad;
    std::vector<fs::path> roots = {kRoot / "CMakeLists.txt"};
    for (const auto &d : kSourceDirs)
        roots.push_back(kRoot / d);
    for (const auto &root : roots) {
        std::vector<fs::path> paths;
        if (fs::is_regular_file(root))
            paths.push_back(root);
        else
            for (auto &e : fs::recursive_directory_iterator(root))
                if (e.is_regular_file())
                    paths.push_back(e.path());
        for (const auto &p : paths) {
            std::string rel = fs::relative(p, kRoot).string();
            if (is_data(rel) || !is_source(p))
                continue;
            std::string want = "SPDX-License-Identifier: " + expected_license(rel);
            if (first_lines(p, 2).find(want) == std::string::npos)
                bad.push_back(rel + ": no \"" + want + "\" in its first two lines");
        }
    }
    return bad;
}

}  // namespace

TEST_CASE("Every source file names its license in an SPDX line", "[license]")
{
    auto bad = files_without_spdx();
    for (const auto &b : bad)
        UNSCOPED_INFO(b);
    CHECK(bad.empty());
}

TEST_CASE("The license texts are in the tree and each BPF program declares a GPL-compatible one",
          "[license]")
{
    for (const char *f : {"LICENSE", "LICENSES/Apache-2.0.txt", "LICENSES/GPL-2.0-only.txt",
                          "LICENSES/BSD-2-Clause.txt"}) {
        INFO(f);
        CHECK(fs::file_size(kRoot / f) > 1000);
    }
    int programs = 0;
    for (auto &e : fs::directory_iterator(kRoot / "bpf")) {
        if (!e.path().string().ends_with(".bpf.c"))
            continue;
        programs++;
        std::ifstream in(e.path());
        std::string text((std::istreambuf_iterator<char>(in)), {});
        INFO(e.path().string());
        // What the kernel reads: "Dual BSD/GPL" is GPL-compatible.
        CHECK(text.find("char LICENSE[] SEC(\"license\") = \"Dual BSD/GPL\";") !=
              std::string::npos);
    }
    CHECK(programs >= 3);
}
