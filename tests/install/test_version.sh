#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# One version: CMake's PROJECT_VERSION (passed here by tests/CMakeLists.txt)
# is what `exfilmon version` and --version print, what both man pages carry in
# their footer, and the .deb's version (CPack's configuration; the package
# test checks the built .deb too). `exfilmon version` also names the commit
# the source tree is at, the build type, and the libbpf it was built against.
# Usage: test_version.sh BUILD_DIR PROJECT_VERSION BUILD_TYPE SOURCE_DIR
set -euo pipefail
build=$(realpath "$1")
version=$2 build_type=$3 src=$4
bin=$build/userspace/exfilmon
fail() { echo "FAIL: $*" >&2; exit 1; }

out=$("$bin" version)
echo "$out"
[[ $(head -n1 <<<"$out") == "exfilmon $version" ]] || fail "exfilmon version: $(head -n1 <<<"$out")"
[[ $("$bin" --version) == "exfilmon $version" ]] || fail "exfilmon --version: $("$bin" --version)"
grep -qx "build type: $build_type" <<<"$out" || fail "no 'build type: $build_type'"
libbpf=$(pkg-config --modversion libbpf)
grep -q "^libbpf: $libbpf (built against)" <<<"$out" || fail "no 'libbpf: $libbpf (built against)'"
grep -q "^kernel: needs BTF and the BPF ring buffer" <<<"$out" || fail "no kernel features line"
if commit=$(git -C "$src" rev-parse --short=12 HEAD 2>/dev/null); then
    grep -Eq "^commit: $commit(-dirty)?$" <<<"$out" || fail "commit is not $commit"
fi

for page in exfilmon.8 exfilmon.toml.5; do
    th=$(grep '^\.TH ' "$build/docs/man/$page")
    grep -q "\"exfilmon $version\"" <<<"$th" || fail "$page: footer is not exfilmon $version: $th"
done
grep -q "^set(CPACK_PACKAGE_VERSION \"$version\")" "$build/CPackConfig.cmake" ||
    fail "CPack's version: $(grep 'CPACK_PACKAGE_VERSION ' "$build/CPackConfig.cmake")"
echo "ok: exfilmon $version everywhere"
