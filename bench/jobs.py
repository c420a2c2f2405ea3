"""One benchmark job in a process of its own: ``python -m bench.jobs SPEC.json RESULT.json``.

A process per job gives each its own driver (Python and JVM), so the peak memory sampled from
outside belongs to that job alone. The spec names the job and carries the settings.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from bench.memory import HeapSampler
from usage_elt.config import Settings, load_settings
from usage_elt.engines.spark import spark_session
from usage_elt.logs import setup_logging


def _usage_location(spark, database: str) -> str:
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED `{database}`.usage").collect()
    location = next(r["data_type"] for r in rows if r["col_name"] == "Location")
    return location.removeprefix("file:")


def job_init(settings: Settings, spec: dict) -> dict:
    from usage_elt.workflows.init import run_init

    with spark_session(settings) as spark:
        status = run_init(settings, data=Path(spec["data"]))
        if not status["success"]:
            return {"error": status["error"]}
        location = _usage_location(spark, settings.hive.database)
    return {"steps": {s["name"]: s["seconds"] for s in status["steps"]}, "rows": status["rows"],
            "usage_location": location}  # fmt: skip


def job_pipeline(settings: Settings, spec: dict) -> dict:
    from usage_elt.workflows.elt_usage import run_usage_elt

    started = time.perf_counter()
    with spark_session(settings) as spark:
        spark_start = time.perf_counter() - started
        with HeapSampler(spark) as heap:
            status = run_usage_elt(settings)
        jvm = heap.result()
    if not status["success"]:
        return {"error": status["error"]}
    imputation = status["metrics"]["imputation"]
    return {
        "spark_start_s": round(spark_start, 3),
        "started_at": status["started_at"],
        "steps": [{"name": s["name"], "seconds": s["seconds"]} for s in status["steps"]],
        "rows": status["rows"],
        "imputation": {k: imputation[k] for k in ("chosen", "rmse", "baseline_rmse", "candidates",
                                                  "train_rows")},
        "jvm": jvm,
    }  # fmt: skip


def job_floor(settings: Settings, spec: dict) -> dict:
    from bench.floor import run_floor

    started = time.perf_counter()
    with spark_session(settings) as spark:
        spark_start = time.perf_counter() - started
        with HeapSampler(spark) as heap:
            result = run_floor(
                spark, spec["pg_uri"], f"`{settings.hive.database}`.usage", Path(spec["out"])
            )
        result["jvm"] = heap.result()
    result["spark_start_s"] = round(spark_start, 3)
    return result


def job_pandas(settings: Settings, spec: dict) -> dict:
    from bench.pandas_job import run_pandas

    return run_pandas(Path(spec["usage_location"]), spec["pg_uri"], settings.model)


def job_raw_copy(settings: Settings, spec: dict) -> dict:
    from bench.raw_copy import run_raw_copy

    return run_raw_copy(spec["pg_uri"])


JOBS = {"init": job_init, "pipeline": job_pipeline, "floor": job_floor, "pandas": job_pandas,
        "raw_copy": job_raw_copy}  # fmt: skip


def main(spec_path: str, result_path: str) -> int:
    spec: dict[str, Any] = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    setup_logging(spec.get("log_level", "INFO"))
    settings = load_settings(None, spec["settings"])
    result = JOBS[spec["job"]](settings, spec)
    result["self_max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    Path(result_path).write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
