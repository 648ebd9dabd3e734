#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark 4: offline analysis (see bench/RESULTS.md, "Offline replay").
#
# One synthetic capture (bench/gen_capture: 1 M packets, 5000 clients, tens
# of thousands of TLS flows with real ClientHellos, QUIC Initials, DNS, HTTP,
# ICMP; deterministic) is analysed by each tool in turn, several rounds,
# the order of the tools rotating from round to round so that drift in the
# shared machine's load hits all of them alike:
#
#   user       exfilmon replay --datapath user --format json: the datapath's
#              userspace build, TLS reassembly and parsing, JA4, aggregation
#              windows, the built-in rules (the whole replay pipeline)
#   user1      the same on one thread (--threads 1; user runs two threads,
#              the datapath on one, the rest on the other, where it may
#              use two CPUs): the single-core figure
#   bpf        exfilmon replay --datapath bpf --format json: the same with
#              the real BPF program, one BPF_PROG_TEST_RUN per packet (root)
#   ndpiReader ndpiReader -i FILE -q (nDPI 4.2: flow table, protocol
#              detection, TLS/QUIC SNI and JA3 extraction; quiet)
#   tshark     tshark -n -r FILE -Y tls.handshake.type==1 -T fields
#              -e ip.src -e ipv6.src -e tls.handshake.extensions_server_name
#              (the SNI of every ClientHello, TCP and QUIC; no name lookups)
#   softflowd  softflowd -d -r FILE -n 127.0.0.1:9 -v 9 -6 -m 262144 -c none
#              (NetFlow v9 flow export; flow tracking only, no TLS).
#              softflowd 1.1.0 cuts the -r path to 15 characters (an
#              interface name's buffer), so it is given a short symlink to
#              the capture; and with a control socket it sometimes blocks in
#              accept() before reading a packet (which depended on the
#              socket's path), so it runs without one (-c none)
#
# Each run goes through /usr/bin/time -v: packets per second is the
# capture's packets / wall seconds ("Elapsed (wall clock) time"), memory the
# "Maximum resident set size". The capture is read once before the rounds so
# that every tool reads it from the page cache. Reported per tool: the
# median over the rounds of pps, peak RSS and CPU seconds (user + system),
# then ratios against ndpiReader, tshark and softflowd from the same rounds,
# and the targets of benchmark 4: user >= 2 Mpps and peak RSS <= ndpiReader's;
# bpf >= 0.5 Mpps.
#
# Usage: bench/offline_replay.sh [--rounds N] [--packets N] [--clients N]
#            [--seed N] [--rate PPS] [--capture FILE]
#            [--tools "user user1 bpf ndpiReader tshark softflowd"] [--keep]
#
# Installs what is missing from Debian (tshark, libndpi-bin, softflowd,
# time; DEBIAN_FRONTEND=noninteractive) and builds exfilmon and gen_capture
# (Release) in $BUILD_DIR (default build-replay next to this repository's
# CMakeLists.txt) unless EXFILMON and GEN_CAPTURE name binaries. The capture
# goes to a temporary directory (removed on exit unless --keep) unless
# --capture names one, which is then used as it is (not generated).
#
# Machine-readable output: one "OFFLINE tool=... round=..." line per run,
# "OFFLINE_MEDIAN tool=..." per tool, "OFFLINE_RATIO" and "OFFLINE_TARGET"
# lines, then a markdown table.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=result.sh
. "$ROOT/bench/result.sh"
result_start "$0" "$@"
BUILD=${BUILD_DIR:-$ROOT/build-replay}
ROUNDS=5
PACKETS=1000000
CLIENTS=5000
SEED=1
RATE=20000
CAPTURE=""
TOOLS="user user1 bpf ndpiReader tshark softflowd"
KEEP=0
while (($#)); do
    case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --packets) PACKETS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --capture) CAPTURE=$(realpath "$2"); shift 2 ;;
    --tools) TOOLS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "usage: $0 [--rounds N] [--packets N] [--clients N] [--seed N] [--rate PPS]" \
            "[--capture FILE] [--tools \"user user1 bpf ndpiReader tshark softflowd\"] [--keep]" >&2
        exit 2 ;;
    esac
