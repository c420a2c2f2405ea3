"""The exception tree: one root, one branch per stage."""

from __future__ import annotations


class UsageEltError(Exception):
    """Root of every error the product raises on purpose."""

    step: str | None = None
    run_id: str | None = None
    transient: bool = False


class ConfigError(UsageEltError):
    """Settings that cannot be used as given."""


class InputFileError(UsageEltError):
    """An input file that cannot be read at all (header, encoding, delimiter, location)."""


class DataError(UsageEltError):
    """Data that breaks a rule of the product (types, ranges, keys)."""


class EngineError(UsageEltError):
    """A component (Spark, Hive, PostgreSQL) that cannot be reached or used."""


class ReportError(UsageEltError):
    """A run report that cannot be built: an unknown run, or files that cannot be read."""


class TransientError(EngineError):
    """An error that may pass if the same action is tried again later."""

    transient = True


class StepFailed(UsageEltError):
    """A step of a workflow failed; carries the step, the run id and the cause."""

    def __init__(self, step: str, run_id: str, cause: BaseException, message: str):
        super().__init__(f"step {step!r} of run {run_id} failed: {message}")
        self.step = step
        self.run_id = run_id
        self.cause = cause
