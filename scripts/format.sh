#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# clang-format (.clang-format; bpf/.clang-format for bpf/) over every C and
# C++ file of the tree.
#   scripts/format.sh           rewrite the files in place
#   scripts/format.sh --check   change nothing; name the files that differ
#                               and fail if any does (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.c' '*.cpp' '*.h')
if [[ ${1:-} != --check ]]; then
    clang-format -i "${files[@]}"
    exit 0
fi
report=$(mktemp)
trap 'rm -f "$report"' EXIT
if ! clang-format --dry-run -Werror "${files[@]}" 2>"$report"; then
    grep -o '^[^:]*:[0-9]*:[0-9]*: error' "$report" | cut -d: -f1 | sort -u |
        sed 's/^/format: differs: /' >&2
    echo "format: run scripts/format.sh and commit the result" >&2
    exit 1
fi
echo "format: ${#files[@]} files as .clang-format says"
