"""Reading the registry: a version with its run (``VersionInfo``), a model's versions, the list of
models."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbtrack import record, store
from nbtrack.errors import (
    NotFound,
)
from nbtrack.model_registry.names import (
    RESERVED_TAGS,
    STAGE_TAG,
    _alias_map,
    aliases,
    previous_alias,
    version_of,
)

# -- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionInfo:
    """One model version as nbtrack shows it."""

    name: str
    version: str
    aliases: tuple[str, ...]
    stage: str | None  # production | staging | archived | None
    legacy_stage: str
    run_id: str | None
    metrics: dict[str, float]
    data_hash: str | None
    git_commit: str | None
    notebook: str | None
    experiment: str | None
    created: dt.datetime | None
    description: str
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    run_status: str | None = None
    experiment_id: str | None = None

    @property
    def promoted_at(self) -> str | None:
        return self.tags.get(record.TAG_PROMOTED_AT)

    @property
    def promoted_by(self) -> str | None:
        return self.tags.get(record.TAG_PROMOTED_BY)

    @property
    def promotion_reason(self) -> str | None:
        return self.tags.get(record.TAG_PROMOTION_REASON) or None

    def key_metrics(self, n: int = 3) -> list[tuple[str, float]]:
        """Validation and test metrics first (what people ask about), then the rest, by name."""

        def rank(key: str) -> tuple[int, str]:
            low = key.lower()
            return (0 if low.startswith(("val", "test", "eval")) else 1, low)

        return [(k, self.metrics[k]) for k in sorted(self.metrics, key=rank)[:n]]


_log = logging.getLogger(__name__)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _info(mv, alias_map: Mapping[str, str], run=None) -> VersionInfo:
    version = version_of(mv.version)
    tags = {str(k): str(v) for k, v in (mv.tags or {}).items()}
    held = tuple(sorted(a for a, v in alias_map.items() if v == version))
    names = aliases()
    if names["production"] in held:
        stage = "production"
    elif names["staging"] in held:
        stage = "staging"
    elif tags.get(STAGE_TAG) == "archived" or mv.current_stage == "Archived":
        stage = "archived"
    else:
        stage = None
    if run is not None:
        metrics = dict(run.metrics)
    else:
        metrics = {}
        for key, value in tags.items():
            if key in RESERVED_TAGS or key.startswith(record.RESERVED_PREFIXES):
                continue
            number = _number(value)
            if number is not None:
                metrics[key] = number
    created = (
        dt.datetime.fromtimestamp(mv.creation_time / 1000, dt.timezone.utc)
        if mv.creation_time
        else None
    )
    return VersionInfo(
        name=mv.name,
        version=version,
        aliases=held,
        stage=stage,
        legacy_stage=str(mv.current_stage or "None"),
        run_id=mv.run_id or tags.get(record.VERSION_TAG_RUN_ID),
        metrics=metrics,
        # The version's own tags (copied at registration) first, then its run's record.
        data_hash=tags.get(record.VERSION_TAG_DATA_HASH) or (run and run.data_hash),
        git_commit=tags.get(record.VERSION_TAG_GIT_COMMIT) or (run and run.commit),
        notebook=tags.get(record.VERSION_TAG_NOTEBOOK) or (run and run.notebook),
        experiment=tags.get(record.TAG_EXPERIMENT),
        created=created,
        description=mv.description or "",
        source=mv.source or "",
        tags=tags,
        run_status=run.status if run is not None else None,
        experiment_id=run.experiment_id if run is not None else None,
    )


def _run_or_none(run_id: str | None):
    if not run_id:
        return None
    try:
        return store.get_run(run_id)
    except NotFound:
        return None  # deleted: the version's own tags still say what it was


def _model(name: str):
    rm = store.registered_model(name)
    if rm is None:
        raise NotFound("registered model", name, "see `nbtrack registry list` for the names")
    return rm


def require(name: str) -> None:
    """Raise NotFound unless model ``name`` is registered."""
    store.configure()
    _model(name)


def _versions(name: str) -> list:
    return sorted(store.model_versions(name), key=lambda mv: int(version_of(mv.version)))


def _version(name: str, version: str, versions: Sequence) -> Any:
    for mv in versions:
        if version_of(mv.version) == version:
            return mv
    known = ", ".join(version_of(mv.version) for mv in versions) or "none"
    raise NotFound(f"version {version} of model", name, f"its versions are: {known}")


def versions(name: str, *, with_runs: bool = True, limit: int | None = None) -> list[VersionInfo]:
    """The versions of model ``name``, newest first (at most ``limit``, plus any version that
    holds an alias). ``with_runs`` reads each version's run for its status and metrics."""
    store.configure()
    rm = _model(name)
    amap = _alias_map(rm)
    mvs = list(reversed(_versions(name)))
    if limit is not None:
        held = set(amap.values())
        mvs = [mv for i, mv in enumerate(mvs) if i < limit or version_of(mv.version) in held]
    return [_info(mv, amap, _run_or_none(mv.run_id) if with_runs else None) for mv in mvs]


def experiment_of(info: VersionInfo) -> str | None:
    """The name of the experiment of the version's run (for opening it in the comparison
    panel), or None when the run is gone."""
    if info.experiment:
        return info.experiment
    run = _run_or_none(info.run_id)
    return _experiment_name(run) if run is not None else None


def run_url(info: VersionInfo) -> str | None:
    """The run's page in the MLflow UI, when the store is a tracking server."""
    base = store.server_url()
    if not base or not info.run_id or not info.experiment_id:
        return None
    return f"{base}/#/experiments/{info.experiment_id}/runs/{info.run_id}"


def version(name: str, number: Any) -> VersionInfo:
    """One version of model ``name``, with its run's status and metrics."""
    store.configure()
    number = version_of(number)
    rm = _model(name)
    mv = store.model_version(name, number)
    if mv is None:
        _version(name, number, _versions(name))  # raises NotFound listing the versions
    return _info(mv, _alias_map(rm), _run_or_none(mv.run_id))


@dataclass(frozen=True)
class ModelSummary:
    """A registered model in the list: its name and who holds which stage."""

    name: str
    production: str | None
    staging: str | None
    previous: str | None
    latest: str | None
    updated: dt.datetime | None
    description: str


def list_models() -> list[ModelSummary]:
    """Every registered model, by name."""
    store.configure()
    names = aliases()
    out = []
    for rm in store.registered_models():
        amap = _alias_map(rm)
        latest = [version_of(v) for v in rm.latest_versions]
        updated = (
            dt.datetime.fromtimestamp(rm.last_updated / 1000, dt.timezone.utc)
            if rm.last_updated
            else None
        )
        out.append(
            ModelSummary(
                name=rm.name,
                production=amap.get(names["production"]),
                staging=amap.get(names["staging"]),
                previous=amap.get(previous_alias()),
                latest=max(latest, key=int) if latest else None,
                updated=updated,
                description=rm.description or "",
            )
        )
    return out


def _experiment_name(run) -> str | None:
    try:
        return store.experiment_name(run.experiment_id)
    except Exception:  # the experiment is gone or unreadable: the version still shows
        _log.debug("reading the experiment of run %s failed", run.run_id, exc_info=True)
        return None
