"""Logged models (MLflow 3's ``models:/m-<id>``): finding a run's, reading their flavours, loading
one with its flavour's loader."""

from __future__ import annotations

import contextlib
import os
import weakref

from nbtrack.record import LoggedModelView, RunView
from nbtrack.store.connection import client, translated
from nbtrack.store.registry import _quoted


def logged_models_of_run(run: RunView) -> list[LoggedModelView]:
    """The LoggedModels (MLflow 3's ``models:/m-<id>``) whose source is ``run``, oldest first."""
    c = client()
    out: list[LoggedModelView] = []
    token = None
    with translated(f"find the models logged by run {run.run_id}"):
        while True:
            page = c.search_logged_models(
                [run.experiment_id],
                filter_string=f"source_run_id = {_quoted(run.run_id)}",
                order_by=[{"field_name": "creation_timestamp", "ascending": True}],
                page_token=token,
            )
            out += [
                LoggedModelView(
                    model_id=m.model_id,
                    name=m.name or "",
                    model_uri=m.model_uri,
                    creation_time=m.creation_timestamp,
                )
                for m in page
            ]
            token = page.token
            if not token:
                return out


def model_flavors(uri: str) -> list[str]:
    """The flavours in the MLmodel file of ``uri``, in the order it lists them."""
    from mlflow.models import get_model_info

    with translated(f"read the model at {uri}"):
        return list(get_model_info(uri).flavors)


def native_flavor(uri: str) -> str:
    """The first flavour of the model at ``uri`` that MLflow can load natively here (its module
    imports and has ``load_model``), else "pyfunc" (the generic wrapper)."""
    import importlib

    for name in model_flavors(uri):
        if name == "python_function":
            continue
        try:
            module = importlib.import_module(f"mlflow.{name}")
        except ImportError:
            continue
        if hasattr(module, "load_model"):
            return name
    return "pyfunc"


# What nbtrack loaded, object -> the URI it came from: ``nbtrack.predict(model)`` with a model
# loaded by ``nbtrack.load`` knows its version. Weak: nbtrack keeps no model alive.
_loaded: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def load_model(uri: str, flavor: str) -> object:
    """Load ``uri`` with ``mlflow.<flavor>.load_model`` ("pyfunc" for the generic wrapper)."""
    import importlib

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    module = importlib.import_module(f"mlflow.{flavor}")
    with translated(f"load the model at {uri}"):
        model = module.load_model(uri)
    with contextlib.suppress(TypeError):  # an object that takes no weak reference
        _loaded[model] = uri
    return model


def loaded_from(model: object) -> str | None:
    """The URI nbtrack loaded ``model`` from, or None when nbtrack did not load it."""
    try:
        return _loaded.get(model)
    except TypeError:
        return None


def logged_model_run(model_id: str) -> str | None:
    """The run that logged the LoggedModel ``model_id`` (None when it came from no run)."""
    with translated(f"read the logged model {model_id}"):
        return client().get_logged_model(model_id).source_run_id or None
