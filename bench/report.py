"""The benchmark's outputs: a table on the terminal, and the figures section of the docs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BEGIN = "<!-- bench:figures:begin (written by python -m bench; edit outside) -->"
END = "<!-- bench:figures:end -->"

AIMS = {
    "pipeline_over_floor": ("pipeline / floor", "<= 2", lambda v: v <= 2),
    "pandas_over_pipeline": ("pandas / pipeline", ">= 3 at 10M", lambda v: v >= 3),
    "save_speed_vs_raw_copy": ("save step speed / raw copy speed", ">= 0.70", lambda v: v >= 0.7),
}


def _size(sessions: int) -> str:
    for unit, name in ((1_000_000, "M"), (1_000, "k")):
        if sessions >= unit and sessions % (unit // 10) == 0:
            return f"{sessions / unit:g}{name}"
    return str(sessions)


def summary_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """(figure, value) pairs for one run, in reading order."""
    r, p = result["ratios"], result["pipeline"]
    rows = [
        ("pipeline, s (Spark start excluded)", f"{r['pipeline_s']:.1f}"),
        ("floor (plain Spark), s", f"{result['floor']['seconds']:.1f}"),
        ("pandas + scikit-learn, s", f"{result['pandas']['seconds']:.1f}"),
        ("save step, s", f"{_step(p, 'save'):.2f}"),
        ("raw Arrow copy, s", f"{result['raw_copy']['seconds']:.3f}"),
    ]
    if "copy_and_upsert_s" in result["raw_copy"]:  # measured from this figure's first run on
        floor = result["raw_copy"]["copy_and_upsert_s"]
        rows.append(("raw copy + the step's upsert, one transaction, s", f"{floor:.3f}"))
        rows.append(("save step speed / copy + upsert speed", f"{floor / _step(p, 'save'):.2f}"))
    for key, (label, aim, _) in AIMS.items():
        rows.append((f"{label} (aim {aim})", f"{r[key]:.2f}"))
    rows += [
        ("driver peak RSS, Python + JVM, MB", f"{p['memory']['driver_rss_mb']:.0f}"),
        ("driver JVM heap used, peak MB", f"{p['jvm']['heap_used_peak_mb']:.0f}"),
        ("pandas process peak RSS, MB", f"{result['pandas']['memory']['python_rss_mb']:.0f}"),
    ]
    return rows


def print_table(result: dict[str, Any]) -> None:
    rows = summary_rows(result)
    width = max(len(name) for name, _ in rows)
    print(f"\nusage ELT benchmark: {result['sessions']:,} sessions, "
          f"{result['customers']:,} customers")  # fmt: skip
    print("-" * (width + 14))
    for name, value in rows:
        print(f"{name:<{width}}  {value:>10}")
    print("\npipeline steps, s: " + ", ".join(
        f"{s['name']} {s['seconds']:.1f}" for s in result["pipeline"]["steps"]))  # fmt: skip


def _step(pipeline: dict[str, Any], name: str) -> float:
    return next(s["seconds"] for s in pipeline["steps"] if s["name"] == name)


def load_results(folder: Path) -> list[dict[str, Any]]:
    """Every complete result document in ``folder``, smallest run first."""
    results = [json.loads(p.read_text(encoding="utf-8")) for p in folder.glob("sessions-*.json")]
    return sorted((r for r in results if "incomplete" not in r), key=lambda r: r["sessions"])


def render(results: list[dict[str, Any]]) -> str:
    """The figures section: machine, summary against the aims, steps, memory."""
    sizes = [_size(r["sessions"]) for r in results]
    head = "| figure | " + " | ".join(sizes) + " |\n|---|" + "---:|" * len(sizes)
    lines = [BEGIN, "", "### Runs", ""]
    for r in results:
        m = r["machine"]
        lines.append(
            f"- **{_size(r['sessions'])}** ({r['sessions']:,} sessions, {r['customers']:,} "
            f"customers, seed {r['seed']}): {r['started_at']} to {r['finished_at']}; "
            f"{m['cores']} cores, {m['memory_gb']} GB, {m['processor']}; load average "
            f"(1/5/15 min) {_load(r['load_average']['start'])} before, "
            f"{_load(r['load_average']['end'])} after; PostgreSQL {r['postgres']['version']} "
            f"({r['postgres']['server']} server); Spark {m['packages']['pyspark']} "
            f"`{r['options']['master']}`, driver memory {r['options']['driver_memory']}"
            + (f"; code at commit `{r['commit']}`." if "commit" in r else ".")
        )
    lines += ["", "### Against the aims", "", head]
    by_run = [dict(summary_rows(r)) for r in results]
    names = list(dict.fromkeys(name for rows in by_run for name in rows))
    for name in names:
        values = [rows.get(name, "not measured") for rows in by_run]
        lines.append(f"| {name} | " + " | ".join(values) + " |")
    lines += ["", _verdicts(results), "", "### Pipeline steps, seconds", "", head]
    for name in [s["name"] for s in results[-1]["pipeline"]["steps"]]:
        lines.append(f"| {name} | " + " | ".join(f"{_step(r['pipeline'], name):.1f}"
                                                 for r in results) + " |")  # fmt: skip
    lines += ["", "### Spark stage time per step (stages overlap: sums can pass wall time)", ""]
    lines += [head]
    for name in [s["name"] for s in results[-1]["pipeline"]["steps"]]:
        cells = [f"{_stage_seconds(r, name):.1f}" for r in results]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"Largest call sites at {sizes[-1]} (stage seconds):", ""]
    for site in results[-1]["pipeline"]["spark_stages"]["top_call_sites"]:
        lines.append(f"- `{site['name']}`: {site['seconds']:.1f} s in {site['stages']} stages")
    lines += ["", "### pandas + scikit-learn phases, seconds", "", head]
    for name in results[-1]["pandas"]["steps"]:
        lines.append(f"| {name} | " + " | ".join(f"{r['pandas']['steps'].get(name, 0):.1f}"
                                                 for r in results) + " |")  # fmt: skip
    lines += ["", "### Memory, MB (peak resident sets sampled every 0.2 s)", "", head]
    for label, get in _memory_rows():
        lines.append(f"| {label} | " + " | ".join(f"{get(r):.0f}" for r in results) + " |")
    lines += ["", "### Model chosen", "", head]
    lines.append("| pipeline (held-out RMSE) | " + " | ".join(
        f"{r['pipeline']['imputation']['chosen']} {r['pipeline']['imputation']['rmse']:.3f}"
        for r in results) + " |")  # fmt: skip
    lines.append("| pandas (held-out RMSE) | " + " | ".join(
        f"{r['pandas']['imputation']['chosen']} "
        f"{r['pandas']['imputation']['candidates'][r['pandas']['imputation']['chosen']]['rmse']:.3f}"
        for r in results) + " |")  # fmt: skip
    lines += ["", END]
    return "\n".join(lines)


def _stage_seconds(result: dict[str, Any], step: str) -> float:
    return result["pipeline"]["spark_stages"]["by_step"].get(step, {}).get("stage_seconds", 0.0)


def _memory_rows():
    return [
        ("pipeline driver: Python + JVM RSS", lambda r: r["pipeline"]["memory"]["driver_rss_mb"]),
        ("pipeline driver: Python RSS", lambda r: r["pipeline"]["memory"]["python_rss_mb"]),
        ("pipeline driver: JVM RSS", lambda r: r["pipeline"]["memory"]["jvm_rss_mb"]),
        ("pipeline driver: JVM heap used", lambda r: r["pipeline"]["jvm"]["heap_used_peak_mb"]),
        ("pipeline driver: JVM heap after GC",
         lambda r: r["pipeline"]["jvm"]["old_gen_after_gc_peak_mb"]),
        ("pipeline: Python workers RSS (sum)", lambda r: r["pipeline"]["memory"]["workers_rss_mb"]),
        ("floor driver: Python + JVM RSS", lambda r: r["floor"]["memory"]["driver_rss_mb"]),
        ("pandas + scikit-learn process RSS", lambda r: r["pandas"]["memory"]["python_rss_mb"]),
    ]  # fmt: skip


def _verdicts(results: list[dict[str, Any]]) -> str:
    parts = []
    for key, (label, aim, met) in AIMS.items():
        marks = [f"{_size(r['sessions'])} {'met' if met(r['ratios'][key]) else 'missed'}"
                 for r in results]  # fmt: skip
        parts.append(f"{label} {aim}: " + ", ".join(marks))
    if len(results) > 1:
        first, last = results[0], results[-1]
        growth = last["ratios"]["driver_peak_rss_mb"] / first["ratios"]["driver_peak_rss_mb"]
        parts.append(f"driver peak RSS {_size(last['sessions'])} / {_size(first['sessions'])}: "
                     f"{growth:.2f}x")  # fmt: skip
    return "Verdicts: " + "; ".join(parts) + "."


def _load(values: list[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


SKELETON = """# Benchmarks

Figures from `python -m bench`; see bench/README.md for what each job does.

{block}
"""


def update_docs(path: Path, results: list[dict[str, Any]]) -> None:
    """Replace the figures section of ``path`` (kept text outside it), or write a new file."""
    block = render(results)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        if BEGIN in text and END in text:
            before, rest = text.split(BEGIN, 1)
            after = rest.split(END, 1)[1]
            path.write_text(before + block + after, encoding="utf-8")
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SKELETON.format(block=block), encoding="utf-8")
