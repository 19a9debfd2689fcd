"""What checkpoints ask of MLflow: a LoggedModel made for a run (MLflow 3's ``models:/m-<id>``),
its files written with a flavour's ``save_model`` (or any folder), metrics linked to it, its
status set READY at the end (or FAILED), its files downloaded back."""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Mapping
from pathlib import Path

from nbtrack import redacted
from nbtrack.redacted import Redacted
from nbtrack.store.connection import client, translated

# pip requirements a checkpoint's MLmodel names: MLflow infers them otherwise (seconds per save).
_REQUIREMENTS = {"pytorch": ["torch"], "sklearn": ["scikit-learn"]}
# MLflow 3's pytorch default (pt2) traces the model and needs an input example; a checkpoint is
# the module as it is (pickled, the classes defined in a notebook by value).
_OPTIONS = {"pytorch": {"serialization_format": "pickle"}}


def create_model(
    experiment_id: str, name: Redacted, run_id: str, tags: Mapping[str, Redacted], model_type: str
) -> tuple[str, str]:
    """A new LoggedModel of ``run_id`` (status PENDING until ``finalize_model``); returns its id
    and artifact location."""
    redacted.require(name, "the logged model's name")
    redacted.require_all(tags.values(), "logged model tag")
    with translated("create a checkpoint's logged model"):
        m = client().create_logged_model(
            experiment_id, name=name, source_run_id=run_id, tags=dict(tags), model_type=model_type
        )
    return m.model_id, m.artifact_location


def save_flavour(flavor: str, obj: object, path: str | os.PathLike) -> None:
    """``mlflow.<flavor>.save_model(obj, path)`` into a local folder that must not exist."""
    module = importlib.import_module(f"mlflow.{flavor}")
    with translated(f"save a {flavor} checkpoint"):
        module.save_model(
            obj, str(path), pip_requirements=_REQUIREMENTS.get(flavor), **_OPTIONS.get(flavor, {})
        )


def upload_model_files(model_id: str, folder: str | os.PathLike) -> None:
    with translated(f"write the files of checkpoint {model_id}"):
        client().log_model_artifacts(model_id, str(folder))


def link_metrics(run_id: str, model_id: str, metrics: Mapping[str, float], step: int) -> None:
    """Log ``metrics`` at ``step`` to the run, linked to the model (MLflow's model metrics)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, int(step), model_id=model_id) for k, v in metrics.items()]
    if items:
        with translated(f"log the metrics of checkpoint {model_id}"):
            client().log_batch(run_id, metrics=items)


def finalize_model(model_id: str, ok: bool) -> None:
    with translated(f"finish checkpoint {model_id}"):
        client().finalize_logged_model(model_id, "READY" if ok else "FAILED")


def download_model(artifact_location: str, dst: str | os.PathLike) -> Path:
    """A logged model's files into ``dst``; the local folder."""
    from mlflow.artifacts import download_artifacts

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with translated("download a checkpoint"):
        return Path(download_artifacts(artifact_uri=artifact_location, dst_path=str(dst)))
