"""Imputation of missing satisfaction scores with Spark MLlib, measured on held-out scores.

Candidates are compared on a held-out slice of the known scores (chosen by a seeded hash of
the session id, so the slice does not depend on partitioning): the global mean, the
customer's own observed mean, and MLlib tree ensembles. The best by RMSE imputes, refit on
every known score when that gives it more rows than it was trained on. Features that
describe a customer's other sessions never see the row's own score. Training rows see only
the other training scores, so no held-out score reaches the model; a held-out row sees every
other known score of its customer, as a missing score does when it is imputed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import StringIndexer, VectorAssembler
from pyspark.ml.regression import GBTRegressor, RandomForestRegressor
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from usage_elt.config import ModelSettings

log = logging.getLogger(__name__)

LABEL = "satisfaction"
MIN_SCORE, MAX_SCORE = 1.0, 5.0
LEVELS = (1, 2, 3, 4, 5)
BASELINES = ("global_mean", "customer_mean")
CATEGORICAL = ["visitor_type", "contract_type", "offer", "internet_type", "payment_method"]
SESSION = [
    "duration_s", "clicks", "admin_pages", "admin_duration_s", "info_pages", "info_duration_s",
    "product_pages", "product_duration_s", "bounce_rate", "exit_rate", "page_value",
    "special_day", "operating_system", "browser", "region", "traffic_type", "hour_of_day",
    "weekday", "month", "is_weekend", "purchased_flag", "seconds_per_click", "product_share",
    "bounced",
]  # fmt: skip
CUSTOMER = ["has_customer", "is_female", "age_band", "is_senior", "is_married", "has_dependents",
            "number_of_dependents"]  # fmt: skip
CONTRACT = [
    "has_contract", "contract_months", "tenure_months", "paperless_billing", "services",
    "avg_monthly_gb_download", "monthly_charge", "total_charges", "total_refunds", "net_charges",
]  # fmt: skip
HISTORY = [
    "other_sessions", "other_scores", "other_mean", "other_median", "other_min", "other_max",
    *[f"other_share_{level}" for level in LEVELS], "other_bounced_mean",
]  # fmt: skip
NUMERIC = SESSION + CUSTOMER + CONTRACT + HISTORY
MISSING = -1.0
RESIDUAL_BIN = 0.25
RESIDUAL_SAMPLE = 2_000
# Per-customer score totals are about 60 bytes a customer: broadcast them up to about 120 MB,
# well inside Spark's limits on collected results and broadcasts.
BROADCAST_MAX_CUSTOMERS = 2_000_000


@dataclass
class Metrics:
    rmse: float
    mae: float

    def as_dict(self) -> dict[str, float]:
        return {"rmse": round(self.rmse, 4), "mae": round(self.mae, 4)}


@dataclass
class Imputation:
    """The imputed sessions and how good the imputation is."""

    sessions: DataFrame
    chosen: str
    candidates: dict[str, Metrics]
    baseline: str
    known: int
    train_rows: int
    holdout_rows: int
    sample_rows: int
    refit: bool = False
    importances_of: str | None = None
    feature_importances: dict[str, float] = field(default_factory=dict)
    residuals: list[dict[str, float]] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def status(self) -> dict:
        return {
            "chosen": self.chosen,
            "baseline": self.baseline,
            "rmse": round(self.candidates[self.chosen].rmse, 4),
            "mae": round(self.candidates[self.chosen].mae, 4),
            "baseline_rmse": round(self.candidates[self.baseline].rmse, 4),
            "baseline_mae": round(self.candidates[self.baseline].mae, 4),
            "candidates": {name: m.as_dict() for name, m in self.candidates.items()},
            "known_scores": self.known,
            "train_rows": self.train_rows,
            "holdout_rows": self.holdout_rows,
            "model_sample_rows": self.sample_rows,
            "refit_on_all_known": self.refit,
            "importances_of": self.importances_of,
            "feature_importances": self.feature_importances,
        }


def holdout_flag(settings: ModelSettings) -> F.Column:
    """True for the known scores held out for evaluation: a seeded hash, stable everywhere."""
    bucket = F.pmod(F.xxhash64(F.col("session_id"), F.lit(settings.seed)), F.lit(10_000))
    return F.col(LABEL).isNotNull() & (bucket < F.lit(int(settings.holdout_fraction * 10_000)))


def with_history(
    sessions: DataFrame,
    visible: F.Column,
    broadcast: bool = True,
    rows: DataFrame | None = None,
) -> DataFrame:
    """Add features of the customer's other sessions, from the scores where ``visible``, to
    ``rows`` (some of ``sessions``; all of them when not given).

    A row never sees its own score: its count of each score level leaves itself out. The
    counts come from one narrow aggregation per customer joined back to the rows; with
    ``broadcast`` (for up to ``BROADCAST_MAX_CUSTOMERS``) the join ships the totals to every
    task, so the wide session rows are not shuffled for it.
    """
    score = F.when(visible, F.col(LABEL).cast("int"))
    own = {level: F.when(score == level, 1).otherwise(0) for level in LEVELS}
    totals = sessions.groupBy("customer_id").agg(
        *[F.sum(own[level]).alias(f"_t{level}") for level in LEVELS],
        F.count(F.lit(1)).alias("_n"),
        F.sum("bounced").alias("_bounced"),
    )
    rows = sessions if rows is None else rows
    df = rows.join(F.broadcast(totals) if broadcast else totals, "customer_id", "left")
    counts = {f"_n{level}": F.col(f"_t{level}") - own[level] for level in LEVELS}
    df = df.withColumns(counts).drop(*[f"_t{level}" for level in LEVELS])
    n = {level: F.col(f"_n{level}") for level in LEVELS}
    scores = sum(n.values(), F.lit(0))
    cumulative = {k: sum((n[j] for j in LEVELS if j <= k), F.lit(0)) for k in LEVELS}

    def level_at(rank: F.Column) -> F.Column:
        """The lowest level whose cumulative count reaches ``rank``."""
        return F.coalesce(*[F.when(cumulative[k] >= rank, F.lit(float(k))) for k in LEVELS])

    seen = {k: F.when(n[k] > 0, F.lit(float(k))) for k in LEVELS}
    some = scores > 0
    median = (level_at(F.floor((scores + 1) / 2)) + level_at(F.floor(scores / 2) + 1)) / 2
    return df.withColumns(
        {
            "other_sessions": (F.col("_n") - 1).cast("double"),
            "other_scores": scores.cast("double"),
            "other_mean": F.when(some, sum((k * n[k] for k in LEVELS), F.lit(0)) / scores),
            "other_median": F.when(some, median),
            "other_min": F.coalesce(*[seen[k] for k in LEVELS]),
            "other_max": F.coalesce(*[seen[k] for k in reversed(LEVELS)]),
            **{f"other_share_{k}": F.when(some, n[k] / scores) for k in LEVELS},
            "other_bounced_mean": F.when(
                F.col("_n") > 1, (F.col("_bounced") - F.col("bounced")) / (F.col("_n") - 1)
            ),
        }
    ).drop(*counts, "_n", "_bounced")


def _x(name: str) -> str:
    """The model's copy of column ``name``; the column itself is left as it is."""
    return f"_x_{name}"


