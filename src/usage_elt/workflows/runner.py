"""What every workflow run shares: the guard, run history, the notification, the status files."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from usage_elt import history, notify, retry
from usage_elt.config import Settings
from usage_elt.engines.postgres import Postgres, open_postgres
from usage_elt.engines.spark import spark_session
from usage_elt.logs import log_tail, redact
from usage_elt.status import Run, save_run_files, summarize

log = logging.getLogger(__name__)


def execute(
    workflow: str,
    settings: Settings,
    body: Callable[[Run], None],
    *,
    parameters: dict[str, Any],
    run_id: str | None = None,
    parent_run_id: str | None = None,
    notify_people: bool = True,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``body`` under one guard; record history, notify, save the status. Never raises.

    Any exception inside ``body`` becomes a failure status naming the step, the error type
    and the message (secrets redacted); its traceback goes to the log.
    """
    redact.add(*settings.secrets())
    run = Run(workflow, run_id, parent_run_id, parameters)
    run.extra = extra if extra is not None else {}
    with log_tail() as tail:
        _record(settings, run.document(), quiet=True)
        try:
            body(run)
        except Exception as exc:
            run.fail(run.current_step, exc)
        document = run.finish()
        document["history"] = _record(settings, document, quiet=False)
        if notify_people and notify.should_notify(settings.smtp, document):
            message = notify.build_message(settings.smtp, document, list(tail.lines))
            document["notification"] = notify.send(
                settings.smtp, message, settings.data_dir / "outbox"
            )
    save_run_files(settings.data_dir, run, document)
    return document


def connect(
    run: Run, settings: Settings, stack: ExitStack, with_spark: bool
) -> tuple[Any, Postgres]:
    """The connect step: Spark (when asked) and PostgreSQL, proven to answer."""
    with run.step("connect") as step:
        spark = stack.enter_context(spark_session(settings)) if with_spark else None
        pg = stack.enter_context(open_postgres(settings.postgres, settings.data_dir))

        def ping(number: int) -> None:
            step.attempts = number
            pg.ping()

        retry.attempt(ping, settings.retry, "connect to PostgreSQL")
    return spark, pg


def _record(settings: Settings, document: dict[str, Any], quiet: bool) -> dict[str, Any]:
    """Write the run to ``workflow_runs``; a failure is logged and reported, never raised."""
    try:
        with open_postgres(settings.postgres, settings.data_dir) as pg:
            history.record(pg, document)
        return {"recorded": True}
    except Exception as exc:
        message = summarize(exc)
        if not quiet:
            log.warning("run %s not recorded in workflow_runs: %s", document["run_id"], message)
        return {"recorded": False, "error": message}
