"""The run to reproduce, read back once: its record (RunView's params, metrics and tags) together
with the artifacts a re-run needs (cell, kernel history, notebook snapshot, data inputs,
requirements, environment, git diff), and what ran rebuilt from it (reproduction.build).

``Record`` is its own shape, not a RunView: it carries the downloaded artifact texts beside the
run's fields, read once and passed to every check.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nbtrack import record as R
from nbtrack import store
from nbtrack.errors import CannotReproduce, UsageError
from nbtrack.reproduction import build as reprobuild

RESULT_ENV = (
    "PYTHONHASHSEED",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "CUBLAS_WORKSPACE_CONFIG",
    "TF_DETERMINISTIC_OPS",
)


@dataclass
class Record:
    """What a run's record holds, read once."""

    run_id: str
    name: str
    experiment_id: str
    experiment: str
    kind: str  # "NOTEBOOK" or "LOCAL"
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    seconds: float | None
    start_ms: int = 0
    origin: str | None = None  # mlflow.source.name: the notebook or script
    cell: str | None = None
    history: list[str] | None = None
    snapshot: str | None = None
    inputs: list[dict] = field(default_factory=list)
    requirements: str | None = None
    environment: dict | None = None
    git_diff: str | None = None

    @property
    def seed(self) -> int | None:
        seed = self.params.get("random_seed", "")
        return int(seed) if seed.lstrip("-").isdigit() else None


def read_artifact(folder: Path | None, rel: str) -> str | None:
    if folder is None:
        return None
    path = folder / rel
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def load_record(run_id: str, folder: Path) -> Record:
    run = store.get_run(run_id)  # NotFound for an unknown id
    info = data = run
    tags = dict(data.tags)
    if info.status == "RUNNING":
        raise CannotReproduce(run_id, "it is still RUNNING; reproduce it once it has finished")
    if R.TAG_CELL_SHA256 not in tags:
        raise CannotReproduce(
            run_id,
            "it was not tracked by nbtrack (%%track or nbtrack.run), so its record holds no "
            "code to run again",
        )
    kind = tags.get(R.TAG_SOURCE_TYPE, "NOTEBOOK")
    origin = tags.get(R.TAG_SOURCE_NAME)
    # Without a notebook path MLflow names the process's script (ipykernel_launcher.py).
    if origin and not origin.endswith(".py" if kind == "LOCAL" else ".ipynb"):
        origin = None
    local = store.download_artifacts(run_id, "nbtrack", folder)
    root = local.parent if local is not None else None
    params = dict(data.params)
    for key, value in params.items():  # values over MLflow's limit live in an artifact
        if value.startswith("artifact:nbtrack/"):
            params[key] = read_artifact(root, value[len("artifact:") :]) or value
    history = read_artifact(root, R.ARTIFACT_HISTORY)
    environment = read_artifact(root, R.ARTIFACT_ENVIRONMENT)
    inputs = read_artifact(root, R.ARTIFACT_DATA)
    ended = info.end_time or 0
    return Record(
        run_id=run_id,
        name=info.name or run_id[:8],
        experiment_id=info.experiment_id,
        experiment=store.experiment_name(info.experiment_id),
        kind=kind,
        params=params,
        metrics=dict(data.metrics),
        tags=tags,
        seconds=(ended - info.start_time) / 1000 if ended and info.start_time else None,
        start_ms=info.start_time or 0,
        origin=origin,
        cell=read_artifact(root, R.ARTIFACT_CELL),
        history=reprobuild.parse_history(history) if history is not None else None,
        snapshot=read_artifact(root, R.ARTIFACT_NOTEBOOK),
        inputs=_inputs(json.loads(inputs) if inputs else [], tags, folder),
        requirements=read_artifact(root, R.ARTIFACT_REQUIREMENTS),
        environment=json.loads(environment) if environment else None,
        git_diff=read_artifact(root, R.ARTIFACT_GIT_DIFF),
    )


def _inputs(inputs: list[dict], tags: dict[str, str], folder: Path) -> list[dict]:
    """A re-run read copies of its inputs in a scratch folder that is gone now: a data input
    whose path is gone is the original run's input of the same name and digest, if it has one."""
    original = tags.get(R.TAG_REPRO_OF)
    if not original or all(os.path.exists(i.get("path", "")) for i in inputs):
        return inputs
    local = store.download_artifacts(original, R.ARTIFACT_DATA, folder / "original")
    text = read_artifact(local.parent, local.name) if local is not None else None
    theirs = {(i["given"], i["digest"]): i for i in (json.loads(text) if text else [])}
    return [
        i if os.path.exists(i.get("path", "")) else theirs.get((i["given"], i["digest"]), i)
        for i in inputs
    ]


def rebuild(rec: Record) -> reprobuild.Rebuilt:
    """What runs again: the notebook snapshot, else the kernel history; or the script."""
    if rec.kind == "LOCAL":
        if not rec.cell or not (rec.origin or "").endswith(".py"):
            raise CannotReproduce(
                rec.run_id,
                "it ran from a script whose source was not recorded (python -c, an "
                "interactive interpreter), so there is nothing to run again",
            )
        return reprobuild.from_script(rec.cell, rec.origin or "script.py")
    if rec.cell is None:
        raise CannotReproduce(rec.run_id, "its record has no nbtrack/cell.py")
    determinism = (rec.environment or {}).get("torch_determinism")
    history = rec.history or []
    if rec.snapshot is not None:
        sha = rec.tags[R.TAG_CELL_SHA256]
        rebuilt = reprobuild.from_snapshot(
            rec.snapshot, rec.cell, sha, rec.params, history, determinism
        )
        if rebuilt is not None:
            rebuilt.name = Path(rec.origin).name if rec.origin else rebuilt.name
            return rebuilt
    if rec.history is None:
        raise CannotReproduce(
            rec.run_id,
            "its record holds neither a notebook with the cell nor the kernel's history",
        )
    rebuilt = reprobuild.from_history(history, rec.cell, determinism)
    if rec.origin:
        rebuilt.name = Path(rec.origin).name
    if rec.snapshot is not None:
        rebuilt.notes.append(
            "the saved notebook did not hold the cell as it ran (edited or not saved since): "
            "rebuilt from the kernel history instead"
        )
    return rebuilt


def metric_keys(rec: Record, metrics: Sequence[str] | str | None) -> list[str]:
    if metrics is None:
        # MLflow's system metrics (system/cpu_utilization_percentage...) measure the machine.
        return sorted(k for k in rec.metrics if not k.startswith("system/"))
    keys = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [k for k in keys if k not in rec.metrics]
    if unknown:
        have = ", ".join(sorted(rec.metrics)) or "none"
        raise UsageError(f"run {rec.run_id} has no metric {unknown[0]!r}", f"its metrics: {have}")
    return keys
