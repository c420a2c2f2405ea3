"""Independent computations the tests compare the product against."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import psycopg

STAT_COLUMNS = [
    "customer_id", "total_visits", "avg_satisfaction", "avg_observed_satisfaction",
    "imputed_scores", "avg_duration_s", "total_clicks", "first_visit", "last_visit",
]  # fmt: skip


def read_statistics(pg_uri: str) -> pd.DataFrame:
    """The statistics table, sorted by customer, timestamps as naive UTC."""
    with psycopg.connect(pg_uri) as conn:
        cur = conn.execute("SELECT * FROM statistics ORDER BY customer_id")
        names = [d.name for d in cur.description]
        frame = pd.DataFrame(cur.fetchall(), columns=names)
    for column in ("first_visit", "last_visit", "updated_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True).dt.tz_localize(None)
    return frame


def imputed_sessions(spark, hive_database: str) -> pd.DataFrame:
    frame = spark.table(f"{hive_database}.usage_imputed").toPandas()
    frame["session_start"] = pd.to_datetime(frame["session_start"])
    return frame


def expected_statistics(imputed: pd.DataFrame) -> pd.DataFrame:
    """Statistics per customer computed by DuckDB from the imputed sessions."""
    return duckdb.sql(
        """
        SELECT customer_id,
               count(*)                                        AS total_visits,
               avg(satisfaction)                               AS avg_satisfaction,
               avg(satisfaction) FILTER (WHERE satisfaction_source = 'observed')
                                                               AS avg_observed_satisfaction,
               count(*) FILTER (WHERE satisfaction_source = 'imputed')
                                                               AS imputed_scores,
               avg(duration_s)                                 AS avg_duration_s,
               sum(clicks)                                     AS total_clicks,
               min(session_start)                              AS first_visit,
               max(session_start)                              AS last_visit
        FROM imputed
        GROUP BY customer_id
        ORDER BY customer_id
        """
    ).df()


def assert_statistics_match(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert len(actual) == len(expected)
    merged = actual.merge(expected, on="customer_id", suffixes=("", "_expected"), how="outer",
                          indicator=True)  # fmt: skip
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
    for column in STAT_COLUMNS[1:]:
        got, want = merged[column], merged[f"{column}_expected"]
        if column in ("first_visit", "last_visit"):
            assert (pd.to_datetime(got) == pd.to_datetime(want)).all(), column
        elif column == "avg_observed_satisfaction":
            both_null = got.isna() & want.isna()
            close = np.isclose(got.astype(float), want.astype(float), rtol=1e-9, atol=1e-9)
            assert (both_null | close).all(), column
        else:
            assert np.allclose(got.astype(float), want.astype(float), rtol=1e-9, atol=1e-9), column


class LateProxy:
    """A loopback TCP proxy to a real server that starts listening only after a delay.

    Until it listens, connections to its port are refused: a server that comes up late.
    """

    def __init__(self, target_port: int, delay_s: float, target_host: str = "127.0.0.1"):
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._target = (target_host, target_port)
        self._delay = delay_s
        self._stop = False
        self._listener = None

    def __enter__(self):
        import threading

        self._timer = threading.Timer(self._delay, self._listen)
        self._timer.start()
        return self

    def _listen(self):
        import socket
        import threading

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        listener.settimeout(0.2)
        self._listener = listener

        def serve():
            while not self._stop:
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                upstream = socket.create_connection(self._target)
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(2)
                except OSError:
                    pass

    def __exit__(self, *exc):
        self._timer.cancel()
        self._stop = True
        if self._listener is not None:
            self._listener.close()
