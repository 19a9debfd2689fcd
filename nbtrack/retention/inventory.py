"""What an experiment's runs hold on disk: each run's artifact files and logged models, with
their sizes and kinds.

The kinds: ``snapshots`` (a run's own record under ``nbtrack/``: code, notebook, environment,
metric log; gc never deletes them), ``checkpoints`` (logged models ``nbtrack.checkpoint`` made,
and files that look like one: ``*.pt``, ``*.pth``, ``*.ckpt``, or "checkpoint" in the name),
``models`` (other logged models), ``other`` (every other file the run logged).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from nbtrack import record, store
from nbtrack.errors import NotFound
from nbtrack.record import ModelFilesView, RunView

KINDS = ("checkpoints", "models", "snapshots", "other")
DELETABLE = ("checkpoints", "models", "other")

_CHECKPOINT_FILE = re.compile(r"(checkpoint|ckpt)|\.(pt|pth|ckpt)$", re.IGNORECASE)
_SNAPSHOTS = record.SNAPSHOT_DIR + "/"


def file_kind(path: str) -> str:
    """The kind of a run's artifact file, from its path."""
    if path.startswith(_SNAPSHOTS):
        return "snapshots"
    return "checkpoints" if _CHECKPOINT_FILE.search(path.rsplit("/", 1)[-1]) else "other"


def model_kind(model: ModelFilesView) -> str:
    return "checkpoints" if record.TAG_CHECKPOINT_STEP in model.tags else "models"


@dataclass(frozen=True)
class ModelFiles:
    model: ModelFilesView
    kind: str
    bytes: int


@dataclass
class RunFiles:
    """One run: its artifact files (path, bytes, kind) and its live logged models."""

    run: RunView
    files: list[tuple[str, int, str]] = field(default_factory=list)
    models: list[ModelFiles] = field(default_factory=list)

    def by_kind(self) -> dict[str, int]:
        out = dict.fromkeys(KINDS, 0)
        for _, size, kind in self.files:
            out[kind] += size
        for m in self.models:
            out[m.kind] += m.bytes
        return out

    @property
    def total(self) -> int:
        return sum(self.by_kind().values())


def experiment_ids(experiment: str | None) -> list[str]:
    """The experiment's id (NotFound names it), or every active experiment's for None."""
    if experiment is None:
        return store.experiment_ids()
    try:
        return list(store.experiment_ids_by_name([experiment]).values())
    except NotFound:
        raise NotFound(
            "experiment", experiment, "check the name (nbtrack.runs() lists the experiments' runs)"
        ) from None


def runs_of(exp_ids: Sequence[str]) -> list[RunView]:
    """Every active run of the experiments, oldest first."""
    return store.search_all_runs(exp_ids) if exp_ids else []


def inventory(runs: Sequence[RunView], exp_ids: Sequence[str]) -> list[RunFiles]:
    """Each run's files and live logged models, with sizes."""
    by_run = {r.run_id: RunFiles(r) for r in runs}
    for rf in by_run.values():
        rf.files = [(p, s, file_kind(p)) for p, s in store.run_files(rf.run)]
    for m in store.models_of_experiments(exp_ids):
        rf = by_run.get(m.run_id)
        if rf is not None:
            size = sum(s for _, s in store.model_files(m))
            rf.models.append(ModelFiles(m, model_kind(m), size))
    return list(by_run.values())
