#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The fleet benchmark (issue 18; bench/RESULTS.md, "Fleet"): a generated
# fleet written straight into a ClickHouse of its own, then
#  - insert throughput (JSONEachRow over HTTP, the exporter's client): bulk
#    history batches, and one sensor's period per insert as exporters send;
#  - the hourly rollup of the history's closed hours, one hour at a time;
#  - one evaluation of the shipped [[rules]] (configs/exfilmon.toml): as
#    shipped (`exfilmon fleet --once`, whole process, and the reads it gave
#    up at its 10 s timeout), and its statements run again uncut, each
#    timed (fleet_profile.py: where the time goes), RUNS times;
#  - the in-memory evaluation ([fleet] evaluation = "memory", the
#    default): `exfilmon fleet` running for MEMEVAL_S seconds while the
#    history's margin comes into its windows period by period, as sensors'
#    batches arrive; its metrics scraped every second (each evaluation's
#    wall time, its windows, its RSS) and its start (the span read once);
#  - ClickHouse's disk per million rows (system.parts);
#  - growth with sensors, clients and history: smaller fleets copied out of
#    the big one (raw rows and hourly rollup), each evaluated.
# ClickHouse is Debian's clickhouse-server with its own data directory on
# loopback, stopped and removed at the end, failure or not. Root not needed.
# Everything runs under nice 10 (a shared machine).
#
# Usage: bench/fleet.sh [--quick] [--runs N] [--memory-only] [--out FILE]
#        bench/fleet.sh --sensor [--quick] [--out FILE]
#        bench/fleet.sh --attach URL [--quick] [--out FILE]
#   --attach: a server this script loaded before (killed with SIGKILL after
#   its load, so that its ClickHouse stayed up): everything after the load.
#   Its ClickHouse is not stopped: stop it by its PID and remove its
#   directory.
#   --memory-only: the load, the rollup, the disk and the in-memory
#   evaluation (with its growth) only: no exporter-shaped inserts and no
#   SQL evaluations (about 20 min).
#   --sensor: only the sensor's side, the export's added CPU and memory at
#   100,000 clients (bench/fleet_export_cost.cpp: the daemon's FleetExport
#   fed a harvest's calls every second, rounds with and without in turn;
#   --quick: 20,000 clients, shorter rounds).
#   EXFILMON (default $BUILD_DIR/userspace/exfilmon) and FLEET_GEN (default
#   $BUILD_DIR/bench/fleet_gen); BUILD_DIR defaults to build.
#   EXFILMON_BEFORE: another build's exfilmon, evaluated in turn with this
#   one (pairs), e.g. before a change of the rule SQL.
#   Full size: 20 sensors x 5,000 clients per minute, 24 h of 10 s periods
#   (150 M rows with the margin; about 35 min here, 12 of them the load).
#   --quick: 5 sensors x 1,000 clients, 3 h (under 2 min).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/result.sh"
result_start "$0" "$@"
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
EXFILMON=${EXFILMON:-$BUILD_DIR/userspace/exfilmon}
FLEET_GEN=${FLEET_GEN:-$BUILD_DIR/bench/fleet_gen}
EXFILMON_BEFORE=${EXFILMON_BEFORE:-}
QUICK=0 SENSOR=0 ATTACH= RUNS=2 OUT=/tmp/exf-fleet.$$.txt MEMORY_ONLY=0 MEMEVAL_S=90
while [[ $# -gt 0 ]]; do
    case $1 in
    --quick) QUICK=1 ;;
    --runs) RUNS=$2; shift ;;
    --sensor) SENSOR=1 ;;
    --memory-only) MEMORY_ONLY=1 ;;
    --attach) ATTACH=$2; shift ;;
    --out) OUT=$2; shift ;;
    *) echo "usage: $0 [--quick] [--sensor] [--memory-only] [--runs N] [--out FILE]" >&2; exit 2 ;;
    esac
    shift
done
EXPORT_COST=${EXPORT_COST:-$BUILD_DIR/bench/fleet_export_cost}
for f in "$EXFILMON" "$FLEET_GEN" "$EXPORT_COST" /usr/sbin/clickhouse-server; do
    [[ -x $f ]] || { echo "$f: not found (build it, or install clickhouse-server)" >&2; exit 2; }
done

