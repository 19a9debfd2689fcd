"""Learning curves, pure: which runs, which metrics, grouped how, drawn from how many points.

(Not ``nbtrack/curves.py``: importing a submodule ``nbtrack.curves`` would replace the public
function ``nbtrack.curves`` with the module.)

No IPython, no plotly here: the widgets (``nbtrack.widgets.curves``, ``.live``) and the static
fallback (``nbtrack.widgets.static``) draw what this module returns. Data comes from the run's
metric log, else MLflow (after the fact: ``query.metric_points``), or from the metric writer's
listeners (live).

- Families: ``train_loss`` and ``val_loss`` are the "loss" family and share a subplot; the role
  (``train``, ``val``...) decides the line style.
- Long series are downsampled for display (query.sampling: LTTB keeping the extremes), smoothed
  on demand (EMA); query.styles tells series apart.
"""

from __future__ import annotations

import re
import threading
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nbtrack.errors import UsageError
from nbtrack.query.sampling import MAX_POINTS, downsample
from nbtrack.record import TAG_RUN_NAME, RunView

X_AXES = ("step", "time", "timestamp")
X_LABELS = {"step": "step", "time": "time (s)", "timestamp": "time (UTC)"}

# Roles a metric name can start or end with; synonyms share a line style.
ROLES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "eval": "val",
    "dev": "val",
    "test": "test",
}
_SEP = re.compile(r"[_/.\-: ]")
_RUN_ID = re.compile(r"[0-9a-f]{32}")


# -- what is drawn -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRef:
    """A run as the curves need it: its id, the name shown, and when it started."""

    run_id: str
    name: str
    experiment_id: str = ""
    start_ms: int | None = None
    metric_keys: tuple[str, ...] = ()  # the keys MLflow has (its data.metrics)
    status: str = ""  # MLflow's status; "" for a run nbtrack is tracking in this process


@dataclass
class Series:
    """One metric of one run, ready to draw: ``x`` numeric (steps, seconds or epoch ms)."""

    run: RunRef
    key: str
    x: np.ndarray
    y: np.ndarray
    total: int  # finite points in the full history; len(x) when nothing was downsampled

    @property
    def family(self) -> str:
        return family_of(self.key)[0]

    @property
    def role(self) -> str:
        return family_of(self.key)[1]


@dataclass
class Curves:
    """The series to draw, and along which x."""

    series: list[Series] = field(default_factory=list)
    x: str = "step"

    def families(self) -> list[str]:
        """Families in the order their first series appears."""
        return list(dict.fromkeys(s.family for s in self.series))

    def runs(self) -> list[RunRef]:
        return list({s.run.run_id: s.run for s in self.series}.values())

    def names(self) -> dict[str, str]:
        """Run id -> the name to show, with a short id added where two runs share a name."""
        return display_names(self.runs())

    @property
    def x_label(self) -> str:
        return X_LABELS[self.x]


def family_of(key: str) -> tuple[str, str]:
    """(family, role) of a metric key: ``val_loss`` -> ("loss", "val"), ``loss/train`` ->
    ("loss", "train"), ``lr`` -> ("lr", "")."""
    parts = [p for p in _SEP.split(key) if p]
    if len(parts) > 1:
        first, last = parts[0].lower(), parts[-1].lower()
        if first in ROLES:
            return key[len(parts[0]) :].lstrip("_/.-: ") or key, ROLES[first]
        if last in ROLES:
            return key[: len(key) - len(parts[-1])].rstrip("_/.-: ") or key, ROLES[last]
    return key, ""


def group(keys: Iterable[str]) -> dict[str, list[str]]:
    """Keys by family, families and keys in the order given."""
    out: dict[str, list[str]] = {}
    for key in keys:
        out.setdefault(family_of(key)[0], []).append(key)
    return out


def display_names(runs: Sequence[RunRef]) -> dict[str, str]:
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.name] = counts.get(r.name, 0) + 1
    return {r.run_id: r.name if counts[r.name] == 1 else f"{r.name} ({r.run_id[:7]})" for r in runs}


# -- telling series apart ----------------------------------------------------------------------


def x_values(steps: np.ndarray, stamps: np.ndarray, x: str, start_ms: int | None) -> np.ndarray:
    """The x of each point: its step, seconds since the run started, or its epoch ms."""
    if x == "step":
        return steps.astype(np.float64)
    if x == "time":
        origin = start_ms if start_ms is not None else (int(stamps.min()) if len(stamps) else 0)
        return (stamps - origin).astype(np.float64) / 1000.0
    if x == "timestamp":
        return stamps.astype(np.float64)
    raise UsageError(f"x must be one of {', '.join(X_AXES)}, got {x!r}", 'e.g. x="time"')


