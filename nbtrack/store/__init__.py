"""The one place that talks to MLflow.

Everything goes through MLflow's public client and fluent APIs, so nbtrack works the same against
the embedded SQLite store and a tracking server. MLflow's exceptions are translated here into
nbtrack's errors, with a sentence that says what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from nbtrack import settings
from nbtrack.errors import NotFound, StoreError, UsageError

# MLflow's batch limits (mlflow.utils.validation): at most 100 params+tags and 1000 metrics per
# log_batch call, and 1000 entities in all.
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_DATASET_DIGEST = 36

TERMINAL = ("FINISHED", "FAILED", "KILLED")

_lock = threading.Lock()
_clients: dict[str, MlflowClient] = {}
_experiments: dict[tuple[str, str], str] = {}


# -- where the store is ------------------------------------------------------------------------


def absolute_uri(uri: str) -> str:
    """The same store, named so that a later ``os.chdir`` cannot move it."""
    if uri.startswith("sqlite:///"):
        rest = uri[len("sqlite:///") :]
        path, sep, query = rest.partition("?")
        if path and path != ":memory:" and not path.startswith("/"):
            return "sqlite:///" + os.path.abspath(path) + sep + query
        return uri
    if uri.startswith("file:") or "://" not in uri:
        path = uri[len("file:") :] if uri.startswith("file:") else uri
        path = path[2:] if path.startswith("//") else path
        return Path(os.path.abspath(path)).as_uri()
    return uri


def tracking_uri() -> str:
    """The store nbtrack writes to: NBTRACK_TRACKING_URI, else whatever MLflow would use."""
    return absolute_uri(settings.current().tracking_uri or mlflow.get_tracking_uri())


def configure() -> str:
    """Point MLflow at nbtrack's store (absolute), bound server waits, and keep MLflow quiet.

    Called before every run: cheap, and it follows a changed NBTRACK_TRACKING_URI.
    """
    s = settings.current()
    uri = tracking_uri()
    if mlflow.get_tracking_uri() != uri:
        mlflow.set_tracking_uri(uri)
    # A tracking server that is down makes MLflow retry for minutes; a notebook cell must not
    # wait on tracking that long. The user's own settings win.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(s.http_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(s.http_timeout))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    quiet_mlflow()
    return uri


def quiet_mlflow() -> None:
    """The notebook's output belongs to the user: MLflow's INFO chatter stays out of it."""
    for name in ("mlflow", "alembic"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


def client(uri: str | None = None) -> MlflowClient:
    uri = uri or tracking_uri()
    with _lock:
        c = _clients.get(uri)
        if c is None:
            c = _clients[uri] = MlflowClient(tracking_uri=uri)
        return c


def server_url(uri: str | None = None) -> str | None:
    """Base URL of the MLflow UI when the store is a tracking server, else None."""
    uri = uri or tracking_uri()
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else None


@contextlib.contextmanager
def translated(operation: str) -> Iterator[None]:
    """Turn MLflow's exceptions into nbtrack's, saying which operation failed."""
    try:
        yield
    except MlflowException as e:
        raise _translate(operation, e) from e
    except OSError as e:  # disk full, permission denied, unreachable server at socket level
        raise StoreError(operation, str(e) or type(e).__name__, _safe_uri()) from e


def _translate(operation: str, e: MlflowException) -> Exception:
    code = getattr(e, "error_code", "")
    message = _first_line(e.message if hasattr(e, "message") else str(e))
    if code == "PERMISSION_DENIED":
        message = "permission denied by the tracking server"
    return StoreError(operation, message, _safe_uri())


def _first_line(text: str) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line[:300]


def _safe_uri() -> str:
    from nbtrack.capture.redact import redact_url

    try:
        return redact_url(tracking_uri())
    except Exception:
        return ""


# -- experiments and runs ----------------------------------------------------------------------


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
    nested = parent_run_id is not None and active_run_id() == parent_run_id
    with translated("start a run"):
        active = mlflow.start_run(
            experiment_id=experiment_id,
            run_name=name,
            tags=dict(tags),
            nested=nested,
            parent_run_id=None if nested else parent_run_id,
        )
    return active.info.run_id, active.info.run_name


def log_params_tags(
    run_id: str, params: Mapping[str, str] = (), tags: Mapping[str, str] = ()
) -> None:
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


def log_files(run_id: str, files: Mapping[str, str | bytes]) -> None:
    """Log several small files (relative artifact path -> content) in one artifact upload."""
    if not files:
        return
    with tempfile.TemporaryDirectory(prefix="nbtrack-") as tmp:
        for rel, content in files.items():
            path = Path(tmp, rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
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
    with translated("log metrics"):
        for i in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            c.log_batch(run_id, metrics=metrics[i : i + MAX_METRICS_PER_BATCH], synchronous=True)


def end_run(run_id: str, status: str) -> None:
    """Give the run its terminal status; runs the user left open inside it end with it."""
    with translated("end the run"):
        while (active := mlflow.active_run()) is not None:
            current = active.info.run_id
            mlflow.end_run(status)
            if current == run_id:
                return
        client().set_terminated(run_id, status)


def get_run(run_id: str):
    with translated("read run"):
        try:
            return client().get_run(run_id)
        except MlflowException as e:
            if getattr(e, "error_code", "") in (
                "RESOURCE_DOES_NOT_EXIST",
                "INVALID_PARAMETER_VALUE",
            ):
                raise NotFound("run", run_id) from e
            raise


def running_runs(host: str) -> list:
    """Runs still RUNNING that were started on ``host`` (candidates for orphans)."""
    c = client()
    with translated("look for unfinished runs"):
        exp_ids = [e.experiment_id for e in c.search_experiments(max_results=1000)]
        if not exp_ids:
            return []
        runs = []
        for i in range(0, len(exp_ids), 100):
            runs += c.search_runs(
                exp_ids[i : i + 100],
                filter_string=f"attributes.status = 'RUNNING' and tags.`nbtrack.host` = '{host}'",
                max_results=1000,
            )
        return runs


def mark_killed(run_id: str, reason: str) -> None:
    c = client()
    with translated("close an orphaned run"):
        c.set_tag(run_id, "nbtrack.killed_reason", reason)
        c.set_terminated(run_id, "KILLED")


# -- reading runs back -------------------------------------------------------------------------


def runs_by_id(run_ids: Sequence[str]) -> list:
    """The runs ``run_ids`` (MLflow ``Run`` entities), in the order given; NotFound names the
    first unknown id."""
    return [get_run(run_id) for run_id in run_ids]


def runs_in_experiment(name: str, filter_string: str | None = None, max_results: int = 1000):
    """Runs of experiment ``name`` matching an MLflow filter string, oldest first."""
    c = client()
    with translated(f"search runs of experiment {name!r}"):
        exp = c.get_experiment_by_name(name)
        if exp is None or exp.lifecycle_stage == "deleted":
            raise NotFound("experiment", name, "check the name, or pass run ids")
        try:
            return list(
                c.search_runs(
                    [exp.experiment_id],
                    filter_string=filter_string or "",
                    order_by=["attributes.start_time ASC"],
                    max_results=max_results,
                )
            )
        except MlflowException as e:
            if filter_string and getattr(e, "error_code", "") == "INVALID_PARAMETER_VALUE":
                raise UsageError(
                    f"MLflow cannot read the filter {filter_string!r}: {_first_line(e.message)}",
                    "see https://mlflow.org/docs/latest/search-runs.html for the syntax",
                ) from None
            raise


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


# -- comparison --------------------------------------------------------------------------------

# Runs per search request. MLflow's SQL store accepts up to 50,000, but a tracking server caps a
# page at 1,000 by default and a first page of 1,000 shows something within a second.
SEARCH_PAGE = 1000


def experiment_ids_by_name(names: Sequence[str]) -> dict[str, str]:
    """Name -> id of existing, active experiments; NotFound names the first one missing."""
    c = client()
    out = {}
    with translated("look up experiments"):
        for name in names:
            exp = c.get_experiment_by_name(name)
            if exp is None or exp.lifecycle_stage == "deleted":
                raise NotFound("experiment", name, "check the name (mlflow experiments search)")
            out[name] = exp.experiment_id
    return out


def search_runs_page(
    experiment_ids: Sequence[str],
    filter_string: str = "",
    order_by: Sequence[str] = (),
    max_results: int = SEARCH_PAGE,
    page_token: str | None = None,
) -> tuple[list, str | None]:
    """One page of MLflow ``Run`` entities and the token of the next page (None at the end).

    A filter MLflow cannot read is the user's mistake (UsageError), not a store failure."""
    c = client()
    with translated("search runs"):
        try:
            page = c.search_runs(
                list(experiment_ids),
                filter_string=filter_string or "",
                order_by=list(order_by) or None,
                max_results=max_results,
                page_token=page_token,
            )
        except MlflowException as e:
            if getattr(e, "error_code", "") == "INVALID_PARAMETER_VALUE":
                raise UsageError(
                    f"MLflow cannot read the search {filter_string or ''!r} / "
                    f"order_by {list(order_by)}: {_first_line(e.message)}",
                    "see https://mlflow.org/docs/latest/search-runs.html for the syntax",
                ) from None
            raise
    return list(page), page.token or None


