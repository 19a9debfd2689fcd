"""The grid spec: which points a grid runs. Pure: no MLflow, no papermill, no kernel.

    spec = GridSpec.build({"lr": [0.001, 0.01], "batch_size": [32, 64]},
                          exclude=[{"lr": 0.01, "batch_size": 64}])
    spec.points()   # [{"lr": 0.001, "batch_size": 32}, ...]: three points, in product order

A param is a list of values, one value, or a range to sample from (random search only):

- ``uniform(a, b)``: a float drawn evenly from [a, b];
- ``loguniform(a, b)``: a float whose log is drawn evenly from [log a, log b] (0 < a < b);
- ``randint(a, b)``: an integer from a to b, both included (as Python's ``random.randint``).

Written as strings (``"loguniform(1e-4, 1e-1)"``, as on the command line) or built with the
functions of the same names in this module. Sampled floats are rounded to 6 significant digits:
the value injected into the notebook, logged as a param and shown in tables is the same number.

``exclude``: combinations to leave out, each a mapping that matches every point holding all of
its values (``{"lr": 0.1}`` drops every point with lr=0.1). On the command line:
``--exclude lr=0.1,batch_size=32``.

``random=N``: N points sampled with ``seed`` (drawn and recorded when not given): without
replacement from the grid when every param is a list, else each param drawn on its own (an
excluded draw is drawn again).

(Not ``nbtrack/grid.py``: importing that module would replace the function ``nbtrack.grid``.)
"""

from __future__ import annotations

import ast
import itertools
import json
import math
import random as _random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbtrack.capture.source import parse_param
from nbtrack.errors import UsageError

# Draws of an excluded point before giving up: a range grid whose exclusions cover most of it.
MAX_REDRAWS = 1000
SIGNIFICANT = 6


# -- ranges ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """A distribution to sample a param from (random search only)."""

    kind: str  # "uniform", "loguniform" or "randint"
    low: float
    high: float

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise UsageError(f"{self} needs its first bound below its second", "e.g. uniform(0, 1)")
        if self.kind == "loguniform" and self.low <= 0:
            raise UsageError(f"{self} needs positive bounds", "e.g. loguniform(1e-4, 1e-1)")
        if self.kind == "randint" and (self.low != int(self.low) or self.high != int(self.high)):
            raise UsageError(f"{self} needs integer bounds", "e.g. randint(1, 8)")

    def sample(self, rng: _random.Random) -> float | int:
        if self.kind == "randint":
            return rng.randint(int(self.low), int(self.high))
        if self.kind == "loguniform":
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        return float(f"{value:.{SIGNIFICANT}g}")

    def __str__(self) -> str:
        def num(x: float) -> str:
            return str(int(x)) if self.kind == "randint" else repr(float(x))

        return f"{self.kind}({num(self.low)}, {num(self.high)})"


def uniform(low: float, high: float) -> Range:
    """A float drawn evenly from [low, high]."""
    return Range("uniform", float(low), float(high))


def loguniform(low: float, high: float) -> Range:
    """A float whose logarithm is drawn evenly: for learning rates, weight decays..."""
    return Range("loguniform", float(low), float(high))


def randint(low: int, high: int) -> Range:
    """An integer from low to high, both included."""
    return Range("randint", low, high)


_RANGE = re.compile(r"^\s*(uniform|loguniform|randint)\s*\((.*)\)\s*$")


def parse_range(text: str) -> Range | None:
    """``"loguniform(1e-4, 1e-1)"`` -> a Range; None when ``text`` names no range."""
    m = _RANGE.match(text)
    if m is None:
        return None
    try:
        bounds = ast.literal_eval(f"({m.group(2)},)")
    except (ValueError, SyntaxError):
        bounds = None
    if (
        not isinstance(bounds, tuple)
        or len(bounds) != 2
        or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)
    ):
        raise UsageError(f"cannot read {text.strip()!r}", f"write {m.group(1)}(low, high)")
    return Range(m.group(1), *bounds)


# -- the spec ----------------------------------------------------------------------------------


Values = tuple[Any, ...] | Range


