"""The commands. Each builds the settings, calls one workflow and prints its status last."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from usage_elt.config import Settings, load_settings
from usage_elt.errors import ConfigError, UsageEltError
from usage_elt.logs import redact, setup_logging
from usage_elt.status import Run, check_run_id, new_run_id, to_json, write_status

log = logging.getLogger(__name__)

# Keys of a caller's payload that are not settings but describe the call itself.
CALL_KEYS = ("run_id", "parent_run_id")


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    if value is None:
        return
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree.setdefault(key, {})
    tree[leaf] = value


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_payload(source: str | None) -> dict[str, Any]:
    """A caller's JSON payload from a file, or from standard input for ``-``."""
    if source is None:
        return {}
    where = "standard input" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        payload = json.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"input payload {where} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"input payload from {where} is not JSON: {exc.msg} (line {exc.lineno})"
        ) from None
    if not isinstance(payload, dict):
        raise ConfigError(f"input payload from {where} must be a JSON object")
    return payload


def _settings(
    ctx: click.Context, payload: dict[str, Any] | None = None, **options: Any
) -> Settings:
    """Settings: defaults < config file < environment < caller payload < command-line options."""
    root = ctx.find_root().params
    overrides: dict[str, Any] = {}
    _set(overrides, "data_dir", root.get("data_dir"))
    _set(overrides, "postgres.dsn", root.get("pg_dsn"))
    _set(overrides, "hive.metastore_uri", root.get("metastore_uri"))
    _set(overrides, "spark.master", root.get("master"))
    for dotted, value in options.items():
        _set(overrides, dotted, value)
    layered = {k: v for k, v in (payload or {}).items() if k not in CALL_KEYS}
    return load_settings(root.get("config"), _merge(layered, overrides))


def _finish(document: dict[str, Any], status_file: Path | None) -> None:
    if status_file is not None:
        write_status(document, status_file)
    click.echo(to_json(document))
    sys.exit(0 if document.get("success") else 1)


def _fail(ctx: click.Context, message: str) -> None:
    if ctx.find_root().params.get("debug"):
        log.exception("failed")
    click.secho(f"error: {redact(message)}", fg="red", err=True)
    sys.exit(1)


def _refuse(ctx: click.Context, workflow: str, exc: UsageEltError, status_file: Path | None):
    """A call that cannot start still ends with a failure status, printed last."""
    click.secho(f"error: {redact(str(exc))}", fg="red", err=True)
    run = Run(workflow)
    run.fail("start", exc)
    _finish(run.finish(), status_file)


def _prepare(
    ctx: click.Context,
    workflow: str,
    status_file: Path | None,
    input_source: str | None = None,
    **options: Any,
):
    """Settings, call keys and a run id, with logging to stderr and the run's log file."""
    try:
        payload = read_payload(input_source)
        settings = _settings(ctx, payload, **options)
        run_id = check_run_id(payload["run_id"]) if "run_id" in payload else new_run_id()
        parent = payload.get("parent_run_id")
        if parent is not None and not isinstance(parent, str):
            raise ConfigError(f"parent_run_id {parent!r} must be a string")
    except UsageEltError as exc:
        _refuse(ctx, workflow, exc, status_file)
    redact.add(*settings.secrets())
    level = "DEBUG" if ctx.find_root().params.get("debug") else settings.log_level
    setup_logging(level, settings.data_dir / "logs" / f"{run_id}.log")
    return settings, run_id, parent


class Instant(click.ParamType):
    """An ISO 8601 date or time; without an offset it is UTC."""

    name = "ISO-8601"

    def convert(self, value: Any, param: Any, ctx: Any) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 date or time (2024-06-01T00:00:00Z)")
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


INSTANT = Instant()

input_option = click.option(
    "--input", "input_source", metavar="FILE",
    help="A caller's JSON payload (FILE, or - for standard input); its values replace the "
    "config file's and the environment's.",
)  # fmt: skip
status_option = click.option(
    "--status-file", type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the status document to this file.",
)  # fmt: skip


@click.group()
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path), help="TOML config file.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the embedded servers, warehouse, logs and outbox live.",
)
@click.option("--pg-dsn", help="PostgreSQL DSN (libpq URI); default: the embedded server.")
@click.option("--metastore-uri", help="Hive metastore thrift URI; default: embedded Derby.")
@click.option("--master", help="Spark master; default local[*].")
@click.option("--debug", is_flag=True, help="Log at DEBUG (SQL sent) and show tracebacks.")
@click.version_option(package_name="usage-elt")
def main(**_: Any) -> None:
    """usage-elt: per-customer website usage statistics you can trust."""  # fmt: skip


