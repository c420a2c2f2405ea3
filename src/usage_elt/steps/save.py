"""Saving statistics: a COPY into a staging table, then one upsert commits them all.

Up to ``DRIVER_COPY_MAX_ROWS`` statistics rows (one per customer) are copied by the driver on
one connection; more are copied by the executors, a connection per task.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame

from usage_elt.engines import transfer
from usage_elt.engines.postgres import Postgres
from usage_elt.errors import DataError
from usage_elt.steps.aggregate import STATISTICS_ARROW

log = logging.getLogger(__name__)

STATISTICS_DDL = """
CREATE TABLE IF NOT EXISTS statistics (
    customer_id               text PRIMARY KEY,
    total_visits              bigint NOT NULL CHECK (total_visits > 0),
    avg_satisfaction          double precision NOT NULL CHECK (avg_satisfaction BETWEEN 1 AND 5),
    avg_observed_satisfaction double precision CHECK (avg_observed_satisfaction BETWEEN 1 AND 5),
    imputed_scores            bigint NOT NULL CHECK (imputed_scores >= 0),
    avg_duration_s            double precision NOT NULL CHECK (avg_duration_s >= 0),
    total_clicks              bigint NOT NULL CHECK (total_clicks >= 0),
    first_visit               timestamptz NOT NULL,
    last_visit                timestamptz NOT NULL,
    run_id                    text NOT NULL,
    updated_at                timestamptz NOT NULL
)
"""

STAGING_DDL = """
CREATE UNLOGGED TABLE {staging} (
    _part                     integer NOT NULL,
    customer_id               text,
    total_visits              bigint,
    avg_satisfaction          double precision,
    avg_observed_satisfaction double precision,
    imputed_scores            bigint,
    avg_duration_s            double precision,
    total_clicks              bigint,
    first_visit               timestamptz,
    last_visit                timestamptz,
    run_id                    text
)
"""

_COLUMNS = [f.name for f in STATISTICS_ARROW]
# About 100 MB of Arrow on the driver at most (statistics rows are about 100 bytes each).
DRIVER_COPY_MAX_ROWS = 1_000_000
UPSERT_SQL = f"""
INSERT INTO statistics ({", ".join(_COLUMNS)}, updated_at)
SELECT {", ".join(_COLUMNS)}, now()
FROM {{staging}}
ON CONFLICT (customer_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS[1:])}, updated_at = EXCLUDED.updated_at
"""


def staging_table(run_id: str) -> str:
    return "statistics_staging_" + "".join(ch if ch.isalnum() else "_" for ch in run_id.lower())


def save_statistics(
    stats: DataFrame,
    pg: Postgres,
    run_id: str,
    rows: int,
    driver_copy_max_rows: int = DRIVER_COPY_MAX_ROWS,
) -> dict[str, int]:
    """Upsert the ``rows`` rows of ``stats`` into ``statistics`` all or nothing; returns the
    staged and upserted counts."""
    staging = staging_table(run_id)
    with pg.connect() as conn:
        conn.execute(STATISTICS_DDL)
        conn.execute(f"DROP TABLE IF EXISTS {staging}")
        conn.execute(STAGING_DDL.format(staging=staging))
        conn.commit()
    try:
        # Phase 1: the driver, or the executors a partition each, copy into the staging table.
        copy = transfer.ingest_from_driver if rows <= driver_copy_max_rows else transfer.ingest
        staged = copy(stats, pg.uri, staging, STATISTICS_ARROW)
        # Phase 2: one transaction checks the staging rows and upserts them.
        with pg.connect() as conn:
            present, distinct = conn.execute(
                f"SELECT count(*), count(DISTINCT customer_id) FROM {staging}"
            ).fetchone()
            if present != staged or distinct != present:
                raise DataError(
                    f"staging table {staging} holds {present} rows for {distinct} customers "
                    f"but {staged} were sent; statistics left unchanged"
                )
            log.debug("SQL: %s", UPSERT_SQL.format(staging=staging))
            upserted = conn.execute(UPSERT_SQL.format(staging=staging)).rowcount
            conn.commit()
    finally:
        _drop_quietly(pg, staging)
    log.info("upserted %d statistics rows through %s", upserted, staging)
    return {"staged": staged, "upserted": upserted}


def _drop_quietly(pg: Postgres, staging: str) -> None:
    try:
        pg.execute(f"DROP TABLE IF EXISTS {staging}")
    except Exception as exc:  # the run's own error matters more than the cleanup's
        log.warning("could not drop staging table %s: %s", staging, exc)
