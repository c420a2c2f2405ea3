"""The usage ELT end to end on real Spark, Hive and PostgreSQL."""

from __future__ import annotations

import json

import pandas as pd
import psycopg
import pytest
from click.testing import CliRunner
from pyspark.sql import functions as F

from usage_elt.cli import main
from usage_elt.engines import transfer
from usage_elt.engines.postgres import open_postgres
from usage_elt.status import run_dir
from usage_elt.steps import aggregate, save
from usage_elt.workflows.elt_usage import run_usage_elt
from usage_elt.workflows.init import Generation, run_init

from conftest import REAL_DATA, load_and_run, make_settings
from helpers import (
    STAT_COLUMNS,
    assert_statistics_match,
    expected_statistics,
    imputed_sessions,
    read_statistics,
)

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.postgres]


@pytest.fixture(scope="module")
def generated(spark, module_database, tmp_path_factory):
    """Generated data loaded and run once; tests below start from this state."""
    settings = make_settings(tmp_path_factory.mktemp("generated"), module_database, "web_gen")
    return settings, load_and_run(settings, Generation(sessions=4000, customers=600, seed=11))


def test_generated_run_reports_every_step(generated):
    settings, status = generated
    assert [s["name"] for s in status["steps"]] == [
        "connect", "access", "enrich", "impute", "write_imputed", "aggregate", "save",
    ]  # fmt: skip
    assert all(s["status"] == "succeeded" for s in status["steps"])
    assert status["rows"]["sessions"] == 4000
    imputation = status["metrics"]["imputation"]
    assert imputation["rmse"] < imputation["baseline_rmse"]
    assert {"global_mean", "customer_mean", "gbt", "random_forest"} <= set(imputation["candidates"])
    assert status["rows"]["statistics_upserted"] == status["rows"]["customers_with_sessions"]


def test_generated_statistics_equal_independent_computation(spark, generated):
    settings, status = generated
    imputed = imputed_sessions(spark, settings.hive.database)
    assert imputed["satisfaction"].notna().all()
    assert imputed["satisfaction"].between(1, 5).all()
    assert (imputed["satisfaction_source"] == "imputed").sum() == status["rows"]["sessions_imputed"]
    actual = read_statistics(settings.postgres.dsn.get_secret_value())
    assert_statistics_match(actual, expected_statistics(imputed))
    assert (actual["run_id"] == status["run_id"]).all()

    # The report's aggregates say the same as the rows.
    summary = status["metrics"]["statistics"]
    assert summary["customers"] == len(actual)
    assert summary["imputed_scores"] == actual["imputed_scores"].sum()
    mean = actual["avg_satisfaction"].mean()
    assert summary["avg_satisfaction_mean"] == pytest.approx(mean, abs=1e-4)
    folder = run_dir(settings.data_dir, status["run_id"])
    artifacts = json.loads((folder / "artifacts.json").read_text())
    by_source = imputed["satisfaction_source"].value_counts()
    for source in ("observed", "imputed"):
        bins = [b for b in artifacts["score_distribution"] if b["source"] == source]
        assert sum(b["sessions"] for b in bins) == by_source[source]


def test_each_session_gets_the_contract_active_at_its_start(spark, generated):
    settings, _ = generated
    contracts = pd.read_csv(settings.data_dir / "generated" / "contracts.csv")
    contracts["start"] = pd.to_datetime(contracts["start_date"]).astype("datetime64[us]")
    several = contracts.groupby("customer_id")["contract_id"].count()
    assert (several > 1).sum() > 50, "the generated data must hold customers with several contracts"

    imputed = imputed_sessions(spark, settings.hive.database)
    sessions = imputed[["session_id", "customer_id", "session_start", "contract_id"]].copy()
    sessions["session_start"] = sessions["session_start"].astype("datetime64[us]")
    # Independent rule: the contract with the latest start at or before the session start.
    expected = pd.merge_asof(
        sessions.sort_values("session_start"),
        contracts.sort_values(["start", "contract_id"])[["customer_id", "start", "contract_id"]],
        left_on="session_start", right_on="start", by="customer_id",
        suffixes=("", "_expected"), direction="backward",
    )  # fmt: skip
    got = expected["contract_id"].fillna("-")
    want = expected["contract_id_expected"].fillna("-")
    assert (got == want).all(), expected[got != want].head()
    multi = expected[expected["customer_id"].isin(several[several > 1].index)]
    spanning = multi.groupby("customer_id")["contract_id"].nunique()
    assert (spanning > 1).sum() > 10, "some customers' sessions must fall under several contracts"


def test_imputed_table_keeps_every_usage_column_as_loaded(spark, generated):
    settings, _ = generated
    db = settings.hive.database
    usage, imputed = spark.table(f"`{db}`.usage"), spark.table(f"`{db}`.usage_imputed")
    types = {field.name: field.dataType for field in imputed.schema.fields}
    kept = [field for field in usage.schema.fields if field.name != "satisfaction"]
    assert [(f.name, types.get(f.name)) for f in kept] == [(f.name, f.dataType) for f in kept]
    assert types["observed_satisfaction"] == usage.schema["satisfaction"].dataType
    # Row for row the same values (NULLs included); the observed score under its own name.
    loaded = usage.select(*[f.name for f in kept], F.col("satisfaction").alias("observed"))
    written = imputed.select(
        *[f.name for f in kept], F.col("observed_satisfaction").alias("observed")
    )
    assert imputed.count() == usage.count()
    assert loaded.exceptAll(written).count() == 0


