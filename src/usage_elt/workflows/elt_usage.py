"""The usage ELT: pushed-down access, enrichment, imputation, statistics, upsert, status."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import functions as F

from usage_elt import report
from usage_elt.config import Settings
from usage_elt.engines.spark import ensure_database
from usage_elt.errors import DataError
from usage_elt.logs import redact
from usage_elt.schemas import USAGE
from usage_elt.status import Run, StepRecord, summarize
from usage_elt.steps import access, aggregate, impute, save, transform
from usage_elt.workflows import runner

log = logging.getLogger(__name__)

WORKFLOW = "usage_elt"
IMPUTED_COLUMNS = [
    *[name for name in USAGE.names if name != "satisfaction"],
    "contract_id",
    "satisfaction",
    "observed_satisfaction",
    "satisfaction_source",
    "run_id",
    "session_date",
]


def run_parameters(settings: Settings) -> dict[str, Any]:
    """What the run was asked to do, without credentials."""
    return {
        "window": settings.window.model_dump(mode="json"),
        "model": settings.model.model_dump(mode="json"),
        "spark_master": settings.spark.master,
        "hive_database": settings.hive.database,
        "hive_metastore": settings.hive.metastore_uri or "embedded",
        "postgres": "embedded" if settings.postgres.embedded else "configured",
    }


def run_usage_elt(
    settings: Settings,
    run_id: str | None = None,
    parent_run_id: str | None = None,
    notify_people: bool = True,
) -> dict[str, Any]:
    """Run the usage ELT once with ``settings``; returns its status document, never raises."""

    def body(run: Run) -> None:
        with ExitStack() as stack:
            spark, pg = runner.connect(run, settings, stack, with_spark=True)
            _run_steps(run, settings, spark, pg)

    document = runner.execute(
        WORKFLOW, settings, body, parameters=run_parameters(settings), run_id=run_id,
        parent_run_id=parent_run_id, notify_people=notify_people,
    )  # fmt: skip
    try:
        report.write_report(settings.data_dir, document["run_id"])
    except Exception as exc:  # the run is done; a report that fails to render must not undo it
        log.warning("run %s: report not written: %s", document["run_id"], summarize(exc))
    return document


def _run_steps(run: Run, settings: Settings, spark, pg) -> None:
    db = settings.hive.database
    usage_table, imputed_table = f"`{db}`.usage", f"`{db}`.usage_imputed"

    def access_step(step: StepRecord):
        if not spark.catalog.tableExists(f"{db}.usage"):
            raise DataError(f"Hive table {db}.usage does not exist; run `usage-elt init` first")
        features = access.customer_contracts(spark, pg, settings.postgres.read_partitions)
        features = features.persist(StorageLevel.MEMORY_AND_DISK)
        sessions = access.sessions(spark, usage_table, settings.window.since, settings.window.until)
        step.rows = {"customer_contract_rows": features.count(), "sessions": sessions.count()}
        if step.rows["sessions"] == 0:
            raise DataError(
                f"no sessions in {db}.usage for the window since={settings.window.since} "
                f"until={settings.window.until}; widen the window or load sessions"
            )
        return features, sessions

    features, sessions = run.execute("access", access_step, settings.retry)

    with run.step("enrich") as step:
        enriched = transform.enrich(sessions, features).persist(StorageLevel.MEMORY_AND_DISK)
        counts = enriched.agg(
            F.count(F.lit(1)).alias("enriched"),
            F.sum(1 - F.col("has_contract")).alias("without_contract"),
            F.sum(1 - F.col("has_customer")).alias("unknown_customer"),
        ).first()
        step.rows = {
            "sessions_enriched": int(counts["enriched"]),
            "sessions_without_active_contract": int(counts["without_contract"]),
            "sessions_unknown_customer": int(counts["unknown_customer"]),
        }
        if step.rows["sessions_enriched"] != run.rows["sessions"]:
            raise DataError(
                f"enrichment turned {run.rows['sessions']} sessions into "
                f"{step.rows['sessions_enriched']} rows: contracts table has overlapping periods"
            )

    with run.step("impute") as step:
        imputation = impute.impute(enriched, settings.model)
        run.metrics["imputation"] = imputation.status()
        run.artifacts["residuals"] = imputation.residuals
        run.artifacts.update(imputation.diagnostics)
        step.rows = {"known_scores": imputation.known, "holdout_scores": imputation.holdout_rows}

    with run.step("write_imputed") as step:
        ensure_database(spark, db)
        out = imputation.sessions.withColumn("run_id", F.lit(run.run_id)).select(*IMPUTED_COLUMNS)
        out.repartition("session_date").write.mode("overwrite").format("parquet").partitionBy(
            "session_date"
        ).saveAsTable(imputed_table)
        written = spark.table(imputed_table).groupBy("satisfaction_source").count().collect()
        by_source = {row["satisfaction_source"]: int(row["count"]) for row in written}
        step.rows = {
            "sessions_imputed": by_source.get("imputed", 0),
            "sessions_observed": by_source.get("observed", 0),
        }
        run.artifacts["score_distribution"] = aggregate.score_distribution(
            spark, imputed_table, run.run_id
        )
        enriched.unpersist()
        features.unpersist()

    with run.step("aggregate") as step:
        stats = aggregate.statistics(spark, imputed_table, run.run_id).persist()
        step.rows = {"customers_with_sessions": stats.count()}
        run.metrics["statistics"] = aggregate.summary(stats)

    def save_step(step: StepRecord) -> None:
        rows = run.rows["customers_with_sessions"]
        saved = save.save_statistics(stats, pg, run.run_id, rows)
        step.rows = {"statistics_staged": saved["staged"], "statistics_upserted": saved["upserted"]}

    run.execute("save", save_step, settings.retry)
    stats.unpersist()
    log.info("run %s wrote %s", run.run_id, redact(str(run.rows)))
