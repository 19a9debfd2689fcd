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
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from nbtrack import logs, store
from nbtrack import record as R
from nbtrack.logs import failures_logged
from nbtrack.store import metric_log
from nbtrack.tracking.metrics.points import CHUNK
from nbtrack.tracking.metrics.processes import IDLE_EXIT, WriterProcesses
from nbtrack.tracking.metrics.ranges import Range, send_range

_log = logs.get(__name__)

# A run with fewer points keeps no Parquet copy: MLflow's own history of it reads in well under
# a second, and storing the artifact costs every small cell a few tens of milliseconds.
ARTIFACT_MIN_POINTS = 10_000
FIRST_BACKOFF, MAX_BACKOFF = 1.0, 60.0  # seconds a failing store is left alone, doubling


def safe_uri(uri: str) -> str:
    """A store's address for a message: never the userinfo or query, where credentials live."""
    if "://" not in uri:
        return uri
    try:
        p = urlsplit(uri)
        port = f":{p.port}" if p.port else ""
        return f"{p.scheme}://{p.hostname or ''}{port}{p.path}"
    except ValueError:
        return uri.split("://", 1)[0] + "://"


_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def scrub(text: str) -> str:
    """An error's text without the credentials of any URL in it (MLflow quotes the URL)."""
    return _USERINFO.sub("", text)


@dataclass
class RunLog:
    """A run this sender owns: its folder, its store, what is pending, its end."""

    run_id: str
    uri: str
    dir: Path
    owner_fd: int | None
    adopted: bool = False
    files: dict[str, list[int]] = field(default_factory=dict)  # path -> [ranges left, rows]
    end: dict | None = None
    finishing: bool = False
    logged: int = 0  # points in its log files
    sent: int = 0  # of those, stored in MLflow


