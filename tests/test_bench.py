"""The benchmark harness keeps working: one tiny run, every section present (no timing checks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest

from conftest import MACHINE_PG, REPO, _machine_pg_answers

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.postgres]


def _positive(value) -> bool:
    return isinstance(value, int | float) and value > 0


def test_tiny_run_writes_every_section(tmp_path):
    out = tmp_path / "out"
    pg = ["--pg", "machine", "--pg-admin-uri", MACHINE_PG] if _machine_pg_answers() else [
        "--pg", "embedded"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("USAGE_ELT_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--sessions", "3000", "--customers", "400",
         "--max-iter", "5", "--master", "local[2]", "--shuffle-partitions", "4",
         "--out", str(out), "--work-dir", str(tmp_path / "work"), *pg,
         "--pg-database", f"usage_elt_bench_{uuid.uuid4().hex[:8]}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    result = json.loads((out / "sessions-3000.json").read_text())
    steps = {s["name"]: s["seconds"] for s in result["pipeline"]["steps"]}
    assert {"access", "enrich", "impute", "write_imputed", "aggregate", "save"} <= set(steps)
    assert all(_positive(v) for name, v in steps.items() if name != "connect")
    assert result["pipeline"]["spark_stages"]["count"] > 0
    assert _positive(result["floor"]["seconds"]) and result["floor"]["rows"]["statistics"] > 0
    assert _positive(result["pandas"]["seconds"])
    assert result["pandas"]["rows"]["statistics"] == result["pipeline"]["rows"][
        "customers_with_sessions"]  # fmt: skip
    assert _positive(result["raw_copy"]["seconds"])
    assert result["raw_copy"]["rows"]["statistics"] == result["pipeline"]["rows"][
        "statistics_upserted"]  # fmt: skip
    for key in (
        "pipeline_over_floor",
        "pandas_over_pipeline",
        "save_speed_vs_raw_copy",
        "driver_peak_rss_mb",
        "driver_heap_used_peak_mb",
        "pandas_peak_rss_mb",
    ):
        assert _positive(result["ratios"][key]), key  # fmt: skip
    for job in ("pipeline", "floor", "pandas"):
        assert _positive(result[job]["memory"]["python_rss_mb"]), job
    assert _positive(result["pipeline"]["memory"]["jvm_rss_mb"])
    assert result["machine"]["cores"] >= 1 and result["machine"]["memory_gb"] > 0

    docs = (out / "benchmarks.md").read_text()
    assert "pipeline / floor" in docs and "3k" in docs
    assert not (REPO / "docs" / "benchmarks" / "sessions-3000.json").exists()
