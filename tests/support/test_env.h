// SPDX-License-Identifier: Apache-2.0
#pragma once
// Environment gates for tests. Outside CI a test that lacks root, eBPF or
// ../shared skips with a message; under CI=true the same condition fails.
#include <filesystem>
#include <string>

namespace exf::test {

bool in_ci();

// The one rule for every gate: when `met` is false the test skips outside CI
// (a WARN "SKIPPED: <why>", which ctest reports as skipped) and fails under
// CI=true. Returns met.
bool require(bool met, const std::string &why);

// True when running as root; otherwise WARNs and returns false, or FAILs in CI.
bool require_root();

// ../shared/pcaps next to the project (or $EXFILMON_SHARED_PCAPS). Empty path
// when missing: WARNs naming the folder, or FAILs in CI.
std::filesystem::path shared_pcaps();

// True in a build with AddressSanitizer: gcc defines __SANITIZE_ADDRESS__,
// clang 14 only answers __has_feature(address_sanitizer).
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool built_with_asan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool built_with_asan = true;
#else
inline constexpr bool built_with_asan = false;
#endif
#else
inline constexpr bool built_with_asan = false;
#endif

// Path of a built exfilmon binary and of the source tree.
std::filesystem::path exfilmon_binary();
std::filesystem::path source_dir();

}  // namespace exf::test
