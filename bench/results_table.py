#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the table at the top of bench/RESULTS.md from bench/results/.

Every benchmark prints, beside its human output, one line per figure it
judges:

    BENCH_RESULT {"metric": "...", "value": M, "min": A, "max": B, "runs": N,
                  "unit": "...", "target": "<= 35", "date": "...",
                  "commit": "...", "machine": "...", "command": "..."}

value is the median over the runs, min and max their range (null when the
run recorded no range), target an operator (<=, >=, <, >) and a number, or "none"
when the figure is reported without a target. Raw results are kept under
bench/results/DATE-COMMIT/, one or more files per run; any line of those
files holding "BENCH_RESULT {" is read, so a whole benchmark log can be kept
as it printed (keep them small). For each metric the newest line (by date)
fills its row.

    bench/results_table.py          rewrite the table in bench/RESULTS.md
    bench/results_table.py --check  exit 1 if the table is not what the
                                    results make (ctest runs this)
"""
import difflib
import json
import operator
import pathlib
import sys

BENCH = pathlib.Path(__file__).resolve().parent
RESULTS_MD = BENCH / "RESULTS.md"
RESULTS_DIR = BENCH / "results"
BEGIN = "<!-- results-table:begin (bench/results_table.py writes this; do not edit) -->"
END = "<!-- results-table:end -->"
TAG = "BENCH_RESULT "

# The rows, in the table's order: metric id, what it measures, and the
# method section of RESULTS.md that says how.
ROWS = [
    ("kernel.tls_est_v4_64", "Kernel, established TLS packet, IPv4 64 B, ns over the empty program", "kernel-cost-per-packet"),
    ("kernel.tls_est_v6vlan_1518", "Kernel, established TLS packet, IPv6 + VLAN 1518 B, ns over the empty program", "kernel-cost-per-packet"),
    ("kernel.hello_517_v4", "Kernel, 517 B ClientHello with its event, ns over the empty program", "kernel-cost-per-packet"),
    ("insitu.bulk_offloads_on", "Kernel in situ, bulk TLS download, offloads on, ns per wire packet", "kernel-cost-per-packet"),
    ("insitu.bulk_offloads_off", "Kernel in situ, bulk TLS download, offloads off, ns per packet", "kernel-cost-per-packet"),
    ("insitu.conn_offloads_on", "Kernel in situ, new TLS connections, offloads on, ns per packet", "kernel-cost-per-packet"),
    ("insitu.conn_offloads_off", "Kernel in situ, new TLS connections, offloads off, ns per packet", "kernel-cost-per-packet"),
    ("throughput.tcp1_offloads_on", "Throughput with / without the sensor, 1 TCP stream, offloads on", "throughput-impact"),
    ("throughput.tcp4_offloads_on", "Throughput with / without the sensor, 4 TCP streams, offloads on", "throughput-impact"),
    ("throughput.udp64_offloads_on", "Throughput with / without the sensor, 64 B UDP sent, offloads on", "throughput-impact"),
    ("throughput.tcp1_offloads_off", "Throughput with / without the sensor, 1 TCP stream, offloads off", "throughput-impact"),
    ("throughput.tcp4_offloads_off", "Throughput with / without the sensor, 4 TCP streams, offloads off", "throughput-impact"),
    ("throughput.udp64_offloads_off", "Throughput with / without the sensor, 64 B UDP sent, offloads off", "throughput-impact"),
    ("completeness.ebpf_pct_of_sent", "Live completeness, eBPF backend, packets accounted, % of sent", "live-completeness"),
    ("completeness.ebpf_cpu_vs_cheapest_libpcap", "Live completeness, eBPF daemon CPU / cheapest libpcap peer's", "live-completeness"),
    ("completeness.ebpf_lifetime_cpu_vs_libpcap_backend", "Live completeness, eBPF daemon CPU over its whole life / libpcap backend's", "live-completeness"),
    ("offline.user_pps", "Offline replay, `--datapath user`, packets/s", "offline-replay"),
    ("offline.user_pps_vs_softflowd", "Offline replay, `--datapath user` packets/s / softflowd's", "offline-replay"),
    ("offline.user1_pps", "Offline replay, `--datapath user --threads 1` (one core), packets/s", "offline-replay"),
    ("offline.user1_pps_vs_softflowd", "Offline replay, `--datapath user --threads 1` packets/s / softflowd's", "offline-replay"),
    ("offline.user_rss_vs_ndpiReader", "Offline replay, `--datapath user` peak RSS / ndpiReader's", "offline-replay"),
    ("offline.bpf_pps", "Offline replay, `--datapath bpf`, packets/s", "offline-replay"),
    ("offline.test_run_floor_pps_empty", "Offline replay floor: the empty program, one test run per packet, packets/s", "offline-replay"),
    ("memory.aggregator_bytes_per_client", "Memory per tracked client (aggregator client table)", "userspace-scale"),
    ("scale.steady_harvest_ms_1m_1m", "Harvest, 1M clients / 1M flows, 5 % changed (interval 1 s)", "userspace-scale"),
    ("scale.daemon_cpu_pct_1m_1m", "Daemon CPU at a 1 s harvest, 1M clients / 1M flows, 5 % changed, % of a core", "userspace-scale"),
    ("scale.idle_harvest_ms_1m_1m", "Harvest, 1M clients / 1M flows, nothing changed", "userspace-scale"),
    ("scale.lossless_flows_per_s", "Events, highest new TLS flows/s tried without loss (tables: see the command)", "userspace-scale"),
    ("alert.latency_s", "Alert after the threshold crossing", "alert-latency"),
    ("requests.cost_tls_est_v4_64", "Request counting, ns added per established TLS packet, IPv4 64 B (A/B against the program without it)", "request-counting"),
    ("requests.cost_tls_est_v4_1514", "Request counting, ns added per established TLS packet, client data IPv4 1514 B (A/B)", "request-counting"),
    ("requests.cost_tls_est_v6vlan_1518", "Request counting, ns added per established TLS packet, IPv6 + VLAN 1518 B (A/B)", "request-counting"),
    ("requests.cost_tls_est_s2c_v4_1514", "Request counting, ns added per established TLS packet, server data IPv4 1514 B (A/B)", "request-counting"),
    ("requests.cost_quic_est_v4_1242", "Request counting, ns added per established QUIC datagram, IPv4 1242 B (A/B)", "request-counting"),
    ("requests.accuracy_sequential_worst_pct", "Requests counted vs nginx's access log, sequential HTTP/1.1 and HTTP/2 (6 cases), worst error", "request-counting"),
    ("requests.h2_concurrent_ratio", "Requests counted / logged, 10 concurrent HTTP/2 streams on one connection (counted low by design)", "request-counting"),
    ("fleet.insert_rows_per_s_bulk", "Fleet, JSONEachRow inserts of history batches (500,000 rows), rows/s end to end", "fleet"),
    ("fleet.insert_ch_cpu_us_per_row", "Fleet, ClickHouse CPU per row inserted (JSONEachRow, big batches)", "fleet"),
    ("fleet.row_text_cpu_us_per_row", "Fleet, generator CPU per row: naming, row, JSON text, HTTP (the exporter's code)", "fleet"),
    ("fleet.insert_rows_per_s_exporter", "Fleet, inserts of one sensor's period each (as exporters send), rows/s, one client", "fleet"),
    ("fleet.insert_ch_cpu_ms_per_exporter_insert", "Fleet, ClickHouse CPU per insert of one sensor's period", "fleet"),
    ("fleet.rollup_ms_per_hour", "Fleet, hourly rollup of one hour (6 M rows), ms", "fleet"),
    ("fleet.eval_ms_memory", "Fleet, one evaluation of the shipped rules in memory (the default), 20 sensors x 5,000 clients, 24 h, wall ms, median (10 % of the 1 s interval)", "fleet"),
    ("fleet.eval_ms_memory_p90", "Fleet, the same evaluations' 90th percentile (those reading a new period's 20 batches)", "fleet"),
    ("fleet.eval_ms_memory_mean", "Fleet, the same evaluations' mean", "fleet"),
    ("fleet.eval_start_ms_memory", "Fleet, in-memory evaluator's start: the windows' span read once (rollup hours and raw periods), ms", "fleet"),
    ("fleet.eval_rss_mib_memory", "Fleet, in-memory evaluator's RSS (40,000 entities, 4 M cells)", "fleet"),
    ("fleet.eval_ms", "Fleet, one evaluation in SQL (evaluation = \"sql\"), 20 sensors x 5,000 clients, 24 h, statements uncut (10 % of the 1 s interval)", "fleet"),
    ("fleet.eval_ms_before", "Fleet, the same statements in the rule SQL before cea15cb (same run, in turn)", "fleet"),
    ("fleet.eval_wall_ms_as_shipped", "Fleet, `exfilmon fleet --once` as shipped (reads given up after 10 s), wall ms", "fleet"),
    ("fleet.eval_failed_reads", "Fleet, reads `exfilmon fleet --once` gave up on (10 s HTTP timeout), per evaluation", "fleet"),
    ("fleet.disk_bytes_per_mrow", "Fleet, ClickHouse disk per million traffic rows (system.parts)", "fleet"),
    ("fleet.disk_hourly_bytes_per_mrow", "Fleet, ClickHouse disk per million traffic_hourly rows", "fleet"),
    ("fleet.export_cpu_pct_100k", "Fleet export, sensor CPU added at 100,000 clients with traffic every second, % of a core", "fleet"),
    ("fleet.export_rss_mib_100k", "Fleet export, sensor memory added at 100,000 clients", "fleet"),
]


def read_results(root):
    """Every BENCH_RESULT line under root, newest per metric."""
    latest = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            at = line.find(TAG + "{")
            if at < 0:
                continue
            where = f"{path.relative_to(BENCH.parent)}:{lineno}"
            try:
                r = json.loads(line[at + len(TAG):])
            except json.JSONDecodeError as e:
                sys.exit(f"{where}: not a JSON object: {e}")
            missing = [k for k in ("metric", "value", "target", "date", "commit", "machine", "command") if k not in r]
            if missing:
                sys.exit(f"{where}: missing {', '.join(missing)}")
            r["source"] = where
            old = latest.get(r["metric"])
            if old is None or (r["date"], r["source"]) > (old["date"], old["source"]):
                latest[r["metric"]] = r
    return latest


def number(x):
    if x is None:
        return "?"
    if float(x).is_integer():
        return f"{int(x):,}"
    return f"{x:,.3f}".rstrip("0").rstrip(".")


COMPARE = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


def verdict(r):
    target = r["target"]
    if target == "none":
        return "no target"
    op, _, bound = target.partition(" ")
    try:
        met = COMPARE[op](r["value"], float(bound))
    except (KeyError, ValueError, TypeError):
        sys.exit(f"{r['source']}: target {target!r} is not 'OP N' with OP one of {' '.join(COMPARE)},"
                 " or the value is missing")
    return "met" if met else "**missed**"


def cell(text):
    return str(text).replace("|", "\\|")


def table(latest):
    out = ["| metric | target | current median (range) | verdict | date, commit | machine | command |",
           "|---|---|---|---|---|---|---|"]
    for metric, label, section in ROWS:
        r = latest.get(metric)
        name = f"[{label}](#{section})"
        if r is None:
            out.append(f"| {name} | | not measured | | | | |")
            continue
        judged = verdict(r)  # first: it names the file of a malformed target
        unit = f" {r['unit']}" if r.get("unit") else ""
        value = number(r["value"]) + unit
        if r.get("min") is not None and r.get("max") is not None:
            value += f" ({number(r['min'])}–{number(r['max'])}, {r.get('runs', '?')} runs)"
        target = "none"
        if r["target"] != "none":
            op, _, bound = r["target"].partition(" ")
            target = f"{op} {number(float(bound))}{unit}"
        out.append("| " + " | ".join([
            name, cell(target), cell(value), judged, cell(f"{r['date']}, {r['commit']}"),
            cell(r["machine"]), cell(f"`{r['command']}`")]) + " |")
    return "\n".join(out) + "\n"


def rewritten(text, new_table):
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        sys.exit(f"{RESULTS_MD}: the markers {BEGIN!r} and {END!r} are missing")
    return text[:start + len(BEGIN)] + "\n" + new_table + text[end:]


def main(argv):
    if argv not in ([], ["--check"]):
        sys.exit(__doc__)
    text = RESULTS_MD.read_text()
    new = rewritten(text, table(read_results(RESULTS_DIR)))
    if argv == ["--check"]:
        if new != text:
            print(f"{RESULTS_MD.relative_to(BENCH.parent)}: the table differs from what bench/results/ makes;"
                  " run bench/results_table.py and commit the result", file=sys.stderr)
            sys.stderr.writelines(difflib.unified_diff(text.splitlines(True), new.splitlines(True),
                                                       "RESULTS.md (committed)", "RESULTS.md (generated)"))
            return 1
        return 0
    RESULTS_MD.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
