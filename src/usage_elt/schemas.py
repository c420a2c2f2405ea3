"""The declared shape of each input file: column names and types, never inferred."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class FileSchema:
    """One input file: its name, its typed columns and which of them must hold a value."""

    name: str
    columns: tuple[tuple[str, pa.DataType], ...]
    required: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def arrow(self) -> pa.Schema:
        return pa.schema([pa.field(name, kind) for name, kind in self.columns])


USAGE = FileSchema(
    name="usage.csv",
    columns=(
        ("session_id", pa.string()),
        ("customer_id", pa.string()),
        ("session_start", pa.timestamp("us", tz="UTC")),
        ("duration_s", pa.float64()),
        ("clicks", pa.int32()),
        ("satisfaction", pa.int32()),
        ("admin_pages", pa.int32()),
        ("admin_duration_s", pa.float64()),
        ("info_pages", pa.int32()),
        ("info_duration_s", pa.float64()),
        ("product_pages", pa.int32()),
        ("product_duration_s", pa.float64()),
        ("bounce_rate", pa.float64()),
        ("exit_rate", pa.float64()),
        ("page_value", pa.float64()),
        ("special_day", pa.float64()),
        ("operating_system", pa.int32()),
        ("browser", pa.int32()),
        ("region", pa.int32()),
        ("traffic_type", pa.int32()),
        ("visitor_type", pa.string()),
        ("purchased", pa.bool_()),
    ),
    required=("session_id", "customer_id", "session_start", "duration_s", "clicks"),
)

CUSTOMERS = FileSchema(
    name="customers.csv",
    columns=(
        ("customer_id", pa.string()),
        ("gender", pa.string()),
        ("age", pa.int32()),
        ("senior_citizen", pa.bool_()),
        ("married", pa.bool_()),
        ("dependents", pa.bool_()),
        ("number_of_dependents", pa.int32()),
        ("country", pa.string()),
        ("state", pa.string()),
        ("city", pa.string()),
        ("zip_code", pa.string()),
        ("latitude", pa.float64()),
        ("longitude", pa.float64()),
    ),
    required=("customer_id", "gender", "age"),
)

CONTRACTS = FileSchema(
    name="contracts.csv",
    columns=(
        ("contract_id", pa.string()),
        ("customer_id", pa.string()),
        ("contract_type", pa.string()),
        ("start_date", pa.date32()),
        ("tenure_months", pa.int32()),
        ("offer", pa.string()),
        ("phone_service", pa.bool_()),
        ("internet_type", pa.string()),
        ("avg_monthly_gb_download", pa.int32()),
        ("unlimited_data", pa.bool_()),
        ("streaming_tv", pa.bool_()),
        ("streaming_movies", pa.bool_()),
        ("premium_tech_support", pa.bool_()),
        ("paperless_billing", pa.bool_()),
        ("payment_method", pa.string()),
        ("monthly_charge", pa.float64()),
        ("total_charges", pa.float64()),
        ("total_refunds", pa.float64()),
    ),
    required=("contract_id", "customer_id", "contract_type", "start_date"),
)

CONTRACT_TYPES = ("Month-to-Month", "One Year", "Two Year")
