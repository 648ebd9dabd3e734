// SPDX-License-Identifier: Apache-2.0
#pragma once
// ClientHellos built in tests: fields, extensions, GREASE, split records.
// Every length the builder writes can be reported (name, offset, width) so
// tests can corrupt each one in turn.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace exf::test {

using Bytes = std::vector<uint8_t>;

struct LengthField {
    std::string
        name;  // "record", "handshake", "session_id", "ext[3:0010].len", "ext[3:0010].list", ...
    size_t offset;  // in the bytes returned alongside
    size_t width;   // 1, 2 or 3
};

struct TlsExtension {
    uint16_t type = 0;
    Bytes data;
    std::vector<LengthField> inner;  // length fields inside data, offsets relative to data
};

class HelloBuilder {
public:
    // TLS 1.2 style defaults: legacy_version 0x0303, a 32-byte session id, three
    // cipher suites, null compression, an empty extensions block.
    HelloBuilder();

    HelloBuilder &legacy_version(uint16_t v);
    HelloBuilder &random_fill(uint8_t b);
    HelloBuilder &session_id(Bytes id);
    HelloBuilder &ciphers(std::vector<uint16_t> c);
    HelloBuilder &compression(Bytes methods);
    HelloBuilder &no_extensions_block();  // hello ends after compression_methods

    HelloBuilder &extension(TlsExtension e);
    HelloBuilder &raw_extension(uint16_t type, Bytes data);
    HelloBuilder &grease_extension(uint16_t type, Bytes data = {});
    HelloBuilder &sni(std::string_view host);
    HelloBuilder &alpn(const std::vector<std::string> &protocols);
    HelloBuilder &supported_versions(const std::vector<uint16_t> &versions);
    HelloBuilder &signature_algorithms(const std::vector<uint16_t> &algs);
    HelloBuilder &signature_algorithms_cert(const std::vector<uint16_t> &algs);
    HelloBuilder &supported_groups(const std::vector<uint16_t> &groups);
    HelloBuilder &ec_point_formats(const Bytes &formats);
    // (group, key length) pairs; key bytes are filler.
    HelloBuilder &key_share(const std::vector<std::pair<uint16_t, size_t>> &shares);
    HelloBuilder &ech(size_t payload_len);  // 0xfe0d with an outer-ECH-shaped body
    HelloBuilder &padding(size_t n);

    const std::vector<TlsExtension> &extensions() const { return exts_; }

    // Serialisation. `fields`, if given, receives every length field.
    Bytes body(std::vector<LengthField> *fields = nullptr) const;
    Bytes handshake(std::vector<LengthField> *fields = nullptr) const;
    Bytes record(uint16_t version = 0x0301, std::vector<LengthField> *fields = nullptr) const;
    // The handshake message cut into records of at most max_fragment bytes.
    Bytes records(size_t max_fragment, uint16_t version = 0x0301) const;
    // The handshake message cut into records of the given fragment sizes (the
    // last one takes any remainder).
    Bytes records(const std::vector<size_t> &fragment_sizes, uint16_t version = 0x0301) const;

    // Chrome-like TLS 1.3 hello: GREASE in ciphers, extensions, groups, key
    // shares and versions; SNI example.com; ALPN h2, http/1.1; an
    // X25519MLKEM768 key share (1216 bytes) and ECH, about 1.8 KB in all.
    static HelloBuilder browser_like();

private:
    uint16_t legacy_version_ = 0x0303;
    uint8_t random_fill_ = 0x11;
    Bytes session_id_;
    std::vector<uint16_t> ciphers_;
    Bytes compression_;
    bool ext_block_ = true;
    std::vector<TlsExtension> exts_;
};

void put16(Bytes &b, uint16_t v);
void put24(Bytes &b, uint32_t v);
// One TLS record around payload.
Bytes tls_record(uint8_t content_type, uint16_t version, std::span<const uint8_t> payload);
// Records carrying consecutive slices of payload of the given sizes (the last
// record takes the remainder).
Bytes split_records(std::span<const uint8_t> payload, const std::vector<size_t> &sizes,
                    uint16_t version = 0x0301);
// Overwrite a length field (big endian, field.width bytes) with value.
void set_length(Bytes &b, const LengthField &field, uint32_t value);
uint32_t get_length(const Bytes &b, const LengthField &field);

}  // namespace exf::test
