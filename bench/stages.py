"""Where a Spark job's time goes: its stages, read from Spark's event log."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

# A Python call site names its file by full path; keep it from the package folder on.
_PATH = re.compile(r"/\S*/((?:usage_elt|bench)/\S+)")


def _call_site(name: str) -> str:
    return _PATH.sub(r"\1", name)


def read_stages(event_dir: Path) -> list[dict]:
    """Every completed stage of the applications logged in ``event_dir``, in start order.

    Spark 4 writes each application's log as a folder of rolling ``events_*`` files.
    """
    stages = []
    for log in sorted(event_dir.rglob("*")):
        if not log.is_file() or log.name.startswith("appstatus"):
            continue
        with log.open(encoding="utf-8") as handle:
            for line in handle:
                if '"SparkListenerStageCompleted"' not in line:
                    continue
                info = json.loads(line)["Stage Info"]
                started, ended = info.get("Submission Time"), info.get("Completion Time")
                if started is None or ended is None:
                    continue
                stages.append(
                    {
                        "stage": info["Stage ID"],
                        "name": _call_site(info["Stage Name"]),
                        "tasks": info["Number of Tasks"],
                        "start_ms": started,
                        "seconds": round((ended - started) / 1000, 3),
                    }
                )
    return sorted(stages, key=lambda s: s["start_ms"])


def by_step(stages: list[dict], steps: list[dict], started_at: str) -> dict[str, dict]:
    """Stage seconds summed per pipeline step, by the step's wall-clock window."""
    clock = datetime.fromisoformat(started_at).timestamp() * 1000
    windows = []
    for step in steps:
        windows.append((step["name"], clock, clock + step["seconds"] * 1000))
        clock += step["seconds"] * 1000
    out: dict[str, dict] = {}
    for stage in stages:
        name = next((n for n, lo, hi in windows if lo - 50 <= stage["start_ms"] < hi + 50), "other")
        entry = out.setdefault(name, {"stages": 0, "stage_seconds": 0.0, "top": []})
        entry["stages"] += 1
        entry["stage_seconds"] = round(entry["stage_seconds"] + stage["seconds"], 3)
        entry["top"].append(stage)
    for entry in out.values():
        entry["top"] = [
            {"name": s["name"], "seconds": s["seconds"], "tasks": s["tasks"]}
            for s in sorted(entry["top"], key=lambda s: -s["seconds"])[:5]
        ]
    return out


def top_call_sites(stages: list[dict], count: int = 10) -> list[dict]:
    """Stage seconds summed by call site (the stage name), largest first."""
    sums: dict[str, dict] = {}
    for stage in stages:
        entry = sums.setdefault(stage["name"], {"name": stage["name"], "stages": 0, "seconds": 0.0})
        entry["stages"] += 1
        entry["seconds"] = round(entry["seconds"] + stage["seconds"], 3)
    return sorted(sums.values(), key=lambda e: -e["seconds"])[:count]
