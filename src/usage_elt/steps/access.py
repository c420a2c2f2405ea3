"""Access and transformation pushed down: one query inside PostgreSQL, one on the Hive table."""

from __future__ import annotations

import logging
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from usage_elt.engines import transfer
from usage_elt.engines.postgres import Postgres

log = logging.getLogger(__name__)

# Runs inside PostgreSQL: customers joined with every contract they hold, each contract with
# the period it was active (until the next one starts), customer and contract features derived.
# $1 and $2 split the rows between parallel readers.
CUSTOMER_CONTRACTS_SQL = """
WITH periods AS (
    SELECT k.*,
           LEAD(k.start_date) OVER (
               PARTITION BY k.customer_id ORDER BY k.start_date, k.contract_id
           ) AS end_date
    FROM contracts AS k
)
SELECT c.customer_id,
       (c.gender = 'Female')::int                          AS is_female,
       c.age_band,
       c.senior_citizen::int                               AS is_senior,
       c.married::int                                      AS is_married,
       c.dependents::int                                   AS has_dependents,
       c.number_of_dependents,
       p.contract_id,
       p.start_date::timestamptz                           AS contract_start,
       p.end_date::timestamptz                             AS contract_end,
       p.contract_type,
       CASE p.contract_type WHEN 'Month-to-Month' THEN 1
                            WHEN 'One Year' THEN 12
                            WHEN 'Two Year' THEN 24 END    AS contract_months,
       p.tenure_months,
       p.offer,
       p.internet_type,
       p.payment_method,
       p.paperless_billing::int                            AS paperless_billing,
       p.phone_service::int + p.unlimited_data::int + p.streaming_tv::int
         + p.streaming_movies::int + p.premium_tech_support::int AS services,
       p.avg_monthly_gb_download::float8                   AS avg_monthly_gb_download,
       p.monthly_charge,
       p.total_charges,
       p.total_refunds,
       p.total_charges - p.total_refunds                   AS net_charges
FROM customers AS c
LEFT JOIN periods AS p USING (customer_id)
WHERE mod(abs(hashtext(c.customer_id)::bigint), $1) = $2
"""

CUSTOMER_CONTRACTS_SCHEMA = T.StructType(
    [
        T.StructField("customer_id", T.StringType()),
        T.StructField("is_female", T.IntegerType()),
        T.StructField("age_band", T.IntegerType()),
        T.StructField("is_senior", T.IntegerType()),
        T.StructField("is_married", T.IntegerType()),
        T.StructField("has_dependents", T.IntegerType()),
        T.StructField("number_of_dependents", T.IntegerType()),
        T.StructField("contract_id", T.StringType()),
        T.StructField("contract_start", T.TimestampType()),
        T.StructField("contract_end", T.TimestampType()),
        T.StructField("contract_type", T.StringType()),
        T.StructField("contract_months", T.IntegerType()),
        T.StructField("tenure_months", T.IntegerType()),
        T.StructField("offer", T.StringType()),
        T.StructField("internet_type", T.StringType()),
        T.StructField("payment_method", T.StringType()),
        T.StructField("paperless_billing", T.IntegerType()),
        T.StructField("services", T.IntegerType()),
        T.StructField("avg_monthly_gb_download", T.DoubleType()),
        T.StructField("monthly_charge", T.DoubleType()),
        T.StructField("total_charges", T.DoubleType()),
        T.StructField("total_refunds", T.DoubleType()),
        T.StructField("net_charges", T.DoubleType()),
    ]
)

CUSTOMER_COLUMNS = [
    "customer_id",
    "is_female",
    "age_band",
    "is_senior",
    "is_married",
    "has_dependents",
    "number_of_dependents",
]

# Runs in Spark SQL on the Hive table: the sessions of the window and their features.
SESSIONS_SQL = """
SELECT session_id, customer_id, session_start, session_date,
       duration_s, clicks, satisfaction,
       admin_pages, admin_duration_s, info_pages, info_duration_s,
       product_pages, product_duration_s, bounce_rate, exit_rate, page_value, special_day,
       operating_system, browser, region, traffic_type, visitor_type, purchased,
       hour(session_start)                                       AS hour_of_day,
       dayofweek(session_start)                                  AS weekday,
       month(session_start)                                      AS month,
       CASE WHEN dayofweek(session_start) IN (1, 7) THEN 1 ELSE 0 END AS is_weekend,
       CAST(purchased AS INT)                                    AS purchased_flag,
       duration_s / GREATEST(clicks, 1)                          AS seconds_per_click,
       product_pages / GREATEST(clicks, 1)                       AS product_share,
       CASE WHEN clicks <= 1 OR bounce_rate >= 0.2 THEN 1 ELSE 0 END AS bounced
FROM {table}
{where}
"""


def customer_contracts(spark: SparkSession, pg: Postgres, partitions: int) -> DataFrame:
    """Customers with their contracts and features, computed inside PostgreSQL."""
    log.debug("SQL (PostgreSQL, %d readers): %s", partitions, CUSTOMER_CONTRACTS_SQL)
    return transfer.read_query(
        spark, pg.uri, CUSTOMER_CONTRACTS_SQL, CUSTOMER_CONTRACTS_SCHEMA, partitions
    )


def sessions(
    spark: SparkSession, table: str, since: datetime | None, until: datetime | None
) -> DataFrame:
    """The sessions of the window [since, until) with their features, from Spark SQL on Hive."""
    conditions, args = [], {}
    if since is not None:
        conditions += ["session_date >= to_date(:since)", "session_start >= :since"]
        args["since"] = since
    if until is not None:
        conditions += ["session_date <= to_date(:until)", "session_start < :until"]
        args["until"] = until
    where = ("WHERE " + " AND ".join(conditions)) if conditions else ""
    sql = SESSIONS_SQL.format(table=table, where=where)
    log.debug("SQL (Spark on Hive, args %s): %s", args, sql)
    return spark.sql(sql, args=args)
