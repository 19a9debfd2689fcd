"""What a Sender does with an answer: a range stored (its file moves to ``sent/`` once whole),
a range failed (the store paused, said once per outage; a run the store refuses for good, or an
unreadable file, set aside and named), a run whose last point is in (ended in its store).

A mixin of ``Sender`` (sender.py), split out at that seam: it uses the sender's condition,
queue, runs and outages, and its ``_notify``.
"""

from __future__ import annotations

import collections
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbtrack import logs, store
from nbtrack.logs import failures_logged
from nbtrack.store import metric_log
from nbtrack.tracking.metrics import run_logs
from nbtrack.tracking.metrics.ranges import Range
from nbtrack.tracking.metrics.run_logs import RunLog

if TYPE_CHECKING:
    from nbtrack.tracking.metrics.outages import Outages

_log = logs.get(__name__)


class Answers:
    state_dir: Path
    stats: collections.Counter
    _cond: threading.Condition
    _queue: collections.deque
    _runs: dict[str, RunLog]
    _inflight: int
    _outages: Outages
    _killed: list[str]  # adopted runs closed KILLED, not yet reported (killed_runs)

    def _notify(self, text: str) -> Any:  # the sender's
        raise NotImplementedError

    def killed_runs(self) -> list[str]:
        """The adopted runs closed KILLED (their process died mid-run) since the last call."""
        with self._cond:
            ids, self._killed = self._killed, []
        return ids

    def _finish(self, job: Range, error: str | None, kind: str) -> None:
        """A range's answer: stored (``error`` None), or failed: ``kind`` says why ("down": try
        again later, "gone": the store refuses the run for good, "bad": the file is unreadable)."""
        moved = None
        with self._cond:
            self._inflight -= 1
            run = self._runs.get(job.run_id)
            entry = run.files.get(job.path) if run is not None else None
            if run is None or entry is None:
                self._cond.notify_all()
                return
            if error is None:
                self.stats["sent"] += job.rows
                run.sent += job.rows
                entry[0] -= 1
                if entry[0] == 0:
                    # Moved before it leaves ``files``: whoever waits on it sees it in sent/.
                    self._move_sent(job.path)
                    moved = run.files.pop(job.path)
                if self._outages.up_again(job.uri):
                    self.stats["recovered"] += 1
            elif kind == "down":
                self._queue.appendleft(job)
                first = self._outages.down(job.uri)
                self.stats["failed"] += 1
            self._cond.notify_all()
        if moved is not None:
            pass
        elif error is not None and kind == "down" and first:
            self._notify(
                f"the tracking store {store.safe_uri(job.uri)} did not take metrics ({error}); "
                f"they are kept in {self.state_dir / 'metrics'} and sent when it answers"
            )
        elif kind == "gone" and run is not None:
            self._set_aside_run(run, error or "")
        elif kind == "bad" and run is not None:
            self._set_aside_file(run, job.path, error or "")

    def _requeue(self, job: Range) -> None:
        """A range a dead writer process had not acknowledged goes back first (under _cond)."""
        self._queue.appendleft(job)
        self._inflight -= 1
        self.stats["requeued"] += job.rows

    def _move_sent(self, path: str) -> None:
        p = Path(path)
        with failures_logged(_log, "moving a sent log file"):
            p.replace(p.parent / metric_log.SENT_DIR / p.name)

    def _set_aside_file(self, run: RunLog, path: str, error: str) -> None:
        p = Path(path)
        with self._cond:
            entry = run.files.pop(path, None)
            if entry is not None:
                self._queue = collections.deque(j for j in self._queue if j.path != path)
                run.logged -= entry[1]
            self._cond.notify_all()
        with failures_logged(_log, "setting a bad log file aside"):
            p.replace(p.with_name(p.name + ".bad"))
        self._notify(
            f"nbtrack could not read metric log file {p} ({error}); it is set aside as "
            f"{p.name}.bad and the run's other points are sent"
        )

    def _set_aside_run(self, run: RunLog, error: str) -> None:
        with self._cond:
            self._runs.pop(run.run_id, None)
            self._queue = collections.deque(j for j in self._queue if j.run_id != run.run_id)
            self._cond.notify_all()
        aside = run_logs.set_aside(run, self.state_dir)
        self._notify(
            f"the tracking store {store.safe_uri(run.uri)} refuses run {run.run_id} ({error}); its "
            f"{run.logged - run.sent} unsent metric points are set aside in {aside}"
        )

    # -- ending a run ------------------------------------------------------------------------

    def _finish_run(self, run: RunLog) -> None:
        """Every point of ``run`` is stored: keep its artifact, end it, drop its folder."""
        try:
            run_logs.store_artifact(run, self.state_dir)
            killed = run_logs.end_in_store(run)
        except store.RunGone as e:
            self._set_aside_run(run, str(e))
            return
        except Exception as e:
            _log.debug("ending run %s failed", run.run_id, exc_info=True)
            with self._cond:
                run.finishing = False
                first = self._outages.down(run.uri)
                self._cond.notify_all()
            if first:
                self._notify(
                    f"the tracking store {store.safe_uri(run.uri)} did not take the end of run "
                    f"{run.run_id} ({type(e).__name__}: {e}); it is kept and sent when it answers"
                )
            return
        with self._cond:
            self._runs.pop(run.run_id, None)
            if killed:
                self._killed.append(run.run_id)
            self._cond.notify_all()
        run_logs.remove(run)
