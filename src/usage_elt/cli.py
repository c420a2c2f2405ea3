"""The commands. Each builds the settings, calls one workflow and prints its status last."""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from usage_elt.config import Settings, load_settings
from usage_elt.errors import UsageEltError
from usage_elt.logs import redact, setup_logging
from usage_elt.status import new_run_id, to_json, write_status

log = logging.getLogger(__name__)


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    if value is None:
        return
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree.setdefault(key, {})
    tree[leaf] = value


def _settings(ctx: click.Context, **options: Any) -> Settings:
    root = ctx.find_root().params
    overrides: dict[str, Any] = {}
    _set(overrides, "data_dir", root.get("data_dir"))
    _set(overrides, "postgres.dsn", root.get("pg_dsn"))
    _set(overrides, "hive.metastore_uri", root.get("metastore_uri"))
    _set(overrides, "spark.master", root.get("master"))
    for dotted, value in options.items():
        _set(overrides, dotted, value)
    return load_settings(root.get("config"), overrides)


def _finish(document: dict[str, Any], status_file: Path | None) -> None:
    if status_file is not None:
        write_status(document, status_file)
    click.echo(to_json(document))
    sys.exit(0 if document.get("success") else 1)


def _fail(message: str, debug: bool) -> None:
    if debug:
        log.exception("failed")
    click.secho(f"error: {redact(message)}", fg="red", err=True)
    sys.exit(1)


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


def _start(ctx: click.Context, settings: Settings, run_id: str) -> None:
    debug = ctx.find_root().params.get("debug")
    redact.add(*settings.secrets())
    setup_logging("DEBUG" if debug else settings.log_level,
                  settings.data_dir / "logs" / f"{run_id}.log")  # fmt: skip


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
@click.option("--status-file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def init(ctx: click.Context, data: Path | None, generate: bool, sessions: int, customers: int,
         seed: int, reset: bool, status_file: Path | None) -> None:  # fmt: skip
    """Create or reset the environment and load a data folder (or generated data)."""
    from usage_elt.workflows.init import Generation, run_init

    if generate == (data is not None):
        _fail("give exactly one of --data DIR or --generate", False)
    try:
        settings = _settings(ctx)
    except UsageEltError as exc:
        _fail(str(exc), ctx.find_root().params.get("debug"))
    run_id = new_run_id()
    _start(ctx, settings, run_id)
    generation = Generation(sessions, customers, seed) if generate else None
    _finish(run_init(settings, data, generation, reset, run_id=run_id), status_file)


@main.command()
@click.option("--since", type=click.DateTime(), help="Window start (UTC), inclusive.")
@click.option("--until", type=click.DateTime(), help="Window end (UTC), exclusive.")
@click.option("--seed", type=int, help="Model seed.")
@click.option("--status-file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def run(ctx: click.Context, since: datetime | None, until: datetime | None, seed: int | None,
        status_file: Path | None) -> None:  # fmt: skip
    """Run the usage ELT: push down, enrich, impute, aggregate, upsert statistics."""
    from usage_elt.workflows.elt_usage import run_usage_elt

    try:
        settings = _settings(ctx, **{"window.since": since, "window.until": until,
                                     "model.seed": seed})  # fmt: skip
    except UsageEltError as exc:
        _fail(str(exc), ctx.find_root().params.get("debug"))
    run_id = new_run_id()
    _start(ctx, settings, run_id)
    _finish(run_usage_elt(settings, run_id=run_id), status_file)


if __name__ == "__main__":  # pragma: no cover
    main()
