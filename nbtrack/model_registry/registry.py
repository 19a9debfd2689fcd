"""The model registry from the notebook: register, promote, roll back, archive, and the audit
trail that says who moved what, when and why.

A pure core: it talks to MLflow only through ``nbtrack.store`` and knows nothing of IPython or
widgets. What it writes is part of the run-record contract (README, "Model registry"):

- Stages are MLflow aliases, ``production`` and ``staging`` by default (NBTRACK_PRODUCTION_ALIAS,
  NBTRACK_STAGING_ALIAS), so users load ``models:/NAME@production``. The version production
  replaced holds the alias ``previous_production`` (the rollback target). MLflow's deprecated
  stage field (Production, Staging, Archived) is kept in step for older readers unless
  NBTRACK_LEGACY_STAGES=0.
- A version registered by nbtrack carries tags ``run_id``, the run's final metrics (one tag per
  metric key), ``data_hash``, ``git_commit``, ``notebook``, and ``nbtrack.*`` bookkeeping
  (``nbtrack.stage``, who promoted or archived it and when, and why).
- Every move (register, promote, rollback, archive) appends one record to the registered model's
  tags under a key of its own, ``nbtrack.audit.<unix time ns>.<random>``, holding JSON: the keys
  are unique (two writers never overwrite each other), sort in time order, and nbtrack never
  rewrites or deletes them.

Reading ``production`` is MLflow's alias, which moves in one update: a reader never sees no
production model in the middle of a promotion. The rest (stage tags, the legacy stage field) is
derived from the aliases after each move and re-derived until the aliases stop changing under
it, so two promotions racing end consistent: the later alias write wins and both are audited.
"""

from __future__ import annotations

import datetime as dt
import getpass
import html
import json
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbtrack import settings, store
from nbtrack.errors import (
    MoveRefused,
    NoModelLogged,
    NoPreviousProduction,
    NotFound,
    RunNotFinished,
    UsageError,
)

STAGE_TAG = "nbtrack.stage"  # production | staging | archived
AUDIT_PREFIX = "nbtrack.audit."
AUDIT_FORMAT_TAG = "nbtrack.audit_format"  # written by can_edit's probe; says how to read records
LEGACY = {"production": "Production", "staging": "Staging", "archived": "Archived"}
RESERVED_TAGS = ("run_id", "data_hash", "git_commit", "notebook")
MAX_METRIC_TAGS = 50  # a run with thousands of metric keys keeps its version's tags readable
MAX_REASON = 2000
REFUSED_STATUSES = ("FAILED", "KILLED")
AUDIT_COLUMNS = ["when", "who", "action", "stage", "from_version", "to_version", "reason", "key"]


# -- names ---------------------------------------------------------------------------------------


def aliases() -> dict[str, str]:
    """Stage -> alias name, as configured: {"production": ..., "staging": ...}."""
    s = settings.current()
    return {"production": s.production_alias, "staging": s.staging_alias}


def previous_alias() -> str:
    return f"previous_{settings.current().production_alias}"


def stage_of(stage: str) -> str:
    """ "production" or "staging", from what a user may write ("Production", the alias name)."""
    text = str(stage).strip().lower()
    for canonical, alias in aliases().items():
        if text in (canonical, alias.lower()):
            return canonical
    raise UsageError(
        f"unknown stage {stage!r}",
        "promote to 'production' or 'staging'; to archive a version use nbtrack.archive",
    )


def version_of(version: Any) -> str:
    """MLflow returns versions as int (SQL store) or str (REST); nbtrack uses "3"."""
    text = str(version).strip()
    if text[:1] in ("v", "V"):
        text = text[1:]
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"{version!r} is not a model version", "versions are numbers: 1, 2, 3")
    return str(int(text))


