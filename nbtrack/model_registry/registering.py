"""Registering a run's logged model as a new version, with the run's record as its tags."""

from __future__ import annotations

import os

from nbtrack import record, store
from nbtrack.errors import (
    NoModelLogged,
    UsageError,
)
from nbtrack.model_registry.audit import append_record
from nbtrack.model_registry.names import (
    MAX_METRIC_TAGS,
    _clean,
    _now,
    _who,
    cleared,
    version_of,
)
from nbtrack.model_registry.versions import VersionInfo, _experiment_name, _info
from nbtrack.query.compare import format_value
from nbtrack.record import RunView
from nbtrack.redacted import Redacted

# -- registering ---------------------------------------------------------------------------------


def register(run_id: str, name: str, model_path: str | None = None) -> VersionInfo:
    """Register the model run ``run_id`` logged as a new version of model ``name`` (created if
    needed). ``model_path``: which logged model, by the name given to ``log_model`` (or its
    ``models:/m-...`` URI); default: the one the run logged last.

    The version carries tags run_id, the run's final metrics, data_hash, git_commit, notebook,
    and a description from the run."""
    store.configure()
    if not name or not str(name).strip():
        raise UsageError("a registered model needs a name", "pass name='digits-classifier'")
    run = store.get_run(run_id)
    source, model_id = _logged_model(run, name, model_path)
    experiment = _experiment_name(run)
    who, when = _who(), _now()
    tags = version_tags(run, experiment)
    tags.update({record.TAG_REGISTERED_BY: who, record.TAG_REGISTERED_AT: when})
    store.create_registered_model(name)
    mv = store.create_model_version(
        name,
        source=source,
        run_id=run_id,
        tags=cleared(tags),
        description=_description(run, experiment),
        model_id=model_id,
    )
    number = version_of(mv.version)
    append_record(
        name,
        action="register",
        stage=None,
        previous=None,
        number=number,
        who=who,
        when=when,
        reason="",
    )
    return _info(mv, {}, run)


def _logged_model(run, name: str, model_path: str | None) -> tuple[str, str | None]:
    """(source URI, LoggedModel id) of the model to register. In MLflow 3 ``log_model`` stores a
    LoggedModel (``models:/m-<id>``) outside the run's artifacts: ``runs:/<id>/model`` would
    not find it."""
    run_id = run.run_id
    if model_path and model_path.startswith("models:/m-"):
        return model_path, model_path[len("models:/") :]
    logged = [
        m
        for m in store.logged_models_of_run(run)
        if str(getattr(m, "status", "")).upper().rsplit(".", 1)[-1] != "FAILED"
    ]
    if model_path:
        logged = [m for m in logged if model_path in (m.name, m.model_id)]
    if not logged:
        raise NoModelLogged(run_id, name, model_path or "")
    chosen = logged[-1]
    return chosen.model_uri, chosen.model_id


def version_tags(run: RunView, experiment: str | None) -> dict[str, str]:
    """The tags a version registered from ``run`` carries (the contract in the README)."""
    tags: dict[str, str] = {}
    for key in sorted(run.metrics)[:MAX_METRIC_TAGS]:
        tags[key] = repr(float(run.metrics[key]))
    tags[record.VERSION_TAG_RUN_ID] = run.run_id
    for key, value in (
        (record.VERSION_TAG_DATA_HASH, run.data_hash),
        (record.VERSION_TAG_GIT_COMMIT, run.commit),  # record.commit_of: the tag, then the param
        (record.VERSION_TAG_NOTEBOOK, run.notebook),
    ):
        if value:
            tags[key] = _clean(value)  # a run logged by other tools was not redacted by nbtrack
    if experiment:
        tags[record.TAG_EXPERIMENT] = experiment
    return tags


def _description(run, experiment: str | None) -> Redacted:
    note = run.tags.get(record.TAG_NOTE)
    if note:
        return _clean(note, 5000)
    parts = [f"From run {run.name or run.run_id} ({run.run_id})"]
    if experiment:
        parts.append(f"of experiment {experiment}")
    notebook = run.notebook
    if notebook:
        parts.append(f"in {os.path.basename(notebook)}")
    text = " ".join(parts)
    shown = sorted(run.metrics.items())[:4]
    if shown:
        text += ": " + ", ".join(f"{k}={format_value(v)}" for k, v in shown)
    return _clean(text + ".", 5000)
