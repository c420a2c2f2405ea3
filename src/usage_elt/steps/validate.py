"""Row validation of raw customers and contracts: each bad row gets its line, field and reason."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pyarrow as pa

from usage_elt.schemas import CONTRACT_TYPES, CONTRACTS, CUSTOMERS, FileSchema
from usage_elt.steps.extract import Record

TRUE = {"yes", "true", "1", "y"}
FALSE = {"no", "false", "0", "n"}
MAX_VALUE_CHARS = 80
# Rejects keep the offending value to help fix the source, except for location fields:
# a reject table must not become a way around anonymization.
WITHHELD = {"city", "zip_code", "latitude", "longitude"}


class RowError(ValueError):
    """A value breaks a rule; carries the field."""

    def __init__(self, field_name: str, reason: str):
        super().__init__(reason)
        self.field = field_name


@dataclass(frozen=True)
class Reject:
    line: int
    field: str
    value: str | None
    reason: str


@dataclass
class Checked:
    """The valid rows of one source as an Arrow table, and its rejected rows."""

    source: str
    table: pa.Table
    rejects: list[Reject] = field(default_factory=list)


def _boolean(value: str) -> bool:
    text = value.strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError("is not Yes/No")


INT32 = (-(2**31), 2**31 - 1)


def _integer(value: str) -> int:
    number = _finite(value)
    if not number.is_integer():
        raise ValueError("is not a whole number")
    if not INT32[0] <= number <= INT32[1]:
        raise ValueError("is too large for an integer column")
    return int(number)


def _finite(value: str) -> float:
    number = float(value.strip())
    if not math.isfinite(number):
        raise ValueError("is not a finite number")
    return number


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError("is not a real date (YYYY-MM-DD)") from None


PARSERS: dict[pa.DataType, Callable[[str], Any]] = {
    pa.string(): str.strip,
    pa.int32(): _integer,
    pa.float64(): _finite,
    pa.bool_(): _boolean,
    pa.date32(): _date,
}


def _in_range(name: str, low: float | None, high: float | None) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if (low is not None and value < low) or (high is not None and value > high):
            shown = "(withheld)" if name in WITHHELD else value
            if high is None:
                raise RowError(name, f"{name}={shown} is below the minimum {low}")
            raise RowError(name, f"{name}={shown} is outside {low}..{high}")

    return check


ZIP_CODE = re.compile(r"^[0-9A-Za-z]{3}[0-9A-Za-z -]{0,7}$")


def _zip_code(value: str) -> None:
    if not ZIP_CODE.match(value):
        raise RowError("zip_code", "zip_code=(withheld) is not a postal code of 3 to 10 characters")


def _known_type(value: str) -> None:
    if value not in CONTRACT_TYPES:
        raise RowError("contract_type", f"contract_type={value!r} is not one of {CONTRACT_TYPES}")


def _not_future(today: date) -> Callable[[date], None]:
    def check(value: date) -> None:
        if value > today:
            raise RowError("start_date", f"start_date={value} is in the future")

    return check


def _rules(schema: FileSchema, today: date) -> dict[str, Callable[[Any], None]]:
    if schema is CUSTOMERS:
        return {
            "zip_code": _zip_code,
            "age": _in_range("age", 0, 120),
            "number_of_dependents": _in_range("number_of_dependents", 0, 50),
            "latitude": _in_range("latitude", -90, 90),
            "longitude": _in_range("longitude", -180, 180),
        }
    return {
        "contract_type": _known_type,
        "start_date": _not_future(today),
        "tenure_months": _in_range("tenure_months", 0, None),
        "avg_monthly_gb_download": _in_range("avg_monthly_gb_download", 0, None),
        "monthly_charge": _in_range("monthly_charge", 0, None),
        "total_charges": _in_range("total_charges", 0, None),
        "total_refunds": _in_range("total_refunds", 0, None),
    }


def _parse(record: Record, schema: FileSchema, rules: dict) -> dict[str, Any]:
    if "__shape__" in record.fields:
        raise RowError("(row)", f"the row has {record.fields['__shape__']}")
    row: dict[str, Any] = {}
    for name, kind in schema.columns:
        raw = record.fields.get(name)
        if raw is None or raw.strip() == "":
            if name in schema.required:
                raise RowError(name, f"required field {name} is empty")
            row[name] = None
            continue
        try:
            value = PARSERS[kind](raw)
        except ValueError as exc:
            detail = str(exc) if str(exc).startswith("is ") else f"is not a valid {kind}"
            shown = "(withheld)" if name in WITHHELD else repr(_short(raw))
            raise RowError(name, f"{name}={shown} {detail}") from None
        if name in rules:
            rules[name](value)
        row[name] = value
    return row


def check(
    source: str,
    rows: Iterable[Record],
    schema: FileSchema,
    key: str,
    today: date,
    known_customers: set[str] | None = None,
) -> Checked:
    """Split ``rows`` into valid ones (typed) and rejects with line, field and reason."""
    rules = _rules(schema, today)
    valid: list[dict[str, Any]] = []
    rejects: list[Reject] = []
    first_line: dict[str, int] = {}
    for record in rows:
        try:
            row = _parse(record, schema, rules)
            if row[key] in first_line:
                raise RowError(
                    key, f"duplicate {key} {row[key]!r} (first at line {first_line[row[key]]})"
                )
            if known_customers is not None and row["customer_id"] not in known_customers:
                raise RowError("customer_id", f"customer_id {row['customer_id']!r} is unknown")
        except RowError as exc:
            value = "(withheld)" if exc.field in WITHHELD else record.fields.get(exc.field)
            rejects.append(Reject(record.line, exc.field, _short(value), str(exc)))
            continue
        first_line[row[key]] = record.line
        valid.append(row)
    table = pa.Table.from_pylist(valid, schema=schema.arrow())
    return Checked(source, table, rejects)


def _short(value: str | None) -> str | None:
    if value is None or len(value) <= MAX_VALUE_CHARS:
        return value
    return value[: MAX_VALUE_CHARS - 3] + "..."


def check_customers(source: str, rows: Iterable[Record], today: date) -> Checked:
    return check(source, rows, CUSTOMERS, "customer_id", today)


def check_contracts(
    source: str, rows: Iterable[Record], today: date, known_customers: set[str]
) -> Checked:
    return check(source, rows, CONTRACTS, "contract_id", today, known_customers)