done
has_tool() { [[ " $TOOLS " == *" $1 "* ]]; }
if has_tool bpf && [[ $(id -u) != 0 ]]; then
    echo "offline_replay.sh: --datapath bpf needs root (CAP_BPF); leaving out bpf" >&2
    TOOLS=${TOOLS//bpf/}
fi

WORK=$(mktemp -d /tmp/exf-offline.XXXXXX)
SF_LINK=/tmp/sf.$$  # softflowd's -r path: at most 15 characters
cleanup() {
    rm -f "$SF_LINK"
    if ((KEEP)); then echo "kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

echo "## Packages"
need=()
[[ -x /usr/bin/time ]] || need+=(time)
has_tool tshark && ! command -v tshark >/dev/null && need+=(tshark)
has_tool ndpiReader && ! command -v ndpiReader >/dev/null && need+=(libndpi-bin)
has_tool softflowd && ! command -v softflowd >/dev/null && need+=(softflowd)
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    # tshark's package asks whether non-root users may capture: no.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    if ! apt-get install -y "${need[@]}" >"$WORK/apt.log" 2>&1; then
        apt-get update >>"$WORK/apt.log" 2>&1
        apt-get install -y "${need[@]}" >>"$WORK/apt.log" 2>&1 ||
            { cat "$WORK/apt.log" >&2; echo "offline_replay.sh: apt-get install ${need[*]} failed" >&2; exit 1; }
    fi
    echo "installed: ${need[*]}"
fi
has_tool tshark && echo "tshark: $(tshark --version | head -1)"
has_tool ndpiReader && echo "ndpiReader: $(ndpiReader -h 2>&1 | grep -m1 -o 'nDPI [0-9.]*')"
has_tool softflowd && echo "softflowd: $(softflowd -h 2>&1 | grep -m1 -o 'version [0-9.]*')"

echo "## Build"
if [[ -z ${EXFILMON:-} || ( -z $CAPTURE && -z ${GEN_CAPTURE:-} ) ]]; then
    if ! { cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release &&
           cmake --build "$BUILD" -j2 --target exfilmon gen_capture; } >"$WORK/build.log" 2>&1; then
        cat "$WORK/build.log" >&2
        echo "offline_replay.sh: build failed" >&2
        exit 1
    fi
fi
EXFILMON=${EXFILMON:-$BUILD/userspace/exfilmon}
GEN_CAPTURE=${GEN_CAPTURE:-$BUILD/bench/gen_capture}
echo "exfilmon: $EXFILMON ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo ?)$(git -C "$ROOT" status --porcelain userspace bpf 2>/dev/null | grep -q . && echo ', working tree modified'))"

echo "## Machine"
echo "date: $(date)"
echo "nproc: $(nproc); kernel: $(uname -r); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
echo "loadavg: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "## Capture"
if [[ -z $CAPTURE ]]; then
    CAPTURE=$WORK/offline.pcap
    "$GEN_CAPTURE" --out "$CAPTURE" --packets "$PACKETS" --clients "$CLIENTS" --seed "$SEED" \
        --rate "$RATE" 2>"$WORK/gen.err" | tee "$WORK/gen.out"
    cat "$WORK/gen.err"
else
    echo "capture: $CAPTURE (given)"
    PACKETS=""
fi
cat "$CAPTURE" >/dev/null  # into the page cache
ln -sfn "$CAPTURE" "$SF_LINK"
echo "file: $(stat -c %s "$CAPTURE") bytes"

# The tools' command lines (output to $WORK/out.TOOL).
tool_cmd() {
    case $1 in
    user) echo "$EXFILMON replay $CAPTURE --datapath user --format json" ;;
    user1) echo "$EXFILMON replay $CAPTURE --datapath user --threads 1 --format json" ;;
    bpf) echo "$EXFILMON replay $CAPTURE --datapath bpf --format json" ;;
    ndpiReader) echo "ndpiReader -i $CAPTURE -q" ;;
    tshark) echo "tshark -n -r $CAPTURE -Y tls.handshake.type==1 -T fields -e ip.src -e ipv6.src -e tls.handshake.extensions_server_name" ;;
    softflowd) echo "softflowd -d -r $SF_LINK -n 127.0.0.1:9 -v 9 -6 -m 262144 -c none" ;;
    esac
}

