"""Orchestration, the guard, retries, run history and failure emails, on real servers."""

from __future__ import annotations

import json
import socket
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import psycopg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from click.testing import CliRunner

from usage_elt.cli import main
from usage_elt.schemas import CONTRACTS, CUSTOMERS
from usage_elt.synthetic import generate
from usage_elt.workflows.etl_customers import run_etl_customers
from usage_elt.workflows.init import Generation, run_init

from conftest import make_settings
from helpers import LateProxy

pytestmark = pytest.mark.postgres

SMTP_PASSWORD = "smtp-Pa55-word-4411"
PG_PASSWORD = "pg-Pa55-word-9902"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Inbox:
    def __init__(self):
        self.messages = []
        self.logins = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append(message_from_bytes(envelope.content, policy=default_policy))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=_free_port(),
        authenticator=inbox.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    yield inbox, controller.port
    controller.stop()


def _with_password(uri: str) -> str:
    return uri.replace("postgres@", f"postgres:{PG_PASSWORD}@", 1)


def _smtp(port: int, **extra) -> dict:
    return {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "user": "alerts",
        "password": SMTP_PASSWORD,
        "recipients": ["data-team@example.test"],
        **extra,
    }


def _everything_written(data_dir: Path, uri: str, *texts: str) -> str:
    """All the product wrote: files under the data dir, workflow_runs, and the given texts."""
    parts = list(texts)
    for path in data_dir.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".log", ".eml", ".html"):
            parts.append(path.read_text(errors="replace"))
    with psycopg.connect(uri) as conn:
        parts += [json.dumps(r, default=str) for r in conn.execute("SELECT * FROM workflow_runs")]
    return "\n".join(parts)


def test_failure_email_names_the_run_and_leaks_no_password(tmp_path, database, smtp_server):
    inbox, port = smtp_server
    uri = _with_password(database)
    settings = make_settings(
        tmp_path,
        uri,
        "web_unused",
        smtp=_smtp(port),
        customers_etl={
            "customers": str(tmp_path / "absent.csv"),
            "contracts": str(tmp_path / "absent-too.csv"),
        },
    )
    status = run_etl_customers(settings)

    assert status["success"] is False
    assert status["notification"] == {"sent": True, "method": "smtp", "recipients": 1}
    assert inbox.logins == [("alerts", SMTP_PASSWORD)]  # the password did reach the server
    (message,) = inbox.messages
    assert message["Subject"] == f"[usage-elt] customers_etl FAILED: run {status['run_id']}"
    body = message.get_content()
    assert "customers_etl: step extract: InputFileError:" in body
    assert "absent.csv does not exist" in body
    assert "Duration:" in body and "Rows:" in body and "Log (last lines):" in body
    assert "step extract failed" in body  # the tail of the log
    written = _everything_written(tmp_path, database, json.dumps(status), message.as_string())
    assert SMTP_PASSWORD not in written
    assert PG_PASSWORD not in written


def test_smtp_down_still_exports_status_and_records_the_failed_notification(tmp_path, database):
    settings = make_settings(
        tmp_path,
        database,
        "web_unused",
        smtp=_smtp(_free_port()),
        customers_etl={"customers": str(tmp_path / "absent.csv"), "contracts": "x.csv"},
    )
    status = run_etl_customers(settings)
    assert status["success"] is False
    assert status["notification"]["sent"] is False
    assert "ConnectionRefusedError" in status["notification"]["error"]
    saved = json.loads((tmp_path / "runs" / status["run_id"] / "status.json").read_text())
    assert saved["notification"] == status["notification"]
    assert saved["error"]["step"] == "extract"


def test_without_smtp_the_email_goes_to_the_outbox(tmp_path, database):
    settings = make_settings(
        tmp_path,
        database,
        "web_unused",
        customers_etl={"customers": str(tmp_path / "absent.csv"), "contracts": "x.csv"},
    )
    status = run_etl_customers(settings)
    assert status["notification"]["method"] == "outbox"
    (eml,) = (tmp_path / "outbox").glob("*.eml")
    message = message_from_bytes(eml.read_bytes(), policy=default_policy)
    assert status["run_id"] in message["Subject"]


def _small_inputs(folder: Path) -> tuple[Path, Path]:
    generate(folder, sessions=300, customers=80, seed=3)
    return folder / CUSTOMERS.name, folder / CONTRACTS.name


def test_caller_payload_overrides_file_and_environment(tmp_path, database, monkeypatch):
    customers, contracts = _small_inputs(tmp_path / "in")
    config = tmp_path / "usage-elt.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "state"}"\n'
        f'[postgres]\ndsn = "{database}"\n'
        '[customers_etl]\ncustomers = "from-file.csv"\ncontracts = "from-file.csv"\n'
        "[retry]\nattempts = 1\n"
    )
    monkeypatch.setenv("USAGE_ELT_CUSTOMERS_ETL__CONTRACTS", str(contracts))  # env over file
    monkeypatch.setenv("USAGE_ELT_RETRY__BACKOFF_S", "0.5")
    payload = tmp_path / "payload.json"
    payload.write_text(
        json.dumps(
            {
                "customers_etl": {"customers": str(customers)},  # payload over file
                "retry": {"attempts": 2},  # payload over file; backoff left to the environment
                "parent_run_id": "caller-run-42",
            }
        )
    )
    result = CliRunner().invoke(
        main, ["--config", str(config), "etl-customers", "--input", str(payload)]
    )
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout.strip().splitlines()[-1])
    assert status["parameters"] == {"customers": str(customers), "contracts": str(contracts)}
    assert status["parent_run_id"] == "caller-run-42"
    assert status["rows"]["customers_loaded"] == 80

    # Standard input works the same way, and command-line options win over the payload.
    result = CliRunner().invoke(
        main,
        ["--config", str(config), "etl-customers", "--customers", "cli.csv", "--input", "-"],
        input=payload.read_text(),
    )
    status = json.loads(result.stdout.strip().splitlines()[-1])
    assert status["parameters"]["customers"] == "cli.csv"
    assert status["steps"][-1]["attempts"] == 1  # a missing file is not retried


