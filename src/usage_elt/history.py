"""Run history in PostgreSQL: one row per run of any workflow, parents linked."""

from __future__ import annotations

import json
import logging
from typing import Any

from usage_elt.engines.postgres import Postgres
from usage_elt.logs import redact

log = logging.getLogger(__name__)

WORKFLOW_RUNS_DDL = """
CREATE TABLE IF NOT EXISTS workflow_runs (
    run_id        text PRIMARY KEY,
    workflow      text NOT NULL,
    parent_run_id text,
    status        text NOT NULL,
    started_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    seconds       double precision,
    parameters    jsonb NOT NULL DEFAULT '{}',
    rows          jsonb NOT NULL DEFAULT '{}',
    error         jsonb,
    document      jsonb
)
"""

UPSERT_RUN_SQL = """
INSERT INTO workflow_runs (run_id, workflow, parent_run_id, status, started_at, finished_at,
                           seconds, parameters, rows, error, document)
VALUES (%(run_id)s, %(workflow)s, %(parent_run_id)s, %(status)s, %(started_at)s,
        %(finished_at)s, %(seconds)s, %(parameters)s, %(rows)s, %(error)s, %(document)s)
ON CONFLICT (run_id) DO UPDATE SET
    status = EXCLUDED.status, finished_at = EXCLUDED.finished_at, seconds = EXCLUDED.seconds,
    parameters = EXCLUDED.parameters, rows = EXCLUDED.rows, error = EXCLUDED.error,
    document = EXCLUDED.document
"""

LIST_SQL = """
SELECT run_id, workflow, parent_run_id, status, started_at, finished_at, seconds, error
FROM workflow_runs
ORDER BY started_at DESC, run_id DESC
LIMIT %s
"""


def _json(value: Any) -> str | None:
    return None if value is None else redact(json.dumps(value, default=str))


def record(pg: Postgres, document: dict[str, Any]) -> None:
    """Insert or update the run's row from its status document (secrets redacted)."""
    with pg.connect() as conn:
        conn.execute(WORKFLOW_RUNS_DDL)
        conn.execute(
            UPSERT_RUN_SQL,
            {
                "run_id": document["run_id"],
                "workflow": document["workflow"],
                "parent_run_id": document.get("parent_run_id"),
                "status": document["status"],
                "started_at": document["started_at"],
                "finished_at": document.get("finished_at"),
                "seconds": document.get("seconds"),
                "parameters": _json(document.get("parameters") or {}),
                "rows": _json(document.get("rows") or {}),
                "error": _json(document.get("error")),
                "document": _json(document),
            },
        )
        conn.commit()


def recent(pg: Postgres, limit: int = 20) -> list[dict[str, Any]]:
    """The last runs, newest first."""
    with pg.connect() as conn:
        conn.execute(WORKFLOW_RUNS_DDL)
        cur = conn.execute(LIST_SQL, (limit,))
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        conn.commit()
    return rows


def one(pg: Postgres, run_id: str) -> dict[str, Any] | None:
    """One run's full status document, or None when no such run was recorded."""
    with pg.connect() as conn:
        conn.execute(WORKFLOW_RUNS_DDL)
        row = conn.execute(
            "SELECT document FROM workflow_runs WHERE run_id = %s", (run_id,)
        ).fetchone()
        conn.commit()
    return None if row is None else row[0]
