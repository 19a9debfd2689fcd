"""The redaction pass: one per run, over everything nbtrack sends to MLflow.

A ``Redactor`` holds the secret values known so far: the values of secret-named environment
variables, and every value a rule of ``capture.redact`` recognised (a literal assigned to a
secret-named variable, the values of a secret-named dict key, column or keyword argument, a
``-p``/``-t`` flag with a secret name, a connection string's ``Pwd=``, a token format). A value
known once is replaced verbatim wherever it appears: in a printed DataFrame, an exception message,
a git diff, a run name, every later artifact of the run. Values recognised in this process are
kept for its later runs too (a saved output echoes a secret in every later snapshot).

Order matters: ``learn`` every source first (the cell, the kernel's history, the notebook's
cells, the git diff), then redact outputs with ``text``; ``capture.notebook`` reads a notebook
that way.

The pass's results are ``Redacted`` (nbtrack.redacted): ``store`` writes nothing else.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping

from nbtrack.capture.redact import MIN_KNOWN, REDACTED, redact_text
from nbtrack.capture.secret_names import is_secret_name, secret_values
from nbtrack.redacted import Redacted

# What this process recognised as secret, for every later run's Redactor.
_learned: set[str] = set()

# The rules' result for large texts, by digest: the kernel's history, a notebook's outputs and a
# dirty tree's diff come back unchanged cell after cell, and the rules cost ~35 ms per MB.
_CACHE_FROM = 4096
_CACHE_SIZE = 64
_cache: OrderedDict[str, tuple[str, frozenset[str]]] = OrderedDict()

# Terminal colours (IPython's tracebacks): `secret_val = \x1b[33m"..."` hides the assignment
# from the rules, so coloured text is judged without its colour codes.
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _rules(text: str) -> tuple[str, frozenset[str]]:
    """The rules' redaction of ``text`` and the values they replaced."""
    key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    if len(text) >= _CACHE_FROM and key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    found: set[str] = set()
    result = (redact_text(text, found=found), frozenset(found))
    if len(text) >= _CACHE_FROM:
        _cache[key] = result
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return result


class Redactor:
    """A run's redaction pass and the secret values it knows."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        """``known``: values the caller knows are secret (any length), for this pass only."""
        self.known: set[str] = set(secret_values()) | _learned | {v for v in known if v}
        self._order: list[tuple[str, str]] | None = None  # (value, JSON-escaped), longest first

    def know(self, *values: str) -> None:
        """Treat ``values`` as secret from now on (in this run and this process's later runs)."""
        new = {
            v for v in values if isinstance(v, str) and len(v) >= MIN_KNOWN and REDACTED not in v
        }
        if new - self.known:
            self.known |= new
            self._order = None
        _learned.update(new)

    def learn(self, *texts: str | None) -> None:
        """Run the rules over ``texts`` (sources) only to learn the secrets they hold."""
        for text in texts:
            if text:
                self.know(*_rules(text)[1])

    def text(self, text: str) -> Redacted:
        """``text`` as it may be sent: the rules, then every known value, verbatim. Text that
        went through the pass already only gets the values learned since."""
        if isinstance(text, Redacted):
            return self.literal(text)
        if "\x1b[" in text:
            plain = _ANSI.sub("", text)
            clean = self._redact(plain)
            if clean != plain:  # a secret in coloured text: its colours go with it
                return Redacted(clean)
        return Redacted(self._redact(text))

    def _redact(self, text: str) -> str:
        clean, found = _rules(text)
        self.know(*found)
        return self.literal(clean)

    def literal(self, text: str) -> Redacted:
        """``text`` with known values replaced, and nothing else: for texts whose parts already
        went through ``text`` (a notebook's JSON), where values may also be JSON-escaped."""
        if self._order is None:
            ordered = sorted(self.known, key=lambda v: (-len(v), v))
            self._order = [(v, json.dumps(v, ensure_ascii=False)[1:-1]) for v in ordered]
        for value, escaped in self._order:
            if value in text:
                text = text.replace(value, REDACTED)
            if escaped != value and escaped in text:
                text = text.replace(escaped, REDACTED)
        return Redacted(text)

    def value(self, name: str, value: object) -> Redacted:
        """A param's or tag's value: blanked under a secret name (and known from then on)."""
        text = value if isinstance(value, str) else str(value)
        if is_secret_name(name):
            self.know(text)
            return Redacted(REDACTED)
        return self.text(text)

    def mapping(self, items: Mapping[str, object]) -> dict[Redacted, Redacted]:
        """Params or tags as they may be sent: names checked, values redacted."""
        for name, value in items.items():  # first learn every secret-named value...
            if is_secret_name(name) and isinstance(value, str):
                self.know(value)
        # ...so a secret-named param's value is caught under a neutral name too
        return {self.text(k): self.value(k, v) for k, v in items.items()}

    def files(self, files: Mapping[str, str]) -> dict[Redacted, Redacted]:
        """Artifact files (relative path -> text) as they may be sent."""
        return {self.text(path): self.text(content) for path, content in files.items()}


def nbtrack_text(text: str) -> Redacted:
    """Text nbtrack composed (a reason, a status line) that may quote user input: redacted with
    what this process knows."""
    return Redactor().text(text)


def nbtrack_tags(tags: Mapping[str, object]) -> dict[Redacted, Redacted]:
    """Tags nbtrack composed (process, executor, digests): redacted with what this process
    knows, like everything the store takes."""
    return Redactor().mapping(tags)


__all__ = ["Redacted", "Redactor", "nbtrack_tags", "nbtrack_text"]
