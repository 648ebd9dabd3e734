#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# clang-tidy (checks: .clang-tidy) over userspace/'s C and C++ files, with
# the compile commands of a configured build. By default only the files this
# branch changed against its merge base with main (on main itself: the files
# its last commit changed, so a merge checks what it brought); --all checks
# every file. Any finding fails.
#   scripts/tidy.sh [--all]
#   BUILD_DIR   a configured build (default build): its compile_commands.json
#   TIDY_BASE   the branch to diff against (default: main, else origin/main)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
if [[ ! -f $BUILD_DIR/compile_commands.json ]]; then
    echo "tidy: no $BUILD_DIR/compile_commands.json: configure $BUILD_DIR first" >&2
    exit 2
fi

changed_files() {
    local ref=${TIDY_BASE:-} base
    if [[ -z $ref ]]; then
        ref=main
        git rev-parse -q --verify main >/dev/null || ref=origin/main
    fi
    base=$(git merge-base HEAD "$ref")
    if [[ $base == "$(git rev-parse HEAD)" ]]; then
        base=HEAD^
    fi
    # Headers too: clang-tidy checks one with the compile command of a
    # source file beside it.
    git diff --name-only --diff-filter=d "$base" HEAD -- \
        'userspace/*.cpp' 'userspace/*.c' 'userspace/*.h'
}

if [[ ${1:-} == --all ]]; then
    mapfile -t files < <(git ls-files 'userspace/*.cpp' 'userspace/*.c')
else
    mapfile -t files < <(changed_files)
fi
if ((${#files[@]} == 0)); then
    echo "tidy: no C or C++ file of userspace/ changed"
    exit 0
fi
echo "tidy: ${#files[@]} files"
# The compile commands may be gcc's: clang needs the two warnings
# CMakeLists.txt turns off for it (libbpf's LIBBPF_OPTS()).
printf '%s\n' "${files[@]}" | xargs -P "$(nproc)" -n 1 clang-tidy -p "$BUILD_DIR" --quiet \
    --extra-arg=-Wno-gnu-statement-expression --extra-arg=-Wno-c99-extensions
