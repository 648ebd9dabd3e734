#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Request counting over QUIC (docs/datapath.md, "Requests"): Debian's ngtcp2
# example server (gtlsserver) allows one request stream at a time, so its
# example client (gtlsclient -n N) makes N sequential HTTP/3 requests on one
# connection; tcpdump records the server's side, and `exfilmon replay`
# counts the requests of that capture with several [bpf] request_min_bytes
# values. The truth is N (the client's closed streams are checked).
#
# Usage: bench/quic_requests.sh [--requests "100 100 50"] [--sizes "3000 30000 100000"]
#                               [--min-bytes "46 48 50 52 56"]
# (the i-th request count goes with the i-th response size). Needs root, a
# built tree ($BUILD_DIR or build), gtlsserver/gtlsclient (ngtcp2-server,
# ngtcp2-client), tcpdump, openssl.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
EXFILMON=${EXFILMON:-${BUILD_DIR:-$ROOT/build}/userspace/exfilmon}
REQUESTS="100 100 50"
SIZES="3000 30000 100000"
MIN_BYTES="46 48 50 52 56"
while (($#)); do
    case $1 in
    --requests) REQUESTS=$2; shift 2 ;;
    --sizes) SIZES=$2; shift 2 ;;
    --min-bytes) MIN_BYTES=$2; shift 2 ;;
    *) echo "usage: $0 [--requests LIST] [--sizes LIST] [--min-bytes LIST]" >&2; exit 2 ;;
    esac
done
[[ $(id -u) == 0 ]] || { echo "quic_requests.sh: needs root" >&2; exit 2; }
for tool in gtlsserver gtlsclient tcpdump openssl; do
    command -v "$tool" > /dev/null || { echo "quic_requests.sh: $tool missing" >&2; exit 2; }
done
[[ -x $EXFILMON ]] || { echo "quic_requests.sh: $EXFILMON missing: build the tree" >&2; exit 2; }

TAG=qr$$
SRV=$TAG-s CLI=$TAG-c
WORK=$(mktemp -d /tmp/exf-quic-requests.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2> /dev/null || true; done
    wait 2> /dev/null || true
    ip netns del "$SRV" 2> /dev/null || true
    ip netns del "$CLI" 2> /dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# The bench lab's routed pair (lab.sh), UDP segmentation off: tcpdump sees
# wire datagrams.
# shellcheck source=lab.sh
. "$ROOT/bench/lab.sh"
lab_routed "$CLI" "$SRV" "$TAG-b" "$TAG-a"
ip netns exec "$SRV" ethtool -K "$TAG-a" tx-udp-segmentation off > /dev/null
ip netns exec "$CLI" ethtool -K "$TAG-b" tx-udp-segmentation off > /dev/null

HOST=files.example.test
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
    -days 1 -subj "/CN=$HOST" -addext "subjectAltName=DNS:$HOST" 2> /dev/null
# gtlsclient sends the <HOST> argument as SNI only when it is a name.
echo "$LAB_SRV_ADDR $HOST" > "$WORK/hosts"
mkdir "$WORK/www"

# One connection of $1 sequential requests for a $2-byte file, captured.
run_case() {
    local n=$1 size=$2 pcap=$WORK/$1-$2.pcap
    head -c "$size" /dev/urandom > "$WORK/www/f.bin"
    ip netns exec "$SRV" gtlsserver -q -d "$WORK/www" --max-streams-bidi=1 "$LAB_SRV_ADDR" 443 \
        "$WORK/key.pem" "$WORK/cert.pem" > "$WORK/server.log" 2>&1 &
    local server=$!
    ip netns exec "$SRV" tcpdump --immediate-mode -B 16384 -i "$TAG-a" -w "$pcap" udp \
        > "$WORK/tcpdump.log" 2>&1 &
    local capture=$!
    PIDS+=("$server" "$capture")
    sleep 1.5
    unshare -m sh -c "mount --bind $WORK/hosts /etc/hosts && ip netns exec $CLI gtlsclient \
        --exit-on-all-streams-close --no-quic-dump --no-http-dump -n $n $HOST 443 \
        https://$HOST/f.bin" > "$WORK/client.log" 2>&1
    sleep 1
    kill "$capture" "$server"
    wait "$capture" "$server" 2> /dev/null || true
    local closed dropped
    closed=$(grep -c 'HTTP stream .* closed' "$WORK/client.log" || true)
    dropped=$(sed -n 's/^\([0-9]*\) packets dropped by kernel$/\1/p' "$WORK/tcpdump.log")
    if [[ $closed != "$n" || $dropped != 0 ]]; then
        echo "quic_requests.sh: $n x $size B: $closed streams closed, tcpdump dropped $dropped" >&2
        return 1
    fi
}

# A busy machine can make tcpdump drop packets: such a capture is not a
# truth, and the case runs again (at most three times).
run_case_complete() {
    for _ in 1 2 3; do
        run_case "$@" && return 0
    done
    exit 1
}

counted() {  # $1 pcap, $2 request_min_bytes
    printf '[bpf]\nrequest_min_bytes = %s\n' "$2" > "$WORK/config.toml"
    "$EXFILMON" replay -c "$WORK/config.toml" --format json "$1" 2> /dev/null |
        sed -n 's/.*"type":"client".*"requests":\([0-9]*\).*/\1/p'
}

read -ra ns <<< "$REQUESTS"
read -ra sizes <<< "$SIZES"
((${#ns[@]} == ${#sizes[@]})) || { echo "quic_requests.sh: one size per request count" >&2; exit 2; }
echo "# $(uname -r); $(nproc) CPUs; $(date -u +%FT%TZ); gtlsserver/gtlsclient $(dpkg-query -W -f '${Version}' ngtcp2-client 2> /dev/null || echo '?')"
header="| requests (truth) | response bytes |"
rule="|---:|---:|"
for m in $MIN_BYTES; do header+=" counted, min $m B |"; rule+="---:|"; done
echo "$header"
echo "$rule"
for i in "${!ns[@]}"; do
    run_case_complete "${ns[i]}" "${sizes[i]}"
    line="| ${ns[i]} | ${sizes[i]} |"
    for m in $MIN_BYTES; do line+=" $(counted "$WORK/${ns[i]}-${sizes[i]}.pcap" "$m") |"; done
    echo "$line"
done
