#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark 3: live completeness under load (see bench/RESULTS.md).
#
# A synthetic TLS capture (bench/gen_capture: 1 M packets by default; TLS over
# TCP, QUIC, some DNS/HTTP/ICMP) is replayed at top speed with tcpreplay from
# one network namespace onto a veth whose peer is in a second namespace, where
# one tool at a time listens on the peer:
#
#   none       no tool: the generator's rate alone
#   ebpf       exfilmon run, eBPF backend (tc ingress/egress)
#   pcap       exfilmon run, libpcap backend ([capture] backend = "pcap")
#   softflowd  softflowd -i IF -d (NetFlow v9 export to an unused local port);
#              counts from `softflowctl statistics`
#   pmacctd    pmacctd, memory plugin aggregating by src/dst host; counts
#              from `pmacct -s -O json`. Tuned so that pmacct itself loses
#              nothing at these rates: with the defaults the memory table ran
#              out of pools ("Unable to allocate more memory pools", about half
#              of the packets lost) and with a 10 MB core-to-plugin pipe it
#              reported "Missing data detected" (2 % lost); now unlimited
#              1 MiB pools and a 100 MB pipe of 100 KB buffers. The records
#              in the core's last, unfilled buffer (up to about 1000 packets)
#              are not handed to the plugin before it is stopped, so pmacct
#              shows a few dozen packets fewer than it received.
#
# With --senders 2 the capture is split in two by host pair (tcpdump filters
# on the parity of the sum of the addresses' last bytes, so each flow stays
# whole in one half) and the halves are replayed by two tcpreplay processes
# in parallel. Offloads (TSO/GSO/GRO) are off on both ends so that no tool
# sees merged packets. IPv6 is disabled on both interfaces (no neighbour
# discovery packets of their own).
#
# For each tool and round: packets sent (tcpreplay's "Successful packets"),
# offered rate (packets / the longest sender's time), packets that reached
# the monitored interface (its rx counter), packets the tool accounted for,
# the tool's own drop counters, and the CPU time of the tool's processes
# (utime + stime from /proc/PID/stat, children included) from the start of
# the replay to SETTLE seconds (default 3) after its end, the same window for
# every tool, and over its whole life (start-up, the replay, and then until
# it has drained: its CPU time stopped growing for 1 s, at most 30 s). For the eBPF backend also the kernel time
# of its tc programs (kernel.bpf_stats_enabled=1 during the replay only; the
# previous value is restored), which is not in any process's CPU time; the
# libpcap tools' kernel-side copies (packet socket) are not in theirs either.
#
# exfilmon accounts twice: "packets" is its datapath's counter of every packet
# it parsed (comparable to softflowd's and pmacctd's counts of IP packets);
# "TLS packets" is the sum of the per-client table (TLS and QUIC flows only),
# compared with what `exfilmon replay --datapath user` of the same capture
# and configuration counts offline.
#
# Targets: the eBPF backend accounts for 100 % of the packets sent at the
# highest rate the generator reaches; its daemon's CPU time is at most a fifth
# of the cheapest libpcap peer's.
#
# Usage: bench/completeness.sh [--packets N] [--rounds R] [--senders 1|2]
#                              [--tools "none ebpf pcap softflowd pmacctd"]
#                              [--capture FILE.pcap] [--settle S]
# Defaults: 1 000 000 packets, 3 rounds, 2 senders, all tools: about 6 minutes.
# Needs root. Build dir: $BUILD_DIR (default build-tput next to
# CMakeLists.txt), targets exfilmon and gen_capture; EXFILMON and GEN_CAPTURE
# override. Installs tcpreplay, tcpdump, softflowd, pmacct, jq, bpftool,
# ethtool (Debian packages) when missing. Cleans up on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lab.sh
. "$ROOT/bench/lab.sh"
# shellcheck source=result.sh
. "$ROOT/bench/result.sh"
result_start "$0" "$@"
BUILD=${BUILD_DIR:-$ROOT/build-tput}
PACKETS=1000000
ROUNDS=3
SENDERS=2
TOOLS="none ebpf pcap softflowd pmacctd"
CAPTURE=""
SETTLE=3
usage() {
    echo "usage: $0 [--packets N] [--rounds R] [--senders 1|2]" \
        "[--tools \"none ebpf pcap softflowd pmacctd\"] [--capture FILE] [--settle S]" >&2
    exit 2
}
while (($#)); do
    case $1 in
    --packets) PACKETS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --senders) SENDERS=$2; shift 2 ;;
    --tools) TOOLS=$2; shift 2 ;;
    --capture) CAPTURE=$(realpath "$2"); shift 2 ;;
    --settle) SETTLE=$2; shift 2 ;;
    *) usage ;;
    esac
