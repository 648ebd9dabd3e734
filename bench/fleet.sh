#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The fleet benchmark (issue 18; bench/RESULTS.md, "Fleet"): a generated
# fleet written straight into a ClickHouse of its own, then
#  - insert throughput (JSONEachRow over HTTP, the exporter's client): bulk
#    history batches, and one sensor's period per insert as exporters send;
#  - the first `exfilmon fleet --once` (it rolls the history's closed hours
#    up), then the time of one evaluation of the shipped [[rules]]
#    (configs/exfilmon.toml), whole process, median of several;
#  - ClickHouse's disk per million rows (system.parts);
#  - where an evaluation's time goes (system.query_log: each statement);
#  - growth with sensors, clients and history: smaller fleets copied out of
#    the big one (raw rows and hourly rollup), each evaluated.
# ClickHouse is Debian's clickhouse-server with its own data directory on
# loopback, stopped and removed at the end, failure or not. Root not needed.
# Everything runs under nice 10 (a shared machine).
#
# Usage: bench/fleet.sh [--quick] [--runs N] [--out FILE]
#   EXFILMON (default $BUILD_DIR/userspace/exfilmon) and FLEET_GEN (default
#   $BUILD_DIR/bench/fleet_gen); BUILD_DIR defaults to build.
#   EXFILMON_BEFORE: another build's exfilmon, evaluated in turn with this
#   one (pairs), e.g. before a change of the rule SQL.
#   Full size: 20 sensors x 5,000 clients per minute, 24 h of 10 s periods
#   (150 M rows with the margin; about 20 min). --quick: 5 sensors x 1,000
#   clients, 3 h (under 2 min).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/result.sh"
result_start "$0" "$@"
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
EXFILMON=${EXFILMON:-$BUILD_DIR/userspace/exfilmon}
FLEET_GEN=${FLEET_GEN:-$BUILD_DIR/bench/fleet_gen}
EXFILMON_BEFORE=${EXFILMON_BEFORE:-}
QUICK=0 RUNS=5 OUT=/tmp/exf-fleet.$$.txt
while [[ $# -gt 0 ]]; do
    case $1 in
    --quick) QUICK=1 ;;
    --runs) RUNS=$2; shift ;;
    --out) OUT=$2; shift ;;
    *) echo "usage: $0 [--quick] [--runs N] [--out FILE]" >&2; exit 2 ;;
    esac
    shift
done
for f in "$EXFILMON" "$FLEET_GEN" /usr/sbin/clickhouse-server; do
    [[ -x $f ]] || { echo "$f: not found (build it, or install clickhouse-server)" >&2; exit 2; }
done

PERIOD=10 SENSORS=20 CLIENTS=5000 POOL=20000 HOURS=24 MARGIN=60 XMIN=5 GROWTH_RUNS=3
# Growth: sensors:clients:hours, copied out of the big fleet.
GROWTH="5:5000:24 10:5000:24 20:5000:24 20:1000:24 20:5000:1 20:5000:6"
if [[ $QUICK -eq 1 ]]; then
    SENSORS=5 CLIENTS=1000 POOL=4000 HOURS=3 MARGIN=15 XMIN=2 RUNS=3 GROWTH_RUNS=2
    GROWTH="2:1000:3 5:1000:3 5:500:3 5:1000:1"
fi
PULL=$((3 << 30))  # per 10 min over every sensor: a fleet alert (client-bulk-pull: 2 GiB)

# ---- ClickHouse of our own ------------------------------------------------
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

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
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
sql() { curl -sS --fail-with-body "$URL/" --data-binary "$1"; }
CH_VERSION=$(sql "SELECT version()")

