#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Kernel cost per packet of the exfilmon tc programs (see bench/RESULTS.md).
#
#  1. bpf_cost: BPF_PROG_TEST_RUN against the empty tc program, per packet
#     kind (bench/bpf_cost.cpp).
#  2. In situ: the sensor on the server end of a veth pair between two network
#     namespaces, real TLS traffic for DURATION seconds with
#     kernel.bpf_stats_enabled=1, then run_time_ns / run_cnt of each program
#     (bpftool prog show -j); the same with the empty program attached instead;
#     offloads (TSO/GSO/GRO) on, then off. Workloads: "bulk" (curl downloading
#     a 64 MiB file from openssl s_server -WWW, in a loop) and "conn" (openssl
#     s_time: new TLS connections fetching 1 KiB, the hello/flow-end path).
#  The test-run part also runs the hello cases beside bpf/hello_floor.bpf.c:
#  only the reserve, the copy of the hello into its event and the submit,
#  the floor under any program that hands the hello to userspace.
#
# Usage: bench/bpf_cost.sh [--duration S] [--workloads "bulk conn"]
#                          [--offloads "on off"] [--skip-test-run] [--skip-in-situ]
#                          [--object FILE.bpf.o] [--compare FILE.bpf.o]...
#                          [-- bpf_cost options...]
# --object measures another build of bpf/exfilmon.bpf.c (an optimisation
# prototype) in both parts instead of the embedded program; --compare adds
# builds measured alongside it (bpf_cost: in the same rounds; in situ: right
# after it, on the same traffic mix) to compare them on a noisy machine.
# Needs root, bpftool, openssl, curl, ethtool, jq. Build dir: $BUILD_DIR or
# build-bench next to this repository's CMakeLists.txt. Cleans up on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lab.sh
. "$ROOT/bench/lab.sh"
# shellcheck source=result.sh
. "$ROOT/bench/result.sh"
result_start "$0" "$@"
BUILD=${BUILD_DIR:-$ROOT/build-bench}
DURATION=10
WORKLOADS="bulk conn"
OFFLOADS="on off"
TEST_RUN=1
IN_SITU=1
OBJECT=""
COMPARE=()
COST_ARGS=()
while (($#)); do
    case $1 in
    --duration) DURATION=$2; shift 2 ;;
    --workloads) WORKLOADS=$2; shift 2 ;;
    --offloads) OFFLOADS=$2; shift 2 ;;
    --skip-test-run) TEST_RUN=0; shift ;;
    --skip-in-situ) IN_SITU=0; shift ;;
    --object) OBJECT=$(realpath "$2"); shift 2 ;;
    --compare) COMPARE+=("$(realpath "$2")"); shift 2 ;;
    --) shift; COST_ARGS=("$@"); break ;;
    *) echo "usage: $0 [--duration S] [--workloads \"bulk conn\"] [--offloads \"on off\"]" \
            "[--skip-test-run] [--skip-in-situ] [--object FILE] [--compare FILE]..." \
            "[-- bpf_cost options]" >&2
        exit 2 ;;
    esac
done
[[ $(id -u) == 0 ]] || { echo "bpf_cost.sh: needs root" >&2; exit 2; }

echo "## Build"
BUILD_LOG=$(mktemp /tmp/exf-bpfcost-build.XXXXXX)
if ! { cmake -S "$ROOT" -B "$BUILD" && cmake --build "$BUILD" -j2 --target bpf_cost attach_sensor hello_floor_obj; } \
    >"$BUILD_LOG" 2>&1; then
    cat "$BUILD_LOG" >&2
    rm -f "$BUILD_LOG"
    echo "bpf_cost.sh: build failed" >&2
    exit 1
fi
rm -f "$BUILD_LOG"

lab_machine
echo "spec_rstack_overflow: $(cat /sys/devices/system/cpu/vulnerabilities/spec_rstack_overflow 2>/dev/null || echo n/a)"
echo "spectre_v2: $(cat /sys/devices/system/cpu/vulnerabilities/spectre_v2 2>/dev/null || echo n/a)"

PRE=()
[[ -n $OBJECT ]] && PRE+=(--object "$OBJECT")
for c in "${COMPARE[@]}"; do PRE+=(--compare "$c"); done
COST_ARGS=("${PRE[@]}" "${COST_ARGS[@]}")
echo "program 1: ${OBJECT:-embedded exfilmon.bpf.o ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo ?), $(git -C "$ROOT" status --porcelain bpf 2>/dev/null | grep -q . && echo 'bpf/ modified' || echo 'bpf/ clean'))}"
for i in "${!COMPARE[@]}"; do echo "program $((i + 2)): ${COMPARE[$i]}"; done