@dataclass(frozen=True)
class GridSpec:
    """What a grid runs: params (name -> values or a range), exclusions, random sampling."""

    params: Mapping[str, Values]
    exclude: tuple[Mapping[str, Any], ...] = ()
    random: int | None = None
    seed: int | None = None

    @classmethod
    def build(
        cls,
        params: Mapping[str, Any],
        exclude: Iterable[Mapping[str, Any] | str] = (),
        random: int | None = None,
        seed: int | None = None,
    ) -> GridSpec:
        """Check and normalise what the user gave (the API's or the command line's forms)."""
        if not params:
            raise UsageError("a grid needs at least one param", 'e.g. params={"lr": [0.01, 0.1]}')
        norm: dict[str, Values] = {}
        for name, spec in params.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise UsageError(f"param name {name!r} is not a Python name", "e.g. lr, batch_size")
            norm[name] = _values(name, spec)
        excl = tuple(_exclusion(e, norm) for e in exclude)
        if random is not None and (isinstance(random, bool) or int(random) < 1):
            raise UsageError(f"random must be a number of points, got {random!r}", "e.g. 8")
        ranges = [k for k, v in norm.items() if isinstance(v, Range)]
        if ranges and random is None:
            raise UsageError(
                f"param {ranges[0]!r} is a range ({norm[ranges[0]]}): a full grid needs lists",
                "sample N points from it with random=N (--random N)",
            )
        if random is not None and seed is None:
            seed = _random.SystemRandom().randrange(2**31)  # recorded, so the draw replays
        return cls(norm, excl, None if random is None else int(random), seed)

    @property
    def names(self) -> list[str]:
        return list(self.params)

    def points(self) -> list[dict[str, Any]]:
        """The points to run, in a stable order (product order, or the sampled order)."""
        if self.random is None:
            return [p for p in self._product() if not self.excluded(p)]
        rng = _random.Random(self.seed)
        if all(not isinstance(v, Range) for v in self.params.values()):
            full = [p for p in self._product() if not self.excluded(p)]
            if self.random >= len(full):
                return full
            picked = sorted(rng.sample(range(len(full)), self.random))
            return [full[i] for i in picked]
        out = []
        for _ in range(self.random):
            for _attempt in range(MAX_REDRAWS):
                point = {k: _draw(v, rng) for k, v in self.params.items()}
                if not self.excluded(point):
                    out.append(point)
                    break
            else:
                raise UsageError(
                    f"the exclusions leave almost nothing to sample ({MAX_REDRAWS} draws "
                    "excluded in a row)",
                    "exclude fewer combinations",
                )
        return out

    def _product(self) -> Iterable[dict[str, Any]]:
        names = list(self.params)
        lists = [self.params[n] for n in names]
        for combo in itertools.product(*lists):  # type: ignore[arg-type]
            yield dict(zip(names, combo, strict=True))

    def excluded(self, point: Mapping[str, Any]) -> bool:
        return any(all(same(point[k], v) for k, v in e.items()) for e in self.exclude)

    def size(self) -> int | None:
        """Points in the full grid before exclusions; None when a param is a range."""
        if any(isinstance(v, Range) for v in self.params.values()):
            return None
        return math.prod(len(v) for v in self.params.values())  # type: ignore[arg-type]

    # -- as recorded on the grid's parent run -----------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "params": {
                k: str(v) if isinstance(v, Range) else list(v) for k, v in self.params.items()
            },
            "exclude": [dict(e) for e in self.exclude],
            "random": self.random,
            "seed": self.seed,
        }

    def run_params(self) -> dict[str, str]:
        """The spec as MLflow params of the parent run: ``grid.<name>`` and how it was drawn."""
        out = {
            f"grid.{k}": str(v) if isinstance(v, Range) else _json(list(v))
            for k, v in self.params.items()
        }
        if self.exclude:
            out["grid.exclude"] = _json([dict(e) for e in self.exclude])
        if self.random is not None:
            out["grid.random"] = str(self.random)
            out["grid.seed"] = str(self.seed)
        return out


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _values(name: str, spec: Any) -> Values:
    """A param's values: a list as given, a range, or one value (a string naming a range is
    the range)."""
    if isinstance(spec, Range):
        return spec
    if isinstance(spec, str):
        found = parse_range(spec)
        return found if found is not None else (spec,)
    if isinstance(spec, Sequence | set | frozenset) and not isinstance(spec, bytes):
        values = tuple(sorted(spec, key=repr) if isinstance(spec, set | frozenset) else spec)
        if not values:
            raise UsageError(f"param {name!r} has no values", f"give it at least one: {name}=[...]")
        for v in values:
            if isinstance(v, Range):
                raise UsageError(
                    f"param {name!r} mixes a range with values", "give one or the other"
                )
            _check_value(name, v)
        return values
    _check_value(name, spec)
    return (spec,)


