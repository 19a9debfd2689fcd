"""Long series made drawable: LTTB downsampling that keeps the extremes, and EMA smoothing.

LTTB (largest triangle three buckets) keeps the shape, the first and last points and, as nbtrack
adds, the global minimum and maximum; the full history stays in MLflow. Smoothing is an
exponential moving average with TensorBoard's debiasing, applied to the points drawn (TensorBoard
also smooths the sample it draws, not the full history).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nbtrack.errors import UsageError
from nbtrack.lttb import lttb

__all__ = ["MAX_POINTS", "downsample", "ema", "lttb"]

MAX_POINTS = 2000  # per series on screen: more than a plot is wide in pixels, cheap for plotly


# -- downsampling and smoothing ----------------------------------------------------------------


def downsample(x: np.ndarray, y: np.ndarray, n: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    idx = lttb(x, y, n)
    return x[idx], y[idx]


def ema(y: Sequence[float] | np.ndarray, weight: float) -> np.ndarray:
    """Exponential moving average, debiased as TensorBoard does (the start is not pulled
    towards 0). ``weight`` in [0, 1): 0 leaves the values as they are."""
    if not 0 <= weight < 1:
        raise UsageError(f"smoothing must be in [0, 1), got {weight}", "try 0.6")
    values = np.asarray(y, dtype=np.float64)
    if weight == 0 or len(values) == 0:
        return values.copy()
    out = np.empty_like(values)
    acc, n = 0.0, 0
    for i, v in enumerate(values.tolist()):
        if math.isfinite(v):
            acc = acc * weight + (1 - weight) * v
            n += 1
        out[i] = acc / (1 - weight**n) if n else v
    return out