# What scoring needs besides the model's inputs: the row, its score, the customer-mean rule.
CUSTOMER_MEAN_INPUTS = ["other_scores", "other_mean"]
SCORING = ["session_id", LABEL, *CUSTOMER_MEAN_INPUTS]


def _features(df: DataFrame, keep: list[str]) -> DataFrame:
    """The columns ``keep`` and the model's inputs: numbers as doubles with NULL replaced by a
    marker value the trees can split on, NULL categories as a value of their own."""
    filled = [F.coalesce(F.col(n).cast("double"), F.lit(MISSING)).alias(_x(n)) for n in NUMERIC]
    strings = [F.coalesce(F.col(n), F.lit("(none)")).alias(_x(n)) for n in CATEGORICAL]
    return df.select(*keep, *filled, *strings)


def _layout(df: DataFrame, partitions: int) -> DataFrame:
    """Rows in an order that depends on the data only, so seeded fits repeat exactly."""
    return df.repartition(partitions, "session_id").sortWithinPartitions("session_id")


def _pipeline(regressor) -> Pipeline:
    categories = [_x(name) for name in CATEGORICAL]
    indexed = [f"{name}_idx" for name in categories]
    indexer = StringIndexer(inputCols=categories, outputCols=indexed, handleInvalid="keep",
                            stringOrderType="alphabetAsc")  # fmt: skip
    numbers = [_x(name) for name in NUMERIC]
    assembler = VectorAssembler(inputCols=numbers + indexed, outputCol="_x_features")
    return Pipeline(stages=[indexer, assembler, regressor])


