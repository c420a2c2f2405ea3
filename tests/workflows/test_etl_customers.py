"""The customers ETL on real PostgreSQL: validation, rejects, anonymization, idempotence."""

from __future__ import annotations

import csv
import http.server
import json
import socket
import threading
from functools import partial

import psycopg
import pytest

from usage_elt.schemas import CONTRACTS, CUSTOMERS
from usage_elt.workflows.etl_customers import run_etl_customers

from conftest import REAL_DATA, make_settings

pytestmark = pytest.mark.postgres

CUSTOMER = {
    "customer_id": "0001-AAAAA",
    "gender": "Female",
    "age": "37",
    "senior_citizen": "No",
    "married": "Yes",
    "dependents": "No",
    "number_of_dependents": "0",
    "country": "United States",
    "state": "California",
    "city": "Glendale",
    "zip_code": "91206",
    "latitude": "34.16",
    "longitude": "-118.20",
}
CONTRACT = {
    "contract_id": "K1",
    "customer_id": "0001-AAAAA",
    "contract_type": "One Year",
    "start_date": "2024-04-01",
    "tenure_months": "9",
    "offer": "None",
    "phone_service": "Yes",
    "internet_type": "Cable",
    "avg_monthly_gb_download": "16",
    "unlimited_data": "Yes",
    "streaming_tv": "Yes",
    "streaming_movies": "No",
    "premium_tech_support": "Yes",
    "paperless_billing": "Yes",
    "payment_method": "Credit Card",
    "monthly_charge": "65.6",
    "total_charges": "593.3",
    "total_refunds": "0",
}


def _write_csv(path, columns, rows):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _customers(**changes):
    return {**CUSTOMER, **changes}


def _contract(**changes):
    return {**CONTRACT, **changes}


def _bad_inputs(tmp_path):
    customers = [
        _customers(customer_id="C-OK-1"),  # line 2
        _customers(customer_id="C-OK-2", age="64", zip_code="90210"),  # line 3
        _customers(customer_id="C-OK-1", age="41"),  # line 4: duplicate id
        _customers(customer_id="C-OLD", age="250"),  # line 5: age out of range
        _customers(customer_id="C-NOGENDER", gender=""),  # line 6: empty required field
        _customers(customer_id="C-TYPE", age="thirty"),  # line 7: wrong type
    ]
    contracts = [
        _contract(contract_id="K-OK-1", customer_id="C-OK-1"),  # line 2
        _contract(contract_id="K-OK-2", customer_id="C-OK-2", start_date="2023-01-15"),  # 3
        _contract(contract_id="K-GHOST", customer_id="C-NOBODY"),  # line 4: unknown customer
        _contract(contract_id="K-FEB30", customer_id="C-OK-1", start_date="2024-02-30"),  # 5
        _contract(contract_id="K-TYPE", customer_id="C-OK-2", contract_type="Lifetime"),  # 6
        _contract(contract_id="K-NEG", customer_id="C-OK-2", monthly_charge="-5"),  # 7
        _contract(contract_id="K-FUTURE", customer_id="C-OK-2", start_date="2999-01-01"),  # 8
        _contract(contract_id="K-HUGE", customer_id="C-OK-2", tenure_months="99999999999"),  # 9
        _contract(contract_id="K-NAN", customer_id="C-OK-2", total_charges="nan"),  # 10
    ]
    return (
        _write_csv(tmp_path / "customers.csv", CUSTOMERS.names, customers),
        _write_csv(tmp_path / "contracts.csv", CONTRACTS.names, contracts),
    )


def _settings(tmp_path, database, customers, contracts, **extra):
    return make_settings(
        tmp_path / "state",
        database,
        "web_unused",
        customers_etl={"customers": str(customers), "contracts": str(contracts)},
        **extra,
    )


def _rows(uri, sql):
    with psycopg.connect(uri) as conn:
        return conn.execute(sql).fetchall()


def test_bad_rows_go_to_reject_tables_with_reasons(tmp_path, database):
    customers, contracts = _bad_inputs(tmp_path)
    status = run_etl_customers(_settings(tmp_path, database, customers, contracts))
    assert status["success"], status["error"]
    assert status["rows"]["customers_rejected"] == 4
    assert status["rows"]["contracts_rejected"] == 7

    loaded = _rows(database, "SELECT customer_id FROM customers ORDER BY 1")
    assert loaded == [("C-OK-1",), ("C-OK-2",)]
    assert _rows(database, "SELECT contract_id FROM contracts ORDER BY 1") == [
        ("K-OK-1",),
        ("K-OK-2",),
    ]
    rejected = {
        line: (field, reason)
        for line, field, reason in _rows(
            database, "SELECT line, field, reason FROM customers_rejected"
        )
    }
    assert rejected[4] == ("customer_id", "duplicate customer_id 'C-OK-1' (first at line 2)")
    assert rejected[5] == ("age", "age=250 is outside 0..120")
    assert rejected[6] == ("gender", "required field gender is empty")
    assert rejected[7][0] == "age" and "'thirty'" in rejected[7][1]
    contract_rejects = {
        line: (field, reason)
        for line, field, reason in _rows(
            database, "SELECT line, field, reason FROM contracts_rejected"
        )
    }
    assert contract_rejects[4] == ("customer_id", "customer_id 'C-NOBODY' is unknown")
    assert contract_rejects[5][0] == "start_date" and "2024-02-30" in contract_rejects[5][1]
    assert "not a real date" in contract_rejects[5][1]
    assert contract_rejects[6][0] == "contract_type" and "Lifetime" in contract_rejects[6][1]
    assert contract_rejects[7] == ("monthly_charge", "monthly_charge=-5.0 is below the minimum 0")
    assert contract_rejects[8] == ("start_date", "start_date=2999-01-01 is in the future")
    assert contract_rejects[9] == (
        "tenure_months",
        "tenure_months='99999999999' is too large for an integer column",
    )
    assert contract_rejects[10] == ("total_charges", "total_charges='nan' is not a finite number")


