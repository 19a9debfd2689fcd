"""nbtrack's error hierarchy.

    NbtrackError                  anything nbtrack raises on purpose
    ├── UserError                 the user asked for something wrong: shown as one sentence
    │   ├── UsageError            a bad flag, ``-p``, value or argument
    │   ├── DataNotFound, InvalidMetric, ParamConflict, NotFound
    │   ├── NoModelLogged, RunNotFinished, NoPreviousProduction, MoveRefused, PermissionDenied
    │   └── CannotReproduce
    ├── StoreError                MLflow refused or failed (not the user's doing)
    └── MissingExtra              an optional part used without its extra installed

Every error carries its fields and builds its own one-sentence message, so the magic can show it
without a traceback. The fields are the exception's ``args``, which keeps every class picklable:
grid points run in other processes and their errors cross process boundaries.
"""

from __future__ import annotations


class NbtrackError(Exception):
    """Base of every error nbtrack raises on purpose."""

    def __str__(self) -> str:  # subclasses build a sentence from their fields
        return " ".join(str(a) for a in self.args)


class UserError(NbtrackError):
    """The user asked for something wrong: the magic and the CLI print it as one sentence,
    without a traceback. Anything else that escapes nbtrack is shown with its traceback."""


class UsageError(UserError):
    """The user asked for something malformed: a bad flag, a bad ``-p``, a bad value."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message, hint)
        self.message, self.hint = message, hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class DataNotFound(UserError):
    """A ``--data`` input does not exist."""

    def __init__(self, path: str):
        super().__init__(path)
        self.path = path

    def __str__(self) -> str:
        return f"data input {self.path!r} does not exist; check the path given to --data"


class InvalidMetric(UserError):
    """A metric key or value MLflow would refuse, caught at the call site."""

    def __init__(self, key: str, value: str, reason: str):
        super().__init__(key, value, reason)
        self.key, self.value, self.reason = key, value, reason

    def __str__(self) -> str:
        if not self.value:
            return f"metric name {self.key!r} is invalid: {self.reason}"
        return f"metric {self.key!r}={self.value}: {self.reason}"


class ParamConflict(UserError):
    """A param was logged again with a different value (MLflow params are immutable)."""

    def __init__(self, key: str, old: str, new: str):
        super().__init__(key, old, new)
        self.key, self.old, self.new = key, old, new

    def __str__(self) -> str:
        return (
            f"param {self.key!r} is already {self.old!r} in this run and cannot become "
            f"{self.new!r}; log the new value under another name"
        )


class NotFound(UserError):
    """An unknown run, experiment, model or version."""

    def __init__(self, kind: str, name: str, hint: str = ""):
        super().__init__(kind, name, hint)
        self.kind, self.name, self.hint = kind, name, hint

    def __str__(self) -> str:
        msg = f"no {self.kind} {self.name!r} in the tracking store"
        return f"{msg}; {self.hint}" if self.hint else msg


class StoreError(NbtrackError):
    """MLflow refused or failed an operation; the message says which and why."""

    def __init__(self, operation: str, reason: str, uri: str = ""):
        super().__init__(operation, reason, uri)
        self.operation, self.reason, self.uri = operation, reason, uri

    def __str__(self) -> str:
        where = f" at {self.uri}" if self.uri else ""
        return f"could not {self.operation}{where}: {self.reason}"


class MissingExtra(NbtrackError):
    """An optional part was used without its dependencies installed."""

    def __init__(self, feature: str, extra: str):
        super().__init__(feature, extra)
        self.feature, self.extra = feature, extra

    def __str__(self) -> str:
        return f"{self.feature} needs the '{self.extra}' extra: pip install 'nbtrack[{self.extra}]'"


# -- the model registry ---------------------------------------------------------------------------


class NoModelLogged(UserError):
    """``--register NAME`` (or ``nbtrack.register``) on a run that logged no model."""

    def __init__(self, run_id: str, name: str, model_path: str = ""):
        super().__init__(run_id, name, model_path)
        self.run_id, self.name, self.model_path = run_id, name, model_path

    def __str__(self) -> str:
        what = f"no model named {self.model_path!r}" if self.model_path else "no model"
        return (
            f"run {self.run_id} logged {what}, so nothing was registered as {self.name!r}; "
            "log one in the cell, e.g. mlflow.sklearn.log_model(model, name='model')"
        )


class RunNotFinished(UserError):
    """A promotion of a version whose run FAILED (or was KILLED), without ``force=True``."""

    def __init__(self, name: str, version: str, run_id: str, status: str):
        super().__init__(name, version, run_id, status)
        self.name, self.version, self.run_id, self.status = name, version, run_id, status

    def __str__(self) -> str:
        return (
            f"version {self.version} of model {self.name!r} comes from run {self.run_id}, "
            f"which {self.status}; pass force=True to promote it anyway"
        )


class NoPreviousProduction(UserError):
    """A rollback with nothing to roll back to."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return (
            f"model {self.name!r} has no previous production version to roll back to; "
            "promote a version with nbtrack.promote(name, version)"
        )


