"""Secrets are masked in every text the product writes."""

from usage_elt.logs import Redactor


def test_known_secrets_and_password_shapes_are_masked():
    redact = Redactor()
    redact.add("hunter2-long")
    text = redact(
        "failed: hunter2-long; uri postgresql://etl:p%40ss@db:5432/x; dsn host=db password=abc"
    )
    assert "hunter2-long" not in text
    assert "p%40ss" not in text
    assert "password=abc" not in text
    assert "postgresql://etl:***@db:5432/x" in text
