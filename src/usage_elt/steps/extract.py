"""Extraction of raw records from a local file or an http(s) URL, as CSV or JSON Lines."""

from __future__ import annotations

import csv
import io
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from usage_elt.errors import InputFileError, TransientError
from usage_elt.schemas import FileSchema

log = logging.getLogger(__name__)

URL_TIMEOUT_S = 30
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


@dataclass(frozen=True)
class Record:
    """One raw record: its line in the source and its fields as text (None when absent)."""

    line: int
    fields: dict[str, str | None]


def read_source(source: str) -> str:
    """The text of a local file or an http(s) URL, decoded as UTF-8."""
    scheme = urlsplit(source).scheme.lower()
    if scheme in ("http", "https"):
        if "@" in urlsplit(source).netloc:
            raise InputFileError(
                "credentials inside an http(s) URL are not supported: "
                "serve the file without them or download it first"
            )
        data = _fetch(source)
    elif scheme in ("", "file"):
        path = Path(urlsplit(source).path if scheme == "file" else source)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InputFileError(f"{source} does not exist") from None
        except IsADirectoryError:
            raise InputFileError(f"{source} is a folder, not a file") from None
    else:
        raise InputFileError(f"{source}: unsupported scheme {scheme!r}; use a path or http(s) URL")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"{source} is not UTF-8 text (byte {exc.start}); save it as UTF-8 and load it again"
        ) from None


def _fetch(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as response:  # noqa: S310
            return response.read()
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise TransientError(f"cannot read {url}: HTTP {exc.code} {exc.reason}") from None
        raise InputFileError(f"cannot read {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TransientError(f"cannot read {url}: the server is unreachable ({reason})") from None


def records(source: str, schema: FileSchema) -> Iterator[Record]:
    """The records of ``source``; a file that cannot be read as a whole raises InputFileError."""
    text = read_source(source)
    if urlsplit(source).path.lower().endswith(JSONL_SUFFIXES):
        if not text.strip():
            raise InputFileError(f"{source} is empty: expected JSON objects, one a line")
        yield from _jsonl(source, text, schema)
    else:
        yield from _csv(source, text, schema)


def _csv(source: str, text: str, schema: FileSchema) -> Iterator[Record]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [name.strip() for name in next(reader, [])]
    check_columns(source, header, schema, list(schema.required))
    for row in reader:
        if not row or row == [""]:
            continue
        if len(row) != len(header):
            yield Record(
                reader.line_num, {"__shape__": f"{len(row)} fields, expected {len(header)}"}
            )
            continue
        yield Record(
            reader.line_num, {k: (v if v != "" else None) for k, v in zip(header, row, strict=True)}
        )


def _jsonl(source: str, text: str, schema: FileSchema) -> Iterator[Record]:
    seen_columns = False
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            if not seen_columns:
                raise InputFileError(f"{source} line {number} is not JSON: {exc.msg}") from None
            yield Record(number, {"__shape__": f"not a JSON object: {exc.msg}"})
            continue
        if not isinstance(item, dict):
            if not seen_columns:
                raise InputFileError(f"{source} line {number} is not a JSON object")
            yield Record(number, {"__shape__": "not a JSON object"})
            continue
        nested = [k for k in schema.names if isinstance(item.get(k), (dict, list))]
        if nested:
            yield Record(number, {"__shape__": f"a nested value in {nested[0]}"})
            continue
        if not seen_columns:
            check_columns(source, list(item), schema, list(schema.required))
            seen_columns = True
        yield Record(number, {k: _text(item.get(k)) for k in schema.names})


def _text(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_columns(source: str, header: list[str], schema: FileSchema, needed: list[str]) -> None:
    """Refuse a source whose header lacks one of ``needed``, naming what is missing."""
    missing = [name for name in needed if name not in header]
    if missing:
        hint = ""
        if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
            hint = " (the header looks like it uses another delimiter than a comma)"
        raise InputFileError(
            f"{source} lacks the required columns {', '.join(missing)}{hint}; "
            f"expected the columns {', '.join(schema.names)}"
        )