def test_connection_refused_at_first_is_retried_and_the_run_succeeds(tmp_path, database):
    customers, contracts = _small_inputs(tmp_path / "in")
    with LateProxy(target_port=5432, delay_s=1.5) as proxy:
        late_uri = database.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        settings = make_settings(
            tmp_path,
            late_uri,
            "web_unused",
            retry={"attempts": 5, "backoff_s": 0.5},
            customers_etl={"customers": str(customers), "contracts": str(contracts)},
        )
        status = run_etl_customers(settings)
    assert status["success"], status["error"]
    connect = status["steps"][0]
    assert connect["name"] == "connect" and connect["attempts"] >= 2


@pytest.mark.slow
@pytest.mark.spark
def test_orchestration_chain_history_and_stop_on_failure(spark, tmp_path, database):
    settings = make_settings(tmp_path, database, "web_orch")
    assert run_init(settings, generation=Generation(sessions=2500, customers=400, seed=5))[
        "success"
    ]
    generated = tmp_path / "generated"
    base = ["--data-dir", str(tmp_path), "--pg-dsn", database]
    env = {"USAGE_ELT_HIVE__DATABASE": "web_orch", "USAGE_ELT_MODEL__MAX_ITER": "8"}

    # A good chain: the customers ETL, then the usage ELT, linked to the orchestration.
    ok = CliRunner().invoke(
        main,
        [
            *base,
            "orchestrate",
            "--customers",
            str(generated / "customers.csv"),
            "--contracts",
            str(generated / "contracts.csv"),
        ],
        env=env,
    )
    assert ok.exit_code == 0, ok.output
    good = json.loads(ok.stdout.strip().splitlines()[-1])
    assert good["children"]["customers_etl"]["parent_run_id"] == good["run_id"]
    assert good["children"]["usage_elt"]["parent_run_id"] == good["run_id"]
    assert good["children"]["usage_elt"]["success"] is True
    with psycopg.connect(database) as conn:
        before = conn.execute("SELECT * FROM statistics ORDER BY customer_id").fetchall()
    assert before

    # A failing customers ETL stops the chain: no usage ELT, statistics untouched, one email.
    bad = CliRunner().invoke(
        main,
        [
            *base,
            "orchestrate",
            "--customers",
            str(tmp_path / "nope.csv"),
            "--contracts",
            str(generated / "contracts.csv"),
        ],
        env=env,
    )
    assert bad.exit_code == 1
    failed = json.loads(bad.stdout.strip().splitlines()[-1])
    assert failed["error"]["step"] == "customers_etl"
    assert failed["children"]["usage_elt"]["status"] == "skipped"
    assert failed["notification"]["method"] == "outbox"
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT * FROM statistics ORDER BY customer_id").fetchall() == before
        children = conn.execute(
            "SELECT workflow FROM workflow_runs WHERE parent_run_id = %s", (failed["run_id"],)
        ).fetchall()
    assert children == [("customers_etl",)]

    # `runs` lists both orchestrations and their children with the parent links.
    listing = CliRunner().invoke(main, [*base, "runs"], env=env)
    assert listing.exit_code == 0, listing.output
    for run_id in (good["run_id"], failed["run_id"], good["children"]["usage_elt"]["run_id"]):
        assert run_id in listing.stdout
    child_line = next(
        line
        for line in listing.stdout.splitlines()
        if good["children"]["usage_elt"]["run_id"] in line
    )
    assert good["run_id"] in child_line and "succeeded" in child_line
    failed_line = next(line for line in listing.stdout.splitlines() if failed["run_id"] in line)
    assert "failed" in failed_line
    shown = CliRunner().invoke(main, [*base, "runs", "show", failed["run_id"]], env=env)
    assert json.loads(shown.stdout)["error"]["step"] == "customers_etl"


@pytest.mark.parametrize(
    ("payload", "phrase"),
    [
        ({"run_id": "../../escaped"}, "run id '../../escaped' is not valid"),
        ({"run_id": 123}, "run id 123 is not valid"),
        ({"window": {"since": "2024-07-01", "until": "2024-06-01"}}, "must be before until"),
        ({"modle": {"seed": 3}}, "modle: Extra inputs are not permitted"),
    ],
)
def test_a_call_that_cannot_start_still_exports_a_failure_status(tmp_path, payload, phrase):
    status_file = tmp_path / "status.json"
    result = CliRunner().invoke(
        main,
        ["--data-dir", str(tmp_path / "state"), "run", "--input", "-",
         "--status-file", str(status_file)],
        input=json.dumps(payload),
    )  # fmt: skip
    assert result.exit_code == 1
    status = json.loads(result.stdout.strip().splitlines()[-1])
    assert status["success"] is False and status["error"]["step"] == "start"
    assert phrase in status["error"]["message"]
    assert json.loads(status_file.read_text()) == status
    assert not (tmp_path / "escaped").exists() and not (tmp_path.parent / "escaped").exists()
