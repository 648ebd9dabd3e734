// SPDX-License-Identifier: Apache-2.0
#pragma once
// The byte layer of the daemon's state file (state/state_file.h): each
// stage that keeps state across a restart (harvest, aggregator, detector)
// writes its own part through a StateWriter and reads it back through a
// StateReader. Host byte order: the file never leaves the host that wrote it
// (it is bound to one boot).
//
// A reader never trusts the bytes: every read is bounds-checked and a count
// is checked against the bytes left before anything is allocated, so that a
// corrupt or truncated file is an exf::Error, never a crash or a huge
// allocation.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>

#include "common/error.h"

namespace exf {

class StateWriter {
public:
    void u8(uint8_t v) { raw(&v, 1); }
    void u32(uint32_t v) { raw(&v, 4); }
    void u64(uint64_t v) { raw(&v, 8); }
    void f64(double v) { raw(&v, 8); }
    void str(std::string_view s)
    {
        u64(s.size());
        raw(s.data(), s.size());
    }
    // A trivially copyable value, as its bytes.
    template <class T>
    void pod(const T &v)
    {
        static_assert(std::is_trivially_copyable_v<T>);
        raw(&v, sizeof(T));
    }
    void raw(const void *p, size_t n) { buf_.append(static_cast<const char *>(p), n); }
    void reserve(size_t n) { buf_.reserve(n); }
    const std::string &bytes() const { return buf_; }
    std::string take() { return std::move(buf_); }

private:
    std::string buf_;
};

class StateReader {
public:
    explicit StateReader(std::string_view bytes) : p_(bytes) {}
    uint8_t u8() { return get<uint8_t>(); }
    uint32_t u32() { return get<uint32_t>(); }
    uint64_t u64() { return get<uint64_t>(); }
    double f64() { return get<double>(); }
    std::string str() { return std::string(take(count(1))); }
    template <class T>
    T pod()
    {
        return get<T>();
    }
    // An element count, checked against the bytes left (each element takes
    // at least min_bytes).
    uint64_t count(size_t min_bytes)
    {
        uint64_t n = u64();
        if (min_bytes && n > left() / min_bytes)
            throw Error("state: a count of " + std::to_string(n) + " exceeds the bytes left");
        return n;
    }
    size_t left() const { return p_.size() - off_; }
    bool done() const { return off_ == p_.size(); }

private:
    std::string_view take(size_t n)
    {
        if (n > left())
            throw Error("state: truncated (" + std::to_string(n) + " bytes wanted, " +
                        std::to_string(left()) + " left)");
        auto s = p_.substr(off_, n);
        off_ += n;
        return s;
    }
    template <class T>
    T get()
    {
        static_assert(std::is_trivially_copyable_v<T>);
        T v;
        std::memcpy(&v, take(sizeof(T)).data(), sizeof(T));
        return v;
    }
    std::string_view p_;
    size_t off_ = 0;
};

}  // namespace exf
