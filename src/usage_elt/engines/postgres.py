"""How to reach PostgreSQL: a configured server, or an embedded one in the data directory."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from pydantic import SecretStr

from usage_elt.config import PostgresSettings, check_identifier
from usage_elt.errors import EngineError, TransientError
from usage_elt.logs import redact

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Postgres:
    """A reachable PostgreSQL database; the URI is a secret and never printed."""

    uri: SecretStr
    description: str
    embedded: bool = False
    _server: Any = field(default=None, repr=False, compare=False)

    def connect(self, autocommit: bool = False) -> psycopg.Connection:
        """A new psycopg connection; connection failures raise ``TransientError``."""
        try:
            return psycopg.connect(self.uri.get_secret_value(), autocommit=autocommit)
        except psycopg.OperationalError as exc:
            from usage_elt.retry import is_transient

            kind = TransientError if is_transient(exc) else EngineError
            raise kind(
                f"cannot connect to PostgreSQL at {self.description}: {redact(str(exc)).strip()}"
            ) from None

    def ping(self) -> None:
        """Connect once and run ``SELECT 1``: proves the server answers."""
        with self.connect() as conn:
            conn.execute("SELECT 1")

    def execute(self, sql: str, params: tuple | dict | None = None) -> None:
        """Run one statement in its own transaction."""
        with self.connect() as conn:
            log.debug("SQL: %s", sql)
            conn.execute(sql, params)

    def fetch(self, sql: str, params: tuple | dict | None = None) -> list[tuple]:
        """Run one query and return its rows."""
        with self.connect() as conn:
            log.debug("SQL: %s", sql)
            return conn.execute(sql, params).fetchall()


@contextmanager
def open_postgres(settings: PostgresSettings, data_dir: Path) -> Iterator[Postgres]:
    """The configured server, or the embedded one (started here, stopped on exit)."""
    if not settings.embedded:
        where = "the configured DSN" if settings.dsn else f"{settings.host}:{settings.port}"
        yield Postgres(uri=SecretStr(settings.uri()), description=where)
        return

    database = check_identifier(settings.database, "PostgreSQL database")
    server = start_embedded(data_dir / "postgres")
    admin_uri = server.get_uri()
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if exists.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{database}"')
            log.info("created database %s in the embedded PostgreSQL server", database)
    yield Postgres(
        uri=SecretStr(server.get_uri(database)),
        description=f"embedded server in {data_dir / 'postgres'}",
        embedded=True,
        _server=server,
    )


def start_embedded(pgdata: Path) -> Any:
    """Start (or join) the embedded PostgreSQL server whose files live in ``pgdata``."""
    try:
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import pgserver
    except ImportError as exc:  # pragma: no cover - pgserver is a dependency
        raise EngineError("the embedded PostgreSQL needs the pgserver package") from exc
    started = time.monotonic()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.get_server(pgdata.resolve(), cleanup_mode="stop")
    except Exception as exc:
        raise EngineError(
            f"the embedded PostgreSQL server in {pgdata} did not start: {exc}; "
            f"see {pgdata / 'log'} or configure a server with USAGE_ELT_POSTGRES__DSN"
        ) from exc
    log.info("embedded PostgreSQL ready in %.1fs (%s)", time.monotonic() - started, pgdata)
    return server
