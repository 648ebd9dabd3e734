// SPDX-License-Identifier: Apache-2.0
#pragma once
// A flow's ClientHello became known: the detector learns which API host
// (SNI) and fingerprint (JA4) the client asked for, on the aggregator's
// clock. The daemon and replay wire it to the flow tracker alike.
#include <string_view>

#include "aggregate/aggregator.h"
#include "detect/detector.h"
#include "flows/flow_tracker.h"

namespace exf {

inline void attribute_tls(detect::Detector &detector, const agg::Aggregator &aggregator,
                          const FlowRecord &r)
{
    detector.on_tls(aggregator, aggregator.clock_ms(), r.client_addr(),
                    r.tls.sni ? std::string_view(*r.tls.sni) : std::string_view(), r.tls.ja4);
}

}  // namespace exf
