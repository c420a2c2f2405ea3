"""Which errors are retried: transient ones from real servers, never data errors."""

from __future__ import annotations

import socket

import psycopg
import pytest

from usage_elt.config import RetrySettings
from usage_elt.errors import DataError, TransientError
from usage_elt.retry import attempt, is_transient


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_refused_connection_is_transient():
    with pytest.raises(psycopg.OperationalError) as raised:
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{_closed_port()}/x", connect_timeout=2)
    assert is_transient(raised.value)


@pytest.mark.postgres
def test_a_constraint_violation_is_not_transient(database):
    with psycopg.connect(database) as conn:
        conn.execute("CREATE TABLE t (v int CHECK (v > 0))")
        with pytest.raises(psycopg.errors.CheckViolation) as raised:
            conn.execute("INSERT INTO t VALUES (-1)")
    assert not is_transient(raised.value)


def test_product_errors_carry_their_own_verdict():
    assert is_transient(TransientError("server restarting"))
    assert not is_transient(DataError("satisfaction=7 is outside 1..5: connection refused"))
    wrapped = RuntimeError("Py4JJavaError: ... psycopg: connection refused by 127.0.0.1")
    assert is_transient(wrapped)


def test_attempts_back_off_then_give_up_or_succeed():
    waits: list[float] = []
    calls: list[int] = []
    policy = RetrySettings(attempts=4, backoff_s=1.0, max_backoff_s=3.0)

    def flaky(number: int) -> str:
        calls.append(number)
        if number < 4:
            raise ConnectionRefusedError("refused")
        return "ok"

    assert attempt(flaky, policy, "flaky", sleep=waits.append) == "ok"
    assert calls == [1, 2, 3, 4] and waits == [1.0, 2.0, 3.0]

    def bad_data(number: int) -> None:
        calls.append(number)
        raise DataError("bad row")

    calls.clear()
    with pytest.raises(DataError):
        attempt(bad_data, policy, "bad", sleep=waits.append)
    assert calls == [1]
