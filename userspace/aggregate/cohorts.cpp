// SPDX-License-Identifier: Apache-2.0
#include "aggregate/cohorts.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "aggregate/entity_key.h"

namespace exf::agg {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view s)
{
    while (!s.empty() && is_space(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && is_space(s.back()))
        s.remove_suffix(1);
    return s;
}

uint64_t load_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

}  // namespace

std::optional<CohortRule> parse_cidr(std::string_view text, std::string &why)
{
    auto fail = [&](std::string msg) -> std::optional<CohortRule> {
        why = std::move(msg);
        return std::nullopt;
    };
    std::string_view addr_text = text, len_text;
    bool has_len = false;
    if (auto slash = text.find('/'); slash != std::string_view::npos) {
        addr_text = text.substr(0, slash);
        len_text = text.substr(slash + 1);
        has_len = true;
    }
    auto addr = parse_addr(addr_text);
    if (!addr)
        return fail("invalid address '" + std::string(addr_text) + "'");
    CohortRule r;
    r.addr = *addr;
    unsigned bits = family_bits(r.addr);
    if (!has_len) {
        r.prefix = static_cast<uint8_t>(bits);
    } else {
        // An IPv6 rule inside ::ffff:0:0/96 written in IPv6 form: read as IPv4.
        bool v6_text = addr_text.find(':') != std::string_view::npos;
        unsigned max_len = v6_text ? 128 : bits;
        if (len_text.empty() || len_text.size() > 3 ||
            !std::all_of(len_text.begin(), len_text.end(),
                         [](char c) { return c >= '0' && c <= '9'; }))
            return fail("invalid prefix length '" + std::string(len_text) + "' in '" +
                        std::string(text) + "'");
        unsigned len = static_cast<unsigned>(std::stoul(std::string(len_text)));
        if (len > max_len)
            return fail("prefix length " + std::to_string(len) + " out of range 0.." +
                        std::to_string(max_len) + " in '" + std::string(text) + "'");
        if (v6_text && bits == 32) {
            if (len < 96)
                return fail("'" + std::string(text) +
                            "' mixes IPv4-mapped and IPv6 space (length < 96)");
            len -= 96;
        }
        r.prefix = static_cast<uint8_t>(len);
    }
    Addr16 net = mask_addr(r.addr, r.prefix);
    if (net != r.addr) {
        CohortRule n = r;
        n.addr = net;
        return fail("host bits set in '" + std::string(text) + "' (the network is " +
                    format_cidr(n) + ")");
    }
    return r;
}

std::string format_cidr(const CohortRule &r)
{
    return format_addr(r.addr) + "/" + std::to_string(r.prefix);
}

CohortParse parse_cohorts(std::string_view text, const std::string &source_name)
{
    CohortParse out;
    std::map<std::pair<Addr16, uint8_t>, uint32_t> seen;
    uint32_t line_no = 0;
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t eol = text.find('\n', pos);
        if (eol == std::string_view::npos)
            eol = text.size();
        std::string_view line = text.substr(pos, eol - pos);
        pos = eol + 1;
        line_no++;
        auto err = [&](const std::string &msg) {
            out.errors.push_back(source_name + ":" + std::to_string(line_no) + ": " + msg);
        };
        if (auto hash = line.find('#'); hash != std::string_view::npos)
            line = line.substr(0, hash);
        line = trim(line);
        if (line.empty()) {
            if (eol == text.size())
                break;
            continue;
        }
        size_t sp = 0;
        while (sp < line.size() && !is_space(line[sp]))
            sp++;
        std::string_view cidr = line.substr(0, sp);
        std::string_view label = trim(line.substr(sp));
        std::string why;
        auto rule = parse_cidr(cidr, why);
        if (!rule) {
            err(why);
        } else if (label.empty()) {
            err("missing label after '" + std::string(cidr) + "' (expected: CIDR label)");
        } else if (label.size() > kMaxCohortLabel) {
            err("label longer than " + std::to_string(kMaxCohortLabel) + " bytes");
        } else if (!std::all_of(label.begin(), label.end(), [](char c) {
                       return c == ' ' || c == '\t' || (c > 32 && c < 127);
                   })) {
            err("label '" + std::string(label) + "' has non-printable or non-ASCII bytes");
        } else {
            rule->label = std::string(label);
            rule->line = line_no;
            auto [it, fresh] = seen.emplace(std::make_pair(rule->addr, rule->prefix), line_no);
            if (!fresh)
                err("network " + format_cidr(*rule) + " already listed on line " +
                    std::to_string(it->second));
            else
                out.rules.push_back(std::move(*rule));
        }
        if (eol == text.size())
            break;
    }
    return out;
}

