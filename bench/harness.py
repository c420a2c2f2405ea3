"""The benchmark run: one data set, the pipeline and its three comparisons, one result."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench import machine
from bench.memory import TreeSampler
from bench.stages import by_step, read_stages, top_call_sites
from usage_elt.synthetic import generate

log = logging.getLogger("bench")
REPO = Path(__file__).resolve().parents[1]
HIVE_DATABASE = "bench"


@dataclass
class Options:
    sessions: int = 1_000_000
    customers: int = 200_000
    seed: int = 7
    out: Path = REPO / "docs" / "benchmarks"
    work_dir: Path | None = None
    keep_work: bool = False
    pg: str = "auto"  # auto | machine | embedded
    pg_admin_uri: str = "postgresql://postgres@127.0.0.1:5432/test"
    pg_database: str = "usage_elt_bench"
    master: str = "local[*]"
    driver_memory: str = "2g"
    shuffle_partitions: int = 8
    model: dict[str, Any] = field(default_factory=dict)
    job_timeout_s: float = 4 * 3600


class JobFailed(RuntimeError):
    pass


def run(options: Options) -> dict[str, Any]:
    """Generate, load, run every job, and return the result document (also written as JSON)."""
    work = options.work_dir or Path(tempfile.mkdtemp(prefix="usage-elt-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "sessions": options.sessions,
        "customers": options.customers,
        "seed": options.seed,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine.describe(),
        "options": {
            k: str(v)
            for k, v in asdict(options).items()
            if k not in ("pg_admin_uri", "out", "work_dir")
        },
        "load_average": {"start": machine.load_average()},
    }
    try:
        with _postgres(options, work) as (pg_uri, pg_kind):
            result["postgres"] = {"server": pg_kind, "version": machine.postgres_version(pg_uri)}
            _run_jobs(options, work, pg_uri, result)
    finally:
        if not options.keep_work and options.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    result["load_average"]["end"] = machine.load_average()
    result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["ratios"] = ratios(result)
    options.out.mkdir(parents=True, exist_ok=True)
    path = options.out / f"sessions-{options.sessions}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log.info("wrote %s", path)
    return result


def _run_jobs(options: Options, work: Path, pg_uri: str, result: dict[str, Any]) -> None:
    data = work / f"data-{options.sessions}-{options.customers}-{options.seed}"
    started = time.perf_counter()
    if not (data / "counts.json").is_file():
        counts = generate(data, options.sessions, options.customers, options.seed)
        (data / "counts.json").write_text(json.dumps(counts), encoding="utf-8")
    result["generate"] = {"seconds": round(time.perf_counter() - started, 3),
                          "rows": json.loads((data / "counts.json").read_text())}  # fmt: skip
    settings = _settings(options, work, pg_uri)
    common = {"settings": settings, "pg_uri": pg_uri, "timeout_s": options.job_timeout_s}

    result["load"] = _job("init", {**common, "data": str(data)}, work)
    location = result["load"].pop("usage_location")
    result["pipeline"] = _job("pipeline", _with_events(common, work, "pipeline"), work)
    _attach_stages(result["pipeline"], work / "events" / "pipeline")
    result["floor"] = _job(
        "floor", {**_with_events(common, work, "floor"), "out": str(work / "floor")}, work
    )
    result["pandas"] = _job("pandas", {**common, "usage_location": location}, work)
    result["raw_copy"] = _job("raw_copy", common, work)


def _settings(options: Options, work: Path, pg_uri: str) -> dict[str, Any]:
    return {
        "data_dir": str(work / "usage-elt"),
        "postgres": {"dsn": pg_uri},
        "hive": {"database": HIVE_DATABASE},
        "spark": {"master": options.master, "driver_memory": options.driver_memory,
                  "shuffle_partitions": options.shuffle_partitions},
        "model": dict(options.model),
    }  # fmt: skip


def _with_events(spec: dict[str, Any], work: Path, name: str) -> dict[str, Any]:
    """The spec with Spark's event log on, into a folder of the job's own."""
    events = work / "events" / name
    shutil.rmtree(events, ignore_errors=True)
    events.mkdir(parents=True)
    settings = json.loads(json.dumps(spec["settings"]))
    settings["spark"]["conf"] = {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": events.resolve().as_uri(),
        "spark.eventLog.compress": "false",
    }
    return {**spec, "settings": settings}


def _attach_stages(pipeline: dict[str, Any], events: Path) -> None:
    stages = read_stages(events)
    pipeline["spark_stages"] = {
        "count": len(stages),
        "seconds": round(sum(s["seconds"] for s in stages), 3),
        "by_step": by_step(stages, pipeline["steps"], pipeline.pop("started_at")),
        "top_call_sites": top_call_sites(stages),
    }


def _job(name: str, spec: dict[str, Any], work: Path) -> dict[str, Any]:
    """Run one job in a child process, sampling its memory; returns its result."""
    jobs = work / "jobs"
    jobs.mkdir(exist_ok=True)
    spec_path, result_path = jobs / f"{name}.spec.json", jobs / f"{name}.result.json"
    spec_path.write_text(json.dumps({**spec, "job": name}), encoding="utf-8")
    result_path.unlink(missing_ok=True)
    log_path = jobs / f"{name}.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    load_before = machine.load_average()
    started = time.perf_counter()
    log.info("job %s started", name)
    with log_path.open("w", encoding="utf-8") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.jobs", str(spec_path), str(result_path)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        with TreeSampler(child.pid) as sampler:
            try:
                code = child.wait(timeout=spec.get("timeout_s", 4 * 3600))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                raise JobFailed(f"job {name} ran out of time; see {log_path}") from None
    seconds = time.perf_counter() - started
    if code != 0 or not result_path.is_file():
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
        raise JobFailed(f"job {name} failed (exit {code}); last lines of {log_path}:\n"
                        + "\n".join(tail))  # fmt: skip
    result = json.loads(result_path.read_text(encoding="utf-8"))
    result["process_seconds"] = round(seconds, 3)
    result["memory"] = sampler.result()
    result["load_average"] = {"start": load_before, "end": machine.load_average()}
    log.info("job %s done in %.1fs", name, seconds)
    return result


@contextmanager
def _postgres(options: Options, work: Path) -> Iterator[tuple[str, str]]:
    """A fresh database of the bench's own on the machine's server, or an embedded server."""
    kind = options.pg
    if kind == "auto":
        kind = "machine" if _answers(options.pg_admin_uri) else "embedded"
    name = options.pg_database
    if kind == "machine":
        admin = options.pg_admin_uri
        uri = admin.rsplit("/", 1)[0] + f"/{name}"
        server = None
    else:
        from usage_elt.engines.postgres import start_embedded

        server = start_embedded(work / "postgres")
        admin, uri = server.get_uri(), server.get_uri(name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield uri, kind
    finally:
        if not options.keep_work:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if server is not None:
            server.cleanup()


def _answers(uri: str) -> bool:
    try:
        with psycopg.connect(uri, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def ratios(result: dict[str, Any]) -> dict[str, Any]:
    """The figures the aims are about, from one run's result."""
    pipeline = pipeline_seconds(result["pipeline"])
    save = next(s["seconds"] for s in result["pipeline"]["steps"] if s["name"] == "save")
    return {
        "pipeline_s": round(pipeline, 3),
        "pipeline_over_floor": round(pipeline / result["floor"]["seconds"], 3),
        "pandas_over_pipeline": round(result["pandas"]["seconds"] / pipeline, 3),
        "save_speed_vs_raw_copy": round(result["raw_copy"]["seconds"] / save, 3),
        "driver_peak_rss_mb": result["pipeline"]["memory"]["driver_rss_mb"],
        "driver_heap_used_peak_mb": result["pipeline"]["jvm"]["heap_used_peak_mb"],
        "pandas_peak_rss_mb": result["pandas"]["memory"]["python_rss_mb"],
    }


def pipeline_seconds(pipeline: dict[str, Any]) -> float:
    """The pipeline's seconds without Spark's start-up (the floor's exclude it too)."""
    return sum(s["seconds"] for s in pipeline["steps"] if s["name"] != "connect")
