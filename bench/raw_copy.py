"""The floor of the save step: the statistics rows, as one Arrow table, bulk-copied in one go;
and the floor of an all-or-nothing upsert of them: that copy plus the step's upsert statement."""

from __future__ import annotations

import time

import adbc_driver_postgresql.dbapi as adbc

from usage_elt.steps.aggregate import STATISTICS_ARROW
from usage_elt.steps.save import UPSERT_SQL

TARGET = "statistics_raw_copy"
UPSERT_TARGET = "statistics_upsert_floor"


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
    upserts = [_copy_and_upsert(pg_uri, table) for _ in range(attempts)]
    return {
        "seconds": round(best, 4),
        "attempts_s": [round(t, 4) for t in timings],
        "copy_and_upsert_s": round(min(upserts), 4),
        "copy_and_upsert_attempts_s": [round(t, 4) for t in upserts],
        "rows": {"statistics": int(rows)},
        "rows_per_s": round(rows / best, 1) if best > 0 else None,
        "arrow_mb": round(table.nbytes / 1024 / 1024, 2),
    }


def _copy_and_upsert(pg_uri: str, table) -> float:
    """Seconds to COPY ``table`` into a fresh staging table and upsert it, with the save step's
    statement, into an empty table shaped like ``statistics``, in one transaction. The save
    step of a first run does this much and no less."""
    sql = UPSERT_SQL.format(staging=TARGET).replace(
        "INSERT INTO statistics ", f"INSERT INTO {UPSERT_TARGET} ", 1
    )
    with adbc.connect(pg_uri) as conn, conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {TARGET}")
        cur.execute(f"DROP TABLE IF EXISTS {UPSERT_TARGET}")
        cur.execute(f"CREATE TABLE {UPSERT_TARGET} (LIKE statistics INCLUDING ALL)")
        conn.commit()
    started = time.perf_counter()
    with adbc.connect(pg_uri) as conn, conn.cursor() as cur:
        cur.adbc_ingest(TARGET, table, mode="create")
        cur.execute(sql)
        conn.commit()
    return time.perf_counter() - started
