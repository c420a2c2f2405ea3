"""Arrow between Spark executors and PostgreSQL, through ADBC: COPY out, COPY in.

Each Spark task opens its own ADBC connection, so rows never pass through the driver (but in
``ingest_from_driver``, for results small enough to hold there); the executors need
``adbc-driver-postgresql`` and ``pyarrow`` installed and must reach the server by the URI
given (over TCP on a cluster).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

import pyarrow as pa
from pydantic import SecretStr
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import LongType, StructField, StructType

log = logging.getLogger(__name__)

PARTITION_COLUMN = "_part"


def read_query(
    spark: SparkSession, uri: SecretStr, sql: str, schema: StructType, partitions: int = 1
) -> DataFrame:
    """A DataFrame of ``sql`` run inside PostgreSQL, fetched by ``partitions`` parallel tasks.

    ``sql`` must contain the placeholders ``$1`` (partition count) and ``$2`` (partition
    number) in a condition that splits its rows, or ignore them when ``partitions`` is 1.
    """
    target = to_arrow_schema(schema)
    secret = uri

    def fetch(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import adbc_driver_postgresql.dbapi as adbc

        for batch in batches:
            for part in batch.column(0).to_pylist():
                with adbc.connect(secret.get_secret_value()) as conn, conn.cursor() as cur:
                    cur.execute(sql, (partitions, part))
                    for record_batch in cur.fetch_record_batch():
                        yield _conform(record_batch, target)

    parts = spark.range(0, partitions, numPartitions=partitions)
    return parts.mapInArrow(fetch, schema)


def ingest(df: DataFrame, uri: SecretStr, table: str, arrow_schema: pa.Schema) -> int:
    """Append ``df`` to the existing ``table`` from the executors; returns the rows written.

    ``table`` has a leading integer column ``_part``: a task first deletes its partition's
    rows, then appends, in one transaction, so a retried task never writes twice.
    """
    secret = uri

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        rows = _append(secret, table, TaskContext.get().partitionId(), batches, arrow_schema)
        yield pa.RecordBatch.from_pydict({"rows": [rows]}, schema=pa.schema([("rows", pa.int64())]))

    result = df.mapInArrow(write, StructType([StructField("rows", LongType())]))
    return int(sum(r["rows"] for r in result.collect()))


def ingest_from_driver(df: DataFrame, uri: SecretStr, table: str, arrow_schema: pa.Schema) -> int:
    """Append ``df`` to ``table`` as partition 0 over one connection of the driver's.

    For results small enough to hold on the driver: one COPY, and no Python worker to start.
    """
    return _append(uri, table, 0, df.toArrow().to_batches(), arrow_schema)


def _append(
    uri: SecretStr, table: str, part: int, batches: Iterable[pa.RecordBatch], schema: pa.Schema
) -> int:
    """In one transaction: delete partition ``part`` of ``table``, then COPY the batches in."""
    import adbc_driver_postgresql.dbapi as adbc

    columns = [f.name for f in schema]
    with_part = pa.schema([pa.field(PARTITION_COLUMN, pa.int32()), *schema])
    rows = 0
    with adbc.connect(uri.get_secret_value()) as conn:
        with conn.cursor() as cur:
            cur.execute(f"DELETE FROM {table} WHERE {PARTITION_COLUMN} = $1", (part,))
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                batch = _conform(batch.select(columns), schema)
                part_column = pa.array([part] * batch.num_rows, pa.int32())
                batch = pa.RecordBatch.from_arrays([part_column, *batch.columns], schema=with_part)
                rows += cur.adbc_ingest(table, batch, mode="append")
        conn.commit()
    return rows


def _conform(batch: pa.RecordBatch, target: pa.Schema) -> pa.RecordBatch:
    """Rename and cast a batch to the target schema, column by column, by position."""
    arrays = [column.cast(field.type) for column, field in zip(batch.columns, target, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=target)
