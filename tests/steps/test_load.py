"""Loading refuses files that cannot be read and quarantines rows that break rules."""

from __future__ import annotations

import pytest

from usage_elt.errors import InputFileError
from usage_elt.schemas import USAGE
from usage_elt.steps.load import check_header, read_usage_csv


def test_header_without_required_columns_is_refused(tmp_path):
    path = tmp_path / "usage.csv"
    path.write_text("session_id,customer_id,clicks\nS1,C1,3\n")
    with pytest.raises(InputFileError) as raised:
        check_header(path, USAGE)
    message = str(raised.value)
    assert str(path) in message
    assert "lacks the required columns session_start, duration_s, satisfaction" in message
    assert "expected the columns session_id, customer_id, session_start" in message


def test_other_delimiter_is_named(tmp_path):
    path = tmp_path / "usage.csv"
    path.write_text(";".join(USAGE.names) + "\n")
    with pytest.raises(InputFileError, match="another delimiter"):
        check_header(path, USAGE)


def test_not_utf8_is_refused(tmp_path):
    path = tmp_path / "usage.csv"
    path.write_bytes((",".join(USAGE.names) + "\n").encode() + b"S1,Caf\xe9\n")
    with pytest.raises(InputFileError, match=r"not UTF-8 text \(byte \d+\)"):
        check_header(path, USAGE)


def test_byte_order_mark_is_refused_clearly(tmp_path):
    path = tmp_path / "usage.csv"
    path.write_text("\ufeff" + ",".join(USAGE.names) + "\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="byte order mark"):
        check_header(path, USAGE)


@pytest.mark.spark
def test_bad_rows_are_quarantined_with_a_reason(spark, tmp_path):
    good = "S1,C1,2024-03-01T10:00:00Z,12.5,3,4" + ",0" * 10 + ",1,1,1,1,Returning_Visitor,false"
    rows = [
        good,
        good.replace("S1,", "S2,").replace(",4,0", ",7,0", 1),  # satisfaction out of range
        good.replace("S1,", "S3,").replace(",3,4,", ",many,4,", 1),  # clicks not an integer
        good.replace("S1,C1,", "S4,,", 1),  # customer missing
        good.replace("S1,", "S5,").replace(",3,4,", ",3,,", 1),  # no score: valid
        good.replace("S1,", "S6,").replace(",12.5,", ",NaN,", 1),  # not a finite number
        good.replace("S1,", "S7,"),  # S7 twice: both rejected
        good.replace("S1,", "S7,").replace(",12.5,", ",13.5,", 1),
        good.replace("S1,", "   ,", 1),  # blank id
        "S8,C1,2024-03-01T10:00:00Z,12.5",  # too few fields
    ]
    path = tmp_path / "usage.csv"
    path.write_text(",".join(USAGE.names) + "\n" + "\n".join(rows) + "\n")
    valid, rejected = read_usage_csv(spark, path)
    assert sorted(r.session_id for r in valid.collect()) == ["S1", "S5"]
    reasons = {r.session_id: r.reason for r in rejected.collect()}
    assert reasons["S2"] == "satisfaction=7 is outside 1..5"
    assert reasons["S3"] == "clicks='many' is not a valid int32"
    assert reasons["S4"] == "required column customer_id is empty"
    assert reasons["S6"] == "duration_s=NaN is not a finite number"
    assert reasons["S7"] == "duplicate session_id S7 (2 rows, all rejected)"
    assert reasons["S8"] == "the row has 4 fields, expected 22"
    assert reasons["   "] == "required column session_id is empty"
    assert rejected.count() + valid.count() == len(rows)
