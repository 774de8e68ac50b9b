"""The DuckDB baseline of the tracegate benchmark report.

Reads the Parquet segments a tracegate data dir holds and times, in one warm process,
the two questions the report asks tracegate too: all spans of one trace by id (no time
range), and the service graph's client -> server edges (a self-join of caller and
callee spans). Prints one JSON object on stdout.

usage: duckdb_queries.py SEGMENT_GLOB TRACE_ID_HEX[,TRACE_ID_HEX...] RUNS
"""

import json
import statistics
import sys
import time

import duckdb

# Callers are CLIENT (3) and PRODUCER (4) spans; callees SERVER (2) and CONSUMER (5),
# the same pairing tracegate's graph makes. status_code 2 is ERROR; an edge call is in
# error when either side is. Latencies are the caller's (client) and the callee's
# (server) durations in milliseconds; segment files store each span's duration (the
# end is start + duration).
GRAPH_SQL = """
WITH spans AS (
    SELECT trace_id, span_id, parent_span_id, kind, status_code, service,
           duration_nano / 1e6 AS duration_ms
    FROM read_parquet($glob)
)
SELECT c.service AS source,
       s.service AS target,
       count(*) AS calls,
       count(*) FILTER (WHERE c.status_code = 2 OR s.status_code = 2) AS errors,
       quantile_disc(c.duration_ms, [0.5, 0.9, 0.99]) AS client_ms,
       quantile_disc(s.duration_ms, [0.5, 0.9, 0.99]) AS server_ms
FROM spans AS c
JOIN spans AS s ON s.trace_id = c.trace_id AND s.parent_span_id = c.span_id
WHERE c.kind IN (3, 4) AND s.kind IN (2, 5)
GROUP BY ALL
ORDER BY source, target
"""

TRACE_SQL = "SELECT * FROM read_parquet($glob) WHERE trace_id = from_hex($id)"


def timed(run):
    started = time.perf_counter()
    result = run()
    return (time.perf_counter() - started) * 1e3, result


def main():
    glob, ids_text, runs_text = sys.argv[1:4]
    trace_ids = ids_text.split(",")
    runs = int(runs_text)
    con = duckdb.connect()
    settings = {}
    # Keep Parquet footers between queries where this DuckDB can: the strongest baseline.
    for name, value in [("enable_object_cache", "true"), ("parquet_metadata_cache", "true")]:
        try:
            con.execute(f"SET {name} = {value}")
            settings[name] = value
        except duckdb.Error:
            pass
    settings["threads"] = con.execute("SELECT current_setting('threads')").fetchone()[0]

    # Warm-up: one of each, not timed.
    con.execute(TRACE_SQL, {"glob": glob, "id": trace_ids[0]}).fetchall()
    con.execute(GRAPH_SQL, {"glob": glob}).fetchall()

    trace_times = []
    trace_rows = {}
    for _ in range(runs):
        for trace_id in trace_ids:
            ms, rows = timed(
                lambda: con.execute(TRACE_SQL, {"glob": glob, "id": trace_id}).fetchall()
            )
            trace_times.append(ms)
            trace_rows[trace_id] = len(rows)

    graph_times = []
    edges = []
    for _ in range(runs):
        ms, rows = timed(lambda: con.execute(GRAPH_SQL, {"glob": glob}).fetchall())
        graph_times.append(ms)
        edges = rows

    print(
        json.dumps(
            {
                "duckdb_version": duckdb.__version__,
                "settings": settings,
                "trace_by_id_ms": statistics.median(trace_times),
                "trace_by_id_samples": len(trace_times),
                "trace_rows": trace_rows,
                "graph_ms": statistics.median(graph_times),
                "graph_samples": len(graph_times),
                "edges": [
                    {
                        "source": source,
                        "target": target,
                        "calls": calls,
                        "errors": errors,
                        "p50_ms": client[0],
                        "p90_ms": client[1],
                        "p99_ms": client[2],
                        "server_p50_ms": server[0],
                        "server_p90_ms": server[1],
                        "server_p99_ms": server[2],
                    }
                    for source, target, calls, errors, client, server in edges
                ],
            }
        )
    )


if __name__ == "__main__":
    main()
