"""Logging for the package: one setup, secrets redacted everywhere text leaves the process."""

from __future__ import annotations

import logging
import re
import sys
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PACKAGE_LOGGER = "usage_elt"
MASK = "***"
# user:password@ in URIs, password=... in key/value connection strings
_URI_PASSWORD = re.compile(r"(://[^:/@\s]+:)([^@\s]+)(@)")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


class Redactor:
    """Replaces known secret values, and anything shaped like a password, with a mask."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, *secrets: str | None) -> None:
        for secret in secrets:
            if secret:
                self._secrets.add(secret)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        text = _URI_PASSWORD.sub(rf"\g<1>{MASK}\g<3>", text)
        return _KV_PASSWORD.sub(rf"\g<1>{MASK}", text)


redact = Redactor()


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: str = "INFO", log_file: Path | None = None) -> None:
    """Log the package to stderr at ``level`` (and all of it to ``log_file``), secrets redacted."""
    logger = logging.getLogger(PACKAGE_LOGGER)
    logger.setLevel(logging.DEBUG if log_file is not None else level.upper())
    for handler in list(logger.handlers):
        if getattr(handler, "_usage_elt", False):
            logger.removeHandler(handler)
            handler.close()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(level.upper())
    handlers: list[logging.Handler] = [console]
    if log_file is not None:
        # The run's log file keeps everything, tracebacks and SQL included.
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(_RedactingFormatter(_FORMAT))
        handler._usage_elt = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    for noisy in ("py4j", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class LogTail(logging.Handler):
    """Keeps the last lines the package logged during a run, redacted, for notifications."""

    def __init__(self, lines: int = 60):
        super().__init__(logging.DEBUG)
        self.lines: deque[str] = deque(maxlen=lines)
        self.setFormatter(_RedactingFormatter(_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a log line must never break a run
            self.handleError(record)


@contextmanager
def log_tail(lines: int = 60) -> Iterator[LogTail]:
    """Capture the package's INFO and above while the block runs."""
    logger = logging.getLogger(PACKAGE_LOGGER)
    handler = LogTail(lines)
    handler.setLevel(logging.INFO)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        previous = logger.level
        logger.setLevel(logging.INFO)
    else:
        previous = None
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        if previous is not None:
            logger.setLevel(previous)