done
[[ $SENDERS == 1 || $SENDERS == 2 ]] || usage
[[ $(id -u) == 0 ]] || { echo "completeness.sh: needs root" >&2; exit 2; }

need_pkgs=()
for t in tcpreplay:tcpreplay tcpdump:tcpdump softflowd:softflowd softflowctl:softflowd \
    pmacctd:pmacct pmacct:pmacct jq:jq bpftool:bpftool ethtool:ethtool; do
    command -v "${t%%:*}" >/dev/null || need_pkgs+=("${t#*:}")
done
if ((${#need_pkgs[@]})); then
    mapfile -t need_pkgs < <(printf '%s\n' "${need_pkgs[@]}" | sort -u)
    echo "## Installing ${need_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_pkgs[@]}" >/dev/null ||
        { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_pkgs[@]}" >/dev/null; }
fi

TARGETS=()
[[ -z ${EXFILMON:-} ]] && TARGETS+=(exfilmon)
[[ -z $CAPTURE && -z ${GEN_CAPTURE:-} ]] && TARGETS+=(gen_capture)
if ((${#TARGETS[@]})); then
    echo "## Build ($BUILD, ${TARGETS[*]})"
    BUILD_LOG=$(mktemp /tmp/exf-compl-build.XXXXXX)
    if ! { cmake -S "$ROOT" -B "$BUILD" && cmake --build "$BUILD" -j2 --target "${TARGETS[@]}"; } \
        >"$BUILD_LOG" 2>&1; then
        cat "$BUILD_LOG" >&2
        rm -f "$BUILD_LOG"
        echo "completeness.sh: build failed" >&2
        exit 1
    fi
    rm -f "$BUILD_LOG"
fi
EXFILMON=${EXFILMON:-$BUILD/userspace/exfilmon}
GEN_CAPTURE=${GEN_CAPTURE:-$BUILD/bench/gen_capture}
[[ -x $EXFILMON ]] || { echo "completeness.sh: $EXFILMON not executable" >&2; exit 2; }
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
HZ=$(getconf CLK_TCK)

lab_machine
echo "exfilmon: $EXFILMON ($("$EXFILMON" version 2>/dev/null | head -1)); tree: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo ?)$(git -C "$ROOT" status --porcelain bpf userspace 2>/dev/null | grep -q . && echo ' + uncommitted changes in bpf/ or userspace/')"
echo "tcpreplay: $(tcpreplay --version 2>&1 | head -1); softflowd: $(softflowd -h 2>&1 | sed -n 's/.*softflowd version \([^ .]*\.[^ ]*\).*/\1/p' | head -1); pmacctd: $(pmacctd -V 2>&1 | head -1)"
echo "rounds: $ROUNDS, senders: $SENDERS, tools: $TOOLS"

TAG=exfcp$$
NS_G=${TAG}g NS_M=${TAG}m
IF_G=${TAG}g IF_M=${TAG}m
WORK=$(mktemp -d /tmp/exf-compl.XXXXXX)
STATS_BEFORE=$(sysctl -n kernel.bpf_stats_enabled)
TOOL_PID=""
TOOL_WAIT_PID="" # the process to wait for when it is not TOOL_PID (exfilmon under script)

cleanup() {
    set +e
    sysctl -qw kernel.bpf_stats_enabled="$STATS_BEFORE"
    [[ -n $TOOL_PID ]] && kill -TERM "$TOOL_PID" 2>/dev/null && wait "${TOOL_WAIT_PID:-$TOOL_PID}" 2>/dev/null
    lab_teardown "$NS_G" "$NS_M"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_g() { ip netns exec "$NS_G" "$@"; }
in_m() { ip netns exec "$NS_M" "$@"; }

# ---- the capture ----------------------------------------------------------------
if [[ -z $CAPTURE ]]; then
    [[ -x $GEN_CAPTURE ]] || { echo "completeness.sh: $GEN_CAPTURE not executable" >&2; exit 2; }
    CAPTURE=$WORK/capture.pcap
    echo
    echo "## Capture: $GEN_CAPTURE --out $CAPTURE --packets $PACKETS"
    "$GEN_CAPTURE" --out "$CAPTURE" --packets "$PACKETS" 2>"$WORK/gen.err" | tee "$WORK/gen.out"
    cat "$WORK/gen.err"
fi
FILES=("$CAPTURE")
if ((SENDERS == 2)); then
    # Two halves by host pair: every flow (both directions) stays in one half.
    even='((ip and ((ip[15] + ip[19]) & 1) = 0) or (ip6 and ((ip6[23] + ip6[39]) & 1) = 0))'
    tcpdump -r "$CAPTURE" -w "$WORK/half0.pcap" "$even" 2>/dev/null
    tcpdump -r "$CAPTURE" -w "$WORK/half1.pcap" "not $even" 2>/dev/null
    FILES=("$WORK/half0.pcap" "$WORK/half1.pcap")
fi

cfg() { # backend
    cat <<TOML
[capture]
backend = "$1"
[bpf]
pin = false
[control]
socket = "$WORK/control-$1.sock"
[metrics]
enabled = false
[daemon]
report_interval = "1h"
state_dir = ""
[[outputs]]
type = "json"
path = "$WORK/alerts-$1.json"
TOML
}
cfg ebpf >"$WORK/ebpf.toml"
cfg pcap >"$WORK/pcap.toml"

# What exfilmon should account for: the same capture offline, same settings
# (the halves together are the capture).
echo
echo "## Offline reference: exfilmon replay --datapath user"
"$EXFILMON" replay "$CAPTURE" -c "$WORK/ebpf.toml" --format json --datapath user \
    >"$WORK/replay.json" 2>"$WORK/replay.err" || { cat "$WORK/replay.err" >&2; exit 1; }
EXPECT_TLS=$(jq -s '[.[] | select(.type == "client") | .packets_in + .packets_out] | add // 0' "$WORK/replay.json")
EXPECT_CLIENTS=$(jq -s '[.[] | select(.type == "client")] | length' "$WORK/replay.json")
echo "TLS packets in the per-client table: $EXPECT_TLS ($EXPECT_CLIENTS clients)"

# ---- the lab ---------------------------------------------------------------------
lab_pair "$NS_G" "$NS_M" "$IF_G" "$IF_M"
for ns in "$NS_G" "$NS_M"; do
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
in_g sysctl -qw net.ipv6.conf."$IF_G".disable_ipv6=1
in_m sysctl -qw net.ipv6.conf."$IF_M".disable_ipv6=1
lab_offloads off "$NS_G" "$IF_G" "$NS_M" "$IF_M"
in_g ip link set "$IF_G" up
in_m ip link set "$IF_M" up

link_stat() { # ns if field (rx_packets, rx_dropped, tx_packets, tx_dropped)
    ip -n "$1" -s -j link show dev "$2" | jq -r ".[0].stats64.${3%%_*}.${3#*_}"
}

# CPU ticks of a process and its descendants.
cpu_ticks() {
    local pid=$1 t=0 c
    [[ -r /proc/$pid/stat ]] || { echo 0; return; }
    t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
    for c in $(pgrep -P "$pid" 2>/dev/null); do
        t=$((t + $(cpu_ticks "$c")))
    done
    echo "$t"
}

prog_ids() { # ids of the tc programs on the monitored interface
    in_m bpftool net show dev "$IF_M" -j | jq -r '.[0].tc[]?.id'
}
prog_runtime() {
    local id t=0
    for id in "$@"; do
        t=$((t + $(bpftool prog show id "$id" -j | jq -r '.run_time_ns // 0')))
    done
    echo "$t"
}

tool_start() { # tool
    local tool=$1 out=$WORK/tool.out err=$WORK/tool.err
    : >"$out"
    : >"$err"
    case $tool in
    none) TOOL_PID=""; return ;;
    ebpf | pcap)
        # On a terminal: its final client table is what tool_stop reads.
        lab_on_terminal "$out" "$err" ip netns exec "$NS_M" "$EXFILMON" run -c "$WORK/$tool.toml" \
            --interface "$IF_M"
        TOOL_PID=$LAB_CMD_PID TOOL_WAIT_PID=$LAB_TERM_PID
        local ready='attached to'
        [[ $tool == pcap ]] && ready='libpcap backend capturing'
        for _ in $(seq 600); do
            grep -qs "$ready" "$err" && break
            kill -0 "$TOOL_PID" 2>/dev/null || break
            sleep 0.1
        done
        grep -qs "$ready" "$err" || { echo "exfilmon ($tool) did not start:" >&2; cat "$err" "$out" >&2; exit 1; }
        ;;
    softflowd)
        # -B: the same 32 MiB capture buffer as exfilmon's libpcap backend.
        ip netns exec "$NS_M" softflowd -i "$IF_M" -d -c "$WORK/softflowd.ctl" \
            -p "$WORK/softflowd.pid" -n 127.0.0.1:2055 -v 9 -6 -B $((32 << 20)) >"$out" 2>"$err" &
        TOOL_PID=$!
        for _ in $(seq 100); do
            [[ -S $WORK/softflowd.ctl ]] && break
            sleep 0.1
        done
        in_m softflowctl -c "$WORK/softflowd.ctl" statistics >/dev/null ||
            { echo "softflowd did not start:" >&2; cat "$err" "$out" >&2; exit 1; }
        ;;
    pmacctd)
        cat >"$WORK/pmacctd.conf" <<EOF
daemonize: false
pcap_interface: $IF_M
plugins: memory[m]
aggregate[m]: src_host, dst_host
imt_path[m]: $WORK/pmacct.pipe
imt_mem_pools_number: 0
imt_mem_pools_size: 1048576
imt_buckets: 65537
plugin_pipe_size[m]: 102400000
plugin_buffer_size[m]: 102400
EOF
        ip netns exec "$NS_M" pmacctd -f "$WORK/pmacctd.conf" >"$out" 2>"$err" &
        TOOL_PID=$!
        for _ in $(seq 100); do
            grep -qs 'waiting for data' "$out" "$err" && break
            sleep 0.1
        done
        in_m pmacct -p "$WORK/pmacct.pipe" -s -O json >/dev/null ||
            { echo "pmacctd did not start:" >&2; cat "$err" "$out" >&2; exit 1; }
        ;;
    esac
    sleep 1
}

# Sets COUNTS: "accounted=N [tls=N clients=N] drops=..." and stops the tool.
tool_stop() { # tool
    local tool=$1 out=$WORK/tool.out err=$WORK/tool.err
    COUNTS=""
    case $tool in
    none) return ;;
    ebpf | pcap)
        kill -TERM "$TOOL_PID"
        wait "$TOOL_WAIT_PID" || true
        COUNTS=$(awk '/^client +tls_flows/ { rows = 0; sum = 0; table = 1; next }
            table && /^-- / { match($0, /packets [0-9]+/); pk = substr($0, RSTART + 8, RLENGTH - 8);
                              fr = rows; fs = sum; fp = pk; table = 0; next }
            table && NF == 7 { rows++; sum += $6 + $7 }
            END { printf "accounted=%s tls=%d clients=%d", fp, fs, fr }' "$out")
        # Events lost between the datapath and the daemon (eBPF: ring buffer full).
        COUNTS+=" rb_full=$(sed -n 's/^-- .*ring buffer full \([0-9]*\).*/\1/p' "$out" | tail -1)"
        COUNTS+=" queue_drops=$(sed -n 's/^-- .*queue drops \([0-9]*\).*/\1/p' "$out" | tail -1)"
        local d
        d=$(sed -n 's/.*capture_drops kernel \([0-9]*\) interface \([0-9]*\).*/\1+\2/p' "$err" | head -1)
        COUNTS+=" drops=${d:-0}"
        ;;
    softflowd)
        in_m softflowctl -c "$WORK/softflowd.ctl" statistics >"$WORK/sf.stats"
        in_m softflowctl -c "$WORK/softflowd.ctl" shutdown >/dev/null 2>&1 || kill -TERM "$TOOL_PID"
        wait "$TOOL_PID" || true
        COUNTS="accounted=$(sed -n 's/^Packets processed: \([0-9]*\).*/\1/p' "$WORK/sf.stats")"
        COUNTS+=" pcap_received=$(sed -n 's/^Packets received by libpcap: \([0-9]*\).*/\1/p' "$WORK/sf.stats")"
        COUNTS+=" drops=$(sed -n 's/^Packets dropped by libpcap: \([0-9]*\).*/\1/p' "$WORK/sf.stats")+$(sed -n 's/^Packets dropped by interface: \([0-9]*\).*/\1/p' "$WORK/sf.stats")"
        ;;
    pmacctd)
        in_m pmacct -p "$WORK/pmacct.pipe" -s -O json >"$WORK/pmacct.json"
        # SIGUSR1: the core process logs its libpcap received/dropped counts.
        kill -USR1 "$TOOL_PID"
        sleep 0.5
        kill -INT "$TOOL_PID"
        wait "$TOOL_PID" || true
        COUNTS="accounted=$(jq -s '[.[] | .packets] | add // 0' "$WORK/pmacct.json")"
        COUNTS+=" pcap_received=$(sed -n 's/.*received_packets=\([0-9]*\).*/\1/p' "$out" "$err" | tail -1)"
        COUNTS+=" drops=$(sed -n 's/.*dropped_packets=\([0-9]*\).*/\1/p' "$out" "$err" | tail -1)"
        COUNTS+=" pipe_warnings=$(cat "$out" "$err" | grep -c -i 'buffer\|lost\|full' || true)"
        ;;
    esac
    TOOL_PID="" TOOL_WAIT_PID=""
}

