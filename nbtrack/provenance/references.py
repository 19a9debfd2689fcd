"""A model reference, as a user writes it, resolved to one registered version and its training
run; the model loaded once per version.

``"digits-clf@production"``, ``"digits-clf/3"``, ``"digits-clf"`` (its production version),
``"models:/digits-clf@staging"``, ``"models:/digits-clf/3"``, ``"models:/m-<id>"`` (a logged
model), a run id (the version registered from it, else the model it logged), or a model object
``nbtrack.load`` / ``nbtrack.predict`` loaded. An alias is resolved at once: the inference run
records the version, and the alias only as what the caller named.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import Any

from nbtrack import store
from nbtrack.errors import ModelCannotLoad, NotFound, StoreError, UsageError
from nbtrack.model_registry.names import aliases, version_of

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedModel:
    """One model version as an inference run records it."""

    name: str  # "" for a logged model no version was registered from
    version: str  # "" likewise
    uri: str  # models:/NAME/VERSION, or models:/m-<id>
    run_id: str | None  # the training run
    alias: str | None  # the alias the caller named, if any
    model_id: str | None = None
    aliases_held: tuple[str, ...] = ()  # the aliases the version held when it was resolved

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}" if self.name else self.uri


def resolve(model: Any) -> ResolvedModel:
    """``model`` (see the module's doc) as one version; NotFound lists what exists."""
    store.configure()
    if not isinstance(model, str):
        uri = store.loaded_from(model)
        if uri is None:
            raise UsageError(
                f"nbtrack.predict cannot tell which model version a {type(model).__name__} is",
                "pass the model's name and alias or version ('digits-clf@production', "
                "'digits-clf/3'), or load it with nbtrack.load(...) first",
            )
        return resolve(uri)
    text = model.strip()
    if text.startswith("models:/"):
        text = text[len("models:/") :]
        if text.startswith("m-"):
            return _logged_model(text)
    if _RUN_ID.match(text):
        return _from_run(text)
    if "@" in text:
        name, alias = text.rsplit("@", 1)
        return _by_alias(name, alias)
    if "/" in text:
        name, number = text.rsplit("/", 1)
        return _by_version(name, version_of(number), None)
    return _by_alias(text, aliases()["production"], named=None)


def _model_or_explain(name: str):
    rm = store.registered_model(name)
    if rm is None:
        names = [m.name for m in store.registered_models()]
        listed = ", ".join(repr(n) for n in names[:20]) or "none"
        raise NotFound("registered model", name, f"the store has: {listed}")
    return rm


def _by_alias(name: str, alias: str, named: str | bool | None = True) -> ResolvedModel:
    rm = _model_or_explain(name)
    number = rm.aliases.get(alias)
    if number is None:
        held = ", ".join(f"{a} (v{v})" for a, v in sorted(rm.aliases.items())) or "no aliases"
        versions = ", ".join(v.version for v in store.model_versions(name)) or "none"
        raise NotFound(
            "alias",
            f"{name}@{alias}",
            f"model {name!r} has {held}; versions {versions}: name one ({name}/<version>)",
        )
    return _by_version(name, version_of(number), alias if named else None, rm)


def _by_version(name: str, number: str, alias: str | None, rm=None) -> ResolvedModel:
    rm = rm if rm is not None else store.registered_model(name)
    mv = store.model_version(name, number)
    if mv is None:
        _model_or_explain(name)
        versions = ", ".join(v.version for v in store.model_versions(name)) or "none"
        raise NotFound("version", f"{name}/{number}", f"model {name!r} has versions {versions}")
    return ResolvedModel(
        name=name,
        version=number,
        uri=f"models:/{name}/{number}",
        run_id=mv.run_id,
        alias=alias,
        model_id=mv.model_id,
        # Recorded on the inference run: the registry may move later (the audit trail says when).
        aliases_held=tuple(sorted(a for a, v in rm.aliases.items() if str(v) == number)),
    )


def _from_run(run_id: str) -> ResolvedModel:
    run = store.get_run(run_id)
    versions = store.versions_of_run(run_id)
    if versions:
        latest = max(versions, key=lambda v: int(v.version))
        return _by_version(latest.name, latest.version, None)
    logged = store.logged_models_of_run(run)
    if not logged:
        raise UsageError(
            f"run {run_id} logged no model", "log one (mlflow.<flavor>.log_model) or name a model"
        )
    m = logged[-1]
    return ResolvedModel("", "", m.model_uri, run_id, None, m.model_id)


def _logged_model(model_id: str) -> ResolvedModel:
    run_id = store.logged_model_run(model_id)
    for v in store.versions_of_run(run_id) if run_id else []:
        if v.model_id == model_id:
            return _by_version(v.name, v.version, None)
    return ResolvedModel("", "", f"models:/{model_id}", run_id, None, model_id)


# -- loading, once per version -------------------------------------------------------------------

_cache: dict[str, Any] = {}
_cache_lock = threading.Lock()


def load(resolved: ResolvedModel) -> Any:
    """The model with its flavour's loader, cached by its resolved URI (a version never changes)."""
    with _cache_lock:
        if resolved.uri in _cache:
            return _cache[resolved.uri]
    try:
        flavor = store.native_flavor(resolved.uri)
        model = store.load_model(resolved.uri, flavor)
    except ModuleNotFoundError as e:
        raise ModelCannotLoad(resolved.label, str(e), e.name) from None
    except ImportError as e:
        raise ModelCannotLoad(resolved.label, str(e), getattr(e, "name", None)) from None
    except StoreError as e:
        missing = re.search(r"No module named '([\w.]+)'", str(e))
        if missing:
            raise ModelCannotLoad(resolved.label, str(e), missing.group(1).split(".")[0]) from None
        raise
    with _cache_lock:
        _cache[resolved.uri] = model
    return model
