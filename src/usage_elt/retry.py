"""Which errors are worth another attempt, and the attempts themselves."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import TypeVar

from usage_elt.config import RetrySettings
from usage_elt.errors import UsageEltError

log = logging.getLogger(__name__)
T = TypeVar("T")

# SQLSTATE classes: connection exception, operator intervention (shutdown, restart, crash),
# insufficient resources; and serialization failure / deadlock, which pass on a new attempt.
TRANSIENT_SQLSTATE_PREFIXES = ("08", "57P", "53", "40001", "40P01")
# Text of transient failures that reach us wrapped (from Spark executors, through Py4J).
TRANSIENT_PHRASES = (
    "connection refused",
    "connection reset",
    "could not connect to server",
    "server closed the connection unexpectedly",
    "terminating connection due to administrator command",
    "the database system is starting up",
    "the database system is shutting down",
    "timeout expired",
    "timed out",
    "broken pipe",
)


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) may pass if the same action is tried again."""
    for error in _chain(exc):
        if isinstance(error, UsageEltError):
            return error.transient  # data, config and input errors are final
        if isinstance(error, (ConnectionError, TimeoutError, socket.timeout)):
            return True
        sqlstate = getattr(error, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(TRANSIENT_SQLSTATE_PREFIXES):
            return True
        if isinstance(sqlstate, str) and sqlstate:
            return False  # a PostgreSQL error with a definite, non-transient code
        text = str(error).lower()
        if any(phrase in text for phrase in TRANSIENT_PHRASES):
            return True
    return False


def attempt(action: Callable[[int], T], policy: RetrySettings, what: str, sleep=time.sleep) -> T:
    """Run ``action(attempt_number)``; retry transient failures with exponential backoff."""
    number = 1
    while True:
        try:
            return action(number)
        except Exception as exc:
            if number >= policy.attempts or not is_transient(exc):
                raise
            delay = policy.delay(number)
            log.warning(
                "%s: attempt %d of %d failed with a transient error (%s); retrying in %.1fs",
                what, number, policy.attempts, type(exc).__name__, delay,
            )  # fmt: skip
            sleep(delay)
            number += 1
