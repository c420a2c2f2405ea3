"""Generated data: declared shape, realistic missing share, deterministic by seed."""

import pandas as pd

from usage_elt.schemas import CONTRACTS, CUSTOMERS, USAGE
from usage_elt.steps.load import read_header
from usage_elt.synthetic import generate


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    counts = generate(tmp_path / "a", sessions=3000, customers=400, seed=5)
    generate(tmp_path / "b", sessions=3000, customers=400, seed=5)
    generate(tmp_path / "c", sessions=3000, customers=400, seed=6)
    for name in (USAGE.name, CUSTOMERS.name, CONTRACTS.name):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / USAGE.name).read_bytes() != (tmp_path / "c" / USAGE.name).read_bytes()
    assert counts["sessions"] == 3000 and counts["customers"] == 400


def test_shape_and_distributions(tmp_path):
    generate(tmp_path, sessions=20_000, customers=2_000, seed=1)
    assert read_header(tmp_path / USAGE.name) == USAGE.names
    assert read_header(tmp_path / CUSTOMERS.name) == CUSTOMERS.names
    assert read_header(tmp_path / CONTRACTS.name) == CONTRACTS.names
    usage = pd.read_csv(tmp_path / USAGE.name)
    missing = usage["satisfaction"].isna().mean()
    assert 0.25 < missing < 0.42
    assert set(usage["satisfaction"].dropna().unique()) <= {1, 2, 3, 4, 5}
    assert usage["session_start"].str.match(r"^2024-\d\d-\d\dT\d\d:\d\d:\d\dZ$").all()
    contracts = pd.read_csv(tmp_path / CONTRACTS.name)
    held = contracts.groupby("customer_id").size()
    assert (held > 1).mean() > 0.15
    assert usage["customer_id"].nunique() < 2_000  # not every customer has sessions
