#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Debian package: CPack builds it from the build tree, dpkg installs it
# into a throwaway root (dpkg --root), and the installed binary runs there:
# `exfilmon version`, `exfilmon check-config /etc/exfilmon/exfilmon.toml`.
# Also: the unit names the installed binary, the configuration is a conffile
# that a reinstall never overwrites once edited, and dpkg can remove it all.
# Usage: test_deb.sh BUILD_DIR   (as root: dpkg --root writes a dpkg database)
set -euo pipefail
build=$(realpath "$1")
work=$(mktemp -d /tmp/exf-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cpack --config "$build/CPackConfig.cmake" -G DEB -B "$work/out" >"$work/cpack.log" 2>&1 ||
    { cat "$work/cpack.log"; fail "cpack failed"; }
deb=$(find "$work/out" -maxdepth 1 -name 'exfilmon_*.deb' | head -n1)
[[ -f "$deb" ]] || fail "no .deb in $work/out"
echo "package: $(basename "$deb")"

info=$(dpkg-deb --info "$deb")
grep -q '^ Package: exfilmon$' <<<"$info" || fail "package name"
grep -q '^ Depends: .*libbpf1' <<<"$info" || fail "Depends lacks libbpf1: $(grep Depends <<<"$info")"
grep -q '^ Depends: .*libpcap0.8' <<<"$info" || fail "Depends lacks libpcap0.8"
[[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" == "/etc/exfilmon/exfilmon.toml" ]] ||
    fail "conffiles"
grep -q '^ Depends: .*passwd' <<<"$info" || fail "Depends lacks passwd (useradd in postinst)"
# A stop leaves the filters counting (keep_attached): removal takes them out.
prerm=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./prerm) || fail "no prerm"
grep -q '/usr/sbin/exfilmon detach' <<<"$prerm" || fail "prerm does not detach"
sh -n <<<"$prerm" || fail "prerm: shell syntax"

# A throwaway root with an empty dpkg database. Its libraries are the host's
# (the binary runs from the root with the host's loader): dependencies are
# checked above, not installed here.
root="$work/root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
# The user database the postinst adds the service user to. The root holds no
# shell: maintainer scripts run from the host (chrootless) on DPKG_ROOT.
mkdir -p "$root/etc"
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
echo 'root:*:19000:0:99999:7:::' >"$root/etc/shadow"
echo 'root:*::' >"$root/etc/gshadow"
dpkg_root() { dpkg --root="$root" --force-depends --force-not-root --force-script-chrootless "$@"; }
dpkg_root -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i"; }
grep -q '^exfilmon:x:[0-9]*:[0-9]*:exfilmon sensor:/var/lib/exfilmon:/usr/sbin/nologin$' "$root/etc/passwd" ||
    fail "postinst did not create the exfilmon system user: $(cat "$root/etc/passwd")"

bin="$root/usr/sbin/exfilmon"
[[ -x "$bin" ]] || fail "no $bin"
ver=$("$bin" version)
echo "installed: $ver"
grep -q "$(sed -n 's/^project(exfilmon VERSION \([0-9.]*\).*/\1/p' "$(dirname "$0")/../../CMakeLists.txt")" <<<"$ver" ||
    fail "version: $ver"
"$bin" check-config "$root/etc/exfilmon/exfilmon.toml" || fail "check-config of the installed file"

unit=
for u in "$root"/usr/lib/systemd/system/exfilmon.service "$root"/lib/systemd/system/exfilmon.service; do
    [[ -f "$u" ]] && unit=$u && break
done
[[ -n "$unit" ]] || fail "no systemd unit"
grep -q '^ExecStart=/usr/sbin/exfilmon run --config /etc/exfilmon/exfilmon.toml$' "$unit" ||
    fail "ExecStart in $unit: $(grep ExecStart "$unit")"
grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$unit" || fail "ExecReload"
grep -q '^User=exfilmon$' "$unit" || fail "the unit does not run as the exfilmon user"
grep -q '^AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_NET_ADMIN' "$unit" || fail "AmbientCapabilities"
[[ -f "$root/usr/share/doc/exfilmon/README.md" ]] || fail "README not installed"
[[ -x "$root/usr/share/exfilmon/demo.sh" ]] || fail "demo script not installed"

# An edited configuration survives a reinstall (dpkg conffile).
echo '# edited by the admin' >>"$root/etc/exfilmon/exfilmon.toml"
dpkg_root --force-confold -i "$deb" >"$work/dpkg2.log" 2>&1 ||
    { cat "$work/dpkg2.log"; fail "dpkg -i (again)"; }
grep -q '^# edited by the admin$' "$root/etc/exfilmon/exfilmon.toml" || fail "conffile overwritten"
dpkg --root="$root" -L exfilmon | grep -qx '/usr/sbin/exfilmon' || fail "dpkg -L"

dpkg_root --purge exfilmon >"$work/dpkg3.log" 2>&1 ||
    { cat "$work/dpkg3.log"; fail "dpkg --purge"; }
[[ ! -e "$bin" && ! -e "$root/etc/exfilmon/exfilmon.toml" ]] || fail "files left after purge"
echo "ok"