# One run: prints "wall_s rss_kb cpu_s rc".
run_one() {
    local tool=$1 cmd rc=0
    cmd=$(tool_cmd "$tool")
    # shellcheck disable=SC2086
    /usr/bin/time -v -o "$WORK/time.$tool" timeout 1800 $cmd >"$WORK/out.$tool" 2>"$WORK/err.$tool" || rc=$?
    awk -v rc=$rc '
        /Elapsed \(wall clock\)/ { n = split($NF, p, ":"); w = 0; for (i = 1; i <= n; i++) w = w * 60 + p[i] }
        /Maximum resident set size/ { rss = $NF }
        /User time \(seconds\)/ { u = $NF }
        /System time \(seconds\)/ { s = $NF }
        END { printf "%.2f %d %.2f %d\n", w, rss, u + s, rc }' "$WORK/time.$tool"
}

read -r -a tools <<<"$TOOLS"
echo "## Rounds ($ROUNDS; tools: ${tools[*]})"
for t in "${tools[@]}"; do echo "$t: $(tool_cmd "$t" | sed "s|$CAPTURE|FILE|; s|$SF_LINK|FILE|; s|$WORK/|WORK/|g")"; done
declare -A WALL RSS CPU
for ((r = 1; r <= ROUNDS; r++)); do
    n=${#tools[@]}
    for ((k = 0; k < n; k++)); do
        t=${tools[$(((k + r - 1) % n))]}
        read -r w m c rc < <(run_one "$t")
        if [[ -z $PACKETS && $t == user ]]; then
            PACKETS=$(grep -o '[0-9]* packets,' "$WORK/err.user" | grep -o '[0-9]*' | head -1)
        fi
        if [[ $rc != 0 ]]; then
            echo "offline_replay.sh: $t exited $rc:" >&2
            tail -5 "$WORK/err.$t" >&2
        fi
        pps=$(awk -v p="${PACKETS:-0}" -v w="$w" 'BEGIN { printf "%.0f", (w > 0 ? p / w : 0) }')
        echo "OFFLINE tool=$t round=$r packets=${PACKETS:-?} wall_s=$w pps=$pps rss_kb=$m cpu_s=$c rc=$rc"
        WALL[$t]+="$w "
        RSS[$t]+="$m "
        CPU[$t]+="$c "
    done
    if has_tool user && has_tool bpf && ((r == 1)); then
        if cmp -s "$WORK/out.user" "$WORK/out.bpf"; then
            echo "parity: user and bpf JSON identical ($(wc -l <"$WORK/out.user") lines)"
        else
            echo "parity: user and bpf JSON DIFFER"
        fi
    fi
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { print NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
declare -A MPPS MRSS MCPU MWALL
echo
for t in "${tools[@]}"; do
    MWALL[$t]=$(echo "${WALL[$t]}" | median)
    MRSS[$t]=$(echo "${RSS[$t]}" | median)
    MCPU[$t]=$(echo "${CPU[$t]}" | median)
    MPPS[$t]=$(echo "${WALL[$t]}" | tr ' ' '\n' | grep . |
        awk -v p="$PACKETS" '{ print ($1 > 0 ? p / $1 : 0) }' | median)
    printf 'OFFLINE_MEDIAN tool=%s rounds=%d pps=%.0f wall_s=%s rss_kb=%s cpu_s=%s cpu_pps=%.0f\n' \
        "$t" "$ROUNDS" "${MPPS[$t]}" "${MWALL[$t]}" "${MRSS[$t]}" "${MCPU[$t]}" \
        "$(awk -v p="$PACKETS" -v c="${MCPU[$t]}" 'BEGIN { print (c > 0 ? p / c : 0) }')"
done
for t in user user1 bpf; do
    has_tool $t || continue
    for v in ndpiReader tshark softflowd; do
        has_tool $v || continue
        awk -v t=$t -v v=$v -v a="${MPPS[$t]}" -v b="${MPPS[$v]}" -v ra="${MRSS[$t]}" -v rb="${MRSS[$v]}" \
            'BEGIN { printf "OFFLINE_RATIO tool=%s vs=%s pps_ratio=%.2f rss_ratio=%.2f\n", t, v, a / b, ra / rb }'
    done
done
verdict() { awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN { ok = op == ">=" ? a >= b : a <= b; print ok ? "met" : "MISSED" }'; }
for t in "${tools[@]}"; do MPPS[$t]=$(printf '%.0f' "${MPPS[$t]}"); done
if has_tool user; then
    echo "OFFLINE_TARGET name=user_pps value=${MPPS[user]} target=2000000 verdict=$(verdict "${MPPS[user]}" ">=" 2000000)"
    has_tool ndpiReader &&
        echo "OFFLINE_TARGET name=user_rss_vs_ndpiReader value=${MRSS[user]} target=${MRSS[ndpiReader]} verdict=$(verdict "${MRSS[user]}" "<=" "${MRSS[ndpiReader]}")"
fi
has_tool bpf &&
    echo "OFFLINE_TARGET name=bpf_pps value=${MPPS[bpf]} target=500000 verdict=$(verdict "${MPPS[bpf]}" ">=" 500000)"

# The same targets as BENCH_RESULT lines (bench/results_table.py), packets/s
# with its range over the rounds.
pps_sorted() { echo "${WALL[$1]}" | tr ' ' '\n' | grep . | awk -v p="$PACKETS" '$1 > 0 { print p / $1 }' | sort -g; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }
for t in user bpf; do
    has_tool $t || continue
    target=">= 500000"
    [[ $t == user ]] && target=">= 2000000"
    result_line "offline.${t}_pps" "${MPPS[$t]}" "$(pps_sorted $t | head -1)" "$(pps_sorted $t | tail -1)" \
        "$ROUNDS" packets/s "$target"
done
if has_tool user1; then
    result_line offline.user1_pps "${MPPS[user1]}" "$(pps_sorted user1 | head -1)" "$(pps_sorted user1 | tail -1)" \
        "$ROUNDS" packets/s none
fi
if has_tool user && has_tool softflowd; then
    result_line offline.user_pps_vs_softflowd "$(ratio "${MPPS[user]}" "${MPPS[softflowd]}")" - - "$ROUNDS" "" ">= 1"
fi
if has_tool user1 && has_tool softflowd; then
    result_line offline.user1_pps_vs_softflowd "$(ratio "${MPPS[user1]}" "${MPPS[softflowd]}")" - - "$ROUNDS" "" none
fi
if has_tool user && has_tool ndpiReader; then
    result_line offline.user_rss_vs_ndpiReader "$(ratio "${MRSS[user]}" "${MRSS[ndpiReader]}")" - - "$ROUNDS" "" "<= 1"
fi

echo
echo "| tool | packets/s (median) | wall s | CPU s (user+sys) | peak RSS MiB |"
echo "|---|---:|---:|---:|---:|"
for t in "${tools[@]}"; do
    awk -v t="$t" -v p="${MPPS[$t]}" -v w="${MWALL[$t]}" -v c="${MCPU[$t]}" -v m="${MRSS[$t]}" \
        'BEGIN { printf "| %s | %.0f | %.2f | %.2f | %.1f |\n", t, p, w, c, m / 1024 }'
done
