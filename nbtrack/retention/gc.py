"""``nbtrack.gc``: what would go and why the rest stays (dry run), then deleting it (``apply``).

A collected run keeps its params, metrics, tags and its ``nbtrack/`` snapshot, so it stays in
``nbtrack.runs`` and can be reproduced; what goes is its other artifacts (checkpoint files, the
files the user logged) and its logged models that no version is registered from, each kind
narrowed by ``kinds``. ``delete_runs`` also puts the run in MLflow's deleted stage (MLflow's own
``mlflow gc`` removes such runs for good).

Applying re-checks each run right before deleting anything of it (still not running, not tagged
``nbtrack.keep``, no version registered from it meanwhile), deletes a logged model's record
before its files (no listing shows a model that cannot load), tags the run ``nbtrack.gc``, and
writes one record of the whole gc on the experiment (``gc_log``). Deleted files are gone from the
listing, so a second gc finds nothing to free.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from nbtrack import record, store
from nbtrack.capture.redaction import nbtrack_text
from nbtrack.errors import UsageError
from nbtrack.model_registry import names
from nbtrack.retention import policy as policies
from nbtrack.retention.inventory import (
    ModelFiles,
    RunFiles,
    experiment_ids,
    inventory,
    runs_of,
)

_log = logging.getLogger(__name__)

COLUMNS = ["run_id", "name", "status", "action", "bytes", "files", "models", "kept_why"]
LOG_COLUMNS = [
    "when",
    "who",
    "policy",
    "runs_touched",
    "bytes_freed",
    "files_deleted",
    "models_deleted",
    "runs_deleted",
    "run_ids",
]
# MLflow's experiment tag value limit is 20,000 characters; the run ids listed stop before.
_MAX_LOG_TEXT = 19_000


@dataclass
class RunPlan:
    """One run's fate: kept (and why), or the files and models gc deletes of it."""

    files: RunFiles
    kept_why: list[str]
    delete_files: list[tuple[str, int, str]] = field(default_factory=list)
    delete_models: list[ModelFiles] = field(default_factory=list)
    delete_run: bool = False  # --delete-runs: soft-deleted even with no files to free

    @property
    def bytes(self) -> int:
        return sum(s for _, s, _ in self.delete_files) + sum(m.bytes for m in self.delete_models)

    @property
    def collected(self) -> bool:
        return not self.kept_why and bool(
            self.delete_files or self.delete_models or self.delete_run
        )


@dataclass
class GcResult:
    """A gc's plan (dry run) or outcome (applied): ``frame`` has one row per run, largest
    first; ``bytes`` is what it would free (dry run) or freed (applied)."""

    experiment: str
    policy: policies.Policy
    plans: list[RunPlan]
    applied: bool = False
    bytes_freed: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # run_id -> why, found when applying

    @property
    def bytes(self) -> int:
        if self.applied:
            return self.bytes_freed
        return sum(p.bytes for p in self.plans if p.collected)

    @property
    def frame(self):
        import pandas as pd

        rows = []
        for p in self.plans:
            run = p.files.run
            why = p.kept_why or ([self.skipped[run.run_id]] if run.run_id in self.skipped else [])
            rows.append(
                {
                    "run_id": run.run_id,
                    "name": run.name,
                    "status": run.status,
                    "action": "keep" if why else ("collect" if p.collected else "nothing"),
                    "bytes": p.bytes if not why else 0,
                    "files": len(p.delete_files) if not why else 0,
                    "models": len(p.delete_models) if not why else 0,
                    "kept_why": ", ".join(why),
                }
            )
        frame = pd.DataFrame(rows, columns=COLUMNS)
        return frame.sort_values(["bytes", "action"], ascending=[False, True], kind="stable")

    def __str__(self) -> str:
        collected = sum(
            1 for p in self.plans if p.collected and p.files.run.run_id not in self.skipped
        )
        kept = sum(1 for p in self.plans if p.kept_why)
        verb = "freed" if self.applied else "would free"
        return (
            f"gc of {self.experiment!r} ({'applied' if self.applied else 'dry run'}): {verb} "
            f"{human(self.bytes)} from {collected} runs; kept {kept} runs"
        )

    def _repr_html_(self) -> str:
        from nbtrack.html_text import escape

        return f"<p>{escape(str(self))}</p>" + self.frame.to_html(index=False)


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def plan(experiment: str | None, policy: policies.Policy, label: str | None = None) -> GcResult:
    """The dry run: every run of the experiment, kept with its reasons or what would go."""
    store.configure()
    exp_ids = experiment_ids(experiment)
    runs = runs_of(exp_ids)
    policies.check_metric(policy, runs, experiment or "any experiment")
    protected = policies.protections([r.run_id for r in runs])
    registered_models = {v.model_id for v in store.all_versions()} - {None}
    keep = policies.decide(runs, protected, policy)
    plans = []
    for rf in inventory(runs, exp_ids):
        p = RunPlan(rf, keep[rf.run.run_id])
        if not p.kept_why:
            p.delete_run = policy.delete_runs
            p.delete_files = [f for f in rf.files if f[2] in policy.kinds]
            p.delete_models = [
                m
                for m in rf.models
                if m.kind in policy.kinds and m.model.model_id not in registered_models
            ]
        plans.append(p)
    return GcResult(label or experiment or "all experiments", policy, plans)


