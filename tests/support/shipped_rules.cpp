// SPDX-License-Identifier: Apache-2.0
#include "support/shipped_rules.h"

#include <cmath>
#include <cstdint>
#include <sstream>

#include "common/error.h"
#include "config/config.h"
#include "support/test_env.h"

namespace exf::test {

std::vector<detect::Rule> shipped_rules()
{
    auto path = source_dir() / "configs" / "exfilmon.toml";
    auto res = load_config(path.string());
    if (!res.ok()) {
        std::string msg = "shipped_rules: " + path.string() + " does not load:";
        for (auto &i : res.issues)
            msg += "\n" + i.format();
        throw Error(msg);
    }
    return res.config.detect.rules;
}

namespace {

// Integers as TOML integers (sizes and counts must be), others as floats.
std::string number(double v)
{
    if (v == std::floor(v) && std::fabs(v) < 9e15)
        return std::to_string(int64_t(v));
    std::ostringstream s;
    s.precision(17);
    s << v;
    return s.str();
}

std::string ms(uint64_t v) { return "\"" + std::to_string(v) + "ms\""; }

}  // namespace

std::string rules_toml(const std::vector<detect::Rule> &rules)
{
    std::ostringstream t;
    for (const auto &r : rules) {
        t << "[[rules]]\n"
          << "name = \"" << r.name << "\"\n"
          << "entity = \"" << detect::rule_entity_name(r.entity) << "\"\n"
          << "metric = \"" << detect::metric_name(r.metric) << "\"\n"
          << "window = " << ms(r.window_ms) << "\n";
        if (r.threshold)
            t << "threshold = " << number(*r.threshold) << "\n";
        if (r.baseline)
            t << "baseline = { factor = " << number(r.baseline->factor)
              << ", floor = " << number(r.baseline->floor)
              << ", learn = " << ms(r.baseline->learn_ms) << " }\n";
        t << "severity = \"" << detect::severity_name(r.severity) << "\"\n"
          << "sustain = " << r.sustain << "\n"
          << "mode = \"" << (r.shadow ? "shadow" : "alert") << "\"\n";
        if (r.metric == detect::Metric::out_in_ratio)
            t << "min_bytes_out = " << number(r.min_bytes_out) << "\n";
    }
    return t.str();
}

}  // namespace exf::test