PERIOD=10 SENSORS=20 CLIENTS=5000 POOL=20000 HOURS=24 MARGIN=60 XMIN=5
# Growth: sensors:clients:hours, copied out of the big fleet.
GROWTH="5:5000:24 20:1000:24 20:5000:1"
if [[ $QUICK -eq 1 ]]; then
    SENSORS=5 CLIENTS=1000 POOL=4000 HOURS=3 MARGIN=15 XMIN=2 MEMEVAL_S=20
    GROWTH="2:1000:3 5:500:3 5:1000:1"
fi
PULL=$((3 << 30))  # per 10 min over every sensor: a fleet alert (client-bulk-pull: 2 GiB)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- ClickHouse of our own ------------------------------------------------
if [[ -z $ATTACH ]]; then
DIR=$(mktemp -d /tmp/exf-fleet-bench.XXXXXX)
CH_PID=
cleanup() {
    if [[ -n $CH_PID ]] && kill -0 "$CH_PID" 2>/dev/null; then
        kill "$CH_PID"
        for _ in $(seq 100); do kill -0 "$CH_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$CH_PID" 2>/dev/null || true
    fi
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

HTTP_PORT=$(free_port)
TCP_PORT=$(free_port)
while [[ $TCP_PORT == "$HTTP_PORT" ]]; do TCP_PORT=$(free_port); done
mkdir -p "$DIR"/{data,tmp,user_files,format_schemas,log}
# <yandex> is the root element 18.16 reads. log_queries: where an
# evaluation's time goes (system.query_log).
cat >"$DIR/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$DIR/log/server.log</log><errorlog>$DIR/log/error.log</errorlog></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$HTTP_PORT</http_port>
  <tcp_port>$TCP_PORT</tcp_port>
  <path>$DIR/data/</path>
  <tmp_path>$DIR/tmp/</tmp_path>
  <user_files_path>$DIR/user_files/</user_files_path>
  <format_schema_path>$DIR/format_schemas/</format_schema_path>
  <users_config>$DIR/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>536870912</mark_cache_size>
  <query_log><database>system</database><table>query_log</table><flush_interval_milliseconds>1000</flush_interval_milliseconds></query_log>
</yandex>
EOF
cat >"$DIR/users.xml" <<'EOF'
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>8000000000</max_memory_usage><log_queries>1</log_queries></default></profiles>
  <users><default><password></password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
EOF
# nice: the machine is shared; every figure below is measured under it.
(cd "$DIR" && exec nice -n 10 /usr/sbin/clickhouse-server --config-file="$DIR/config.xml" \
    >"$DIR/log/stdout" 2>&1) &
CH_PID=$!
URL=http://127.0.0.1:$HTTP_PORT
for _ in $(seq 300); do
    curl -sf "$URL/ping" >/dev/null 2>&1 && break
    kill -0 "$CH_PID" 2>/dev/null || { cat "$DIR/log/stdout" "$DIR/log/error.log" >&2; exit 1; }
    sleep 0.1
done
else
    URL=$ATTACH DIR=$(mktemp -d /tmp/exf-fleet-attach.XXXXXX)
    trap 'rm -rf "$DIR"' EXIT
fi
sql() { curl -sS --fail-with-body "$URL/" --data-binary "$1"; }
CH_VERSION=$(sql "SELECT version()")

config() {  # database [evaluation] -> path of an evaluator config with the shipped [detect] and [[rules]]
    local f=$DIR/$1.toml
    {
        printf '[fleet]\nclickhouse = "%s"\ndatabase = "%s"\nevaluation = "%s"\n\n' "$URL" "$1" "${2:-sql}"
        printf '[[outputs]]\ntype = "json"\npath = "%s/%s-alerts.json"\n\n' "$DIR" "$1"
        awk '/^\[/ { keep = ($0 == "[detect]" || $0 == "[[rules]]") } keep' "$ROOT/configs/exfilmon.toml"
    } >"$f"
    echo "$f"
}

ms_now() { date +%s%3N; }
# One `exfilmon fleet --once`, whole process: prints its wall ms.
evaluate_once() {
    local t0 t1
    t0=$(ms_now)
    nice -n 10 "$EXFILMON" fleet --config "$1" --once >>"$DIR/eval.log" 2>&1 || {
        echo "exfilmon fleet --once failed:" >&2; tail -20 "$DIR/eval.log" >&2; exit 1; }
    t1=$(ms_now)
    echo $((t1 - t0))
}
# "median_ms=M min_ms=A max_ms=B" of the arguments.
stats() {
    printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {m = NR % 2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; print "median_ms=" m, "min_ms=" a[1], "max_ms=" a[NR]}'
}

{
    echo "# date $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "# machine $RESULT_MACHINE; ClickHouse $CH_VERSION (Debian), niced 10, as fleet_gen"
    echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# commit $RESULT_COMMIT"
    echo "# fleet: $SENSORS sensors x $CLIENTS clients per minute (pool $POOL), $HOURS h of ${PERIOD} s periods"
} | if [[ -n $ATTACH ]]; then tee -a "$OUT"; else tee "$OUT"; fi
T0=$(date +%s)

# ---- the sensor's side (--sensor) ---------------------------------------------
if [[ $SENSOR -eq 1 ]]; then
    clients=100000 seconds=30 rounds=3
    [[ $QUICK -eq 1 ]] && clients=20000 seconds=12 rounds=2
    "$EXFILMON" fleet init --config "$(config exfilmon)" >/dev/null
    echo "## the export's added cost: $clients clients with traffic every 1 s harvest, 10 s periods" | tee -a "$OUT"
    "$EXPORT_COST" --url "$URL" --database exfilmon --clients $clients --seconds $seconds \
        --rounds $rounds | tee -a "$OUT"
    python3 - "$OUT" >"$DIR/figures" <<'PY'
import statistics, sys
def kv(line): return dict(x.split("=", 1) for x in line.split()[1:])
rows = [kv(l) for l in open(sys.argv[1]) if l.startswith("FLEET_EXPORT ")]
def pairs(key):
    by = {}
    for r in rows:
        by.setdefault(r["round"], {})[r["fleet"]] = float(r[key])
    return [d["1"] - d["0"] for d in by.values() if "0" in d and "1" in d]
cpu = pairs("cpu_pct")
rss = [float(r["rss_added_mib"]) for r in rows if r["fleet"] == "1"]
print("cpu", statistics.median(cpu), min(cpu), max(cpu), len(cpu))
print("rss", statistics.median(rss), min(rss), max(rss), len(rss))
PY
    while read -r what a b c d; do
        case $what in
        cpu) result_line fleet.export_cpu_pct_100k "$a" "$b" "$c" "$d" "%" none ;;
        rss) result_line fleet.export_rss_mib_100k "$a" "$b" "$c" "$d" MiB none ;;
        esac
    done <"$DIR/figures" | tee -a "$OUT"
    exit 0
