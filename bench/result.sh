# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# The machine-readable line of the shell benchmarks: one BENCH_RESULT line per
# judged figure, the format bench/results_table.py reads (its header defines
# it; bench_util.h prints the same line for the C++ benchmarks). Sourced, not
# run.
#
#   result_start "$0" "$@"      once, at the start: the run's date and command
#   result_line METRIC VALUE MIN MAX RUNS UNIT TARGET
#       VALUE the median over RUNS runs, MIN and MAX their range ("-": none),
#       TARGET "<= N", ">= N" or "none".

_result_json() {  # a JSON string
    local s=${1//\\/\\\\}
    printf '"%s"' "${s//\"/\\\"}"
}

_result_number() {  # a JSON number, null for "-" or empty
    [[ -z $1 || $1 == - || $1 == nan ]] && { printf null; return; }
    printf '%s' "$1"
}

result_start() {
    local root
    root=$(cd "$(dirname "$1")/.." && pwd)
    RESULT_DATE=$(date -u +%Y-%m-%dT%H:%MZ)
    RESULT_COMMAND="bench/$(basename "$1")${2:+ }${*:2}"
    # The environment the benchmarks read, as it would be typed before them.
    local v
    for v in GEN_CAPTURE EXFILMON BUILD_DIR; do
        [[ -n ${!v:-} ]] && RESULT_COMMAND="$v=${!v} $RESULT_COMMAND"
    done
    RESULT_COMMIT=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unrecorded)
    if git -C "$root" status --porcelain bpf userspace bench 2>/dev/null | grep -q .; then
        RESULT_COMMIT+=+uncommitted
    fi
    RESULT_MACHINE="$(nproc) CPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r)"
}

result_line() {
    printf 'BENCH_RESULT {"metric": %s, "value": %s, "min": %s, "max": %s, "runs": %s, "unit": %s, "target": %s, "date": %s, "commit": %s, "machine": %s, "command": %s}\n' \
        "$(_result_json "$1")" "$(_result_number "$2")" "$(_result_number "$3")" "$(_result_number "$4")" \
        "$(_result_number "$5")" "$(_result_json "$6")" "$(_result_json "$7")" \
        "$(_result_json "$RESULT_DATE")" "$(_result_json "$RESULT_COMMIT")" \
        "$(_result_json "$RESULT_MACHINE")" "$(_result_json "$RESULT_COMMAND")"
}
