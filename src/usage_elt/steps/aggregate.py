"""Statistics per customer, computed in Spark SQL from the imputed sessions."""

from __future__ import annotations

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

STATISTICS_SQL = """
SELECT customer_id,
       CAST(count(*) AS BIGINT)                  AS total_visits,
       avg(satisfaction)                         AS avg_satisfaction,
       avg(CASE WHEN satisfaction_source = 'observed' THEN satisfaction END)
                                                 AS avg_observed_satisfaction,
       CAST(sum(CASE WHEN satisfaction_source = 'imputed' THEN 1 ELSE 0 END) AS BIGINT)
                                                 AS imputed_scores,
       avg(duration_s)                           AS avg_duration_s,
       CAST(sum(clicks) AS BIGINT)               AS total_clicks,
       min(session_start)                        AS first_visit,
       max(session_start)                        AS last_visit,
       :run_id                                   AS run_id
FROM {table}
WHERE run_id = :run_id
GROUP BY customer_id
"""

# The statistics rows as they travel to PostgreSQL.
STATISTICS_ARROW = pa.schema(
    [
        ("customer_id", pa.string()),
        ("total_visits", pa.int64()),
        ("avg_satisfaction", pa.float64()),
        ("avg_observed_satisfaction", pa.float64()),
        ("imputed_scores", pa.int64()),
        ("avg_duration_s", pa.float64()),
        ("total_clicks", pa.int64()),
        ("first_visit", pa.timestamp("us", tz="UTC")),
        ("last_visit", pa.timestamp("us", tz="UTC")),
        ("run_id", pa.string()),
    ]
)


def statistics(spark: SparkSession, imputed_table: str, run_id: str) -> DataFrame:
    """One row per customer with at least one session in the run's window."""
    return spark.sql(STATISTICS_SQL.format(table=imputed_table), args={"run_id": run_id})