def series_from_history(
    run: RunRef,
    key: str,
    steps: np.ndarray,
    stamps: np.ndarray,
    values: np.ndarray,
    x: str = "step",
    max_points: int = MAX_POINTS,
) -> Series:
    """A drawable series from a full history: ordered along x, non-finite values left out (a
    plot cannot place them), downsampled to ``max_points``."""
    xs = x_values(np.asarray(steps), np.asarray(stamps), x, run.start_ms)
    ys = np.asarray(values, dtype=np.float64)
    if len(xs) and not np.all(xs[1:] >= xs[:-1]):
        order = np.argsort(xs, kind="stable")  # stable: points of one step keep their order
        xs, ys = xs[order], ys[order]
    finite = np.isfinite(ys)
    if not finite.all():
        xs, ys = xs[finite], ys[finite]
    total = len(xs)
    xs, ys = downsample(xs, ys, max_points)
    return Series(run=run, key=key, x=xs, y=ys, total=total)


# -- after the fact: runs and their histories from MLflow --------------------------------------


def ref_of(run: Any) -> RunRef:
    """RunRef of a stored run (``RunView``), or of nbtrack's running ``TrackedRun``."""
    if not isinstance(run, RunView):
        return RunRef(
            run_id=run.run_id,
            name=run.name or run.run_id[:8],
            experiment_id=run.experiment_id,
            start_ms=int(run.started * 1000),
        )
    name = run.name or run.tags.get(TAG_RUN_NAME) or run.run_id[:8]
    return RunRef(
        run_id=run.run_id,
        name=name,
        experiment_id=run.experiment_id,
        start_ms=run.start_time,
        metric_keys=tuple(sorted(run.metrics)),
        status=run.status,
    )


def resolve_runs(runs: Any, filter: str | None = None) -> list[RunRef]:
    """The runs asked for, in order, without duplicates.

    ``runs``: a run id; an iterable of run ids (or MLflow ``Run`` entities, tracked runs); a
    DataFrame from ``mlflow.search_runs`` (its ``run_id`` column); or an experiment name, with
    ``filter`` an MLflow filter string (``"params.lr = '0.1'"``) over that experiment's runs.
    """
    from nbtrack import store

    store.configure()
    if isinstance(runs, str):
        if _RUN_ID.fullmatch(runs) and filter is None:
            return [ref_of(r) for r in store.runs_by_id([runs])]
        return [ref_of(r) for r in store.runs_in_experiment(runs, filter)]
    if filter is not None:
        raise UsageError(
            "filter= applies to the runs of an experiment",
            'pass the experiment name first: nbtrack.curves("digits", filter="...")',
        )
    columns = getattr(runs, "columns", None)
    if columns is not None:  # a DataFrame, e.g. from mlflow.search_runs
        if "run_id" not in columns:
            raise UsageError("the DataFrame has no run_id column", "pass mlflow.search_runs(...)")
        ids = [str(i) for i in runs["run_id"]]
    elif isinstance(runs, Iterable):
        ids = [_run_id(r) for r in runs]
    else:
        ids = [_run_id(runs)]
    ids = list(dict.fromkeys(ids))
    return [ref_of(r) for r in store.runs_by_id(ids)]


def _run_id(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, RunRef):
        return item.run_id
    info = getattr(item, "info", None)
    if info is not None and getattr(info, "run_id", None):
        return info.run_id
    if isinstance(getattr(item, "run_id", None), str):  # nbtrack's TrackedRun
        return item.run_id
    raise UsageError(
        f"cannot read a run from {type(item).__name__}",
        "pass run ids, a DataFrame from mlflow.search_runs, or an experiment name",
    )


def select_keys(available: Iterable[str], metrics: str | Sequence[str] | None) -> list[str]:
    """Keys to draw: all when ``metrics`` is None; else each name as a key or as a family
    (``"loss"`` selects ``train_loss`` and ``val_loss``)."""
    keys = sorted(set(available))
    if metrics is None:
        return keys
    wanted = [metrics] if isinstance(metrics, str) else list(metrics)
    out = []
    for name in wanted:
        out += [k for k in keys if k == name or (k != name and family_of(k)[0] == name)]
    return list(dict.fromkeys(out))