CohortParse load_cohorts(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        CohortParse out;
        out.errors.push_back(path + ": cannot read: " + std::strerror(errno));
        return out;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return parse_cohorts(ss.str(), path);
}

CohortMatcher::CohortMatcher(const std::vector<CohortRule> &rules)
{
    std::map<std::string, uint32_t> label_ids;
    std::map<uint8_t, std::vector<Net>, std::greater<>> v4, v6;
    for (auto &r : rules) {
        auto [it, fresh] = label_ids.emplace(r.label, static_cast<uint32_t>(labels_.size()));
        if (fresh)
            labels_.push_back(r.label);
        Addr16 net = mask_addr(r.addr, r.prefix);
        Net n{load_be64(net.data()), load_be64(net.data() + 8), it->second};
        bool v4_rule = is_v4(net);
        uint8_t len =
            static_cast<uint8_t>(v4_rule ? 96 + std::min<unsigned>(r.prefix, 32) : r.prefix);
        (v4_rule ? v4 : v6)[len].push_back(n);
        rules_++;
    }
    auto build = [](auto &from, std::vector<Level> &to) {
        for (auto &[len, nets] : from) {
            // Stable: for a duplicate network the first rule wins.
            std::stable_sort(nets.begin(), nets.end(), [](const Net &a, const Net &b) {
                return a.hi != b.hi ? a.hi < b.hi : a.lo < b.lo;
            });
            nets.erase(std::unique(
                           nets.begin(), nets.end(),
                           [](const Net &a, const Net &b) { return a.hi == b.hi && a.lo == b.lo; }),
                       nets.end());
            nets.shrink_to_fit();
            to.push_back(Level{len, std::move(nets)});
        }
    };
    build(v4, v4_);
    build(v6, v6_);
}

std::optional<uint32_t> CohortMatcher::match(const Addr16 &a) const
{
    const auto &levels = is_v4(a) ? v4_ : v6_;
    uint64_t hi = load_be64(a.data()), lo = load_be64(a.data() + 8);
    for (const auto &lv : levels) {
        uint64_t mhi, mlo;
        unsigned p = lv.prefix;
        if (p >= 128) {
            mhi = hi;
            mlo = lo;
        } else if (p >= 64) {
            mhi = hi;
            mlo = p == 64 ? 0 : lo & ~(UINT64_MAX >> (p - 64));
        } else {
            mhi = p == 0 ? 0 : hi & ~(UINT64_MAX >> p);
            mlo = 0;
        }
        auto it = std::lower_bound(lv.nets.begin(), lv.nets.end(), std::make_pair(mhi, mlo),
                                   [](const Net &n, const std::pair<uint64_t, uint64_t> &k) {
                                       return n.hi != k.first ? n.hi < k.first : n.lo < k.second;
                                   });
        if (it != lv.nets.end() && it->hi == mhi && it->lo == mlo)
            return it->label;
    }
    return std::nullopt;
}

size_t CohortMatcher::memory_bytes() const
{
    size_t n = (v4_.capacity() + v6_.capacity()) * sizeof(Level) +
               labels_.capacity() * sizeof(std::string);
    for (auto *levels : {&v4_, &v6_})
        for (auto &lv : *levels)
            n += lv.nets.capacity() * sizeof(Net);
    for (auto &l : labels_)
        if (l.capacity() > 15)
            n += l.capacity() + 1;
    return n;
}

}  // namespace exf::agg
