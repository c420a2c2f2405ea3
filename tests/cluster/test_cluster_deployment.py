"""The usage ELT past one machine, with configuration only.

Spark runs as ``local-cluster[2,1,1024]``: a master and two workers whose executors are JVMs of
their own, so nothing can lean on driver and executors sharing a process. Hive is a standalone
metastore service reached by ``thrift://127.0.0.1:PORT``. PostgreSQL is a server reached by
host and port that asks for a scram-sha-256 password: the machine's server trusts every
connection from 127.0.0.1, so a password given to it would prove nothing, and the test starts a
server of its own with initdb instead. Every server listens on 127.0.0.1 only and is stopped
when the module ends.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlparse

import pandas as pd
import psycopg
import pyspark
import pytest

from helpers import assert_statistics_match, expected_statistics, read_statistics
from local_services import (
    LoopbackMetastore,
    PasswordPostgres,
    listening_addresses,
    postgres_bindir,
)

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.postgres]

MASTER = "local-cluster[2,1,1024]"
CLI = str(Path(sys.executable).with_name("usage-elt"))
READER = Path(__file__).with_name("read_hive_table.py")
# Guards against a hung process, not a measure of speed: the machine may be shared.
PROCESS_TIMEOUT_S = 2400
EXECUTOR_APP_NAME = "usage-elt-executor"
DRIVER_APP_NAME = "usage-elt-driver"

CONFIG = """\
data_dir = {data_dir}

[postgres]  # the password comes from USAGE_ELT_POSTGRES__PASSWORD
host = "127.0.0.1"
port = {port}
database = {database}
user = {user}

[hive]
metastore_uri = {metastore_uri}
database = "web"

[spark]
master = {master}
driver_memory = "1g"
shuffle_partitions = 2  # one per executor core

[spark.conf]
"spark.sql.warehouse.dir" = {warehouse}
"spark.eventLog.enabled" = "true"
"spark.eventLog.dir" = {events}
"spark.eventLog.rolling.enabled" = "false"
"spark.eventLog.compress" = "false"
"spark.executorEnv.PGAPPNAME" = {executor_app_name}

[model]
max_iter = 5
max_depth = 3
"""


@dataclass
class ClusterRun:
    """What the two commands were given and what they left behind."""

    root: Path
    config: Path
    data_dir: Path
    warehouse: Path
    events: Path
    role: str
    password: str = field(repr=False)
    pg_uri: str = field(repr=False)
    outputs: dict[str, subprocess.CompletedProcess]
    statuses: dict[str, dict]

    def app_ids(self) -> list[str]:
        """The Spark applications the commands ran, from their event logs."""
        names = (re.search(r"app-\d+-\d+", path.name) for path in self.events.iterdir())
        return sorted(match[0] for match in names if match)

    def events_of(self, app_id: str) -> list[dict]:
        text = (self.events / app_id).read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def _spark_work_dir() -> Path:
    """Where a local-cluster worker keeps each executor's stdout and stderr."""
    return Path(os.environ.get("SPARK_HOME", Path(pyspark.__file__).parent)) / "work"


def _toml(value: object) -> str:
    return json.dumps(str(value))  # a JSON string is a TOML basic string


def _cli(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S
    )


def _last_json(result: subprocess.CompletedProcess) -> dict:
    lines = result.stdout.strip().splitlines()
    assert lines, f"no output; stderr ends with:\n{result.stderr[-3000:]}"
    return json.loads(lines[-1])


@pytest.fixture(scope="module")
def postgres_server():
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no postgres account to run a server as")
    server = PasswordPostgres(bindir)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def metastore(tmp_path_factory):
    if shutil.which("java") is None:
        pytest.skip("the Hive metastore service needs Java")
    service = LoopbackMetastore(tmp_path_factory.mktemp("metastore"))
    try:
        yield service.start()
    finally:
        service.stop()