def _check_value(name: str, value: Any) -> None:
    # papermill writes each value into the notebook as a Python literal: only literals can go.
    try:
        ok = ast.literal_eval(repr(value)) == value
    except (ValueError, SyntaxError, TypeError):
        ok = False
    if not ok and not (isinstance(value, float) and math.isnan(value)):
        raise UsageError(
            f"param {name!r} has a value papermill cannot write into a notebook: {value!r}",
            "use numbers, strings, booleans, None, or lists and dicts of them",
        )


def _exclusion(item: Mapping[str, Any] | str, params: Mapping[str, Values]) -> dict[str, Any]:
    if isinstance(item, str):
        item = parse_exclusion(item)
    if not isinstance(item, Mapping) or not item:
        raise UsageError(
            f"cannot read the exclusion {item!r}", 'e.g. {"lr": 0.1, "batch_size": 32}'
        )
    unknown = [k for k in item if k not in params]
    if unknown:
        raise UsageError(
            f"the exclusion {dict(item)} names {unknown[0]!r}, which is not a param of the grid",
            f"the grid's params: {', '.join(params)}",
        )
    return dict(item)


def parse_exclusion(text: str) -> dict[str, Any]:
    """``"lr=0.1,batch_size=32"`` -> ``{"lr": 0.1, "batch_size": 32}``."""
    out: dict[str, Any] = {}
    for part in _split_top(text):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise UsageError(
                f"cannot read the exclusion {text!r}", "write --exclude lr=0.1,batch_size=32"
            )
        out[key.strip()] = parse_param(value.strip())
    return out


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets and quotes (a value may be a list: ``layers=[64,32]``)."""
    parts, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return [p for p in (p.strip() for p in parts) if p]


def same(a: Any, b: Any) -> bool:
    """Equal values, or the same text (a command line's ``0.1`` and a stored ``"0.1"``)."""
    if a == b and type(a) is type(b):
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        return str(a) == str(b)
    return a == b or str(a) == str(b)


def _draw(values: Values, rng: _random.Random) -> Any:
    if isinstance(values, Range):
        return values.sample(rng)
    return values[rng.randrange(len(values))]


# -- the notebook's parameters cell ----------------------------------------------------------


def notebook_parameters(path: str | Path) -> list[str]:
    """The names the notebook's papermill ``parameters`` cell assigns, in order.

    UsageError when the file is not a notebook or has no cell tagged ``parameters``.
    """
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError(f"cannot read the notebook {str(path)!r}: {e.strerror or e}") from None
    except ValueError:
        raise UsageError(f"{str(path)!r} is not a notebook (not JSON)") from None
    for cell in nb.get("cells") or []:
        if "parameters" in ((cell.get("metadata") or {}).get("tags") or []):
            source = cell.get("source")
            return assigned_names("".join(source) if isinstance(source, list) else source or "")
    raise UsageError(
        f"the notebook {Path(path).name!r} has no papermill parameters cell",
        "tag the cell that sets its knobs (lr = 0.01 ...) with 'parameters'",
    )


def assigned_names(source: str) -> list[str]:
    """Names assigned at the top level of a cell (``a = 1``, ``a: int = 1``, ``a, b = 1, 2``)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        # A cell with IPython syntax: fall back to the ``name = ...`` lines.
        found = re.findall(r"^([A-Za-z_]\w*)\s*(?::[^=]*)?=(?!=)", source, re.MULTILINE)
        return list(dict.fromkeys(found))
    names: list[str] = []

    def add(target: ast.expr) -> None:
        if isinstance(target, ast.Name):
            names.append(target.id)
        elif isinstance(target, ast.Tuple | ast.List):
            for t in target.elts:
                add(t)
        elif isinstance(target, ast.Starred):
            add(target.value)

    for node in tree.body:
        if isinstance(node, ast.Assign):
            for t in node.targets:
                add(t)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            add(node.target)
    return list(dict.fromkeys(names))


def check_names(spec_names: Iterable[str], notebook: str | Path) -> None:
    """Refuse names the notebook's parameters cell does not set (a typo would silently add a
    variable papermill injects and nothing reads)."""
    have = notebook_parameters(notebook)
    unknown = [n for n in spec_names if n not in have]
    if unknown:
        many = "s" if len(unknown) > 1 else ""
        raise UsageError(
            f"the notebook {Path(notebook).name!r} has no parameter{many} "
            f"{', '.join(repr(n) for n in unknown)}",
            f"its parameters cell sets: {', '.join(have) or 'nothing'}",
        )


__all__ = [
    "GridSpec",
    "Range",
    "assigned_names",
    "check_names",
    "loguniform",
    "notebook_parameters",
    "parse_exclusion",
    "parse_range",
    "randint",
    "same",
    "uniform",
]
