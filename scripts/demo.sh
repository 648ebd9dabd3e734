#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# exfilmon demo: a throwaway lab in network namespaces, a TLS API server and
# its clients; exfilmon runs on the server's interface with demo thresholds
# and the alert is shown as it fires. Everything is removed at the end, also
# on Ctrl-C or failure. Scenarios:
#   bulk-pull (default): five ordinary clients and one client pulling 80 MiB
#     over 8 parallel connections (nginx, or openssl s_server without it);
#   distributed: 60 addresses over 15 networks (12 IPv6 /48s and three IPv4
#     /24s) call the API with one client stack (Python's http.client,
#     api-calls.py next to this script), many small streamed answers each,
#     among curl, browser-like and heavy clients; only the fingerprint
#     cohort rule (configs/exfilmon.toml's fingerprint-cohort-calls, its
#     time scaled down) fires (nginx and python3 needed).
#
# Usage: exfilmon demo [--scenario bulk-pull|distributed]   (needs root)
#        EXFILMON=/path/to/exfilmon scripts/demo.sh [--scenario NAME]
# Addresses are documentation ranges only (192.0.2.0/24, 198.51.100.0/24,
# 203.0.113.0/24, 2001:db8::/32).
set -euo pipefail

scenario=bulk-pull
while [[ $# -gt 0 ]]; do
    case $1 in
    --scenario)
        [[ $# -ge 2 ]] || { echo "demo: --scenario needs a name (bulk-pull or distributed)" >&2; exit 2; }
        scenario=$2
        shift 2
        ;;
    *) echo "demo: unknown argument '$1' (usage: demo.sh [--scenario bulk-pull|distributed])" >&2; exit 2 ;;
    esac
done
case $scenario in
bulk-pull | distributed) ;;
*) echo "demo: unknown scenario '$scenario' (bulk-pull or distributed)" >&2; exit 2 ;;
esac
here=$(dirname "$(readlink -f "$0")")
echo_module=/usr/lib/nginx/modules/ngx_http_echo_module.so

EXFILMON=${EXFILMON:-$(command -v exfilmon || true)}
[[ -x "$EXFILMON" ]] || { echo "demo: set EXFILMON to the exfilmon binary" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "demo: needs root (network namespaces, eBPF)" >&2; exit 2; }
for tool in ip openssl curl; do
    command -v "$tool" >/dev/null || { echo "demo: $tool is missing (apt-get install iproute2 openssl curl)" >&2; exit 2; }
done
if [[ $scenario == distributed ]]; then
    for tool in nginx python3; do
        command -v "$tool" >/dev/null || { echo "demo: the distributed scenario needs $tool (apt-get install nginx-light python3)" >&2; exit 2; }
    done
    [[ -f $echo_module ]] || { echo "demo: the distributed scenario needs $echo_module (apt-get install libnginx-mod-http-echo)" >&2; exit 2; }
    [[ -f $here/api-calls.py ]] || { echo "demo: $here/api-calls.py is missing" >&2; exit 2; }
fi

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
if [[ $scenario == distributed ]]; then
    # The group: four addresses in each IPv4 /24, four /64s in each of
    # twelve /48s; honest scripts with the same stack; browser-like clients
    # and a heavy one.
    group=()
    for i in 40 41 42 43; do group+=(192.0.2.$i 198.51.100.$i 203.0.113.$i); done
    for n in 10 11 12 13 14 15 16 17 18 19 1a 1b; do
        for c in 1 2 3 4; do group+=("2001:db8:$n:$c::10"); done
    done
    scripts=(192.0.2.30 2001:db8:60:1::10)
    browsers=(2001:db8:50:1::10 2001:db8:51:1::10)
    heavy=198.51.100.9
    ip -n "$srv" addr add 2001:db8::1/32 dev "$vs" nodad
    for a in "${group[@]}" "${scripts[@]}" "${browsers[@]}" "$heavy"; do
        if [[ $a == *:* ]]; then
            ip -n "$cli" addr add "$a/32" dev "$vc" nodad
        else
            ip -n "$cli" addr add "$a/24" dev "$vc"
        fi
    done
fi
for ns in "$srv" "$cli"; do ip -n "$ns" link set lo up; done
ip -n "$srv" link set "$vs" up
ip -n "$cli" link set "$vc" up
ip -n "$cli" route add 192.0.2.0/24 dev "$vc" 2>/dev/null || true

step "TLS API server on 192.0.2.1:443 (api.example.com)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" -subj /CN=api.example.com \
    -addext subjectAltName=DNS:api.example.com 2>/dev/null
