#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Configures and builds the one instrumented build that both the sanitizer
# suite (scripts/sanitize.sh) and the fuzzers (scripts/fuzz.sh) run: clang,
# every C/C++ target with ASan + UBSan and libFuzzer's coverage
# (EXFILMON_FUZZ=ON: -fsanitize=fuzzer-no-link,address,undefined; only the
# fuzz targets link libFuzzer's main()). Benchmarks are left out: neither
# script runs them, and the plain build (scripts/dev.sh) compiles them.
#   scripts/sanitized-build.sh BUILD_DIR [TARGET...]   default: every target
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=$1
shift
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
      -DEXFILMON_FUZZ=ON -DEXFILMON_TESTS=ON -DEXFILMON_BENCH=OFF >/dev/null
targets=()
for t in "$@"; do
    targets+=(--target "$t")
done
# Only the compile lines and errors; a failed build fails the script.
cmake --build "$BUILD_DIR" -j"$(nproc)" "${targets[@]}" | { grep -Ev "^\[ *[0-9]+%\] Built target" || true; }
