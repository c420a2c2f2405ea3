"""How to reach Spark and Hive: one session, Hive support, any master."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.sql import SparkSession

from usage_elt.config import Settings
from usage_elt.errors import EngineError

log = logging.getLogger(__name__)


def spark_conf(settings: Settings) -> dict[str, str]:
    """The Spark configuration for these settings (Hive catalog, UTC, memory)."""
    data_dir = settings.data_dir.resolve()
    spark = settings.spark
    conf = {
        "spark.app.name": spark.app_name,
        "spark.master": spark.master,
        "spark.driver.memory": spark.driver_memory,
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(spark.shuffle_partitions),
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": f"-Duser.timezone=UTC -Dderby.system.home={data_dir}",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.executorEnv.TZ": "UTC",
    }
    if spark.executor_memory:
        conf["spark.executor.memory"] = spark.executor_memory
    if spark.master.startswith("local"):
        # A local driver talks to itself only: bind it to loopback, not every interface.
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    if settings.hive.metastore_uri:
        conf["spark.hadoop.hive.metastore.uris"] = settings.hive.metastore_uri
    else:
        conf["spark.sql.warehouse.dir"] = str(data_dir / "warehouse")
        conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = (
            f"jdbc:derby:;databaseName={data_dir / 'metastore_db'};create=true"
        )
    conf.update(spark.conf)
    return conf


@contextmanager
def spark_session(settings: Settings) -> Iterator[SparkSession]:
    """The active session if there is one (tests, notebooks), else a new one stopped on exit."""
    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise EngineError(
            "Spark needs Java 17 or newer and none was found: install a JDK "
            "(for example `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.spark.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Local Python workers run the driver's interpreter, with the same packages.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    started = time.monotonic()
    builder = SparkSession.builder
    for key, value in spark_conf(settings).items():
        builder = builder.config(key, value)
    try:
        session = builder.enableHiveSupport().getOrCreate()
    except Exception as exc:
        raise EngineError(
            f"Spark did not start with master {settings.spark.master!r}: {exc}"
        ) from exc
    session.sparkContext.setLogLevel("ERROR")
    log.info(
        "Spark %s ready in %.1fs (master %s)",
        session.version,
        time.monotonic() - started,
        settings.spark.master,
    )
    try:
        yield session
    finally:
        session.stop()


def ensure_database(spark: SparkSession, database: str) -> None:
    """Create the Hive database if it is missing."""
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{database}`")


def table_exists(spark: SparkSession, table: str) -> bool:
    return spark.catalog.tableExists(table)


def hive_location(settings: Settings) -> str:
    """Where the Hive metastore is, for messages and status."""
    if settings.hive.metastore_uri:
        return settings.hive.metastore_uri
    return f"embedded Derby in {Path(settings.data_dir) / 'metastore_db'}"
