#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Soak run: >= 100,000 clients and >= 1,000,000 TLS flows through the real
# BPF programs of a running `exfilmon run` (BPF_PROG_TEST_RUN on the
# programs it attached), paced over minutes, with the daemon's RSS, tables
# and drops sampled every 5 s. See tests/soak/soak.cpp for what it asserts.
# Needs root. Not part of ctest (it takes minutes).
#
#   tests/soak/soak.sh                      # 100,000 clients, 1,000,000 flows, 1000 s
#   EXF_SOAK_SECONDS=600 tests/soak/soak.sh   # faster: 1,667 flows/s
#
#   BUILD_DIR          build directory (default build); built if needed
#   EXF_SOAK_CLIENTS   distinct clients (default 100000)
#   EXF_SOAK_FLOWS     flows (default 1000000)
#   EXF_SOAK_SECONDS   the run's length: flows are paced over it (default 1000)
#   EXF_SOAK_PLANTED   clients pulling 2 MiB that must alert (default 20)
#   EXF_SOAK_EVENT_QUEUE  the daemon's [daemon] event_queue_size (default: its default, 4096)
#   EXF_SOAK_CSV       the samples (default: <BUILD_DIR>/soak.csv)
#   EXF_SOAK_REPORT    the summary table, markdown (default: <BUILD_DIR>/soak.md)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR=${BUILD_DIR:-build}
if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
  cmake -S . -B "$BUILD_DIR"
fi
cmake --build "$BUILD_DIR" -j"$(nproc)" --target exf_soak exfilmon
export CI=true
export EXF_SOAK_CSV=${EXF_SOAK_CSV:-$PWD/$BUILD_DIR/soak.csv}
export EXF_SOAK_REPORT=${EXF_SOAK_REPORT:-$PWD/$BUILD_DIR/soak.md}
echo "soak: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
     "$(git status --porcelain 2>/dev/null | grep -q . && echo '(with local changes)')"
start=$(date +%s)
rc=0
"$BUILD_DIR/tests/exf_soak" --durations yes || rc=$?
echo "soak: exit $rc after $(( $(date +%s) - start )) s; samples in $EXF_SOAK_CSV, summary in $EXF_SOAK_REPORT"
exit $rc
