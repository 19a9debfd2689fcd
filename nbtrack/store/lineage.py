"""What lineage asks of MLflow: an inference run's input as a dataset, its prediction files, the
versions registered from a run, runs searched across every experiment, a half-made run removed."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from mlflow.entities import Dataset, DatasetInput, InputTag

from nbtrack import record, redacted
from nbtrack.record import RunView, VersionView
from nbtrack.redacted import Redacted
from nbtrack.store.connection import MAX_DATASET_DIGEST, client, translated
from nbtrack.store.registry import _quoted, search_versions
from nbtrack.store.search import search_all_runs

# MLflow's own key for a dataset input's context ("training", "inference"...).
_CONTEXT_TAG = "mlflow.data.context"


def log_dataset_input(
    run_id: str,
    *,
    name: Redacted,
    digest: str,
    source: Redacted,
    context: str,
    profile: Mapping[str, object],
) -> None:
    """Record one in-memory input (an inference batch) as an MLflow dataset with ``context``."""
    redacted.require(name, "the dataset's name")
    redacted.require(source, "the dataset's source")
    ds = Dataset(
        name=name,
        digest=digest[:MAX_DATASET_DIGEST],
        source_type="code",
        source=json.dumps({"description": str(source)}),
        profile=json.dumps(dict(profile), sort_keys=True, default=str),
    )
    with translated("log the inference input"):
        client().log_inputs(
            run_id, datasets=[DatasetInput(ds, tags=[InputTag(_CONTEXT_TAG, context)])]
        )


def log_artifact_dir(run_id: str, local_dir: str | os.PathLike, artifact_path: str) -> None:
    """Upload the files of ``local_dir`` (nbtrack's own binary files: Parquet, no user text)
    under ``artifact_path``, in one request."""
    with translated("log the inference run's files"):
        client().log_artifacts(run_id, str(local_dir), artifact_path)


def artifact_files(run_id: str, path: str) -> list[str]:
    """The paths of the files directly under a run's artifact folder ``path``, sorted."""
    with translated(f"list the files of run {run_id}"):
        return sorted(f.path for f in client().list_artifacts(run_id, path) if not f.is_dir)


def experiment_ids() -> list[str]:
    """The ids of every active experiment."""
    c = client()
    out: list[str] = []
    token = None
    with translated("list experiments"):
        while True:
            page = c.search_experiments(max_results=1000, page_token=token)
            out += [e.experiment_id for e in page]
            token = page.token
            if not token:
                return out


def runs_everywhere(filter_string: str, max_results: int | None = None) -> list[RunView]:
    """Runs of every active experiment matching ``filter_string``, oldest first."""
    ids = experiment_ids()
    return search_all_runs(ids, filter_string, max_results=max_results) if ids else []


def versions_of_run(run_id: str) -> list[VersionView]:
    """Every registered model version whose source run is ``run_id``."""
    with translated(f"find the versions registered from run {run_id}"):
        return search_versions(f"run_id = {_quoted(run_id)}")


def delete_run(run_id: str) -> None:
    """Soft-delete a run nbtrack made and could not complete (MLflow's deleted stage)."""
    with translated("remove a half-made inference run"):
        client().delete_run(run_id)


def download_file(run_id: str, path: str, dst: Path) -> Path | None:
    """One artifact file of a run into ``dst`` (a folder); None when there is none."""
    from nbtrack.store.artifacts import download_artifacts

    return download_artifacts(run_id, path, dst)


def inference_runs(model: str | None = None, version: str | None = None) -> list[RunView]:
    """The inference runs of every experiment (of ``model``, and ``version`` of it), oldest
    first."""
    filters = [f"tags.`{record.TAG_KIND}` = {_quoted(record.KIND_INFERENCE)}"]
    if model is not None:
        filters.append(f"params.{record.PARAM_MODEL_NAME} = {_quoted(model)}")
    if version is not None:
        filters.append(f"params.{record.PARAM_MODEL_VERSION} = {_quoted(str(version))}")
    return runs_everywhere(" and ".join(filters))


def runs_of_data(digest: str) -> list[RunView]:
    """Runs whose ``data_hash`` param is ``digest``, or that logged a dataset with that digest
    (MLflow keeps a dataset digest's first characters: compared on those)."""
    by_param = runs_everywhere(f"params.{record.PARAM_DATA_HASH} = {_quoted(digest)}")
    by_input = runs_everywhere(f"dataset.digest = {_quoted(digest[:MAX_DATASET_DIGEST])}")
    seen = {r.run_id for r in by_param}
    return by_param + [r for r in by_input if r.run_id not in seen]
