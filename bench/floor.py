"""The floor: the least a Spark job must do for these statistics, in plain Spark, no ML.

Read the sessions from Hive, join the customer features, group by customer, write Parquet.
"""

from __future__ import annotations

import time
from pathlib import Path

import adbc_driver_postgresql.dbapi as adbc
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

CUSTOMERS_SQL = """
SELECT customer_id, age_band, (gender = 'Female')::int AS is_female,
       senior_citizen::int AS is_senior
FROM customers
"""


def run_floor(spark: SparkSession, pg_uri: str, usage_table: str, out: Path) -> dict:
    """Run the floor job once; returns its seconds by phase and its row counts."""
    started = time.perf_counter()

    # Customer features: one query, one Arrow table on the driver, broadcast to the join.
    with adbc.connect(pg_uri) as conn, conn.cursor() as cur:
        cur.execute(CUSTOMERS_SQL)
        customers = spark.createDataFrame(cur.fetch_arrow_table())
    read_s = time.perf_counter() - started

    # Sessions joined with their customer, statistics per customer, written as Parquet.
    sessions = spark.table(usage_table)
    stats = (
        sessions.join(F.broadcast(customers), "customer_id", "left")
        .groupBy("customer_id")
        .agg(
            F.count(F.lit(1)).alias("total_visits"),
            F.avg("satisfaction").alias("avg_satisfaction"),
            F.avg("duration_s").alias("avg_duration_s"),
            F.sum("clicks").alias("total_clicks"),
            F.min("session_start").alias("first_visit"),
            F.max("session_start").alias("last_visit"),
            F.first("age_band").alias("age_band"),
            F.first("is_female").alias("is_female"),
        )
    )
    stats.write.mode("overwrite").parquet(str(out))
    seconds = time.perf_counter() - started
    rows = spark.read.parquet(str(out)).count()  # not timed: a check, not part of the job
    return {
        "seconds": round(seconds, 3),
        "steps": {
            "read_customers": round(read_s, 3),
            "join_group_write": round(seconds - read_s, 3),
        },
        "rows": {"statistics": rows},
    }
