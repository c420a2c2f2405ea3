"""The plain alternative: the same job in pandas and scikit-learn, in one process.

What a user would write instead of the pipeline: read the loaded sessions (the Hive table's
Parquet files) and the PostgreSQL tables, give each session the contract active at its
start, compare the same candidates on held-out scores (global mean, customer mean, gradient
boosting, random forest, with the pipeline's features and parameters), impute with the best,
compute the statistics per customer and write them to PostgreSQL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import adbc_driver_postgresql.dbapi as adbc
import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor

from usage_elt.config import ModelSettings
from usage_elt.steps.impute import CATEGORICAL, LABEL, MAX_SCORE, MIN_SCORE, MISSING, NUMERIC

OUT_TABLE = "statistics_pandas"
CUSTOMERS_SQL = """
SELECT customer_id, gender, age_band, senior_citizen, married, dependents, number_of_dependents
FROM customers
"""
CONTRACTS_SQL = "SELECT * FROM contracts"
CONTRACT_MONTHS = {"Month-to-Month": 1, "One Year": 12, "Two Year": 24}
SERVICES = ["phone_service", "unlimited_data", "streaming_tv", "streaming_movies",
            "premium_tech_support"]  # fmt: skip


class Phases:
    """Seconds per phase of the job."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 3)


def run_pandas(parquet_dir: Path, pg_uri: str, model: ModelSettings) -> dict:
    """Run the whole job once; returns seconds by phase, row counts and the model's metrics."""
    phase = Phases()
    started = time.perf_counter()
    with phase("read"):
        sessions = pd.read_parquet(parquet_dir)
        with adbc.connect(pg_uri) as conn:
            customers = pd.read_sql(CUSTOMERS_SQL, conn)
            contracts = pd.read_sql(CONTRACTS_SQL, conn)
    with phase("enrich"):
        df = enrich(sessions, customers, contracts)
        del sessions
    with phase("features"):
        df = categorize(session_features(df))
        known = df[LABEL].notna()
        bucket = pd.util.hash_pandas_object(df["session_id"], index=False).to_numpy() % 10_000
        holdout = known.to_numpy() & (bucket < int(model.holdout_fraction * 10_000))
        train = known.to_numpy() & ~holdout
    with phase("evaluate"):
        df = with_history(df, train)
        candidates, global_mean, fitted = evaluate(df, train, holdout, model)
        chosen = min(candidates, key=lambda name: (candidates[name]["rmse"], name))
    with phase("impute"):
        df = with_history(df, known.to_numpy())
        # As the pipeline: refit on every known score only when that adds training rows.
        refit = int(train.sum()) < model.max_train_rows
        imputed = impute(df, known.to_numpy(), chosen, model, None if refit else fitted)
    with phase("aggregate"):
        stats = statistics(imputed)
    with phase("write"):
        with adbc.connect(pg_uri) as conn:
            stats.to_sql(OUT_TABLE, conn, if_exists="replace", index=False)
            conn.commit()
    return {
        "seconds": round(time.perf_counter() - started, 3),
        "steps": phase.seconds,
        "rows": {"sessions": int(len(df)), "known_scores": int(known.sum()),
                 "holdout_scores": int(holdout.sum()), "statistics": int(len(stats))},
        "imputation": {"chosen": chosen, "candidates": candidates,
                       "global_mean": round(global_mean, 4)},
    }  # fmt: skip


def enrich(sessions: pd.DataFrame, customers: pd.DataFrame, contracts: pd.DataFrame):
    """Each session with its customer and the contract active at its start (latest start <=)."""
    contracts = contracts.sort_values(["customer_id", "start_date", "contract_id"]).copy()
    contracts["contract_start"] = pd.to_datetime(contracts["start_date"]).astype("datetime64[us]")
    contracts["contract_months"] = contracts["contract_type"].map(CONTRACT_MONTHS)
    contracts["services"] = contracts[SERVICES].astype(int).sum(axis=1)
    contracts["paperless_billing"] = contracts["paperless_billing"].astype(float)
    contracts["avg_monthly_gb_download"] = contracts["avg_monthly_gb_download"].astype(float)
    contracts["net_charges"] = contracts["total_charges"] - contracts["total_refunds"]
    contract_columns = [
        "customer_id", "contract_id", "contract_start", "contract_type", "contract_months",
        "tenure_months", "offer", "internet_type", "payment_method", "paperless_billing",
        "services", "avg_monthly_gb_download", "monthly_charge", "total_charges",
        "total_refunds", "net_charges",
    ]  # fmt: skip
    sessions["session_start"] = pd.to_datetime(sessions["session_start"]).astype("datetime64[us]")
    df = pd.merge_asof(
        sessions.sort_values("session_start"),
        contracts[contract_columns].sort_values("contract_start", kind="stable"),
        left_on="session_start", right_on="contract_start", by="customer_id",
        direction="backward",
    )  # fmt: skip
    people = customers.assign(
        has_customer=1,
        is_female=(customers["gender"] == "Female").astype(int),
        is_senior=customers["senior_citizen"].astype(float),
        is_married=customers["married"].astype(float),
        has_dependents=customers["dependents"].astype(float),
    ).drop(columns=["gender", "senior_citizen", "married", "dependents"])
    df = df.merge(people, on="customer_id", how="left")
    df["has_customer"] = df["has_customer"].fillna(0)
    df["has_contract"] = df["contract_id"].notna().astype(int)
    return df


