#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Where one fleet evaluation's time goes, from ClickHouse's query log.

    fleet_profile.py URL SINCE [--replay]

Reads the statements ClickHouse started since SINCE (a Unix time; the
query log's QueryStart entries: bench/fleet.sh starts one evaluation just
after it) and prints one FLEET_SQL line per statement, with its step (the
rule read of an entity kind and window, one entity's read, a breakdown for
an alert, the rollup, the alerts table...) and how long it ran on the
server (-1: it never finished: the evaluator gave up waiting), then a
FLEET_STEP line per step and a FLEET_STATEMENTS total.

--replay runs every SELECT again, one after the other, with no client
timeout, and times it: what the evaluation costs when nothing is cut
short (the evaluator gives up a read after 10 s, skipping its rule, while
the server carries on with it: those are killed first).
"""
import re
import sys
import time
import urllib.request


def query(url, sql, query_id=None):
    if query_id:
        url += ("&" if "?" in url else "?") + "query_id=" + query_id
    with urllib.request.urlopen(url, data=sql.encode(), timeout=3600) as r:
        return r.read().decode()


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


def main(argv):
    if len(argv) not in (2, 3) or (len(argv) == 3 and argv[2] != "--replay"):
        sys.exit(__doc__)
    url, since, replay = argv[0], int(argv[1]), len(argv) == 3
    query(url, "SYSTEM FLUSH LOGS")
    rows = query(url, f"""
        SELECT query_id, replaceRegexpAll(anyIf(query, type = 1), '[\\n\\t]', ' '), maxIf(query_duration_ms, type = 2),
               maxIf(read_rows, type = 2), countIf(type = 2)
        FROM system.query_log
        WHERE event_time >= toDateTime({since}) AND query NOT LIKE '%system.query_log%'
          AND query NOT LIKE 'SYSTEM %' AND query_id NOT LIKE 'fleet-replay-%'
        GROUP BY query_id ORDER BY min(event_time), min(query_start_time)
        FORMAT TSVRaw""")
    if replay:
        # Reads the evaluator gave up on run on in the server: stop them, so
        # that the replay has the server to itself.
        query(url, "KILL QUERY WHERE query_id NOT LIKE 'fleet-replay-%' "
                   "AND query NOT LIKE '%system.processes%' SYNC FORMAT Null")
    steps = {}
    total = 0
    for line in rows.splitlines():
        qid, q, ms, read, done = line.split("\t")
        ms = int(ms) if int(done) else -1
        s = step(q)
        if replay:
            if not q.startswith("SELECT"):
                continue
            t0 = time.monotonic()
            query(url, q, f"fleet-replay-{time.time_ns()}")
            ms = round((time.monotonic() - t0) * 1000)
        print(f"FLEET_SQL ms={ms} read_rows={read} step={s.replace(' ', '_')}")
        t = steps.setdefault(s, [0, 0, 0])
        t[0] += 1
        t[1] += max(ms, 0)
        t[2] += int(ms < 0)
        total += max(ms, 0)
    for s, (n, ms, cut) in sorted(steps.items(), key=lambda kv: -kv[1][1]):
        print(f"FLEET_STEP total_ms={ms} statements={n} unfinished={cut} step={s.replace(' ', '_')}")
    print(f"FLEET_STATEMENTS total_ms={total} replayed={int(replay)}")


if __name__ == "__main__":
    main(sys.argv[1:])
