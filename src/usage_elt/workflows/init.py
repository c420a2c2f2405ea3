"""Environment set-up: reset, generate or take input files, load them into PostgreSQL and Hive."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from usage_elt.config import Settings
from usage_elt.engines.postgres import Postgres, open_postgres
from usage_elt.engines.spark import ensure_database, spark_session
from usage_elt.errors import InputFileError
from usage_elt.logs import redact
from usage_elt.schemas import CONTRACTS, CUSTOMERS, USAGE
from usage_elt.status import Run
from usage_elt.steps import customers, load
from usage_elt.synthetic import generate

log = logging.getLogger(__name__)

WORKFLOW = "init"
# Dropped by --reset, dependants first.
POSTGRES_TABLES = ("statistics", "contracts", "customers")


@dataclass(frozen=True)
class Generation:
    sessions: int = 20_000
    customers: int = 4_000
    seed: int = 7


def run_init(
    settings: Settings,
    data: Path | None = None,
    generation: Generation | None = None,
    reset: bool = False,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Create (or reset) the environment and load one data folder; returns the status."""
    redact.add(*settings.secrets())
    parameters: dict[str, Any] = {"data": str(data) if data else None, "reset": reset}
    if generation is not None:
        parameters["generate"] = generation.__dict__
    run = Run(WORKFLOW, run_id, parameters=parameters)
    try:
        with ExitStack() as stack:
            with run.step("connect"):
                spark = stack.enter_context(spark_session(settings))
                pg = stack.enter_context(open_postgres(settings.postgres, settings.data_dir))
            if reset:
                with run.step("reset"):
                    _reset(spark, pg, settings.hive.database)
            if generation is not None:
                with run.step("generate") as step:
                    data = settings.data_dir / "generated"
                    step.rows = generate(
                        data, generation.sessions, generation.customers, generation.seed
                    )
            if data is None:
                raise InputFileError("give a data folder with --data, or --generate")
            with run.step("load_customers") as step:
                step.rows = _load_customers(pg, data)
            with run.step("load_usage") as step:
                ensure_database(spark, settings.hive.database)
                valid, rejected = load.read_usage_csv(spark, data / USAGE.name)
                step.rows = load.write_usage(spark, valid, rejected, settings.hive.database)
    except Exception as exc:
        run.fail(run.steps[-1].name if run.steps else "start", exc)
    return run.finish()


def _load_customers(pg: Postgres, data: Path) -> dict[str, int]:
    raw = load.read_csv_table(data / CUSTOMERS.name, CUSTOMERS)
    contracts = load.read_csv_table(data / CONTRACTS.name, CONTRACTS)
    return customers.upsert(pg, customers.anonymize(raw), contracts)


def _reset(spark, pg: Postgres, database: str) -> None:
    spark.sql(f"DROP DATABASE IF EXISTS `{database}` CASCADE")
    with pg.connect() as conn:
        for table in POSTGRES_TABLES:
            conn.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
        conn.commit()
    log.info("reset: dropped Hive database %s and PostgreSQL tables %s", database, POSTGRES_TABLES)