def test_running_twice_leaves_the_same_tables(tmp_path, database):
    customers, contracts = _bad_inputs(tmp_path)
    settings = _settings(tmp_path, database, customers, contracts)
    snapshot_sql = [
        "SELECT customer_id, gender, age_band, zip_prefix FROM customers ORDER BY 1",
        "SELECT contract_id, customer_id, start_date, monthly_charge FROM contracts ORDER BY 1",
        "SELECT source, line, field, value, reason FROM customers_rejected ORDER BY 1, 2",
        "SELECT source, line, field, value, reason FROM contracts_rejected ORDER BY 1, 2",
    ]
    assert run_etl_customers(settings)["success"]
    first = [_rows(database, sql) for sql in snapshot_sql]
    assert run_etl_customers(settings)["success"]
    assert [_rows(database, sql) for sql in snapshot_sql] == first


def test_unreadable_files_fail_the_run_with_a_clear_message(tmp_path, database):
    good_contracts = _write_csv(tmp_path / "contracts.csv", CONTRACTS.names, [_contract()])
    semicolons = tmp_path / "semicolons.csv"
    semicolons.write_text(";".join(CUSTOMERS.names) + "\n" + ";".join(CUSTOMER.values()) + "\n")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(
        (",".join(CUSTOMERS.names) + "\n").encode() + "0002,Femme,é".encode("latin-1")
    )
    missing = _write_csv(tmp_path / "missing.csv", ["customer_id", "gender"], [])
    expectations = {
        semicolons: "another delimiter",
        latin1: "is not UTF-8",
        missing: "lacks the required columns age",
    }
    for source, phrase in expectations.items():
        status = run_etl_customers(_settings(tmp_path, database, source, good_contracts))
        assert status["success"] is False
        assert status["error"]["step"] == "extract"
        assert phrase in status["error"]["message"], status["error"]["message"]
        assert str(source) in status["error"]["message"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_url_fails_the_run_with_a_clear_message(tmp_path, database):
    url = f"http://127.0.0.1:{_free_port()}/customers.csv"
    contracts = _write_csv(tmp_path / "contracts.csv", CONTRACTS.names, [_contract()])
    status = run_etl_customers(
        _settings(tmp_path, database, url, contracts, retry={"attempts": 2, "backoff_s": 0.1})
    )
    assert status["success"] is False
    assert status["error"]["step"] == "extract"
    assert f"cannot read {url}: the server is unreachable" in status["error"]["message"]
    assert status["steps"][-1]["attempts"] == 2  # a connection refused is worth a retry


def test_http_sources_and_json_lines_load(tmp_path, database):
    served = tmp_path / "served"
    served.mkdir()
    with (served / "customers.jsonl").open("w") as handle:
        for number in range(3):
            row = _customers(customer_id=f"J-{number}", age=str(20 + number * 7))
            row["married"] = True  # JSON booleans are accepted
            handle.write(json.dumps(row) + "\n")
    _write_csv(
        served / "contracts.csv",
        CONTRACTS.names,
        [_contract(contract_id=f"JK-{n}", customer_id=f"J-{n}") for n in range(3)],
    )
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        settings = _settings(tmp_path, database, f"{base}/customers.jsonl", f"{base}/contracts.csv")
        status = run_etl_customers(settings)
    finally:
        server.shutdown()
    assert status["success"], status["error"]
    assert _rows(database, "SELECT customer_id, age_band, married FROM customers ORDER BY 1") == [
        ("J-0", 20, True),
        ("J-1", 25, True),
        ("J-2", 30, True),
    ]


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real input set not found at {REAL_DATA}")
def test_real_customers_are_anonymized(tmp_path, database):
    settings = _settings(
        tmp_path, database, REAL_DATA / "customers.csv", REAL_DATA / "contracts.csv"
    )
    status = run_etl_customers(settings)
    assert status["success"], status["error"]
    assert status["rows"]["customers_loaded"] == 7_043
    assert status["rows"]["contracts_loaded"] == 7_043
    columns = {
        name
        for (name,) in _rows(
            database,
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers'",
        )
    }
    assert not columns & {"latitude", "longitude", "city", "zip_code", "age"}
    assert _rows(database, "SELECT count(*) FROM customers WHERE length(zip_prefix) <> 3") == [(0,)]
    assert _rows(database, "SELECT count(*) FROM customers WHERE age_band % 5 <> 0") == [(0,)]
    assert _rows(database, "SELECT count(*) FROM customers WHERE age_band IS NULL") == [(0,)]
