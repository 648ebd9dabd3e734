#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The man pages the build makes of docs/man/*.scd: man renders each at 80
# columns without a single warning, and exfilmon(8) names every subcommand
# and every option that the binary's --help lists (so a new option cannot go
# undocumented). The keys of exfilmon.toml(5) are checked against the parser
# by tests/unit/test_config.cpp.
# Usage: test_man.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
bin=$build/userspace/exfilmon
fail() { echo "FAIL: $*" >&2; exit 1; }

for page in exfilmon.8 exfilmon.toml.5; do
    file=$build/docs/man/$page
    [[ -s $file ]] || fail "$file was not built"
    warnings=$(MANWIDTH=80 man --warnings -l "$file" 2>&1 >/dev/null)
    [[ -z $warnings ]] || fail "$page: man warns: $warnings"
    lines=$(MANWIDTH=80 man -l "$file" 2>/dev/null | wc -l)
    ((lines > 50)) || fail "$page renders to $lines lines"
    echo "$page: $lines lines, no warnings"
done

text=$(MANWIDTH=80 man -l "$build/docs/man/exfilmon.8" 2>/dev/null)
subcommands=$("$bin" --help | sed -n '/^Subcommands:/,$s/^  \([a-z][a-z-]*\) .*/\1/p')
[[ -n $subcommands ]] || fail "no subcommands in exfilmon --help"
for sub in $subcommands; do
    grep -q "^       $sub\b" <<<"$text" || fail "exfilmon(8) has no entry for the subcommand $sub"
    for opt in $("$bin" "$sub" --help | sed -n 's/^  \(-[^ ]*\).*/\1/p' | tr ',' ' '); do
        [[ $opt == -h || $opt == --help ]] && continue
        grep -qe "$opt\b" <<<"$text" || fail "exfilmon(8) does not mention $sub's option $opt"
    done
done
for section in SYNOPSIS COMMANDS "EXIT STATUS" SIGNALS FILES; do
    grep -q "^$section$" <<<"$text" || fail "exfilmon(8) has no $section section"
done
echo "ok: every subcommand and option of --help is in exfilmon(8)"
