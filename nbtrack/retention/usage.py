"""``nbtrack.usage``: where the disk went, per run and per kind, largest first; with a gc
policy, what that gc would free."""

from __future__ import annotations

from dataclasses import dataclass

from nbtrack import store
from nbtrack.retention import gc as gcs
from nbtrack.retention import policy as policies
from nbtrack.retention.inventory import KINDS, experiment_ids, inventory, runs_of

COLUMNS = ["run_id", "name", "status", *KINDS, "total"]


@dataclass
class Usage:
    """``frame``: one row per run (bytes per kind and in all; with a policy, what gc would free
    of it), largest first; ``total`` and
    ``by_kind`` over every run; ``would_free``: what a gc with the policy given would free
    (None when no policy was given), with ``gc`` its plan."""

    experiment: str
    frame: object
    total: int
    by_kind: dict[str, int]
    would_free: int | None = None
    gc: gcs.GcResult | None = None

    def __str__(self) -> str:
        kinds = ", ".join(f"{k} {gcs.human(v)}" for k, v in self.by_kind.items())
        text = f"{self.experiment}: {gcs.human(self.total)} in {len(self.frame)} runs ({kinds})"
        if self.would_free is not None:
            text += f"; the gc policy would free {gcs.human(self.would_free)}"
        return text

    def _repr_html_(self) -> str:
        from nbtrack.html_text import escape

        return f"<p>{escape(str(self))}</p>" + self.frame.to_html(index=False)


def usage(experiment: str | None = None, policy: policies.Policy | None = None) -> Usage:
    import pandas as pd

    store.configure()
    label = experiment or "all experiments"
    freed: dict[str, int] = {}
    if policy is not None:
        result = gcs.plan(experiment, policy, label)
        files = [p.files for p in result.plans]
        freed = {p.files.run.run_id: p.bytes for p in result.plans if p.collected}
    else:
        result = None
        exp_ids = experiment_ids(experiment)
        files = inventory(runs_of(exp_ids), exp_ids)
    rows = []
    by_kind = dict.fromkeys(KINDS, 0)
    for rf in files:
        kinds = rf.by_kind()
        for k, v in kinds.items():
            by_kind[k] += v
        run = rf.run
        row = {"run_id": run.run_id, "name": run.name, "status": run.status, **kinds}
        row["total"] = sum(kinds.values())
        if result is not None:
            row["would_free"] = freed.get(run.run_id, 0)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=COLUMNS + (["would_free"] if result is not None else []))
    frame = frame.sort_values("total", ascending=False, kind="stable").reset_index(drop=True)
    return Usage(
        label,
        frame,
        sum(by_kind.values()),
        by_kind,
        result.bytes if result is not None else None,
        result,
    )
