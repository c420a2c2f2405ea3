"""The customers ETL: extract raw personal data and contracts, validate, anonymize, upsert."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from usage_elt.config import Settings
from usage_elt.engines.postgres import Postgres
from usage_elt.errors import ConfigError
from usage_elt.schemas import CONTRACTS, CUSTOMERS
from usage_elt.status import Run, StepRecord
from usage_elt.steps import customers, extract, validate
from usage_elt.workflows import runner

log = logging.getLogger(__name__)

WORKFLOW = "customers_etl"


def run_etl_customers(
    settings: Settings,
    run_id: str | None = None,
    parent_run_id: str | None = None,
    notify_people: bool = True,
) -> dict[str, Any]:
    """Run the customers ETL once with ``settings``; returns its status document, never raises."""
    sources = settings.customers_etl

    def body(run: Run) -> None:
        if not sources.customers or not sources.contracts:
            raise ConfigError("the customers ETL needs both --customers SRC and --contracts SRC")
        with ExitStack() as stack:
            _, pg = runner.connect(run, settings, stack, with_spark=False)
            run_customer_steps(run, pg, sources.customers, sources.contracts, settings)

    parameters = {"customers": sources.customers, "contracts": sources.contracts}
    return runner.execute(
        WORKFLOW, settings, body, parameters=parameters, run_id=run_id,
        parent_run_id=parent_run_id, notify_people=notify_people,
    )  # fmt: skip


def run_customer_steps(
    run: Run, pg: Postgres, customers_src: str, contracts_src: str, settings: Settings
) -> None:
    """Extract, validate, anonymize and load, each as a step of ``run``."""

    def extract_step(step: StepRecord) -> tuple[list, list]:
        customers_raw = list(extract.records(customers_src, CUSTOMERS))
        contracts_raw = list(extract.records(contracts_src, CONTRACTS))
        step.rows = {"customers_read": len(customers_raw), "contracts_read": len(contracts_raw)}
        return customers_raw, contracts_raw

    raw_customers, raw_contracts = run.execute("extract", extract_step, settings.retry)

    with run.step("validate") as step:
        today = datetime.now(UTC).date()
        checked_customers = validate.check_customers(customers_src, raw_customers, today)
        customers.create_tables(pg)
        known = customers.known_customer_ids(pg)
        known.update(checked_customers.table.column("customer_id").to_pylist())
        checked_contracts = validate.check_contracts(contracts_src, raw_contracts, today, known)
        step.rows = {
            "customers_valid": checked_customers.table.num_rows,
            "customers_rejected": len(checked_customers.rejects),
            "contracts_valid": checked_contracts.table.num_rows,
            "contracts_rejected": len(checked_contracts.rejects),
        }
        for source, checked in ((customers_src, checked_customers),
                                (contracts_src, checked_contracts)):  # fmt: skip
            if checked.rejects:
                lines = ", ".join(f"{r.line} ({r.field})" for r in checked.rejects[:20])
                more = f" and {len(checked.rejects) - 20} more" if len(checked.rejects) > 20 else ""
                log.warning("%s: rejected lines %s%s", source, lines, more)

    with run.step("anonymize") as step:
        anonymized = customers.anonymize(checked_customers.table)
        step.rows = {"customers_anonymized": anonymized.num_rows}

    batch = customers.Batch(
        customers=anonymized,
        contracts=checked_contracts.table,
        customers_source=customers_src,
        contracts_source=contracts_src,
        customer_rejects=checked_customers.rejects,
        contract_rejects=checked_contracts.rejects,
    )

    def load_step(step: StepRecord) -> None:
        step.rows = customers.upsert(pg, batch, run.run_id)

    run.execute("load", load_step, settings.retry)
