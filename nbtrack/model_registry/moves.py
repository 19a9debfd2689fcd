"""Moving versions between stages: promote, rollback, archive; the stage tags and MLflow's legacy
stage field derived from the aliases after each move."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nbtrack import record, settings, store
from nbtrack.errors import (
    MoveRefused,
    NoPreviousProduction,
    RunNotFinished,
)
from nbtrack.model_registry.audit import append_record
from nbtrack.model_registry.names import (
    LEGACY,
    REFUSED_STATUSES,
    STAGE_TAG,
    _alias_map,
    _clean,
    _now,
    _who,
    aliases,
    cleared,
    previous_alias,
    stage_of,
    version_of,
)
from nbtrack.model_registry.versions import _model, _run_or_none, _version, _versions
from nbtrack.record import ModelView

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
    return _move(
        name, version_of(version), stage_of(stage), reason=reason, action="promote", force=force
    )


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
    return _move(name, previous, "production", reason=reason, action="rollback", force=True, rm=rm)


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
        cleared(
            {
                STAGE_TAG: "archived",
                record.TAG_ARCHIVED_AT: when,
                record.TAG_ARCHIVED_BY: who,
                record.TAG_ARCHIVE_REASON: why,
            }
        ),
    )
    _reconcile(name)
    append_record(
        name,
        action="archive",
        stage="archived",
        previous=None,
        number=number,
        who=who,
        when=when,
        reason=why,
    )
    return Move(name, "archive", "archived", number, None, who, when, why)


def _move(
    name: str,
    number: str,
    stage: str,
    *,
    reason: str | None,
    action: str,
    force: bool,
    rm: ModelView | None = None,
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
        record.TAG_PROMOTED_AT: when,
        record.TAG_PROMOTED_BY: who,
        record.TAG_PROMOTION_REASON: why,
    }
    store.set_version_tags(name, number, cleared(tags))
    if previous and previous != number:
        store.set_version_tags(
            name, previous, cleared({record.TAG_ARCHIVED_AT: when, record.TAG_ARCHIVED_BY: who})
        )
    _reconcile(name)
    append_record(
        name,
        action=action,
        stage=stage,
        previous=previous,
        number=number,
        who=who,
        when=when,
        reason=why,
    )
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
            store.set_version_tags(name, number, cleared({STAGE_TAG: want}))
        if legacy_differs:
            store.set_legacy_stage(name, number, LEGACY[want])