config() {  # database -> path of an evaluator config with the shipped [detect] and [[rules]]
    local f=$DIR/$1.toml
    {
        printf '[fleet]\nclickhouse = "%s"\ndatabase = "%s"\n\n' "$URL" "$1"
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
} | tee "$OUT"
T0=$(date +%s)

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
echo "## JSONEachRow load of the last hour (30 periods of every sensor per insert)" | tee -a "$OUT"
load bulk --database $DB --from $((NOW - 3600)) --to "$NOW"
shift_copy() {  # from, to (s), shift (s, signed): the rows, the puller's excepted
    sql "INSERT INTO $DB.traffic SELECT toDateTime(toUInt32(period_start) + ($3)), period_ms, sensor,
         client, subnet, cohort, sni, ja4, bytes_in, bytes_out, packets_in, packets_out, tls_flows,
         peak_concurrent FROM $DB.traffic WHERE period_start >= toDateTime($1)
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

# Exporter-shaped inserts (one sensor's period each) into a database of
# their own.
XDB=exfilmon_inserts
"$EXFILMON" fleet init --config "$(config $XDB)" >/dev/null
echo "## exporter-shaped inserts: one sensor's period per insert, $XMIN min of periods" | tee -a "$OUT"
load exporter --database $XDB --from $((NOW - XMIN * 60)) --to "$NOW" --per-sensor
sql "DROP DATABASE $XDB"

# ---- evaluation ------------------------------------------------------------
echo "## first evaluation (rolls up the closed hours of the history)" | tee -a "$OUT"
echo "FLEET_EVAL db=$DB phase=first ms=$(evaluate_once "$CFG")" | tee -a "$OUT"
# Pairs: this tree's evaluator and EXFILMON_BEFORE's (another build), in
# turn, so that both see the same machine.
before=() after=()
for i in $(seq "$RUNS"); do
    after+=("$(evaluate_once "$CFG")")
    [[ -n $EXFILMON_BEFORE ]] && before+=("$(EXFILMON=$EXFILMON_BEFORE evaluate_once "$CFG")")
done
echo "FLEET_EVAL db=$DB phase=steady runs=$RUNS $(stats "${after[@]}")" | tee -a "$OUT"
[[ -n $EXFILMON_BEFORE ]] &&
    echo "FLEET_EVAL db=$DB phase=before runs=$RUNS $(stats "${before[@]}") binary=$EXFILMON_BEFORE" | tee -a "$OUT"
grep -c '"state":"open"' "$DIR/$DB-alerts.json" | sed 's/^/# alert records "open": /' | tee -a "$OUT" || true

# Where the time of the last evaluation (this tree's) went: its statements.
sql "SYSTEM FLUSH LOGS" >/dev/null 2>&1 || sleep 8
echo "## an evaluation's statements (system.query_log)" | tee -a "$OUT"
"$EXFILMON" fleet --config "$CFG" --once >>"$DIR/eval.log" 2>&1
sql "SYSTEM FLUSH LOGS" >/dev/null 2>&1 || sleep 8
sql "SELECT query_duration_ms, read_rows, memory_usage, replaceRegexpAll(substring(query, 1, 6000), '[\\n\\t]', ' ')
     FROM system.query_log WHERE type = 2 AND event_time >= now() - 600
       AND query_start_time >= (SELECT max(query_start_time) FROM system.query_log
                                 WHERE type = 2 AND query LIKE 'SELECT id, rule, entity_kind%')
     ORDER BY query_start_time FORMAT TabSeparated" |
    python3 "$ROOT/bench/fleet_profile.py" | tee -a "$OUT"

# ---- disk ------------------------------------------------------------------
echo "## disk" | tee -a "$OUT"
sql "OPTIMIZE TABLE $DB.traffic" >/dev/null 2>&1 || true
sql "SELECT table, sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes), count()
     FROM system.parts WHERE database = '$DB' AND active GROUP BY table ORDER BY table
     FORMAT TabSeparated" |
    awk -F'\t' '{printf "FLEET_DISK table=%s rows=%s bytes=%s uncompressed=%s parts=%s bytes_per_mrow=%.0f\n", $1, $2, $3, $4, $5, $2 ? $3 / $2 * 1e6 : 0}' |
    tee -a "$OUT"
echo "# du of the data directory: $(du -sb "$DIR/data" | cut -f1) B" | tee -a "$OUT"

# ---- growth ----------------------------------------------------------------
# Each size copied out of the big fleet, server-side: the sensors and pool
# clients it keeps, the history it keeps. Only the raw rows an evaluation
# reads are copied (the last 2 h, the margin, the first hour of the
# history), and the hourly rollup of the rest (the rollup sums per sensor
# and client, so a copied subset is what rolling the subset up gives).
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
    sql "INSERT INTO $gdb.traffic SELECT * FROM $DB.traffic WHERE $keep
         AND period_start >= toDateTime($first_hour)
         AND (period_start >= toDateTime($((NOW - 7200))) OR period_start < toDateTime($((first_hour / 3600 * 3600 + 3600))))"
    sql "INSERT INTO $gdb.traffic_hourly SELECT * FROM $DB.traffic_hourly FINAL WHERE $keep
         AND hour >= toDateTime($((first_hour / 3600 * 3600 + 3600)))"
    copy_ms=$(($(ms_now) - t0))
    rows=$(sql "SELECT (SELECT count() FROM $gdb.traffic) + (SELECT count() FROM $gdb.traffic_hourly)")
    first=$(evaluate_once "$gcfg")
    v=()
    for i in $(seq "$GROWTH_RUNS"); do v+=("$(evaluate_once "$gcfg")"); done
    echo "FLEET_GROWTH sensors=$s clients=$c hours=$h rows_copied=$rows copy_ms=$copy_ms first_ms=$first runs=$GROWTH_RUNS $(stats "${v[@]}")" |
        tee -a "$OUT"
    sql "DROP DATABASE $gdb"
done
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg); $(($(date +%s) - T0)) s" | tee -a "$OUT"

# ---- figures ---------------------------------------------------------------
python3 - "$OUT" <<'PY' >"$DIR/figures"
import sys
def kv(line): return dict(x.split("=", 1) for x in line.split()[1:])
gen, ev, disk = {}, {}, {}
for line in open(sys.argv[1]):
    if line.startswith("FLEET_GEN "): d = kv(line); gen[d["what"]] = d
    elif line.startswith("FLEET_EVAL "): d = kv(line); ev[d["phase"]] = d
    elif line.startswith("FLEET_DISK "): d = kv(line); disk[d["table"]] = d
b, x = gen["bulk"], gen["exporter"]
print("bulk", b["rows_per_s"])
print("bulk_ch_cpu", round(float(b["ch_cpu_s"]) * 1e6 / int(b["rows"]), 2))
print("json_cpu", b["cpu_us_per_row"])
print("exporter", x["rows_per_s"])
print("exporter_ch_cpu", round(float(x["ch_cpu_s"]) * 1e3 / int(x["inserts"]), 2))
print("first", ev["first"]["ms"])
for phase in ("steady", "before"):
    if phase in ev:
        e = ev[phase]
        print(phase, e["median_ms"], e["min_ms"], e["max_ms"], e["runs"])
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
    first) result_line fleet.first_eval_rollup_ms "$a" - - 1 ms none ;;
    # The target: under 10 % of the shipped [detect] interval (1 s).
    steady) result_line fleet.eval_ms "$a" "$b" "$c" "$d" ms "<= 100" ;;
    before) result_line fleet.eval_ms_before "$a" "$b" "$c" "$d" ms "<= 100" ;;
    disk) result_line fleet.disk_bytes_per_mrow "$a" - - 1 B none ;;
    disk_hourly) result_line fleet.disk_hourly_bytes_per_mrow "$a" - - 1 B none ;;
    esac
done <"$DIR/figures" | tee -a "$OUT"
echo "(output in $OUT)"
