"""Statistics per customer, computed in Spark SQL from the imputed sessions."""

from __future__ import annotations

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

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


# Runs in Spark SQL: observed and imputed scores of the run counted per bin of :width, the
# bins centred on 1, 1 + :width, ..., 5 so that each observed level has a bin of its own.
SCORE_DISTRIBUTION_SQL = """
SELECT satisfaction_source                                  AS source,
       CAST(FLOOR((satisfaction - 1) / :width + 0.5) AS INT) AS bin,
       CAST(count(*) AS BIGINT)                             AS sessions
FROM {table}
WHERE run_id = :run_id
GROUP BY 1, 2
ORDER BY 1, 2
"""
SCORE_BIN = 0.25


def score_distribution(spark: SparkSession, imputed_table: str, run_id: str) -> list[dict]:
    """Sessions per source (observed, imputed) and score bin of 0.25 centred on 1, 1.25, ..."""
    rows = spark.sql(
        SCORE_DISTRIBUTION_SQL.format(table=imputed_table),
        args={"width": SCORE_BIN, "run_id": run_id},
    ).collect()
    return [
        {"source": r["source"], "from": 1 + (r["bin"] - 0.5) * SCORE_BIN,
         "to": 1 + (r["bin"] + 0.5) * SCORE_BIN, "sessions": int(r["sessions"])}
        for r in rows
    ]  # fmt: skip


def summary(stats: DataFrame) -> dict[str, float | int | None]:
    """What the statistics rows say as a whole: counts, and the spread of the averages."""
    score = F.col("avg_satisfaction")
    row = stats.agg(
        F.count(F.lit(1)).alias("customers"),
        F.sum("total_visits").alias("sessions"),
        F.sum("imputed_scores").alias("imputed_scores"),
        F.sum(F.when(F.col("avg_observed_satisfaction").isNull(), 1).otherwise(0)).alias(
            "customers_without_observed_score"
        ),
        F.avg(score).alias("avg_satisfaction_mean"),
        F.min(score).alias("avg_satisfaction_min"),
        *[
            F.percentile_approx(score, q, 10_000).alias(f"avg_satisfaction_{name}")
            for name, q in (("p25", 0.25), ("median", 0.5), ("p75", 0.75))
        ],
        F.max(score).alias("avg_satisfaction_max"),
        F.avg("avg_observed_satisfaction").alias("avg_observed_satisfaction_mean"),
        F.avg("total_visits").alias("visits_per_customer_mean"),
        F.avg("avg_duration_s").alias("avg_duration_s_mean"),
    ).first()
    return {name: round(v, 4) if isinstance(v, float) else v for name, v in row.asDict().items()}
