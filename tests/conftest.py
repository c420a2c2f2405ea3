"""Session-wide real Spark (local[2], Hive support, temporary warehouse) and real PostgreSQL."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from usage_elt.config import Settings, load_settings
from usage_elt.engines.spark import spark_session

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("USAGE_ELT_REAL_DATA", REPO.parent / "shared" / "data" / "real"))
MACHINE_PG = os.environ.get("USAGE_ELT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _machine_pg_answers() -> bool:
    try:
        with psycopg.connect(MACHINE_PG, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("usage-elt")


@pytest.fixture(scope="session")
def spark(scratch: Path):
    """One real Spark session for the whole test run."""
    settings = Settings(
        data_dir=scratch / "spark",
        spark={"master": "local[2]", "driver_memory": "2g", "shuffle_partitions": 4,
               "app_name": "usage-elt-tests"},
    )  # fmt: skip
    with spark_session(settings) as session:
        yield session


class PostgresServer:
    """A real PostgreSQL server on which tests create and drop databases of their own."""

    def __init__(self, admin_uri: str, uri_for):
        self.admin_uri = admin_uri
        self._uri_for = uri_for

    def uri(self, database: str) -> str:
        return self._uri_for(database)

    def create_database(self) -> str:
        name = f"usage_elt_test_{secrets.token_hex(4)}"
        with psycopg.connect(self.admin_uri, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_uri, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server(scratch: Path) -> PostgresServer:
    """The machine's server on 127.0.0.1:5432 when it answers, else an embedded one."""
    if _machine_pg_answers():
        base = MACHINE_PG.rsplit("/", 1)[0]
        return PostgresServer(MACHINE_PG, lambda db: f"{base}/{db}")
    from usage_elt.engines.postgres import start_embedded

    server = start_embedded(scratch / "embedded-pg")
    return PostgresServer(server.get_uri(), server.get_uri)


@pytest.fixture
def database(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh PostgreSQL database, dropped after the test; yields its URI."""
    name = pg_server.create_database()
    yield pg_server.uri(name)
    pg_server.drop_database(name)


@pytest.fixture(scope="module")
def module_database(pg_server: PostgresServer) -> Iterator[str]:
    name = pg_server.create_database()
    yield pg_server.uri(name)
    pg_server.drop_database(name)


def make_settings(data_dir: Path, pg_uri: str, hive_database: str, **extra) -> Settings:
    """Settings for a test run against a test database and Hive database."""
    overrides = {
        "data_dir": data_dir,
        "postgres": {"dsn": pg_uri},
        "hive": {"database": hive_database},
        "model": {"max_iter": 15, "max_depth": 4},
        "spark": {"master": "local[2]"},
        "retry": {"attempts": 3, "backoff_s": 0.2},
    }
    for key, value in extra.items():
        if isinstance(value, dict):
            overrides.setdefault(key, {}).update(value)
        else:
            overrides[key] = value
    return load_settings(None, overrides)


def load_and_run(settings: Settings, generation) -> dict:
    """Generated data loaded, then one usage ELT run; both must succeed. Returns its status."""
    from usage_elt.workflows.elt_usage import run_usage_elt
    from usage_elt.workflows.init import run_init

    init = run_init(settings, generation=generation)
    assert init["success"], init["error"]
    status = run_usage_elt(settings)
    assert status["success"], status["error"]
    return status


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No USAGE_ELT_ variable of the machine leaks into a test."""
    for key in list(os.environ):
        if key.startswith("USAGE_ELT_") and key not in ("USAGE_ELT_REAL_DATA", "USAGE_ELT_TEST_PG"):
            monkeypatch.delenv(key)
