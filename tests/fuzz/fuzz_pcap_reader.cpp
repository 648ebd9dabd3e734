// SPDX-License-Identifier: Apache-2.0
// The capture reader (capture/pcap_reader.h: libpcap, pcap and pcapng, and
// the link-type conversion to Ethernet frames) on arbitrary file contents.
// PcapReader takes a path: the input goes to a memfd, opened as
// /proc/self/fd/N (no disk I/O). Checked: opening fails only with exf::Error,
// reading ends with next() == false, an Ethernet frame is what was captured,
// another empty or its bytes after a synthetic 14-byte Ethernet header, and
// an error names the file and the packet.
#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "capture/pcap_reader.h"
#include "common/error.h"
#include "fuzz_util.h"

namespace {

int memfd()
{
    static int fd = memfd_create("exf-fuzz-pcap", 0);
    FUZZ_CHECK(fd >= 0);
    return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd();
    FUZZ_CHECK(ftruncate(fd, 0) == 0);
    FUZZ_CHECK(pwrite(fd, data, size, 0) == ssize_t(size));
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    try {
        exf::PcapReader r(path);
        FUZZ_CHECK(exf::pcap_linktype_supported(r.linktype()));
        exf::Packet p;
        uint64_t n = 0;
        while (r.next(p)) {
            n++;
            // Ethernet frames pass as captured (any length); others get a
            // synthetic 14-byte header, or are empty when their link header is cut.
            if (r.linktype() == 1)
                FUZZ_CHECK(p.frame.size() == p.cap_len);
            else
                FUZZ_CHECK(p.frame.empty() || p.frame.size() >= 14);
            FUZZ_CHECK(p.frame.size() <= size_t(p.cap_len) + 14);
            FUZZ_CHECK(n <= size / 16 + 1);
        }
        FUZZ_CHECK(r.packets_read() == n);
        FUZZ_CHECK(!r.next(p));
        if (!r.error().empty())
            FUZZ_CHECK(r.error().rfind(path + ": packet " + std::to_string(n + 1) + ": ", 0) == 0);
    } catch (const exf::Error &e) {
        FUZZ_CHECK(std::string(e.what()).rfind(path + ": ", 0) == 0);
    }
    return 0;
}
