"""The orchestration: the customers ETL, then the usage ELT, with the caller's settings."""

from __future__ import annotations

from typing import Any

from usage_elt.config import Settings
from usage_elt.status import Run
from usage_elt.workflows import runner
from usage_elt.workflows.elt_usage import run_parameters, run_usage_elt
from usage_elt.workflows.etl_customers import run_etl_customers

WORKFLOW = "orchestration"


def run_orchestration(
    settings: Settings, run_id: str | None = None, parent_run_id: str | None = None
) -> dict[str, Any]:
    """Run both workflows in order, passing them these settings; one combined status.

    The usage ELT does not start when the customers ETL failed. The children send no email
    of their own: the orchestration sends one, naming what failed.
    """
    children: dict[str, dict[str, Any]] = {}

    def body(run: Run) -> None:
        with run.step("customers_etl") as step:
            etl = run_etl_customers(settings, parent_run_id=run.run_id, notify_people=False)
            children["customers_etl"] = etl
            step.rows = {f"customers_etl.{k}": v for k, v in etl["rows"].items()}
        if not etl["success"]:
            children["usage_elt"] = {
                "workflow": "usage_elt",
                "status": "skipped",
                "success": False,
                "reason": "the customers ETL failed",
            }
            run.fail_child("customers_etl", etl["error"])
            return
        with run.step("usage_elt") as step:
            elt = run_usage_elt(settings, parent_run_id=run.run_id, notify_people=False)
            children["usage_elt"] = elt
            step.rows = {f"usage_elt.{k}": v for k, v in elt["rows"].items()}
        if not elt["success"]:
            run.fail_child("usage_elt", elt["error"])

    parameters = {
        "customers": settings.customers_etl.customers,
        "contracts": settings.customers_etl.contracts,
        **run_parameters(settings),
    }
    document = runner.execute(
        WORKFLOW, settings, body, parameters=parameters, run_id=run_id,
        parent_run_id=parent_run_id,
        extra={"children": children},
    )  # fmt: skip
    return document