def artifact_text(run_id: str, path: str) -> str | None:
    """The text of a run's artifact ``path``, or None when the run has no such artifact."""
    from mlflow.artifacts import download_artifacts

    # MLflow draws a progress bar per download; in a notebook that is noise under the user's
    # output (the user's own setting wins).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory(prefix="nbtrack-") as tmp:
        try:
            local = download_artifacts(
                run_id=run_id, artifact_path=path, dst_path=tmp, tracking_uri=tracking_uri()
            )
        except (MlflowException, OSError):
            # Missing artifacts surface as either, depending on the artifact repository.
            return None
        try:
            return Path(local).read_text(encoding="utf-8", errors="replace")
        except (IsADirectoryError, OSError):
            return None


# -- model registry ----------------------------------------------------------------------------
# Thin calls for model_registry.registry. MLflow's deprecated stage field is written here, with its
# FutureWarning silenced: the deprecation is about nbtrack's own call, not the user's code.

REGISTRY_PAGE = 1000


@contextlib.contextmanager
def registry_call(operation: str, model: str) -> Iterator[None]:
    """As ``translated``, but a refusal by the server (403) names the model the user may read
    and not change."""
    from nbtrack.errors import PermissionDenied

    with translated(operation):
        try:
            yield
        except MlflowException as e:
            if getattr(e, "error_code", "") == "PERMISSION_DENIED":
                raise PermissionDenied(model, operation) from None
            raise


