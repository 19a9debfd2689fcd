"""MLflow catching up from the durable log, in the background: ranges of log files sent to
their stores, runs ended once their last point is there.

The sender owns the runs it sends (their log folders' owner locks): the runs this process logs,
and runs adopted from processes that ended before MLflow had everything (``adopt``). It sends in
its own thread, or through writer processes when that thread is busy (processes.py); a range
that fails leaves its file pending and the store is left alone for a growing while (one line
says so, once per outage), a run the store refuses for good is set aside, an unreadable file
too; everything else goes on.

A file is moved into ``sent/`` once every range of it is stored. A run is *finished* (its
artifact stored, its status and real end time set, its folder removed) once it has an end
(``end.json``, written when its cell ended) and no pending file. An adopted run without an end
belonged to a process that died mid-run: it is closed KILLED once its points are stored.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from nbtrack import logs, settings
from nbtrack.store import metric_log
from nbtrack.tracking.metrics import run_logs
from nbtrack.tracking.metrics.answers import Answers
from nbtrack.tracking.metrics.outages import Outages, scrub
from nbtrack.tracking.metrics.points import CHUNK
from nbtrack.tracking.metrics.processes import IDLE_EXIT, WriterProcesses
from nbtrack.tracking.metrics.ranges import Range, send_range
from nbtrack.tracking.metrics.run_logs import RunLog

_log = logs.get(__name__)


class Sender(Answers):
    def __init__(
        self,
        state_dir: Path,
        notify: Callable[[str], None],
        processes: int = 2,
        spawn_busy: float = 0.25,
    ):
        self.state_dir = Path(state_dir)
        self._say = notify
        self._cond = threading.Condition()
        # One adoption at a time: an explicit close_orphans racing the extension's warm-up
        # must see the runs the other took over, not skip them as owned elsewhere.
        self._adopting = threading.Lock()
        self._wake = threading.Event()
        self._queue: collections.deque[Range] = collections.deque()
        self._runs: dict[str, RunLog] = {}
        self._killed: list[str] = []
        self._inflight = 0  # ranges handed out and not yet answered
        self._outages = Outages()
        self._hurry: collections.Counter = collections.Counter()  # run ids someone waits for
        self._pool = WriterProcesses(self, processes, spawn_busy)
        self._thread: threading.Thread | None = None
        self._stop = False
        self._last_work = time.monotonic()
        self.stats: collections.Counter = collections.Counter()

    def _notify(self, text: str) -> None:
        self._say(scrub(text))

    # -- the runs ----------------------------------------------------------------------------

    def open(self, run_id: str, uri: str) -> RunLog:
        """The run's log (its folder created and owned by this process on first use)."""
        with self._cond:
            run = self._runs.get(run_id)
            if run is None:
                # as the run's start tag says (tracking.snapshot): read when it started
                thin = settings.current().metric_thin or 1
                d, fd = metric_log.own_run(self.state_dir, run_id, uri, thin)
                run = self._runs[run_id] = RunLog(run_id, uri, d, fd, thin=thin)
            return run

    def add_file(self, run: RunLog, path: Path, rows: int) -> None:
        """A new log file of ``run``: queue its ranges."""
        jobs = [
            Range(run.uri, run.run_id, str(path), a, min(a + CHUNK, rows), run.thin)
            for a in range(0, rows, CHUNK)
        ]
        with self._cond:
            run.files[str(path)] = [len(jobs), rows]
            run.logged += rows
            self._queue.extend(jobs)
            self._cond.notify_all()
        self._start()

    def adopt_all(self) -> list[str]:
        """Take over every run log on this machine whose process is gone; returns their ids."""
        with self._adopting:
            adopted = []
            for run in run_logs.adopt(self.state_dir, set(self._runs)):
                with self._cond:
                    self._runs[run.run_id] = run
                for path in metric_log.pending_files(run.dir):
                    try:
                        rows = metric_log.rows(path)
                    except Exception as e:
                        _log.debug("reading %s failed", path, exc_info=True)
                        self._set_aside_file(run, str(path), f"{type(e).__name__}: {e}")
                        continue
                    self.add_file(run, path, rows)
                adopted.append(run.run_id)
            if adopted:
                with self._cond:
                    self._cond.notify_all()
                self._start()
            return adopted

    def adopted(self) -> list[str]:
        """The runs taken over from ended processes and not yet done."""
        with self._cond:
            return [r.run_id for r in self._runs.values() if r.adopted]

    def end(self, run_id: str, status: str, end_time: int, refused_by: str | None = None) -> bool:
        """The run ended with ``status`` at ``end_time`` (ms). True when MLflow already holds
        every point (the caller ends the run itself, now); else the end is kept (end.json) and
        the run is ended by whoever sends its last point. ``refused_by``: the store that did not
        take the end (an outage): kept too, and sent when it answers."""
        if refused_by is not None:
            self.open(run_id, refused_by)
            self._start()
        with self._cond:
            run = self._runs.get(run_id)
            if run is None:
                return True
            if not run.files and refused_by is None:
                self._runs.pop(run_id)
                done = run
            else:
                run.end = {"status": status, "end_time": end_time}
                done = None
        if done is not None:
            run_logs.store_artifact(done, self.state_dir)
            run_logs.remove(done)
            return True
        metric_log.write_json(run.dir / metric_log.END_FILE, run.end)
        with self._cond:
            self._cond.notify_all()
        return False

    def progress(self, run_id: str) -> tuple[int, int] | None:
        """(points in MLflow, points logged) of a run still catching up; None when done."""
        with self._cond:
            run = self._runs.get(run_id)
            return (run.sent, run.logged) if run is not None else None

    def pending(self, run_ids: Iterable[str] | None = None) -> int:
        """Points not yet in MLflow (of ``run_ids``, else of every run), plus one per run that
        waits to be ended."""
        with self._cond:
            runs = [self._runs[r] for r in run_ids or self._runs if r in self._runs]
            return sum(r.logged - r.sent + (1 if r.end or r.adopted else 0) for r in runs)

    def wait(
        self, timeout: float | None, run_ids: Iterable[str] | None = None, retry: bool = True
    ) -> bool:
        """Wait until MLflow holds every point (of ``run_ids``) and their runs are ended;
        ``retry``: a store that is down is tried again now (an explicit flush)."""
        ids = list(run_ids) if run_ids is not None else None
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if retry:
                self._outages.clear()
            self._hurry.update(ids or ())
            self._cond.notify_all()
        try:
            return self._wait(ids, deadline)
        finally:
            with self._cond:
                self._hurry.subtract(ids or ())
                self._hurry += collections.Counter()  # drops the zeros

    def _wait(self, ids: list[str] | None, deadline: float | None) -> bool:
        with self._cond:
            while self._busy(ids):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                if not self._thread_alive():
                    return False
                self._cond.wait(0.05 if left is None else min(0.05, left))
            return True

    def _busy(self, ids: list[str] | None) -> bool:
        runs = (
            self._runs.values() if ids is None else [self._runs[r] for r in ids if r in self._runs]
        )
        return any(r.files or r.end is not None or r.adopted for r in runs)

    # -- the thread --------------------------------------------------------------------------

    def _start(self) -> None:
        # MLflow's part imported before the sender thread runs (a run's start did it already:
        # process_metrics.prepare; here for the CLI and catch-up processes, which start none).
        from nbtrack.store import metric_runs  # noqa: F401

        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._stop = False
                self._thread = threading.Thread(
                    target=self._loop, name="nbtrack-sender", daemon=True
                )
                self._thread.start()

    def _thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            try:
                work = self._next()
                if work is None:
                    return
                if isinstance(work, RunLog):
                    self._finish_run(work)
                else:
                    self._dispatch(work)
            except BaseException:
                # The thread must not die: a bug here would leave everything pending forever.
                _log.warning("nbtrack's metric sender hit an error; it goes on", exc_info=True)
                time.sleep(0.5)

    def _next(self) -> Range | RunLog | None:
        with self._cond:
            while True:
                if self._stop:
                    return None
                now = time.monotonic()
                for run in list(self._runs.values()):
                    ready = not run.files and not run.finishing and (run.end or run.adopted)
                    if ready and self._outages.up(run.uri, now):
                        run.finishing = True
                        return run
                job = _take(self._queue, self._hurry, self._outages, now)
                if job is not None:
                    self._inflight += 1
                    self._last_work = now
                    return job
                retry = self._outages.next_retry(now)
                timeout = retry if retry is not None else (5.0 if self._pool else None)
                self._cond.wait(timeout)
                if self._pool and not self._queue and now - self._last_work > IDLE_EXIT:
                    self._pool.close()

    def _dispatch(self, job: Range) -> None:
        taken = self._pool.take(job)
        if taken is not None:
            worker, seq = taken
            if worker.send(seq, job):
                return
            with self._cond:  # it died as we wrote: its reader requeues the range, or we send it
                if worker.inflight.pop(seq, None) is None:
                    return
        t0 = time.perf_counter()
        error, kind = send_range(job)
        self._finish(job, error, kind)
        with self._cond:
            queued = sum(j.rows for j in self._queue)
        self._pool.wrote(time.perf_counter() - t0, queued)

    # -- closing -----------------------------------------------------------------------------

    def close(self) -> bool:
        """Stop sending (the process is ending); True when something is left for a catch-up."""
        with self._cond:
            self._stop = True
            left = bool(self._runs)
            runs = list(self._runs.values())
            self._cond.notify_all()
        self._pool.close()
        if self._thread is not None:
            with contextlib.suppress(RuntimeError):
                self._thread.join(timeout=2.0)
        for run in runs:  # a catch-up may take them over at once
            metric_log.release(run.owner_fd)
            run.owner_fd = None
        return left


def _take(
    queue: collections.deque[Range], hurry: collections.Counter, outages: Outages, now: float
) -> Range | None:
    """The next range of ``queue`` whose store is up, taken off it. A run whose end (or a
    flush) waits (``hurry``) goes first: a small cell after a big one ends at once, its points
    not queued behind the other's backlog."""
    for only_hurried in (True, False) if hurry else (False,):
        for i, job in enumerate(queue):
            if only_hurried and job.run_id not in hurry:
                continue
            if outages.up(job.uri, now):
                del queue[i]
                return job
    return None
