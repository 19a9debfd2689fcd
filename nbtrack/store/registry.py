"""The model registry: registered models, versions, aliases, tags.

Thin calls for ``nbtrack.model_registry``. MLflow's deprecated stage field is written here, with its
FutureWarning silenced: the deprecation is about nbtrack's own call, not the user's code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from mlflow.exceptions import MlflowException

from nbtrack import redacted
from nbtrack.record import ModelView, VersionView
from nbtrack.redacted import Redacted
from nbtrack.store.connection import client, translated
from nbtrack.store.views import model_view, version_view

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


def registered_model(name: str) -> ModelView | None:
    """The registered model (with its aliases and tags), or None when there is none."""
    with registry_call(f"read registered model {name!r}", name):
        try:
            return model_view(client().get_registered_model(name))
        except MlflowException as e:
            if _missing(e):
                return None
            raise


def registered_models() -> list[ModelView]:
    """Every registered model, by name."""
    c = client()
    out: list = []
    token = None
    with translated("list registered models"):
        while True:
            page = c.search_registered_models(
                max_results=REGISTRY_PAGE, order_by=["name ASC"], page_token=token
            )
            out += [model_view(rm) for rm in page]
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
    tags: Mapping[str, Redacted],
    description: Redacted | None,
    model_id: str | None,
) -> VersionView:
    redacted.require_all(tags.values(), "model version tag")
    if description is not None:
        redacted.require(description, "the model version's description")
    with registry_call(f"register a version of model {name!r}", name):
        mv = client().create_model_version(
            name,
            source=source,
            run_id=run_id,
            tags=dict(tags),
            description=description,
            model_id=model_id,
        )
    return version_view(mv)


def model_version(name: str, version: str) -> VersionView | None:
    """The version, or None when the model has no such version."""
    with registry_call(f"read version {version} of model {name!r}", name):
        try:
            return version_view(client().get_model_version(name, version))
        except MlflowException as e:
            if _missing(e) or getattr(e, "error_code", "") == "INVALID_PARAMETER_VALUE":
                return None
            raise


def model_versions(name: str) -> list[VersionView]:
    """Every version of model ``name`` (their ``aliases`` are not filled in by MLflow's search:
    read them from the registered model)."""
    with registry_call(f"list the versions of model {name!r}", name):
        return search_versions(f"name = {_quoted(name)}")


def search_versions(filter_string: str) -> list[VersionView]:
    """Every model version matching an MLflow filter (all pages); the caller translates errors."""
    c = client()
    out: list = []
    token = None
    while True:
        page = c.search_model_versions(filter_string, max_results=REGISTRY_PAGE, page_token=token)
        out += [version_view(mv) for mv in page]
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


def set_version_tags(name: str, version: str, tags: Mapping[str, Redacted]) -> None:
    redacted.require_all(tags.values(), "model version tag")
    c = client()
    with registry_call(f"tag version {version} of model {name!r}", name):
        for key, value in tags.items():
            _upsert(c.set_model_version_tag, name, version, key, value)


def set_model_tag(name: str, key: str, value: Redacted) -> None:
    redacted.require(value, f"the model tag {key!r}")
    with registry_call(f"tag model {name!r}", name):
        _upsert(client().set_registered_model_tag, name, key, value)