def _missing(e: MlflowException) -> bool:
    return getattr(e, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def registered_model(name: str):
    """MLflow's ``RegisteredModel`` (with its aliases and tags), or None when there is none."""
    with registry_call(f"read registered model {name!r}", name):
        try:
            return client().get_registered_model(name)
        except MlflowException as e:
            if _missing(e):
                return None
            raise


def registered_models() -> list:
    """Every registered model, by name."""
    c = client()
    out: list = []
    token = None
    with translated("list registered models"):
        while True:
            page = c.search_registered_models(
                max_results=REGISTRY_PAGE, order_by=["name ASC"], page_token=token
            )
            out += list(page)
            token = page.token
            if not token:
                return out


def create_registered_model(name: str, description: str | None = None) -> None:
    """Create registered model ``name`` unless it exists (two kernels may race to create it)."""
    with registry_call(f"create registered model {name!r}", name):
        try:
            client().create_registered_model(name, description=description)
        except MlflowException as e:
            if getattr(e, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise


def create_model_version(
    name: str,
    source: str,
    run_id: str,
    tags: Mapping[str, str],
    description: str | None,
    model_id: str | None,
):
    with registry_call(f"register a version of model {name!r}", name):
        return client().create_model_version(
            name,
            source=source,
            run_id=run_id,
            tags=dict(tags),
            description=description,
            model_id=model_id,
        )


def model_version(name: str, version: str):
    """MLflow's ``ModelVersion``, or None when the model has no such version."""
    with registry_call(f"read version {version} of model {name!r}", name):
        try:
            return client().get_model_version(name, version)
        except MlflowException as e:
            if _missing(e) or getattr(e, "error_code", "") == "INVALID_PARAMETER_VALUE":
                return None
            raise


def model_versions(name: str) -> list:
    """Every version of model ``name`` (their ``aliases`` are not filled in by MLflow's search:
    read them from the registered model)."""
    c = client()
    out: list = []
    token = None
    with registry_call(f"list the versions of model {name!r}", name):
        while True:
            page = c.search_model_versions(
                f"name = {_quoted(name)}", max_results=REGISTRY_PAGE, page_token=token
            )
            out += list(page)
            token = page.token
            if not token:
                return out


def _upsert(call, *args) -> None:
    """An MLflow set-call (alias, model or version tag) that writers may make at once.

    MLflow's SQL store looks the key up, then inserts it: when two writers set a new key at
    once, the later insert breaks the unique key and MLflow raises. Made again, the call finds
    the key and updates it (plain MLflow failed 43 of 120 such calls here, this none)."""
    for attempt in range(3):
        try:
            call(*args)
            return
        except Exception as e:
            if attempt == 2 or "unique" not in str(e).lower():
                raise


def set_alias(name: str, alias: str, version: str) -> None:
    """Point ``alias`` at ``version``: one update in MLflow, so a reader resolving
    ``models:/NAME@alias`` sees the old version or the new one, never none."""
    with registry_call(f"move alias {alias!r} of model {name!r}", name):
        _upsert(client().set_registered_model_alias, name, alias, version)


def delete_alias(name: str, alias: str) -> None:
    with registry_call(f"remove alias {alias!r} of model {name!r}", name):
        try:
            client().delete_registered_model_alias(name, alias)
        except MlflowException as e:
            if not _missing(e):
                raise


def set_legacy_stage(name: str, version: str, stage: str) -> None:
    """MLflow's deprecated stage field (None, Staging, Production, Archived)."""
    import warnings

    with (
        registry_call(f"set the stage of version {version} of model {name!r}", name),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", FutureWarning)
        client().transition_model_version_stage(
            name, version, stage, archive_existing_versions=False
        )


def set_version_tags(name: str, version: str, tags: Mapping[str, str]) -> None:
    c = client()
    with registry_call(f"tag version {version} of model {name!r}", name):
        for key, value in tags.items():
            _upsert(c.set_model_version_tag, name, version, key, value)


def set_model_tag(name: str, key: str, value: str) -> None:
    with registry_call(f"tag model {name!r}", name):
        _upsert(client().set_registered_model_tag, name, key, value)


def logged_models_of_run(run) -> list:
    """The LoggedModels (MLflow 3's ``models:/m-<id>``) whose source is ``run``, oldest first."""
    c = client()
    out: list = []
    token = None
    with translated(f"find the models logged by run {run.info.run_id}"):
        while True:
            page = c.search_logged_models(
                [run.info.experiment_id],
                filter_string=f"source_run_id = {_quoted(run.info.run_id)}",
                order_by=[{"field_name": "creation_timestamp", "ascending": True}],
                page_token=token,
            )
            out += list(page)
            token = page.token
            if not token:
                return out


def model_flavors(uri: str) -> list[str]:
    """The flavours in the MLmodel file of ``uri``, in the order it lists them."""
    from mlflow.models import get_model_info

    with translated(f"read the model at {uri}"):
        return list(get_model_info(uri).flavors)


def load_model(uri: str, flavor: str) -> object:
    """Load ``uri`` with ``mlflow.<flavor>.load_model`` ("pyfunc" for the generic wrapper)."""
    import importlib

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    module = importlib.import_module(f"mlflow.{flavor}")
    with translated(f"load the model at {uri}"):
        return module.load_model(uri)


# -- reproduction ------------------------------------------------------------------------------
# For reproduction: the runs a re-execution made, and a record for an attempt that made none.


def _tag_filter(tags: Mapping[str, str]) -> str:
    def quoted(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " and ".join(f"tags.`{k}` = {quoted(v)}" for k, v in tags.items())


def runs_with_tags(
    experiment_ids: Sequence[str], tags: Mapping[str, str], max_results: int = 1000
) -> list:
    """Runs of the experiments carrying every tag of ``tags``, oldest first."""
    with translated("search runs by tag"):
        return list(
            client().search_runs(
                list(experiment_ids),
                filter_string=_tag_filter(tags),
                order_by=["attributes.start_time ASC"],
                max_results=max_results,
            )
        )


def create_run(experiment_id: str, name: str, tags: Mapping[str, str]) -> str:
    """A run that is not MLflow's active run of this process (the caller may be inside one)."""
    with translated("create a run"):
        return client().create_run(experiment_id, run_name=name, tags=dict(tags)).info.run_id


def terminate_run(run_id: str, status: str) -> None:
    with translated("end the run"):
        client().set_terminated(run_id, status)


def download_artifacts(run_id: str, path: str, dst: str | os.PathLike) -> Path | None:
    """Download a run's artifact folder (or file) ``path`` into ``dst``, in one request; None
    when the run has no such artifact."""
    from mlflow.artifacts import download_artifacts as download

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        return Path(
            download(
                run_id=run_id, artifact_path=path, dst_path=str(dst), tracking_uri=tracking_uri()
            )
        )
    except (MlflowException, OSError):
        return None


# -- grids -------------------------------------------------------------------------------------
# For nbtrack.grids.run and nbtrack.grids.point: a grid's parent run, and the runs of its points.


def search_all_runs(experiment_ids: Sequence[str], filter_string: str) -> list:
    """Every run of the experiments matching ``filter_string``, oldest first, all pages."""
    out: list = []
    token = None
    while True:
        page, token = search_runs_page(
            experiment_ids, filter_string, ["attributes.start_time ASC"], SEARCH_PAGE, token
        )
        out += page
        if token is None:
            return out


def tag_filter(tags: Mapping[str, str]) -> str:
    """An MLflow filter matching runs that carry every tag of ``tags``."""
    return _tag_filter(tags)


def reopen_run(run_id: str) -> None:
    """Set a finished run RUNNING again (a grid's parent, while it is resumed)."""
    with translated("reopen the run"):
        client().update_run(run_id, status="RUNNING")


def log_metrics_now(run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    """A few metrics at once, timestamped now."""
    import time

    now = int(time.time() * 1000)
    log_metric_points(run_id, [(k, float(v), now, step) for k, v in metrics.items()])
