"""Params from the user's namespace, and dicts as dotted keys.

A tracked cell that reads ``n_estimators`` (``source.names_read``), bound to ``500`` by an earlier
cell, ran with ``n_estimators=500``: that is config as much as a literal in the cell is. Only
simple values count, looked up by name (the namespace is never walked): Python's own ``int``,
``float``, ``bool``, ``str`` (at most 250 characters) and ``None``; lists and tuples of up to 10
of those; dicts with string keys of those (nested dicts too). Subclasses (``numpy.float64``, an
``IntEnum``), sets, modules, functions, classes and every other object are not params; nor are
IPython's own names (``In``, ``Out``, ``exit``, ``quit``, ``get_ipython``).

A dict is flattened to one param per leaf: ``{"model": {"depth": 3}}`` gives ``model.depth``, so
that MLflow's search can filter on it (``params.model.depth = '3'``). Which key a leaf gets when it
clashes with another param is the caller's choice (``tracking.params``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

from nbtrack.capture import source

MAX_TEXT = 250  # a str, or a list's or tuple's text; MLflow's limit is 6,000: config is short
MAX_ITEMS = 10  # items of a list or tuple
MAX_LEAVES = 100  # leaves of one dict: a bigger one is data, not config
MAX_DEPTH = 5  # nesting of dicts
IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython"})

# A dict key that can be part of an MLflow param name (letters, digits, _ - and space; "." and
# "/" would read as nesting, ":" is refused on Windows).
_KEY = re.compile(r"[\w\- ]+")
_SCALARS = (bool, int, float, str, type(None))
_MISSING = object()


def simple_values(names: Iterable[str], namespace: Mapping[str, object]) -> dict[str, object]:
    """``{name: value}`` for each of ``names`` bound in ``namespace`` to a simple value, in the
    order of ``names``. A dict comes back pruned to its simple leaves (entries with other keys
    or values left out); one with none, or more than ``MAX_LEAVES``, is not a param."""
    out = {}
    for name in names:
        if name.startswith("_") or name in IPYTHON_NAMES:
            continue
        value = namespace.get(name, _MISSING)
        if type(value) is dict:
            pruned = _pruned(value, 0, [MAX_LEAVES])
            if pruned:
                out[name] = pruned
        elif _simple(value):
            out[name] = value
    return out


def _scalar(value: object) -> bool:
    if type(value) not in _SCALARS:
        return False
    if type(value) is str:
        return len(value) <= MAX_TEXT
    if type(value) is int:
        return value.bit_length() <= 800  # about 240 digits
    return True


def _simple(value: object) -> bool:
    if type(value) in (list, tuple):
        return (
            len(value) <= MAX_ITEMS  # type: ignore[arg-type]
            and all(_scalar(v) for v in value)  # type: ignore[attr-defined]
            and len(source.format_param(value)) <= MAX_TEXT
        )
    return _scalar(value)


def _pruned(d: dict, depth: int, budget: list[int]) -> dict | None:
    """``d``'s simple leaves; None when it has more than the budget's leaves (or depth)."""
    if depth >= MAX_DEPTH or len(d) > budget[0]:
        return None
    out = {}
    for key, value in d.items():
        if type(key) is not str or not _KEY.fullmatch(key):
            continue
        if type(value) is dict:
            inner = _pruned(value, depth + 1, budget)
            if inner is None:
                return None
            if inner:
                out[key] = inner
        elif _simple(value):
            budget[0] -= 1
            if budget[0] < 0:
                return None
            out[key] = value
    return out


def flattenable(value: object) -> bool:
    """A dict that ``flatten`` splits: not empty, every key a string that can be part of a
    param name. Any other dict (``{}``, ``{1: "a"}``) stays one param, its text."""
    return (
        type(value) is dict
        and bool(value)
        and all(type(k) is str and _KEY.fullmatch(k) for k in value)
    )


def flatten(value: dict, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    """``(path, leaf)`` for each leaf of a dict, nested dicts entered:
    ``{"model": {"depth": 3}, "lr": 0.1}`` -> ``(("model", "depth"), 3), (("lr",), 0.1)``."""
    for key, item in value.items():
        if flattenable(item):
            yield from flatten(item, (*prefix, key))
        else:
            yield (*prefix, key), item
