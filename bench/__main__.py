"""``python -m bench``: measure the usage ELT and its comparisons at one size."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import click

from bench.harness import REPO, JobFailed, Options, run
from bench.report import load_results, print_table, update_docs
from usage_elt.config import SparkSettings

DEFAULT_OUT = REPO / "docs" / "benchmarks"


@click.command()
@click.option("--sessions", type=click.IntRange(min=100), default=1_000_000, show_default=True)
@click.option("--customers", type=click.IntRange(min=10), default=200_000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="Folder of the result JSON files (sessions-N.json).",
)
@click.option(
    "--docs",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Markdown to update from every result in --out [default: docs/benchmarks.md "
    "with the default --out, else OUT/benchmarks.md].",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep generated data and Spark files here (reused by later runs) instead of "
    "a temporary folder removed at the end.",
)
@click.option("--keep-work", is_flag=True, help="Keep the work folder and the bench database.")
@click.option(
    "--pg",
    type=click.Choice(["auto", "machine", "embedded"]),
    default="auto",
    show_default=True,
    help="PostgreSQL: the server at --pg-admin-uri, or embedded.",
)
@click.option(
    "--pg-admin-uri",
    default="postgresql://postgres@127.0.0.1:5432/test",
    show_default=True,
    help="A database on the machine's server to create the bench's.",
)
@click.option(
    "--pg-database",
    default="usage_elt_bench",
    show_default=True,
    help="The bench's own database: dropped and created again on every run.",
)
@click.option("--master", default="local[*]", show_default=True)
@click.option("--driver-memory", default="2g", show_default=True)
@click.option(
    "--shuffle-partitions",
    type=click.IntRange(min=1),
    default=SparkSettings().shuffle_partitions,
    show_default=True,
)
@click.option(
    "--max-iter",
    type=click.IntRange(min=1),
    help="Model iterations and trees [default: the product's].",
)
@click.option("--debug", is_flag=True, help="Log the harness at DEBUG.")
def main(sessions: int, customers: int, seed: int, out: Path, docs: Path | None,
         work_dir: Path | None, keep_work: bool, pg: str, pg_admin_uri: str, pg_database: str,
         master: str, driver_memory: str, shuffle_partitions: int, max_iter: int | None,
         debug: bool) -> None:  # fmt: skip
    """Generate data, run the usage ELT, the floor, the pandas baseline and the raw copy."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s")  # fmt: skip
    options = Options(
        sessions=sessions, customers=customers, seed=seed, out=out, work_dir=work_dir,
        keep_work=keep_work, pg=pg, pg_admin_uri=pg_admin_uri, pg_database=pg_database,
        master=master, driver_memory=driver_memory, shuffle_partitions=shuffle_partitions,
        model={"max_iter": max_iter} if max_iter else {},
    )  # fmt: skip
    # A stopped run still writes what it measured: SIGTERM unwinds like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        result = run(options)
    except JobFailed as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)
    print_table(result)
    if docs is None:
        docs = REPO / "docs" / "benchmarks.md" if out == DEFAULT_OUT else out / "benchmarks.md"
    update_docs(docs, load_results(out))
    click.echo(f"\nresults in {out}, figures in {docs}")


if __name__ == "__main__":
    main()
