#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Debian package: CPack builds it from the build tree, lintian finds no
# error or warning in it (but those configs/deb/lintian-overrides explains),
# dpkg installs it into a throwaway root (dpkg --root), and the installed
# binary runs there: `exfilmon version`, `exfilmon check-config
# /etc/exfilmon/exfilmon.toml`. Also: the unit names the installed binary and
# is enabled but not started, the exfilmon user is created, the man pages
# render, the bash completion loads, the docs, copyright and changelog are in
# /usr/share/doc/exfilmon, the logrotate rule rotates, the package, binary
# and man pages carry one version, the configuration is a conffile that a
# reinstall never overwrites once edited, a removal keeps the user and
# /var/lib/exfilmon and a purge deletes them.
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
[[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" == \
    "$(printf '/etc/exfilmon/exfilmon.toml\n/etc/logrotate.d/exfilmon')" ]] ||
    fail "conffiles: $(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)"
grep -q '^ Depends: .*passwd' <<<"$info" || fail "Depends lacks passwd (useradd in postinst)"
control() { dpkg-deb --ctrl-tarfile "$deb" | tar -xO "./$1"; }
for script in postinst prerm postrm; do
    control "$script" >/dev/null || fail "no $script"
    sh -n <<<"$(control "$script")" || fail "$script: shell syntax"
done
# A stop leaves the filters counting (keep_attached): removal takes them out.
grep -q '^ *exfilmon detach' <<<"$(control prerm)" || fail "prerm does not detach"
# Enabled, never started by the package (it needs its configuration first);
# only an upgrade restarts a service that already runs.
grep -q 'deb-systemd-helper enable exfilmon.service' <<<"$(control postinst)" ||
    fail "postinst does not enable the unit"
grep -q 'systemctl --system daemon-reload' <<<"$(control postinst)" || fail "no daemon-reload"
! grep -Eq '(systemctl|deb-systemd-invoke) +(start|restart)' <<<"$(control postinst)" ||
    fail "postinst starts the service"

# lintian: no error, no warning (each deliberate one is in the package's
# overrides, with its reason).
lintian --fail-on error,warning --display-level '>=warning' "$deb" >"$work/lintian.log" 2>&1 ||
    { cat "$work/lintian.log"; fail "lintian"; }
echo "lintian: clean"

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
user_line='^exfilmon:x:[0-9]*:[0-9]*:exfilmon sensor:/var/lib/exfilmon:/usr/sbin/nologin$'
grep -q "$user_line" "$root/etc/passwd" ||
    fail "postinst did not create the exfilmon system user: $(cat "$root/etc/passwd")"
grep -q '^exfilmon:x:[0-9]*:$' "$root/etc/group" || fail "no exfilmon group: $(cat "$root/etc/group")"

bin="$root/usr/sbin/exfilmon"
[[ -x "$bin" ]] || fail "no $bin"
ver=$("$bin" version)
echo "installed: $(head -n1 <<<"$ver")"
# One version: the package's, the binary's, the man pages'.
pkg_version=$(dpkg-deb -f "$deb" Version)
grep -qx "$(sed -n 's/^project(exfilmon VERSION \([0-9.]*\).*/\1/p' "$(dirname "$0")/../../CMakeLists.txt")" \
    <<<"$pkg_version" || fail "package version $pkg_version is not the project's"
[[ $(head -n1 <<<"$ver") == "exfilmon $pkg_version" ]] || fail "version: $ver"
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
wants="$root/etc/systemd/system/multi-user.target.wants/exfilmon.service"
[[ $(readlink "$wants") == "${unit#"$root"}" ]] || fail "the unit is not enabled: no $wants"
[[ -x "$root/usr/share/exfilmon/demo.sh" ]] || fail "demo script not installed"
[[ -s "$root/usr/share/exfilmon/api-calls.py" ]] || fail "the demo's api-calls.py not installed"

# The docs: README, LICENSE, every guide the README links to, copyright in
# Debian's machine-readable format, the changelog.
doc="$root/usr/share/doc/exfilmon"
for f in README.md LICENSE $(cd "$(dirname "$0")/../../docs" && ls ./*.md); do
    [[ -s "$doc/$f" ]] || fail "$doc/$f not installed"
done
head -n1 "$doc/copyright" | grep -qx 'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' ||
    fail "copyright is not DEP-5"
grep -A2 -x 'Files: \*' "$doc/copyright" | grep -qx 'License: Apache-2.0' || fail "copyright: the tree"
grep -A2 -x 'Files: bpf/\*.c bpf/\*.h bpf/lib/\*' "$doc/copyright" |
    grep -qx 'License: GPL-2.0-only or BSD-2-Clause' || fail "copyright: the BPF programs"
zcat "$doc/changelog.gz" | head -n1 | grep -q "^exfilmon ($pkg_version) " || fail "changelog"

# The man pages: render without a warning, carry the version.
for page in man8/exfilmon.8.gz man5/exfilmon.toml.5.gz; do
    f="$root/usr/share/man/$page"
    [[ -f $f ]] || fail "no $page"
    warnings=$(MANWIDTH=80 man --warnings -l "$f" 2>&1 >/dev/null)
    [[ -z $warnings ]] || fail "$page: $warnings"
    zcat "$f" | grep -q "^\.TH .*\"exfilmon $pkg_version\"" || fail "$page: not version $pkg_version"
done

# The completion: bash-completion finds it by the command's name, and it
# completes the installed binary's subcommands.
comp="$root/usr/share/bash-completion/completions/exfilmon"
[[ -f $comp ]] || fail "no $comp"
subs=$(bash --norc --noprofile -c '
    source /usr/share/bash-completion/bash_completion
    source "$1"
    COMP_LINE="$2 "; COMP_POINT=${#COMP_LINE}; COMP_WORDS=("$2" ""); COMP_CWORD=1
    _exfilmon 2>/dev/null
    echo "${COMPREPLY[*]}"' _ "$comp" "$bin")
[[ $subs == "run detach version demo check-config replay status top fleet" ]] ||
    fail "the installed completion offers: $subs"

# The logrotate rule, pointed at a directory here (and at root: the host has
# no exfilmon user), rotates a JSON-lines output and creates the next file.
rule="$root/etc/logrotate.d/exfilmon"
[[ -f $rule ]] || fail "no $rule"
mkdir -p "$work/log"
echo '{"type":"alert"}' >"$work/log/alerts.json"
sed -e "s|/var/log/exfilmon/|$work/log/|g" -e 's/create 0640 exfilmon exfilmon/create 0640 root root/' \
    -e 's/su exfilmon exfilmon/su root root/' "$rule" >"$work/logrotate.conf"
logrotate --force --state "$work/logrotate.state" "$work/logrotate.conf" ||
    fail "logrotate refused the rule"
[[ -s "$work/log/alerts.json.1" && -f "$work/log/alerts.json" && ! -s "$work/log/alerts.json" ]] ||
    fail "logrotate did not rotate alerts.json: $(ls "$work/log")"

# An edited configuration survives a reinstall (dpkg conffile), and the
# user is not created twice.
echo '# edited by the admin' >>"$root/etc/exfilmon/exfilmon.toml"
dpkg_root --force-confold -i "$deb" >"$work/dpkg2.log" 2>&1 ||
    { cat "$work/dpkg2.log"; fail "dpkg -i (again)"; }
grep -q '^# edited by the admin$' "$root/etc/exfilmon/exfilmon.toml" || fail "conffile overwritten"
[[ $(grep -c '^exfilmon:' "$root/etc/passwd") -eq 1 ]] || fail "exfilmon user twice"
dpkg --root="$root" -L exfilmon | grep -qx '/usr/sbin/exfilmon' || fail "dpkg -L"

# Remove: the user and the state stay (a reinstall carries on).
mkdir -p "$root/var/lib/exfilmon" "$root/var/log/exfilmon"
touch "$root/var/lib/exfilmon/state.bin" "$root/var/log/exfilmon/alerts.json"
dpkg_root -r exfilmon >"$work/dpkg3.log" 2>&1 || { cat "$work/dpkg3.log"; fail "dpkg -r"; }
[[ ! -e "$bin" ]] || fail "binary left after remove"
grep -q "$user_line" "$root/etc/passwd" || fail "remove deleted the exfilmon user"
[[ -f "$root/var/lib/exfilmon/state.bin" ]] || fail "remove deleted /var/lib/exfilmon"
[[ $(readlink "$root/etc/systemd/system/exfilmon.service") == /dev/null ]] ||
    fail "remove did not mask the unit (as dh_installsystemd does)"

# Purge: the user, its group, its state and logs, the unit's links go.
dpkg_root --purge exfilmon >"$work/dpkg4.log" 2>&1 ||
    { cat "$work/dpkg4.log"; fail "dpkg --purge"; }
[[ ! -e "$root/etc/exfilmon/exfilmon.toml" && ! -e "$rule" ]] || fail "conffiles left after purge"
! grep -q '^exfilmon:' "$root/etc/passwd" "$root/etc/group" || fail "purge left the exfilmon user or group"
[[ ! -e "$root/var/lib/exfilmon" && ! -e "$root/var/log/exfilmon" ]] ||
    fail "purge left /var/lib/exfilmon or /var/log/exfilmon"
[[ ! -L "$wants" && ! -L "$root/etc/systemd/system/exfilmon.service" ]] ||
    fail "purge left the unit enabled or masked"
echo "ok"
