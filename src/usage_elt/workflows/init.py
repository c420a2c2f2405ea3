"""Environment set-up: reset, generate or take input files, load them into PostgreSQL and Hive."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from usage_elt.config import Settings
from usage_elt.engines.postgres import Postgres
from usage_elt.engines.spark import ensure_database
from usage_elt.errors import InputFileError
from usage_elt.schemas import CONTRACTS, CUSTOMERS, USAGE
from usage_elt.status import Run
from usage_elt.steps import load
from usage_elt.synthetic import generate
from usage_elt.workflows import runner
from usage_elt.workflows.etl_customers import run_customer_steps

log = logging.getLogger(__name__)

WORKFLOW = "init"
# Dropped by --reset, dependants first.
POSTGRES_TABLES = (
    "statistics", "contracts", "customers", "contracts_rejected", "customers_rejected",
)  # fmt: skip


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
    parameters: dict[str, Any] = {"data": str(data) if data else None, "reset": reset}
    if generation is not None:
        parameters["generate"] = generation.__dict__

    def body(run: Run) -> None:
        folder = data
        with ExitStack() as stack:
            spark, pg = runner.connect(run, settings, stack, with_spark=True)
            if generation is not None:
                with run.step("generate") as step:
                    folder = settings.data_dir / "generated"
                    step.rows = generate(
                        folder, generation.sessions, generation.customers, generation.seed
                    )
            if folder is None:
                raise InputFileError("give a data folder with --data, or --generate")
            customers_src, contracts_src = folder / CUSTOMERS.name, folder / CONTRACTS.name
            # Every input is checked before --reset drops anything.
            with run.step("check_files"):
                sources = (folder / USAGE.name, customers_src, contracts_src)
                missing = [path.name for path in sources if not path.is_file()]
                if missing:
                    raise InputFileError(f"{folder}: missing {', '.join(missing)}")
                usage_header = load.check_header(folder / USAGE.name, USAGE)
                for path, schema in ((customers_src, CUSTOMERS), (contracts_src, CONTRACTS)):
                    load.check_header(path, schema)
            if reset:
                with run.step("reset"):
                    _reset(spark, pg, settings.hive.database)
            run_customer_steps(run, pg, str(customers_src), str(contracts_src), settings)
            with run.step("load_usage") as step:
                ensure_database(spark, settings.hive.database)
                valid, rejected = load.read_usage_csv(spark, folder / USAGE.name, usage_header)
                step.rows = load.write_usage(spark, valid, rejected, settings.hive.database)

    return runner.execute(
        WORKFLOW, settings, body, parameters=parameters, run_id=run_id, notify_people=False
    )


def _reset(spark, pg: Postgres, database: str) -> None:
    spark.sql(f"DROP DATABASE IF EXISTS `{database}` CASCADE")
    with pg.connect() as conn:
        for table in POSTGRES_TABLES:
            conn.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
        conn.commit()
    log.info("reset: dropped Hive database %s and PostgreSQL tables %s", database, POSTGRES_TABLES)
