"""Largest-Triangle-Three-Buckets downsampling (Steinarsson 2013) that also keeps the extremes.

Pure numpy, at the bottom of the layers: the curves draw with it (query.sampling) and the thinned
copy of a run's metrics MLflow gets under NBTRACK_MLFLOW_METRICS=thin is chosen with it
(tracking.metrics.thinning); query and tracking may not import each other.
"""

from __future__ import annotations

import numpy as np


def lttb(x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` points of (x, y) that keep the curve's shape (Steinarsson's LTTB), always
    including the first and last points and the global minimum and maximum of ``y``.

    ``x`` must be sorted; ``y`` finite. Returns sorted indices; all of them when ``n >= len(x)``.
    """
    size = len(x)
    if n >= size:
        return np.arange(size)
    if n < 3:
        raise ValueError(f"lttb needs n >= 3 (first, last and one bucket), got {n}")
    x = np.asarray(x, dtype=np.float64)
    x = x - x[0]  # epoch milliseconds summed a million times would lose their last digits
    y = np.asarray(y, dtype=np.float64)
    buckets = n - 2
    # Bucket b covers [edges[b], edges[b+1]) of the inner points 1 .. size-2.
    edges = (np.arange(buckets + 1) * ((size - 2) / buckets)).astype(np.int64) + 1
    edges[-1] = size - 1
    # Mean of each bucket (and of the last point, after the last bucket), from cumulative sums.
    cx = np.concatenate(([0.0], np.cumsum(x)))
    cy = np.concatenate(([0.0], np.cumsum(y)))
    lo = np.append(edges[:-1], size - 1)
    hi = np.append(edges[1:], size)
    counts = hi - lo
    mean_x = (cx[hi] - cx[lo]) / counts
    mean_y = (cy[hi] - cy[lo]) / counts

    picks = np.empty(n, dtype=np.int64)
    picks[0], picks[-1] = 0, size - 1
    a = 0
    for b in range(buckets):
        start, end = edges[b], edges[b + 1]
        ax, ay = x[a], y[a]
        # Twice the area of the triangle (a, candidate, mean of the next bucket); the sign and
        # the factor do not change which candidate is largest.
        area = np.abs(
            (ax - mean_x[b + 1]) * (y[start:end] - ay) - (ax - x[start:end]) * (mean_y[b + 1] - ay)
        )
        a = start + int(np.argmax(area))
        picks[b + 1] = a
    return _force(picks, edges, y)


def _force(picks: np.ndarray, edges: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Put the global min and max of y into the picks, each replacing its bucket's pick (or a
    neighbour's, when both fall in one bucket), so that the drawn y range is the data's."""
    buckets = len(edges) - 1
    chosen = set(picks.tolist())
    required = {int(np.argmin(y)), int(np.argmax(y))}

    def bucket_of(i: int) -> int:  # -1 or `buckets` for the first and last points
        return int(np.searchsorted(edges, i, side="right")) - 1

    # Buckets whose pick is a required point already must keep it.
    taken = {bucket_of(i) for i in required if i in chosen}
    for idx in sorted(required - chosen):
        home = bucket_of(idx)
        free = [b for b in range(buckets) if b not in taken]
        if not free:  # n == 3 and both extremes inside: only one of them fits
            break
        b = min(free, key=lambda b: abs(b - home))
        picks[b + 1] = idx
        taken.add(b)
    return np.sort(picks)
