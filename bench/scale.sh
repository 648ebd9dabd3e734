#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmarks 5 and 6 (issue 6), the missing parts: events per second through
# ring buffer -> queue -> tracker; harvest time of the flow and client tables
# up to 1M entries; and how harvest, daemon CPU, memory per client, the
# kernel's established-packet cost and events/s grow with the tables.
# Everything runs bench/scale (see its header) against the real, loaded BPF
# programs and the daemon's real classes. Root; about 12-15 minutes.
#
# Usage: bench/scale.sh [--quick] [--no-perf] [--out FILE]
#        bench/scale.sh --report FILE      (only the tables, from an earlier FILE)
#   BUILD_DIR (default build-scale, Release) is configured and built if needed.
#   --quick: fewer rows and shorter runs (a smoke test, about 2 minutes).
#   --no-perf: skip the two perf profiles at the end.
# Output: `SCALE ...` lines (also kept in FILE, default /tmp/exf-scale.PID.txt),
# then markdown tables of the medians.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR_SET=${BUILD_DIR:-}  # for the command line the results name
BUILD_DIR=${BUILD_DIR:-$ROOT/build-scale}
QUICK=0
PERF=1
OUT=/tmp/exf-scale.$$.txt
REPORT=
ARGS="$*"
while [[ $# -gt 0 ]]; do
    case $1 in
    --quick) QUICK=1 ;;
    --no-perf) PERF=0 ;;
    --out) OUT=$2; shift ;;
    --report) REPORT=$2; shift ;;
    *) echo "usage: $0 [--quick] [--no-perf] [--out FILE]" >&2; exit 2 ;;
    esac
    shift
done
if [[ -z $REPORT ]]; then
[[ $(id -u) -eq 0 ]] || { echo "root needed (BPF programs, maps)" >&2; exit 2; }

if [[ ! -f $BUILD_DIR/CMakeCache.txt ]]; then
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD_DIR" -j2 --target scale >/dev/null
SCALE=$BUILD_DIR/bench/scale
: >"$OUT"

# Table rows: clients:flows.
ROWS="1000:10000 1000:100000 100000:100000 1000:1000000 100000:1000000 1000000:1000000"
EV_RUNS=3 EV_SECONDS=8 TAB_RUNS=5 SAMPLES=20000 ROUNDS=5 DRAIN=100000
RATES="2000 5000 10000 20000"
if [[ $QUICK -eq 1 ]]; then
    ROWS="1000:10000 100000:100000"
    EV_RUNS=1 EV_SECONDS=4 TAB_RUNS=3 SAMPLES=5000 ROUNDS=3 DRAIN=20000 RATES="5000"
fi

run() {  # the command, its SCALE lines to OUT and stdout
    echo "+ ${*#"$BUILD_DIR"/}" >&2
    "$@" | tee -a "$OUT" || { echo "failed: $*" >&2; exit 1; }
}

{
    echo "# date $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "# kernel $(uname -r), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
    echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' + uncommitted changes')"
    echo "# command ${BUILD_DIR_SET:+BUILD_DIR=$BUILD_DIR }bench/scale.sh${ARGS:+ }$ARGS"
} | tee -a "$OUT"
T0=$(date +%s)

