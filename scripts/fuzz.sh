#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer targets (tests/fuzz, clang with ASan + UBSan:
# scripts/sanitized-build.sh) in build-fuzz and runs each for SECONDS
# (default 60) from a copy of its seed corpus (tests/fuzz/corpus/<target>).
# Fails if any target finds a crash, a leak, undefined behaviour or a broken
# invariant; the input that did it is left in build-fuzz/fuzz-run/<target>/
# (crash-*, leak-*, timeout-*, oom-*).
#   scripts/fuzz.sh [SECONDS] [TARGET...]    e.g. scripts/fuzz.sh 600 config
#   BUILD_DIR     build directory (default build-fuzz)
#   FUZZ_ARGS     extra libFuzzer flags (e.g. "-runs=10000000 -max_total_time=0")
#   FUZZ_JOBS     targets run at once (default: CPUs / FUZZ_WORKERS)
#   FUZZ_WORKERS  processes per target (default 1), sharing its corpus, each
#                 with its own random seed and log (log.N); -runs in FUZZ_ARGS
#                 counts per process (no -seed then), the table shows their
#                 sums and the highest coverage
# docs/reliability.md has the long run and what each target covers.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
shift || true
BUILD_DIR=${BUILD_DIR:-build-fuzz}
ALL=(client_hello datapath flow_tracker config pcap_reader alert_format quic_initial)
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=("${ALL[@]}")

scripts/install-deps.sh --build-only
# The build scripts/sanitize.sh also uses: with the same BUILD_DIR, CI
# compiles the instrumented tree once for both.
scripts/sanitized-build.sh "$BUILD_DIR" "${TARGETS[@]/#/fuzz_}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/fuzz/lsan.supp}
WORKERS=${FUZZ_WORKERS:-1}
# Targets run side by side, JOBS at a time (default: one per CPU, each
# target being one single-threaded process per worker).
JOBS=${FUZZ_JOBS:-$(( $(nproc) / WORKERS > 0 ? $(nproc) / WORKERS : 1 ))}

# Runs one target's workers; writes its table line to $run/result and
# returns non-zero on a finding.
fuzz_target() {
    local t=$1 run="$BUILD_DIR/fuzz-run/$1"
    rm -rf "$run"
    mkdir -p "$run/corpus"
    cp -r "tests/fuzz/corpus/$t/." "$run/corpus/"
    local logs=() pids=() start=$SECONDS w log
    for ((w = 0; w < WORKERS; w++)); do
        log="$run/log"
        ((WORKERS == 1)) || log="$run/log.$w"
        logs+=("$log")
        # shellcheck disable=SC2086
        "$BUILD_DIR/tests/fuzz/fuzz_$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
            -print_final_stats=1 -artifact_prefix="$run/" ${FUZZ_ARGS:-} "$run/corpus" \
            >"$log" 2>&1 &
        pids+=($!)
    done
    # The first worker to fail stops the others.
    local rc=0 r done_pid p left
    while ((${#pids[@]})); do
        r=0
        done_pid=
        wait -n -p done_pid "${pids[@]}" || r=$?
        left=()
        for p in "${pids[@]}"; do
            [[ $p == "$done_pid" ]] || left+=("$p")
        done
        pids=("${left[@]}")
        if ((r && !rc)); then
            rc=$r
            ((${#pids[@]} == 0)) || kill "${pids[@]}" 2>/dev/null || true
        fi
    done
    local wall=$((SECONDS - start)) execs=0 speed=0 cov=0 e v c
    for log in "${logs[@]}"; do
        e=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
        v=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1 || true)
        c=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d" " -f2 || true)
        execs=$((execs + ${e:-0}))
        speed=$((speed + ${v:-0}))
        if ((${c:-0} > cov)); then cov=$c; fi
    done
    if ((rc)); then
        printf '%-14s %12s %10s %8s %7s FAILED (exit %d): see %s\n' "$t" "$execs" "$speed" \
            "$cov" "$wall" "$rc" "${logs[*]}" >"$run.result"
        grep -hE 'ERROR|invariant failed|runtime error|SUMMARY|Test unit written' "${logs[@]}" \
            | head -20 >>"$run.result" || true
    else
        printf '%-14s %12s %10s %8s %7s ok\n' "$t" "$execs" "$speed" "$cov" "$wall" >"$run.result"
    fi
    return "$rc"
}

failed=()
printf '%-14s %12s %10s %8s %7s %s\n' target executions exec/s cov wall-s result
declare -A target_of=()
running=()
reap_one() {
    local done_pid= r=0 p left=()
    wait -n -p done_pid "${running[@]}" || r=$?
    for p in "${running[@]}"; do
        [[ $p == "$done_pid" ]] || left+=("$p")
    done
    running=("${left[@]}")
    cat "$BUILD_DIR/fuzz-run/${target_of[$done_pid]}.result" 2>/dev/null ||
        echo "${target_of[$done_pid]}: no result (the run itself failed, exit $r)"
    ((r == 0)) || failed+=("${target_of[$done_pid]}")
}
for t in "${TARGETS[@]}"; do
    ((${#running[@]} < JOBS)) || reap_one
    fuzz_target "$t" &
    target_of[$!]=$t
    running+=($!)
done
while ((${#running[@]})); do
    reap_one
done
if ((${#failed[@]})); then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all ${#TARGETS[@]} targets ran ${SECS}s each without a finding"
