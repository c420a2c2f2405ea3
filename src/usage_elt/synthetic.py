"""Synthetic input files of the real shape: same columns, realistic spreads, seeded.

Scores follow the customer (a personal base level, nudged by contract and session), about a
third are missing and more often for bounced sessions, and about a quarter of the customers
hold two or three successive contracts, the later ones starting during the session year.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from usage_elt.schemas import CONTRACT_TYPES, CONTRACTS, CUSTOMERS, USAGE

log = logging.getLogger(__name__)

YEAR_START = np.datetime64("2024-01-01T00:00:00", "s")
YEAR_SECONDS = 366 * 24 * 3600
CHUNK = 500_000
STATES = ["California", "Nevada", "Oregon", "Arizona", "Washington"]
OFFERS = ["None", "Offer A", "Offer B", "Offer C", "Offer D", "Offer E"]
INTERNET = ["Cable", "DSL", "Fiber Optic", "None"]
PAYMENTS = ["Bank Withdrawal", "Credit Card", "Mailed Check"]
VISITORS = ["Returning_Visitor", "New_Visitor", "Other"]


def _customer_ids(rng: np.random.Generator, count: int) -> np.ndarray:
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    suffix = rng.choice(letters, size=(count, 5))
    return np.array(
        [f"{i:05d}-{''.join(s)}" for i, s in zip(range(1, count + 1), suffix, strict=True)]
    )


def _yes_no(rng: np.random.Generator, p: float, size: int) -> np.ndarray:
    return np.where(rng.random(size) < p, "Yes", "No")


def generate(out_dir: Path, sessions: int, customers: int, seed: int) -> dict[str, int]:
    """Write customers.csv, contracts.csv and usage.csv into ``out_dir``; returns row counts."""
    if sessions < 1 or customers < 1:
        raise ValueError("--sessions and --customers must be at least 1")
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    ids = _customer_ids(rng, customers)
    base = np.clip(rng.normal(3.3, 0.9, customers), 1.0, 5.0)  # a customer's own level
    age = rng.integers(19, 81, customers)
    zips = rng.integers(90001, 96162, customers)
    pacsv.write_csv(
        pa.table(
            {
                "customer_id": ids,
                "gender": rng.choice(["Female", "Male"], customers),
                "age": age,
                "senior_citizen": np.where(age >= 65, "Yes", "No"),
                "married": _yes_no(rng, 0.48, customers),
                "dependents": _yes_no(rng, 0.23, customers),
                "number_of_dependents": rng.poisson(0.5, customers),
                "country": np.full(customers, "United States"),
                "state": rng.choice(STATES, customers, p=[0.6, 0.1, 0.1, 0.1, 0.1]),
                "city": rng.choice(["Springfield", "Riverside", "Fairview", "Lakeside"], customers),
                "zip_code": zips.astype(str),
                "latitude": np.round(rng.uniform(32.5, 42.0, customers), 6),
                "longitude": np.round(rng.uniform(-124.4, -114.1, customers), 6),
            }
        ).select(CUSTOMERS.names),
        out_dir / CUSTOMERS.name,
    )

    contract_rows, contract_type = _write_contracts(rng, out_dir, ids)
    type_bonus = np.select(
        [contract_type == "Two Year", contract_type == "One Year"], [0.35, 0.15], -0.1
    )
    level = np.clip(base + type_bonus, 1.0, 5.0)
    weights = rng.lognormal(0.0, 1.2, customers) * (rng.random(customers) < 0.55)
    if weights.sum() == 0:
        weights[0] = 1.0
    weights = weights / weights.sum()

    path = out_dir / USAGE.name
    writer = None
    try:
        for start in range(0, sessions, CHUNK):
            size = min(CHUNK, sessions - start)
            table = _sessions_chunk(rng, start, size, ids, weights, level)
            if writer is None:
                writer = pacsv.CSVWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    counts = {"customers": customers, "contracts": contract_rows, "sessions": sessions}
    log.info("generated %s in %s (seed %d)", counts, out_dir, seed)
    return counts


def _write_contracts(
    rng: np.random.Generator, out_dir: Path, ids: np.ndarray
) -> tuple[int, np.ndarray]:
    """Write contracts.csv: one to three successive contracts a customer."""
    count = len(ids)
    held = rng.choice([1, 2, 3], size=count, p=[0.75, 0.18, 0.07])
    owner = np.repeat(np.arange(count), held)
    order = np.concatenate([np.arange(n) for n in held])  # 0 = oldest
    last = np.repeat(held - 1, held)
    rows = len(owner)
    # The latest contract starts in 2024 for multi-contract customers, earlier for others.
    latest_start = np.where(
        held[owner] > 1,
        rng.integers(30, 330, rows),
        rng.integers(-5 * 365, 300, rows),
    )
    gap = rng.integers(120, 540, rows)
    start_days = latest_start - (last - order) * gap
    start = (np.datetime64("2024-01-01", "D") + start_days).astype("datetime64[D]")
    months = rng.integers(1, 72, rows)
    monthly = np.round(rng.uniform(18.0, 120.0, rows), 2)
    kinds = rng.choice(np.array(CONTRACT_TYPES), rows, p=[0.5, 0.22, 0.28])
    table = pa.table(
        {
            "contract_id": [f"K{i:08d}" for i in range(1, rows + 1)],
            "customer_id": ids[owner],
            "contract_type": kinds,
            "start_date": pa.array(start, pa.date32()),
            "tenure_months": months,
            "offer": rng.choice(OFFERS, rows, p=[0.55, 0.07, 0.1, 0.1, 0.08, 0.1]),
            "phone_service": _yes_no(rng, 0.9, rows),
            "internet_type": rng.choice(INTERNET, rows, p=[0.12, 0.23, 0.44, 0.21]),
            "avg_monthly_gb_download": rng.integers(0, 86, rows),
            "unlimited_data": _yes_no(rng, 0.67, rows),
            "streaming_tv": _yes_no(rng, 0.38, rows),
            "streaming_movies": _yes_no(rng, 0.39, rows),
            "premium_tech_support": _yes_no(rng, 0.29, rows),
            "paperless_billing": _yes_no(rng, 0.59, rows),
            "payment_method": rng.choice(PAYMENTS, rows, p=[0.55, 0.39, 0.06]),
            "monthly_charge": monthly,
            "total_charges": np.round(monthly * months, 2),
            "total_refunds": np.round(
                np.where(rng.random(rows) < 0.07, rng.uniform(0, 50, rows), 0), 2
            ),
        }
    ).select(CONTRACTS.names)
    pacsv.write_csv(table, out_dir / CONTRACTS.name)
    # The contract type of each customer's latest contract drives their scores.
    latest_type = kinds[np.cumsum(held) - 1]
    return rows, latest_type


def _sessions_chunk(
    rng: np.random.Generator,
    start: int,
    size: int,
    ids: np.ndarray,
    weights: np.ndarray,
    level: np.ndarray,
) -> pa.Table:
    who = rng.choice(len(ids), size=size, p=weights)
    offsets = rng.integers(0, YEAR_SECONDS - 86_400, size)
    stamps = np.datetime_as_string(YEAR_START + offsets, unit="s")
    product_pages = rng.negative_binomial(2, 0.08, size)
    admin_pages = rng.poisson(1.2, size)
    info_pages = rng.poisson(0.4, size)
    clicks = np.maximum(product_pages + admin_pages + info_pages, 1)
    per_page = rng.lognormal(3.3, 0.9, size)
    single = clicks == 1
    duration = np.where(single, 0.0, np.round(clicks * per_page, 1))
    bounce = np.where(single, 0.2, np.round(rng.beta(1.0, 30.0, size), 6))
    exit_rate = np.round(np.clip(bounce + rng.beta(2.0, 40.0, size), 0, 0.2), 6)
    page_value = np.where(rng.random(size) < 0.22, np.round(rng.gamma(1.5, 20.0, size), 3), 0.0)
    purchased = (page_value > 0) & (rng.random(size) < 0.7)
    score = (
        level[who]
        + 0.35 * (page_value > 0)
        - 0.45 * single
        + 0.15 * np.log1p(product_pages) / 3
        + rng.normal(0.0, 0.45, size)
    )
    score = np.clip(np.rint(score), 1, 5).astype(np.int32)
    missing = rng.random(size) < np.where(single | (bounce > 0.1), 0.6, 0.28)
    table = pa.table(
        {
            "session_id": [f"S{i:09d}" for i in range(start + 1, start + size + 1)],
            "customer_id": ids[who],
            "session_start": np.char.add(stamps, "Z"),
            "duration_s": duration,
            "clicks": clicks,
            "satisfaction": pa.array(score, mask=missing),
            "admin_pages": admin_pages,
            "admin_duration_s": np.round(admin_pages * per_page * 0.6, 1),
            "info_pages": info_pages,
            "info_duration_s": np.round(info_pages * per_page * 0.8, 1),
            "product_pages": product_pages,
            "product_duration_s": np.round(product_pages * per_page, 1),
            "bounce_rate": bounce,
            "exit_rate": exit_rate,
            "page_value": page_value,
            "special_day": np.where(
                rng.random(size) < 0.1, rng.choice([0.2, 0.4, 0.6, 0.8, 1.0], size), 0.0
            ),
            "operating_system": rng.integers(1, 9, size),
            "browser": rng.integers(1, 14, size),
            "region": rng.integers(1, 10, size),
            "traffic_type": rng.integers(1, 21, size),
            "visitor_type": rng.choice(VISITORS, size, p=[0.85, 0.14, 0.01]),
            "purchased": np.where(purchased, "true", "false"),
        }
    )
    return table.select(USAGE.names)
