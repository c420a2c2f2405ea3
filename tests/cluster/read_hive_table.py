"""Read a Hive table through a metastore from a Spark application of its own.

Usage: python read_hive_table.py METASTORE_URI TABLE OUT.parquet DATA_DIR
Writes the table's rows to OUT.parquet and prints one JSON line: row count, the tables of
the table's database and the table's location.
"""

from __future__ import annotations

import json
import sys

from usage_elt.config import load_settings
from usage_elt.engines.spark import spark_session


def main(metastore_uri: str, table: str, out: str, data_dir: str) -> None:
    settings = load_settings(
        None,
        {
            "data_dir": data_dir,
            "hive": {"metastore_uri": metastore_uri},
            "spark": {"master": "local[1]", "driver_memory": "1g", "app_name": "hive-reader"},
        },
    )
    database = table.split(".")[0]
    with spark_session(settings) as spark:
        frame = spark.table(table)
        frame.toPandas().to_parquet(out, index=False)
        details = spark.sql(f"DESCRIBE TABLE EXTENDED {table}").collect()
        location = next(row.data_type for row in details if row.col_name == "Location")
        print(json.dumps({
            "rows": frame.count(),
            "tables": sorted(t.name for t in spark.catalog.listTables(database)),
            "location": location,
        }))  # fmt: skip


if __name__ == "__main__":
    main(*sys.argv[1:])
