// SPDX-License-Identifier: Apache-2.0
// The FlowTracker on arbitrary event bytes, as a hostile or corrupted ring
// buffer would hand them over. Input: records (fuzz_util.h split_records),
// each one event, copied to its own allocation so that ASan sees any read
// past its end. A small max_flows exercises eviction. Checked: stats add up,
// the record count stays bounded, finish() leaves nothing pending, no record
// with a known TlsMeta lacks its JA4.
#include <string>

#include "flows/flow_tracker.h"
#include "fuzz_util.h"

using namespace exf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FlowTrackerOptions o;
    o.max_flows = 8;
    FlowTracker t(o);
    uint64_t metas = 0, ends = 0, evicts = 0;
    t.set_on_tls_meta([&](const FlowRecord &r) {
        FUZZ_CHECK(r.tls.known);
        metas++;
    });
    t.set_on_flow_end([&](const FlowRecord &) { ends++; });
    t.set_on_evict([&](const FlowRecord &) { evicts++; });

    uint64_t n = 0;
    for (auto rec : fuzz::split_records({data, size})) {
        std::vector<uint8_t> ev(rec.begin(), rec.end());
        t.on_event(ev);
        n++;
        FUZZ_CHECK(t.size() <= o.max_flows);
        FUZZ_CHECK(t.active() <= t.size());
    }
    t.finish();

    auto &s = t.stats();
    FUZZ_CHECK(s.events == n);
    FUZZ_CHECK(s.hello_events + s.end_events + s.bad_events <= s.events);
    FUZZ_CHECK(s.hellos_done == metas);
    FUZZ_CHECK(s.evicted == evicts);
    FUZZ_CHECK(s.records >= t.size());
    uint64_t anomalies = 0;
    for (auto &[name, count] : t.anomalies()) {
        FUZZ_CHECK(!name.empty() && count > 0);
        anomalies += count;
    }
    for (auto &r : t) {
        FUZZ_CHECK(r.hello != HelloState::pending);
        if (r.tls.known) {
            FUZZ_CHECK(r.hello == HelloState::done);
            FUZZ_CHECK(r.tls.ja4.size() == 36);
        }
        if (t.lookup(r.key) == &r)
            FUZZ_CHECK(!r.finalized);
    }
    (void)ends;
    (void)anomalies;
    return 0;
}