def _regressors(settings: ModelSettings) -> dict:
    common = {"labelCol": LABEL, "featuresCol": "_x_features", "seed": settings.seed,
              "maxBins": 64}  # fmt: skip
    return {
        "gbt": GBTRegressor(
            maxIter=settings.max_iter, maxDepth=settings.max_depth, stepSize=settings.step_size,
            subsamplingRate=0.8, minInstancesPerNode=10, **common,
        ),
        "random_forest": RandomForestRegressor(
            numTrees=max(20, settings.max_iter), maxDepth=min(settings.max_depth + 3, 12),
            featureSubsetStrategy="onethird", minInstancesPerNode=5, **common,
        ),
    }  # fmt: skip


def _clip(column: F.Column) -> F.Column:
    return F.least(F.greatest(column, F.lit(MIN_SCORE)), F.lit(MAX_SCORE))


def _scored(df: DataFrame, name: str, model: PipelineModel | None, mean: float) -> DataFrame:
    """``df`` with the candidate's prediction in ``_p``, kept inside 1..5."""
    if name == "global_mean":
        return df.withColumn("_p", F.lit(mean))
    if name == "customer_mean":
        own = F.when(F.col("other_scores") > 0, F.col("other_mean")).otherwise(F.lit(mean))
        return df.withColumn("_p", own)
    return model.transform(df).withColumn("_p", _clip(F.col("prediction")))


def _metrics(scored: DataFrame) -> Metrics:
    error = F.col("_p") - F.col(LABEL).cast("double")
    row = scored.agg(F.avg(error * error).alias("mse"), F.avg(F.abs(error)).alias("mae")).first()
    return Metrics(rmse=math.sqrt(row["mse"] or 0.0), mae=float(row["mae"] or 0.0))


def _sample(df: DataFrame, settings: ModelSettings, rows: int) -> tuple[DataFrame, int]:
    """At most about ``max_train_rows`` rows to fit on, a seeded sample of a fixed layout, kept
    in memory for the passes of the fit."""
    laid_out = _layout(df, settings.fit_partitions)
    if rows <= settings.max_train_rows:
        return laid_out.persist(), rows
    fraction = settings.max_train_rows / rows
    sample = laid_out.sample(fraction=fraction, seed=settings.seed)
    return sample.persist(), round(rows * fraction)


def impute(enriched: DataFrame, settings: ModelSettings) -> Imputation:
    """Choose the best candidate on held-out scores and impute the missing ones with it.

    The chosen model is refit on every known score only when that gives it more rows to learn
    from: when the training scores already fill the sample cap, the refit would fit on as many
    rows again, so the measured model imputes as it is.
    """
    base = enriched.withColumn("_holdout", holdout_flag(settings))
    is_known, is_training = F.col(LABEL).isNotNull(), F.col(LABEL).isNotNull() & ~F.col("_holdout")
    counts = base.agg(
        F.count(LABEL).alias("known"),
        F.sum(F.col("_holdout").cast("int")).alias("holdout"),
        F.avg(F.when(is_training, F.col(LABEL))).alias("training_mean"),
        F.avg(LABEL).alias("known_mean"),
        F.approx_count_distinct("customer_id").alias("customers"),
    ).first()
    known, holdout_rows = int(counts["known"]), int(counts["holdout"] or 0)
    if known - holdout_rows < 10 or holdout_rows < 5:
        raise ValueError(
            f"too few known satisfaction scores to train and evaluate ({known}); "
            "widen the processing window or load more sessions"
        )

    # Evaluation: training rows see training scores only; held-out rows every other known one.
    train_rows, training_mean = known - holdout_rows, float(counts["training_mean"])
    broadcast = int(counts["customers"]) <= BROADCAST_MAX_CUSTOMERS
    training, held_out = base.where(is_training), base.where(F.col("_holdout"))
    train = _features(with_history(base, is_training, broadcast, rows=training), SCORING)
    holdout = _features(with_history(base, is_known, broadcast, rows=held_out), SCORING).persist()
    candidates = {name: _metrics(_scored(holdout, name, None, training_mean)) for name in BASELINES}
    fitted: dict[str, PipelineModel] = {}
    sample, sample_rows = _sample(train, settings, train_rows)
    for name, regressor in _regressors(settings).items():
        fitted[name] = _pipeline(regressor).fit(sample)
        candidates[name] = _metrics(_scored(holdout, name, fitted[name], training_mean))
        log.info("candidate %s: held-out RMSE %.4f", name, candidates[name].rmse)
    sample.unpersist()
    chosen = min(candidates, key=lambda name: (candidates[name].rmse, name))
    evaluated = _scored(holdout, chosen, fitted.get(chosen), training_mean).persist()
    residuals, diagnostics = _residuals(evaluated, settings.seed), _diagnostics(evaluated)
    evaluated.unpersist()
    holdout.unpersist()

    # Imputation: history from every known score; only the missing scores are predicted.
    known_mean = float(counts["known_mean"])
    model = fitted.get(chosen)
    refit = model is not None and train_rows < settings.max_train_rows
    if refit:
        all_known = _features(
            with_history(base, is_known, broadcast, rows=base.where(is_known)), SCORING
        )
        known_sample, sample_rows = _sample(all_known, settings, known)
        model = fitted[chosen] = _pipeline(_regressors(settings)[chosen]).fit(known_sample)
        known_sample.unpersist()
    columns = [name for name in base.columns if name != "_holdout"]
    missing = _features(
        with_history(base, is_known, broadcast, rows=base.where(~is_known)),
        [*columns, *CUSTOMER_MEAN_INPUTS],
    )
    predicted = _scored(missing, chosen, model, known_mean).select(*columns, "_p")
    observed = base.where(is_known).select(*columns, F.lit(None).cast("double").alias("_p"))

    imputed = predicted.unionByName(observed).withColumns(
        {
            "observed_satisfaction": F.col(LABEL),
            "satisfaction_source": F.when(F.col(LABEL).isNotNull(), "observed").otherwise(
                "imputed"
            ),
            LABEL: F.coalesce(F.col(LABEL).cast("double"), F.round(_clip(F.col("_p")), 4)),
        }
    )
    importances_of = chosen if chosen in fitted else _best_model(candidates, fitted)
    return Imputation(
        sessions=imputed,
        chosen=chosen,
        candidates=candidates,
        baseline="global_mean",
        known=known,
        train_rows=train_rows,
        holdout_rows=holdout_rows,
        sample_rows=sample_rows,
        refit=refit,
        importances_of=importances_of,
        feature_importances=_importances(fitted.get(importances_of)),
        residuals=residuals,
        diagnostics=diagnostics,
    )