def session_features(df: pd.DataFrame) -> pd.DataFrame:
    """The pipeline's session features (Spark's weekday: 1 is Sunday)."""
    start = df["session_start"].dt
    clicks = df["clicks"].clip(lower=1)
    df["hour_of_day"] = start.hour
    df["weekday"] = (start.dayofweek + 1) % 7 + 1
    df["month"] = start.month
    df["is_weekend"] = df["weekday"].isin([1, 7]).astype(int)
    df["purchased_flag"] = df["purchased"].astype(int)
    df["seconds_per_click"] = df["duration_s"] / clicks
    df["product_share"] = df["product_pages"] / clicks
    df["bounced"] = ((df["clicks"] <= 1) | (df["bounce_rate"] >= 0.2)).astype(int)
    return df


def with_history(df: pd.DataFrame, visible: np.ndarray) -> pd.DataFrame:
    """Set the features of the customer's other sessions, from the scores where ``visible``."""
    score = df[LABEL].where(visible).astype(float)
    by_customer = df.groupby("customer_id", sort=False)
    sessions = by_customer["session_id"].transform("size")
    bounced = by_customer["bounced"].transform("sum")
    levels = [1, 2, 3, 4, 5]
    counts = np.column_stack([
        (lambda own: own.groupby(df["customer_id"], sort=False).transform("sum") - own)(
            (score == k).astype(int)
        ).to_numpy()
        for k in levels
    ])  # fmt: skip
    scores = counts.sum(axis=1)
    some = scores > 0
    cumulative = counts.cumsum(axis=1)
    values = np.array(levels, dtype=float)

    def level_at(rank: np.ndarray) -> np.ndarray:
        return values[np.argmax(cumulative >= rank[:, None], axis=1)]

    median = (level_at((scores + 1) // 2) + level_at(scores // 2 + 1)) / 2
    present = counts > 0
    df["other_sessions"] = sessions - 1
    df["other_scores"] = scores.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        df["other_mean"] = np.where(some, (counts * values).sum(axis=1) / scores, np.nan)
        for index, k in enumerate(levels):
            df[f"other_share_{k}"] = np.where(some, counts[:, index] / scores, np.nan)
    df["other_median"] = np.where(some, median, np.nan)
    df["other_min"] = np.where(some, values[np.argmax(present, axis=1)], np.nan)
    df["other_max"] = np.where(some, values[4 - np.argmax(present[:, ::-1], axis=1)], np.nan)
    df["other_bounced_mean"] = ((bounced - df["bounced"]) / (sessions - 1)).where(sessions > 1)
    return df


def categorize(df: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns as pandas categories of the whole frame, sorted, NULL as a value of
    its own: every subset then codes a value alike."""
    for name in CATEGORICAL:
        df[name] = pd.Categorical(df[name].fillna("(none)"))
    return df


def feature_matrix(df: pd.DataFrame) -> np.ndarray:
    """Numeric features with NULL as the pipeline's marker, categories as sorted codes."""
    numeric = df[NUMERIC].astype(float).fillna(MISSING).to_numpy()
    codes = [df[name].cat.codes.to_numpy(dtype=float)[:, None] for name in CATEGORICAL]
    return np.hstack([numeric, *codes])


def regressors(model: ModelSettings) -> dict:
    """The pipeline's two tree ensembles, with its parameters."""
    return {
        "gbt": HistGradientBoostingRegressor(
            max_iter=model.max_iter, max_depth=model.max_depth, learning_rate=model.step_size,
            max_bins=64, early_stopping=False, random_state=model.seed,
        ),
        "random_forest": RandomForestRegressor(
            n_estimators=max(20, model.max_iter), max_depth=min(model.max_depth + 3, 12),
            max_features=1 / 3, n_jobs=-1, random_state=model.seed,
        ),
    }  # fmt: skip


def _metrics(predicted: np.ndarray, observed: np.ndarray) -> dict[str, float]:
    error = np.clip(predicted, MIN_SCORE, MAX_SCORE) - observed
    return {"rmse": round(float(np.sqrt(np.mean(error**2))), 4),
            "mae": round(float(np.mean(np.abs(error))), 4)}  # fmt: skip


def _sample(rows: np.ndarray, model: ModelSettings) -> np.ndarray:
    """Row positions to train on: all of them, or max_train_rows drawn with the seed."""
    positions = np.flatnonzero(rows)
    if len(positions) <= model.max_train_rows:
        return positions
    rng = np.random.default_rng(model.seed)
    return np.sort(rng.choice(positions, model.max_train_rows, replace=False))


def evaluate(df: pd.DataFrame, train: np.ndarray, holdout: np.ndarray, model: ModelSettings):
    """Every candidate's held-out RMSE and MAE; the global mean of the training scores."""
    observed = df.loc[holdout, LABEL].to_numpy(dtype=float)
    global_mean = float(df.loc[train, LABEL].mean())
    others = df.loc[holdout, "other_mean"].where(df.loc[holdout, "other_scores"] > 0)
    candidates = {
        "global_mean": _metrics(np.full(len(observed), global_mean), observed),
        "customer_mean": _metrics(others.fillna(global_mean).to_numpy(), observed),
    }
    fit_rows = _sample(train, model)
    x_fit = feature_matrix(df.iloc[fit_rows])
    y_fit = df[LABEL].iloc[fit_rows].to_numpy(dtype=float)
    x_holdout = feature_matrix(df.loc[holdout])
    fitted = regressors(model)
    for name, regressor in fitted.items():
        started = time.perf_counter()
        regressor.fit(x_fit, y_fit)
        candidates[name] = _metrics(regressor.predict(x_holdout), observed)
        candidates[name]["fit_and_score_s"] = round(time.perf_counter() - started, 3)
    return candidates, global_mean, fitted


def impute(
    df: pd.DataFrame, known: np.ndarray, chosen: str, model: ModelSettings, fitted=None
) -> pd.DataFrame:
    """Fill the missing scores with the chosen candidate: ``fitted[chosen]`` when given, else
    a model refit on every known score."""
    missing = ~known
    observed_mean = float(df.loc[known, LABEL].mean())
    if chosen == "global_mean":
        predicted = np.full(missing.sum(), observed_mean)
    elif chosen == "customer_mean":
        others = df.loc[missing, "other_mean"].where(df.loc[missing, "other_scores"] > 0)
        predicted = others.fillna(observed_mean).to_numpy()
    elif fitted is not None:
        predicted = fitted[chosen].predict(feature_matrix(df.loc[missing]))
    else:
        regressor = regressors(model)[chosen]
        fit_rows = _sample(known, model)
        regressor.fit(
            feature_matrix(df.iloc[fit_rows]), df[LABEL].iloc[fit_rows].to_numpy(dtype=float)
        )
        predicted = regressor.predict(feature_matrix(df.loc[missing]))
    out = df[["customer_id", "session_start", "duration_s", "clicks", LABEL]].copy()
    out["source"] = np.where(known, "observed", "imputed")
    out["observed"] = out[LABEL].astype(float)
    out[LABEL] = out[LABEL].astype(float)
    out.loc[missing, LABEL] = np.clip(predicted, MIN_SCORE, MAX_SCORE)
    return out


def statistics(imputed: pd.DataFrame) -> pd.DataFrame:
    """One row per customer with at least one session, as in the statistics table."""
    return (
        imputed.assign(imputed_flag=(imputed["source"] == "imputed").astype(int))
        .groupby("customer_id", sort=False)
        .agg(
            total_visits=(LABEL, "size"),
            avg_satisfaction=(LABEL, "mean"),
            avg_observed_satisfaction=("observed", "mean"),
            imputed_scores=("imputed_flag", "sum"),
            avg_duration_s=("duration_s", "mean"),
            total_clicks=("clicks", "sum"),
            first_visit=("session_start", "min"),
            last_visit=("session_start", "max"),
        )
        .reset_index()
    )
