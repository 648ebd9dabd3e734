#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark 2: throughput impact of the sensor (see bench/RESULTS.md).
#
# Two network namespaces over a veth pair; iperf3 sends from the client
# namespace to the server namespace. The sensor is attached on the receiving
# side (the server's veth, tc ingress and egress) or not attached, in
# alternating runs: pair i runs "without" then "with" when i is odd, "with"
# then "without" when i is even, so drift of the shared machine's load hits
# both alike. Tests:
#   tcp1   TCP, 1 stream            (receiver's Mbit/s)
#   tcp4   TCP, 4 parallel streams  (receiver's Mbit/s)
#   udp64  UDP, 64-byte datagrams, -b 0 (no rate limit): datagrams/s sent,
#          which is the rate through the whole stack including the receiving
#          side's tc ingress (veth delivers to the peer's backlog, processed
#          in the sender's softirq on the same CPU); the datagrams/s the
#          receiving iperf3 read (the rest overflow its socket buffer) are
#          reported too, with their own ratios, but they mostly measure how
#          much CPU the receiving process got
# each with offloads on (veth defaults: TSO/GSO/GRO on) and off (ethtool -K
# tso off gso off gro off and gso_max_segs 1 on both ends, so the sending TCP
# hands MTU-size skbs to the stack; see lab_offloads in bench/lab.sh).
#
# The sensor is the real daemon, `exfilmon run --interface IF -c CFG`, started
# inside the server namespace for each "with" run, with [bpf] tls_ports =
# [443, 8443, PORT] so the iperf3 TCP flows are TLS-port flows (flow and
# client tables, the full per-packet path). UDP flows on that port are QUIC
# flows only when the first datagram is a QUIC long header, which iperf3's are
# not: they are tracked as other flows (flow table, no client table). The
# daemon's final table (printed when it stops) gives the packets it counted:
# the datapath's packet counter and the per-client packets, which prove that
# it was attached and counting.
#
# Reported per test and offload setting: the median without, the median with,
# the median of the per-pair ratios with/without (the figure judged against
# the targets: >= 0.98 offloads on, >= 0.95 offloads off), the min and max
# ratio, and the packets the sensor counted.
#
# Controls (not judged): --sensor empty replaces the daemon with
# bench/attach_sensor --empty (the empty TC_ACT_OK program on both hooks),
# which separates the cost of having tc programs on the interface from the
# sensor's own work; --sensor idle runs the daemon as in "with" but attached
# to an interface of the server namespace that carries no traffic, which
# shows what the daemon process alone (and its start) does to the figures.
#
# Usage: bench/throughput.sh [--pairs N] [--duration S] [--tests "tcp1 tcp4 udp64"]
#                            [--offloads "on off"] [--port P] [--sensor daemon|empty|idle]
# Defaults: 9 pairs of 5 s runs (plus 1 s of iperf3 --omit), both offload
# settings, all tests: about 13 minutes on the 2-vCPU VM. Needs root.
# exfilmon: $EXFILMON, or built into $BUILD_DIR (default build-tput next to
# CMakeLists.txt; also attach_sensor for --sensor empty). Installs
# iperf3, ethtool, jq (Debian packages) when missing. Cleans up on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lab.sh
. "$ROOT/bench/lab.sh"
# shellcheck source=result.sh
. "$ROOT/bench/result.sh"
result_start "$0" "$@"
BUILD=${BUILD_DIR:-$ROOT/build-tput}
PAIRS=9
DURATION=5
TESTS="tcp1 tcp4 udp64"
OFFLOADS="on off"
PORT=5201
SENSOR_KIND=daemon
usage() {
    echo "usage: $0 [--pairs N] [--duration S] [--tests \"tcp1 tcp4 udp64\"]" \
        "[--offloads \"on off\"] [--port P] [--sensor daemon|empty|idle]" >&2
    exit 2
}
while (($#)); do
    case $1 in
    --pairs) PAIRS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --tests) TESTS=$2; shift 2 ;;
    --offloads) OFFLOADS=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --sensor) SENSOR_KIND=$2; shift 2 ;;
    *) usage ;;
    esac