fi

# ---- the fleet -----------------------------------------------------------
# History: HOURS hours before now, and MARGIN minutes after it, so that
# every rule window is full whenever an evaluation runs. The last hour
# before now goes in as JSONEachRow over HTTP (the exporter's client and
# row text: the insert throughput); the other hours are server-side copies
# of it shifted by whole hours (the same rows at other times: the same
# disk and query cost, in minutes instead of an hour of JSON). The puller
# (3 GiB per 10 min over every sensor) runs from 10 min before now to the
# end of the margin.
DB=exfilmon
CFG=$(config $DB)
"$EXFILMON" fleet init --config "$CFG" | sed 's/^/# /' | tee -a "$OUT"
NOW=$(( $(date +%s) / PERIOD * PERIOD ))
END=$((NOW + MARGIN * 60))
ch_cpu() { awk -v t="$(getconf CLK_TCK)" '{printf "%.2f\n", ($14 + $15) / t}' "/proc/$CH_PID/stat"; }
gen() { nice -n 10 "$FLEET_GEN" --url "$URL" --sensors "$SENSORS" --clients "$CLIENTS" --pool "$POOL" \
    --period "$PERIOD" "$@"; }
load() {  # what, fleet_gen arguments: FLEET_GEN line plus ClickHouse's CPU
    local what=$1 c0 c1 line
    shift
    c0=$(ch_cpu)
    line=$(gen "$@")
    c1=$(ch_cpu)
    echo "$line what=$what ch_cpu_s=$(echo "$c1 - $c0" | bc)" | tee -a "$OUT"
}
if [[ -z $ATTACH ]]; then
echo "## JSONEachRow load of the last hour (30 periods of every sensor per insert)" | tee -a "$OUT"
load bulk --database $DB --from $((NOW - 3600)) --to "$NOW"
shift_copy() {  # from, to (s), shift (s, signed): the rows, the puller's excepted
    sql "INSERT INTO $DB.traffic SELECT toDateTime(toUInt32(period_start) + ($3)), period_ms, sensor,
         client, subnet, cohort, sni, ja4, bytes_in, bytes_out, packets_in, packets_out, tls_flows,
         peak_concurrent, requests FROM $DB.traffic WHERE period_start >= toDateTime($1)
         AND period_start < toDateTime($2) AND client != '203.0.113.200'"
}
c0=$(ch_cpu); t0=$(ms_now)
for k in $(seq 1 $((HOURS - 1))); do shift_copy $((NOW - 3600)) "$NOW" $((-k * 3600)); done
shift_copy $((NOW - 3600)) $((NOW - 3600 + MARGIN * 60)) 3600
t1=$(ms_now); c1=$(ch_cpu)
copied=$(( (HOURS - 1) * $(sql "SELECT count() FROM $DB.traffic WHERE period_start >= toDateTime($((NOW - 3600))) AND period_start < toDateTime($NOW) AND client != '203.0.113.200'") ))
echo "FLEET_COPY rows_about=$copied seconds=$(echo "scale=3; ($t1 - $t0) / 1000" | bc) ch_cpu_s=$(echo "$c1 - $c0" | bc)" | tee -a "$OUT"
load puller --database $DB --clients 0 --from $((NOW - 600)) --to "$END" --pull "$PULL" >/dev/null
sql "SELECT count(), uniqExact(sensor), uniqExact(client), toUInt32(min(period_start)), toUInt32(max(period_start)) FROM $DB.traffic" |
    awk '{printf "# traffic: %s rows, %s sensors, %s clients, periods %s..%s\n", $1, $2, $3, $4, $5}' | tee -a "$OUT"

