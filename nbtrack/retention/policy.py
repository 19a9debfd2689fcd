"""Which runs gc keeps, and why: the never-delete rules, then the user's keep policy.

Never deleted, whatever the policy: the source run of any registered model version, runs whose
versions hold or held an alias (the registry's audit trail says which did), runs tagged
``nbtrack.keep``, running runs, and the reproduction proofs of any kept run. The policy then
keeps the top N by a metric, the last N started, and the runs newer than ``older_than``. Every
kept run carries its reasons, in words a user can check (``top-5 by val_acc``,
``registered: digits-clf v3``, ``alias production``...).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from nbtrack import record, store
from nbtrack.errors import UsageError
from nbtrack.record import RunView
from nbtrack.retention.inventory import DELETABLE

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class Policy:
    """What gc keeps (besides the never-delete rules) and what it deletes of the other runs."""

    keep_top: int | None = None
    metric: str | None = None
    mode: str = "max"
    keep_last: int | None = None
    older_than: dt.timedelta | None = None
    older_than_text: str | None = None
    kinds: tuple[str, ...] = DELETABLE
    delete_runs: bool = False

    @property
    def keeps_by_policy(self) -> bool:
        return bool(self.keep_top or self.keep_last or self.older_than)

    def to_dict(self) -> dict:
        return {
            "keep_top": self.keep_top,
            "metric": self.metric,
            "mode": self.mode,
            "keep_last": self.keep_last,
            "older_than": self.older_than_text,
            "kinds": list(self.kinds),
            "delete_runs": self.delete_runs,
        }


def make_policy(
    keep_top: int | None = None,
    metric: str | None = None,
    mode: str = "max",
    keep_last: int | None = None,
    older_than: str | float | dt.timedelta | None = None,
    kinds: str | Sequence[str] | None = None,
    delete_runs: bool = False,
) -> Policy:
    """The policy, checked: a bad value is a UsageError saying what to write instead."""
    if keep_top is not None and not metric:
        raise UsageError(
            "keep_top (--keep-top) ranks runs by a metric, and none was given",
            "name it with metric= (--metric), e.g. --metric val_acc",
        )
    for name, value in (("keep_top", keep_top), ("keep_last", keep_last)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise UsageError(f"{name} must be a whole number, not {value!r}", "e.g. 5")
        if value is not None and value < 0:
            raise UsageError(f"{name} must be 0 or more, not {value}", "e.g. 5")
    if mode not in ("max", "min"):
        raise UsageError(f"mode must be 'max' or 'min', not {mode!r}", "min for a loss")
    wanted = tuple(_kinds(kinds))
    delta, text = _duration(older_than)
    return Policy(keep_top, metric, mode, keep_last, delta, text, wanted, bool(delete_runs))


def _kinds(kinds: str | Sequence[str] | None) -> list[str]:
    if kinds is None:
        return list(DELETABLE)
    items = kinds.split(",") if isinstance(kinds, str) else list(kinds)
    items = [k.strip() for k in items if k.strip()]
    bad = [k for k in items if k not in DELETABLE]
    if bad or not items:
        raise UsageError(
            f"gc cannot delete the kind {', '.join(bad) or 'of nothing'}",
            f"choose among {', '.join(DELETABLE)} (a run's nbtrack/ snapshot always stays)",
        )
    return items


def _duration(value: str | float | dt.timedelta | None) -> tuple[dt.timedelta | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, dt.timedelta):
        return value, str(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.timedelta(days=float(value)), f"{value}d"
    m = _DURATION.match(str(value))
    if not m:
        raise UsageError(
            f"older_than {value!r} is not a duration",
            "write a number and a unit: 30m, 12h, 7d, 2w",
        )
    return dt.timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)]), str(value).strip()


def check_metric(policy: Policy, runs: Sequence[RunView], experiment: str) -> None:
    """A metric no run has is a mistake (a typo, the wrong experiment): say which exist."""
    if not policy.metric or any(policy.metric in r.metrics for r in runs):
        return
    known = sorted({k for r in runs for k in r.metrics})
    raise UsageError(
        f"no run of {experiment!r} has the metric {policy.metric!r}",
        f"metrics that exist: {', '.join(known[:30])}" if known else "its runs have no metrics",
    )


def protections(run_ids: Sequence[str]) -> dict[str, list[str]]:
    """The never-delete reasons the registry gives, per run: registered versions, aliases they
    hold, aliases they held (the audit trail's promote and rollback records)."""
    from nbtrack.model_registry import audit, names

    versions = store.versions_of_runs(run_ids)
    reasons: dict[str, list[str]] = defaultdict(list)
    run_of = {}
    for v in sorted(versions, key=lambda v: (v.name, int(v.version))):
        if v.run_id:
            reasons[v.run_id].append(f"registered: {v.name} v{v.version}")
            run_of[(v.name, v.version)] = v.run_id
    stage_alias = names.aliases()
    for name in sorted({v.name for v in versions}):
        model = store.registered_model(name)
        for alias, version in sorted((model.aliases if model else {}).items()):
            _add(reasons, run_of.get((name, str(version))), f"alias {alias}")
        for rec in audit.audit_records(name):
            if rec.get("action") in ("promote", "rollback") and rec.get("to_version"):
                alias = stage_alias.get(str(rec.get("stage")), str(rec.get("stage")))
                run_id = run_of.get((name, str(rec["to_version"])))
                if f"alias {alias}" not in reasons.get(run_id or "", []):
                    _add(reasons, run_id, f"held alias {alias}")
    return dict(reasons)


def _add(reasons: dict[str, list[str]], run_id: str | None, why: str) -> None:
    if run_id and why not in reasons[run_id]:
        reasons[run_id].append(why)


def run_guard(run: RunView) -> str | None:
    """The reason a run's own state forbids deleting it (asked again right before deleting)."""
    if run.status == "RUNNING":
        return "running"
    if record.TAG_KEEP in run.tags:
        return f"tag {record.TAG_KEEP}"
    if run.lifecycle_stage == "deleted":
        return "deleted meanwhile"
    return None


def decide(
    runs: Sequence[RunView],
    protected: dict[str, list[str]],
    policy: Policy,
    now: dt.datetime | None = None,
) -> dict[str, list[str]]:
    """run_id -> why it is kept (an empty list: gc may collect it)."""
    keep = {r.run_id: list(protected.get(r.run_id, ())) for r in runs}
    for r in runs:
        guard = run_guard(r)
        if guard:
            keep[r.run_id].append(guard)
    if policy.keep_top and policy.metric:
        ranked = [
            r
            for r in runs
            if policy.metric in r.metrics and not math.isnan(float(r.metrics[policy.metric]))
        ]
        ranked.sort(key=lambda r: float(r.metrics[policy.metric]), reverse=policy.mode == "max")
        for r in ranked[: policy.keep_top]:
            keep[r.run_id].append(f"top-{policy.keep_top} by {policy.metric}")
    if policy.keep_last:
        newest = sorted(runs, key=lambda r: r.start_time or 0, reverse=True)
        for r in newest[: policy.keep_last]:
            keep[r.run_id].append(f"last-{policy.keep_last} started")
    if policy.older_than is not None:
        now = now or dt.datetime.now(dt.timezone.utc)
        cutoff_ms = (now - policy.older_than).timestamp() * 1000
        for r in runs:
            if (r.start_time or 0) > cutoff_ms:
                keep[r.run_id].append(f"newer than {policy.older_than_text}")
    for r in runs:  # proofs of kept runs (one level: a proof is kept for its original)
        original = r.tags.get(record.TAG_REPRODUCES) or r.tags.get(record.TAG_REPRO_OF)
        if original and keep.get(original) and "proof" not in " ".join(keep[r.run_id]):
            keep[r.run_id].append("reproduction proof of a kept run")
    return keep
