"""Experiments and runs: create, log to, end, read one back."""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import mlflow
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from nbtrack import record, redacted
from nbtrack.errors import NotFound, UsageError
from nbtrack.record import RunView
from nbtrack.redacted import Redacted
from nbtrack.store import user_runs
from nbtrack.store.connection import (
    MAX_DATASET_DIGEST,
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_TAGS_PER_BATCH,
    client,
    tracking_uri,
    translated,
)
from nbtrack.store.views import run_view

_experiments: dict[tuple[str, str], str] = {}


def experiment_id(name: str) -> str:
    """The id of experiment ``name``, created if missing (two kernels may race to create it)."""
    uri = tracking_uri()
    key = (uri, name)
    if key in _experiments:
        return _experiments[key]
    c = client(uri)
    with translated(f"open experiment {name!r}"):
        exp = c.get_experiment_by_name(name)
        if exp is None:
            try:
                exp_id = c.create_experiment(name, artifact_location=_artifact_location(uri, name))
            except MlflowException as e:
                if getattr(e, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                    raise
                exp = c.get_experiment_by_name(name)
                exp_id = exp.experiment_id
        elif exp.lifecycle_stage == "deleted":
            raise UsageError(
                f"experiment {name!r} is deleted",
                "restore it (mlflow experiments restore) or choose another --experiment",
            )
        else:
            exp_id = exp.experiment_id
    _experiments[key] = exp_id
    return exp_id


def _artifact_location(uri: str, name: str) -> str | None:
    # With a SQLite store MLflow puts artifacts under the working directory of the process that
    # first opened the store; nbtrack keeps them beside the database instead, so that a notebook
    # that changed directory still writes to one place. Servers choose their own location.
    if not uri.startswith("sqlite:///"):
        return None
    db = uri[len("sqlite:///") :].partition("?")[0]
    if db == ":memory:":
        return None
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:60] or "experiment"
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return (Path(db).parent / "mlruns" / f"{slug}-{digest}").as_uri()


def experiment_name(exp_id: str) -> str:
    with translated("read experiment"):
        return client().get_experiment(exp_id).name


def active_run_id() -> str | None:
    run = mlflow.active_run()
    return run.info.run_id if run else None


def start_run(
    experiment_id: str,
    name: str | None,
    tags: Mapping[str, str],
    parent_run_id: str | None = None,
) -> tuple[str, str]:
    """Create the run and make it MLflow's active run, so plain ``mlflow.log_*`` calls land in it.

    Returns (run id, run name).
    """
    redacted.require(name, "the run's name")
    redacted.require_all(tags, "tag")
    nested = parent_run_id is not None and active_run_id() == parent_run_id
    with translated("start a run"):
        active = user_runs.original_start_run(
            experiment_id=experiment_id,
            run_name=name,
            tags=dict(tags),
            nested=nested,
            parent_run_id=None if nested else parent_run_id,
        )
    user_runs.opened(active.info.run_id, experiment_id)
    return active.info.run_id, active.info.run_name


def log_params_tags(
    run_id: str, params: Mapping[Redacted, Redacted] = (), tags: Mapping[Redacted, Redacted] = ()
) -> None:
    redacted.require_all(dict(params), "param")
    redacted.require_all(dict(tags), "tag")
    items = [Param(k, v) for k, v in dict(params).items()]
    items += [RunTag(k, v) for k, v in dict(tags).items()]
    c = client()
    with translated("log params"):
        for i in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
            chunk = items[i : i + MAX_PARAMS_TAGS_PER_BATCH]
            c.log_batch(
                run_id,
                params=[p for p in chunk if isinstance(p, Param)],
                tags=[t for t in chunk if isinstance(t, RunTag)],
            )