else
    # The loaded fleet's periods end MARGIN minutes after its "now".
    NOW=$(($(sql "SELECT toUInt32(max(period_start)) FROM $DB.traffic") + PERIOD - MARGIN * 60))
    END=$((NOW + MARGIN * 60))
    echo "# attached to $URL: a fleet loaded with now = $NOW" | tee -a "$OUT"
fi
if [[ -z $ATTACH && $MEMORY_ONLY -eq 0 ]]; then
# Exporter-shaped inserts (one sensor's period each) into a database of
# their own.
XDB=exfilmon_inserts
"$EXFILMON" fleet init --config "$(config $XDB)" >/dev/null
echo "## exporter-shaped inserts: one sensor's period per insert, $XMIN min of periods" | tee -a "$OUT"
load exporter --database $XDB --from $((NOW - XMIN * 60)) --to "$NOW" --per-sensor
sql "DROP DATABASE $XDB"

fi

# ---- evaluation ------------------------------------------------------------
# The hourly rollup of the closed hours, as the evaluator builds it
# (fleet/rule_sql.cpp rollup_sql), one statement per hour, timed: at this
# size one hour takes longer than the evaluator's 10 s HTTP timeout, so the
# evaluator itself would give up.
roll_up() {  # database: every closed hour after the newest rolled-up one
    local db=$1 from to h t0 last
    last=$(sql "SELECT toUInt32(max(hour)) FROM $db.traffic_hourly")
    from=$(( last ? last + 3600 : $(sql "SELECT toUInt32(min(period_start)) FROM $db.traffic") / 3600 * 3600 ))
    to=$(( ($(date +%s) - 300) / 3600 * 3600 ))
    for ((h = from; h < to; h += 3600)); do
        t0=$(ms_now)
        sql "INSERT INTO $db.traffic_hourly SELECT toDateTime(intDiv(toUInt32(period_start), 3600) * 3600) AS hour,
             sensor, client, subnet, cohort, sni, ja4, sum(bytes_in), sum(bytes_out), sum(packets_in),
             sum(packets_out), sum(tls_flows), max(peak_concurrent), sum(requests), toUInt32($(date +%s))
             FROM $db.traffic FINAL WHERE period_start >= toDateTime($h) AND period_start < toDateTime($((h + 3600)))
             GROUP BY hour, sensor, client, subnet, cohort, sni, ja4"
        echo "FLEET_ROLLUP db=$db hour=$h ms=$(($(ms_now) - t0))"
    done
}
# One evaluation as shipped (`exfilmon fleet --once`: wall ms, and the
# statements it gave up on), then its statements replayed one after the
# other with no timeout: what the evaluation costs uncut. With
# EXFILMON_BEFORE, that build's evaluation the same way, in turn.
evaluate_measured() {  # phase, config, exfilmon
    local phase=$1 cfg=$2 bin=$3 since wall skipped
    since=$(date +%s)
    wall=$(EXFILMON=$bin evaluate_once "$cfg")
    skipped=$(awk -v t="$(date -u -d @"$since" '+%Y-%m-%d %H:%M:%S')" 'substr($0, 2, 19) >= t' "$DIR/eval.log" |
        grep -c 'fleet rule .*: \|hourly rollup: ' || true)
    sleep 1
    python3 "$ROOT/bench/fleet_profile.py" "$URL" "$since" --replay >"$DIR/replay" 2>&1 ||
        { cat "$DIR/replay" >&2; exit 1; }
    echo "FLEET_EVAL phase=$phase wall_ms=$wall failed_reads=$skipped replayed_ms=$(sed -n 's/^FLEET_STATEMENTS total_ms=\([0-9]*\).*/\1/p' "$DIR/replay")"
}
# The in-memory evaluation: `exfilmon fleet` running for a while, its
# /metrics scraped every second. Prints one FLEET_MEMEVAL line: start_ms
# (process start to its first evaluation: the span read once), each later
# evaluation's wall ms seen (fleet_eval_last_duration_seconds, one per new
# detect_evaluations_total; evaluations between two scrapes are not seen),
# its RSS and windows at the end.
scrape() {  # port, metric -> its value ("" when absent)
    { curl -sf "http://127.0.0.1:$1/metrics" 2>/dev/null || true; } | awk -v m="$2" '$1 == m {print $2}'
}
evaluate_memory() {  # phase, database, seconds
    local phase=$1 db=$2 secs=$3 port cfg pid t0 start_ms evals seen=0 durations= detect= n rss
    port=$(free_port)
    cfg=$(config "$db" memory)
    printf '\n[metrics]\nlisten = "127.0.0.1:%s"\n' "$port" >>"$cfg"
    t0=$(ms_now)
    nice -n 10 "$EXFILMON" fleet --config "$cfg" >>"$DIR/memeval.log" 2>&1 &
    pid=$!
    while :; do
        kill -0 "$pid" 2>/dev/null || { echo "exfilmon fleet exited:" >&2; tail -20 "$DIR/memeval.log" >&2; exit 1; }
        evals=$(scrape "$port" exfilmon_detect_evaluations_total)
        [[ -n $evals && $evals -ge 1 ]] && break
        sleep 0.2
    done
    start_ms=$(($(ms_now) - t0))
    seen=$evals  # the first evaluation read the whole span: start_ms
    for ((n = 0; n < secs * 4; n++)); do
        sleep 0.25
        evals=$(scrape "$port" exfilmon_detect_evaluations_total)
        [[ -n $evals && $evals != "$seen" ]] || continue
        seen=$evals
        durations+=$(scrape "$port" exfilmon_fleet_eval_last_duration_seconds | awk '{printf "%.1f,", $1 * 1000}')
        detect+=$(scrape "$port" exfilmon_detect_evaluation_duration_seconds | awk '{printf "%.1f,", $1 * 1000}')
    done
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    echo "FLEET_MEMEVAL phase=$phase db=$db start_ms=$start_ms rss_kib=$rss" \
        "entities=$(scrape "$port" exfilmon_fleet_eval_window_entities)" \
        "cells=$(scrape "$port" exfilmon_fleet_eval_window_cells)" \
        "rows_read=$(scrape "$port" exfilmon_fleet_eval_rows_read_total)" \
        "evaluations=$seen durations_ms=${durations%,} detect_ms=${detect%,}"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}
