#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The bash completion (configs/completion/exfilmon.bash) in a bash with
# bash-completion loaded, driven as bash drives it: COMP_WORDS, COMP_CWORD,
# COMP_LINE and COMP_POINT set, _exfilmon called, COMPREPLY read. Against the
# real binary, and for --window against a real daemon (in a network namespace
# of its own) whose configuration names the windows.
# Usage: test_completion.sh BUILD_DIR   (as root: the daemon loads BPF)
set -euo pipefail
build=$(realpath "$1")
src=$(realpath "$(dirname "$0")/../..")
bin=$build/userspace/exfilmon
fail() { echo "FAIL: $*" >&2; exit 1; }
work=$(mktemp -d /tmp/exf-completion.XXXXXX)
ns=exf-comp-$$
daemon=
cleanup() {
    [[ -n $daemon ]] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
    ip netns del "$ns" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# The reply for a command line whose last word is being completed; "=" in
# the line (--config=FILE) is its own word, as COMP_WORDBREAKS makes it.
complete_line() {
    local line=$1
    bash --norc --noprofile -c '
        source /usr/share/bash-completion/bash_completion
        source "$1"
        [[ $(complete -p exfilmon) == "complete -F _exfilmon exfilmon" ]] || exit 3
        COMP_LINE=$2
        COMP_POINT=${#COMP_LINE}
        read -ra COMP_WORDS <<<"${COMP_LINE//=/ = }"
        [[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
        COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        _exfilmon 2>/dev/null
        printf "%s\n" "${COMPREPLY[@]}" | sort' _ "$src/configs/completion/exfilmon.bash" "$line"
}
expect() {
    local line=$1 want got
    want=$(printf '%s\n' "${@:2}" | sort)
    got=$(complete_line "$line") || fail "'$line': the completion did not load (complete -F _exfilmon exfilmon)"
    [[ $got == "$want" ]] || fail "'$line': got [$(echo $got)], want [$(echo $want)]"
    echo "ok: '$line' -> $(echo $got)"
}

expect "$bin " run detach version demo check-config replay status top fleet
expect "$bin fleet " init schema
expect "$bin fleet init -" -h --help -c --config
expect "$bin fleet -" -h --help -c --config --once
expect "$bin fleet --config $work/fleet.toml -" -h --help -c --config --once
expect "$bin r" run replay
expect "$bin -" -h --help --version
expect "$bin run -" -h --help -c --config -i --interface -v --verbose
expect "$bin top --" --help --socket --kind --window --sort --interval --once --format
expect "$bin top --kind " client subnet sni client_sni cohort host ja4 ja4_sni
expect "$bin top --kind=c" client client_sni cohort
expect "$bin top --sort " bytes_out bytes_in tls_flows requests concurrent distinct_clients distinct_subnets
expect "$bin replay --format " table json
expect "$bin replay --datapath " auto bpf user
expect "$bin demo --scenario " bulk-pull distributed
expect "$bin top -n " # a number: nothing to offer
# No daemon at that socket: the default window.
expect "$bin top --socket $work/none.sock --window " 10m

# Interfaces: those the kernel has. Other tests may add and remove interfaces
# meanwhile, so: each one offered exists or existed, and lo and the default
# route's are among them.
before=$(ls /sys/class/net)
offered=$(complete_line "$bin run --interface ")
after=$(ls /sys/class/net)
default_if=$(ip -o route show default | sed -n 's/.* dev \([^ ]*\).*/\1/p' | head -n1)
for want in lo $default_if; do
    grep -qx "$want" <<<"$offered" || fail "--interface: $want not offered: $(echo $offered)"
done
for i in $offered; do
    grep -qx "$i" <<<"$before$(printf '\n')$after" || fail "--interface: $i is no interface"
done
echo "ok: --interface -> $(echo $offered)"
grep -qx lo <<<"$(complete_line "$bin detach -i l")" || fail "detach -i l: no lo"
[[ -z $(complete_line "$bin detach -i l" | grep -v '^l') ]] || fail "detach -i l: not only l*"

# Files: the configuration, the capture.
mkdir -p "$work/files/sub"
touch "$work/files/a.toml" "$work/files/b.pcap"
expect "$bin run --config $work/files/" "$work/files/a.toml" "$work/files/b.pcap" "$work/files/sub"
expect "$bin run --config=$work/files/a" "$work/files/a.toml"
expect "$bin replay $work/files/b" "$work/files/b.pcap"
expect "$bin check-config $work/files/" "$work/files/a.toml" "$work/files/b.pcap" "$work/files/sub"

# --window: the windows of the daemon at --socket (its [aggregate] windows;
# no rules, whose windows would be added).
if [[ $(id -u) -ne 0 ]]; then
    [[ ${CI:-} == true ]] && fail "needs root (a daemon)"
    echo "SKIPPED: --window against a daemon needs root"
    exit 0
fi
cat >"$work/exfilmon.toml" <<TOML
rules = []
[bpf]
pin = false
[aggregate]
windows = ["7m", "2h"]
[daemon]
state_dir = ""
report_interval = "0s"
[control]
socket = "$work/control.sock"
[metrics]
enabled = false
[[outputs]]
type = "json"
path = "$work/alerts.json"
TOML
chmod 0600 "$work/exfilmon.toml"
ip netns add "$ns"
ip -n "$ns" link set lo up
RUNTIME_DIRECTORY=$work ip netns exec "$ns" "$bin" run --config "$work/exfilmon.toml" \
    --interface lo >"$work/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 100); do
    "$bin" status --socket "$work/control.sock" >/dev/null 2>&1 && break
    kill -0 "$daemon" 2>/dev/null || { cat "$work/daemon.log"; fail "the daemon exited"; }
    sleep 0.1
done
"$bin" status --socket "$work/control.sock" >/dev/null || { cat "$work/daemon.log"; fail "no daemon"; }
expect "$bin top --socket $work/control.sock --window " 7m 2h
expect "$bin top --socket $work/control.sock --window 2" 2h
echo "ok"
