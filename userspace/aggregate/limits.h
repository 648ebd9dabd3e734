// SPDX-License-Identifier: Apache-2.0
#pragma once
// The bounds of the aggregator's settings (AggConfig), in one place:
// AggConfig::validate enforces them and the configuration reader states
// them to users ([aggregate], a rule's window).
#include <cstddef>
#include <cstdint>

#include "aggregate/windows.h"
#include "common/units.h"

namespace exf::agg {

inline constexpr size_t kMaxWindows = 16;
// Each window 1 s to 30 days.
inline constexpr Range kWindowMs{1000, kMaxWindowMs};
// Client and subnet prefix lengths.
inline constexpr Range kPrefixV4{8, 32};
inline constexpr Range kPrefixV6{16, 128};
// Entity limits.
inline constexpr Range kMaxClients{1, 1ull << 26};
inline constexpr Range kMaxSubnets{1, 1ull << 24};
inline constexpr Range kMaxApiHosts{1, 1ull << 20};  // API host ids hold a 20-bit slot
inline constexpr Range kMaxClientApiHosts{1, 1ull << 26};
inline constexpr Range kMaxCohorts{1, 1ull << 20};
inline constexpr Range kMaxJa4{1, 1ull << 22};
inline constexpr Range kMaxJa4Snis{1, 1ull << 24};
inline constexpr Range kMaxMemberships{1, 1ull << 26};

}  // namespace exf::agg