def log_files(run_id: str, files: Mapping[Redacted, Redacted]) -> None:
    """Log several small files (relative artifact path -> content) in one artifact upload."""
    if not files:
        return
    redacted.require_all(files, "artifact file")
    with tempfile.TemporaryDirectory(prefix="nbtrack-") as tmp:
        for rel, content in files.items():
            path = Path(tmp, rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
        with translated("log the run's snapshot files"):
            client().log_artifacts(run_id, tmp)


def log_datasets(run_id: str, inputs: Sequence[Mapping[str, object]]) -> None:
    """Record data inputs as MLflow datasets (name, digest, source), context "training".

    Each mapping holds ``name``, ``digest`` (full sha256), ``source`` (a path or URI) and any
    extra fields, which go to the dataset's profile.
    """
    if not inputs:
        return
    datasets = []
    for item in inputs:
        profile = {k: v for k, v in item.items() if k not in ("name", "source")}
        ds = Dataset(
            name=str(item["name"]),
            digest=str(item["digest"])[:MAX_DATASET_DIGEST],
            source_type="local",
            source=json.dumps({"uri": Path(str(item["source"])).as_uri()}),
            profile=json.dumps(profile, sort_keys=True),
        )
        datasets.append(DatasetInput(ds, tags=[InputTag("mlflow.data.context", "training")]))
    with translated("log data inputs"):
        client().log_inputs(run_id, datasets=datasets)


def log_metric_points(
    run_id: str, points: Sequence[tuple[str, float, int, int]], uri: str | None = None
) -> None:
    """Persist (key, value, timestamp ms, step) points, in MLflow-sized batches.

    Returns only once the store has them: ``synchronous=True`` because MLFLOW_ENABLE_ASYNC_LOGGING
    would otherwise make ``log_batch`` return before anything is written, and the metric writer
    acknowledges (and forgets) points when this returns.
    """
    c = client(uri or None)
    metrics = [Metric(k, v, ts, step) for k, v, ts, step in points]
    with translated("log metrics", uri or None):
        for i in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            c.log_batch(run_id, metrics=metrics[i : i + MAX_METRICS_PER_BATCH], synchronous=True)


def end_run(run_id: str, status: str, defer: bool = False) -> None:
    """Give the run its terminal status; runs the user left open inside it end with it.

    ``defer``: the run stays RUNNING (its metrics are still on their way; the metric log's
    sender ends it with ``status`` once MLflow holds them): it only stops being this process's
    active run. MLflow's public way to pop it is ``end_run`` itself, with status RUNNING.
    """
    user_runs.closed(run_id)
    # Not failed fast when the store is known down: MLflow's fluent end_run takes the run off
    # this process's active-run stack only on its way to the request, and a run left on it
    # would refuse every later tracked cell ("is still active"). So a run's end waits one
    # timeout at most, even during an outage.
    with translated("end the run", fail_fast=False):
        while (active := mlflow.active_run()) is not None:
            current = active.info.run_id
            user_runs.original_end_run("RUNNING" if defer and current == run_id else status)
            if current == run_id:
                return
        if not defer:
            client().set_terminated(run_id, status)


def get_run(run_id: str) -> RunView:
    """The run ``run_id``; NotFound when the store has no such run."""
    with translated("read run"):
        try:
            return run_view(client().get_run(run_id))
        except MlflowException as e:
            if getattr(e, "error_code", "") in (
                "RESOURCE_DOES_NOT_EXIST",
                "INVALID_PARAMETER_VALUE",
            ):
                raise NotFound("run", run_id) from e
            raise


def mark_killed(run_id: str, reason: Redacted) -> None:
    redacted.require(reason, "the reason a run was killed")
    c = client()
    with translated("close an orphaned run"):
        c.set_tag(run_id, record.TAG_KILLED_REASON, reason)
        c.set_terminated(run_id, "KILLED")


def create_run(experiment_id: str, name: Redacted, tags: Mapping[Redacted, Redacted]) -> str:
    """A run that is not MLflow's active run of this process (the caller may be inside one)."""
    redacted.require(name, "the run's name")
    redacted.require_all(tags, "tag")
    with translated("create a run"):
        return client().create_run(experiment_id, run_name=name, tags=dict(tags)).info.run_id


def terminate_run(run_id: str, status: str) -> None:
    with translated("end the run"):
        client().set_terminated(run_id, status)


def reopen_run(run_id: str) -> None:
    """Set a finished run RUNNING again (a grid's parent, while it is resumed)."""
    with translated("reopen the run"):
        client().update_run(run_id, status="RUNNING")


def log_metrics_now(run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    """A few metrics at once, timestamped now."""
    import time

    now = int(time.time() * 1000)
    log_metric_points(run_id, [(k, float(v), now, step) for k, v in metrics.items()])


def metric_history(run_id: str, key: str):
    """Every point of metric ``key`` of a run, as numpy arrays (steps, timestamps ms, values),
    in MLflow's order (timestamp, step, value).

    MlflowClient.get_metric_history is MLflow's only public way to read a history: it returns
    every point (in pages of 25,000 for a SQL store). MLflow's sampled history
    (``get_metric_history_bulk_interval``, what the MLflow UI charts use) is a store method and an
    ``ajax-api`` route of the server, not part of the client API, and it samples evenly, which
    would lose spikes; nbtrack reads everything and downsamples for display itself.
    """
    import numpy as np

    with translated(f"read the history of metric {key!r}"):
        history = client().get_metric_history(run_id, key)
    n = len(history)
    steps = np.fromiter((m.step for m in history), dtype=np.int64, count=n)
    stamps = np.fromiter((m.timestamp for m in history), dtype=np.int64, count=n)
    values = np.fromiter((m.value for m in history), dtype=np.float64, count=n)
    return steps, stamps, values
