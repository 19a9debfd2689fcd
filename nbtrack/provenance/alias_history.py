"""Which aliases a model version held at a moment, replayed from the registry's audit trail (every
promote, rollback and archive nbtrack made is a record there, with its time)."""

from __future__ import annotations

import datetime as dt
import logging

from nbtrack.errors import NotFound
from nbtrack.model_registry.audit import audit_records
from nbtrack.model_registry.names import aliases, previous_alias
from nbtrack.provenance.labels import iso_utc

_log = logging.getLogger(__name__)


def _ms(when: str | None) -> int | None:
    if not when:
        return None
    try:
        moment = dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return int(moment.timestamp() * 1000)


def timeline(name: str) -> list[tuple[int, dict[str, str]]]:
    """The aliases of model ``name`` after each recorded move: [(time ms, {alias: version})],
    oldest first; empty when nbtrack never moved the model (or the model is gone)."""
    try:
        records = audit_records(name)
    except NotFound:
        return []
    names = aliases()
    production, staging, previous = names["production"], names["staging"], previous_alias()
    state: dict[str, str] = {}
    out: list[tuple[int, dict[str, str]]] = []
    for r in records:
        when = _ms(r.get("when"))
        to, stage, action = r.get("to_version"), r.get("stage"), r.get("action")
        if when is None or not to:
            continue
        to = str(to)
        if action in ("promote", "rollback") and stage in names:
            alias = names[stage]
            before = state.get(alias)
            state[alias] = to
            if stage == "production":
                if before and before != to:
                    state[previous] = before
                if state.get(staging) == to:
                    del state[staging]
        elif action == "archive" and state.get(staging) == to:
            del state[staging]
        if production in state and state.get(previous) == state[production]:
            del state[previous]
        out.append((when, dict(state)))
    return out


def aliases_at(name: str, version: str, when_ms: int) -> list[str] | None:
    """The aliases ``version`` of ``name`` held at ``when_ms``; None when the trail cannot say
    (no move recorded for the model)."""
    moves = timeline(name)
    if not moves:
        return None
    held: dict[str, str] = {}
    for when, state in moves:
        if when > when_ms:
            break
        held = state
    return sorted(a for a, v in held.items() if v == str(version))


def version_history(name: str, version: str) -> list[dict[str, str]]:
    """When ``version`` gained and lost each alias: [{"alias", "from", "to"}] (ISO times; "to" is
    "" while it still holds it)."""
    spans: list[dict[str, str]] = []
    open_: dict[str, int] = {}
    for when, state in timeline(name):
        now = {a for a, v in state.items() if v == str(version)}
        for alias in now - open_.keys():
            open_[alias] = when
        for alias in [a for a in open_ if a not in now]:
            spans.append(
                {
                    "alias": alias,
                    "from": iso_utc(open_.pop(alias), "seconds"),
                    "to": iso_utc(when, "seconds"),
                }
            )
    spans += [{"alias": a, "from": iso_utc(t, "seconds"), "to": ""} for a, t in open_.items()]
    return sorted(spans, key=lambda s: s["from"])
