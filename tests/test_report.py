"""The run report: written at the end of each run, rebuilt by `usage-elt report`, rendered by
headless Chromium with its plots."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

from usage_elt.cli import main
from usage_elt.status import run_dir
from usage_elt.workflows.elt_usage import run_usage_elt
from usage_elt.workflows.init import Generation

from conftest import load_and_run, make_settings

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.postgres]

PLOTS = {
    "candidates", "score_distribution", "residual_histogram", "residual_scatter",
    "feature_importances",
}  # fmt: skip
# Appended to a copy of the report: records the size Chromium laid out for each plot.
MEASURE = """<script>
for (const svg of document.querySelectorAll("svg.plot")) {
  const box = svg.getBoundingClientRect();
  svg.setAttribute("data-rendered", Math.round(box.width) + "x" + Math.round(box.height));
  svg.setAttribute("data-marks", svg.querySelectorAll("rect, circle").length);
}
</script>"""


@pytest.fixture(scope="module")
def finished_run(spark, module_database, tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("report"), module_database, "web_report",
                             model={"max_iter": 6, "max_depth": 3})  # fmt: skip
    return settings, load_and_run(settings, Generation(sessions=1200, customers=250, seed=9))


class _Plots(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.plots: dict[str, dict[str, str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "svg" and "plot" in (found.get("class") or "").split():
            self.plots[found["data-plot"]] = found


def _chromium(*args: str) -> subprocess.CompletedProcess:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("headless Chromium not installed (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip


def test_each_run_writes_a_report_that_renders_with_its_plots(finished_run, tmp_path):
    settings, status = finished_run
    report = run_dir(settings.data_dir, status["run_id"]) / "report.html"
    html = report.read_text(encoding="utf-8")
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html and "<link" not in html and "<img" not in html
    imputation = status["metrics"]["imputation"]
    for name, metrics in imputation["candidates"].items():
        assert name in html and f"{metrics['rmse']:,.4g}" in html
    assert f"{status['metrics']['statistics']['customers']}" in html

    measured = tmp_path / "measured.html"
    measured.write_text(html.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = _chromium("--window-size=1100,3000", "--dump-dom", measured.as_uri()).stdout
    parser = _Plots()
    parser.feed(dom)
    assert set(parser.plots) == PLOTS
    for name, plot in parser.plots.items():
        width, height = (int(v) for v in plot["data-rendered"].split("x"))
        assert width >= 300 and height >= 80, (name, plot["data-rendered"])
        assert int(plot["data-marks"]) >= 3, name

    screenshot = tmp_path / "report.png"
    _chromium("--window-size=1100,3000", f"--screenshot={screenshot}", report.as_uri())
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_command_rebuilds_a_run_report_and_refuses_unknown_runs(finished_run, tmp_path):
    settings, status = finished_run
    base = ["--data-dir", str(settings.data_dir), "report"]
    out = tmp_path / "again.html"
    result = CliRunner().invoke(main, [*base, status["run_id"], "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = run_dir(settings.data_dir, status["run_id"]) / "report.html"
    assert out.read_text(encoding="utf-8") == written.read_text(encoding="utf-8")

    unknown = CliRunner().invoke(main, [*base, "20200101T000000Z-000000"])
    assert unknown.exit_code == 1
    assert "no run 20200101T000000Z-000000 in" in unknown.stderr
    assert status["run_id"] in unknown.stderr  # the latest runs are named

    outside = CliRunner().invoke(main, [*base, "../../etc"])
    assert outside.exit_code == 1 and "is not a run id" in outside.stderr


def test_a_failed_run_still_gets_a_report_naming_the_error(spark, finished_run):
    settings, _ = finished_run
    broken = settings.model_copy(update={"hive": settings.hive.model_copy(update={
        "database": "web_report_missing"})})  # fmt: skip
    status = run_usage_elt(broken)
    assert status["success"] is False and status["error"]["step"] == "access"
    html = (run_dir(settings.data_dir, status["run_id"]) / "report.html").read_text()
    assert "failed" in html and "web_report_missing.usage does not exist" in html
    saved = json.loads((run_dir(settings.data_dir, status["run_id"]) / "status.json").read_text())
    assert saved["run_id"] == status["run_id"]