echo "## hourly rollup of the history's closed hours" | tee -a "$OUT"
roll_up $DB | tee -a "$OUT"
echo "## in-memory evaluation: exfilmon fleet running $MEMEVAL_S s (evaluation = \"memory\")" | tee -a "$OUT"
evaluate_memory steady $DB "$MEMEVAL_S" | tee -a "$OUT"
grep -c '"state":"open"' "$DIR/$DB-alerts.json" 2>/dev/null | sed 's/^/# alert records "open" (in-memory evaluation): /' | tee -a "$OUT" || true
if [[ $MEMORY_ONLY -eq 0 ]]; then
echo "## evaluations (wall of exfilmon fleet --once as shipped; its statements replayed uncut)" | tee -a "$OUT"
for i in $(seq "$RUNS"); do
    evaluate_measured steady "$CFG" "$EXFILMON" | tee -a "$OUT"
    [[ $i -eq 1 ]] && sed 's/^/  /' "$DIR/replay" | grep -v '^  FLEET_SQL' | tee -a "$OUT"
    if [[ -n $EXFILMON_BEFORE ]]; then
        evaluate_measured before "$CFG" "$EXFILMON_BEFORE" | tee -a "$OUT"
        [[ $i -eq 1 ]] && sed 's/^/  /' "$DIR/replay" | grep -v '^  FLEET_SQL' | tee -a "$OUT"
    fi
