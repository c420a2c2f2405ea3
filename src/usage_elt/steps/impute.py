"""Imputation of missing satisfaction scores with Spark MLlib, measured on held-out scores.

Candidates are compared on a held-out slice of the known scores (chosen by a seeded hash of
the session id, so the slice does not depend on partitioning): the global mean, the
customer's own observed mean, and MLlib tree ensembles. The best by RMSE imputes, after a
refit on every known score. Features that describe a customer's other sessions are computed
from the scores visible to the model: during evaluation the held-out scores are hidden, and
a row never sees its own score.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import StringIndexer, VectorAssembler
from pyspark.ml.regression import GBTRegressor, RandomForestRegressor
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from usage_elt.config import ModelSettings

log = logging.getLogger(__name__)

LABEL = "satisfaction"
MIN_SCORE, MAX_SCORE = 1.0, 5.0
CATEGORICAL = ["visitor_type", "contract_type", "offer", "internet_type", "payment_method"]
NUMERIC = [
    # session
    "duration_s", "clicks", "admin_pages", "admin_duration_s", "info_pages", "info_duration_s",
    "product_pages", "product_duration_s", "bounce_rate", "exit_rate", "page_value",
    "special_day", "operating_system", "browser", "region", "traffic_type", "hour_of_day",
    "weekday", "month", "is_weekend", "purchased_flag", "seconds_per_click", "product_share",
    "bounced",
    # customer
    "has_customer", "is_female", "age_band", "is_senior", "is_married", "has_dependents",
    "number_of_dependents",
    # contract
    "has_contract", "contract_months", "tenure_months", "paperless_billing", "services",
    "avg_monthly_gb_download", "monthly_charge", "total_charges", "total_refunds", "net_charges",
    # the customer's other sessions
    "other_sessions", "other_scores", "other_mean", "other_bounced_mean",
]  # fmt: skip
MISSING = -1.0


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
    feature_importances: dict[str, float] = field(default_factory=dict)
    residuals: list[dict[str, float]] = field(default_factory=list)

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
            "feature_importances": self.feature_importances,
        }


def holdout_flag(settings: ModelSettings) -> F.Column:
    """True for the known scores held out for evaluation: a seeded hash, stable everywhere."""
    bucket = F.pmod(F.xxhash64(F.col("session_id"), F.lit(settings.seed)), F.lit(10_000))
    return F.col(LABEL).isNotNull() & (bucket < F.lit(int(settings.holdout_fraction * 10_000)))


def with_history(sessions: DataFrame, visible: F.Column) -> DataFrame:
    """Add features of the customer's other sessions, from the scores where ``visible``."""
    by_customer = Window.partitionBy("customer_id")
    score = F.when(visible, F.col(LABEL).cast("double"))
    own_score = F.coalesce(score, F.lit(0.0))
    own_seen = F.when(score.isNotNull(), 1).otherwise(0)
    df = sessions.withColumns(
        {
            "_sum": F.sum(score).over(by_customer),
            "_cnt": F.count(score).over(by_customer),
            "_n": F.count(F.lit(1)).over(by_customer),
            "_bounced": F.sum("bounced").over(by_customer),
        }
    )
    other_scores = F.col("_cnt") - own_seen
    return df.withColumns(
        {
            "other_sessions": (F.col("_n") - 1).cast("double"),
            "other_scores": other_scores.cast("double"),
            "other_mean": F.when(
                other_scores > 0, (F.coalesce(F.col("_sum"), F.lit(0.0)) - own_score) / other_scores
            ),
            "other_bounced_mean": F.when(
                F.col("_n") > 1, (F.col("_bounced") - F.col("bounced")) / (F.col("_n") - 1)
            ),
        }
    ).drop("_sum", "_cnt", "_n", "_bounced")


def _features(df: DataFrame) -> DataFrame:
    """Numeric features with NULL replaced by a marker value the trees can split on."""
    filled = {name: F.coalesce(F.col(name).cast("double"), F.lit(MISSING)) for name in NUMERIC}
    strings = {name: F.coalesce(F.col(name), F.lit("(none)")) for name in CATEGORICAL}
    return df.withColumns({**filled, **strings})


def _pipeline(regressor) -> Pipeline:
    # One indexer for every categorical column: one pass over the rows to fit, not one each.
    indexer = StringIndexer(
        inputCols=CATEGORICAL, outputCols=[f"{name}_idx" for name in CATEGORICAL],
        handleInvalid="keep", stringOrderType="alphabetAsc",
    )  # fmt: skip
    assembler = VectorAssembler(
        inputCols=NUMERIC + [f"{name}_idx" for name in CATEGORICAL], outputCol="features"
    )
    return Pipeline(stages=[indexer, assembler, regressor])


def _regressors(settings: ModelSettings) -> dict:
    common = {"labelCol": LABEL, "featuresCol": "features", "seed": settings.seed,
              "maxBins": 64}  # fmt: skip
    return {
        "gbt": GBTRegressor(
            maxIter=settings.max_iter, maxDepth=settings.max_depth,
            stepSize=settings.step_size, subsamplingRate=0.8, **common,
        ),
        "random_forest": RandomForestRegressor(
            numTrees=max(20, settings.max_iter), maxDepth=min(settings.max_depth + 3, 12),
            featureSubsetStrategy="onethird", **common,
        ),
    }  # fmt: skip


def _clip(column: F.Column) -> F.Column:
    return F.least(F.greatest(column, F.lit(MIN_SCORE)), F.lit(MAX_SCORE))


