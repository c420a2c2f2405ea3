"""Enrichment in Spark: each session gets its customer and the contract active at its start."""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from usage_elt.steps.access import CUSTOMER_COLUMNS, CUSTOMER_CONTRACTS_SCHEMA

CONTRACT_COLUMNS = [
    f.name for f in CUSTOMER_CONTRACTS_SCHEMA.fields if f.name not in CUSTOMER_COLUMNS
]


def enrich(sessions: DataFrame, customer_contracts: DataFrame) -> DataFrame:
    """Sessions with customer features and the features of the contract active at the start.

    Contract periods come from PostgreSQL as [contract_start, contract_end), with an open end
    for a customer's latest contract. A session before a customer's first contract has no
    contract (``contract_id`` NULL, ``has_contract`` 0) but carries that first contract's
    features, which still describe the customer for the imputation model; a session of a
    customer without any contract keeps NULL contract columns. ``has_customer`` and
    ``has_contract`` say which sessions found a match.
    """
    customers = (
        customer_contracts.select(*CUSTOMER_COLUMNS)
        .dropDuplicates(["customer_id"])
        .withColumn("has_customer", F.lit(1))
    )
    first = Window.partitionBy("customer_id").orderBy("contract_start", "contract_id")
    contracts = (
        customer_contracts.where(F.col("contract_id").isNotNull())
        .withColumn("_first", F.row_number().over(first) == 1)
        .select(F.col("customer_id").alias("_contract_customer"), "_first", *CONTRACT_COLUMNS)
    )
    s = sessions.alias("s")
    started = F.col("contract_start") <= F.col("s.session_start")
    active = started & (
        F.col("contract_end").isNull() | (F.col("s.session_start") < F.col("contract_end"))
    )
    matches = (F.col("s.customer_id") == F.col("_contract_customer")) & (
        active | (F.col("_first") & ~started)
    )
    with_contract = s.join(contracts, matches, "left").withColumn(
        "contract_id", F.when(started, F.col("contract_id"))
    )
    enriched = with_contract.drop("_contract_customer", "_first").join(
        customers, "customer_id", "left"
    )
    return enriched.withColumns(
        {
            "has_customer": F.coalesce(F.col("has_customer"), F.lit(0)),
            "has_contract": F.col("contract_id").isNotNull().cast("int"),
        }
    )
