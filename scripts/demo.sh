#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# exfilmon demo: a throwaway lab in network namespaces. A TLS API server
# (nginx, or openssl s_server without it), five ordinary clients and one
# client pulling 80 MiB over 8 parallel connections; exfilmon runs on the
# server's interface with demo thresholds and the alert is shown as it fires.
# Everything is removed at the end, also on Ctrl-C or failure.
#
# Usage: exfilmon demo        (runs this script; needs root)
#        EXFILMON=/path/to/exfilmon scripts/demo.sh
# Addresses are documentation ranges only (192.0.2.0/24, 198.51.100.0/24,
# 203.0.113.0/24).
set -euo pipefail

EXFILMON=${EXFILMON:-$(command -v exfilmon || true)}
[[ -x "$EXFILMON" ]] || { echo "demo: set EXFILMON to the exfilmon binary" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "demo: needs root (network namespaces, eBPF)" >&2; exit 2; }
for tool in ip openssl curl; do
    command -v "$tool" >/dev/null || { echo "demo: $tool is missing (apt-get install iproute2 openssl curl)" >&2; exit 2; }
done

id=$$
srv="exfdemo$id-srv" cli="exfdemo$id-cli" vs="xd$id-s" vc="xd$id-c"
dir=$(mktemp -d /tmp/exfilmon-demo.XXXXXX)
pids=()
cleanup() {
    set +e
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    ip netns del "$srv" 2>/dev/null
    ip netns del "$cli" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
step() { printf '\n== %s\n' "$*"; }

mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf

step "lab: namespaces $srv and $cli, veth $vs <-> $vc"
ip netns add "$srv"
ip netns add "$cli"
ip link add "$vs" type veth peer name "$vc"
ip link set "$vs" netns "$srv"
ip link set "$vc" netns "$cli"
ip -n "$srv" addr add 192.0.2.1/24 dev "$vs"
ip -n "$srv" addr add 203.0.113.1/24 dev "$vs"
ip -n "$srv" addr add 198.51.100.1/24 dev "$vs"
normal=(203.0.113.10 203.0.113.11 203.0.113.12 203.0.113.13 203.0.113.14)
exfil=198.51.100.66
for a in "${normal[@]}" "$exfil"; do ip -n "$cli" addr add "$a/24" dev "$vc"; done
for ns in "$srv" "$cli"; do ip -n "$ns" link set lo up; done
ip -n "$srv" link set "$vs" up
ip -n "$cli" link set "$vc" up
ip -n "$cli" route add 192.0.2.0/24 dev "$vc"

step "TLS API server on 192.0.2.1:443 (api.example.com)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" -subj /CN=api.example.com \
    -addext subjectAltName=DNS:api.example.com 2>/dev/null
mkdir -p "$dir/www/v1" "$dir/www/download" "$dir/nginx"
printf '{"items":[%s{"id":0}]}\n' "$(for i in $(seq 1 40); do printf '{"id":%d,"name":"item-%d"},' "$i" "$i"; done)" \
    >"$dir/www/v1/items"
head -c $((10 << 20)) /dev/urandom >"$dir/www/download/report.bin"
if command -v nginx >/dev/null; then
    cat >"$dir/nginx/nginx.conf" <<NGINX
daemon off;
master_process off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $dir/nginx; proxy_temp_path $dir/nginx;
    fastcgi_temp_path $dir/nginx; uwsgi_temp_path $dir/nginx; scgi_temp_path $dir/nginx;
    server {
        listen 443 ssl;
        ssl_certificate $dir/cert.pem;
        ssl_certificate_key $dir/key.pem;
        root $dir/www;
    }
}
NGINX
    ip netns exec "$srv" nginx -p "$dir/nginx" -c "$dir/nginx/nginx.conf" -e "$dir/nginx/error.log" &
    pids+=($!)
else
    (cd "$dir/www" && exec ip netns exec "$srv" openssl s_server -quiet -accept 443 \
        -cert "$dir/cert.pem" -key "$dir/key.pem" -WWW) &
    pids+=($!)
fi
for _ in $(seq 1 100); do
    ip netns exec "$srv" ss -Hltn 'sport = :443' | grep -q . && break
    sleep 0.1
done

step "exfilmon on $vs (demo thresholds: 50 MiB per client per minute, 6 parallel connections)"
cat >"$dir/exfilmon.toml" <<TOML
[bpf]
pin = false
[daemon]
report_interval = "1h"
harvest_interval = "500ms"
[detect]
interval = "1s"
realert = "1m"
resolve_after = "10s"
[[rules]]
name = "client-bulk-pull"
entity = "client"
metric = "bytes_out"
window = "1m"
threshold = "50MiB"
severity = "critical"
[[rules]]
name = "client-parallel-connections"
entity = "client"
metric = "concurrent_flows"
window = "1m"
threshold = 6
[[outputs]]
type = "json"
path = "$dir/alerts.json"
TOML
ip netns exec "$srv" "$EXFILMON" run --config "$dir/exfilmon.toml" --interface "$vs" \
    >"$dir/exfilmon.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q "attached to" "$dir/exfilmon.log" && break; sleep 0.1; done
grep "attached to" "$dir/exfilmon.log" || { cat "$dir/exfilmon.log"; exit 1; }

curl_from() {  # SOURCE [OPTION...] URL... : fetch over TLS from a source address, bodies discarded
    local src=$1 args=()
    shift
    for a in "$@"; do
        [[ $a == https://* ]] && args+=(-o /dev/null)
        args+=("$a")
    done
    ip netns exec "$cli" curl -s --no-progress-meter --fail --cacert "$dir/cert.pem" --interface "$src" \
        --resolve api.example.com:443:192.0.2.1 "${args[@]}"
}

step "ordinary clients: small JSON requests from ${#normal[@]} addresses"
for a in "${normal[@]}"; do
    curl_from "$a" https://api.example.com/v1/items https://api.example.com/v1/items https://api.example.com/v1/items
done
echo "done; no alert expected"

step "$exfil pulls 8 x 10 MiB over 8 parallel connections"
urls=()
for _ in $(seq 1 8); do urls+=(https://api.example.com/download/report.bin); done
start=$(date +%s)
curl_from "$exfil" --parallel --parallel-max 8 "${urls[@]}"
echo "transfer done after $(($(date +%s) - start)) s; waiting for the alert"

for _ in $(seq 1 600); do
    [[ -s "$dir/alerts.json" ]] && grep -q '"action":"open"' "$dir/alerts.json" && break
    sleep 0.1
done
grep -q '"action":"open"' "$dir/alerts.json" 2>/dev/null || {
    echo "demo: no alert within 60 s; exfilmon's log:" >&2
    cat "$dir/exfilmon.log" >&2
    exit 1
}
sleep 1.5  # let the other rule's alert land too
step "alerts (JSON output; the same goes to syslog with [[outputs]] type = \"syslog\")"
cat "$dir/alerts.json"
step "exfilmon's log"
grep -E "alert|attached" "$dir/exfilmon.log" || true
echo
echo "demo: done after $(($(date +%s) - start)) s; cleaning up"