def _who() -> str:
    # Against a tracking server the account the server knows is the one that matters.
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if user:
        return user
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _now() -> str:
    return (
        dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def _clean(text: str | None, limit: int = MAX_REASON) -> str:
    """A user's free text, with secrets redacted, before it becomes a tag."""
    from nbtrack.capture import redact

    if not text:
        return ""
    return redact.redact_text(str(text), redact.secret_values())[:limit]


def _alias_map(rm) -> dict[str, str]:
    return {str(k): version_of(v) for k, v in (getattr(rm, "aliases", None) or {}).items()}


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
        return self.tags.get("nbtrack.promoted_at")

    @property
    def promoted_by(self) -> str | None:
        return self.tags.get("nbtrack.promoted_by")

    @property
    def promotion_reason(self) -> str | None:
        return self.tags.get("nbtrack.promotion_reason") or None

    def key_metrics(self, n: int = 3) -> list[tuple[str, float]]:
        """Validation and test metrics first (what people ask about), then the rest, by name."""

        def rank(key: str) -> tuple[int, str]:
            low = key.lower()
            return (0 if low.startswith(("val", "test", "eval")) else 1, low)

        return [(k, self.metrics[k]) for k in sorted(self.metrics, key=rank)[:n]]


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
        params = run.params
    else:
        metrics = {}
        for key, value in tags.items():
            if key in RESERVED_TAGS or key.startswith(("nbtrack.", "mlflow.")):
                continue
            number = _number(value)
            if number is not None:
                metrics[key] = number
        params = {}
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
        run_id=mv.run_id or tags.get("run_id"),
        metrics=metrics,
        data_hash=tags.get("data_hash") or params.get("data_hash"),
        git_commit=tags.get("git_commit") or params.get("git_commit"),
        notebook=tags.get("notebook")
        or (run.tags.get("mlflow.source.name") if run is not None else None),
        experiment=tags.get("nbtrack.experiment"),
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
        metrics = ", ".join(f"{k}={_fmt(v)}" for k, v in self.info.key_metrics(6)) or "none"
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
        e = html.escape
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


def _fmt(value: float) -> str:
    return f"{value:.4g}"


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
    return store.load_model(uri, flavor or _flavor(uri))


def _flavor(uri: str) -> str:
    import importlib

    for name in store.model_flavors(uri):
        if name == "python_function":
            continue
        try:
            module = importlib.import_module(f"mlflow.{name}")
        except ImportError:
            continue
        if hasattr(module, "load_model"):
            return name
    return "pyfunc"


# -- registering ---------------------------------------------------------------------------------


def register(run_id: str, name: str, model_path: str | None = None) -> VersionInfo:
    """Register the model run ``run_id`` logged as a new version of model ``name`` (created if
    needed). ``model_path``: which logged model, by the name given to ``log_model`` (or its
    ``models:/m-...`` URI); default: the one the run logged last.

    The version carries tags run_id, the run's final metrics, data_hash, git_commit, notebook,
    and a description from the run."""
    store.configure()
    if not name or not str(name).strip():
        raise UsageError("a registered model needs a name", "pass name='digits-classifier'")
    run = store.get_run(run_id)
    source, model_id = _logged_model(run, name, model_path)
    experiment = _experiment_name(run)
    who, when = _who(), _now()
    tags = version_tags(run, experiment)
    tags.update({"nbtrack.registered_by": who, "nbtrack.registered_at": when})
    store.create_registered_model(name)
    mv = store.create_model_version(
        name,
        source=source,
        run_id=run_id,
        tags=tags,
        description=_description(run, experiment),
        model_id=model_id,
    )
    number = version_of(mv.version)
    _record(name, "register", None, None, number, who, when, "")
    return _info(mv, {}, run)


def _logged_model(run, name: str, model_path: str | None) -> tuple[str, str | None]:
    """(source URI, LoggedModel id) of the model to register. In MLflow 3 ``log_model`` stores a
    LoggedModel (``models:/m-<id>``) outside the run's artifacts: ``runs:/<id>/model`` would
    not find it."""
    run_id = run.run_id
    if model_path and model_path.startswith("models:/m-"):
        return model_path, model_path[len("models:/") :]
    logged = [
        m
        for m in store.logged_models_of_run(run)
        if str(getattr(m, "status", "")).upper().rsplit(".", 1)[-1] != "FAILED"
    ]
    if model_path:
        logged = [m for m in logged if model_path in (m.name, m.model_id)]
    if not logged:
        raise NoModelLogged(run_id, name, model_path or "")
    chosen = logged[-1]
    return chosen.model_uri, chosen.model_id


def _experiment_name(run) -> str | None:
    try:
        return store.experiment_name(run.experiment_id)
    except Exception:
        return None


def version_tags(run, experiment: str | None) -> dict[str, str]:
    """The tags a version registered from ``run`` carries (the contract in the README)."""
    data = run
    tags: dict[str, str] = {}
    for key in sorted(data.metrics)[:MAX_METRIC_TAGS]:
        tags[key] = repr(float(data.metrics[key]))
    tags["run_id"] = run.run_id
    data_hash = data.params.get("data_hash")
    commit = data.params.get("git_commit") or data.tags.get("mlflow.source.git.commit")
    notebook = data.tags.get("mlflow.source.name")
    for key, value in (("data_hash", data_hash), ("git_commit", commit), ("notebook", notebook)):
        if value:
            tags[key] = _clean(value)  # a run logged by other tools was not redacted by nbtrack
    if experiment:
        tags["nbtrack.experiment"] = experiment
    return tags


def _description(run, experiment: str | None) -> str:
    note = run.tags.get("mlflow.note.content")
    if note:
        return _clean(note, 5000)
    parts = [f"From run {run.name or run.run_id} ({run.run_id})"]
    if experiment:
        parts.append(f"of experiment {experiment}")
    notebook = run.tags.get("mlflow.source.name")
    if notebook:
        parts.append(f"in {os.path.basename(notebook)}")
    text = " ".join(parts)
    shown = sorted(run.metrics.items())[:4]
    if shown:
        text += ": " + ", ".join(f"{k}={_fmt(v)}" for k, v in shown)
    return text + "."


# -- moving --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Move:
    """What a promotion, rollback or archive did."""

    name: str
    action: str  # promote | rollback | archive
    stage: str  # production | staging | archived
    version: str
    previous: str | None  # the version that held the stage before, if any
    who: str
    when: str
    reason: str
    changed: bool = True

    def __str__(self) -> str:
        if not self.changed:
            return f"version {self.version} of {self.name} is already in {self.stage}"
        if self.stage == "archived":
            return f"version {self.version} of {self.name} is archived"
        was = f" (was version {self.previous})" if self.previous else ""
        return f"version {self.version} of {self.name} is now in {self.stage}{was}"

    def __repr__(self) -> str:
        return f"<nbtrack move: {self}>"


def promote(
    name: str,
    version: Any,
    stage: str = "production",
    reason: str | None = None,
    *,
    force: bool = False,
) -> Move:
    """Move ``stage`` ("production" or "staging") of model ``name`` to ``version``.

    The version production replaces is archived and becomes ``previous_production`` (what
    ``rollback`` restores). A version whose run FAILED (or was KILLED) is refused unless
    ``force=True``. The move is recorded in the audit trail with ``reason``."""
    store.configure()
    return _move(name, version_of(version), stage_of(stage), reason, "promote", force)


def rollback(name: str, reason: str | None = None) -> Move:
    """Put the previous production version of model ``name`` back in production, in one call
    (rolling back twice undoes the rollback)."""
    store.configure()
    rm = _model(name)
    amap = _alias_map(rm)
    current = amap.get(aliases()["production"])
    previous = amap.get(previous_alias())
    if not previous or previous == current:
        raise NoPreviousProduction(name)
    return _move(name, previous, "production", reason, "rollback", True, rm=rm)


def archive(name: str, version: Any, reason: str | None = None) -> Move:
    """Archive ``version`` of model ``name`` (it leaves staging if it was there). The version in
    production cannot be archived: promote another one, or roll back, first."""
    store.configure()
    number = version_of(version)
    rm = _model(name)
    amap = _alias_map(rm)
    mvs = _versions(name)
    _version(name, number, mvs)
    names = aliases()
    if amap.get(names["production"]) == number:
        raise MoveRefused(
            name,
            number,
            "is in production and cannot be archived",
            "promote another version, or roll back, first",
        )
    who, when, why = _who(), _now(), _clean(reason)
    if amap.get(names["staging"]) == number:
        store.delete_alias(name, names["staging"])
    store.set_version_tags(
        name,
        number,
        {
            STAGE_TAG: "archived",
            "nbtrack.archived_at": when,
            "nbtrack.archived_by": who,
            "nbtrack.archive_reason": why,
        },
    )
    _reconcile(name)
    _record(name, "archive", "archived", None, number, who, when, why)
    return Move(name, "archive", "archived", number, None, who, when, why)


def _move(
    name: str,
    number: str,
    stage: str,
    reason: str | None,
    action: str,
    force: bool,
    rm=None,
) -> Move:
    rm = rm if rm is not None else _model(name)
    amap = _alias_map(rm)
    mvs = _versions(name)
    mv = _version(name, number, mvs)
    if not force and mv.run_id:
        run = _run_or_none(mv.run_id)
        if run is not None and run.status in REFUSED_STATUSES:
            raise RunNotFinished(name, number, mv.run_id, run.status)
    names = aliases()
    alias = names[stage]
    previous = amap.get(alias)
    if previous is None:
        # A model managed the old way (stages, no aliases): its Production version is the one
        # this promotion replaces, and so the one a rollback restores.
        legacy = [version_of(m.version) for m in mvs if m.current_stage == LEGACY[stage]]
        previous = legacy[-1] if legacy else None
    who, when, why = _who(), _now(), _clean(reason)
    if previous == number and amap.get(alias) == number:
        return Move(name, action, stage, number, None, who, when, why, changed=False)

    # The one write readers see: the alias moves in a single update.
    store.set_alias(name, alias, number)
    if stage == "production":
        if previous and previous != number:
            store.set_alias(name, previous_alias(), previous)
        if amap.get(names["staging"]) == number:
            # A version has one stage: from staging to production leaves staging empty.
            store.delete_alias(name, names["staging"])
    tags = {
        "nbtrack.promoted_at": when,
        "nbtrack.promoted_by": who,
        "nbtrack.promotion_reason": why,
    }
    store.set_version_tags(name, number, tags)
    if previous and previous != number:
        store.set_version_tags(
            name, previous, {"nbtrack.archived_at": when, "nbtrack.archived_by": who}
        )
    _reconcile(name)
    _record(name, action, stage, previous, number, who, when, why)
    return Move(
        name, action, stage, number, previous if previous != number else None, who, when, why
    )


def _reconcile(name: str, attempts: int = 8) -> None:
    """Make every version's stage tag (and the legacy stage field) agree with the aliases.

    The aliases are the truth; everything else is derived from them. Two writers racing may
    each derive from what they read, so after writing, the aliases are read again, and the
    derivation is redone until they did not change under it: whoever writes last has read
    the final aliases, and the registry ends consistent."""
    rm = _model(name)
    for _ in range(attempts):
        amap = _alias_map(rm)
        _derive(name, amap, store.model_versions(name))
        rm = _model(name)
        if _stage_aliases(_alias_map(rm)) == _stage_aliases(amap):
            return
        time.sleep(0.01)


def _stage_aliases(amap: Mapping[str, str]) -> tuple[str | None, ...]:
    return tuple(amap.get(a) for a in aliases().values())


def _derive(name: str, amap: Mapping[str, str], mvs: Sequence) -> None:
    names = aliases()
    holder = {stage: amap.get(alias) for stage, alias in names.items()}
    legacy_on = settings.current().legacy_stages
    promotions, archivals = [], []
    for mv in mvs:
        number = version_of(mv.version)
        tag = (mv.tags or {}).get(STAGE_TAG)
        legacy = str(mv.current_stage or "None")
        if number == holder["production"]:
            want = "production"
        elif number == holder["staging"]:
            want = "staging"
        elif (tag in ("production", "staging") and holder.get(tag)) or any(
            legacy == LEGACY[s] and holder[s] for s in ("production", "staging")
        ):
            # It held a stage someone else holds now. (A legacy Production version of a model
            # without a production alias is left alone: it is an older tool's production.)
            want = "archived"
        else:
            want = tag if tag in LEGACY else None
        if want is None:
            continue
        writes = (number, want, tag != want, legacy_on and legacy != LEGACY[want])
        (archivals if want == "archived" else promotions).append(writes)
    # Promotions first: a reader of the legacy field may see two Production versions for a
    # moment, never none.
    for number, want, tag_differs, legacy_differs in promotions + archivals:
        if tag_differs:
            store.set_version_tags(name, number, {STAGE_TAG: want})
        if legacy_differs:
            store.set_legacy_stage(name, number, LEGACY[want])


# -- the audit trail -----------------------------------------------------------------------------


def _record(
    name: str,
    action: str,
    stage: str | None,
    previous: str | None,
    number: str,
    who: str,
    when: str,
    reason: str,
) -> str:
    """Append one record to the model's audit trail; returns its tag key.

    The key is new for every record (time in ns, then random), so two writers never overwrite
    each other, and keys sort in time order."""
    key = f"{AUDIT_PREFIX}{time.time_ns():020d}.{uuid.uuid4().hex[:8]}"
    record = {
        "action": action,
        "stage": stage,
        "from": previous,
        "to": number,
        "who": who,
        "when": when,
        "reason": reason or None,
    }
    store.set_model_tag(name, key, json.dumps(record, sort_keys=True))
    return key


def audit_records(name: str) -> list[dict[str, Any]]:
    """The audit trail of model ``name``, oldest first, as dicts (the DataFrame's rows)."""
    store.configure()
    rm = _model(name)
    rows = []
    for key, value in sorted((rm.tags or {}).items()):
        if not key.startswith(AUDIT_PREFIX):
            continue
        try:
            record = json.loads(value)
        except ValueError:
            continue  # not nbtrack's: skip rather than fail the whole trail
        if not isinstance(record, dict):
            continue
        rows.append(
            {
                "when": record.get("when"),
                "who": record.get("who"),
                "action": record.get("action"),
                "stage": record.get("stage"),
                "from_version": record.get("from"),
                "to_version": record.get("to"),
                "reason": record.get("reason"),
                "key": key,
            }
        )
    return rows


def audit(name: str):
    """The audit trail of model ``name`` as a DataFrame, oldest first: when (UTC), who, action
    (register, promote, rollback, archive), stage, from_version, to_version, reason, key (the
    registered-model tag holding the record)."""
    import pandas as pd

    frame = pd.DataFrame(audit_records(name), columns=AUDIT_COLUMNS)
    frame["when"] = pd.to_datetime(frame["when"], utc=True, errors="coerce")
    return frame


# -- may this user change the model? -------------------------------------------------------------


def can_edit(name: str) -> str | None:
    """None when the store lets this user change model ``name``; else the sentence that says why
    not (a read-only account on a tracking server).

    A tracking server has no public "what may I do" call, so this writes a tag that is already
    there (the audit format marker): harmless, and refused exactly when a move would be. A
    local store is writable or fails loudly on the move itself."""
    store.configure()
    from nbtrack.errors import PermissionDenied

    if store.server_url() is None:
        return None
    try:
        store.set_model_tag(name, AUDIT_FORMAT_TAG, "1")
    except PermissionDenied as e:
        return str(e)
    return None


__all__ = [
    "ModelSummary",
    "Move",
    "ProductionModel",
    "VersionInfo",
    "archive",
    "audit",
    "audit_records",
    "can_edit",
    "experiment_of",
    "list_models",
    "load",
    "production",
    "promote",
    "register",
    "require",
    "rollback",
    "run_url",
    "version",
    "versions",
]
