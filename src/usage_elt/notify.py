"""Notifications: an email over SMTP, or an .eml file in the outbox when no SMTP is set."""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from usage_elt.config import SmtpSettings
from usage_elt.logs import redact

log = logging.getLogger(__name__)


def should_notify(smtp: SmtpSettings, document: dict[str, Any]) -> bool:
    return not document.get("success") or smtp.on_success


def _failures(document: dict[str, Any]) -> list[str]:
    """'workflow: step: error' for the run and each failed child of an orchestration."""
    lines = []
    for child in document.get("children", {}).values():
        if child.get("error"):
            err = child["error"]
            lines.append(
                f"{child['workflow']}: step {err['step']}: {err['type']}: {err['message']}"
            )
    if not lines and document.get("error"):
        err = document["error"]
        lines.append(f"{document['workflow']}: step {err['step']}: {err['type']}: {err['message']}")
    return lines


def build_message(
    smtp: SmtpSettings, document: dict[str, Any], log_lines: list[str]
) -> EmailMessage:
    """The email for a finished run: subject names workflow, status and run id."""
    status = "FAILED" if not document.get("success") else "succeeded"
    message = EmailMessage()
    message["Subject"] = f"[usage-elt] {document['workflow']} {status}: run {document['run_id']}"
    message["From"] = smtp.sender
    message["To"] = ", ".join(smtp.recipients) or "undisclosed-recipients:;"
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="usage-elt.local")
    failures = _failures(document)
    body = [
        f"Workflow: {document['workflow']}",
        f"Run id:   {document['run_id']}",
        f"Status:   {document['status']}",
        f"Duration: {document.get('seconds', 0):.1f} s",
    ]
    if document.get("parent_run_id"):
        body.append(f"Parent:   {document['parent_run_id']}")
    if failures:
        body += ["", "What failed:", *[f"  {line}" for line in failures]]
    body += ["", "Rows:"]
    body += [f"  {k}: {v}" for k, v in (document.get("rows") or {}).items()] or ["  (none)"]
    body += ["", "Steps:"]
    for step in document.get("steps", []):
        body.append(f"  {step['name']}: {step['status']} in {step['seconds']:.1f} s"
                    f" ({step.get('attempts', 1)} attempt(s))")  # fmt: skip
    body += ["", "Log (last lines):", *log_lines]
    message.set_content(redact("\n".join(body)) + "\n")
    return message


def send(smtp: SmtpSettings, message: EmailMessage, outbox: Path) -> dict[str, Any]:
    """Deliver ``message``; returns what happened, for the status. Never raises."""
    if smtp.host is None:
        outbox.mkdir(parents=True, exist_ok=True)
        path = outbox / f"{message['Message-ID'].strip('<>').split('@')[0]}.eml"
        path.write_bytes(bytes(message))
        log.warning("no SMTP host configured: notification written to %s", path)
        return {"sent": False, "method": "outbox", "path": str(path)}
    if not smtp.recipients:
        log.error("SMTP host configured but no recipients: notification not sent")
        return {"sent": False, "method": "smtp", "error": "no recipients configured"}
    try:
        _deliver(smtp, message)
    except (OSError, smtplib.SMTPException) as exc:
        error = redact(f"{type(exc).__name__}: {exc}")
        log.error("notification to %s:%s failed: %s", smtp.host, smtp.port, error)
        return {"sent": False, "method": "smtp", "error": error}
    log.info("notification sent to %d recipient(s) via %s:%s", len(smtp.recipients),
             smtp.host, smtp.port)  # fmt: skip
    return {"sent": True, "method": "smtp", "recipients": len(smtp.recipients)}


def _deliver(smtp: SmtpSettings, message: EmailMessage) -> None:
    context = ssl.create_default_context()
    if smtp.security == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            smtp.host, smtp.port, timeout=smtp.timeout_s, context=context
        )
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
    with client:
        if smtp.security == "starttls":
            client.starttls(context=context)
        if smtp.user and smtp.password is not None:
            client.login(smtp.user, smtp.password.get_secret_value())
        client.send_message(message, from_addr=smtp.sender, to_addrs=smtp.recipients)
