"""The type of text cleared for MLflow: ``Redacted``.

Every text nbtrack sends to MLflow (a param, a tag key or value, a run name, an artifact's
content) must have gone through the redaction pass (``nbtrack.capture.redaction.Redactor``),
which alone makes ``Redacted`` values. ``store`` refuses anything else with ``NotRedacted``, so a
new writer that forgets the pass fails its first test instead of leaking a secret in production.
A ``str`` subclass, so everything downstream (MLflow included) takes it as plain text.

Only the redaction pass may call ``Redacted(...)``: tests/test_architecture.py checks it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from nbtrack.errors import NbtrackError


class Redacted(str):
    """Text that went through the redaction pass."""

    __slots__ = ()


class NotRedacted(NbtrackError):
    """nbtrack's own bug: a writer handed the store text that skipped the redaction pass."""

    def __init__(self, what: str, value: object):
        super().__init__(what, type(value).__name__)
        self.what = what

    def __str__(self) -> str:
        return (
            f"nbtrack did not redact {self.what} before writing it (a {self.args[1]}); "
            "nothing was written: please report this bug"
        )


def require(value: object, what: str) -> None:
    """Raise NotRedacted unless ``value`` came out of the redaction pass."""
    if not isinstance(value, Redacted):
        raise NotRedacted(what, value)


def require_all(items: Mapping[object, object] | Iterable[object], what: str) -> None:
    """``require`` every key and value of a mapping (or every item of an iterable)."""
    if isinstance(items, Mapping):
        for key, value in items.items():
            require(key, f"the name of a {what}")
            require(value, f"the {what} {key!r}")
    else:
        for value in items:
            require(value, what)