done
grep -c '"state":"open"' "$DIR/$DB-alerts.json" 2>/dev/null | sed 's/^/# alert records "open": /' | tee -a "$OUT" || true
fi

# ---- disk ------------------------------------------------------------------
echo "## disk" | tee -a "$OUT"
sql "SELECT table, sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes), count()
     FROM system.parts WHERE database = '$DB' AND active GROUP BY table ORDER BY table
     FORMAT TabSeparated" |
    awk -F'\t' '{printf "FLEET_DISK table=%s rows=%s bytes=%s uncompressed=%s parts=%s bytes_per_mrow=%.0f\n", $1, $2, $3, $4, $5, $2 ? $3 / $2 * 1e6 : 0}' |
    tee -a "$OUT"
[[ -z $ATTACH ]] && echo "# du of the data directory: $(du -sb "$DIR/data" | cut -f1) B" | tee -a "$OUT"

# ---- growth ----------------------------------------------------------------
# Each size copied out of the big fleet, server-side: the sensors and pool
# clients it keeps, the history it keeps, raw rows and hourly rollup (the
# rollup sums per sensor and client, so a copied subset is what rolling the
# subset up gives). One evaluation each, measured as above.
echo "## growth" | tee -a "$OUT"
g=0
for size in $GROWTH; do
    IFS=: read -r s c h <<<"$size"
    g=$((g + 1))
    gdb=exfilmon_g$g
    gcfg=$(config $gdb)
    "$EXFILMON" fleet init --config "$gcfg" >/dev/null
    # A sensor of the big fleet sees CLIENTS per minute out of POOL, so
    # keeping c/CLIENTS of the pool keeps about c per sensor and minute.
    keep="toUInt32(substring(sensor, 6)) < $s AND (client = '203.0.113.200' OR cityHash64(client) % $POOL < $((POOL * c / CLIENTS)))"
    first_hour=$((NOW - h * 3600))
    t0=$(ms_now)
    sql "INSERT INTO $gdb.traffic SELECT * FROM $DB.traffic WHERE $keep AND period_start >= toDateTime($first_hour)"
    sql "INSERT INTO $gdb.traffic_hourly SELECT * FROM $DB.traffic_hourly FINAL WHERE $keep
         AND hour >= toDateTime($((first_hour / 3600 * 3600 + 3600)))"
    copy_ms=$(($(ms_now) - t0))
    rows=$(sql "SELECT count() FROM $gdb.traffic")
    roll_up "$gdb" >/dev/null
    line=$(evaluate_memory "growth-$s-$c-$h" "$gdb" 30)
    echo "$line sensors=$s clients=$c hours=$h rows=$rows" | tee -a "$OUT"
    if [[ $MEMORY_ONLY -eq 0 ]]; then
        line=$(evaluate_measured growth "$gcfg" "$EXFILMON")
        echo "FLEET_GROWTH sensors=$s clients=$c hours=$h rows=$rows copy_ms=$copy_ms ${line#FLEET_EVAL phase=growth }" |
            tee -a "$OUT"
    fi
    sql "DROP DATABASE $gdb"
done
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg); $(($(date +%s) - T0)) s" | tee -a "$OUT"

# ---- figures ---------------------------------------------------------------
python3 - "$OUT" <<'PY' >"$DIR/figures"
import statistics, sys
def kv(line): return dict(x.split("=", 1) for x in line.split()[1:])
gen, ev, disk, rollup, mem = {}, {}, {}, [], {}
for line in open(sys.argv[1]):
    if line.startswith("FLEET_GEN "): d = kv(line); gen[d["what"]] = d
    elif line.startswith("FLEET_EVAL "): d = kv(line); ev.setdefault(d["phase"], []).append(d)
    elif line.startswith("FLEET_DISK "): d = kv(line); disk[d["table"]] = d
    elif line.startswith("FLEET_ROLLUP db=exfilmon "): rollup.append(int(kv(line)["ms"]))
    elif line.startswith("FLEET_MEMEVAL "): d = kv(line); mem[d["phase"]] = d