mkdir -p "$dir/www/v1" "$dir/www/download" "$dir/nginx"
printf '{"items":[%s{"id":0}]}\n' "$(for i in $(seq 1 40); do printf '{"id":%d,"name":"item-%d"},' "$i" "$i"; done)" \
    >"$dir/www/v1/items"
head -c $((10 << 20)) /dev/urandom >"$dir/www/download/report.bin"
# distributed: /v1/stream answers like a model's streamed text, eight
# server-sent events of about 400 bytes, each flushed (one HTTP/1.1 chunk).
load_module="" stream_location="" listen6="" http2=""
if [[ $scenario == distributed ]]; then
    load_module="load_module $echo_module;"
    words=(model answer token stream vector the of api delta result)
    stream_location="location = /v1/stream { default_type text/event-stream;"
    for e in 1 2 3 4 5 6 7 8; do
        text=""
        for ((w = e; ${#text} < 380; w = (w * 7 + 3) % 97)); do text+="${words[w % 10]} "; done
        stream_location+=" echo -n \"data: {\\\"delta\\\":\\\"${text:0:380}\\\"}\\n\\n\"; echo_flush;"
    done
    stream_location+=" }"
    listen6="listen [::]:443 ssl http2;"
    http2=" http2"
fi
if command -v nginx >/dev/null; then
    cat >"$dir/nginx/nginx.conf" <<NGINX
$load_module
daemon off;
master_process off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log;
events { worker_connections 256; }
http {
    access_log off;
    keepalive_requests 10000;
    client_body_temp_path $dir/nginx; proxy_temp_path $dir/nginx;
    fastcgi_temp_path $dir/nginx; uwsgi_temp_path $dir/nginx; scgi_temp_path $dir/nginx;
    server {
        listen 443 ssl$http2;
        $listen6
        ssl_certificate $dir/cert.pem;
        ssl_certificate_key $dir/key.pem;
        root $dir/www;
        $stream_location
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

if [[ $scenario == bulk-pull ]]; then
    rules_note="50 MiB per client per minute, 6 parallel connections"
    rules='[[rules]]
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
threshold = 6'
    detect='interval = "1s"
realert = "1m"'
else
    # configs/exfilmon.toml's client and subnet byte and fan-out rules,
    # bytes / 64, and its fingerprint cohort rule over 2s (1h shipped),
    # learning for 6s (a day), its floor above the busiest 2s of the honest
    # cohorts that burst (a round of curl or browser-like calls: 15).
    rules_note="32 MiB per client, 128 MiB per subnet, a fingerprint x API host cohort at 10 x its learned calls"
    rules='[[rules]]
name = "client-bulk-pull"
entity = "client"
metric = "bytes_out"
window = "10m"
threshold = "32MiB"
severity = "critical"
[[rules]]
name = "client-parallel-connections"
entity = "client"
metric = "concurrent_flows"
window = "1m"
threshold = 64
[[rules]]
name = "subnet-bulk-pull"
entity = "subnet"
metric = "bytes_out"
window = "10m"
threshold = "128MiB"
severity = "critical"
[[rules]]
name = "fingerprint-cohort-calls"
entity = "ja4_sni"
metric = "requests"
window = "2s"
baseline = { factor = 10.0, floor = 100, learn = "6s" }
severity = "warning"'
    detect='interval = "200ms"
realert = "1s"'
fi
step "exfilmon on $vs (demo thresholds: $rules_note)"
cat >"$dir/exfilmon.toml" <<TOML
[bpf]
pin = false
[daemon]
report_interval = "1h"
harvest_interval = "$([[ $scenario == bulk-pull ]] && echo 500ms || echo 200ms)"
# Nothing of an installed exfilmon's: no state file, a socket of its own.
state_dir = ""
[control]
socket = "$dir/control.sock"
[metrics]
enabled = false
[detect]
$detect
resolve_after = "10s"
$rules
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
    local src=$1 args=() server=192.0.2.1
    shift
    [[ $src == *:* ]] && server=2001:db8::1
    for a in "$@"; do
        [[ $a == https://* ]] && args+=(-o /dev/null)
        args+=("$a")
    done
    ip netns exec "$cli" curl -s --no-progress-meter --fail --cacert "$dir/cert.pem" --interface "$src" \
        --resolve "api.example.com:443:$server" "${args[@]}"
}

# Waits up to 60 s for the JSON output's first "open" alert of rule $1 (any
# rule when empty).
wait_for_alert() {
    for _ in $(seq 1 600); do
        [[ -s "$dir/alerts.json" ]] && grep '"action":"open"' "$dir/alerts.json" | grep -q "\"name\":\"$1" && return 0
        sleep 0.1
    done
    echo "demo: no alert within 60 s; exfilmon's log:" >&2
    cat "$dir/exfilmon.log" >&2
    exit 1
}

run_bulk_pull() {
    step "ordinary clients: small JSON requests from ${#normal[@]} addresses"
    for a in "${normal[@]}"; do
        curl_from "$a" https://api.example.com/v1/items https://api.example.com/v1/items https://api.example.com/v1/items
    done
    echo "done; no alert expected"

    step "$exfil pulls 8 x 10 MiB over 8 parallel connections"
    local urls=()
    for _ in $(seq 1 8); do urls+=(https://api.example.com/download/report.bin); done
    start=$(date +%s)
    curl_from "$exfil" --parallel --parallel-max 8 "${urls[@]}"
    echo "transfer done after $(($(date +%s) - start)) s; waiting for the alert"
    wait_for_alert ""
    sleep 1.5  # let the other rule's alert land too
}

# Python's http.client from the given addresses (api-calls.py): REQUESTS
# INTERVAL SOURCE... [OPTION...]. Run it in the background (&): it execs, so that $! is
# python itself and cleanup's kill reaches it (background jobs of a script
# ignore Ctrl-C's SIGINT).
api_calls() {
    local requests=$1 interval=$2 args=()
    shift 2
    while [[ $# -gt 0 && $1 != --* ]]; do args+=(--source "$1"); shift; done
    args+=("$@")
    exec ip netns exec "$cli" python3 "$here/api-calls.py" --server4 192.0.2.1 --server6 2001:db8::1 \
        --cafile "$dir/cert.pem" --path /v1/stream --requests "$requests" --interval "$interval" "${args[@]}"
}

ordinary_round() {  # curl clients and browser-like ones (curl with Chrome's ciphers, groups, h2)
    local a
    for a in "${normal[@]}"; do
        curl_from "$a" --http1.1 https://api.example.com/v1/items https://api.example.com/v1/stream https://api.example.com/v1/items
    done
    for a in "${browsers[@]}"; do
        curl_from "$a" --http2 --curves X25519:P-256:P-384 \
            --ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA:AES256-SHA \
            $(for _ in 1 2 3 4 5 6; do echo https://api.example.com/v1/items; done)
    done
}

run_distributed() {
    step "honest scripts (${scripts[*]}): Python's http.client, 4 calls a second each"
    api_calls 44 0.25 "${scripts[@]}" --first-calls-file "$dir/scripts.first" >"$dir/scripts.out" &
    pids+=($!)
    local honest=$!
    for _ in $(seq 1 300); do [[ -s $dir/scripts.first ]] && break; sleep 0.1; done
    [[ -s $dir/scripts.first ]] || { echo "demo: the honest scripts made no call:" >&2; cat "$dir/scripts.out" >&2; exit 1; }
    local scripts_ms=$((${EPOCHREALTIME/./} / 1000))
    step "ordinary clients: curl from ${#normal[@]} addresses, a browser-like stack from ${#browsers[@]}"
    ordinary_round
    # The cohort rule learns the scripts' level for 6 s before it may fire.
    local wait_ms=$((scripts_ms + 7500 - ${EPOCHREALTIME/./} / 1000))
    ((wait_ms > 0)) && sleep "$((wait_ms / 1000)).$(printf %03d $((wait_ms % 1000)))"

    step "the group: ${#group[@]} addresses over 15 networks, 30 streamed calls each over keep-alive; meanwhile $heavy downloads 2 x 10 MiB"
    start=$(date +%s)
    api_calls 30 0.1 "${group[@]}" >"$dir/group.out" &
    local g=$!
    pids+=($g)
    ordinary_round
    curl_from "$heavy" https://api.example.com/download/report.bin https://api.example.com/download/report.bin
    wait "$g" || { echo "demo: the group's calls failed:" >&2; cat "$dir/group.out" >&2; exit 1; }
    echo "group done: $(grep -c '"ok": 30' "$dir/group.out") members made 30 calls each"
    wait_for_alert fingerprint-cohort-calls
    wait "$honest" || true
    sleep 1.5  # any other alert would be out by now
    step "fingerprint cohorts (exfilmon top --kind ja4_sni)"
    "$EXFILMON" top --socket "$dir/control.sock" --kind ja4_sni --window 10m --once -n 5 || true
}

"run_${scenario//-/_}"
step "alerts (JSON output; the same goes to syslog with [[outputs]] type = \"syslog\")"
cat "$dir/alerts.json"
step "exfilmon's log"
grep -E "alert|attached" "$dir/exfilmon.log" || true
echo
echo "demo: done after $(($(date +%s) - start)) s; cleaning up"
