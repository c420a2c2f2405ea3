"""Customers and contracts: anonymize personal data, upsert both tables in one transaction."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from usage_elt.engines.postgres import Postgres
from usage_elt.steps.validate import Reject

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
    prefix = pc.utf8_slice_codeunits(zip_code, 0, ZIP_PREFIX_CHARS)
    kept = [c for c in CUSTOMER_COLUMNS if c not in ("age_band", "zip_prefix")]
    table = customers.select(kept)
    table = table.append_column("age_band", band.cast(pa.int32()))
    table = table.append_column("zip_prefix", prefix)
    return table.select(CUSTOMER_COLUMNS)


REJECTED_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    source      text NOT NULL,
    line        integer NOT NULL,
    field       text NOT NULL,
    value       text,
    reason      text NOT NULL,
    run_id      text,
    rejected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, line)
)
"""


@dataclass(frozen=True)
class Batch:
    """The anonymized valid rows of one load and the rejected rows of each source."""

    customers: pa.Table
    contracts: pa.Table
    customers_source: str
    contracts_source: str
    customer_rejects: list[Reject]
    contract_rejects: list[Reject]


def create_tables(pg: Postgres) -> None:
    with pg.connect() as conn:
        conn.execute(CUSTOMERS_DDL)
        conn.execute(CONTRACTS_DDL)
        conn.execute(REJECTED_DDL.format(table="customers_rejected"))
        conn.execute(REJECTED_DDL.format(table="contracts_rejected"))
        conn.commit()


def known_customer_ids(pg: Postgres) -> set[str]:
    """The customer ids already in PostgreSQL."""
    return {row[0] for row in pg.fetch("SELECT customer_id FROM customers")}


def upsert(pg: Postgres, batch: Batch, run_id: str) -> dict[str, int]:
    """Upsert customers, contracts and both reject lists in one transaction: all or nothing.

    The valid rows travel by ADBC bulk copy into staging tables first; the rejects of a source
    replace that source's previous rejects, so loading the same files twice leaves the same
    tables.
    """
    import adbc_driver_postgresql.dbapi as adbc

    create_tables(pg)
    suffix = secrets.token_hex(4)
    staged = {
        "customers": f"customers_staging_{suffix}",
        "contracts": f"contracts_staging_{suffix}",
    }
    try:
        with adbc.connect(pg.uri.get_secret_value()) as conn:
            with conn.cursor() as cur:
                cur.adbc_ingest(
                    staged["customers"], batch.customers.select(CUSTOMER_COLUMNS), "create"
                )
                cur.adbc_ingest(
                    staged["contracts"], batch.contracts.select(CONTRACT_COLUMNS), "create"
                )
            conn.commit()
        with pg.connect() as conn:
            customers = conn.execute(
                _upsert_sql("customers", "customer_id", CUSTOMER_COLUMNS, staged["customers"])
            ).rowcount
            contracts = conn.execute(
                _upsert_sql("contracts", "contract_id", CONTRACT_COLUMNS, staged["contracts"])
            ).rowcount
            _replace_rejects(conn, "customers_rejected", batch.customers_source,
                             batch.customer_rejects, run_id)  # fmt: skip
            _replace_rejects(conn, "contracts_rejected", batch.contracts_source,
                             batch.contract_rejects, run_id)  # fmt: skip
            conn.commit()
    finally:
        with pg.connect() as conn:
            for table in staged.values():
                conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.commit()
    log.info("upserted %d customers and %d contracts", customers, contracts)
    return {"customers_loaded": customers, "contracts_loaded": contracts}


def _replace_rejects(conn, table: str, source: str, rejects: list[Reject], run_id: str) -> None:
    conn.execute(f"DELETE FROM {table} WHERE source = %s", (source,))
    with conn.cursor().copy(
        f"COPY {table} (source, line, field, value, reason, run_id) FROM STDIN"
    ) as copy:
        for reject in rejects:
            copy.write_row((source, reject.line, reject.field, reject.value, reject.reason, run_id))


def _upsert_sql(table: str, key: str, columns: list[str], staging: str) -> str:
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}, loaded_at) "
        f"SELECT {', '.join(columns)}, now() FROM {staging} "
        f"ON CONFLICT ({key}) DO UPDATE SET {updates}, loaded_at = EXCLUDED.loaded_at"
    )