def _metrics(df: DataFrame, prediction: str) -> Metrics:
    error = F.col(prediction) - F.col(LABEL).cast("double")
    row = df.agg(F.avg(error * error).alias("mse"), F.avg(F.abs(error)).alias("mae")).first()
    return Metrics(rmse=math.sqrt(row["mse"] or 0.0), mae=float(row["mae"] or 0.0))


def _sample(df: DataFrame, settings: ModelSettings, rows: int) -> DataFrame:
    if rows <= settings.max_train_rows:
        return df
    return df.sample(fraction=settings.max_train_rows / rows, seed=settings.seed)


def impute(enriched: DataFrame, settings: ModelSettings) -> Imputation:
    """Choose the best candidate on held-out scores, refit it on all known scores, impute."""
    base = enriched.withColumn("_holdout", holdout_flag(settings)).persist()
    counts = base.agg(
        F.count(LABEL).alias("known"), F.sum(F.col("_holdout").cast("int")).alias("holdout")
    ).first()
    known, holdout_rows = int(counts["known"]), int(counts["holdout"] or 0)
    if known - holdout_rows < 10 or holdout_rows < 5:
        raise ValueError(
            f"too few known satisfaction scores to train and evaluate ({known}); "
            "widen the processing window or load more sessions"
        )

    # Evaluation: history from training scores only; held-out scores are hidden.
    evaluation = _features(
        with_history(base, F.col(LABEL).isNotNull() & ~F.col("_holdout"))
    ).persist()
    train = evaluation.where(F.col(LABEL).isNotNull() & ~F.col("_holdout"))
    holdout = evaluation.where(F.col("_holdout"))
    train_rows = known - holdout_rows
    global_mean = float(train.agg(F.avg(LABEL)).first()[0])

    candidates: dict[str, Metrics] = {
        "global_mean": _metrics(holdout.withColumn("_p", F.lit(global_mean)), "_p"),
        "customer_mean": _metrics(
            holdout.withColumn(
                "_p", F.when(F.col("other_scores") > 0, F.col("other_mean"))
                .otherwise(F.lit(global_mean))
            ),
            "_p",
        ),
    }  # fmt: skip
    fitted: dict[str, PipelineModel] = {}
    sample = _sample(train, settings, train_rows)
    for name, regressor in _regressors(settings).items():
        model = _pipeline(regressor).fit(sample)
        scored = model.transform(holdout).withColumn("_p", _clip(F.col("prediction")))
        candidates[name] = _metrics(scored, "_p")
        fitted[name] = model
        log.info("candidate %s: held-out RMSE %.4f", name, candidates[name].rmse)
    chosen = min(candidates, key=lambda name: (candidates[name].rmse, name))
    residuals = _residuals(fitted, chosen, holdout, global_mean)
    evaluation.unpersist()

    # Imputation: history from every known score, the chosen candidate refit on all of them.
    final = _features(with_history(base, F.col(LABEL).isNotNull()))
    if chosen == "global_mean":
        all_mean = float(final.agg(F.avg(LABEL)).first()[0])
        predicted = final.withColumn("_p", F.lit(all_mean))
    elif chosen == "customer_mean":
        all_mean = float(final.agg(F.avg(LABEL)).first()[0])
        predicted = final.withColumn(
            "_p", F.when(F.col("other_scores") > 0, F.col("other_mean")).otherwise(all_mean)
        )
    else:
        regressor = _regressors(settings)[chosen]
        known_rows = final.where(F.col(LABEL).isNotNull())
        model = _pipeline(regressor).fit(_sample(known_rows, settings, known))
        predicted = model.transform(final).withColumn("_p", F.col("prediction"))
        fitted[chosen] = model

    imputed = predicted.withColumns(
        {
            "observed_satisfaction": F.col(LABEL),
            "satisfaction_source": F.when(F.col(LABEL).isNotNull(), "observed").otherwise(
                "imputed"
            ),
            LABEL: F.coalesce(F.col(LABEL).cast("double"), _clip(F.col("_p"))),
        }
    )
    return Imputation(
        sessions=imputed,
        chosen=chosen,
        candidates=candidates,
        baseline="global_mean",
        known=known,
        train_rows=train_rows,
        holdout_rows=holdout_rows,
        feature_importances=_importances(fitted.get(chosen)),
        residuals=residuals,
    )


def _importances(model: PipelineModel | None, top: int = 15) -> dict[str, float]:
    if model is None:
        return {}
    regressor = model.stages[-1]
    names = NUMERIC + [f"{name}_idx" for name in CATEGORICAL]
    weights = regressor.featureImportances.toArray()
    ranked = sorted(zip(names, weights, strict=True), key=lambda item: -item[1])[:top]
    return {name: round(float(weight), 4) for name, weight in ranked}


def _residuals(
    fitted: dict[str, PipelineModel], chosen: str, holdout: DataFrame, global_mean: float
) -> list[dict[str, float]]:
    """Observed score and residual per held-out row of the chosen candidate, 2,000 at most."""
    if chosen in fitted:
        scored = fitted[chosen].transform(holdout).withColumn("_p", _clip(F.col("prediction")))
    elif chosen == "customer_mean":
        scored = holdout.withColumn(
            "_p", F.when(F.col("other_scores") > 0, F.col("other_mean")).otherwise(global_mean)
        )
    else:
        scored = holdout.withColumn("_p", F.lit(global_mean))
    rows = (
        scored.select(F.col(LABEL).cast("double").alias("observed"), F.col("_p").alias("predicted"))
        .orderBy(F.xxhash64("observed", "predicted"))
        .limit(2000)
        .collect()
    )
    return [{"observed": r["observed"], "predicted": round(r["predicted"], 4)} for r in rows]
