"""The run status document: what ran, how long, how many rows, and how it ended."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from usage_elt.config import RetrySettings
from usage_elt.errors import ConfigError
from usage_elt.logs import redact
from usage_elt.retry import attempt

log = logging.getLogger(__name__)
T = TypeVar("T")


RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")


def check_run_id(value: object) -> str:
    """A caller's run id, if it is safe as a file and table name part; else ConfigError."""
    if not isinstance(value, str) or not RUN_ID.match(value) or ".." in value:
        raise ConfigError(
            f"run id {value!r} is not valid: use 1 to 63 letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or digit"
        )
    return value


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id: UTC time and a random suffix."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass
class StepRecord:
    name: str
    status: str = "running"
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)
    attempts: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "rows": self.rows,
            "attempts": self.attempts,
        }


class Run:
    """One run of a workflow: its steps, counts, metrics and final status."""

    def __init__(
        self,
        workflow: str,
        run_id: str | None = None,
        parent_run_id: str | None = None,
        parameters: dict[str, Any] | None = None,
    ):
        self.workflow = workflow
        self.run_id = check_run_id(run_id) if run_id is not None else new_run_id()
        self.parent_run_id = parent_run_id
        self.parameters = parameters or {}
        self.started_at = datetime.now(UTC)
        self.finished_at: datetime | None = None
        self._clock = time.monotonic()
        self.steps: list[StepRecord] = []
        self.rows: dict[str, int] = {}
        self.metrics: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}
        self.artifacts: dict[str, Any] = {}  # kept for reports, not part of the document
        self.error: dict[str, Any] | None = None
        self.status = "running"

    @contextmanager
    def step(self, name: str) -> Iterator[StepRecord]:
        """Time a step, record its rows; a failure marks the run failed and propagates."""
        record = StepRecord(name)
        self.steps.append(record)
        started = time.monotonic()
        log.info("step %s started", name)
        try:
            yield record
        except BaseException as exc:
            record.status = "failed"
            record.seconds = time.monotonic() - started
            self.fail(name, exc)
            raise
        if record.status == "running":
            record.status = "succeeded"
        record.seconds = time.monotonic() - started
        self.rows.update(record.rows)
        counts = ", ".join(f"{k}={v}" for k, v in record.rows.items()) or "no rows"
        log.info("step %s done in %.2fs: %s", name, record.seconds, counts)

    def execute(
        self, name: str, body: Callable[[StepRecord], T], retry: RetrySettings | None = None
    ) -> T:
        """Run ``body`` as step ``name``; transient failures are retried under ``retry``."""
        with self.step(name) as record:

            def once(number: int) -> T:
                record.attempts = number
                record.rows = {}
                return body(record)

            if retry is None:
                return once(1)
            return attempt(once, retry, f"step {name}")

    def fail_child(self, step: str, error: dict[str, Any] | None) -> None:
        """Record that the child workflow run as ``step`` failed with ``error``."""
        for record in self.steps:
            if record.name == step:
                record.status = "failed"
        if self.error is None:
            error = error or {"type": "Error", "message": "failed"}
            self.error = {"step": step, "type": error.get("type", "Error"),
                          "message": f"{step} failed: {error.get('message', '')}"}  # fmt: skip
            self.status = "failed"

    @property
    def current_step(self) -> str:
        return self.steps[-1].name if self.steps else "start"

    def fail(self, step: str, exc: BaseException) -> None:
        """Record the failure of ``step``; the traceback goes to the log, not the status."""
        if self.error is not None:
            return
        message = summarize(exc)
        self.error = {"step": step, "type": type(exc).__name__, "message": message}
        self.status = "failed"
        log.error("step %s failed: %s: %s", step, type(exc).__name__, message)
        log.debug("traceback:\n%s", redact("".join(traceback.format_exception(exc))))

    def finish(self) -> dict[str, Any]:
        if self.status == "running":
            self.status = "succeeded"
        self.finished_at = datetime.now(UTC)
        return self.document()

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    def document(self) -> dict[str, Any]:
        seconds = time.monotonic() - self._clock
        doc: dict[str, Any] = {
            "workflow": self.workflow,
            "run_id": self.run_id,
            "parent_run_id": self.parent_run_id,
            "status": self.status,
            "success": self.status == "succeeded",
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "seconds": round(seconds, 3),
            "parameters": self.parameters,
            "steps": [s.as_dict() for s in self.steps],
            "rows": self.rows,
            "metrics": self.metrics,
            "error": self.error,
        }
        doc.update(self.extra)
        return doc


def summarize(exc: BaseException, limit: int = 600) -> str:
    """A one-paragraph message for an error: a worker traceback shrinks to its last line."""
    text = redact(str(exc)).strip() or type(exc).__name__
    if "Traceback (most recent call last)" in text:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        text = lines[-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def to_json(document: dict[str, Any], indent: int | None = None) -> str:
    """The document as JSON text, secrets redacted."""
    return redact(json.dumps(document, indent=indent, default=str, sort_keys=False))


def write_status(document: dict[str, Any], path: Path) -> None:
    """Write the document atomically: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(to_json(document, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def run_dir(data_dir: Path, run_id: str) -> Path:
    """Where a run keeps its files: status.json, artifacts.json, report.html."""
    return data_dir / "runs" / run_id


def save_run_files(data_dir: Path, run: Run, document: dict[str, Any]) -> Path:
    """Keep the run's status and artifacts (for reports) under the data directory."""
    folder = run_dir(data_dir, run.run_id)
    write_status(document, folder / "status.json")
    write_status(run.artifacts, folder / "artifacts.json")
    return folder
