#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The test suite built with AddressSanitizer and UndefinedBehaviorSanitizer
# (clang, -fno-sanitize-recover=undefined, so any undefined behaviour fails
# its test; scripts/sanitized-build.sh, the build the fuzzers run too). Needs
# root, like scripts/dev.sh test. The BPF objects are compiled by
# bpf_object()'s own clang command, without sanitizer flags.
# Without arguments it runs the unit and bpf tiers whole and the e2e tests
# tagged [sanitize]: those reach daemon code the unit and bpf tiers do not
# (tests/CMakeLists.txt says how a test is chosen). Arguments replace that
# selection and go to ctest (e.g. -L e2e for every e2e test).
#   BUILD_DIR   build directory (default build-asan)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-asan}
scripts/install-deps.sh
scripts/sanitized-build.sh "$BUILD_DIR"
# detect_leaks: the suite's processes must end without leaks too; the
# suppressions file lists the only accepted ones, each with its reason.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
(($#)) || set -- -L "^(unit|bpf|e2e-sanitize)$"
start=$(date +%s)
rc=0
ctest --test-dir "$BUILD_DIR" --output-on-failure "$@" || rc=$?
echo "sanitize: ctest exit $rc after $(( $(date +%s) - start )) s"
exit $rc
