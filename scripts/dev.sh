#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The two quick-start entry points (see README.md):
#   scripts/dev.sh run   [exfilmon run options]   install, build, run on the default route
#   scripts/dev.sh test                           install, build, run the whole test suite
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}

build() {
    scripts/install-deps.sh
    cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo
    cmake --build "$BUILD_DIR" -j"$(nproc)"
}

case "${1:-}" in
run)
    shift
    build
    exec "$BUILD_DIR"/userspace/exfilmon run "$@"
    ;;
test)
    shift
    build
    # e2e tests build network namespaces: ctest runs tests one at a time.
    exec ctest --test-dir "$BUILD_DIR" --output-on-failure "$@"
    ;;
*)
    echo "usage: scripts/dev.sh run|test [args]" >&2
    exit 2
    ;;
esac
