// SPDX-License-Identifier: Apache-2.0
#include "detect/alert.h"

namespace exf::detect {

const char *state_name(AlertState s)
{
    switch (s) {
    case AlertState::open: return "open";
    case AlertState::update: return "update";
    case AlertState::resolved: return "resolved";
    case AlertState::summary: return "summary";
    }
    return "open";
}

const char *severity_name(Severity s)
{
    switch (s) {
    case Severity::info: return "info";
    case Severity::warning: return "warning";
    case Severity::critical: return "critical";
    }
    return "warning";
}

}  // namespace exf::detect
