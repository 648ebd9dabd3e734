// SPDX-License-Identifier: Apache-2.0
#include "config/run_checks.h"

#include "common/error.h"
#include "common/privileges.h"
#include "output/output.h"

namespace exf {

namespace {

void check_outputs(ConfigResult &res, NameLookup names)
{
    const auto &outs = res.config.outputs;
    for (size_t i = 0; i < outs.size(); i++)
        for (auto &p : output::check_output(outs[i], names == NameLookup::resolve)) {
            auto issue = res.at("[[outputs]]#" + std::to_string(i) + " " + p.key, p.message);
            issue.warning = p.warning;
            (p.warning ? res.warnings : res.issues).push_back(std::move(issue));
        }
}

void check_control(ConfigResult &res)
{
    const auto &c = res.config;
    if (c.control_group.empty())
        return;
    try {
        group_id(c.control_group);
    } catch (const Error &e) {
        res.issues.push_back(res.at("[control] group", e.what()));
    }
}

}  // namespace

ConfigResult load_config_for_run(const std::string &path, NameLookup names)
{
    ConfigResult res;
    if (!path.empty())
        res = load_config(path);
    if (!res.ok())
        return res;
    check_outputs(res, names);
    check_control(res);
    return res;
}

}  // namespace exf
