#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Where one fleet evaluation's time goes, from ClickHouse's query log.

Reads TSV lines on stdin (query_duration_ms, read_rows, memory_usage, the
query's first 6000 characters: bench/fleet.sh's select on system.query_log)
and prints one FLEET_SQL line per statement (its step: the rule read of an
entity kind and window, one entity's read, a breakdown for an alert, the
rollup, the alerts table...) and a FLEET_STEP line per step with the sum.
"""
import re
import sys


def step(q):
    times = [int(x) for x in re.findall(r"toDateTime\((\d+)\)", q)]
    window = f"{(max(times) - min(times)) // 60}m" if len(times) >= 2 else "-"
    entity = re.search(r"SELECT (\S+) AS k1, (\S+) AS k2", q)
    kind = {"client": "client", "subnet": "subnet", "sni": "sni", "cohort": "cohort",
            "ja4": "ja4", "''": "host"}.get(entity.group(1), entity.group(1)) if entity else "-"
    if entity and entity.group(2) == "sni":
        kind += "_sni"
    if q.startswith("SELECT k1, k2, sum(o)"):
        return ("one-entity read" if " AND k1 = " in q else "rule read") + f" {kind} {window}"
    m = re.match(r"SELECT (sensor|sni|ja4) AS name", q)
    if m:
        return f"breakdown by {m.group(1)} {kind} {window}"
    if "INSERT INTO" in q and "traffic_hourly" in q:
        return "hourly rollup"
    if "INSERT INTO" in q and ".alerts" in q:
        return "alerts table insert"
    if "system.parts" in q:
        return "retention check"
    if q.startswith("SELECT id, rule, entity_kind"):
        return "open alerts (start)"
    if "schema_info" in q:
        return "schema check (start)"
    return "other: " + q[:40]


steps = {}
for line in sys.stdin:
    f = line.rstrip("\n").split("\t", 3)
    if len(f) < 4:
        continue
    ms, rows, mem, q = int(f[0]), int(f[1]), int(f[2]), f[3]
    s = step(q)
    print(f"FLEET_SQL ms={ms} read_rows={rows} memory_mib={mem / 2**20:.0f} step={s.replace(' ', '_')}")
    t = steps.setdefault(s, [0, 0, 0])
    t[0] += 1
    t[1] += ms
    t[2] += rows
for s, (n, ms, rows) in sorted(steps.items(), key=lambda kv: -kv[1][1]):
    print(f"FLEET_STEP total_ms={ms} statements={n} read_rows={rows} step={s.replace(' ', '_')}")
