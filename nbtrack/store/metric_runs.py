"""What the metric log's sender asks of a store: points in, the run's artifact, its end.

Each call names its store (``uri``): a run's log outlives the process that wrote it, and is
caught up by another process whose own tracking URI may differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from nbtrack import record
from nbtrack.errors import StoreError
from nbtrack.store.connection import (
    MAX_METRICS_PER_BATCH,
    TERMINAL,
    client,
    safe_uri,
    translated,
)

# MLflow's answers that no retry will change: the run was deleted (or its experiment was), or
# never existed in this store.
_GONE = ("RESOURCE_DOES_NOT_EXIST", "INVALID_STATE")


class RunGone(StoreError):
    """The store will never take this run's points: the run is deleted or unknown there."""


def send_points(uri: str, run_id: str, points: Sequence[tuple[str, float, int, int]]) -> None:
    """Persist (key, value, timestamp ms, step) points in MLflow-sized batches; returns once
    the store has them (``synchronous``: MLFLOW_ENABLE_ASYNC_LOGGING must not make it return
    early). Raises RunGone when the store refuses the run for good, StoreError otherwise."""
    c = client(uri)
    metrics = [Metric(k, v, ts, step) for k, v, ts, step in points]
    try:
        for i in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            c.log_batch(run_id, metrics=metrics[i : i + MAX_METRICS_PER_BATCH], synchronous=True)
    except MlflowException as e:
        if _gone(e):
            gone = f"run {run_id} is deleted or unknown"
            raise RunGone("log metrics", gone, safe_uri(uri)) from e
        raise StoreError("log metrics", _reason(e), safe_uri(uri)) from e
    except OSError as e:
        raise StoreError("log metrics", str(e) or type(e).__name__, safe_uri(uri)) from e


def _gone(e: MlflowException) -> bool:
    # A deleted run answers INVALID_PARAMETER_VALUE "must be in the 'active' state".
    return getattr(e, "error_code", "") in _GONE or "must be in the 'active' state" in str(e)


def _reason(e: Exception) -> str:
    """MLflow's error in a few words: its first line, and for a failed HTTP request the
    cause urllib3 gives (connection refused, read timed out) rather than the whole URL."""
    text = str(getattr(e, "message", "") or e).strip()
    for cause in ("Connection refused", "Read timed out", "timed out", "Name or service not known"):
        if cause in text:
            return cause.lower()
    return (text.splitlines()[0] if text else type(e).__name__)[:200]


def store_log(uri: str, run_id: str, path: Path, artifact: str) -> None:
    """Store the local file ``path`` as the run's artifact ``artifact``."""
    folder, _, _ = artifact.rpartition("/")
    with translated("store the metric log", uri):
        client(uri).log_artifact(run_id, str(path), folder or None)


def run_status(uri: str, run_id: str) -> str | None:
    """The run's status in its store; None when the store has no such (live) run."""
    try:
        run = client(uri).get_run(run_id)
    except MlflowException as e:
        if _gone(e) or getattr(e, "error_code", "") == "INVALID_PARAMETER_VALUE":
            return None
        with translated("read run", uri):
            raise
    if run.info.lifecycle_stage == "deleted":
        return None
    return run.info.status


def close_run(
    uri: str, run_id: str, status: str, end_time: int | None, reason: str | None = None
) -> None:
    """End the run with ``status`` at ``end_time`` (ms; the cell's real end, not now)."""
    assert status in TERMINAL
    c = client(uri)
    with translated("end the run", uri):
        if reason:
            c.set_tag(run_id, record.TAG_KILLED_REASON, reason)
        c.set_terminated(run_id, status, end_time=end_time)
