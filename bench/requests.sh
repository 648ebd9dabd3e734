#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Request counting (docs/datapath.md, "Requests"): what it costs per packet
# and how close it is to the truth (see bench/RESULTS.md).
#
#  1. Cost: bpf_cost's established-packet cases (repeat method) with this
#     tree's program and BASE (a build of bpf/exfilmon.bpf.c without request
#     counting, e.g. main's before it) measured in the same rounds: the
#     figure is this tree's difference to the empty program minus BASE's.
#  2. Accuracy: the e2e test "Requests counted in the kernel are within 5 %
#     of nginx's access log" (real nginx, real curl, the sensor on a veth):
#     its REQUESTS lines, one per case, give the access log's count and the
#     sensor's.
#
# Usage: bench/requests.sh --base FILE.bpf.o [--rounds N]
# Needs root and a built tree: $BUILD_DIR or build next to this repository's
# CMakeLists.txt (targets bpf_cost and exf_e2e_tests).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=result.sh
. "$ROOT/bench/result.sh"
result_start "$0" "$@"
BUILD=${BUILD_DIR:-$ROOT/build}
BASE=""
ROUNDS=11
while (($#)); do
    case $1 in
    --base) BASE=$(realpath "$2"); shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    *) echo "usage: $0 --base FILE.bpf.o [--rounds N]" >&2; exit 2 ;;
    esac
done
[[ -n $BASE ]] || { echo "requests.sh: --base FILE.bpf.o is required" >&2; exit 2; }
[[ -f $BASE ]] || { echo "requests.sh: $BASE: no such file" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "requests.sh: needs root" >&2; exit 2; }
for f in "$BUILD/bench/bpf_cost" "$BUILD/bpf/exfilmon.bpf.o" "$BUILD/tests/exf_e2e_tests"; do
    [[ -e $f ]] || { echo "requests.sh: $f missing: build the tree first" >&2; exit 2; }
done

LOG=$(mktemp /tmp/exf-requests.XXXXXX)
trap 'rm -f "$LOG"' EXIT

echo "## Cost: $BUILD/bench/bpf_cost --only est --rounds $ROUNDS --object $BUILD/bpf/exfilmon.bpf.o --compare $BASE"
"$BUILD/bench/bpf_cost" --only est --rounds "$ROUNDS" --object "$BUILD/bpf/exfilmon.bpf.o" \
    --compare "$BASE" | tee "$LOG"
LINES=()
for c in tls_est_v4_64 tls_est_v4_1514 tls_est_v6vlan_1518 tls_est_s2c_v4_1514 quic_est_v4_1242; do
    # diff_ns of program 1 (this tree) and 2 (BASE), each over the empty program.
    d=$(awk -v c="$c" '$1 == "BPF_COST" {
            p = ""; cs = ""; d = ""
            for (i = 2; i <= NF; i++) {
                split($i, kv, "=")
                if (kv[1] == "program") p = kv[2]
                else if (kv[1] == "case") cs = kv[2]
                else if (kv[1] == "diff_ns") d = kv[2]
            }
            if (cs == c) v[p] = d
        }
        END { if ((1 in v) && (2 in v)) printf "%.1f", v[1] - v[2] }' "$LOG")
    [[ -n $d ]] || { echo "requests.sh: no BPF_COST lines for $c" >&2; exit 1; }
    LINES+=("$(result_line "requests.cost_$c" "$d" - - "$ROUNDS" ns "<= 5")")
done

echo "## Accuracy: $BUILD/tests/exf_e2e_tests \"Requests counted in the kernel are within 5 % of nginx's access log\""
(cd "$BUILD/tests" && ./exf_e2e_tests "Requests counted in the kernel are within 5 % of nginx's access log") |
    tee "$LOG"
worst=$(awk '/^REQUESTS / && !/concurrent/ {
        for (i = 1; i <= NF; i++) if ($i ~ /^ratio=/) { split($i, kv, "="); e = (kv[2] - 1) * 100; if (e < 0) e = -e; if (e > w) w = e; n++ }
    }
    END { if (n) printf "%.2f", w }' "$LOG")
ratio=$(awk '/^REQUESTS / && /concurrent/ {
        for (i = 1; i <= NF; i++) if ($i ~ /^ratio=/) { split($i, kv, "="); printf "%.3f", kv[2] }
    }' "$LOG")
[[ -n $worst && -n $ratio ]] || { echo "requests.sh: no REQUESTS lines from the test" >&2; exit 1; }
n=$(grep -c '^REQUESTS ' "$LOG")
LINES+=("$(result_line requests.accuracy_sequential_worst_pct "$worst" - - "$((n - 1))" "%" "<= 5")")
LINES+=("$(result_line requests.h2_concurrent_ratio "$ratio" - - 1 ratio none)")

echo
printf '%s\n' "${LINES[@]}"