class Sender:
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
        self._wake = threading.Event()
        self._queue: collections.deque[Range] = collections.deque()
        self._runs: dict[str, RunLog] = {}
        self._inflight = 0  # ranges handed out and not yet answered
        self._down: dict[str, tuple[float, float]] = {}  # uri -> (retry at, backoff)
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
                d = metric_log.open_run(self.state_dir, run_id, uri)
                fd = metric_log.hold(d / metric_log.OWNER_LOCK)
                run = self._runs[run_id] = RunLog(run_id, uri, d, fd)
            return run

    def add_file(self, run: RunLog, path: Path, rows: int) -> None:
        """A new log file of ``run``: queue its ranges."""
        jobs = [
            Range(run.uri, run.run_id, str(path), a, min(a + CHUNK, rows))
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
        adopted = []
        for d in metric_log.run_dirs(self.state_dir):
            if d.name in self._runs:
                continue
            fd = metric_log.hold(d / metric_log.OWNER_LOCK)
            if fd is None:
                continue  # its process is alive, or another one is catching it up
            doc = metric_log.read_json(d / metric_log.RUN_FILE)
            if not doc or not d.is_dir():
                metric_log.release(fd)  # finished meanwhile, or not ours to read
                continue
            run = RunLog(doc["run_id"], doc["uri"], d, fd, adopted=True)
            run.end = metric_log.read_json(d / metric_log.END_FILE)
            run.sent = sum(metric_log.rows(p) for p in metric_log.sent_files(d))
            run.logged = run.sent
            with self._cond:
                self._runs[run.run_id] = run
            for path in metric_log.pending_files(d):
                try:
                    rows = metric_log.rows(path)
                except Exception as e:
                    self._set_aside_file(run, str(path), f"{type(e).__name__}: {e}")
                    continue
                self.add_file(run, path, rows)
            adopted.append(run.run_id)
        if adopted:
            with self._cond:
                self._cond.notify_all()
            self._start()
        return adopted

    def end(self, run_id: str, status: str, end_time: int) -> bool:
        """The run ended with ``status`` at ``end_time`` (ms). True when MLflow already holds
        every point (the caller ends the run itself, now); else the end is kept (end.json) and
        the run is ended by whoever sends its last point."""
        with self._cond:
            run = self._runs.get(run_id)
            if run is None:
                return True
            if not run.files:
                self._runs.pop(run_id)
                done = run
            else:
                run.end = {"status": status, "end_time": end_time}
                done = None
        if done is not None:
            self._store_artifact(done)
            self._remove(done)
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
                self._down.clear()
            self._cond.notify_all()
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
        # MLflow imported here, in the caller's thread: the sender thread importing it while the
        # caller does too can deadlock Python's module locks (seen: _DeadlockError).
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
                    if ready and self._up(run.uri, now):
                        run.finishing = True
                        return run
                for i, job in enumerate(self._queue):
                    if self._up(job.uri, now):
                        del self._queue[i]
                        self._inflight += 1
                        self._last_work = now
                        return job
                waits = [t - now for t, _ in self._down.values() if t > now]
                timeout = min(waits) if waits else (5.0 if self._pool else None)
                self._cond.wait(timeout)
                if self._pool and not self._queue and now - self._last_work > IDLE_EXIT:
                    self._pool.close()

    def _up(self, uri: str, now: float) -> bool:
        return self._down.get(uri, (0.0, 0.0))[0] <= now

    def _mark_down(self, uri: str) -> bool:
        """Leave a failing store alone for a while, doubling (under _cond); True when this
        starts an outage (say so once)."""
        backoff = self._down.get(uri, (0.0, 0.0))[1]
        wait = min(MAX_BACKOFF, 2 * backoff) or FIRST_BACKOFF
        self._down[uri] = (time.monotonic() + wait, wait)
        return backoff == 0.0

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
                    moved = run.files.pop(job.path)
                was_down = self._down.pop(job.uri, None)
                if was_down and was_down[1] > FIRST_BACKOFF:
                    self.stats["recovered"] += 1
            elif kind == "down":
                self._queue.appendleft(job)
                first = self._mark_down(job.uri)
                self.stats["failed"] += 1
            self._cond.notify_all()
        if moved is not None:
            self._move_sent(job.path)
        elif error is not None and kind == "down" and first:
            self._notify(
                f"the tracking store {safe_uri(job.uri)} did not take metrics ({error}); they "
                f"are kept in {self.state_dir / 'metrics'} and sent when it answers"
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
        aside = self.state_dir / "metrics-set-aside" / run.run_id
        with failures_logged(_log, "setting a run's log aside"):
            aside.parent.mkdir(parents=True, exist_ok=True)
            run.dir.replace(aside)
        metric_log.release(run.owner_fd)
        self._notify(
            f"the tracking store {safe_uri(run.uri)} refuses run {run.run_id} ({error}); its "
            f"{run.logged - run.sent} unsent metric points are set aside in {aside}"
        )

    # -- ending a run ------------------------------------------------------------------------

    def _finish_run(self, run: RunLog) -> None:
        """Every point of ``run`` is stored: keep its artifact, end it, drop its folder."""
        try:
            self._store_artifact(run)
            if run.end is not None:
                store.close_run(run.uri, run.run_id, run.end["status"], run.end.get("end_time"))
            elif store.run_status(run.uri, run.run_id) == "RUNNING":
                store.close_run(
                    run.uri,
                    run.run_id,
                    "KILLED",
                    None,
                    "its process ended during the run; its logged metrics were sent afterwards",
                )
        except store.RunGone as e:
            self._set_aside_run(run, str(e))
            return
        except Exception as e:
            _log.debug("ending run %s failed", run.run_id, exc_info=True)
            with self._cond:
                run.finishing = False
                first = self._mark_down(run.uri)
                self._cond.notify_all()
            if first:
                self._notify(
                    f"the tracking store {safe_uri(run.uri)} did not take the end of run "
                    f"{run.run_id} ({type(e).__name__}: {e}); it is kept and sent when it answers"
                )
            return
        with self._cond:
            self._runs.pop(run.run_id, None)
            self._cond.notify_all()
        self._remove(run)

    def _store_artifact(self, run: RunLog) -> None:
        if run.logged < ARTIFACT_MIN_POINTS:
            return
        table = metric_log.read_run(run.dir)
        if table is None:
            return
        with tempfile.TemporaryDirectory(prefix="nbtrack-", dir=self.state_dir) as tmp:
            path = Path(tmp, Path(R.ARTIFACT_METRIC_LOG).name)
            metric_log.to_parquet(table, path)
            store.store_log(run.uri, run.run_id, path, R.ARTIFACT_METRIC_LOG)

    def _remove(self, run: RunLog) -> None:
        with failures_logged(_log, "removing a finished run's log"):
            shutil.rmtree(run.dir, ignore_errors=True)
        metric_log.release(run.owner_fd)

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
