"""A grid's progress as it runs: a tqdm bar (a widget in a notebook) with finished / failed /
running counts and the best value so far; and Ctrl-C deferred while a point's outcome is recorded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from nbtrack.grids.point import PointOutcome

if TYPE_CHECKING:
    from nbtrack.grids.run import Plan

# -- progress ----------------------------------------------------------------------------------


class Progress:
    """A tqdm bar (``tqdm.auto``: a widget in a notebook): points done out of all, with
    finished / failed / running counts and, given ``metric``, the best value so far."""

    def __init__(self, plan: Plan, metric: str | None, mode: str, enabled: bool) -> None:
        self.metric, self.mode = metric, mode
        self.counts = {"finished": len(plan.done), "failed": 0, "killed": 0}
        self.best: float | None = None
        for rec in plan.done:
            self._consider(rec.metrics)
        self._running = 0
        self.bar = None
        if enabled:
            with contextlib.suppress(ImportError):
                from tqdm.auto import tqdm

                self.bar = tqdm(
                    total=len(plan.points),
                    initial=len(plan.done),
                    desc=f"grid {Path(plan.notebook).stem}",
                    unit="point",
                    dynamic_ncols=True,
                )
                self._show()

    def _consider(self, metrics: Mapping[str, float]) -> None:
        if not self.metric or self.metric not in metrics:
            return
        value = float(metrics[self.metric])
        if self.best is None or (value > self.best if self.mode == "max" else value < self.best):
            self.best = value

    def update(self, outcome: PointOutcome) -> None:
        key = outcome.status.lower()
        self.counts[key] = self.counts.get(key, 0) + 1
        if outcome.status == "FINISHED":
            self._consider(outcome.metrics)
        self._running = max(0, self._running - 1)  # it ran until now
        if self.bar is not None:
            self.bar.update(1)
        self._show()

    def running(self, n: int) -> None:
        if n != self._running:
            self._running = n
            self._show()

    def _show(self) -> None:
        if self.bar is None:
            return
        parts = [f"{n} {k}" for k, n in self.counts.items() if n or k != "killed"]
        parts.append(f"{self._running} running")
        if self.metric:
            best = "-" if self.best is None else f"{self.best:.4g}"
            parts.append(f"best {self.metric} {best}")
        self.bar.set_postfix_str(" · ".join(parts), refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self._running = 0
            self._show()
            self.bar.close()
            self.bar = None
