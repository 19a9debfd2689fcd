"""A run's metric histories from the fastest complete copy: nbtrack's metric log before MLflow.

MLflow's ``get_metric_history`` of a million points takes half a minute; the same points in
nbtrack's metric log (``store.metric_log``) load in well under a second. Where a run's points are
read from, first found wins:

1. its local log folder on this machine (``<state>/metrics/<run_id>/``, sent and pending files):
   a live run, or one whose log is not yet stored as an artifact. It holds points MLflow does
   not have yet, so a live run reads more here than from MLflow;
2. else, for a finished run, its Parquet artifact (``record.ARTIFACT_METRIC_LOG``), downloaded
   once into ``<state>/cache/metric-log/<run_id>.parquet``: a finished run's artifact never
   changes, so the copy never goes stale. A running run is not cached: its artifact does not
   exist yet;
3. MLflow's history (``store.metric_history``) for each key MLflow has and the log does not
   (points logged with plain ``mlflow.log_metric``, runs made before the log existed). A key in
   both comes from the log, the complete copy.

Each history has exactly the contract of ``store.metric_history``: numpy arrays (steps, timestamps
ms, values) in MLflow's order (timestamp, step, value), exact duplicates stored once and +-inf as
the largest float, as MLflow's SQL store keeps them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nbtrack import logs, record, settings

log = logs.get(__name__)

History = tuple[np.ndarray, np.ndarray, np.ndarray]
TERMINAL = ("FINISHED", "FAILED", "KILLED")
# Where a run's log points came from (RunPoints.source).
LOCAL, ARTIFACT, CACHE, MLFLOW = "local", "artifact", "cache", "mlflow"
_BIG = np.finfo(np.float64).max  # what MLflow's SQL store keeps for +-inf


def cache_dir(state_dir: Path | None = None) -> Path:
    return Path(state_dir or settings.current().state_dir) / "cache" / "metric-log"


@dataclass
class RunPoints:
    """Every metric history of one run: the log's keys read at once, MLflow's on demand."""

    run_id: str
    source: str  # LOCAL, ARTIFACT or CACHE when the run has a log; else MLFLOW
    logged: dict[str, History] = field(default_factory=dict)
    mlflow_keys: tuple[str, ...] = ()

    def keys(self) -> list[str]:
        return sorted(set(self.logged) | set(self.mlflow_keys))

    def history(self, key: str) -> History:
        found = self.logged.get(key)
        if found is not None:
            return found
        if key not in self.mlflow_keys:
            return _empty()
        from nbtrack import store

        return store.metric_history(self.run_id, key)


def read(
    run_id: str,
    status: str | None = None,
    mlflow_keys: Iterable[str] | None = None,
    keys: Iterable[str] | None = None,
) -> RunPoints:
    """The metric points of a run, from its log where it has one (see the module's docstring).

    ``status`` and ``mlflow_keys`` (the keys of the run's ``data.metrics``) come from a RunView
    the caller already holds; both are read from MLflow when omitted. ``keys`` limits what the
    log yields (None: every key)."""
    if status is None or mlflow_keys is None:
        from nbtrack import store

        run = store.get_run(run_id)
        status = run.status if status is None else status
        mlflow_keys = run.metrics if mlflow_keys is None else mlflow_keys
    wanted = None if keys is None else sorted(set(keys))
    if wanted == []:
        return RunPoints(run_id, MLFLOW, {}, tuple(sorted(set(mlflow_keys))))
    source, table = _log_table(run_id, status)
    logged = split(table, wanted) if table is not None else {}
    return RunPoints(run_id, source, logged, tuple(sorted(set(mlflow_keys))))


def history(run_id: str, key: str) -> History:
    """Every point of metric ``key`` of a run, as ``store.metric_history`` returns them."""
    return read(run_id, keys=[key]).history(key)


def histories(run_id: str, keys: Iterable[str] | None = None) -> dict[str, History]:
    """Every history of a run (or those of ``keys``) by key, the log read once for all."""
    points = read(run_id, keys=keys)
    wanted = points.keys() if keys is None else list(dict.fromkeys(keys))
    return {k: points.history(k) for k in wanted}


# -- the log's copies ---------------------------------------------------------------------------


def _log_table(run_id: str, status: str) -> tuple[str, Any]:
    """(source, pyarrow Table or None) of a run's log points."""
    from nbtrack.store import metric_log

    state = settings.current().state_dir
    folder = metric_log.run_dir(state, run_id)
    if folder.is_dir():
        try:
            table = metric_log.read_run(folder)
        except Exception:
            log.warning("reading the local metric log of run %s failed", run_id, exc_info=True)
            table = None
        # The writer deletes the folder once the run's artifact is stored: files that vanished
        # while they were read would make a partial picture, so read the artifact instead.
        if folder.is_dir():
            return (LOCAL, table) if table is not None else (MLFLOW, None)
    if status not in TERMINAL:
        return MLFLOW, None  # no artifact before the run ends; MLflow has what was sent
    return _artifact_table(run_id)


def _artifact_table(run_id: str) -> tuple[str, Any]:
    from nbtrack.store import metric_log

    cached = cache_dir() / f"{run_id}.parquet"
    if cached.is_file():
        try:
            return CACHE, metric_log.read_parquet(cached)
        except Exception:
            log.warning(
                "the cached metric log %s is unreadable; downloading it again",
                cached,
                exc_info=True,
            )
            cached.unlink(missing_ok=True)
    cached.parent.mkdir(parents=True, exist_ok=True)
    # Downloaded beside the cache and renamed into place once read whole: a reader never sees
    # half a file, and two processes downloading at once both end with a whole one.
    with tempfile.TemporaryDirectory(prefix=".download-", dir=cached.parent) as tmp:
        got = _download(run_id, Path(tmp))
        if got is None:
            return MLFLOW, None
        try:
            table = metric_log.read_parquet(got)
        except Exception:
            log.warning("the metric log artifact of run %s is unreadable", run_id, exc_info=True)
            return MLFLOW, None
        os.replace(got, cached)
    return ARTIFACT, table


downloads = 0  # artifacts downloaded by this process (a test tells a cache hit from a download)


def _download(run_id: str, tmp: Path) -> Path | None:
    """The run's metric-log artifact downloaded into ``tmp``; None when it has none."""
    global downloads
    from nbtrack import store

    got = store.download_artifacts(run_id, record.ARTIFACT_METRIC_LOG, tmp)
    if got is None or not got.is_file():
        return None
    downloads += 1
    return got


# -- one table -> histories in MLflow's order ---------------------------------------------------


def _empty() -> History:
    return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)


def split(table: Any, keys: Iterable[str] | None = None) -> dict[str, History]:
    """A table of points (``metric_log.schema``) as one history per key (those of ``keys``, or
    all), each in MLflow's order (timestamp, step, value) with exact duplicates dropped."""
    if table.num_rows == 0:
        return {}
    import pyarrow as pa
    import pyarrow.compute as pc

    column = table["key"]
    if pa.types.is_dictionary(column.type):
        encoded = column.unify_dictionaries().combine_chunks()
    else:
        encoded = pc.dictionary_encode(column).combine_chunks()
    names = encoded.dictionary.to_pylist()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    steps = _numpy(table["step"], np.int64)
    stamps = _numpy(table["timestamp"], np.int64)
    values = _numpy(table["value"], np.float64)
    if keys is not None:
        wanted = set(keys)
        chosen = np.flatnonzero([name in wanted for name in names])
        if len(chosen) < len(names):
            rows = np.isin(codes, chosen)
            codes, steps, stamps, values = codes[rows], steps[rows], stamps[rows], values[rows]
            if not len(codes):
                return {}
    # MLflow's SQL store keeps +-inf as the largest float, and NaN as 0 flagged NaN (its sort
    # and its duplicate check see the 0).
    inf = np.isinf(values)
    if inf.any():
        values = np.where(inf, np.copysign(_BIG, values), values)
    nan = np.isnan(values)
    sortable = np.where(nan, 0.0, values) if nan.any() else values
    # A log is nearly always in order already (the artifact by key, a live log by time within
    # each key): check in O(n) and sort only when it is not; a full lexsort of a million points
    # costs most of a second.
    if len(codes) > 1 and not np.all(codes[1:] >= codes[:-1]):
        # Few keys: a stable sort of 16-bit codes is a radix sort.
        small = codes.astype(np.uint16) if len(names) <= 65536 else codes
        order = np.argsort(small, kind="stable")
        codes, steps, stamps = codes[order], steps[order], stamps[order]
        values, nan, sortable = values[order], nan[order], sortable[order]
    columns = (codes, stamps, steps, sortable, nan)
    if not _ordered(columns):
        order = np.lexsort(columns[::-1])
        codes, steps, stamps = codes[order], steps[order], stamps[order]
        values, nan, sortable = values[order], nan[order], sortable[order]
        columns = (codes, stamps, steps, sortable, nan)
    same = _same_as_previous(columns)
    if same.any():
        keep = ~same
        codes, steps, stamps, values = codes[keep], steps[keep], stamps[keep], values[keep]
    bounds = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(codes)]))
    return {
        names[codes[s]]: (steps[s:e], stamps[s:e], values[s:e])
        for s, e in zip(starts, ends, strict=True)
    }


def _ordered(columns: tuple[np.ndarray, ...]) -> bool:
    """Whether the rows are in lexicographic order of ``columns`` (first column first)."""
    undecided = np.ones(len(columns[0]) - 1, bool)
    for col in columns:
        a, b = col[:-1], col[1:]
        if (undecided & (b < a)).any():
            return False
        undecided &= b == a
        if not undecided.any():
            return True
    return True


def _same_as_previous(columns: tuple[np.ndarray, ...]) -> np.ndarray:
    """Per row: whether it equals the row before it in every column (the first row: False)."""
    same = np.ones(len(columns[0]), bool)
    same[0] = False
    for col in columns:
        same[1:] &= col[1:] == col[:-1]
    return same


def _numpy(column: Any, dtype: Any) -> np.ndarray:
    return np.asarray(column.to_numpy(), dtype=dtype)


__all__ = ["RunPoints", "cache_dir", "histories", "history", "read", "split"]
