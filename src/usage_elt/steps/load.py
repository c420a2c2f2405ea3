"""Loading input files: usage sessions into Hive, with a quarantine for rows that break rules."""

from __future__ import annotations

import codecs
import csv
import logging
from functools import partial
from pathlib import Path

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from usage_elt.errors import InputFileError
from usage_elt.schemas import USAGE, FileSchema
from usage_elt.steps.extract import check_columns

log = logging.getLogger(__name__)

CORRUPT = "_corrupt_record"
BOM = "\ufeff"
DOUBLE_COLUMNS = [name for name, kind in USAGE.columns if kind == pa.float64()]

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
    """The column names of a CSV file's header row, after checking the whole file is UTF-8."""
    check_utf8(path)
    with path.open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise InputFileError(f"{path} is empty: expected a header row")
    if header[0].startswith(BOM):
        raise InputFileError(
            f"{path} starts with a byte order mark; save it as UTF-8 without BOM and load it again"
        )
    return [name.strip() for name in header]


def check_utf8(path: Path, chunk: int = 1 << 22) -> None:
    """Refuse a file that is not UTF-8 text, naming the byte offset of the first bad byte."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    try:
        with path.open("rb") as handle:
            while block := handle.read(chunk):
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    raise InputFileError(
                        f"{path} is not UTF-8 text (byte {offset + exc.start}); "
                        "save it as UTF-8 and load it again"
                    ) from None
                offset += len(block)
            decoder.decode(b"", final=True)
    except FileNotFoundError:
        raise InputFileError(f"{path} does not exist") from None
    except UnicodeDecodeError:
        raise InputFileError(f"{path} is not UTF-8 text: it ends inside a character") from None


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


def read_usage_csv(
    spark: SparkSession, path: Path, header: list[str] | None = None
) -> tuple[DataFrame, DataFrame]:
    """The valid sessions of ``path`` and the rejected ones, each rejected row with a reason.

    ``header`` is the file's header as ``check_header`` returned it; without it the file is
    checked here (a whole pass over it, for the UTF-8 check).
    """
    header = header if header is not None else check_header(path, USAGE)
    raw = (
        spark.read.option("header", True)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .option("timestampFormat", "yyyy-MM-dd'T'HH:mm:ss[.SSSSSS][.SSS][XXX]")
        .schema(spark_schema(header, USAGE))
        .csv(str(path.resolve()))
    )
    copies = F.count(F.lit(1)).over(Window.partitionBy("session_id"))
    checked = raw.withColumn("_copies", copies).withColumn("_reason", _reject_reason())
    valid = checked.where(F.col("_reason").isNull()).select(*USAGE.names)
    valid = valid.withColumn("session_date", F.to_date("session_start"))
    rejected = checked.where(F.col("_reason").isNotNull())
    explain = F.udf(partial(explain_corrupt, header), T.StringType(), useArrow=False)
    rejected = rejected.select(
        F.lit(USAGE.name).alias("source_file"),
        F.col("session_id"),
        F.when(F.col(CORRUPT).isNotNull(), explain(F.col(CORRUPT)))
        .otherwise(F.col("_reason"))
        .alias("reason"),
        F.coalesce(F.col(CORRUPT), F.to_json(F.struct(*USAGE.names))).alias("raw"),
    )
    return valid, rejected


def explain_corrupt(header: list[str], line: str | None) -> str | None:
    """Why a raw CSV line did not parse: its field count, or the first column and value."""
    if line is None:
        return None
    fields = next(csv.reader([line]), [])
    if len(fields) != len(header):
        return f"the row has {len(fields)} fields, expected {len(header)}"
    declared = dict(USAGE.columns)
    for name, value in zip(header, fields, strict=True):
        kind = declared.get(name)
        if kind is None or value == "":
            continue
        if not _parses(value, kind):
            return f"{name}={value!r} is not a valid {kind}"
    return f"a value does not parse as its declared type: {line[:200]}"


def _parses(value: str, kind: pa.DataType) -> bool:
    import datetime

    try:
        if kind in (pa.int32(), pa.int64()):
            return -(2**31) <= int(value) < 2**31 or kind == pa.int64()
        if kind == pa.float64():
            float(value)
        elif kind == pa.bool_():
            return value.lower() in ("true", "false")
        elif kind == pa.timestamp("us", tz="UTC"):
            return "T" in value and datetime.datetime.fromisoformat(value) is not None
    except ValueError:
        return False
    return True


def _reject_reason() -> F.Column:
    """The first rule a session breaks, as a message naming the column and value, or NULL."""
    rules: list[tuple[F.Column, F.Column]] = [
        (
            F.col(CORRUPT).isNotNull(),
            F.concat(F.lit("a value does not parse as its declared type: "), F.col(CORRUPT)),
        )
    ]
    for name in USAGE.required:
        empty = F.col(name).isNull()
        if name in ("session_id", "customer_id"):
            empty = empty | (F.trim(F.col(name)) == "")
        rules.append((empty, F.lit(f"required column {name} is empty")))
    for name in DOUBLE_COLUMNS:
        rules.append(
            (
                F.isnan(F.col(name)) | (F.abs(F.col(name)) == F.lit(float("inf"))),
                F.concat(F.lit(f"{name}="), F.col(name).cast("string"),
                         F.lit(" is not a finite number")),
            )
        )  # fmt: skip
    rules.append(
        (
            F.col("_copies") > 1,
            F.concat(F.lit("duplicate session_id "), F.col("session_id"), F.lit(" ("),
                     F.col("_copies").cast("string"), F.lit(" rows, all rejected)")),
        )
    )  # fmt: skip
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
