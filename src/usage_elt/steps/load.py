"""Loading input files: usage sessions into Hive, with a quarantine for rows that break rules."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from usage_elt.errors import InputFileError
from usage_elt.schemas import USAGE, FileSchema
from usage_elt.steps.extract import check_columns

log = logging.getLogger(__name__)

CORRUPT = "_corrupt_record"

_SPARK_TYPES: dict[pa.DataType, T.DataType] = {
    pa.string(): T.StringType(),
    pa.int32(): T.IntegerType(),
    pa.int64(): T.LongType(),
    pa.float64(): T.DoubleType(),
    pa.bool_(): T.BooleanType(),
    pa.date32(): T.DateType(),
    pa.timestamp("us", tz="UTC"): T.TimestampType(),
}


def read_header(path: Path) -> list[str]:
    """The column names of a CSV file's header row."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), None)
    except FileNotFoundError:
        raise InputFileError(f"{path} does not exist") from None
    except UnicodeDecodeError:
        raise InputFileError(
            f"{path} is not UTF-8 text; save it as UTF-8 and load it again"
        ) from None
    if not header:
        raise InputFileError(f"{path} is empty: expected a header row")
    return [name.strip() for name in header]


def check_header(path: Path, schema: FileSchema) -> list[str]:
    """Refuse a file whose header lacks a declared column; return the header."""
    header = read_header(path)
    check_columns(str(path), header, schema, schema.names)
    return header


def spark_schema(header: list[str], schema: FileSchema) -> T.StructType:
    """A Spark schema in the file's column order: declared types, strings for extra columns."""
    declared = dict(schema.columns)
    fields = [
        T.StructField(name, _SPARK_TYPES[declared[name]] if name in declared else T.StringType())
        for name in header
    ]
    return T.StructType([*fields, T.StructField(CORRUPT, T.StringType())])


def read_usage_csv(spark: SparkSession, path: Path) -> tuple[DataFrame, DataFrame]:
    """The valid sessions of ``path`` and the rejected ones, each rejected row with a reason."""
    header = check_header(path, USAGE)
    raw = (
        spark.read.option("header", True)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .option("timestampFormat", "yyyy-MM-dd'T'HH:mm:ss[.SSSSSS][.SSS][XXX]")
        .schema(spark_schema(header, USAGE))
        .csv(str(path.resolve()))
    )
    reason = _reject_reason()
    checked = raw.withColumn("_reason", reason)
    valid = checked.where(F.col("_reason").isNull()).select(*USAGE.names)
    valid = valid.withColumn("session_date", F.to_date("session_start"))
    rejected = checked.where(F.col("_reason").isNotNull()).select(
        F.lit(USAGE.name).alias("source_file"),
        F.col("session_id"),
        F.col("_reason").alias("reason"),
        F.coalesce(F.col(CORRUPT), F.to_json(F.struct(*USAGE.names))).alias("raw"),
    )
    return valid, rejected


def _reject_reason() -> F.Column:
    """The first rule a session breaks, as a message naming the column and value, or NULL."""
    rules: list[tuple[F.Column, F.Column]] = [
        (
            F.col(CORRUPT).isNotNull(),
            F.concat(F.lit("a value does not parse as its declared type: "), F.col(CORRUPT)),
        )
    ]
    for name in USAGE.required:
        rules.append((F.col(name).isNull(), F.lit(f"required column {name} is empty")))
    rules += [
        (
            ~F.col("satisfaction").between(1, 5),
            F.concat(
                F.lit("satisfaction="),
                F.col("satisfaction").cast("string"),
                F.lit(" is outside 1..5"),
            ),
        ),
        (
            F.col("duration_s") < 0,
            F.concat(
                F.lit("duration_s="), F.col("duration_s").cast("string"), F.lit(" is negative")
            ),
        ),
        (
            F.col("clicks") < 0,
            F.concat(F.lit("clicks="), F.col("clicks").cast("string"), F.lit(" is negative")),
        ),
    ]
    reason = F.lit(None).cast("string")
    for condition, message in reversed(rules):
        reason = F.when(F.coalesce(condition, F.lit(False)), message).otherwise(reason)
    return reason


def write_usage(spark: SparkSession, valid: DataFrame, rejected: DataFrame, database: str) -> dict:
    """Replace ``database.usage`` (Parquet, partitioned by session date) and its quarantine."""
    spark.sql(f"DROP TABLE IF EXISTS `{database}`.usage")
    valid.repartition("session_date").write.format("parquet").partitionBy(
        "session_date"
    ).saveAsTable(f"`{database}`.usage")
    rejected.write.mode("overwrite").format("parquet").saveAsTable(f"`{database}`.usage_rejected")
    loaded = spark.table(f"`{database}`.usage").count()
    quarantined = spark.table(f"`{database}`.usage_rejected").count()
    log.info("loaded %d sessions into %s.usage, %d rejected", loaded, database, quarantined)
    return {"sessions": loaded, "sessions_rejected": quarantined}