# Waits until the tool's CPU time has not grown for 1 s (it has drained what
# was queued for it), at most 30 s.
wait_drained() {
    local last now same=0
    last=$(cpu_ticks "$TOOL_PID")
    for _ in $(seq 60); do
        sleep 0.5
        now=$(cpu_ticks "$TOOL_PID")
        if ((now == last)); then
            ((++same >= 2)) && break
        else
            same=0
        fi
        last=$now
    done
}

declare -A ACC OFFERED CPUW CPUL BPFNS SENT ARRIVED TLS
LINES=()
median() { sort -g | awk '{ v[NR] = $1 } END { if (!NR) { print "nan"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m }'; }

for r in $(seq "$ROUNDS"); do
    echo
    echo "## Round $r"
    for tool in $TOOLS; do
        tool_start "$tool"
        ids=()
        if [[ $tool == ebpf ]]; then
            mapfile -t ids < <(prog_ids)
            ((${#ids[@]} == 2)) || { echo "expected 2 tc programs on $IF_M, found ${#ids[*]}" >&2; exit 1; }
            sysctl -qw kernel.bpf_stats_enabled=1
        fi
        bpf0=$( ((${#ids[@]})) && prog_runtime "${ids[@]}" || echo 0)
        cpu0=$([[ -n $TOOL_PID ]] && cpu_ticks "$TOOL_PID" || echo 0)
        rx0=$(link_stat "$NS_M" "$IF_M" rx_packets)
        rxd0=$(link_stat "$NS_M" "$IF_M" rx_dropped)
        txd0=$(link_stat "$NS_G" "$IF_G" tx_dropped)
        pids=()
        for i in "${!FILES[@]}"; do
            ip netns exec "$NS_G" tcpreplay -i "$IF_G" --topspeed --preload-pcap "${FILES[$i]}" \
                >"$WORK/tcpreplay$i.out" 2>&1 &
            pids+=($!)
        done
        for p in "${pids[@]}"; do wait "$p" || { cat "$WORK"/tcpreplay*.out >&2; exit 1; }; done
        sleep "$SETTLE"
        cpu1=$([[ -n $TOOL_PID ]] && cpu_ticks "$TOOL_PID" || echo 0)
        [[ -n $TOOL_PID ]] && wait_drained
        bpf1=$( ((${#ids[@]})) && prog_runtime "${ids[@]}" || echo 0)
        [[ $tool == ebpf ]] && sysctl -qw kernel.bpf_stats_enabled="$STATS_BEFORE"
        lifetime=$([[ -n $TOOL_PID ]] && cpu_ticks "$TOOL_PID" || echo 0)
        rx=$(($(link_stat "$NS_M" "$IF_M" rx_packets) - rx0))
        rxd=$(($(link_stat "$NS_M" "$IF_M" rx_dropped) - rxd0))
        txd=$(($(link_stat "$NS_G" "$IF_G" tx_dropped) - txd0))
        sent=0 failed=0 tmax=0
        for i in "${!FILES[@]}"; do
            f=$WORK/tcpreplay$i.out
            sent=$((sent + $(sed -n 's/^[[:space:]]*Successful packets:[[:space:]]*\([0-9]*\).*/\1/p' "$f")))
            failed=$((failed + $(sed -n 's/^[[:space:]]*Failed packets:[[:space:]]*\([0-9]*\).*/\1/p' "$f")))
            t=$(sed -n 's/^Actual: .* sent in \([0-9.]*\) seconds.*/\1/p' "$f")
            tmax=$(awk -v a="$tmax" -v b="$t" 'BEGIN { print ((b > a) ? b : a) }')
        done
        offered=$(awk -v n="$sent" -v t="$tmax" 'BEGIN { printf "%.0f", (t > 0 ? n / t : 0) }')
        tool_stop "$tool"
        acc=$(sed -n 's/.*accounted=\([0-9]*\).*/\1/p' <<<"$COUNTS")
        tls=$(sed -n 's/.* tls=\([0-9]*\).*/\1/p' <<<"$COUNTS")
        cpuw=$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')
        cpul=$(awk -v a="$lifetime" -v hz="$HZ" 'BEGIN { printf "%.2f", a / hz }')
        bpfs=$(awk -v a="$bpf0" -v b="$bpf1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
        pct=$([[ -n $acc ]] && awk -v a="$acc" -v s="$sent" 'BEGIN { printf "%.3f", 100 * a / s }' || echo "-")
        LINE="COMPLETENESS round=$r tool=$tool sent=$sent failed=$failed seconds=$tmax offered_pps=$offered arrived=$rx rx_dropped=$rxd tx_dropped=$txd $COUNTS pct_of_sent=$pct cpu_replay_s=$cpuw cpu_lifetime_s=$cpul bpf_prog_s=$bpfs loadavg=$(cut -d' ' -f1 /proc/loadavg)"
        LINES+=("$LINE")
        echo "  $LINE"
        OFFERED[$tool]+="$offered "
        SENT[$tool]+="$sent "
        ARRIVED[$tool]+="$rx "
        [[ -n $acc ]] && ACC[$tool]+="$(awk -v a="$acc" -v s="$sent" 'BEGIN { printf "%.4f", 100 * a / s }') "
        [[ -n $tls ]] && TLS[$tool]+="$tls "
        CPUW[$tool]+="$cpuw "
        CPUL[$tool]+="$cpul "
        BPFNS[$tool]+="$bpfs "
    done
done

med() { printf '%s\n' $1 | median; }
echo
echo "## Summary (medians of $ROUNDS rounds; $SENDERS sender(s); loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "exfilmon replay of the capture: $EXPECT_TLS TLS packets in the per-client table"
echo
echo "| tool | offered pps | packets sent | arrived at the interface | accounted, % of sent (min of rounds) | TLS packets in client table (min–max) | CPU s, replay + ${SETTLE} s | CPU s, whole life | tc program kernel s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for tool in $TOOLS; do
    accs=${ACC[$tool]:-}
    accmin=$([[ -n $accs ]] && printf '%s\n' $accs | sort -g | head -1 || echo "-")
    tlsr="-"
    if [[ -n ${TLS[$tool]:-} ]]; then
        tlsr="$(printf '%s\n' ${TLS[$tool]} | sort -g | head -1)–$(printf '%s\n' ${TLS[$tool]} | sort -g | tail -1)"
    fi
    echo "| $tool | $(med "${OFFERED[$tool]}") | $(med "${SENT[$tool]}") | $(med "${ARRIVED[$tool]}") | $([[ -n $accs ]] && echo "$(med "$accs") ($accmin)" || echo -) | $tlsr | $([[ $tool == none ]] && echo - || med "${CPUW[$tool]}") | $([[ $tool == none ]] && echo - || med "${CPUL[$tool]}") | $([[ $tool == ebpf ]] && med "${BPFNS[$tool]}" || echo -) |"
done

# Verdicts.
echo
if [[ " $TOOLS " == *" ebpf "* ]]; then
    all=$(printf '%s\n' ${ACC[ebpf]:-0} | awk '$1 < 100 { bad++ } END { print bad ? "MISSED" : "met" }')
    echo "VERDICT completeness: eBPF backend accounted for $(printf '%s\n' ${ACC[ebpf]:-0} | sort -g | head -1)–$(printf '%s\n' ${ACC[ebpf]:-0} | sort -g | tail -1) % of the packets sent at a median $(med "${OFFERED[ebpf]}") pps offered (target 100 % in every round): $all"
    LINES+=("$(result_line completeness.ebpf_pct_of_sent "$(med "${ACC[ebpf]:-0}")" \
        "$(printf '%s\n' ${ACC[ebpf]:-0} | sort -g | head -1)" "$(printf '%s\n' ${ACC[ebpf]:-0} | sort -g | tail -1)" \
        "$ROUNDS" % ">= 100")")
    tlsok=$(printf '%s\n' ${TLS[ebpf]:-} | awk -v e="$EXPECT_TLS" '$1 != e { bad++ } END { print bad ? "differs" : "equal" }')
    echo "VERDICT tls_table: eBPF per-client TLS packets ${TLS[ebpf]:-}against $EXPECT_TLS offline: $tlsok"
    peers=()
    for t in pcap softflowd pmacctd; do
        [[ " $TOOLS " == *" $t "* ]] && peers+=("$t $(med "${CPUW[$t]}")")
    done
    if ((${#peers[@]})); then
        cheapest=$(printf '%s\n' "${peers[@]}" | sort -k2 -g | head -1)
        d=$(med "${CPUW[ebpf]}")
        k=$(med "${BPFNS[ebpf]}")
        echo "VERDICT cpu: eBPF daemon $d CPU s against the cheapest libpcap peer (${cheapest% *}) ${cheapest#* } s:" \
            "ratio $(awk -v a="$d" -v b="${cheapest#* }" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')" \
            "(target <= 0.2): $(awk -v a="$d" -v b="${cheapest#* }" 'BEGIN { print (a <= 0.2 * b) ? "met" : "MISSED" }');" \
            "with the tc programs' kernel time ($k s) added: ratio $(awk -v a="$d" -v k="$k" -v b="${cheapest#* }" 'BEGIN { printf "%.3f", (b > 0 ? (a + k) / b : 0) }')"
        LINES+=("$(result_line completeness.ebpf_cpu_vs_cheapest_libpcap \
            "$(awk -v a="$d" -v b="${cheapest#* }" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')" - - "$ROUNDS" "" "<= 0.2")")
    fi
    if [[ " $TOOLS " == *" pcap "* ]]; then
        # Start-up, verification and idle harvests included: the whole life.
        LINES+=("$(result_line completeness.ebpf_lifetime_cpu_vs_libpcap_backend \
            "$(awk -v a="$(med "${CPUL[ebpf]}")" -v b="$(med "${CPUL[pcap]}")" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')" \
            - - "$ROUNDS" "" "< 1")")
    fi
fi
echo
printf '%s\n' "${LINES[@]}"