if ((TEST_RUN)); then
    echo
    echo "## BPF_PROG_TEST_RUN: $BUILD/bench/bpf_cost ${COST_ARGS[*]}"
    "$BUILD/bench/bpf_cost" "${COST_ARGS[@]}"
    echo
    echo "## ClientHello floor: $BUILD/bench/bpf_cost ${PRE[*]} --only hello --compare $BUILD/bpf/hello_floor.bpf.o"
    "$BUILD/bench/bpf_cost" "${PRE[@]}" --only hello --compare "$BUILD/bpf/hello_floor.bpf.o"
fi
((IN_SITU)) || exit 0

for tool in bpftool openssl curl ethtool jq ip; do
    command -v $tool >/dev/null || { echo "bpf_cost.sh: $tool not found" >&2; exit 2; }
done

# ---- in situ -----------------------------------------------------------------
TAG=exfb$$
NS_C=${TAG}c NS_S=${TAG}s
IF_C=${TAG}c IF_S=${TAG}s
CLI_ADDR=$LAB_CLI_ADDR SRV_ADDR=$LAB_SRV_ADDR
WORK=$(mktemp -d /tmp/exf-bpfcost.XXXXXX)
STATS_BEFORE=$(sysctl -n kernel.bpf_stats_enabled)
SERVER_PID="" ATTACH_PID=""

cleanup() {
    set +e
    sysctl -qw kernel.bpf_stats_enabled="$STATS_BEFORE"
    [[ -n $ATTACH_PID ]] && kill -TERM "$ATTACH_PID" 2>/dev/null && wait "$ATTACH_PID" 2>/dev/null
    [[ -n $SERVER_PID ]] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    lab_teardown "$NS_C" "$NS_S"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_c() { ip netns exec "$NS_C" "$@"; }
in_s() { ip netns exec "$NS_S" "$@"; }

lab_routed "$NS_C" "$NS_S" "$IF_C" "$IF_S"

mkdir -p "$WORK/www"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bench -days 1 \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
head -c $((64 << 20)) /dev/urandom >"$WORK/www/big.bin"
head -c 1024 /dev/urandom >"$WORK/www/small.bin"
(cd "$WORK/www" && exec ip netns exec "$NS_S" openssl s_server -accept 443 -WWW -quiet \
    -cert "$WORK/cert.pem" -key "$WORK/key.pem" >"$WORK/server.log" 2>&1) &
SERVER_PID=$!
for _ in $(seq 50); do
    in_c curl -k -s -o /dev/null --max-time 2 "https://$SRV_ADDR/small.bin" && break
    sleep 0.2
done
in_c curl -k -s -o /dev/null --max-time 2 "https://$SRV_ADDR/small.bin" ||
    { echo "bpf_cost.sh: TLS server not reachable" >&2; cat "$WORK/server.log" >&2; exit 1; }

# Offloads on or off on both ends (lab.sh: off is one-segment skbs at tc egress).
set_offloads() { lab_offloads "$1" "$NS_C" "$IF_C" "$NS_S" "$IF_S"; }

workload() {
    local end=$((SECONDS + DURATION))
    case $1 in
    bulk)
        while ((SECONDS < end)); do
            in_c curl -k -s -o /dev/null --max-time $((end - SECONDS + 1)) \
                "https://$SRV_ADDR/big.bin" || true
        done ;;
    conn)
        in_c openssl s_time -connect "$SRV_ADDR:443" -new -time "$DURATION" -www /small.bin \
            >"$WORK/s_time.log" 2>&1 || true ;;
    esac
}

per() { awk -v t="$1" -v c="$2" 'BEGIN{printf "%.1f", c ? t/c : 0}'; }

prog_stat() { # id field
    bpftool prog show id "$1" -j | jq -r ".$2 // 0"
}

ROWS=()
LINES=()
# Programs measured in situ: label and attach_sensor options.
PROGS=("exfilmon")
PROG_ARGS=("${OBJECT:+--object $OBJECT}")
for i in "${!COMPARE[@]}"; do
    PROGS+=("program$((i + 2))")
    PROG_ARGS+=("--object ${COMPARE[$i]}")
done
PROGS+=("empty")
PROG_ARGS+=("--empty")

