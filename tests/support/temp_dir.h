// SPDX-License-Identifier: Apache-2.0
#pragma once
// A directory of its own for one test (mode 0700 from mkdtemp), removed with
// everything in it when the test ends, failed or not.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace exf::test {

struct TempDir {
    std::filesystem::path path;
    explicit TempDir(const std::string &prefix = "exf-test")
    {
        std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
        if (!::mkdtemp(tmpl.data()))
            throw std::runtime_error("mkdtemp " + tmpl + " failed");
        path = tmpl;
    }
    ~TempDir()
    {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;

    // Writes name (0644 under the default umask) and returns its path.
    std::string write(const std::string &name, const std::string &text) const
    {
        auto p = path / name;
        std::ofstream(p, std::ios::binary) << text;
        return p.string();
    }
};

}  // namespace exf::test
