"""What a grid made, read back from the store: one record per point, and ``GridResult``.

A point's record is the runs of its latest attempt (a resume re-runs a point under a new attempt
id; the earlier runs stay in MLflow, under the same parent). A notebook with several tracked
cells gives several runs per point: the point's row merges their metrics (a key logged by two
cells takes the later cell's value), ``run_id`` is its last run and ``runs`` how many it has;
``GridResult.runs`` has one row per run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nbtrack import html_text, store
from nbtrack.errors import MissingExtra, UsageError, warn
from nbtrack.grids import display_hooks
from nbtrack.grids.point import TAG_ATTEMPT, TAG_ERROR, TAG_GRID, TAG_POINT, TAG_SECONDS, TAG_STATUS
from nbtrack.query.compare import format_value
from nbtrack.record import ARTIFACT_GRID_POINTS as POINTS
from nbtrack.record import TAG_GRID_NOTEBOOK as TAG_NOTEBOOK
from nbtrack.record import TAG_GRID_POINTS as TAG_POINTS

_display = display_hooks


PENDING = "PENDING"  # not run (yet): the grid was stopped before it, or it is still queued
SUMMARY_ROWS = 20


@dataclass
class PointRecord:
    index: int
    params: Mapping[str, Any]
    status: str = PENDING
    runs: list = field(default_factory=list)  # MLflow Run entities, oldest first
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float | None = None
    error: str = ""
    attempt: str = ""

    @property
    def done(self) -> bool:
        """FINISHED by its record (resume skips it)."""
        return bool(self.runs) and all(r.tags.get(TAG_STATUS) == "FINISHED" for r in self.runs)

    @property
    def run_id(self) -> str | None:
        return self.runs[-1].run_id if self.runs else None


def point_records(points: Sequence[Mapping[str, Any]], runs: Sequence) -> list[PointRecord]:
    """Group a grid's runs (oldest first) by point, keeping each point's latest attempt."""
    by_point: dict[int, list] = {}
    for r in runs:
        raw = r.tags.get(TAG_POINT, "")
        if raw.isdigit():
            by_point.setdefault(int(raw), []).append(r)
    records = []
    for i, params in enumerate(points):
        rec = PointRecord(i, params)
        mine = by_point.get(i, [])
        if mine:
            rec.attempt = mine[-1].tags.get(TAG_ATTEMPT, "")
            rec.runs = [r for r in mine if r.tags.get(TAG_ATTEMPT, "") == rec.attempt]
            _fill(rec)
        records.append(rec)
    return records


def _fill(rec: PointRecord) -> None:
    tags = [r.tags for r in rec.runs]
    statuses = {t.get(TAG_STATUS) for t in tags}
    if len(statuses) == 1 and None not in statuses:
        rec.status = statuses.pop() or PENDING
    elif any(r.status == "RUNNING" for r in rec.runs):
        rec.status = "RUNNING"
    else:  # a record its worker could not complete: say what MLflow says
        mlflow_statuses = {r.status for r in rec.runs}
        rec.status = next((s for s in ("FAILED", "KILLED") if s in mlflow_statuses), "FINISHED")
    for r in rec.runs:
        rec.metrics.update(r.metrics)
    seconds = next((t.get(TAG_SECONDS) for t in tags if t.get(TAG_SECONDS)), None)
    try:
        rec.seconds = float(seconds) if seconds is not None else None
    except ValueError:
        rec.seconds = None
    rec.error = next((t[TAG_ERROR] for t in tags if t.get(TAG_ERROR)), "")


# -- the result --------------------------------------------------------------------------------


class GridResult:
    """A grid's outcome: ``df`` (one row per point), ``best()``, ``compare()``, ``failure(i)``."""

    def __init__(
        self,
        grid_run_id: str,
        experiment: str,
        notebook: str,
        points: list[PointRecord],
        *,
        status: str = "FINISHED",
        metric: str | None = None,
        mode: str = "max",
    ) -> None:
        self.grid_run_id = grid_run_id
        self.experiment = experiment
        self.notebook = notebook
        self.points = points
        self.status = status  # the parent run's
        self.metric = metric
        self.mode = mode

    # -- tables ------------------------------------------------------------------------------

    @property
    def param_names(self) -> list[str]:
        names: dict[str, None] = {}
        for p in self.points:
            names.update(dict.fromkeys(p.params))
        return list(names)

    @property
    def df(self):
        """One row per point: ``point``, ``params.<name>`` (the values as given), ``status``,
        ``metrics.<key>`` (last values; merged over the point's runs), ``duration`` (s, the
        point's wall time), ``run_id`` (its last run), ``runs`` (how many), ``error``."""
        import pandas as pd

        metric_keys = sorted({k for p in self.points for k in p.metrics})
        rows = []
        for p in self.points:
            row: dict[str, Any] = {"point": p.index}
            row.update({f"params.{k}": p.params.get(k) for k in self.param_names})
            row["status"] = p.status
            row.update({f"metrics.{k}": p.metrics.get(k, math.nan) for k in metric_keys})
            row["duration"] = p.seconds if p.seconds is not None else math.nan
            row["run_id"] = p.run_id
            row["runs"] = len(p.runs)
            row["error"] = p.error
            rows.append(row)
        columns = [
            "point",
            *(f"params.{k}" for k in self.param_names),
            "status",
            *(f"metrics.{k}" for k in metric_keys),
            "duration",
            "run_id",
            "runs",
            "error",
        ]
        return pd.DataFrame(rows, columns=columns)

    @property
    def runs(self):
        """One row per run of the points' latest attempts: ``point``, ``run_id``, ``name``,
        ``status`` (MLflow's), ``metrics.<key>``."""
        import pandas as pd

        rows = []
        for p in self.points:
            for r in p.runs:
                row = {
                    "point": p.index,
                    "run_id": r.run_id,
                    "name": r.name,
                    "status": r.status,
                }
                row.update({f"metrics.{k}": v for k, v in sorted(r.metrics.items())})
                rows.append(row)
        return pd.DataFrame(rows)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.points:
            out[p.status] = out.get(p.status, 0) + 1
        return out

    def best(self, metric: str | None = None, mode: str | None = None):
        """The row of ``df`` with the best value of ``metric`` among FINISHED points ("max" or
        "min"; default: the grid's ``metric=`` and ``mode=``)."""
        metric = metric or self.metric
        mode = mode or self.mode
        if mode not in ("max", "min"):
            raise UsageError(f"mode must be 'max' or 'min', got {mode!r}")
        if not metric:
            have = sorted({k for p in self.points for k in p.metrics})
            raise UsageError(
                "best() needs a metric", f"e.g. best({have[0]!r})" if have else "no point has one"
            )
        df = self.df
        column = f"metrics.{metric}"
        done = df[df["status"] == "FINISHED"]
        if column not in df.columns or done[column].isna().all():
            have = sorted({k for p in self.points for k in p.metrics})
            raise UsageError(
                f"no FINISHED point of the grid has metric {metric!r}",
                f"its metrics: {', '.join(have) or 'none'}",
            )
        values = done[column]
        return done.loc[values.idxmax() if mode == "max" else values.idxmin()]

    def failure(self, point: int) -> dict[str, Any]:
        """What stopped a point: its error line, the failing cell's source, its traceback (from
        the ``nbtrack/grid/error.json`` artifact)."""
        from nbtrack import store
        from nbtrack.grids.point import ERROR

        rec = next((p for p in self.points if p.index == point), None)
        if rec is None:
            raise UsageError(
                f"the grid has no point {point}", f"points 0 to {len(self.points) - 1}"
            )
        for r in rec.runs:
            text = store.artifact_text(r.run_id, ERROR)
            if text:
                return json.loads(text)
        return {"error": rec.error}

    @property
    def filter(self) -> str:
        """The MLflow filter for the grid's runs (``nbtrack.runs`` / ``nbtrack.compare``)."""
        return f"tags.`mlflow.parentRunId` = '{self.grid_run_id}'"

    def compare(self, **kwargs: Any):
        """The comparison panel on the grid's runs (``nbtrack.compare``'s arguments)."""
        if _display.compare is None:
            raise UsageError("GridResult.compare needs nbtrack's facade (import nbtrack)")
        return _display.compare(self.experiment, filter=self.filter, **kwargs)

    # -- display -----------------------------------------------------------------------------

    def _best_text(self) -> str:
        if not self.metric:
            return ""
        try:
            row = self.best()
        except UsageError:
            return f"best {self.metric}: none"
        params = ", ".join(f"{k}={_py(row[f'params.{k}'])!r}" for k in self.param_names)
        return f"best {self.metric} ({self.mode}) {row[f'metrics.{self.metric}']:.4g} at {params}"

    def _headline(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.counts().items()))
        name = self.notebook.rsplit("/", 1)[-1]
        parts = [f"nbtrack grid {self.grid_run_id}", name, self.experiment, self.status, counts]
        return " · ".join(parts)

    def _ipython_display_(self) -> None:
        """Shown in a notebook: the summary, then, when a frontend shows widgets live
        (JupyterLab, VS Code), the comparison panel on the grid's runs. Headless (papermill,
        nbval) the summary alone: the panel would only repeat its table."""
        from IPython.display import display

        display({"text/html": self._repr_html_(), "text/plain": repr(self)}, raw=True)
        if _display.has_frontend() and len(self.df):
            try:
                display(self.compare())
            except MissingExtra as e:  # no ipywidgets: the summary is all there is
                warn(str(e))

    def __repr__(self) -> str:
        best = self._best_text()
        return f"<{self._headline()}{' · ' + best if best else ''}>"

    def _repr_html_(self) -> str:
        e = html_text.escape
        df = self.df
        if self.metric and f"metrics.{self.metric}" in df.columns:
            df = df.sort_values(f"metrics.{self.metric}", ascending=self.mode == "min")
        metric_cols = [c for c in df.columns if c.startswith("metrics.")]
        if self.metric and f"metrics.{self.metric}" in metric_cols:
            metric_cols = [f"metrics.{self.metric}"]
        cols = [c for c in df.columns if c.startswith("params.")] + ["status", *metric_cols[:4]]
        head = "".join(f"<th>{e(c)}</th>" for c in ["point", *cols, "duration", "run"])
        body = []
        for _, row in df.head(SUMMARY_ROWS).iterrows():
            cells = [f"<td>{e(str(row['point']))}</td>"]
            cells += [f"<td>{e(_fmt(row[c]))}</td>" for c in cols]
            seconds = row["duration"]
            cells.append(
                f"<td class='nbtrack-s'>{'' if math.isnan(seconds) else f'{seconds:.1f} s'}</td>"
            )
            cells.append(f"<td><code class='nbtrack-id'>{e(row['run_id'] or '')}</code></td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        more = len(df) - SUMMARY_ROWS
        best = self._best_text()
        return (
            "<div class='nbtrack-grid' style='font:12px/1.45 sans-serif;margin:4px 0'>"
            f"<div><b>nbtrack grid</b> <code class='nbtrack-id'>{e(self.grid_run_id)}</code> · "
            f"{e(self.notebook.rsplit('/', 1)[-1])} · {e(self.experiment)} · "
            f"<b>{e(self.status)}</b> · "
            f"{e(', '.join(f'{n} {s}' for s, n in sorted(self.counts().items())))}</div>"
            + (f"<div>{e(best)}</div>" if best else "")
            + "<table style='border-collapse:collapse'><thead><tr>"
            + head
            + "</tr></thead><tbody>"
            + "".join(body)
            + "</tbody></table>"
            + (
                f"<div style='color:#888'>and {more} more points: .df has them all</div>"
                if more > 0
                else ""
            )
            + "<div style='color:#888'>.df: every point · .best() · .compare(): the comparison "
            "panel on these runs</div></div>"
        )


def load(
    grid_run_id: str, *, metric: str | None = None, mode: str = "max", status: str | None = None
) -> GridResult:
    """The GridResult of a grid from its record (any grid, finished or not)."""
    run = store.get_run(grid_run_id)
    tags = run.tags
    if TAG_POINTS not in tags:
        raise UsageError(f"run {grid_run_id} is not a grid's parent run")
    text = store.artifact_text(grid_run_id, POINTS) or "[]"
    points = [p["params"] for p in sorted(json.loads(text), key=lambda p: p["index"])]
    exp_id = run.experiment_id
    runs = store.search_all_runs([exp_id], store.tag_filter({TAG_GRID: grid_run_id}))
    return GridResult(
        grid_run_id,
        store.experiment_name(exp_id),
        tags.get(TAG_NOTEBOOK, ""),
        point_records(points, runs),
        status=status or run.status,
        metric=metric,
        mode=mode,
    )


def _py(value: Any) -> Any:
    """A pandas cell as the Python value it holds (np.float64(2.0) -> 2.0)."""
    item = getattr(value, "item", None)
    return item() if callable(item) and not isinstance(value, list | dict | str) else value


def _fmt(value: Any) -> str:
    return format_value(_py(value))


__all__ = ["GridResult", "PointRecord", "point_records"]