class MoveRefused(UserError):
    """A registry move that would leave the registry in a state nbtrack does not allow."""

    def __init__(self, name: str, version: str, reason: str, hint: str = ""):
        super().__init__(name, version, reason, hint)
        self.name, self.version, self.reason, self.hint = name, version, reason, hint

    def __str__(self) -> str:
        msg = f"version {self.version} of model {self.name!r} {self.reason}"
        return f"{msg}; {self.hint}" if self.hint else msg


class PermissionDenied(UserError):
    """The tracking server refused a change (HTTP 403): the user may read, not edit."""

    def __init__(self, name: str, operation: str = ""):
        super().__init__(name, operation)
        self.name, self.operation = name, operation

    def __str__(self) -> str:
        return f"you have read access to {self.name}; ask its owner for edit"


# -- reproduction ---------------------------------------------------------------------------------


class CannotReproduce(UserError):
    """A run whose record does not hold what running it again needs."""

    def __init__(self, run_id: str, reason: str):
        super().__init__(run_id, reason)
        self.run_id, self.reason = run_id, reason

    def __str__(self) -> str:
        return f"run {self.run_id} cannot be reproduced: {self.reason}"


class ModelCannotLoad(UserError):
    """A model whose flavour cannot be loaded in this environment (a package is missing)."""

    def __init__(self, model: str, reason: str, package: str | None = None):
        super().__init__(model, reason, package)
        self.model, self.reason, self.package = model, reason, package

    def __str__(self) -> str:
        if self.package:
            return (
                f"model {self.model} cannot load here: it needs the package {self.package!r}; "
                f"pip install {self.package} in this environment"
            )
        return f"model {self.model} cannot load here: {self.reason}"


class PredictionNotFound(UserError):
    """An id no inference run holds."""

    def __init__(self, prediction_id: str, searched: int):
        super().__init__(prediction_id, searched)
        self.prediction_id, self.searched = prediction_id, searched

    def __str__(self) -> str:
        runs = "inference run" if self.searched == 1 else "inference runs"
        return (
            f"no prediction {self.prediction_id!r} in the {self.searched} {runs} of the tracking "
            "store; check the id (ids are strings: 12345 and '12345' are the same) and the store "
            "(NBTRACK_TRACKING_URI)"
        )


class NbtrackWarning(UserWarning):
    """Something was not recorded, or looks wrong, but the user's work goes on."""


def warn(message: str) -> None:
    """Tell the user, in one line, that something was not recorded or looks wrong.

    A real warning (filterable, and visible to ``pytest.warns``), shown without a source line:
    the line that triggers it is nbtrack's, not the user's, and would only add noise.
    """
    import warnings

    warnings.warn_explicit(message, NbtrackWarning, filename="nbtrack", lineno=0, module="nbtrack")
