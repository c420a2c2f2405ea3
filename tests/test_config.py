"""Settings layers: defaults < config file < environment < code and command line."""

from __future__ import annotations

import pytest

from usage_elt.config import load_settings
from usage_elt.errors import ConfigError


def test_defaults_need_nothing_installed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.postgres.embedded
    assert settings.hive.metastore_uri is None
    assert settings.spark.master == "local[*]"


def test_each_layer_overrides_the_one_below(tmp_path, monkeypatch):
    config = tmp_path / "usage-elt.toml"
    config.write_text(
        '[spark]\nmaster = "local[3]"\ndriver_memory = "3g"\n'
        '[model]\nseed = 1\nmax_iter = 11\n[hive]\ndatabase = "from_file"\n'
    )
    monkeypatch.setenv("USAGE_ELT_MODEL__SEED", "2")
    monkeypatch.setenv("USAGE_ELT_HIVE__DATABASE", "from_env")
    settings = load_settings(config, {"hive": {"database": "from_cli"}})
    assert settings.spark.master == "local[3]"  # file over default
    assert settings.spark.driver_memory == "3g"
    assert settings.model.max_iter == 11
    assert settings.model.seed == 2  # environment over file
    assert settings.hive.database == "from_cli"  # command line over environment
    assert settings.model.max_depth == 5  # default where no layer speaks


def test_config_file_from_environment_and_cwd(tmp_path, monkeypatch):
    (tmp_path / "usage-elt.toml").write_text('[spark]\nmaster = "local[1]"\n')
    monkeypatch.chdir(tmp_path)
    assert load_settings().spark.master == "local[1]"
    other = tmp_path / "other.toml"
    other.write_text('[spark]\nmaster = "local[4]"\n')
    monkeypatch.setenv("USAGE_ELT_CONFIG", str(other))
    assert load_settings().spark.master == "local[4]"


def test_passwords_never_show(tmp_path):
    settings = load_settings(
        None,
        {"postgres": {"host": "db.invalid", "password": "s3cr3t-pw", "user": "etl"},
         "data_dir": tmp_path},
    )  # fmt: skip
    assert "s3cr3t-pw" not in repr(settings)
    assert "s3cr3t-pw" not in str(settings.public())
    assert "s3cr3t-pw" in settings.postgres.uri()
    assert settings.secrets() == ["s3cr3t-pw"]


def test_bad_values_name_the_key_and_not_the_secret(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[postgres]\nport = "not-a-port"\npassword = "s3cr3t-pw"\n')
    with pytest.raises(ConfigError) as raised:
        load_settings(config)
    assert "postgres.port" in str(raised.value)
    assert str(config) in str(raised.value)
    assert "s3cr3t-pw" not in str(raised.value)


def test_hive_database_must_be_an_identifier():
    with pytest.raises(ConfigError, match="web; DROP"):
        load_settings(None, {"hive": {"database": "web; DROP"}})


@pytest.mark.parametrize("master", ["local-cluster[2,1,1024]", "spark://127.0.0.1:7077", "yarn"])
@pytest.mark.parametrize(
    "postgres",
    [{}, {"dsn": "postgresql://etl:s3cr3t-pw@/analytics?host=/run/postgresql"}, {"host": "/tmp"}],
    ids=["embedded", "socket-dsn", "socket-host"],
)
def test_separate_executors_need_postgres_over_tcp(master, postgres):
    with pytest.raises(ConfigError, match="set postgres.host and postgres.port") as raised:
        load_settings(None, {"spark": {"master": master}, "postgres": postgres})
    assert "s3cr3t-pw" not in str(raised.value)


@pytest.mark.parametrize(
    ("master", "postgres", "separate"),
    [
        ("local[2]", {}, False),
        ("local", {"dsn": "postgresql:///analytics?host=/run/postgresql"}, False),
        ("local-cluster[2,1,1024]", {"host": "127.0.0.1", "password": "s3cr3t-pw"}, True),
        ("spark://127.0.0.1:7077", {"dsn": "postgresql://etl@127.0.0.1:5432/analytics"}, True),
    ],
)
def test_masters_and_servers_that_go_together(master, postgres, separate):
    settings = load_settings(None, {"spark": {"master": master}, "postgres": postgres})
    assert settings.spark.separate_executors is separate