def stat(vals):
    return f"{statistics.median(vals)} {min(vals)} {max(vals)} {len(vals)}"
if "bulk" in gen:
    b = gen["bulk"]
    print("bulk", b["rows_per_s"])
    print("bulk_ch_cpu", round(float(b["ch_cpu_s"]) * 1e6 / int(b["rows"]), 2))
    print("json_cpu", b["cpu_us_per_row"])
if "exporter" in gen:
    x = gen["exporter"]
    print("exporter", x["rows_per_s"])
    print("exporter_ch_cpu", round(float(x["ch_cpu_s"]) * 1e3 / int(x["inserts"]), 2))
if rollup:
    print("rollup", stat(rollup))
for phase in ("steady", "before"):
    if phase in ev:
        print(phase, stat([int(e["replayed_ms"]) for e in ev[phase]]))
if "steady" in ev:
    print("wall", stat([int(e["wall_ms"]) for e in ev["steady"]]))
    print("failed", stat([int(e["failed_reads"]) for e in ev["steady"]]))
if "steady" in mem:
    m = mem["steady"]
    durations = [float(x) for x in m["durations_ms"].split(",") if x]
    print("memeval", stat(durations))
    ranked = sorted(durations)
    print("memeval_p90", ranked[int(0.9 * (len(ranked) - 1))], "-", "-", len(ranked))
    print("memeval_mean", round(statistics.mean(durations), 1), "-", "-", len(ranked))
    print("memeval_start", m["start_ms"], "-", "-", 1)
    print("memeval_rss", round(int(m["rss_kib"]) / 1024, 1), "-", "-", 1)
print("disk", disk["traffic"]["bytes_per_mrow"])
print("disk_hourly", disk["traffic_hourly"]["bytes_per_mrow"])
PY
while read -r what a b c d; do
    case $what in
    bulk) result_line fleet.insert_rows_per_s_bulk "$a" - - 1 rows/s none ;;
    bulk_ch_cpu) result_line fleet.insert_ch_cpu_us_per_row "$a" - - 1 "µs" none ;;
    json_cpu) result_line fleet.row_text_cpu_us_per_row "$a" - - 1 "µs" none ;;
    exporter) result_line fleet.insert_rows_per_s_exporter "$a" - - 1 rows/s none ;;
    exporter_ch_cpu) result_line fleet.insert_ch_cpu_ms_per_exporter_insert "$a" - - 1 ms none ;;
    rollup) result_line fleet.rollup_ms_per_hour "$a" "$b" "$c" "$d" ms none ;;
    # The target: under 10 % of the shipped [detect] interval (1 s).
    steady) result_line fleet.eval_ms "$a" "$b" "$c" "$d" ms "<= 100" ;;
    before) result_line fleet.eval_ms_before "$a" "$b" "$c" "$d" ms "<= 100" ;;
    wall) result_line fleet.eval_wall_ms_as_shipped "$a" "$b" "$c" "$d" ms "<= 100" ;;
    memeval) result_line fleet.eval_ms_memory "$a" "$b" "$c" "$d" ms "<= 100" ;;
    memeval_p90) result_line fleet.eval_ms_memory_p90 "$a" - - "$d" ms "<= 100" ;;
    memeval_mean) result_line fleet.eval_ms_memory_mean "$a" - - "$d" ms "<= 100" ;;
    memeval_start) result_line fleet.eval_start_ms_memory "$a" - - 1 ms none ;;
    memeval_rss) result_line fleet.eval_rss_mib_memory "$a" - - 1 MiB none ;;
    failed) result_line fleet.eval_failed_reads "$a" "$b" "$c" "$d" "" "<= 0" ;;
    disk) result_line fleet.disk_bytes_per_mrow "$a" - - 1 B none ;;
    disk_hourly) result_line fleet.disk_hourly_bytes_per_mrow "$a" - - 1 B none ;;
    esac
done <"$DIR/figures" | tee -a "$OUT"
echo "(output in $OUT)"
