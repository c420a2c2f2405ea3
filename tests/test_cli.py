"""The command line on the embedded defaults, as a user runs it: separate processes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

CLI = str(Path(sys.executable).with_name("usage-elt"))


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("USAGE_ELT_")}
    env["USAGE_ELT_MODEL__MAX_ITER"] = "10"
    return subprocess.run(
        [CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )


def _status(result: subprocess.CompletedProcess) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_embedded_defaults_from_a_fresh_folder(tmp_path):
    # Before init: a clear failure, exit code 1, the failing step named.
    early = _cli(tmp_path, "run")
    assert early.returncode == 1, early.stderr
    status = _status(early)
    assert status["success"] is False and status["error"]["step"] == "access"
    assert "run `usage-elt init` first" in status["error"]["message"]

    init = _cli(tmp_path, "init", "--generate", "--sessions", "2000", "--customers", "300")
    assert init.returncode == 0, init.stderr
    assert _status(init)["rows"]["sessions"] == 2000

    run = _cli(tmp_path, "run", "--status-file", "status.json")
    assert run.returncode == 0, run.stderr
    printed = _status(run)
    assert printed == json.loads((tmp_path / "status.json").read_text())
    assert printed["rows"]["statistics_upserted"] > 0
    assert (tmp_path / ".usage-elt" / "postgres").is_dir()
    assert (tmp_path / ".usage-elt" / "metastore_db").is_dir()
    assert (tmp_path / ".usage-elt" / "logs" / f"{printed['run_id']}.log").is_file()


def test_init_needs_exactly_one_source(tmp_path):
    result = _cli(tmp_path, "init")
    assert result.returncode == 1
    assert "give exactly one of --data DIR or --generate" in result.stderr


def test_readme_opens_with_the_two_commands_ci_runs():
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"```sh\n(.+?)\n```", readme)
    setup_and_run, setup_and_test = commands[0], commands[1]
    assert "usage-elt init --generate" in setup_and_run and "usage-elt run" in setup_and_run
    assert setup_and_test in (REPO / ".ci" / "run").read_text()
