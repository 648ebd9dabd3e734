// SPDX-License-Identifier: Apache-2.0
// The TOML configuration loader (config/config.h parse_config) on arbitrary
// text. Checked: it returns (never throws), every issue renders as
// FILE:LINE:COLUMN: message, and a configuration it accepts passes its own
// sensor-option validation.
#include <string>

#include "capture/bpf_sensor.h"
#include "config/config.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    std::string_view text(reinterpret_cast<const char *>(data), size);
    auto r = exf::parse_config(text, "fuzz.toml");
    for (auto &i : r.issues) {
        auto s = i.format();
        FUZZ_CHECK(s.rfind("fuzz.toml:", 0) == 0);
        FUZZ_CHECK(!i.message.empty());
    }
    if (r.ok())
        FUZZ_CHECK(exf::validate(r.config.bpf).empty());
    return 0;
}
