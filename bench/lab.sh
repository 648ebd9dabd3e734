# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# The lab the live benchmarks share (bpf_cost.sh, throughput.sh,
# completeness.sh): two network namespaces joined by a veth pair, and the
# machine facts each report starts with. Sourced, not run; it only defines
# functions. Names are the caller's, unique per run (they carry its PID).

# The "## Machine" lines of a report.
lab_machine() {
    echo "## Machine"
    echo "date: $(date -u)"
    echo "nproc: $(nproc); kernel: $(uname -r); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# lab_pair NS_A NS_B IF_A IF_B: the namespaces, the veth between them (IF_A in
# NS_A, IF_B in NS_B), loopback up in both. The veth stays down.
lab_pair() {
    ip netns add "$1"
    ip netns add "$2"
    ip link add "$3" netns "$1" type veth peer name "$4" netns "$2"
    ip -n "$1" link set lo up
    ip -n "$2" link set lo up
}

# lab_routed NS_C NS_S IF_C IF_S: a pair as above with the client at
# 192.0.2.1/24 and the server at 198.51.100.1/24 (documentation addresses),
# each routing the other's network over the veth, links up.
LAB_CLI_ADDR=192.0.2.1
LAB_SRV_ADDR=198.51.100.1
lab_routed() {
    lab_pair "$@"
    ip -n "$1" addr add $LAB_CLI_ADDR/24 dev "$3"
    ip -n "$2" addr add $LAB_SRV_ADDR/24 dev "$4"
    ip -n "$1" link set "$3" up
    ip -n "$2" link set "$4" up
    ip -n "$1" route add 198.51.100.0/24 dev "$3"
    ip -n "$2" route add 192.0.2.0/24 dev "$4"
}

# lab_offloads on|off NS IF [NS IF]...: TSO, GSO and GRO on or off. Off also
# sets gso_max_segs 1, so that a sending TCP builds one-segment skbs: with GSO
# off it still hands 64 KB GSO skbs to the stack, segmented only after the tc
# egress hook.
lab_offloads() {
    local v=$1 segs=65535
    shift
    [[ $v == off ]] && segs=1
    while (($# >= 2)); do
        ip netns exec "$1" ethtool -K "$2" tso "$v" gso "$v" gro "$v" >/dev/null
        ip -n "$1" link set dev "$2" gso_max_segs $segs
        shift 2
    done
}

# lab_on_terminal OUT ERR CMD...: starts CMD in the background with its stdout
# on a pseudo-terminal (script(1)), copied into OUT without \r, and its stderr
# into ERR: `exfilmon run` prints its client tables only to a terminal. Sets
# LAB_TERM_PID (script: wait for it, it ends when CMD ends) and LAB_CMD_PID
# (CMD itself, to signal and to measure; CMD may exec, as ip netns exec does).
lab_on_terminal() {
    local out=$1 err=$2 cmd
    shift 2
    printf -v cmd '%q ' "$@"
    script -qefc "stty -opost; exec $cmd 2>$(printf '%q' "$err")" /dev/null </dev/null >"$out" &
    LAB_TERM_PID=$!
    LAB_CMD_PID=""
    local _
    for _ in $(seq 100); do
        LAB_CMD_PID=$(pgrep -P "$LAB_TERM_PID" | head -1) && [[ -n $LAB_CMD_PID ]] && return 0
        sleep 0.05
    done
    echo "lab_on_terminal: $1 did not start" >&2
    return 1
}

# lab_teardown NS...: stops what still runs in the namespaces (TERM, then
# KILL) and deletes them. Never fails, for EXIT traps.
lab_teardown() {
    local ns
    for ns in "$@"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -TERM 2>/dev/null
    done
    sleep 0.3
    for ns in "$@"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
        ip netns del "$ns" 2>/dev/null
    done
    return 0
}
