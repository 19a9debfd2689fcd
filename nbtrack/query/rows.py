"""One run flattened to a table row (Record, from the store's RunView), and rows as a DataFrame.

The compare panel, nbtrack.runs and the local filter read runs through this one shape; the
columns a reader sees (INFO_COLUMNS, then params, metrics, tags) are named here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from nbtrack import record as _record
from nbtrack.record import TAG_RUN_NAME, RunView

INFO_COLUMNS = (
    "run_id",
    "name",
    "experiment",
    "status",
    "start_time",
    "duration",
    "user",
    "notebook",
    "git_commit",
    "data_hash",
    "note",
)


# -- one run, flattened ------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """What the table keeps of a run: its info, params, latest metrics and tags."""

    run_id: str
    experiment_id: str
    name: str
    status: str
    start_ms: int | None
    end_ms: int | None
    user: str
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def git_commit(self) -> str:
        """Short commit, ``*`` when the work tree was dirty: ``1a2b3c4*``."""
        commit = _record.commit_of(self.tags, self.params) or ""
        if not commit:
            return ""
        return commit[:7] + ("*" if self.tags.get(_record.TAG_GIT_DIRTY) == "true" else "")

    @property
    def data_hash(self) -> str:
        return (self.params.get("data_hash") or "")[:10]

    @property
    def note(self) -> str:
        """The first line of the run's description (mlflow.note.content)."""
        text = (self.tags.get(_record.TAG_NOTE) or "").strip()
        return text.splitlines()[0].lstrip("# ").strip() if text else ""

    @property
    def notebook(self) -> str:
        source = self.tags.get(_record.TAG_SOURCE_NAME) or ""
        return PurePath(source).name if source else ""


def record_of(run: RunView) -> Record:
    """A Record of a run the store returned."""
    info = data = run
    tags = dict(data.tags)
    return Record(
        run_id=info.run_id,
        experiment_id=info.experiment_id,
        name=info.name or tags.get(TAG_RUN_NAME) or info.run_id[:8],
        status=info.status,
        start_ms=info.start_time,
        end_ms=info.end_time,
        user=info.user_id or tags.get(_record.TAG_USER, ""),
        params=dict(data.params),
        metrics=dict(data.metrics),
        tags=tags,
    )


def frame_of(records: Sequence[Record], experiments: Mapping[str, str] | None = None):
    """The runs table: one row per run, INFO_COLUMNS then ``params.<key>`` (strings, as MLflow
    keeps them) and ``metrics.<key>`` (last value), each group sorted by key.

    ``experiments`` (id -> name) names the experiment column; without it the column is dropped.
    """
    import numpy as np
    import pandas as pd

    n = len(records)
    start = np.array([r.start_ms if r.start_ms is not None else np.nan for r in records], float)
    end = np.array([r.end_ms if r.end_ms is not None else np.nan for r in records], float)
    cols: dict[str, Any] = {
        "run_id": [r.run_id for r in records],
        "name": [r.name for r in records],
        "experiment": [(experiments or {}).get(r.experiment_id, r.experiment_id) for r in records],
        "status": [r.status for r in records],
        "start_time": pd.to_datetime(start, unit="ms", utc=True),
        "duration": (end - start) / 1000.0,  # seconds; NaN while running
        "user": [r.user for r in records],
        "notebook": [r.notebook for r in records],
        "git_commit": [r.git_commit for r in records],
        "data_hash": [r.data_hash for r in records],
        "note": [r.note for r in records],
    }
    if not experiments:
        del cols["experiment"]
    param_keys = sorted({k for r in records for k in r.params})
    metric_keys = sorted({k for r in records for k in r.metrics})
    for k in param_keys:
        cols[f"params.{k}"] = pd.array([r.params.get(k) for r in records], dtype=object)
    for k in metric_keys:
        cols[f"metrics.{k}"] = np.array([r.metrics.get(k, np.nan) for r in records], float)
    return pd.DataFrame(cols, index=pd.RangeIndex(n))
