"""Settings: credentials and parameters in one typed object, layered.

Precedence, lowest first: built-in defaults < config file (TOML) < ``USAGE_ELT_...``
environment variables < values given in code or on the command line. Nested keys join with
``__`` in environment variables: ``USAGE_ELT_POSTGRES__HOST``, ``USAGE_ELT_SPARK__MASTER``.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from usage_elt.errors import ConfigError

CONFIG_ENV = "USAGE_ELT_CONFIG"
DEFAULT_CONFIG_FILE = Path("usage-elt.toml")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def check_identifier(value: str, what: str) -> str:
    """Return ``value`` if it is a plain SQL identifier, else raise ``ConfigError``."""
    if not _IDENTIFIER.match(value):
        raise ConfigError(
            f"{what} {value!r} is not a plain SQL identifier; use letters, digits and _ only"
        )
    return value


class PostgresSettings(BaseModel):
    """Where PostgreSQL is: a DSN, or host/port/database/user/password, or embedded."""

    dsn: SecretStr | None = None
    host: str | None = None
    port: int = 5432
    database: str = "usage_elt"
    user: str = "postgres"
    password: SecretStr | None = None
    connect_timeout_s: int = 10
    read_partitions: int = Field(default=1, ge=1)

    @property
    def embedded(self) -> bool:
        return self.dsn is None and self.host is None

    def uri(self) -> str:
        """The libpq URI for a configured server (not for the embedded one)."""
        if self.dsn is not None:
            return self.dsn.get_secret_value()
        if self.host is None:
            raise ConfigError(
                "no PostgreSQL host or DSN configured; the embedded server has no URI"
            )
        auth = quote(self.user, safe="")
        if self.password is not None:
            auth += ":" + quote(self.password.get_secret_value(), safe="")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (
            f"postgresql://{auth}@{host}:{self.port}/{quote(self.database, safe='')}"
            f"?connect_timeout={self.connect_timeout_s}"
        )

    def through_local_socket(self) -> bool:
        """True when libpq would reach the server by a Unix socket of this machine, not TCP."""
        if self.embedded:
            return True  # the embedded server listens on a socket in data_dir only
        if self.dsn is None:
            return self.host.startswith("/")
        from psycopg import Error, conninfo

        try:
            hosts = conninfo.conninfo_to_dict(self.dsn.get_secret_value()).get("host") or ""
        except Error:
            return False  # connecting says what is wrong with the DSN
        return all(not host or host.startswith(("/", "@")) for host in hosts.split(","))


class HiveSettings(BaseModel):
    """The Hive metastore: embedded Derby by default, or a thrift URI."""

    metastore_uri: str | None = None
    database: str = "web"

    @field_validator("database")
    @classmethod
    def _plain_database(cls, value: str) -> str:
        return check_identifier(value, "Hive database")


class SparkSettings(BaseModel):
    """How Spark starts: any master, memory, extra configuration."""

    master: str = "local[*]"
    app_name: str = "usage-elt"
    driver_memory: str = "2g"
    executor_memory: str | None = None
    # Partitions a shuffle starts with; adaptive execution merges the small ones, so this only
    # bounds how finely the largest shuffles (enrichment at millions of sessions) are cut.
    shuffle_partitions: int = Field(default=200, ge=1)
    conf: dict[str, str] = Field(default_factory=dict)

    @property
    def separate_executors(self) -> bool:
        """True when executors are processes of their own (local-cluster, any cluster manager)."""
        return re.fullmatch(r"local(\[[^\]]*\])?", self.master) is None


class WindowSettings(BaseModel):
    """The processing window over session start times: [since, until), UTC."""

    since: datetime | None = None
    until: datetime | None = None

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> WindowSettings:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError(f"since {self.since} must be before until {self.until}")
        return self


class ModelSettings(BaseModel):
    """Imputation model parameters."""

    seed: int = 42
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1)
    max_train_rows: int = Field(default=200_000, ge=100)
    max_iter: int = Field(default=40, ge=1)
    max_depth: int = Field(default=5, ge=1, le=30)
    step_size: float = Field(default=0.1, gt=0, le=1)
    fit_partitions: int = Field(default=4, ge=1)


class CustomersEtlSettings(BaseModel):
    """Where the customers ETL reads raw data: a local path or an http(s) URL each."""

    customers: str | None = None
    contracts: str | None = None


class RetrySettings(BaseModel):
    """Retries of a step that failed with a transient error (connection, timeout, restart)."""

    attempts: int = Field(default=3, ge=1, le=20)
    backoff_s: float = Field(default=2.0, ge=0)
    max_backoff_s: float = Field(default=30.0, ge=0)

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): exponential."""
        return min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s)


class SmtpSettings(BaseModel):
    """Email notifications; with no host, messages go to the outbox folder as .eml files."""

    host: str | None = None
    port: int = 587
    security: Literal["starttls", "ssl", "none"] = "starttls"
    user: str | None = None
    password: SecretStr | None = None
    sender: str = "usage-elt@localhost"
    recipients: list[str] = Field(default_factory=list)
    on_success: bool = False
    timeout_s: float = 15.0


class Settings(BaseSettings):
    """Everything a workflow needs, credentials and parameters together."""

    model_config = SettingsConfigDict(
        env_prefix="USAGE_ELT_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    data_dir: Path = Path(".usage-elt")
    log_level: str = "INFO"
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    hive: HiveSettings = Field(default_factory=HiveSettings)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    window: WindowSettings = Field(default_factory=WindowSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    customers_etl: CustomersEtlSettings = Field(default_factory=CustomersEtlSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)

    @model_validator(mode="after")
    def _executors_reach_postgres(self) -> Settings:
        # Executors move rows to and from PostgreSQL themselves, from wherever they run.
        if self.spark.separate_executors and self.postgres.through_local_socket():
            raise ConfigError(
                f"spark.master {self.spark.master!r} runs executors in processes of their own "
                "that connect to PostgreSQL themselves, over TCP: the embedded server and Unix "
                "sockets are out of their reach; set postgres.host and postgres.port (or a "
                "postgres.dsn that names a host)"
            )
        return self

    def secrets(self) -> list[str]:
        """Every secret value held, for redaction."""
        values = []
        for secret in (self.postgres.dsn, self.postgres.password, self.smtp.password):
            if secret is not None and secret.get_secret_value():
                values.append(secret.get_secret_value())
        return values

    def public(self) -> dict[str, Any]:
        """The settings as JSON-ready data with every secret masked."""
        return self.model_dump(mode="json")


def config_file_path(explicit: Path | None = None) -> Path | None:
    """The config file in force: explicit, else ``$USAGE_ELT_CONFIG``, else ./usage-elt.toml."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"config file {explicit} does not exist")
        return explicit
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise ConfigError(f"config file {path} (from ${CONFIG_ENV}) does not exist")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_settings(
    config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Build the settings from every layer; ``overrides`` (code, command line) win."""
    path = config_file_path(config_file)
    if path is not None:
        _check_toml(path)

    class _Layered(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            return tuple(sources)

    try:
        layered = _Layered(**(overrides or {}))
    except ValidationError as exc:
        where = (
            f"; layers: config file {path}, environment, caller payload, options" if path else ""
        )
        raise ConfigError(f"invalid settings{where}: {_short(exc)}") from None
    return Settings.model_validate(layered.model_dump())


def _check_toml(path: Path) -> None:
    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _short(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