# b, c, d, memory: harvest and est-packet cost per table size.
for row in $ROWS; do
    c=${row%%:*} f=${row##*:}
    run "$SCALE" table --clients "$c" --flows "$f" --runs "$TAB_RUNS" --samples "$SAMPLES" \
        --rounds "$ROUNDS" --tag "row"
done

# a: consumer capacity (ring buffer filled first, then drained).
for i in $(seq "$EV_RUNS"); do
    run "$SCALE" events --drain "$DRAIN" --loop tight --tag drain-tight
    run "$SCALE" events --drain "$DRAIN" --loop daemon --tag drain-daemon
done
# a: producer and consumer together, the daemon's loop, default tables
# (262,144 flows, 131,072 clients, 4 MiB ring, queue 4096), 100,000 clients:
# as fast as the producer goes, then paced, to see where loss starts.
for i in $(seq "$EV_RUNS"); do
    run "$SCALE" events --seconds "$EV_SECONDS" --tag max
done
for r in $RATES; do
    run "$SCALE" events --seconds "$EV_SECONDS" --rate "$r" --tag "rate"
done
# events/s with tables of each row's size (full: new flows evict old ones).
for row in $ROWS; do
    c=${row%%:*} f=${row##*:}
    for i in $(seq "$EV_RUNS"); do
        run "$SCALE" events --seconds "$EV_SECONDS" --prefill-clients "$c" --prefill-flows "$f" \
            --tag "row"
    done
done
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg); $(( $(date +%s) - T0 )) s" | tee -a "$OUT"

# Profiles of what misses the 1 s harvest interval (perf cpu-clock, DWARF
# unwinding): the 1M/1M table's harvests, and the daemon loop under events.
if [[ $PERF -eq 1 ]] && command -v perf >/dev/null; then
    pdata=$(mktemp /tmp/exf-scale-perf.XXXXXX)
    top() {  # perf data file, pattern of the functions of interest
        echo "children% self% symbol (top entries)"
        perf report -i "$1" --children --sort symbol -g none --stdio 2>/dev/null |
            grep '%' | sed 's/  */ /g; s/^ //' | cut -c1-150 | grep -E "$2" | head -25 || true
    }
    big=${ROWS##* }
    echo "## perf: table ${big%%:*} clients / ${big##*:} flows (2 runs)" | tee -a "$OUT"
    perf record -q -F 99 --call-graph dwarf,16384 -o "$pdata" -- \
        "$SCALE" table --clients "${big%%:*}" --flows "${big##*:}" --runs 2 --samples 1000 --rounds 1 \
        >/dev/null 2>&1
    top "$pdata" 'harvest_once|read_tables|read_table<|lookup_and_delete_batch|HarvestStage::run|FlowHarvester|Harvester::harvest|Detector::evaluate|evaluate_rule|baseline_for|for_each|AggImpl|add_traffic|flow_opened|flow_closed|_Rb_tree|memcmp|sort|page_fault|FlowTracker::lookup|malloc|free' | tee -a "$OUT"
    echo "## perf: events, daemon loop, tables of 100000 clients / 100000 flows" | tee -a "$OUT"
    perf record -q -F 199 --call-graph dwarf,16384 -o "$pdata" -- \
        "$SCALE" events --seconds "$EV_SECONDS" --prefill-clients 100000 --prefill-flows 100000 \
        >/dev/null 2>&1
    top "$pdata" 'loop_once|on_event|on_hello|parse_body|ja4|Ja4Tally|on_tls|read_tables|lookup_and_delete_batch|HarvestStage::run|FlowHarvester|Harvester::harvest|evaluate|AggImpl|_Rb_tree|memcmp|EventReader|ringbuf|push' | tee -a "$OUT"
    rm -f "$pdata" "$pdata.old"
fi

fi  # not --report
[[ -n $REPORT ]] && OUT=$REPORT

# The tables.
python3 - "$OUT" <<'EOF'
import sys, statistics
rows = []
for line in open(sys.argv[1]):
    if line.startswith("SCALE "):
        rows.append(dict(kv.split("=", 1) for kv in line.split()[1:]))

def med(vals):
    vals = [float(v) for v in vals if v not in ("-", "nan")]
    return statistics.median(vals) if vals else float("nan")

def f(v, p=0):
    return "-" if v != v else f"{v:,.{p}f}"

def sel(**kw):
    return [r for r in rows if all(r.get(k) == v for k, v in kw.items())]

sizes = []
for r in sel(test="harvest", tag="row"):
    k = (int(r["clients"]), int(r["flows"]))
    if k not in sizes:
        sizes.append(k)

print("\n### Growth (medians)\n")
print("| clients | flows | first harvest ms | steady harvest ms (5 % changed) | of which kernel read ms | "
      "evaluation ms | daemon CPU % at 1 s harvest | aggregator B/client | RSS after harvests MiB "
      "(live after trim) | est. packet ns over empty, spread (hot) | events/s (loss %) |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for c, fl in sizes:
    k = dict(clients=str(c), flows=str(fl))
    h1 = sel(test="harvest", tag="row", phase="first", **k)
    hs = [r for r in sel(test="harvest", tag="row", **k) if r["phase"].startswith("steady") and r["phase"] != "steady0"]
    mem = sel(test="memory", tag="row", **k)
    sp = sel(test="pktcost", tag="row", case="spread", **k)
    hot = sel(test="pktcost", tag="row", case="hot", **k)
    ev = sel(test="events", tag="row", prefill_clients=str(c), prefill_flows=str(fl))
    print(f"| {c:,} | {fl:,} | {f(med(r['harvest_ms'] for r in h1))} "
          f"| {f(med(r['harvest_ms'] for r in hs))} (CPU {f(med(r['cpu_ms_per_harvest'] for r in hs))}) "
          f"| {f(med(r['read_ms'] for r in hs))} "
          f"| {f(med(r['eval_ms'] for r in hs))} "
          f"| {f(med(r['cpu_pct_at_1s'] for r in hs), 1)} "
          f"| {f(med(r['agg_client_table_b_per_client'] for r in mem))} "
          f"| {f(med(r['rss_mib'] for r in mem))} ({f(med(r['rss_trimmed_mib'] for r in mem))}) "
          f"| {f(med(r['diff_ns'] for r in sp))} ({f(med(r['diff_ns'] for r in hot))}) "
          f"| {f(med(r['events_s'] for r in ev))} ({f(med(r['loss_pct'] for r in ev), 1)}) |")

print("\n### Harvest detail (medians of the runs in each process)\n")
print("| clients | flows | phase | read ms (CPU) | HarvestStage::run ms (CPU) | total ms | max ms | evaluation ms | CPU ms per harvest+eval | RSS MiB |")
print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
for r in sel(test="harvest", tag="row"):
    print(f"| {int(r['clients']):,} | {int(r['flows']):,} | {r['phase']} | {r['read_ms']} ({r['read_cpu_ms']}) "
          f"| {r['run_ms']} ({r['run_cpu_ms']}) | {r['harvest_ms']} | {r['harvest_ms_max']} | {r['eval_ms']} "
          f"| {r['cpu_ms_per_harvest']} | {r['rss_mib']} |")
print("\n| clients | flows | read_clients ms (CPU) | read_flows ms (CPU) | read_fcache ms |")
print("|---:|---:|---:|---:|---:|")
for r in sel(test="read", tag="row"):
    print(f"| {int(r['clients']):,} | {int(r['flows']):,} | {r['read_clients_ms']} ({r['read_clients_cpu_ms']}) "
          f"| {r['read_flows_ms']} ({r['read_flows_cpu_ms']}) | {r['read_fcache_ms']} |")
print("\n| clients | flows | aggregator B/client (client table) | aggregator B/client (all kinds) | RSS growth B/client (B/flow) | after malloc_trim B/client (B/flow) |")
print("|---:|---:|---:|---:|---:|---:|")
for r in sel(test="memory", tag="row"):
    print(f"| {int(r['clients']):,} | {int(r['flows']):,} | {r['agg_client_table_b_per_client']} | {r['agg_total_b_per_client']} "
          f"| {r['rss_growth_b_per_client']} ({r['rss_growth_b_per_flow']}) "
          f"| {r['trimmed_growth_b_per_client']} ({r['trimmed_growth_b_per_flow']}) |")

print("\n### Events (medians over runs)\n")
print("| run | runs | offered flows/s | kernel events/s | events/s processed | hellos/s | ring buffer full | queue drops | queue waits | loss % | main-thread µs/event | harvest ms (CPU) median |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
groups = {}
for r in sel(test="events"):
    if r["tag"] == "row":
        key = f"tables {int(r['prefill_clients']):,} clients / {int(r['prefill_flows']):,} flows, max rate"
    elif r["tag"] == "rate":
        key = f"paced {int(float(r['rate'])):,} flows/s, default tables"
    elif r["tag"] == "max":
        key = "max rate, default tables"
    else:
        key = f"{r['tag']} ({int(r['flows']):,} flows pre-filled)"
    groups.setdefault(key, []).append(r)
for key, rs in groups.items():
    m = lambda k: med(r[k] for r in rs)
    drain = rs[0]["kind"] == "drain"
    print(f"| {key} | {len(rs)} | {'-' if drain else f(m('offered_flows_s'))} | {'-' if drain else f(m('kernel_events_s'))} "
          f"| {f(m('events_s'))} | {f(m('hellos_s'))} | {f(m('rb_full'))} | {f(m('queue_dropped'))} | {f(m('queue_waited'))} "
          f"| {f(m('loss_pct'), 2)} | {f(m('main_us_per_event'), 2)} | {f(m('harvest_ms_median'))} ({f(m('harvest_cpu_ms_median'))}) |")
EOF

# The judged figures as BENCH_RESULT lines (bench/results_table.py): the
# 1M clients / 1M flows row and the paced event runs.
python3 - "$OUT" <<'EOF'
import json, re, sys, statistics
rows, head = [], {}
for line in open(sys.argv[1]):
    if line.startswith("SCALE "):
        rows.append(dict(kv.split("=", 1) for kv in line.split()[1:]))
    elif line.startswith("# ") and " " in line[2:]:
        key, _, value = line[2:].strip().partition(" ")
        head.setdefault(key, value)
date = re.sub(r"^(\S+) (\d\d:\d\d):\d\d UTC$", r"\1T\2Z", head.get("date", "unrecorded"))
kernel, _, rest = head.get("kernel", "?, ? CPUs, ?").partition(", ")
ncpu, _, model = rest.partition(" CPUs, ")
machine = f"{ncpu} CPU {model}, kernel {kernel}"
commit = head.get("commit", "unrecorded").replace(" + uncommitted changes", "+uncommitted")

def emit(metric, values, unit, target):
    values = [float(v) for v in values if v not in ("-", "nan")]
    if not values:
        return
    print("BENCH_RESULT " + json.dumps({
        "metric": metric, "value": statistics.median(values), "min": min(values), "max": max(values),
        "runs": len(values), "unit": unit, "target": target, "date": date, "commit": commit,
        "machine": machine, "command": head.get("command", "bench/scale.sh")}, ensure_ascii=False))

def sel(**kw):
    return [r for r in rows if all(r.get(k) == v for k, v in kw.items())]

big = dict(tag="row", clients="1000000", flows="1000000")
steady = [r for r in sel(test="harvest", **big) if r["phase"].startswith("steady") and r["phase"] != "steady0"]
emit("memory.aggregator_bytes_per_client", [r["agg_client_table_b_per_client"] for r in sel(test="memory", **big)], "B", "<= 256")
emit("scale.steady_harvest_ms_1m_1m", [r["harvest_ms"] for r in steady], "ms", "<= 1000")
emit("scale.daemon_cpu_pct_1m_1m", [r["cpu_pct_at_1s"] for r in steady], "%", "<= 10")
emit("scale.idle_harvest_ms_1m_1m", [r["harvest_ms"] for r in sel(test="harvest", phase="steady0", **big)], "ms", "< 5")
paced = {}
for r in sel(test="events", tag="rate"):
    paced.setdefault(float(r["rate"]), []).append(float(r["loss_pct"]))
lossless = [rate for rate, losses in paced.items() if max(losses) == 0]
if lossless:
    emit("scale.lossless_flows_per_s", [max(lossless)], "flows/s", ">= 50000")
EOF
echo "(SCALE lines in $OUT)"