@main.command()
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder holding customers.csv, contracts.csv and usage.csv.",
)
@click.option("--generate", is_flag=True, help="Write synthetic data of the same shape instead.")
@click.option("--sessions", type=click.IntRange(min=1), default=20_000, show_default=True)
@click.option("--customers", type=click.IntRange(min=1), default=4_000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--reset", is_flag=True, help="Drop the loaded and derived tables first.")
@status_option
@click.pass_context
def init(ctx: click.Context, data: Path | None, generate: bool, sessions: int, customers: int,
         seed: int, reset: bool, status_file: Path | None) -> None:  # fmt: skip
    """Create or reset the environment and load a data folder (or generated data)."""
    from usage_elt.workflows.init import Generation, run_init

    if generate == (data is not None):
        _fail(ctx, "give exactly one of --data DIR or --generate")
    settings, run_id, _ = _prepare(ctx, "init", status_file)
    generation = Generation(sessions, customers, seed) if generate else None
    _finish(run_init(settings, data, generation, reset, run_id=run_id), status_file)


@main.command()
@click.option(
    "--since", type=INSTANT, help="Window start, inclusive (ISO 8601; UTC without an offset)."
)
@click.option(
    "--until", type=INSTANT, help="Window end, exclusive (ISO 8601; UTC without an offset)."
)
@click.option("--seed", type=int, help="Model seed.")
@input_option
@status_option
@click.pass_context
def run(ctx: click.Context, since: datetime | None, until: datetime | None, seed: int | None,
        input_source: str | None, status_file: Path | None) -> None:  # fmt: skip
    """Run the usage ELT: push down, enrich, impute, aggregate, upsert statistics."""
    from usage_elt.workflows.elt_usage import run_usage_elt

    options = {"window.since": since, "window.until": until, "model.seed": seed}
    settings, run_id, parent = _prepare(ctx, "usage_elt", status_file, input_source, **options)
    _finish(run_usage_elt(settings, run_id=run_id, parent_run_id=parent), status_file)


@main.command("etl-customers")
@click.option("--customers", "customers_src", metavar="SRC", help="Raw customers: path or URL.")
@click.option("--contracts", "contracts_src", metavar="SRC", help="Raw contracts: path or URL.")
@input_option
@status_option
@click.pass_context
def etl_customers(ctx: click.Context, customers_src: str | None, contracts_src: str | None,
                  input_source: str | None, status_file: Path | None) -> None:  # fmt: skip
    """Validate, anonymize and load customers and contracts (CSV or JSON Lines)."""
    from usage_elt.workflows.etl_customers import run_etl_customers

    options = {"customers_etl.customers": customers_src, "customers_etl.contracts": contracts_src}
    settings, run_id, parent = _prepare(ctx, "customers_etl", status_file, input_source, **options)
    _finish(run_etl_customers(settings, run_id=run_id, parent_run_id=parent), status_file)


@main.command()
@click.option("--customers", "customers_src", metavar="SRC", help="Raw customers: path or URL.")
@click.option("--contracts", "contracts_src", metavar="SRC", help="Raw contracts: path or URL.")
@click.option(
    "--since", type=INSTANT, help="Window start, inclusive (ISO 8601; UTC without an offset)."
)
@click.option(
    "--until", type=INSTANT, help="Window end, exclusive (ISO 8601; UTC without an offset)."
)
@input_option
@status_option
@click.pass_context
def orchestrate(ctx: click.Context, customers_src: str | None, contracts_src: str | None,
                since: datetime | None, until: datetime | None, input_source: str | None,
                status_file: Path | None) -> None:  # fmt: skip
    """Run the customers ETL, then the usage ELT; one combined status and notification."""
    from usage_elt.workflows.orchestration import run_orchestration

    options = {"customers_etl.customers": customers_src, "customers_etl.contracts": contracts_src,
               "window.since": since, "window.until": until}  # fmt: skip
    settings, run_id, parent = _prepare(ctx, "orchestration", status_file, input_source, **options)
    _finish(run_orchestration(settings, run_id=run_id, parent_run_id=parent), status_file)


@main.group(invoke_without_command=True)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.pass_context
def runs(ctx: click.Context, limit: int) -> None:
    """List the last runs; `runs show RUN_ID` shows one in full."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console
    from rich.table import Table

    from usage_elt import history

    rows = _from_history(ctx, lambda pg: history.recent(pg, limit))
    table = Table("run id", "workflow", "parent", "status", "started (UTC)", "seconds", "error")
    for row in rows:
        error = row["error"] or {}
        table.add_row(
            row["run_id"], row["workflow"], row["parent_run_id"] or "", row["status"],
            f"{row['started_at']:%Y-%m-%d %H:%M:%S}",
            f"{row['seconds']:.1f}" if row["seconds"] is not None else "",
            redact(f"{error.get('step', '')}: {error.get('message', '')}"[:80]) if error else "",
        )  # fmt: skip
    Console(width=200).print(table)


@runs.command("show")
@click.argument("run_id")
@click.pass_context
def runs_show(ctx: click.Context, run_id: str) -> None:
    """Show one run's full status document."""
    from usage_elt import history

    document = _from_history(ctx, lambda pg: history.one(pg, run_id))
    if document is None:
        _fail(ctx, f"no run {run_id} in workflow_runs; `usage-elt runs` lists the recorded ones")
    click.echo(to_json(document, indent=2))


def _from_history(ctx: click.Context, read: Any) -> Any:
    """What ``read(pg)`` returns from the run history; one clear line when it cannot."""
    from usage_elt.engines.postgres import open_postgres

    settings = _quiet_settings(ctx)
    try:
        with open_postgres(settings.postgres, settings.data_dir) as pg:
            return read(pg)
    except UsageEltError as exc:
        _fail(ctx, str(exc))


def _quiet_settings(ctx: click.Context) -> Settings:
    try:
        settings = _settings(ctx)
    except UsageEltError as exc:
        _fail(ctx, str(exc))
    redact.add(*settings.secrets())
    setup_logging("DEBUG" if ctx.find_root().params.get("debug") else "WARNING")
    return settings


@main.command()
@click.argument("run_id")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the HTML file; default DATA_DIR/runs/RUN_ID/report.html.",
)  # fmt: skip
@click.pass_context
def report(ctx: click.Context, run_id: str, out: Path | None) -> None:
    """Write the self-contained HTML report of a run, from DATA_DIR/runs/RUN_ID/."""
    from usage_elt.report import write_report

    settings = _quiet_settings(ctx)
    try:
        path = write_report(settings.data_dir, run_id, out)
    except UsageEltError as exc:
        _fail(ctx, str(exc))
    click.echo(str(path))


if __name__ == "__main__":  # pragma: no cover
    main()
