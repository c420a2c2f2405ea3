"""The imputation on real Spark: history features, repeatable results, scores kept in 1..5."""

from __future__ import annotations

import statistics
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import functions as F

from usage_elt.config import ModelSettings
from usage_elt.engines.postgres import open_postgres
from usage_elt.steps import access, transform
from usage_elt.steps.impute import LEVELS, impute, with_history
from usage_elt.workflows.init import Generation, run_init

from conftest import make_settings

pytestmark = [pytest.mark.spark, pytest.mark.postgres]

MODEL = ModelSettings(seed=3, max_iter=6, max_depth=3)


@pytest.fixture(scope="module")
def loaded(spark, module_database, tmp_path_factory):
    """Generated sessions loaded into Hive and PostgreSQL, then enriched as a run does."""
    settings = make_settings(tmp_path_factory.mktemp("impute"), module_database, "web_impute")
    init = run_init(settings, generation=Generation(sessions=1500, customers=300, seed=5))
    assert init["success"], init["error"]
    with open_postgres(settings.postgres, settings.data_dir) as pg:
        features = access.customer_contracts(spark, pg, 1)
        sessions = access.sessions(spark, "`web_impute`.usage", None, None)
        enriched = transform.enrich(sessions, features).persist()
        enriched.count()
    yield settings, enriched
    enriched.unpersist()


@pytest.fixture(scope="module")
def imputed(loaded):
    _, enriched = loaded
    return impute(enriched, MODEL)


@pytest.mark.parametrize("broadcast", [True, False], ids=["broadcast", "shuffle"])
def test_history_leaves_out_the_row_itself_and_hidden_scores(spark, broadcast):
    rows = [  # customer, session, score, bounced; S4 is hidden from the others
        ("A", "S1", 1, 0), ("A", "S2", 2, 1), ("A", "S3", 2, 0), ("A", "S4", 5, 0),
        ("A", "S5", None, 1), ("B", "S6", 4, 0), ("C", "S7", None, 0), ("C", "S8", 3, 1),
    ]  # fmt: skip
    df = spark.createDataFrame(rows, "customer_id string, session_id string, satisfaction int, "
                               "bounced int")  # fmt: skip
    visible = F.col("satisfaction").isNotNull() & (F.col("session_id") != "S4")
    got = with_history(df, visible, broadcast).toPandas().set_index("session_id")

    for customer, session, _, _ in rows:
        others = [r for r in rows if r[0] == customer and r[1] != session]
        scores = [r[2] for r in others if r[2] is not None and r[1] != "S4"]
        row = got.loc[session]
        assert row["other_sessions"] == len(others)
        assert row["other_scores"] == len(scores)
        if scores:
            assert row["other_mean"] == pytest.approx(statistics.mean(scores))
            assert row["other_median"] == statistics.median(scores)
            assert (row["other_min"], row["other_max"]) == (min(scores), max(scores))
            for level in LEVELS:
                assert row[f"other_share_{level}"] == pytest.approx(
                    scores.count(level) / len(scores)
                )
        else:
            assert pd.isna(row["other_mean"]) and pd.isna(row["other_median"])
            assert pd.isna(row["other_min"]) and pd.isna(row["other_share_3"])
        bounced_others = [r[3] for r in others]
        if bounced_others:
            assert row["other_bounced_mean"] == pytest.approx(statistics.mean(bounced_others))


def test_same_input_and_seed_give_identical_imputed_values(spark, loaded, imputed):
    _, enriched = loaded
    # The same rows in another partitioning and order, under other shuffle settings.
    shuffled = enriched.repartition(5, F.xxhash64("customer_id")).sortWithinPartitions(
        F.col("session_id").desc()
    )
    first = imputed.sessions.select("session_id", "satisfaction").toPandas()
    partitions = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "7")
    try:
        again = impute(shuffled, MODEL)
        second = again.sessions.select("session_id", "satisfaction").toPandas()
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", partitions)
    assert again.chosen == imputed.chosen
    assert again.residuals == imputed.residuals
    assert {n: m.as_dict() for n, m in again.candidates.items()} == {
        n: m.as_dict() for n, m in imputed.candidates.items()
    }
    compared = first.merge(second, on="session_id", how="outer", suffixes=("_1", "_2"))
    assert len(compared) == len(first) == len(second) == enriched.count()
    assert (compared["satisfaction_1"] == compared["satisfaction_2"]).all()