@pytest.fixture(scope="module")
def cluster_run(postgres_server, metastore, tmp_path_factory):
    """``usage-elt init --generate`` then ``usage-elt run``, on the cluster, once."""
    root = tmp_path_factory.mktemp("cluster-run")
    role = f"usage_etl_{secrets.token_hex(3)}"
    # Characters that mean something in a URI check the quoting on the way to libpq.
    password = f"{secrets.token_urlsafe(18)}@:/%"
    database = postgres_server.create_login(role, password)
    run = ClusterRun(
        root=root, config=root / "usage-elt.toml", data_dir=root / "data",
        warehouse=root / "warehouse", events=root / "events", role=role, password=password,
        pg_uri=postgres_server.uri(role, password, database), outputs={}, statuses={},
    )  # fmt: skip
    run.events.mkdir()
    run.config.write_text(
        CONFIG.format(
            data_dir=_toml(run.data_dir),
            port=postgres_server.port,
            database=_toml(database),
            user=_toml(role),
            metastore_uri=_toml(metastore.uri),
            master=_toml(MASTER),
            warehouse=_toml(run.warehouse.as_uri()),
            events=_toml(run.events.as_uri()),
            executor_app_name=_toml(EXECUTOR_APP_NAME),
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("USAGE_ELT_", "PG"))}
    env.update(USAGE_ELT_POSTGRES__PASSWORD=password, PGAPPNAME=DRIVER_APP_NAME)
    commands = {
        "init": ["init", "--generate", "--sessions", "2000", "--customers", "300"],
        "run": ["run"],
    }
    try:
        for name, args in commands.items():
            status_file = root / f"{name}-status.json"
            result = _cli(root, env, "--config", str(run.config), *args,
                          "--status-file", str(status_file))  # fmt: skip
            run.outputs[name] = result
            run.statuses[name] = _last_json(result)
            assert result.returncode == 0, run.statuses[name]["error"]
        yield run
    finally:
        postgres_server.drop_login(role, database)
        for app_id in run.app_ids():
            shutil.rmtree(_spark_work_dir() / app_id, ignore_errors=True)


def test_both_commands_run_on_two_executor_jvms(cluster_run):
    for name in ("init", "run"):
        status = cluster_run.statuses[name]
        assert status["success"], status["error"]
    parameters = cluster_run.statuses["run"]["parameters"]
    assert parameters["spark_master"] == MASTER
    assert parameters["hive_metastore"].startswith("thrift://127.0.0.1:")
    assert parameters["postgres"] == "configured"

    app_ids = cluster_run.app_ids()
    assert len(app_ids) == 2, app_ids  # one application per command
    for app_id in app_ids:
        events = cluster_run.events_of(app_id)
        properties = next(
            e["Spark Properties"] for e in events if e["Event"] == "SparkListenerEnvironmentUpdate"
        )
        assert dict(properties)["spark.master"] == MASTER
        added = [e for e in events if e["Event"] == "SparkListenerExecutorAdded"]
        assert sorted(e["Executor ID"] for e in added) == ["0", "1"]
        assert {e["Executor Info"]["Host"] for e in added} == {"127.0.0.1"}
        ended = [e for e in events if e["Event"] == "SparkListenerTaskEnd"]
        ran_on = {e["Task Info"]["Executor ID"] for e in ended}
        assert ran_on == {"0", "1"}, f"{app_id}: tasks ran on {ran_on}"


