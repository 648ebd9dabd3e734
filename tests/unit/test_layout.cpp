// SPDX-License-Identifier: Apache-2.0
// The folders of userspace/ include only what userspace/README.md allows,
// and the allowed graph has no cycle: a reader learns "what may I touch from
// here" from one table, and the table stays true.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace {

namespace fs = std::filesystem;
using Graph = std::map<std::string, std::set<std::string>>;

const fs::path kUserspace = fs::path(EXF_SOURCE_DIR) / "userspace";

// The README's rows: "| `folder/` | owns | a, b, c |"; "every folder above"
// allows each folder of an earlier row.
Graph allowed_includes()
{
    std::ifstream in(kUserspace / "README.md");
    std::regex row(R"(^\| `([a-z_]+)/` \|[^|]*\|([^|]*)\|$)");
    Graph g;
    std::vector<std::string> earlier;
    for (std::string line; std::getline(in, line);) {
        std::smatch m;
        if (!std::regex_match(line, m, row))
            continue;
        auto &deps = g[m[1]];
        std::string list = m[2];
        if (list.find("every folder above") != std::string::npos)
            deps.insert(earlier.begin(), earlier.end());
        std::regex word(R"([a-z_]+)");
        for (auto it = std::sregex_iterator(list.begin(), list.end(), word);
             it != std::sregex_iterator(); ++it)
            if (it->str() != "every" && it->str() != "folder" && it->str() != "above")
                deps.insert(it->str());
        earlier.push_back(m[1]);
    }
    return g;
}

// folder -> the folders its files include ("X/..." includes), with one
// example file per edge.
std::map<std::pair<std::string, std::string>, std::string> actual_includes()
{
    std::map<std::pair<std::string, std::string>, std::string> edges;
    std::regex include(R"(^#include "([a-z_]+)/)");
    for (auto &e : fs::recursive_directory_iterator(kUserspace)) {
        auto ext = e.path().extension();
        if (ext != ".h" && ext != ".cpp" && ext != ".c")
            continue;
        std::string from = fs::relative(e.path(), kUserspace).begin()->string();
        std::ifstream in(e.path());
        for (std::string line; std::getline(in, line);) {
            std::smatch m;
            if (std::regex_search(line, m, include) && m[1] != from)
                edges.emplace(std::make_pair(from, m[1].str()),
                              fs::relative(e.path(), kUserspace).string());
        }
    }
    return edges;
}

bool has_cycle(const Graph &g, std::string &path)
{
    std::map<std::string, int> state;  // 1 on the stack, 2 done
    std::function<bool(const std::string &)> visit = [&](const std::string &n) {
        if (state[n] == 1) {
            path = n;
            return true;
        }
        if (state[n] == 2)
            return false;
        state[n] = 1;
        if (auto it = g.find(n); it != g.end())
            for (auto &d : it->second)
                if (visit(d)) {
                    path = n + " -> " + path;
                    return true;
                }
        state[n] = 2;
        return false;
    };
    for (auto &[n, deps] : g)
        if (visit(n))
            return true;
    return false;
}

}  // namespace

TEST_CASE("userspace folders include only what userspace/README.md allows", "[layout]")
{
    Graph allowed = allowed_includes();
    REQUIRE(allowed.size() >= 10);
    for (auto &e : fs::directory_iterator(kUserspace))
        if (e.is_directory()) {
            INFO("folder " << e.path().filename().string() << "/ has no row");
            CHECK(allowed.count(e.path().filename().string()) == 1);
        }
    for (auto &[edge, file] : actual_includes()) {
        INFO(file << " includes " << edge.second << "/ from " << edge.first << "/");
        CHECK(allowed[edge.first].count(edge.second) == 1);
    }
    std::string cycle;
    INFO("cycle: " << cycle);
    CHECK_FALSE(has_cycle(allowed, cycle));
}

TEST_CASE("The include check finds a cycle", "[layout]")
{
    Graph g{{"a", {"b"}}, {"b", {"c"}}, {"c", {"a"}}};
    std::string path;
    CHECK(has_cycle(g, path));
    CHECK(path.find("a") != std::string::npos);
    Graph dag{{"a", {"b", "c"}}, {"b", {"c"}}};
    CHECK_FALSE(has_cycle(dag, path));
}
