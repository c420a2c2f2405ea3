"""Customers and contracts: anonymize personal data, upsert both tables in one transaction."""

from __future__ import annotations

import logging
import secrets

import pyarrow as pa
import pyarrow.compute as pc

from usage_elt.engines.postgres import Postgres

log = logging.getLogger(__name__)

CUSTOMERS_DDL = """
CREATE TABLE IF NOT EXISTS customers (
    customer_id          text PRIMARY KEY,
    gender               text,
    age_band             integer CHECK (age_band % 5 = 0),
    senior_citizen       boolean,
    married              boolean,
    dependents           boolean,
    number_of_dependents integer,
    country              text,
    state                text,
    zip_prefix           text CHECK (length(zip_prefix) = 3),
    loaded_at            timestamptz NOT NULL DEFAULT now()
)
"""

CONTRACTS_DDL = """
CREATE TABLE IF NOT EXISTS contracts (
    contract_id             text PRIMARY KEY,
    customer_id             text NOT NULL REFERENCES customers (customer_id),
    contract_type           text NOT NULL,
    start_date              date NOT NULL,
    tenure_months           integer,
    offer                   text,
    phone_service           boolean,
    internet_type           text,
    avg_monthly_gb_download integer,
    unlimited_data          boolean,
    streaming_tv            boolean,
    streaming_movies        boolean,
    premium_tech_support    boolean,
    paperless_billing       boolean,
    payment_method          text,
    monthly_charge          double precision,
    total_charges           double precision,
    total_refunds           double precision,
    loaded_at               timestamptz NOT NULL DEFAULT now()
)
"""

CUSTOMER_COLUMNS = [
    "customer_id", "gender", "age_band", "senior_citizen", "married", "dependents",
    "number_of_dependents", "country", "state", "zip_prefix",
]  # fmt: skip

CONTRACT_COLUMNS = [
    "contract_id", "customer_id", "contract_type", "start_date", "tenure_months", "offer",
    "phone_service", "internet_type", "avg_monthly_gb_download", "unlimited_data",
    "streaming_tv", "streaming_movies", "premium_tech_support", "paperless_billing",
    "payment_method", "monthly_charge", "total_charges", "total_refunds",
]  # fmt: skip

AGE_BAND_YEARS = 5
ZIP_PREFIX_CHARS = 3


def anonymize(customers: pa.Table) -> pa.Table:
    """Drop location, keep a 3-character zip prefix, replace age by a 5-year band start."""
    age = customers.column("age").cast(pa.int32())
    band = pc.multiply(pc.divide(age, AGE_BAND_YEARS), AGE_BAND_YEARS)
    zip_code = pc.utf8_trim_whitespace(customers.column("zip_code").cast(pa.string()))
    prefix = pc.utf8_slice_codeunits(pc.utf8_lpad(zip_code, 5, "0"), 0, ZIP_PREFIX_CHARS)
    kept = [c for c in CUSTOMER_COLUMNS if c not in ("age_band", "zip_prefix")]
    table = customers.select(kept)
    table = table.append_column("age_band", band.cast(pa.int32()))
    table = table.append_column("zip_prefix", prefix)
    return table.select(CUSTOMER_COLUMNS)


def upsert(pg: Postgres, customers: pa.Table, contracts: pa.Table) -> dict[str, int]:
    """Upsert both tables in one transaction through staging tables: all or nothing."""
    import adbc_driver_postgresql.dbapi as adbc

    pg.execute(CUSTOMERS_DDL)
    pg.execute(CONTRACTS_DDL)
    suffix = secrets.token_hex(4)
    staged = {
        "customers": f"customers_staging_{suffix}",
        "contracts": f"contracts_staging_{suffix}",
    }
    try:
        with adbc.connect(pg.uri.get_secret_value()) as conn:
            with conn.cursor() as cur:
                cur.adbc_ingest(staged["customers"], customers.select(CUSTOMER_COLUMNS), "create")
                cur.adbc_ingest(staged["contracts"], contracts.select(CONTRACT_COLUMNS), "create")
            conn.commit()
        with pg.connect() as conn:
            upserted_customers = conn.execute(
                _upsert_sql("customers", "customer_id", CUSTOMER_COLUMNS, staged["customers"])
            ).rowcount
            upserted_contracts = conn.execute(
                _upsert_sql("contracts", "contract_id", CONTRACT_COLUMNS, staged["contracts"])
            ).rowcount
            conn.commit()
    finally:
        for table in staged.values():
            pg.execute(f"DROP TABLE IF EXISTS {table}")
    log.info("upserted %d customers and %d contracts", upserted_customers, upserted_contracts)
    return {"customers_loaded": upserted_customers, "contracts_loaded": upserted_contracts}


def _upsert_sql(table: str, key: str, columns: list[str], staging: str) -> str:
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}, loaded_at) "
        f"SELECT {', '.join(columns)}, now() FROM {staging} "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}, loaded_at = EXCLUDED.loaded_at"
    )
