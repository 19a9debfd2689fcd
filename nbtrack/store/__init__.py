"""The one place that talks to MLflow.

Everything goes through MLflow's public client and fluent APIs, so nbtrack works the same against
the embedded SQLite store and a tracking server. MLflow's exceptions are translated here into
nbtrack's errors, with a sentence that says what to do, and MLflow's entities into the record's
views (``RunView``, ``VersionView``, ``ModelView``): nothing of MLflow's data model leaves.

May import: ``record``, ``errors``, ``settings`` and MLflow. Nothing else of nbtrack.

Modules: ``connection`` (where the store is, the client, errors), ``views`` (entities -> views),
``runs`` (experiments and runs: create, log, end, read), ``search`` (the one pager and tag filter),
``artifacts`` (read back), ``registry`` (registered models, versions, aliases), ``models``
(logged models and flavour loading), ``user_runs`` (the user's ``mlflow.start_run()`` inside a
tracked run joins it), ``metric_log`` (the durable local metric log's files; no MLflow),
``metric_runs`` (what the log's sender asks of a store), ``creation`` (the first touch of a new
SQLite store, serialised across processes with a file lock), ``outages`` (a tracking server that
did not answer: calls fail at once, for a growing window, instead of each waiting a timeout),
``lineage`` (inference inputs and prediction files, versions of a run, runs of every experiment),
``prediction_index`` (prediction id -> inference run and row: a local SQLite cache; no MLflow),
``retention`` (files of runs and logged models with sizes, deleting them, the gc log's tags),
``checkpoints`` (a checkpoint's LoggedModel: made, written, metrics linked, finalized).

The package resolves its names lazily (PEP 562): ``from nbtrack import store`` costs nothing until
a function is used, so the magic's ``%load_ext`` can ask whether the user pinned MLflow's store
(``store.user_pinned_store``) without importing MLflow.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "connection": (
        "MAX_PARAMS_TAGS_PER_BATCH MAX_METRICS_PER_BATCH MAX_PARAM_VALUE MAX_TAG_VALUE "
        "MAX_DATASET_DIGEST TERMINAL absolute_uri tracking_uri configure quiet_mlflow client "
        "server_url translated unreachable outage safe_uri"
    ),
    "runs": (
        "experiment_id experiment_name active_run_id start_run log_params_tags log_files "
        "log_datasets log_metric_points end_run get_run mark_killed create_run terminate_run "
        "reopen_run log_metrics_now metric_history"
    ),
    "search": (
        "SEARCH_PAGE OLDEST_FIRST search_runs_page search_all_runs tag_filter runs_by_id "
        "experiment_ids_by_name runs_in_experiment runs_with_tags running_runs"
    ),
    "artifacts": "artifact_text download_artifacts",
    "registry": (
        "REGISTRY_PAGE registry_call registered_model registered_models create_registered_model "
        "create_model_version model_version model_versions set_alias delete_alias "
        "set_legacy_stage set_version_tags set_model_tag"
    ),
    "models": (
        "logged_models_of_run model_flavors native_flavor load_model loaded_from logged_model_run"
    ),
    "metric_runs": "RunGone send_points store_log run_status close_run",
    "outages": "StoreUnreachable",
    "lineage": (
        "log_dataset_input log_artifact_dir artifact_files experiment_ids runs_everywhere "
        "versions_of_run delete_run download_file inference_runs runs_of_data"
    ),
    "prediction_index": "Hit",
    "retention": (
        "local_path run_files model_files models_of_experiments logged_model all_versions "
        "versions_of_runs delete_run_file delete_model delete_model_files soft_delete_run "
        "experiment_tags set_experiment_tag set_logged_model_tags"
    ),
    "checkpoints": (
        "create_model save_flavour upload_model_files link_metrics finalize_model download_model"
    ),
}
_WHERE = {name: module for module, names in _HOMES.items() for name in names.split()}

__all__ = [*sorted(_WHERE), "user_pinned_store"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return __all__


def user_pinned_store() -> bool:
    """Whether code in this process already told MLflow which store to use
    (``mlflow.set_tracking_uri``); answered without importing MLflow when it is not loaded."""
    import sys

    mlflow = sys.modules.get("mlflow")
    return mlflow is not None and bool(mlflow.tracking.is_tracking_uri_set())