done
[[ $SENSOR_KIND =~ ^(daemon|empty|idle)$ ]] || usage
[[ $(id -u) == 0 ]] || { echo "throughput.sh: needs root" >&2; exit 2; }

need_pkgs=()
for t in iperf3:iperf3 ethtool:ethtool jq:jq; do
    command -v "${t%%:*}" >/dev/null || need_pkgs+=("${t#*:}")
done
if ((${#need_pkgs[@]})); then
    echo "## Installing ${need_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_pkgs[@]}" >/dev/null ||
        { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_pkgs[@]}" >/dev/null; }
fi

TARGETS=()
[[ -z ${EXFILMON:-} ]] && TARGETS+=(exfilmon)
[[ $SENSOR_KIND == empty && -z ${ATTACH_SENSOR:-} ]] && TARGETS+=(attach_sensor)
if ((${#TARGETS[@]})); then
    echo "## Build ($BUILD, ${TARGETS[*]})"
    BUILD_LOG=$(mktemp /tmp/exf-tput-build.XXXXXX)
    if ! { cmake -S "$ROOT" -B "$BUILD" &&
        cmake --build "$BUILD" -j2 --target "${TARGETS[@]}"; } >"$BUILD_LOG" 2>&1; then
        cat "$BUILD_LOG" >&2
        rm -f "$BUILD_LOG"
        echo "throughput.sh: build failed" >&2
        exit 1
    fi
    rm -f "$BUILD_LOG"
fi
EXFILMON=${EXFILMON:-$BUILD/userspace/exfilmon}
ATTACH_SENSOR=${ATTACH_SENSOR:-$BUILD/bench/attach_sensor}
[[ -x $EXFILMON ]] || { echo "throughput.sh: $EXFILMON not executable" >&2; exit 2; }
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

lab_machine
echo "exfilmon: $EXFILMON ($("$EXFILMON" version 2>/dev/null | head -1)); tree: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo ?)$(git -C "$ROOT" status --porcelain bpf userspace 2>/dev/null | grep -q . && echo ' + uncommitted changes in bpf/ or userspace/')"
echo "iperf3: $(iperf3 --version | head -1)"
echo "pairs: $PAIRS, duration: ${DURATION}s (+1 s omitted), tests: $TESTS, offloads: $OFFLOADS, port: $PORT, sensor: $SENSOR_KIND"

TAG=exftp$$
NS_C=${TAG}c NS_S=${TAG}s
IF_C=${TAG}c IF_S=${TAG}s IF_IDLE=${TAG}d
SRV_ADDR=$LAB_SRV_ADDR
WORK=$(mktemp -d /tmp/exf-tput.XXXXXX)
SERVER_PID="" SENSOR_PID=""
SENSOR_WAIT_PID="" # script(1), which runs the sensor on a terminal

cleanup() {
    set +e
    [[ -n $SENSOR_PID ]] && kill -TERM "$SENSOR_PID" 2>/dev/null && wait "${SENSOR_WAIT_PID:-$SENSOR_PID}" 2>/dev/null
    [[ -n $SERVER_PID ]] && kill -TERM "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    lab_teardown "$NS_C" "$NS_S"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_c() { ip netns exec "$NS_C" "$@"; }
in_s() { ip netns exec "$NS_S" "$@"; }

lab_routed "$NS_C" "$NS_S" "$IF_C" "$IF_S"
# --sensor idle: a veth pair inside the server namespace, without traffic
# (no dummy driver on every kernel).
in_s ip link add "$IF_IDLE" type veth peer name "${IF_IDLE}p"
in_s ip link set "$IF_IDLE" up

# The receiver: one iperf3 server for the whole run (one test at a time).
ip netns exec "$NS_S" iperf3 -s -B $SRV_ADDR -p "$PORT" >"$WORK/iperf3-server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do
    in_s ss -Hltn "sport = :$PORT" | grep -q . && break
    sleep 0.1
done

cat >"$WORK/exfilmon.toml" <<TOML
[capture]
backend = "ebpf"
[bpf]
tls_ports = [443, 8443, $PORT]
pin = false
[control]
socket = "$WORK/control.sock"
[metrics]
enabled = false
[daemon]
report_interval = "1h"
state_dir = ""
[[outputs]]
type = "json"
path = "$WORK/alerts.json"
TOML
"$EXFILMON" check-config "$WORK/exfilmon.toml" >/dev/null

# Offloads on or off on both ends (lab.sh: off is one-segment skbs).
set_offloads() { lab_offloads "$1" "$NS_C" "$IF_C" "$NS_S" "$IF_S"; }

sensor_start() {
    if [[ $SENSOR_KIND == empty ]]; then
        : >"$WORK/sensor.out"
        ip netns exec "$NS_S" "$ATTACH_SENSOR" "$IF_S" --empty >"$WORK/sensor.out" 2>&1 &
        SENSOR_PID=$!
        while ! grep -qs '^ready' "$WORK/sensor.out" && kill -0 "$SENSOR_PID" 2>/dev/null; do sleep 0.1; done
        grep -qs '^ready' "$WORK/sensor.out" || { echo "attach_sensor failed:" >&2; cat "$WORK/sensor.out" >&2; exit 1; }
        return
    fi
    local ifname=$IF_S try rc
    [[ $SENSOR_KIND == idle ]] && ifname=$IF_IDLE
    for try in 1 2 3; do
        # Emptied here, not by the redirections below: those happen in the
        # child, possibly after the first grep has read the previous run's log.
        : >"$WORK/sensor.out"
        : >"$WORK/sensor.err"
        # On a terminal: its final client table is what sensor_stop reads.
        # Not through in_s: the pid must be the daemon itself (ip netns exec execs it).
        lab_on_terminal "$WORK/sensor.out" "$WORK/sensor.err" \
            ip netns exec "$NS_S" "$EXFILMON" run -c "$WORK/exfilmon.toml" --interface "$ifname"
        SENSOR_PID=$LAB_CMD_PID SENSOR_WAIT_PID=$LAB_TERM_PID
        # Loading verifies the programs: seconds on a busy machine.
        for _ in $(seq 600); do
            grep -qs 'attached to' "$WORK/sensor.err" && break
            kill -0 "$SENSOR_PID" 2>/dev/null || break
            sleep 0.1
        done
        grep -qs 'attached to' "$WORK/sensor.err" && break
        rc=0
        kill -TERM "$SENSOR_PID" 2>/dev/null
        wait "${SENSOR_WAIT_PID:-$SENSOR_PID}" || rc=$?
        SENSOR_PID="" SENSOR_WAIT_PID=""
        echo "throughput.sh: exfilmon did not attach (try $try, exit status $rc):" >&2
        cat "$WORK/sensor.err" "$WORK/sensor.out" >&2
        ((try < 3)) || exit 1
        sleep 2
    done
    [[ $SENSOR_KIND == idle ]] && return
    # Both hooks present on the interface.
    # (Captured first: grep -q closing the pipe early would fail it under pipefail.)
    local f
    f=$(in_s tc filter show dev "$IF_S" ingress)
    grep -q exf_tc_ingress <<<"$f" || { echo "no tc ingress program" >&2; exit 1; }
    f=$(in_s tc filter show dev "$IF_S" egress)
    grep -q exf_tc_egress <<<"$f" || { echo "no tc egress program" >&2; exit 1; }
}

# Sets SENSOR to "packets=N client_pkts=N clients=N": the datapath's packet
# counter and the per-client packets (in + out) from the daemon's final table.
# (Not called in a subshell: it waits for the daemon, its child.)
sensor_stop() {
    kill -TERM "$SENSOR_PID"
    wait "${SENSOR_WAIT_PID:-$SENSOR_PID}" || true
    SENSOR_PID="" SENSOR_WAIT_PID=""
    local f
    f=$(in_s tc filter show dev "$IF_S" ingress)
    grep -q bpf <<<"$f" && { echo "sensor still attached" >&2; exit 1; }
    if [[ $SENSOR_KIND == idle ]]; then
        SENSOR="idle_daemon=stopped"
        return
    fi
    if [[ $SENSOR_KIND == empty ]]; then
        SENSOR="empty_program=attached" # run_cnt needs kernel.bpf_stats_enabled: not counted
        return
    fi
    SENSOR=$(awk '/^client +tls_flows/ { rows = 0; sum = 0; table = 1; next }
         table && /^-- / { match($0, /packets [0-9]+/); pk = substr($0, RSTART + 8, RLENGTH - 8);
                           fin_rows = rows; fin_sum = sum; fin_pk = pk; table = 0; next }
         table && NF == 7 { rows++; sum += $6 + $7 }
         END { printf "packets=%s client_pkts=%d clients=%d\n", fin_pk, fin_sum, fin_rows }' \
        "$WORK/sensor.out")
}

# One iperf3 run; prints "value unit app" (app: for UDP, datagrams/s the
# receiving iperf3 read; "-" for TCP).
run_iperf() {
    local test=$1 json=$WORK/iperf.json args
    case $test in
    tcp1) args=(-P 1) ;;
    tcp4) args=(-P 4) ;;
    udp64) args=(-u -l 64 -b 0) ;;
    *) echo "unknown test $test" >&2; exit 2 ;;
    esac
    local ok=0
    for _ in 1 2 3; do
        if in_c iperf3 -c $SRV_ADDR -p "$PORT" -t "$DURATION" -O 1 -J "${args[@]}" >"$json" 2>&1; then
            ok=1
            break
        fi
        sleep 1 # the server may still be finishing the previous test
    done
    ((ok)) || { echo "iperf3 failed:" >&2; cat "$json" >&2; exit 1; }
    case $test in
    tcp*) jq -r '"\(.end.sum_received.bits_per_second / 1e6) Mbit/s -"' "$json" ;;
    # Read by the receiver: its bytes / 64 (with --omit, packets - lost_packets
    # mixes counts from before and after the omitted second and can go negative).
    udp*) jq -r '"\(.end.sum_sent.packets / .end.sum_sent.seconds) pps " +
                 "\(.end.sum_received.bytes / 64 / .end.sum_received.seconds)"' "$json" ;;
    esac
}

declare -A UNIT
ROWS=()
LINES=()
median() { sort -g | awk '{ v[NR] = $1 } END { if (!NR) { print "nan"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m }'; }

for off in $OFFLOADS; do
    set_offloads "$off"
    for test in $TESTS; do
        echo
        echo "## $test, offloads $off"
        wo=() wi=() ratio=() pkts=() cpkts=() awo=() awi=() aratio=()
        for p in $(seq "$PAIRS"); do
            order=(without with)
            ((p % 2 == 0)) && order=(with without)
            declare -A val=() app=()
            for mode in "${order[@]}"; do
                [[ $mode == with ]] && sensor_start
                read -r v unit a < <(run_iperf "$test")
                UNIT[$test]=$unit
                val[$mode]=$v
                app[$mode]=$a
                sensor=""
                if [[ $mode == with ]]; then
                    sensor_stop
                    sensor=$SENSOR
                    c=$(sed -n 's/^packets=\([0-9]*\).*/\1/p' <<<"$sensor")
                    [[ -n $c ]] && pkts+=("$c")
                    c=$(sed -n 's/.*client_pkts=\([0-9]*\).*/\1/p' <<<"$sensor")
                    [[ -n $c ]] && cpkts+=("$c")
                fi
                LINES+=("THROUGHPUT test=$test offloads=$off pair=$p mode=$mode value=$v unit=$unit app_read_pps=$a $sensor loadavg=$(cut -d' ' -f1 /proc/loadavg)")
                astr=""
                [[ $a != - ]] && astr=$(printf ' (iperf3 read %.1f pps)' "$a")
                printf '  pair %d %-7s %10.1f %s%s%s\n' "$p" "$mode" "$v" "$unit" "$astr" \
                    "${sensor:+  sensor: $sensor}"
            done
            wo+=("${val[without]}")
            wi+=("${val[with]}")
            ratio+=("$(awk -v a="${val[with]}" -v b="${val[without]}" 'BEGIN { printf "%.4f", a / b }')")
            if [[ ${app[with]} != - ]]; then
                awo+=("${app[without]}")
                awi+=("${app[with]}")
                aratio+=("$(awk -v a="${app[with]}" -v b="${app[without]}" 'BEGIN { printf "%.4f", a / b }')")
            fi
            unset val app
        done
        m_wo=$(printf '%s\n' "${wo[@]}" | median)
        m_wi=$(printf '%s\n' "${wi[@]}" | median)
        m_r=$(printf '%s\n' "${ratio[@]}" | median)
        r_min=$(printf '%s\n' "${ratio[@]}" | sort -g | head -1)
        r_max=$(printf '%s\n' "${ratio[@]}" | sort -g | tail -1)
        m_pk=- m_cpk=- # none for the controls
        ((${#pkts[@]})) && m_pk=$(printf '%s\n' "${pkts[@]}" | median | xargs printf '%.0f')
        ((${#cpkts[@]})) && m_cpk=$(printf '%s\n' "${cpkts[@]}" | median | xargs printf '%.0f')
        target=0.98
        [[ $off == off ]] && target=0.95
        verdict=$(awk -v r="$m_r" -v t="$target" 'BEGIN { print ((r >= t) ? "met" : "MISSED") }')
        [[ $SENSOR_KIND != daemon ]] && verdict="control-$SENSOR_KIND (not judged)"
        ROWS+=("$(printf '| %s | %s | %s | %.1f | %.1f | %.3f | %.3f–%.3f | %s | %s | >= %s | %s |' \
            "$test" "$off" "${UNIT[$test]}" "$m_wo" "$m_wi" "$m_r" "$r_min" "$r_max" "$m_pk" "$m_cpk" "$target" "$verdict")")
        LINES+=("THROUGHPUT_SUMMARY test=$test offloads=$off pairs=$PAIRS median_without=$m_wo median_with=$m_wi median_ratio=$m_r ratio_min=$r_min ratio_max=$r_max sensor_packets_median=$m_pk sensor_client_packets_median=$m_cpk target=$target verdict=${verdict%% *}")
        echo "  median without $m_wo, with $m_wi, median ratio $m_r (min $r_min, max $r_max): $verdict"
        # The controls (--sensor idle|empty) measure the method's noise, not a target.
        if [[ $SENSOR_KIND == daemon ]]; then
            LINES+=("$(result_line "throughput.${test}_offloads_$off" "$m_r" "$r_min" "$r_max" "$PAIRS" "" ">= $target")")
        fi
        if ((${#aratio[@]})); then
            a_wo=$(printf '%s\n' "${awo[@]}" | median)
            a_wi=$(printf '%s\n' "${awi[@]}" | median)
            a_r=$(printf '%s\n' "${aratio[@]}" | median)
            a_min=$(printf '%s\n' "${aratio[@]}" | sort -g | head -1)
            a_max=$(printf '%s\n' "${aratio[@]}" | sort -g | tail -1)
            ROWS+=("$(printf '| %s, read by iperf3 | %s | pps | %.1f | %.1f | %.3f | %.3f–%.3f | | | (not judged) | |' \
                "$test" "$off" "$a_wo" "$a_wi" "$a_r" "$a_min" "$a_max")")
            LINES+=("THROUGHPUT_SUMMARY test=$test-read offloads=$off pairs=$PAIRS median_without=$a_wo median_with=$a_wi median_ratio=$a_r ratio_min=$a_min ratio_max=$a_max")
            echo "  read by iperf3: median without $a_wo, with $a_wi, median ratio $a_r (min $a_min, max $a_max)"
        fi
    done
done

echo
echo "## Summary ($PAIRS alternating pairs of ${DURATION}s runs; loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| test | offloads | unit | median without | median with | median ratio with/without | ratio min–max | sensor packets / run (median) | of which in client table | target | verdict |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
printf '%s\n' "${LINES[@]}"
