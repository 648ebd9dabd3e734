#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What a newcomer meets: a minimal Debian 12 (debootstrap --variant=minbase),
# the project cloned, nothing else installed, then the README's quick start
# as root: `scripts/dev.sh test` (installs, builds, runs every test), then
# `scripts/dev.sh run` on lo for a few seconds, then `exfilmon detach`.
# Catches a package missing from scripts/install-deps.sh that this machine
# happens to have. Too slow for every commit (about 20 min); run it when
# dependencies or scripts change:
#   scripts/fresh-debian-check.sh [--keep]     (as root; needs the Debian mirror)
# CI=true is passed on, so a skipped test fails there too. ../shared, when
# present, is bind-mounted read-only beside the clone, as CI has it.
set -euo pipefail
[[ $(id -u) -eq 0 ]] || { echo "fresh-debian-check: run as root" >&2; exit 2; }
keep=false
[[ "${1:-}" == "--keep" ]] && keep=true
src=$(cd "$(dirname "$0")/.." && pwd)
shared=$(dirname "$src")/shared
mirror=${MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d /var/tmp/exf-fresh.XXXXXX)
chmod 755 "$root"  # the root directory of a real system: tests run programs as nobody

cleanup() {
    # Deepest mounts first; a lazy unmount never leaves a busy tree behind.
    grep -o " $root[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" || true; done
    $keep || rm -rf --one-file-system "$root"
}
trap cleanup EXIT

command -v debootstrap >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
}
echo "fresh-debian-check: debootstrap minbase into $root"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
    { tail -n 30 "$root.debootstrap.log"; exit 1; }
rm -f "$root.debootstrap.log"
cat >"$root/etc/apt/sources.list" <<LIST
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
LIST
cp /etc/resolv.conf "$root/etc/resolv.conf"
# What the installer writes and debootstrap does not: tests bind-mount a
# namespace's own hosts file over it (ip netns exec, /etc/netns/NAME/hosts).
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
echo exf-fresh >"$root/etc/hostname"

# The root a mount point of its own, as / is on an installed system: `ip netns
# exec` makes / a slave mount and remounts /sys, which fails on a plain
# directory.
mount --bind "$root" "$root"
mount --make-private "$root"

# The committed project, as a clone would have it (no build, no untracked files).
mkdir -p "$root/work"
git -C "$src" archive --format=tar --prefix=exfilmon/ HEAD | tar -x -C "$root/work"
if [[ -d "$shared" ]]; then
    mkdir -p "$root/work/shared"
    mount --bind "$shared" "$root/work/shared"
    mount -o remount,bind,ro "$root/work/shared"
fi
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --make-rslave "$root/sys"
mount -t bpf bpf "$root/sys/fs/bpf"
mount --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs tmpfs "$root/tmp"

in_root() {
    chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 CI="${CI:-}" "$@"
}
echo "fresh-debian-check: scripts/dev.sh test"
in_root bash -c 'cd /work/exfilmon && scripts/dev.sh test'
echo "fresh-debian-check: scripts/dev.sh run --interface lo (45 s, then SIGINT)"
in_root bash -c 'cd /work/exfilmon && timeout -s INT 45 scripts/dev.sh run --interface lo' \
    >"$root/run.log" 2>&1 || rc=$?
rc=${rc:-0}
# timeout exits 124 when it had to send the signal; the daemon itself exits 0.
grep -q "attached to lo" "$root/run.log" && grep -q "stopping" "$root/run.log" ||
    { cat "$root/run.log"; echo "fresh-debian-check: FAIL: run (rc $rc)" >&2; exit 1; }
# The stop left the filter on lo counting (keep_attached): take it out.
in_root /work/exfilmon/build/userspace/exfilmon detach --interface lo ||
    { echo "fresh-debian-check: FAIL: detach" >&2; exit 1; }
echo "fresh-debian-check: OK"
