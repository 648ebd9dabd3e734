#!/usr/bin/env bash
# The whole test suite (unit, bpf, e2e) built with AddressSanitizer and
# UndefinedBehaviorSanitizer (gcc; -fno-sanitize-recover=undefined, so any
# undefined behaviour fails its test). Needs root, like scripts/dev.sh test.
# The BPF objects are compiled by bpf_object()'s own clang command, without
# sanitizer flags. Extra arguments go to ctest (e.g. -L unit).
#   BUILD_DIR   build directory (default build-asan)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-asan}
scripts/install-deps.sh
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEXFILMON_SANITIZE=ON \
      -DEXFILMON_BENCH=OFF
cmake --build "$BUILD_DIR" -j"$(nproc)"
# detect_leaks: the suite's processes must end without leaks too; the
# suppressions file lists the only accepted ones, each with its reason.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
start=$(date +%s)
rc=0
ctest --test-dir "$BUILD_DIR" --output-on-failure "$@" || rc=$?
echo "sanitize: ctest exit $rc after $(( $(date +%s) - start )) s"
exit $rc
