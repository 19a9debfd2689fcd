"""The thinned copy of a run's metrics MLflow gets under NBTRACK_MLFLOW_METRICS=thin.

MLflow's SQL store spends ~75 µs of CPU a point; a run of millions keeps it busy for minutes
and its history reads in tens of seconds. Thinned, MLflow holds about one point in N per key,
chosen by LTTB so its charts keep the curve's shape, and the Parquet artifact of the metric log
holds every point (nbtrack's readers use it). The sender thins each range of the log on its way
to MLflow, so a range sent twice after a crash is thinned the same way (MLflow keeps one copy).

Kept in every range, per key: the first and last points, the minimum and maximum, and every
non-finite value (a NaN loss is what someone looks for). The first and last of every range
include the run's first and last point and its global extremes fall in some range, so those
are in MLflow too: the final value MLflow shows is the run's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nbtrack.lttb import lttb

Point = tuple[str, float, int, int]  # key, value, timestamp (ms), step: store.send_points'
MIN_KEPT = 4  # first, last, min, max


def thin(points: Sequence[Point], every: int) -> list[Point]:
    """About one point in ``every`` of each key of ``points`` (at least MIN_KEPT of a key, all
    of them when it has no more), in their order."""
    if every <= 1:
        return list(points)
    by_key: dict[str, list[int]] = {}
    for i, p in enumerate(points):
        by_key.setdefault(p[0], []).append(i)
    keep: list[int] = []
    for idx in by_key.values():
        keep.extend(_kept(points, idx, every))
    keep.sort()
    return [points[i] for i in keep]


def _kept(points: Sequence[Point], idx: list[int], every: int) -> list[int]:
    target = max(MIN_KEPT, math.ceil(len(idx) / every))
    if len(idx) <= target:
        return idx
    values = np.fromiter((points[i][1] for i in idx), dtype=np.float64, count=len(idx))
    finite = np.isfinite(values)
    odd = [idx[j] for j in np.flatnonzero(~finite)]
    pos = np.flatnonzero(finite)
    if len(pos) <= target:
        return sorted(odd + [idx[j] for j in pos])
    steps = np.fromiter((points[idx[j]][3] for j in pos), dtype=np.float64, count=len(pos))
    # LTTB wants x sorted: steps usually are; a key logged out of order is thinned by position.
    x = steps if bool(np.all(np.diff(steps) >= 0)) else np.arange(len(pos), dtype=np.float64)
    picks = lttb(x, values[pos], target)
    return sorted(odd + [idx[int(pos[j])] for j in picks])
