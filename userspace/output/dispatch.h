// SPDX-License-Identifier: Apache-2.0
#pragma once
// The [[outputs]] of a program (the daemon, the fleet evaluator) and how
// alert records reach them: every record is logged; shadow rules' records
// stop there, the others go to every output.
#include <memory>
#include <string>
#include <vector>

#include "detect/alert.h"
#include "output/output.h"

namespace exf::output {

using Outputs = std::vector<std::unique_ptr<Output>>;

// The outputs configured; none configured: syslog on /dev/log.
std::vector<OutputConfig> output_configs(const std::vector<OutputConfig> &configured,
                                         bool any_configured);
// Opens the outputs without starting their threads; one that cannot work at
// all (unreadable CA file) is an exf::Error naming its table.
Outputs open_outputs(const std::vector<OutputConfig> &cfgs);
// open_outputs, then start each.
Outputs start_outputs(const std::vector<OutputConfig> &cfgs);
// Each output's type for metrics labels: syslog_unix, syslog_udp,
// syslog_tcp, syslog_tls or json.
std::vector<std::string> output_types(const std::vector<OutputConfig> &cfgs);
// Logs every record; sends all but shadow rules' to every output.
void dispatch(const std::vector<detect::AlertRecord> &records, Outputs &outs);

}  // namespace exf::output
