"""usage-elt: per-customer website usage statistics from Hive and PostgreSQL, through Spark."""

__version__ = "0.1.0"
