#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmark 5 (part): time from threshold crossing to alert emitted, live.
#
# A lab of two network namespaces over a veth (offloads off so tcpdump sees
# wire packets); exfilmon runs on the server side with one rule, client
# bytes_out >= 40 MiB over 1 minute, and a JSON output. One client downloads
# 100 MiB at a limited rate (--limit-rate, default 20 MB/s) so the crossing
# happens mid-transfer. tcpdump on the server's interface gives the crossing
# time: the packet at which the client's server-to-client IP bytes reach the
# threshold. The latency is the alert's @timestamp minus that packet's time
# (both wall clock, same host). Repeated RUNS times; prints each and the median.
#
# Usage: bench/alert_latency.sh [RUNS] [RATE]      (root; EXFILMON=path/to/exfilmon)
set -euo pipefail
# shellcheck source=result.sh
. "$(dirname "$0")/result.sh"
result_start "$0" "$@"
RUNS=${1:-5}
RATE=${2:-20M}
EXFILMON=${EXFILMON:-$(dirname "$0")/../build/userspace/exfilmon}
[[ -x "$EXFILMON" ]] || { echo "set EXFILMON to the exfilmon binary" >&2; exit 2; }
THRESHOLD=$((40 << 20))

one_run() {
    local id=$$-$1 dir srv cli vs vc
    srv="exfbl$id-s" cli="exfbl$id-c" vs="xbl$1s$$" vc="xbl$1c$$"
    vs=${vs:0:15} vc=${vc:0:15}
    dir=$(mktemp -d /tmp/exf-latency.XXXXXX)
    local pids=()
    # shellcheck disable=SC2064
    trap "kill \${pids[*]} 2>/dev/null; for n in $srv $cli; do ip netns pids \$n 2>/dev/null | xargs -r kill; done; sleep 0.5; ip netns del $srv 2>/dev/null; ip netns del $cli 2>/dev/null; rm -rf $dir" RETURN
    ip netns add "$srv"
    ip netns add "$cli"
    ip link add "$vs" type veth peer name "$vc"
    ip link set "$vs" netns "$srv"
    ip link set "$vc" netns "$cli"
    ip -n "$srv" addr add 192.0.2.1/24 dev "$vs"
    ip -n "$cli" addr add 192.0.2.10/24 dev "$vc"
    for ns in "$srv" "$cli"; do ip -n "$ns" link set lo up; done
    ip -n "$srv" link set "$vs" up
    ip -n "$cli" link set "$vc" up
    ip netns exec "$srv" ethtool -K "$vs" tso off gso off gro off >/dev/null 2>&1
    ip netns exec "$cli" ethtool -K "$vc" tso off gso off gro off >/dev/null 2>&1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" -subj /CN=api.example.com 2>/dev/null
    mkdir -p "$dir/www"
    head -c $((100 << 20)) /dev/urandom >"$dir/www/big.bin"
    (cd "$dir/www" && exec ip netns exec "$srv" openssl s_server -quiet -accept 443 \
        -cert "$dir/cert.pem" -key "$dir/key.pem" -WWW) &
    pids+=($!)
    cat >"$dir/exfilmon.toml" <<TOML
[bpf]
pin = false
[control]
socket = "$dir/control.sock"
[metrics]
enabled = false
[daemon]
report_interval = "1h"
state_dir = ""
[[rules]]
name = "bulk"
entity = "client"
metric = "bytes_out"
window = "1m"
threshold = $THRESHOLD
[[outputs]]
type = "json"
path = "$dir/alerts.json"
TOML
    ip netns exec "$srv" "$EXFILMON" run --config "$dir/exfilmon.toml" --interface "$vs" \
        >"$dir/exfilmon.log" 2>&1 &
    pids+=($!)
    ip netns exec "$srv" tcpdump -i "$vs" -s 96 -w "$dir/cap.pcap" -U --immediate-mode \
        'tcp and src host 192.0.2.1 and dst host 192.0.2.10' >/dev/null 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do
        grep -q "attached to" "$dir/exfilmon.log" && ip netns exec "$srv" ss -Hltn 'sport = :443' | grep -q . && break
        sleep 0.1
    done
    sleep 1
    ip netns exec "$cli" curl -sk --limit-rate "$RATE" -o /dev/null https://192.0.2.1/big.bin
    for _ in $(seq 1 50); do grep -q '"action":"open"' "$dir/alerts.json" 2>/dev/null && break; sleep 0.1; done
    sleep 1
    kill "${pids[2]}" 2>/dev/null; wait "${pids[2]}" 2>/dev/null || true
    local alert_ts crossing
    alert_ts=$(grep -m1 '"action":"open"' "$dir/alerts.json" | sed 's/^{"@timestamp":"\([^"]*\)".*/\1/')
    [[ -n "$alert_ts" ]] || { echo "no alert" >&2; cat "$dir/exfilmon.log" >&2; return 1; }
    # tcpdump -v prints each IPv4 packet's total length: sum until the threshold.
    crossing=$(tcpdump -tt -n -v -r "$dir/cap.pcap" 2>/dev/null |
        awk -v t="$THRESHOLD" '/^[0-9]+\.[0-9]+ IP \(/ {
            match($0, /length [0-9]+\)/); len = substr($0, RSTART + 7, RLENGTH - 8);
            sum += len; if (sum >= t) { print $1; exit } }')
    [[ -n "$crossing" ]] || { echo "threshold not crossed in the capture" >&2; return 1; }
    awk -v a="$(date -d "$alert_ts" +%s.%N)" -v c="$crossing" 'BEGIN { printf "%.3f\n", a - c }'
}

[[ $(id -u) -eq 0 ]] || { echo "needs root" >&2; exit 2; }
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
results=()
for i in $(seq 1 "$RUNS"); do
    one_run "$i" >"/tmp/exf-latency-run.$$" || exit 1
    r=$(cat "/tmp/exf-latency-run.$$")
    rm -f "/tmp/exf-latency-run.$$"
    echo "run $i: alert $r s after the crossing"
    results+=("$r")
done
summary=$(printf '%s\n' "${results[@]}" | sort -n | awk '{ v[NR] = $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
    printf "%.3f %.3f %.3f %d", m, v[1], v[NR], NR }')
read -r median min max n <<<"$summary"
echo "median $median s, min $min s, max $max s over $n runs (target <= 2 s)"
result_line alert.latency_s "$median" "$min" "$max" "$n" s "<= 2"