def test_every_score_and_held_out_prediction_is_within_1_to_5(loaded, imputed):
    _, enriched = loaded
    scores = imputed.sessions.agg(
        F.count("satisfaction").alias("scored"),
        F.min("satisfaction").alias("low"),
        F.max("satisfaction").alias("high"),
        F.sum((F.col("satisfaction_source") == "imputed").cast("int")).alias("imputed"),
    ).first()
    assert scores["scored"] == enriched.count()
    assert scores["imputed"] == enriched.where(F.col("satisfaction").isNull()).count() > 0
    assert 1 <= scores["low"] <= scores["high"] <= 5
    assert len(imputed.residuals) == imputed.holdout_rows
    assert all(1 <= pair["predicted"] <= 5 for pair in imputed.residuals)
    histogram = imputed.diagnostics["residual_histogram"]
    assert sum(b["count"] for b in histogram) == imputed.holdout_rows
    assert all(-4 <= b["from"] < b["to"] <= 4.25 for b in histogram)


def test_status_records_every_candidate_and_the_best_imputes(imputed):
    status = imputed.status()
    candidates = status["candidates"]
    assert set(candidates) == {"global_mean", "customer_mean", "gbt", "random_forest"}
    assert all(
        set(m) == {"rmse", "mae"} and m["rmse"] >= m["mae"] >= 0 for m in candidates.values()
    )
    assert status["chosen"] == min(candidates, key=lambda name: candidates[name]["rmse"])
    assert status["rmse"] == candidates[status["chosen"]]["rmse"]
    assert status["train_rows"] + status["holdout_rows"] == status["known_scores"]
    # Fewer training scores than the cap: the chosen model learns again from every known one.
    assert status["train_rows"] < MODEL.max_train_rows
    if status["chosen"] in ("gbt", "random_forest"):
        assert status["refit_on_all_known"] is True
        assert status["model_sample_rows"] == status["known_scores"]
    assert status["feature_importances"] and status["importances_of"] in ("gbt", "random_forest")


def test_a_full_sample_imputes_with_the_measured_model(loaded):
    _, enriched = loaded
    # Every session its own customer: the customer's mean is the global mean, and the contract
    # features that drive the generated scores let a model win.
    solo = enriched.withColumn("customer_id", F.col("session_id"))
    uncapped = impute(solo, MODEL)
    assert uncapped.chosen in ("gbt", "random_forest")
    assert uncapped.refit is True  # fewer scores than the cap: it learned again from all
    # A cap just under the training scores: the same choice, and no second fit.
    cap = uncapped.train_rows - 1
    capped = impute(solo, MODEL.model_copy(update={"max_train_rows": cap}))
    status = capped.status()
    assert status["chosen"] == uncapped.chosen
    assert status["model_sample_rows"] == cap
    assert status["refit_on_all_known"] is False
    scores = capped.sessions.agg(F.min("satisfaction"), F.max("satisfaction"),
                                 F.count("satisfaction")).first()  # fmt: skip
    assert 1 <= scores[0] <= scores[1] <= 5 and scores[2] == enriched.count()


def test_sessions_before_the_first_contract_carry_its_features(loaded):
    settings, enriched = loaded
    contracts = pd.read_csv(Path(settings.data_dir) / "generated" / "contracts.csv")
    contracts["start"] = pd.to_datetime(contracts["start_date"])
    first = contracts.sort_values(["start", "contract_id"]).groupby("customer_id").first()
    early = (
        enriched.where(F.col("has_contract") == 0)
        .select("customer_id", "session_start", "contract_id", "contract_type")
        .toPandas()
    )
    assert len(early) > 0, "the generated data must hold sessions before a first contract"
    assert early["contract_id"].isna().all()
    expected = first.loc[early["customer_id"], "contract_type"].to_numpy()
    assert (early["contract_type"].to_numpy() == expected).all()
    starts = first.loc[early["customer_id"], "start"].to_numpy()
    assert (pd.to_datetime(early["session_start"]).to_numpy() < starts).all()
