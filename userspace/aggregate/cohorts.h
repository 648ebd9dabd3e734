// SPDX-License-Identifier: Apache-2.0
#pragma once
// Cohorts: CIDR -> label, longest prefix match.
//
// A networks file has one rule a line:
//
//     # comment
//     10.20.0.0/16      office-berlin
//     2001:db8:42::/48  office-berlin    # trailing comments too
//     192.0.2.7         build-server     (no /len: one address)
//
// The label is the rest of the line (inner spaces kept, at most 64 bytes,
// printable ASCII). Several networks may share a label; they form one cohort.
// IPv4 rules match only IPv4 clients, IPv6 rules only IPv6 clients (::/0 does
// not match IPv4); an IPv6 rule inside ::ffff:0:0/96 is read as IPv4. Errors
// are `FILE:LINE: message`, all of them, in line order: a bad CIDR, host bits
// set past the prefix, a missing label, the same network listed twice.
//
// Cohorts are matched on the client entity's address, i.e. after the client
// prefix is applied (aggregator.h): with IPv6 clients grouped by /64, a /96
// cohort matches only if it holds the /64's first address.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/addr.h"

namespace exf::agg {

inline constexpr size_t kMaxCohortLabel = 64;

struct CohortRule {
    Addr16 addr{};       // network address (IPv4 as ::ffff:a.b.c.d)
    uint8_t prefix = 0;  // family-relative: 0..32 or 0..128
    std::string label;
    uint32_t line = 0;  // 0 when not from a file

    bool operator==(const CohortRule &) const = default;
};

struct CohortParse {
    std::vector<CohortRule> rules;
    std::vector<std::string> errors;  // "FILE:LINE: message"
    bool ok() const { return errors.empty(); }
};

// Parses "CIDR" (IPv4 or IPv6, "/len" optional) into a rule without label.
// On failure returns nullopt and sets why.
std::optional<CohortRule> parse_cidr(std::string_view text, std::string &why);
std::string format_cidr(const CohortRule &r);

CohortParse parse_cohorts(std::string_view text, const std::string &source_name);
// Reads a file; an unreadable file is one error "PATH: cannot read: reason".
CohortParse load_cohorts(const std::string &path);

// Longest prefix match over a rule list: per family, one sorted array of
// networks for each prefix length in use, probed from the longest length down
// (binary search). Memory: 24 bytes a rule plus the labels.
class CohortMatcher {
public:
    CohortMatcher() = default;
    // Rules are assumed valid (as parse_cohorts returns them); for duplicate
    // networks the first wins.
    explicit CohortMatcher(const std::vector<CohortRule> &rules);

    // Label index of the longest matching rule.
    std::optional<uint32_t> match(const Addr16 &a) const;
    const std::string &label(uint32_t i) const { return labels_[i]; }
    size_t labels() const { return labels_.size(); }
    size_t rules() const { return rules_; }
    size_t memory_bytes() const;

private:
    struct Net {
        uint64_t hi, lo;  // masked address, host byte order
        uint32_t label;
    };
    struct Level {
        uint8_t prefix;         // 0..128 (IPv4 rules as 96 + len)
        std::vector<Net> nets;  // sorted by (hi, lo)
    };
    std::vector<Level> v4_, v6_;  // longest prefix first
    std::vector<std::string> labels_;
    size_t rules_ = 0;
};

}  // namespace exf::agg
