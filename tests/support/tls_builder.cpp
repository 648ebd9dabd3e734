// SPDX-License-Identifier: Apache-2.0
#include "support/tls_builder.h"

#include <algorithm>
#include <cstdio>

namespace exf::test {

namespace {

std::string hex4(uint16_t v)
{
    char buf[8];
    std::snprintf(buf, sizeof(buf), "%04x", v);
    return buf;
}

// data = u16 length + u16 values (or u8 length with one_byte_len).
TlsExtension u16_list_ext(uint16_t type, const std::vector<uint16_t> &values, bool one_byte_len,
                          std::string_view field)
{
    TlsExtension e;
    e.type = type;
    const size_t len = values.size() * 2;
    if (one_byte_len) {
        e.data.push_back(static_cast<uint8_t>(len));
        e.inner.push_back({std::string(field), 0, 1});
    } else {
        put16(e.data, static_cast<uint16_t>(len));
        e.inner.push_back({std::string(field), 0, 2});
    }
    for (uint16_t v : values)
        put16(e.data, v);
    return e;
}

}  // namespace

void put16(Bytes &b, uint16_t v)
{
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}

void put24(Bytes &b, uint32_t v)
{
    b.push_back(static_cast<uint8_t>(v >> 16));
    b.push_back(static_cast<uint8_t>(v >> 8));
    b.push_back(static_cast<uint8_t>(v));
}

Bytes tls_record(uint8_t content_type, uint16_t version, std::span<const uint8_t> payload)
{
    Bytes r;
    r.reserve(5 + payload.size());
    r.push_back(content_type);
    put16(r, version);
    put16(r, static_cast<uint16_t>(payload.size()));
    r.insert(r.end(), payload.begin(), payload.end());
    return r;
}

Bytes split_records(std::span<const uint8_t> payload, const std::vector<size_t> &sizes,
                    uint16_t version)
{
    Bytes out;
    size_t pos = 0;
    for (size_t i = 0; i < sizes.size() && pos < payload.size(); ++i) {
        const size_t n =
            i + 1 == sizes.size() ? payload.size() - pos : std::min(sizes[i], payload.size() - pos);
        const Bytes rec = tls_record(0x16, version, payload.subspan(pos, n));
        out.insert(out.end(), rec.begin(), rec.end());
        pos += n;
    }
    return out;
}

void set_length(Bytes &b, const LengthField &field, uint32_t value)
{
    for (size_t i = 0; i < field.width; ++i)
        b[field.offset + i] = static_cast<uint8_t>(value >> (8 * (field.width - 1 - i)));
}

uint32_t get_length(const Bytes &b, const LengthField &field)
{
    uint32_t v = 0;
    for (size_t i = 0; i < field.width; ++i)
        v = (v << 8) | b[field.offset + i];
    return v;
}

HelloBuilder::HelloBuilder()
    : session_id_(32, 0x22), ciphers_{0x1301, 0x1302, 0xc02f}, compression_{0}
{}

HelloBuilder &HelloBuilder::legacy_version(uint16_t v)
{
    legacy_version_ = v;
    return *this;
}
HelloBuilder &HelloBuilder::random_fill(uint8_t b)
{
    random_fill_ = b;
    return *this;
}
HelloBuilder &HelloBuilder::session_id(Bytes id)
{
    session_id_ = std::move(id);
    return *this;
}
HelloBuilder &HelloBuilder::ciphers(std::vector<uint16_t> c)
{
    ciphers_ = std::move(c);
    return *this;
}
HelloBuilder &HelloBuilder::compression(Bytes methods)
{
    compression_ = std::move(methods);
    return *this;
}
HelloBuilder &HelloBuilder::no_extensions_block()
{
    ext_block_ = false;
    exts_.clear();
    return *this;
}
HelloBuilder &HelloBuilder::extension(TlsExtension e)
{
    ext_block_ = true;
    exts_.push_back(std::move(e));
    return *this;
}
HelloBuilder &HelloBuilder::raw_extension(uint16_t type, Bytes data)
{
    TlsExtension e;
    e.type = type;
    e.data = std::move(data);
    return extension(std::move(e));
}
HelloBuilder &HelloBuilder::grease_extension(uint16_t type, Bytes data)
{
    return raw_extension(type, std::move(data));
}

HelloBuilder &HelloBuilder::sni(std::string_view host)
{
    TlsExtension e;
    e.type = 0x0000;
    put16(e.data, static_cast<uint16_t>(host.size() + 3));
    e.data.push_back(0);  // host_name
    put16(e.data, static_cast<uint16_t>(host.size()));
    e.data.insert(e.data.end(), host.begin(), host.end());
    e.inner = {{"list", 0, 2}, {"name", 3, 2}};
    return extension(std::move(e));
}

HelloBuilder &HelloBuilder::alpn(const std::vector<std::string> &protocols)
{
    TlsExtension e;
    e.type = 0x0010;
    size_t len = 0;
    for (const auto &p : protocols)
        len += 1 + p.size();
    put16(e.data, static_cast<uint16_t>(len));
    e.inner.push_back({"list", 0, 2});
    for (size_t i = 0; i < protocols.size(); ++i) {
        e.inner.push_back({"proto[" + std::to_string(i) + "]", e.data.size(), 1});
        e.data.push_back(static_cast<uint8_t>(protocols[i].size()));
        e.data.insert(e.data.end(), protocols[i].begin(), protocols[i].end());
    }
    return extension(std::move(e));
}

HelloBuilder &HelloBuilder::supported_versions(const std::vector<uint16_t> &versions)
{
    return extension(u16_list_ext(0x002b, versions, true, "list"));
}
HelloBuilder &HelloBuilder::signature_algorithms(const std::vector<uint16_t> &algs)
{
    return extension(u16_list_ext(0x000d, algs, false, "list"));
}
HelloBuilder &HelloBuilder::signature_algorithms_cert(const std::vector<uint16_t> &algs)
{
    return extension(u16_list_ext(0x0032, algs, false, "list"));
}
HelloBuilder &HelloBuilder::supported_groups(const std::vector<uint16_t> &groups)
{
    return extension(u16_list_ext(0x000a, groups, false, "list"));
}

HelloBuilder &HelloBuilder::ec_point_formats(const Bytes &formats)
{
    TlsExtension e;
    e.type = 0x000b;
    e.data.push_back(static_cast<uint8_t>(formats.size()));
    e.data.insert(e.data.end(), formats.begin(), formats.end());
    e.inner = {{"list", 0, 1}};
    return extension(std::move(e));
}

HelloBuilder &HelloBuilder::key_share(const std::vector<std::pair<uint16_t, size_t>> &shares)
{
    TlsExtension e;
    e.type = 0x0033;
    size_t len = 0;
    for (const auto &s : shares)
        len += 4 + s.second;
    put16(e.data, static_cast<uint16_t>(len));
    e.inner.push_back({"list", 0, 2});
    for (size_t i = 0; i < shares.size(); ++i) {
        put16(e.data, shares[i].first);
        e.inner.push_back({"share[" + std::to_string(i) + "]", e.data.size(), 2});
        put16(e.data, static_cast<uint16_t>(shares[i].second));
        for (size_t k = 0; k < shares[i].second; ++k)
            e.data.push_back(static_cast<uint8_t>(0x40 + (k * 7 + i) % 191));
    }
    return extension(std::move(e));
}

HelloBuilder &HelloBuilder::ech(size_t payload_len)
{
    // ECHClientHello outer: type 0, cipher suite (kdf, aead), config id,
    // enc<0..2^16-1>, payload<1..2^16-1>. Only the type matters to the parser.
    TlsExtension e;
    e.type = 0xfe0d;
    e.data.push_back(0);     // outer
    put16(e.data, 0x0001);   // HKDF-SHA256
    put16(e.data, 0x0001);   // AES-128-GCM
    e.data.push_back(0x2a);  // config id
    put16(e.data, 32);
    for (int i = 0; i < 32; ++i)
        e.data.push_back(static_cast<uint8_t>(0xe0 + i % 16));
    put16(e.data, static_cast<uint16_t>(payload_len));
    for (size_t i = 0; i < payload_len; ++i)
        e.data.push_back(static_cast<uint8_t>(i * 13));
    return extension(std::move(e));
}

HelloBuilder &HelloBuilder::padding(size_t n) { return raw_extension(0x0015, Bytes(n, 0)); }

Bytes HelloBuilder::body(std::vector<LengthField> *fields) const
{
    Bytes b;
    auto field = [&](std::string name, size_t width) {
        if (fields)
            fields->push_back({std::move(name), b.size(), width});
    };
    put16(b, legacy_version_);
    b.insert(b.end(), 32, random_fill_);
    field("session_id", 1);
    b.push_back(static_cast<uint8_t>(session_id_.size()));
    b.insert(b.end(), session_id_.begin(), session_id_.end());
    field("cipher_suites", 2);
    put16(b, static_cast<uint16_t>(ciphers_.size() * 2));
    for (uint16_t c : ciphers_)
        put16(b, c);
    field("compression", 1);
    b.push_back(static_cast<uint8_t>(compression_.size()));
    b.insert(b.end(), compression_.begin(), compression_.end());
    if (!ext_block_)
        return b;
    size_t len = 0;
    for (const auto &e : exts_)
        len += 4 + e.data.size();
    field("extensions", 2);
    put16(b, static_cast<uint16_t>(len));
    for (size_t i = 0; i < exts_.size(); ++i) {
        const auto &e = exts_[i];
        const std::string prefix = "ext[" + std::to_string(i) + ":" + hex4(e.type) + "].";
        put16(b, e.type);
        field(prefix + "len", 2);
        put16(b, static_cast<uint16_t>(e.data.size()));
        if (fields)
            for (const auto &f : e.inner)
                fields->push_back({prefix + f.name, b.size() + f.offset, f.width});
        b.insert(b.end(), e.data.begin(), e.data.end());
    }
    return b;
}

Bytes HelloBuilder::handshake(std::vector<LengthField> *fields) const
{
    std::vector<LengthField> body_fields;
    const Bytes b = body(fields ? &body_fields : nullptr);
    Bytes h;
    h.push_back(0x01);
    put24(h, static_cast<uint32_t>(b.size()));
    h.insert(h.end(), b.begin(), b.end());
    if (fields) {
        fields->push_back({"handshake", 1, 3});
        for (auto f : body_fields) {
            f.offset += 4;
            fields->push_back(std::move(f));
        }
    }
    return h;
}

Bytes HelloBuilder::record(uint16_t version, std::vector<LengthField> *fields) const
{
    std::vector<LengthField> hs_fields;
    const Bytes h = handshake(fields ? &hs_fields : nullptr);
    if (fields) {
        fields->push_back({"record", 3, 2});
        for (auto f : hs_fields) {
            f.offset += 5;
            fields->push_back(std::move(f));
        }
    }
    return tls_record(0x16, version, h);
}

Bytes HelloBuilder::records(size_t max_fragment, uint16_t version) const
{
    const Bytes h = handshake();
    std::vector<size_t> sizes((h.size() + max_fragment - 1) / max_fragment, max_fragment);
    return split_records(h, sizes, version);
}

Bytes HelloBuilder::records(const std::vector<size_t> &fragment_sizes, uint16_t version) const
{
    return split_records(handshake(), fragment_sizes, version);
}

HelloBuilder HelloBuilder::browser_like()
{
    HelloBuilder b;
    b.ciphers({0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8,
               0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035});
    b.grease_extension(0x1a1a)
        .sni("example.com")
        .raw_extension(0x0017, {})
        .raw_extension(0xff01, {0x00})
        .supported_groups({0x2a2a, 0x11ec, 0x001d, 0x0017, 0x0018})
        .ec_point_formats({0x00})
        .raw_extension(0x0023, {})
        .alpn({"h2", "http/1.1"})
        .raw_extension(0x0005, {0x01, 0x00, 0x00, 0x00, 0x00})
        .signature_algorithms({0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601})
        .raw_extension(0x0012, {})
        .key_share({{0x2a2a, 1}, {0x11ec, 1216}, {0x001d, 32}})
        .raw_extension(0x002d, {0x01, 0x01})
        .supported_versions({0x3a3a, 0x0304, 0x0303})
        .raw_extension(0x001b, {0x02, 0x00, 0x02})
        .raw_extension(0x44cd, {0x00, 0x03, 0x02, 0x68, 0x32})
        .ech(240)
        .grease_extension(0x4a4a, {0x00});
    return b;
}

}  // namespace exf::test
