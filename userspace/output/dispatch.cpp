// SPDX-License-Identifier: Apache-2.0
#include "output/dispatch.h"

#include <spdlog/spdlog.h>

#include "common/error.h"
#include "common/text.h"

namespace exf::output {

namespace {
constexpr size_t kLogFieldMax = 255;  // an entity in a log line, at most
}  // namespace

std::vector<OutputConfig> output_configs(const std::vector<OutputConfig> &configured,
                                         bool any_configured)
{
    if (any_configured)
        return configured;
    OutputConfig dflt;
    dflt.origin = "built-in default";
    return {dflt};
}

Outputs open_outputs(const std::vector<OutputConfig> &cfgs)
{
    Outputs outs;
    for (auto &c : cfgs) {
        try {
            outs.push_back(open_output(c));
        } catch (const Error &e) {
            throw Error("[[outputs]] at " + c.origin + ": " + e.what());
        }
        spdlog::info("alerts to {}", outs.back()->describe());
    }
    return outs;
}

std::vector<std::string> output_types(const std::vector<OutputConfig> &cfgs)
{
    std::vector<std::string> types;
    for (auto &c : cfgs) {
        if (c.type == OutputType::json) {
            types.push_back("json");
            continue;
        }
        switch (c.transport) {
        case Transport::unix_socket: types.push_back("syslog_unix"); break;
        case Transport::udp: types.push_back("syslog_udp"); break;
        case Transport::tcp: types.push_back("syslog_tcp"); break;
        case Transport::tls: types.push_back("syslog_tls"); break;
        }
    }
    return types;
}

Outputs start_outputs(const std::vector<OutputConfig> &cfgs)
{
    auto outs = open_outputs(cfgs);
    for (auto &o : outs)
        o->start();
    return outs;
}

void dispatch(const std::vector<detect::AlertRecord> &records, Outputs &outs)
{
    for (auto &r : records) {
        auto msg = fmt::format(
            "{}{}alert {} {} rule={} severity={} {}={} {}={} threshold={}{}",
            r.shadow ? "shadow " : "", r.fleet() ? "fleet " : "", detect::state_name(r.state), r.id,
            r.rule, detect::severity_name(r.severity), r.entity_kind,
            ascii_escape(r.entity, kLogFieldMax), r.metric, format_number(r.value),
            format_number(r.threshold),
            r.state == detect::AlertState::summary ? fmt::format(" suppressed={}", r.suppressed)
                                                   : std::string());
        if (r.severity == detect::Severity::critical && !r.shadow)
            spdlog::warn("{}", msg);
        else
            spdlog::info("{}", msg);
        if (r.shadow)
            continue;
        for (auto &o : outs)
            o->send(r);
    }
}

}  // namespace exf::output