def _best_model(candidates: dict[str, Metrics], fitted: dict[str, PipelineModel]) -> str | None:
    return min(fitted, key=lambda name: (candidates[name].rmse, name)) if fitted else None


def _importances(model: PipelineModel | None, top: int = 15) -> dict[str, float]:
    if model is None:
        return {}
    regressor = model.stages[-1]
    names = NUMERIC + CATEGORICAL  # the assembler's order: numbers, then category indices
    weights = regressor.featureImportances.toArray()
    ranked = sorted(zip(names, weights, strict=True), key=lambda item: -item[1])[:top]
    return {name: round(float(weight), 4) for name, weight in ranked}


def _residuals(scored: DataFrame, seed: int) -> list[dict[str, float]]:
    """Observed score and prediction of held-out rows, a seeded sample of 2,000 at most."""
    rows = (
        scored.select(F.col(LABEL).cast("double").alias("observed"), F.col("_p").alias("predicted"))
        .orderBy(F.xxhash64(F.col("session_id"), F.lit(seed)), "session_id")
        .limit(RESIDUAL_SAMPLE)
        .collect()
    )
    return [{"observed": r["observed"], "predicted": round(r["predicted"], 4)} for r in rows]


def _diagnostics(scored: DataFrame) -> dict[str, Any]:
    """Held-out residuals in bins and the error per observed level, aggregated in Spark."""
    residual = F.col("_p") - F.col(LABEL).cast("double")
    bins = (
        scored.groupBy(F.floor(residual / RESIDUAL_BIN).alias("bin"))
        .count()
        .orderBy("bin")
        .collect()
    )
    levels = (
        scored.groupBy(F.col(LABEL).cast("int").alias("observed"))
        .agg(
            F.count(F.lit(1)).alias("count"),
            F.avg("_p").alias("mean_predicted"),
            F.sqrt(F.avg(residual * residual)).alias("rmse"),
        )
        .orderBy("observed")
        .collect()
    )
    return {
        "residual_histogram": [
            {"from": r["bin"] * RESIDUAL_BIN, "to": (r["bin"] + 1) * RESIDUAL_BIN,
             "count": int(r["count"])}
            for r in bins
        ],
        "by_level": [
            {"observed": r["observed"], "count": int(r["count"]),
             "mean_predicted": round(r["mean_predicted"], 4), "rmse": round(r["rmse"], 4)}
            for r in levels
        ],
    }  # fmt: skip
