"""What retention asks of MLflow: the files of runs and logged models with their sizes, deleting
them, the registry's versions of many runs at once, experiment tags (the gc log), soft-deleting
a run.

Sizes come from the artifact store itself. A local artifact URI (``file:`` or a plain path: the
embedded store's) is walked on disk, which is what makes ``nbtrack.usage`` over 1,000 runs take
a second instead of a minute; any other (``mlflow-artifacts:``, S3...) is listed through MLflow's
client, one request per folder. Deleting goes through MLflow's artifact repository for the URI
(``get_artifact_repository(uri).delete_artifacts(path)``), the same call for every scheme: a
tracking server with proxied artifacts (``--serve-artifacts``) deletes them on its side.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from nbtrack import redacted
from nbtrack.record import ModelFilesView, RunView, VersionView
from nbtrack.redacted import Redacted
from nbtrack.store.connection import client, tracking_uri, translated
from nbtrack.store.registry import _missing, _quoted, search_versions

# search_logged_models' largest page on the SQL store and a tracking server.
_MODELS_PAGE = 1000


def local_path(uri: str) -> Path | None:
    """The folder of a local artifact URI (``file:///x``, ``/x``), else None."""
    if not uri:
        return None
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if not parts.scheme and uri.startswith("/"):
        return Path(uri)
    return None


def _walk(root: Path) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for e in entries:
            rel = prefix + e.name
            if e.is_dir(follow_symlinks=False):
                stack.append((Path(e.path), rel + "/"))
            else:
                try:
                    out.append((rel, e.stat(follow_symlinks=False).st_size))
                except FileNotFoundError:
                    continue  # deleted while we looked
    return out


def _listed(list_folder: Callable[[str | None], list]) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    stack: list[str | None] = [None]
    while stack:
        for f in list_folder(stack.pop()):
            if f.is_dir:
                stack.append(f.path)
            else:
                out.append((f.path, int(f.file_size or 0)))
    return out


def _files(uri: str, what: str, list_folder: Callable[[str | None], list]) -> list[tuple[str, int]]:
    root = local_path(uri)
    if root is not None:
        return _walk(root)
    with translated(f"list the files of {what}"):
        return _listed(list_folder)


def run_files(run: RunView) -> list[tuple[str, int]]:
    """Every file of ``run``'s artifacts: (path relative to its artifact root, bytes)."""
    c = client()
    return _files(
        run.artifact_uri, f"run {run.run_id}", lambda path: c.list_artifacts(run.run_id, path)
    )


def model_files(model: ModelFilesView) -> list[tuple[str, int]]:
    """Every file of a logged model: (path, bytes)."""
    c = client()
    return _files(
        model.artifact_location,
        f"model {model.model_id}",
        lambda path: c.list_logged_model_artifacts(model.model_id, path),
    )


def _model_view(m) -> ModelFilesView:
    steps = {}
    values = {}
    for metric in m.metrics or ():
        values[metric.key] = metric.value
        steps[metric.key] = metric.step
    return ModelFilesView(
        model_id=m.model_id,
        name=m.name or "",
        run_id=m.source_run_id or "",
        experiment_id=str(m.experiment_id),
        artifact_location=m.artifact_location or "",
        status=str(getattr(m.status, "name", m.status) or ""),
        creation_time=m.creation_timestamp,
        tags={str(k): str(v) for k, v in (m.tags or {}).items()},
        metrics=values,
        metric_steps=steps,
    )


def models_of_experiments(
    experiment_ids: Iterable[str], run_id: str | None = None
) -> list[ModelFilesView]:
    """The live (not deleted) logged models of the experiments, oldest first; of one run when
    ``run_id`` is given."""
    ids = list(experiment_ids)
    if not ids:
        return []
    c = client()
    out: list[ModelFilesView] = []
    token = None
    where = f"source_run_id = {_quoted(run_id)}" if run_id else None
    with translated("list the logged models"):
        while True:
            page = c.search_logged_models(
                ids,
                filter_string=where,
                max_results=_MODELS_PAGE,
                order_by=[{"field_name": "creation_timestamp", "ascending": True}],
                page_token=token,
            )
            out += [_model_view(m) for m in page]
            token = page.token
            if not token:
                return out


def logged_model(model_id: str) -> ModelFilesView | None:
    """One logged model (deleted ones too: their record stays), or None when there is none."""
    from mlflow.exceptions import MlflowException

    with translated(f"read the logged model {model_id}"):
        try:
            return _model_view(client().get_logged_model(model_id))
        except MlflowException as e:
            if _missing(e):
                return None
            raise


def all_versions() -> list[VersionView]:
    """Every registered model version of the store."""
    with translated("list the registered model versions"):
        return search_versions("")


def versions_of_runs(run_ids: Iterable[str]) -> list[VersionView]:
    """The registered versions whose source run is one of ``run_ids`` (asked again right before
    a deletion: a version registered while gc runs protects its run)."""
    ids = sorted(set(run_ids))
    out: list[VersionView] = []
    with translated("find the versions registered from runs"):
        for i in range(0, len(ids), 50):
            chunk = ", ".join(_quoted(r) for r in ids[i : i + 50])
            out += search_versions(f"run_id IN ({chunk})")
    return out


def _repository(uri: str):
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    return get_artifact_repository(uri)


def delete_run_file(run: RunView, path: str) -> None:
    """Delete one artifact file (or folder) ``path`` of ``run``."""
    with translated(f"delete {path} of run {run.run_id}"):
        _configured()
        _repository(run.artifact_uri).delete_artifacts(path)


def delete_model(model: ModelFilesView) -> None:
    """Delete a logged model: its record first (MLflow's deleted stage: the listings stop
    showing it, the history keeps it), then its files. Interrupted between the two, no listing
    shows a model whose files are gone."""
    with translated(f"delete the logged model {model.model_id}"):
        _configured()
        client().delete_logged_model(model.model_id)
        _repository(model.artifact_location).delete_artifacts()


def delete_model_files(model: ModelFilesView) -> None:
    """Delete a logged model's files and nothing else (its record is already deleted)."""
    with translated(f"delete the files of model {model.model_id}"):
        _configured()
        _repository(model.artifact_location).delete_artifacts()


def _configured() -> None:
    # ``mlflow-artifacts:`` URIs resolve against MLflow's current tracking URI.
    import mlflow

    uri = tracking_uri()
    if mlflow.get_tracking_uri() != uri:
        mlflow.set_tracking_uri(uri)


def soft_delete_run(run_id: str) -> None:
    """MLflow's deleted lifecycle stage (``mlflow gc`` removes such runs for good)."""
    with translated(f"delete run {run_id}"):
        client().delete_run(run_id)


def experiment_tags(experiment_id: str) -> dict[str, str]:
    with translated(f"read experiment {experiment_id}"):
        return dict(client().get_experiment(experiment_id).tags or {})


def set_experiment_tag(experiment_id: str, key: str, value: Redacted) -> None:
    redacted.require(value, f"the experiment tag {key!r}")
    with translated(f"tag experiment {experiment_id}"):
        client().set_experiment_tag(experiment_id, key, value)


def set_logged_model_tags(model_id: str, tags: Mapping[str, Redacted]) -> None:
    redacted.require_all(tags.values(), "logged model tag")
    with translated(f"tag the logged model {model_id}"):
        client().set_logged_model_tags(model_id, dict(tags))