def load(
    runs: Any,
    metrics: str | Sequence[str] | None = None,
    x: str = "step",
    filter: str | None = None,
    max_points: int = MAX_POINTS,
) -> Curves:
    """Curves of ``runs`` (see resolve_runs) read back from MLflow, families sorted by name."""
    if x not in X_AXES:
        raise UsageError(f"x must be one of {', '.join(X_AXES)}, got {x!r}", 'e.g. x="time"')
    from nbtrack.query import metric_points

    refs = resolve_runs(runs, filter)
    series = []
    for ref in refs:
        # The run's metric log when it has one (all its keys in one read), MLflow for the rest.
        points = metric_points.read(ref.run_id, ref.status, ref.metric_keys)
        for key in select_keys(points.keys(), metrics):
            steps, stamps, values = points.history(key)
            if len(values):
                series.append(series_from_history(ref, key, steps, stamps, values, x, max_points))
    series.sort(key=lambda s: s.family)  # stable: runs keep their order within a family
    return Curves(series, x)


# -- live: points of a running run, as the writer persists them ---------------------------------


class LiveCurves:
    """The points of one run seen so far, fed from the metric writer's thread and read by a view's
    redraw: ``add`` is cheap (list appends under a lock); ``snapshot`` downsamples a copy."""

    def __init__(self, run: RunRef, max_points: int = MAX_POINTS):
        self.run = run
        self.max_points = max_points
        self._lock = threading.Lock()
        # Typed arrays, not lists: 24 bytes a point instead of ~100 (a million-point loop).
        self._points: dict[str, tuple[array, array, array]] = {}
        self.version = 0  # bumped by every add: a view redraws when it changed

    def add(self, points: Iterable[tuple]) -> None:
        """Points as the writer hands them: (run_id, key, value, timestamp_ms, step)."""
        with self._lock:
            for run_id, key, value, ts, step in points:
                if run_id != self.run.run_id:
                    continue
                arrays = self._points.get(key)
                if arrays is None:
                    arrays = self._points[key] = (array("q"), array("q"), array("d"))
                arrays[0].append(step)
                arrays[1].append(ts)
                arrays[2].append(value)
            self.version += 1

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v[0]) for v in self._points.values())

    def snapshot(self, x: str = "step") -> Curves:
        with self._lock:
            copies = {
                k: (
                    np.frombuffer(s, np.int64).copy(),
                    np.frombuffer(t, np.int64).copy(),
                    np.frombuffer(v, np.float64).copy(),
                )
                for k, (s, t, v) in self._points.items()
            }
        series = [
            series_from_history(self.run, key, *arrays, x=x, max_points=self.max_points)
            for key, arrays in copies.items()
        ]
        order = group(copies)  # families in the order their first key arrived
        rank = {f: i for i, f in enumerate(order)}
        series.sort(key=lambda s: rank[s.family])
        return Curves([s for s in series if s.total], x)

    def complete(self, x: str = "step") -> Curves:
        """The final picture of a finished run: the points seen live, plus the histories of the
        keys logged around ``nbtrack.log`` (plain ``mlflow.log_metric``), read through
        ``query.metric_points`` (the run's log where it has them, else MLflow).

        The points seen live are those the writer persisted, so they are not read back: for a
        long run that would cost seconds per million points at the end of the cell."""
        from nbtrack import store
        from nbtrack.query import metric_points

        live = self.snapshot(x)
        with self._lock:
            seen = set(self._points)
        run = store.get_run(self.run.run_id)
        others = sorted(set(run.metrics) - seen)
        # Only the keys not seen live are read, from the run's log where it has them.
        points = metric_points.read(run.run_id, run.status, run.metrics, keys=others)
        for key in others:
            steps, stamps, values = points.history(key)
            if len(values):
                live.series.append(
                    series_from_history(self.run, key, steps, stamps, values, x, self.max_points)
                )
        if others:
            order = group([s.key for s in live.series])
            rank = {f: i for i, f in enumerate(order)}
            live.series.sort(key=lambda s: rank[s.family])
        return live


__all__ = [
    "MAX_POINTS",
    "X_AXES",
    "Curves",
    "LiveCurves",
    "RunRef",
    "Series",
    "display_names",
    "downsample",
    "family_of",
    "group",
    "load",
    "resolve_runs",
    "select_keys",
    "series_from_history",
]