def test_a_second_spark_application_reads_the_tables_through_the_metastore(
    cluster_run, metastore, tmp_path
):
    out = tmp_path / "usage_imputed.parquet"
    env = {k: v for k, v in os.environ.items() if not k.startswith("USAGE_ELT_")}
    result = subprocess.run(
        [sys.executable, str(READER), metastore.uri, "web.usage_imputed", str(out),
         str(tmp_path / "reader")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    seen = _last_json(result)
    status = cluster_run.statuses["run"]
    assert {"usage", "usage_imputed", "usage_rejected"} <= set(seen["tables"])
    assert seen["rows"] == status["rows"]["sessions"] == 2000
    assert Path(urlparse(seen["location"]).path).is_relative_to(cluster_run.warehouse)

    imputed = pd.read_parquet(out)
    imputed["session_start"] = pd.to_datetime(imputed["session_start"])
    assert (imputed["run_id"] == status["run_id"]).all()
    assert (imputed["satisfaction_source"] == "imputed").sum() == status["rows"]["sessions_imputed"]
    statistics = read_statistics(cluster_run.pg_uri)
    assert_statistics_match(statistics, expected_statistics(imputed))
    assert (statistics["run_id"] == status["run_id"]).all()


_CONNECTION_LINE = re.compile(
    r"\[(?P<pid>\d+)\] (?P<client>\S+) LOG:  "
    r"connection (?P<event>received|authenticated|authorized): (?P<detail>.*)"
)


def _connections(log_text: str, role: str) -> list[dict[str, str]]:
    """What the server logged about each login of ``role``: client, authentication, names."""
    by_pid: dict[str, dict[str, str]] = {}
    for match in map(_CONNECTION_LINE.search, log_text.splitlines()):
        if match is not None:
            connection = by_pid.setdefault(match["pid"], {"client": match["client"]})
            connection[match["event"]] = match["detail"]
    return [c for c in by_pid.values() if c.get("authorized", "").startswith(f"user={role} ")]


def test_postgres_logins_use_a_password_over_tcp(cluster_run, postgres_server):
    wrong = postgres_server.uri(cluster_run.role, "not-the-password", "postgres")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=10)
    with psycopg.connect(postgres_server.admin_uri) as conn:
        methods = conn.execute("SELECT DISTINCT auth_method FROM pg_hba_file_rules").fetchall()
        sockets = conn.execute("SELECT current_setting('unix_socket_directories')").fetchone()
    assert methods == [("scram-sha-256",)]
    assert sockets == ("",)  # no Unix socket: every client came over TCP

    connections = _connections(postgres_server.log.read_text(), cluster_run.role)
    assert connections, "the server logged no login of the job's role"
    for connection in connections:
        assert connection["client"].startswith("127.0.0.1("), connection
        assert connection.get("authenticated", "").startswith(
            f'identity="{cluster_run.role}" method=scram-sha-256 '
        ), connection
    names = [re.search(r"application_name=(\S+)", c["authorized"]) for c in connections]
    by_name = pd.Series([m.group(1) if m else "" for m in names]).value_counts()
    # The driver creates tables and upserts; the executors read and write rows themselves.
    assert by_name.get(DRIVER_APP_NAME, 0) > 0, by_name
    assert by_name.get(EXECUTOR_APP_NAME, 0) > 0, by_name


def test_the_password_shows_nowhere(cluster_run):
    forms = {cluster_run.password, quote(cluster_run.password, safe="")}
    texts = {
        f"{name} {stream}": getattr(result, stream)
        for name, result in cluster_run.outputs.items()
        for stream in ("stdout", "stderr")
    }
    files = [cluster_run.config, *cluster_run.root.glob("*-status.json")]
    files += [p for p in cluster_run.data_dir.rglob("*") if p.is_file()]
    files += [p for p in cluster_run.events.iterdir()]
    for app_id in cluster_run.app_ids():
        files += [p for p in (_spark_work_dir() / app_id).rglob("*") if p.is_file()]
    assert any(p.suffix == ".log" for p in files) and any(p.name == "stderr" for p in files)
    assert any(p.parent.parent.name == "runs" and p.name == "status.json" for p in files)
    texts.update({str(p): p.read_bytes().decode("utf-8", "replace") for p in files})
    leaks = [where for where, text in texts.items() if any(form in text for form in forms)]
    assert leaks == []


def test_services_listen_on_loopback_only(cluster_run, postgres_server, metastore):
    assert listening_addresses(metastore.pid) == {("127.0.0.1", metastore.port)}
    assert listening_addresses(postgres_server.postmaster_pid()) == {
        ("127.0.0.1", postgres_server.port)
    }
