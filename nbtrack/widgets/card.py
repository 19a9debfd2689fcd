"""The run card shown under a tracked cell: plain HTML, so it survives saved and headless runs.

A view only: the magic (``frontends/magic.py``) reads the run's params and metrics from the store
and hands them to ``card_for``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nbtrack.record import RunView
from nbtrack.widgets._html import esc, metric

STATUS_COLOURS = {"FINISHED": "#2e7d32", "FAILED": "#c62828", "KILLED": "#ef6c00"}
MAX_METRICS = 6


@dataclass(frozen=True)
class RunCard:
    run_id: str
    experiment: str
    name: str
    status: str
    duration: float
    n_params: int
    metrics: dict[str, float] = field(default_factory=dict)
    url: str | None = None
    model: str | None = None  # "digits version 3" when --register made a version
    catching_up: tuple[int, int] | None = None  # (points in MLflow, logged) while it catches up

    def _metric_items(self) -> list[tuple[str, str]]:
        items = sorted(self.metrics.items())[:MAX_METRICS]
        return [(k, metric(v)) for k, v in items]

    def __repr__(self) -> str:
        parts = [
            f"nbtrack run {self.run_id} ({self.experiment} / {self.name})",
            f"{self.status} in {_duration(self.duration)}",
            f"{self.n_params} params",
        ]
        parts += [f"{k}={v}" for k, v in self._metric_items()]
        if self.model:
            parts.append(f"registered as {self.model}")
        if self.catching_up:
            parts.append(_catching_up(self.catching_up))
        return " · ".join(parts)

    def _repr_html_(self) -> str:
        e = esc
        colour = STATUS_COLOURS.get(self.status, "#555")
        metrics = " ".join(
            f"<span style='margin-right:.8em'>{e(k)} <b>{e(v)}</b></span>"
            for k, v in self._metric_items()
        )
        link = (
            f" · <a href='{e(self.url)}' target='_blank' rel='noopener'>MLflow</a>"
            if self.url
            else ""
        )
        return (
            "<div class='nbtrack-card' style='font-size:12px;line-height:1.5;margin-top:4px;"
            f"padding:3px 8px;border-left:3px solid {colour};background:rgba(127,127,127,.07)'>"
            f"<b>nbtrack</b> · <code title='run id'>{e(self.run_id)}</code> · "
            f"{e(self.experiment)} / {e(self.name)} · "
            f"<b style='color:{colour}'>{e(self.status)}</b> in {e(_duration(self.duration))} · "
            f"{self.n_params} params{link}"
            + (f" · registered as <b>{e(self.model)}</b>" if self.model else "")
            + (f" · {e(_catching_up(self.catching_up))}" if self.catching_up else "")
            + (f"<br>{metrics}" if metrics else "")
            + "</div>"
        )


@dataclass(frozen=True)
class UntrackedCard:
    """Where a run card would be, for a cell that ran untracked: saved notebooks stay honest,
    and nbval's sanitize file compares it equal to a card (CI may run with NBTRACK_DISABLE=1)."""

    reason: str

    def __repr__(self) -> str:
        return f"nbtrack run not recorded: {self.reason}"

    def _repr_html_(self) -> str:
        return (
            "<div class='nbtrack-card' style='font-size:12px;margin-top:4px;padding:3px 8px;"
            "border-left:3px solid #999;background:rgba(127,127,127,.07)'>"
            f"<b>nbtrack</b> · run not recorded: {esc(self.reason)}</div>"
        )


def _catching_up(progress: tuple[int, int]) -> str:
    sent, logged = progress
    return f"metrics: {sent:,} of {logged:,} in MLflow, catching up"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def card_for(
    run: Any,
    *,
    n_params: int,
    metrics: Mapping[str, float],
    server_url: str | None,
    catching_up: tuple[int, int] | None = None,
) -> RunCard:
    """The card of a finished TrackedRun. ``n_params`` and ``metrics`` are what the store holds
    (plain mlflow.log_metric calls included); ``server_url`` the MLflow UI's, if any;
    ``catching_up`` (points in MLflow, points logged) while MLflow catches up."""
    return RunCard(
        run_id=run.run_id,
        experiment=run.experiment,
        name=run.name,
        status=run.status,
        duration=run.duration,
        n_params=n_params,
        metrics=dict(metrics),
        url=_run_url(server_url, run.experiment_id, run.run_id),
        model=_registered(run),
        catching_up=catching_up,
    )


def card_of(run: RunView, *, experiment: str, server_url: str | None) -> RunCard:
    """The card of any stored run (a lineage node's): what the store holds of it."""
    start = run.start_time or 0
    return RunCard(
        run_id=run.run_id,
        experiment=experiment,
        name=run.name,
        status=run.status,
        duration=((run.end_time or start) - start) / 1000,
        n_params=len(run.params),
        metrics=dict(run.metrics),
        url=_run_url(server_url, run.experiment_id, run.run_id),
    )


def _run_url(server_url: str | None, experiment_id: str, run_id: str) -> str | None:
    return f"{server_url}/#/experiments/{experiment_id}/runs/{run_id}" if server_url else None


def _registered(run) -> str | None:
    version = getattr(run, "registered", None)
    return f"{version.name} version {version.version}" if version is not None else None
