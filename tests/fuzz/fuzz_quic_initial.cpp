// SPDX-License-Identifier: Apache-2.0
// The QUIC Initial decoder on hostile datagrams, and its frame walker on
// hostile decrypted payloads (a payload that passed AEAD is still the
// client's: any bytes). Input: a mode byte, then
//   mode even: records (fuzz_util.h split_records), each one client datagram
//              into a QuicInitialDecoder, then finish();
//   mode odd:  the rest is one decrypted Initial payload for
//              quic_parse_initial_frames (bit 1: gQUIC frame types).
// Checked: the decoder ends done or failed after finish(), a failure is named,
// done means a QUIC ClientHello; every CRYPTO frame's data lies inside the
// payload, and the walk reports at most one stopping anomaly.
#include <string>

#include "fuzz_util.h"
#include "tls/client_hello.h"
#include "tls/quic_initial.h"

using namespace exf;
using namespace exf::tls;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    std::span<const uint8_t> in(data + 1, size - 1);
    if (data[0] % 2 == 0) {
        QuicInitialDecoder d;
        for (auto rec : fuzz::split_records(in)) {
            std::vector<uint8_t> dgram(rec.begin(), rec.end());  // ASan sees reads past the end
            d.add(dgram);
        }
        auto st = d.finish();
        FUZZ_CHECK(st == QuicInitialDecoder::Status::done ||
                   st == QuicInitialDecoder::Status::failed);
        FUZZ_CHECK(st == d.status());
        if (st == QuicInitialDecoder::Status::failed)
            FUZZ_CHECK(!d.failure().empty());
        else
            FUZZ_CHECK(d.hello().is_quic);
        for (auto a : d.anomalies())
            FUZZ_CHECK(!a.empty());
        return 0;
    }
    std::vector<uint8_t> payload(in.begin(), in.end());
    std::vector<QuicCryptoFrame> frames;
    auto stop = quic_parse_initial_frames(payload, frames, (data[0] & 2) != 0);
    FUZZ_CHECK(stop.empty() || stop.rfind("quic_", 0) == 0);
    for (auto &f : frames) {
        FUZZ_CHECK(f.data.data() >= payload.data());
        FUZZ_CHECK(f.data.data() + f.data.size() <= payload.data() + payload.size());
    }
    return 0;
}
