"""`init` on real Spark and PostgreSQL: what it checks before it changes anything."""

from __future__ import annotations

import psycopg
import pytest

from usage_elt.workflows.init import run_init

from conftest import make_settings

pytestmark = [pytest.mark.spark, pytest.mark.postgres]


def test_reset_with_a_wrong_folder_drops_nothing(spark, database, tmp_path):
    settings = make_settings(tmp_path / "data", database, "web_reset_guard")
    spark.sql("CREATE DATABASE IF NOT EXISTS web_reset_guard")
    spark.sql("CREATE TABLE IF NOT EXISTS web_reset_guard.usage (session_id string) USING parquet")
    with psycopg.connect(database) as conn:
        conn.execute("CREATE TABLE customers (customer_id text)")
        conn.execute("INSERT INTO customers VALUES ('kept')")
        conn.commit()
    try:
        (tmp_path / "typo").mkdir()
        (tmp_path / "typo" / "customers.csv").write_text("customer_id\n", encoding="utf-8")
        status = run_init(settings, data=tmp_path / "typo", reset=True)

        assert status["success"] is False
        assert status["error"]["step"] == "check_files"
        assert "usage.csv, contracts.csv" in status["error"]["message"]
        assert "reset" not in [step["name"] for step in status["steps"]]
        assert spark.catalog.tableExists("web_reset_guard.usage")
        with psycopg.connect(database) as conn:
            assert conn.execute("SELECT customer_id FROM customers").fetchall() == [("kept",)]
    finally:
        spark.sql("DROP DATABASE IF EXISTS web_reset_guard CASCADE")
