"""The floor of the save step: the statistics rows, as one Arrow table, bulk-copied in one go."""

from __future__ import annotations

import time

import adbc_driver_postgresql.dbapi as adbc

from usage_elt.steps.aggregate import STATISTICS_ARROW

TARGET = "statistics_raw_copy"


def run_raw_copy(pg_uri: str, attempts: int = 3) -> dict:
    """Copy the rows of ``statistics`` into a fresh table ``attempts`` times; keep the fastest.

    Each attempt opens a connection, creates the table through ADBC's bulk ingest (COPY),
    and commits: what any bulk load must do at least. Reading the rows is not timed.
    """
    columns = ", ".join(f.name for f in STATISTICS_ARROW)
    with adbc.connect(pg_uri) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT {columns} FROM statistics")
        table = cur.fetch_arrow_table().cast(STATISTICS_ARROW)
    timings = []
    for _ in range(attempts):
        with adbc.connect(pg_uri) as conn, conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {TARGET}")
            conn.commit()
        started = time.perf_counter()
        with adbc.connect(pg_uri) as conn, conn.cursor() as cur:
            rows = cur.adbc_ingest(TARGET, table, mode="create")
            conn.commit()
        timings.append(time.perf_counter() - started)
    best = min(timings)
    return {
        "seconds": round(best, 4),
        "attempts_s": [round(t, 4) for t in timings],
        "rows": {"statistics": int(rows)},
        "rows_per_s": round(rows / best, 1) if best > 0 else None,
        "arrow_mb": round(table.nbytes / 1024 / 1024, 2),
    }
