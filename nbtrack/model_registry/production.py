"""What is in production: the version, its run and record, and loading it with its flavour
(through ``store.load_model``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nbtrack import html_text, store
from nbtrack.errors import (
    NotFound,
)
from nbtrack.model_registry.names import (
    _alias_map,
    aliases,
    previous_alias,
    stage_of,
    version_of,
)
from nbtrack.model_registry.versions import VersionInfo, _info, _model, _run_or_none, _versions
from nbtrack.query.compare import format_value

# -- what is in production -----------------------------------------------------------------------


@dataclass(frozen=True)
class ProductionModel:
    """What ``nbtrack.production(name)`` answers: the version in production, its run, metrics,
    data, when it was promoted and by whom, and the version it replaced."""

    name: str
    version: str
    uri: str
    run_id: str | None
    run_status: str | None
    metrics: dict[str, float]
    data_hash: str | None
    git_commit: str | None
    notebook: str | None
    promoted_at: str | None
    promoted_by: str | None
    reason: str | None
    previous: str | None
    info: VersionInfo

    def _lines(self) -> list[tuple[str, str]]:
        metrics = ", ".join(f"{k}={format_value(v)}" for k, v in self.info.key_metrics(6)) or "none"
        promoted = self.promoted_at or "unknown"
        if self.promoted_by:
            promoted += f" by {self.promoted_by}"
        if self.reason:
            promoted += f" ({self.reason})"
        run = self.run_id or "unknown"
        if self.run_status:
            run += f" ({self.run_status})"
        return [
            ("run", run),
            ("metrics", metrics),
            ("data", self.data_hash or "not recorded"),
            ("code", self.git_commit or "not recorded"),
            ("notebook", self.notebook or "not recorded"),
            ("promoted", promoted),
            ("before", f"version {self.previous}" if self.previous else "none"),
        ]

    def __repr__(self) -> str:
        head = f"nbtrack model {self.name} @ {self.uri}: version {self.version}"
        return "\n".join([head, *(f"  {k:<9}{v}" for k, v in self._lines())])

    def _repr_html_(self) -> str:
        e = html_text.escape
        rows = "".join(
            f"<tr><th style='text-align:left;padding-right:1em;color:#666'>{e(k)}</th>"
            f"<td style='text-align:left'>{e(v)}</td></tr>"
            for k, v in self._lines()
        )
        return (
            "<div class='nbtrack-model' style='font-size:12px;line-height:1.5;padding:4px 8px;"
            "border-left:3px solid #2e7d32;background:rgba(127,127,127,.07)'>"
            f"<b>{e(self.name)}</b> · version <b>{e(self.version)}</b> in production · "
            f"<code>{e(self.uri)}</code><table>{rows}</table></div>"
        )


def production(name: str) -> ProductionModel:
    """The version of model ``name`` in production (the alias, else the legacy stage field that
    older tools set), with its run, metrics, data hash, promotion and the version before it."""
    store.configure()
    rm = _model(name)
    amap = _alias_map(rm)
    alias = aliases()["production"]
    number = amap.get(alias)
    mv = store.model_version(name, number) if number else None
    if mv is None:
        legacy = [m for m in _versions(name) if m.current_stage == "Production"]
        if not legacy:
            raise NotFound(
                "production version of model", name, "promote one with nbtrack.promote(name, v)"
            )
        mv = legacy[-1]
    info = _info(mv, amap, _run_or_none(mv.run_id))
    return ProductionModel(
        name=name,
        version=info.version,
        uri=f"models:/{name}@{alias}",
        run_id=info.run_id,
        run_status=info.run_status,
        metrics=info.metrics,
        data_hash=info.data_hash,
        git_commit=info.git_commit,
        notebook=info.notebook,
        promoted_at=info.promoted_at,
        promoted_by=info.promoted_by,
        reason=info.promotion_reason,
        previous=amap.get(previous_alias()),
        info=info,
    )


def load(name: str, stage: str = "production", *, version: Any = None, flavor: str | None = None):
    """Load a version of model ``name`` with MLflow's loader for its flavour (a scikit-learn
    model comes back as the estimator; ``flavor="pyfunc"`` gives MLflow's generic wrapper).

    ``stage``: "production" or "staging" (loads ``models:/NAME@<alias>``); ``version``: a number
    instead."""
    store.configure()
    if version is not None:
        uri = f"models:/{name}/{version_of(version)}"
    else:
        alias = aliases()[stage_of(stage)]
        rm = _model(name)
        if alias not in _alias_map(rm):
            raise NotFound(f"{stage_of(stage)} version of model", name, "promote one first")
        uri = f"models:/{name}@{alias}"
    return store.load_model(uri, flavor or store.native_flavor(uri))