measure() { # workload offloads label attach_sensor-options
    local wl=$1 off=$2 prog=$3 out=$WORK/attach-$1-$2-$3.out
    local args=("$IF_S")
    # shellcheck disable=SC2206 # options are words without spaces
    args+=($4)
    rm -f "$out"
    # Not through in_s: $! must be the process itself (ip netns exec execs it).
    ip netns exec "$NS_S" "$BUILD/bench/attach_sensor" "${args[@]}" >"$out" 2>&1 &
    ATTACH_PID=$!
    # Loading verifies both programs: seconds, more on a busy machine.
    while ! grep -qs '^ready' "$out" && kill -0 "$ATTACH_PID" 2>/dev/null; do sleep 0.2; done
    grep -q '^ready' "$out" || { echo "attach_sensor failed:" >&2; cat "$out" >&2; exit 1; }
    local in_id eg_id
    in_id=$(sed -n 's/^ready ingress_id=\([0-9]*\).*/\1/p' "$out")
    eg_id=$(sed -n 's/^ready.*egress_id=\([0-9]*\).*/\1/p' "$out")
    local ids=("$in_id")
    [[ $eg_id != "$in_id" ]] && ids+=("$eg_id")
    declare -A t0 c0
    for id in "${ids[@]}"; do t0[$id]=$(prog_stat "$id" run_time_ns); c0[$id]=$(prog_stat "$id" run_cnt); done
    sysctl -qw kernel.bpf_stats_enabled=1
    workload "$wl"
    sysctl -qw kernel.bpf_stats_enabled=0
    declare -A dt dc
    for id in "${ids[@]}"; do
        dt[$id]=$(($(prog_stat "$id" run_time_ns) - ${t0[$id]}))
        dc[$id]=$(($(prog_stat "$id" run_cnt) - ${c0[$id]}))
    done
    kill -TERM "$ATTACH_PID"
    wait "$ATTACH_PID" || true
    ATTACH_PID=""
    local pkts bytes hellos ends
    pkts=$(sed -n 's/^health packets=\([0-9]*\).*/\1/p' "$out")
    bytes=$(sed -n 's/^health.* bytes=\([0-9]*\).*/\1/p' "$out")
    hellos=$(sed -n 's/^health.* hello_events=\([0-9]*\).*/\1/p' "$out")
    ends=$(sed -n 's/^health.* end_events=\([0-9]*\).*/\1/p' "$out")
    if [[ $prog == empty ]]; then
        # One program on both hooks: one id, one set of counters.
        ROWS+=("| $wl | $off | empty | both | ${dc[$in_id]} | $(per "${dt[$in_id]}" "${dc[$in_id]}") | - | - |")
        LINES+=("INSITU workload=$wl offloads=$off prog=empty hook=both runs=${dc[$in_id]} run_time_ns=${dt[$in_id]} ns_per_run=$(per "${dt[$in_id]}" "${dc[$in_id]}")")
    else
        local hook id tt=0 tc=0
        for hook in ingress egress; do
            id=$in_id
            [[ $hook == egress ]] && id=$eg_id
            tt=$((tt + ${dt[$id]})); tc=$((tc + ${dc[$id]}))
            ROWS+=("| $wl | $off | $prog | $hook | ${dc[$id]} | $(per "${dt[$id]}" "${dc[$id]}") | - | - |")
            LINES+=("INSITU workload=$wl offloads=$off prog=$prog hook=$hook runs=${dc[$id]} run_time_ns=${dt[$id]} ns_per_run=$(per "${dt[$id]}" "${dc[$id]}")")
        done
        ROWS+=("| $wl | $off | $prog | both | $tc | $(per $tt $tc) | $pkts | $(per $tt "$pkts") |")
        LINES+=("INSITU workload=$wl offloads=$off prog=$prog hook=both runs=$tc run_time_ns=$tt ns_per_run=$(per $tt $tc) wire_packets=$pkts ns_per_wire_packet=$(per $tt "$pkts") ip_bytes=$bytes mbit_s=$(awk -v b="$bytes" -v d="$DURATION" 'BEGIN{printf "%.0f", b*8/d/1e6}') hello_events=$hellos end_events=$ends")
        # The program measured (not a --compare build): per wire packet, so
        # that GSO skbs (offloads on) count each segment they carry.
        if [[ $prog == exfilmon ]]; then
            LINES+=("$(result_line "insitu.${wl}_offloads_$off" "$(per $tt "$pkts")" - - 1 ns "<= 100")")
        fi
    fi
    echo "  $wl offloads=$off $prog: done" >&2
}

echo
echo "## In situ: veth $IF_C ($NS_C, $CLI_ADDR) <-> $IF_S ($NS_S, $SRV_ADDR), sensor on $IF_S, ${DURATION}s per run"
for off in $OFFLOADS; do
    set_offloads "$off"
    for wl in $WORKLOADS; do
        for i in "${!PROGS[@]}"; do
            measure "$wl" "$off" "${PROGS[$i]}" "${PROG_ARGS[$i]}"
        done
    done
done
echo
echo "| workload | offloads | program | hook | runs | ns/run | wire packets | ns/wire packet |"
echo "|---|---|---|---|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo
printf '%s\n' "${LINES[@]}"