def gc(
    experiment: str,
    policy: policies.Policy,
    apply: bool = False,
    force: bool = False,
) -> GcResult:
    result = plan(experiment, policy)
    if not apply:
        return result
    collect = [p for p in result.plans if p.collected]
    kept_by_policy = any(any(not _never(w) for w in p.kept_why) for p in result.plans if p.kept_why)
    if collect and not kept_by_policy and not force:
        raise UsageError(
            f"this policy keeps no run of {experiment!r} (only the ones nothing may delete): "
            f"it would delete the artifacts of all {len(collect)} other runs",
            "give --keep-top/--keep-last/--older-than, or --force to delete them all",
        )
    return _apply(result, collect)


def _never(why: str) -> bool:
    """Whether a reason is a never-delete rule rather than the user's policy."""
    return why.startswith(("registered:", "alias ", "held alias ", "tag ", "running", "reprod"))


def _apply(result: GcResult, collect: Sequence[RunPlan]) -> GcResult:
    counts: dict[str, int] = defaultdict(int)
    touched = []
    for p in collect:
        run = p.files.run
        why = _still_collectable(run.run_id)
        if why:
            result.skipped[run.run_id] = why
            continue
        freed = _delete_files(p) + _delete_models(p)
        result.bytes_freed += freed
        counts["files"] += len(p.delete_files)
        counts["models"] += len(p.delete_models)
        touched.append(run.run_id)
        stamp = {
            "when": _now(),
            "kinds": list(result.policy.kinds),
            "files": len(p.delete_files),
            "models": len(p.delete_models),
            "bytes": freed,
        }
        store.log_params_tags(
            run.run_id, tags={nbtrack_text(record.TAG_GC): nbtrack_text(json.dumps(stamp))}
        )
        if result.policy.delete_runs:
            store.soft_delete_run(run.run_id)
            counts["runs"] += 1
    result.applied = True
    _write_log(result, touched, counts)
    return result


def _still_collectable(run_id: str) -> str | None:
    """Why a run may not be collected after all: it started again, was tagged keep, or a
    version was registered from it while gc ran (asked right before its deletion)."""
    fresh = store.get_run(run_id)
    guard = policies.run_guard(fresh)
    if guard:
        return guard
    versions = store.versions_of_runs([run_id])
    if versions:
        v = versions[0]
        return f"registered: {v.name} v{v.version}"
    return None


def _delete_files(p: RunPlan) -> int:
    """Delete the run's files, a whole top-level folder in one call when all of it goes."""
    run = p.files.run
    going = {path for path, _, _ in p.delete_files}
    tops: dict[str, list[str]] = defaultdict(list)
    for path, _, _ in p.files.files:
        tops[path.split("/", 1)[0]].append(path)
    for top, paths in tops.items():
        if "/" in paths[0] and all(x in going for x in paths):
            store.delete_run_file(run, top)
        else:
            for path in paths:
                if path in going:
                    store.delete_run_file(run, path)
    return sum(size for _, size, _ in p.delete_files)


def _delete_models(p: RunPlan) -> int:
    for m in p.delete_models:
        store.delete_model(m.model)
    return sum(m.bytes for m in p.delete_models)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _write_log(result: GcResult, touched: list[str], counts: dict[str, int]) -> None:
    entry = {
        "when": _now(),
        "who": names.who(),
        "policy": result.policy.to_dict(),
        "runs_touched": len(touched),
        "bytes_freed": result.bytes_freed,
        "files_deleted": counts["files"],
        "models_deleted": counts["models"],
        "runs_deleted": counts["runs"],
        "run_ids": touched,
    }
    text = json.dumps(entry, sort_keys=True)
    while len(text) > _MAX_LOG_TEXT and entry["run_ids"]:
        entry["run_ids"] = entry["run_ids"][: len(entry["run_ids"]) // 2]
        entry["run_ids_cut"] = True  # the rest carry the nbtrack.gc tag
        text = json.dumps(entry, sort_keys=True)
    key = f"{record.TAG_GC_LOG_PREFIX}{time.time_ns():020d}.{uuid.uuid4().hex[:8]}"
    exp_id = experiment_ids(result.experiment)[0]
    store.set_experiment_tag(exp_id, key, nbtrack_text(text))


def gc_log(experiment: str):
    """The applied gcs of ``experiment`` as a DataFrame, oldest first."""
    import pandas as pd

    store.configure()
    exp_id = experiment_ids(experiment)[0]
    rows = []
    for key, value in sorted(store.experiment_tags(exp_id).items()):
        if not key.startswith(record.TAG_GC_LOG_PREFIX):
            continue
        try:
            entry = json.loads(value)
        except ValueError:
            _log.debug("unreadable gc log record %s", key)
            continue
        rows.append({c: entry.get(c) for c in LOG_COLUMNS})
    frame = pd.DataFrame(rows, columns=LOG_COLUMNS)
    frame["when"] = pd.to_datetime(frame["when"], utc=True, errors="coerce")
    return frame