def test_running_twice_gives_the_same_statistics(generated):
    settings, _ = generated
    uri = settings.postgres.dsn.get_secret_value()
    before = read_statistics(uri)
    again = run_usage_elt(settings)
    assert again["success"], again["error"]
    after = read_statistics(uri)
    pd.testing.assert_frame_equal(before[STAT_COLUMNS], after[STAT_COLUMNS])
    assert (after["run_id"] == again["run_id"]).all()


@pytest.mark.parametrize(
    ("driver_copy_max_rows", "path"), [(0, "ingest"), (10**9, "ingest_from_driver")]
)
def test_driver_and_executor_copies_upsert_the_same_rows(
    spark, generated, monkeypatch, driver_copy_max_rows, path
):
    settings, _ = generated
    used = []
    for name in ("ingest", "ingest_from_driver"):
        original = getattr(transfer, name)
        monkeypatch.setattr(
            transfer, name, lambda *a, _f=original, _n=name: used.append(_n) or _f(*a)
        )
    uri = settings.postgres.dsn.get_secret_value()
    imputed = imputed_sessions(spark, settings.hive.database)
    with psycopg.connect(uri) as conn:
        conn.execute("DELETE FROM statistics")
        conn.commit()
    table = f"`{settings.hive.database}`.usage_imputed"
    # Several partitions, so the executors' copy runs as several tasks.
    stats = aggregate.statistics(spark, table, imputed["run_id"].iloc[0]).repartition(3)
    with open_postgres(settings.postgres, settings.data_dir) as pg:
        saved = save.save_statistics(stats, pg, "copy-test", stats.count(), driver_copy_max_rows)
    expected = expected_statistics(imputed)
    assert used == [path]
    assert saved == {"staged": len(expected), "upserted": len(expected)}
    assert_statistics_match(read_statistics(uri), expected)


def _snapshot(uri: str) -> list[tuple]:
    with psycopg.connect(uri) as conn:
        return conn.execute("SELECT * FROM statistics ORDER BY customer_id").fetchall()


def test_bad_row_in_staging_leaves_statistics_untouched(generated, monkeypatch):
    settings, _ = generated
    uri = settings.postgres.dsn.get_secret_value()
    before = _snapshot(uri)
    # A rule the new rows break: the upsert fails inside its transaction.
    with psycopg.connect(uri) as conn:
        conn.execute(
            "ALTER TABLE statistics ADD CONSTRAINT few_visits CHECK (total_visits < 3) NOT VALID"
        )
        conn.commit()
    try:
        monkeypatch.setenv("USAGE_ELT_HIVE__DATABASE", settings.hive.database)
        monkeypatch.setenv("USAGE_ELT_MODEL__MAX_ITER", "10")
        result = CliRunner().invoke(
            main, ["--data-dir", str(settings.data_dir), "--pg-dsn", uri, "run"]
        )
    finally:
        with psycopg.connect(uri) as conn:
            conn.execute("ALTER TABLE statistics DROP CONSTRAINT few_visits")
            conn.commit()
    assert result.exit_code == 1, result.output
    status = json.loads(result.stdout.strip().splitlines()[-1])
    assert status["success"] is False
    assert status["error"]["step"] == "save"
    assert "few_visits" in status["error"]["message"]
    assert _snapshot(uri) == before


def test_connection_dropped_mid_save_leaves_statistics_untouched(generated):
    settings, _ = generated
    uri = settings.postgres.dsn.get_secret_value()
    before = _snapshot(uri)
    # The server ends the saving session after some rows of the upsert have gone in.
    with psycopg.connect(uri) as conn:
        conn.execute(
            """
            CREATE FUNCTION drop_connection() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.customer_id > (SELECT min(customer_id) FROM statistics) THEN
                    PERFORM pg_terminate_backend(pg_backend_pid());
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER drop_connection BEFORE INSERT ON statistics
                FOR EACH ROW EXECUTE FUNCTION drop_connection();
            """
        )
        conn.commit()
    try:
        status = run_usage_elt(settings)
    finally:
        with psycopg.connect(uri) as conn:
            conn.execute("DROP TRIGGER drop_connection ON statistics")
            conn.execute("DROP FUNCTION drop_connection()")
            conn.commit()
    assert status["success"] is False
    assert status["error"]["step"] == "save"
    assert _snapshot(uri) == before
    with psycopg.connect(uri) as conn:
        leftover = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'statistics_staging_%'"
        ).fetchone()[0]
    assert leftover == 0


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real input set not found at {REAL_DATA}")
def test_real_input_end_to_end(spark, database, tmp_path):
    settings = make_settings(tmp_path, database, "web_real")
    init = run_init(settings, data=REAL_DATA)
    assert init["success"], init["error"]
    assert init["rows"]["sessions"] == 12_330
    assert init["rows"]["customers_loaded"] == 7_043

    status = run_usage_elt(settings)
    assert status["success"], status["error"]
    statistics = read_statistics(database)
    assert len(statistics) == 3_754

    imputed = imputed_sessions(spark, "web_real")
    assert len(imputed) == 12_330
    assert imputed["satisfaction"].notna().all()
    scores = imputed.loc[imputed["satisfaction_source"] == "imputed", "satisfaction"]
    assert len(scores) == 3_945
    assert scores.between(1, 5).all()
    assert_statistics_match(statistics, expected_statistics(imputed))

    imputation = status["metrics"]["imputation"]
    candidates = imputation["candidates"]
    assert imputation["rmse"] <= 0.65, candidates
    assert imputation["rmse"] < candidates["customer_mean"]["rmse"], candidates
    assert imputation["rmse"] < candidates["global_mean"]["rmse"], candidates
    assert (run_dir(settings.data_dir, status["run_id"]) / "report.html").is_file()
