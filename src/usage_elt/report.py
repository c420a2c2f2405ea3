"""The run report: one self-contained HTML file (inline SVG plots, no fetches) from a run's files.

It reads ``DATA_DIR/runs/RUN_ID/status.json`` and ``artifacts.json`` (small aggregates written
during the run) and shows the candidates' held-out metrics, observed against imputed scores,
the held-out residuals, the feature importances and a summary of the statistics written.
"""

from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path
from typing import Any

from usage_elt.errors import ReportError
from usage_elt.logs import redact
from usage_elt.status import run_dir

REPORT_FILE = "report.html"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
COLORS = {"observed": "#4c78a8", "imputed": "#f58518", "bar": "#54a24b", "chosen": "#e45756"}
WIDTH, HEIGHT, PAD = 640, 260, 44

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #222; margin: 24px auto; max-width: 980px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0; } td, th { padding: 3px 10px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
tr.chosen td { font-weight: 600; color: #b22; } .failed { color: #b22; font-weight: 600; }
svg.plot { display: block; margin: 8px 0; background: #fcfcfc; border: 1px solid #eee; }
svg text { font: 11px system-ui, sans-serif; fill: #333; } .note { color: #666; }
"""


def load_run(data_dir: Path, run_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The status document and artifacts of a finished run, or a ReportError saying why not."""
    runs = Path(data_dir) / "runs"
    if not _RUN_ID.match(run_id):
        raise ReportError(f"{run_id!r} is not a run id; run ids look like 20240601T120000Z-a1b2c3")
    folder = run_dir(Path(data_dir), run_id)
    if not (folder / "status.json").is_file():
        known = sorted(p.parent.name for p in runs.glob("*/status.json"))[-5:]
        hint = f"latest runs there: {', '.join(known)}" if known else "no run is recorded there"
        raise ReportError(f"no run {run_id} in {runs}; {hint}")
    try:
        status = json.loads((folder / "status.json").read_text(encoding="utf-8"))
        extra = folder / "artifacts.json"
        artifacts = json.loads(extra.read_text(encoding="utf-8")) if extra.is_file() else {}
    except (OSError, json.JSONDecodeError) as exc:
        raise ReportError(f"files of run {run_id} in {folder} cannot be read: {exc}") from None
    return status, artifacts


def write_report(data_dir: Path, run_id: str, out: Path | None = None) -> Path:
    """Render the report of ``run_id``; written to ``out`` or beside the run's status."""
    status, artifacts = load_run(data_dir, run_id)
    path = out or run_dir(Path(data_dir), run_id) / REPORT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(render(status, artifacts), encoding="utf-8")
    tmp.replace(path)
    return path


def render(status: dict[str, Any], artifacts: dict[str, Any]) -> str:
    """The report as one HTML document."""
    imputation = status.get("metrics", {}).get("imputation") or {}
    sections = [
        _overview(status),
        _imputation_section(imputation),
        _distribution_section(artifacts.get("score_distribution") or []),
        _residual_section(artifacts),
        _importance_section(imputation),
        _statistics_section(status.get("metrics", {}).get("statistics") or {}),
        _steps_section(status.get("steps") or []),
    ]
    title = f"usage-elt run {status.get('run_id', '?')}"
    body = "\n".join(sections)
    return redact(
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>\n{body}\n</body></html>\n"
    )


# Sections


def _overview(status: dict[str, Any]) -> str:
    state = status.get("status", "unknown")
    rows = [
        ("workflow", status.get("workflow")),
        ("status", f'<span class="{escape(state)}">{escape(state)}</span>'),
        ("started", status.get("started_at")),
        ("finished", status.get("finished_at")),
        ("seconds", status.get("seconds")),
        ("window", json.dumps(status.get("parameters", {}).get("window"))),
        ("model seed", status.get("parameters", {}).get("model", {}).get("seed")),
    ]
    error = status.get("error")
    if error:
        rows.append(("error", f"{error.get('step')}: {error.get('type')}: {error.get('message')}"))
    return "<h2>Run</h2>" + _table(["", ""], rows, raw={1})


def _imputation_section(imputation: dict[str, Any]) -> str:
    candidates = imputation.get("candidates") or {}
    if not candidates:
        return "<h2>Imputation</h2><p class='note'>No imputation was recorded for this run.</p>"
    chosen = imputation.get("chosen")
    ranked = sorted(candidates.items(), key=lambda item: item[1]["rmse"])
    rows = [(name, m["rmse"], m["mae"], "chosen" if name == chosen else "") for name, m in ranked]
    lead = (
        f"<p><b>{escape(str(chosen))}</b> imputes: held-out RMSE {imputation.get('rmse')} "
        f"against {imputation.get('baseline_rmse')} for the global mean, on "
        f"{imputation.get('holdout_rows')} held-out scores of {imputation.get('known_scores')} "
        f"known; models fit on {imputation.get('model_sample_rows')} rows.</p>"
    )
    table = _table(["candidate", "RMSE", "MAE", ""], rows, chosen={chosen})
    bars = _hbars("candidates", [(r[0], r[1]) for r in rows], chosen, "held-out RMSE")
    return "<h2>Imputation: candidates on held-out scores</h2>" + lead + table + bars


def _distribution_section(distribution: list[dict[str, Any]]) -> str:
    if not distribution:
        return "<h2>Observed and imputed scores</h2><p class='note'>No scores were written.</p>"
    edges = _edges(distribution)
    totals = {s: sum(d["sessions"] for d in distribution if d["source"] == s) for s in COLORS}
    series = {}
    for source in ("observed", "imputed"):
        mine = [d for d in distribution if d["source"] == source]
        counts = {(d["from"], d["to"]): d["sessions"] for d in mine}
        share = [100 * counts.get(edge, 0) / max(totals[source], 1) for edge in edges]
        series[f"{source} ({totals[source]} sessions)"] = (COLORS[source], share)
    labels = [f"{(lo + hi) / 2:g}" for lo, hi in edges]
    note = "<p class='note'>Share of each source's sessions per score bin of width 0.25.</p>"
    return (
        "<h2>Observed and imputed scores</h2>"
        + note
        + _bars("score_distribution", labels, series, "score (bin centre)", "% of sessions")
    )


def _residual_section(artifacts: dict[str, Any]) -> str:
    histogram = artifacts.get("residual_histogram") or []
    levels = artifacts.get("by_level") or []
    pairs = artifacts.get("residuals") or []
    if not histogram and not pairs:
        return "<h2>Held-out residuals</h2><p class='note'>No held-out residuals recorded.</p>"
    parts = ["<h2>Held-out residuals (prediction − observed)</h2>"]
    if histogram:
        edges = _edges(histogram)
        counts = {(h["from"], h["to"]): h["count"] for h in histogram}
        labels = [f"{lo:g}" for lo, _ in edges]
        series = {"held-out scores": (COLORS["bar"], [counts.get(e, 0) for e in edges])}
        parts.append(_bars("residual_histogram", labels, series, "residual (bin start)", "scores"))
    if levels:
        rows = [(lv["observed"], lv["count"], lv["mean_predicted"], lv["rmse"]) for lv in levels]
        parts.append(_table(["observed", "held-out scores", "mean prediction", "RMSE"], rows))
    if pairs:
        parts.append(f"<p class='note'>Predicted against observed, {len(pairs)} held-out scores "
                     "(observed values spread sideways to show their number).</p>")  # fmt: skip
        parts.append(_scatter("residual_scatter", pairs))
    return "".join(parts)


def _importance_section(imputation: dict[str, Any]) -> str:
    importances = imputation.get("feature_importances") or {}
    if not importances:
        return "<h2>Feature importances</h2><p class='note'>No model was fitted.</p>"
    model = escape(str(imputation.get("importances_of")))
    items = list(importances.items())
    return f"<h2>Feature importances ({model})</h2>" + _hbars(
        "feature_importances", items, None, "importance"
    )


def _statistics_section(statistics: dict[str, Any]) -> str:
    if not statistics:
        return "<h2>Statistics written</h2><p class='note'>No statistics were written.</p>"
    rows = [(name.replace("_", " "), value) for name, value in statistics.items()]
    return "<h2>Statistics written</h2>" + _table(["", ""], rows)


def _steps_section(steps: list[dict[str, Any]]) -> str:
    rows = [
        (s["name"], s["status"], s["seconds"], ", ".join(f"{k}={v}" for k, v in s["rows"].items()))
        for s in steps
    ]
    return "<h2>Steps</h2>" + _table(["step", "status", "seconds", "rows"], rows)


# Building blocks


def _table(header: list[str], rows: list[tuple], raw: set[int] = frozenset(),
           chosen: set[Any] = frozenset()) -> str:  # fmt: skip
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    lines = []
    for row in rows:
        cells = "".join(
            f"<td>{value if i in raw else escape(_text(value))}</td>" for i, value in enumerate(row)
        )
        css = ' class="chosen"' if row[0] in chosen else ""
        lines.append(f"<tr{css}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(lines)}</table>"


def _edges(bins: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """Every bin from the lowest to the highest present, empty ones included."""
    width = bins[0]["to"] - bins[0]["from"]
    low, high = min(b["from"] for b in bins), max(b["to"] for b in bins)
    count = round((high - low) / width)
    return [(low + i * width, low + (i + 1) * width) for i in range(count)]


def _text(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:,.4g}" if isinstance(value, float) else str(value)


def _svg(name: str, height: int, content: list[str]) -> str:
    return (
        f'<svg class="plot" data-plot="{name}" role="img" aria-label="{name}" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg">'
        + "".join(content)
        + "</svg>"
    )


def _bars(name: str, labels: list[str], series: dict[str, tuple[str, list[float]]],
          x_label: str, y_label: str) -> str:  # fmt: skip
    """Vertical bars, one group per label, one bar per series."""
    top = max((max(values, default=0) for _, values in series.values()), default=0) or 1
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    group = plot_w / max(len(labels), 1)
    bar = group * 0.8 / max(len(series), 1)
    parts = _axes(plot_h, top, x_label, y_label)
    for s, (legend, (color, values)) in enumerate(series.items()):
        for i, value in enumerate(values):
            h = plot_h * value / top
            x = PAD + i * group + group * 0.1 + s * bar
            parts.append(
                f'<rect x="{x:.1f}" y="{PAD + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{escape(legend)} {labels[i]}: {value:.4g}</title></rect>'
            )
        parts.append(f'<rect x="{PAD + 8}" y="{8 + 14 * s}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{PAD + 22}" y="{17 + 14 * s}">{escape(legend)}</text>')  # fmt: skip
    step = -(-len(labels) // 12)
    for i in range(0, len(labels), step):
        x = PAD + (i + 0.5) * group
        parts.append(f'<text x="{x:.1f}" y="{PAD + plot_h + 14}" text-anchor="middle">'
                     f"{escape(labels[i])}</text>")  # fmt: skip
    return _svg(name, HEIGHT, parts)


def _axes(plot_h: float, top: float | None, x_label: str, y_label: str) -> list[str]:
    """Axis lines and labels; five ticks from 0 to ``top`` on the y axis unless it is None."""
    bottom = PAD + plot_h
    parts = [
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{bottom}" stroke="#888"/>',
        f'<line x1="{PAD}" y1="{bottom}" x2="{WIDTH - PAD}" y2="{bottom}" stroke="#888"/>',
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 6}" text-anchor="middle">{escape(x_label)}</text>',
        f'<text x="12" y="{PAD + plot_h / 2}" transform="rotate(-90 12 {PAD + plot_h / 2})" '
        f'text-anchor="middle">{escape(y_label)}</text>',
    ]
    for tick in range(5 if top is not None else 0):
        value = top * tick / 4
        y = bottom - plot_h * tick / 4
        parts.append(f'<text x="{PAD - 4}" y="{y + 4:.1f}" text-anchor="end">{value:.3g}</text>')
    return parts


def _hbars(name: str, items: list[tuple[str, float]], chosen: str | None, x_label: str) -> str:
    """Horizontal bars, one per item, longest first as given."""
    row, left = 20, 190
    height = row * len(items) + 40
    top = max((v for _, v in items), default=0) or 1
    parts = [f'<text x="{WIDTH / 2}" y="{height - 6}" text-anchor="middle">'
             f"{escape(x_label)}</text>"]  # fmt: skip
    for i, (label, value) in enumerate(items):
        w = (WIDTH - left - 70) * value / top
        color = COLORS["chosen"] if label == chosen else COLORS["observed"]
        y = 10 + i * row
        parts.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{row - 6}" fill="{color}"/>'
            f'<text x="{left + w + 4:.1f}" y="{y + 13}">{value:.4g}</text>'
        )
    return _svg(name, height, parts)


def _scatter(name: str, pairs: list[dict[str, float]]) -> str:
    """Predicted (y) against observed (x) score, observed spread by a fixed pattern."""
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def x_of(score: float, spread: float = 0.5) -> float:
        return PAD + plot_w * (score - 0.5 + 0.6 * (spread - 0.5)) / 5

    def y_of(score: float) -> float:
        return PAD + plot_h * (5 - score) / 4

    parts = _axes(plot_h, None, "observed score", "predicted score")
    for level in range(1, 6):
        parts.append(
            f'<text x="{PAD - 4}" y="{y_of(level) + 4:.1f}" text-anchor="end">{level}</text>'
            f'<text x="{x_of(level):.1f}" y="{PAD + plot_h + 14}" text-anchor="middle">'
            f"{level}</text>"
        )
    for i, pair in enumerate(pairs):
        parts.append(
            f'<circle cx="{x_of(pair["observed"], (i * 0.618034) % 1):.1f}" '
            f'cy="{y_of(pair["predicted"]):.1f}" '
            f'r="1.6" fill="{COLORS["imputed"]}" fill-opacity="0.45"/>'
        )
    return _svg(name, HEIGHT, parts)
