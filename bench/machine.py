"""What the benchmark ran on: cores, memory, processor, versions, and how loaded it was."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import version

import psutil
import psycopg


def describe() -> dict:
    """The machine and the software versions that matter for the figures."""
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "processor": _processor(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "java": _java(),
        "packages": {
            name: version(name)
            for name in ("pyspark", "pandas", "scikit-learn", "pyarrow", "adbc-driver-postgresql")
        },
    }


def _git(repo, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, timeout=30
    ).stdout


def source_commit(repo) -> str:
    """The commit the code ran from, with ``+changes`` when the work tree differs from it
    elsewhere than in the benchmark's own outputs (``docs/benchmarks*``)."""
    try:
        head = _git(repo, "rev-parse", "--short", "HEAD").strip()
        dirty = _git(repo, "status", "--porcelain", "--untracked-files=no", "--", ".",
                     ":(exclude)docs/benchmarks.md", ":(exclude)docs/benchmarks")  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (head or "unknown") + ("+changes" if dirty.strip() else "")


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def postgres_version(uri: str) -> str:
    with psycopg.connect(uri) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


def _processor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _java() -> str:
    try:
        done = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (done.stderr or done.stdout).splitlines()
    return lines[0].strip() if lines else "unknown"
