"""The fast metric path: ``nbtrack.log`` appends to memory; a thread makes it durable on local
disk; MLflow catches up from there in the background.

Here: the producer's queue, and the log thread that writes it to the durable local metric log
(``store.metric_log``: immutable Arrow files per run in the state directory). Beside it:
points.py (a point and the checks at the call site), sender.py (MLflow catching up from the
files), ranges.py (one range of a file sent), processes.py (writer processes), catchup.py (a
process that finishes what an ended one left).

Why a local log first (issue 13, measured on this 2-core machine): MLflow's ``log_batch`` costs
~75 µs of CPU a point in its ORM and holds SQLite's write lock for most of it. A writer *thread*
tops out near 12,000 points/s and slows a pure-Python loop up to 2x through the GIL; writer
*processes* reach ~22,000 points/s on a quiet machine and 1,000-4,000 on a busy one. When the
kernel's memory was the only copy, a busy machine meant back-pressure on the training loop, a
cell that waited up to 30 s at its end, and points lost to a SIGTERM or a timeout. Arrow files
are written at disk speed (millions of points a second), so:

- Producer (the user's thread): validate, stamp, append to a deque. About 1 µs a point; no I/O,
  no lock; a bad key or value raises here, naming the key.
- Log thread: every ``WRITE_EVERY`` seconds (sooner when ``SOON`` points wait, or when a run
  ends or a flush asks) it writes what is queued as one file per run, fsynced, and hands the
  file to the sender. This is what "logged" means: a kernel killed with SIGKILL loses at most the
  last ``WRITE_EVERY`` seconds.
- Sender: ranges of 1,000 rows (MLflow's ``log_batch`` limit) to the store, from its thread or,
  when that is busy, from up to ``processes`` writer processes that read the files themselves.
- A run's end (``end``) waits at most ``END_WAIT`` for MLflow; when MLflow has not caught up the
  run stays RUNNING and the sender ends it with the cell's status and end time after its last
  point. A run is never FINISHED with points missing.
- Exit (atexit, SIGTERM): what is queued is written to the log, the sender gets a moment, and
  what is still pending is handed to a detached catch-up process (catchup.py); failing that, the
  next process that loads nbtrack on this machine sends it.

Memory: ``put`` blocks only while ``maxsize`` points wait for the log thread (the disk is full,
or slower than the producer), so the kernel holds at most ``maxsize`` queued points.

Order: points keep the step and millisecond timestamp they were given at the call; MLflow
returns a metric's history ordered by (timestamp, step, value), so the order in which parallel
senders insert ranges does not show. Sending a range twice (a crash between its insert and its
acknowledgement) stores it once: MLflow ignores exact duplicates.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path

from nbtrack import logs, store
from nbtrack.logs import failures_logged
from nbtrack.store import metric_log
from nbtrack.tracking.metrics import catchup
from nbtrack.tracking.metrics.points import KEY, RUN_ID, STEP, TIMESTAMP, VALUE, Point, Runs
from nbtrack.tracking.metrics.sender import Sender

_log = logs.get(__name__)

WRITE_EVERY = 0.5  # seconds between writes of the log (the most a SIGKILL can lose)
SOON = 50_000  # points queued that make the log thread write at once
END_WAIT = 1.0  # seconds a run's end waits for MLflow before the sender finishes it later
EXIT_WAIT = 1.0  # seconds the process's exit waits for MLflow before a catch-up takes over


_COUNTERS = [
    "logged",
    "sent",
    "failed",
    "requeued",
    "recovered",
    "blocked",
    "blocked_ms",
    "disk_errors",
    "direct",
]


class MetricWriter:
    def __init__(
        self,
        state_dir: Path,
        notify: Callable[[str], None],
        maxsize: int = 1_000_000,
        processes: int = 2,
        spawn_busy: float = 0.25,
    ):
        """``processes``: most writer processes to start (0: the sender thread sends everything).
        ``spawn_busy``: share of its time the sender thread may spend before they start."""
        self._state_dir = Path(state_dir)
        self._notify = notify
        self.before_close: list[Callable[[], None]] = []  # run first when the process ends
        self._maxsize = maxsize
        self._processes = processes
        self._spawn_busy = spawn_busy
        self._init_state()
        # A forked child (a DataLoader worker, a process pool) must not share queue or threads.
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: (w := ref()) and w._init_state())

    def _init_state(self) -> None:
        self._queue: collections.deque[Point] = collections.deque()
        self._runs = Runs(self._notify)
        self._uris: dict[str, str] = {}
        self._listeners: dict[str, list[Callable[[list[Point]], None]]] = {}
        self._cond = threading.Condition()
        self._drain_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop = False
        self._closed = False
        self._unwritten: list[Point] = []  # points the disk refused, tried again next time
        self._disk_error: str | None = None
        self._seq = 0
        self._stats: collections.Counter = collections.Counter()
        self._max_queued = 0
        self.sender = Sender(self._state_dir, self._notify, self._processes, self._spawn_busy)

    # -- producer side (the user's thread) -------------------------------------------------

    def put(
        self, uri: str, run_id: str, metrics: Mapping[str, object], step: int | None = None
    ) -> None:
        q = self._queue
        q.extend(self._runs.points(uri, run_id, metrics, step))
        if len(q) >= SOON and not self._wake.is_set():
            self._wake.set()
        if len(q) >= self._maxsize:
            self._backpressure()
        if self._thread is None:
            self._start()

    def _backpressure(self) -> None:
        # The log thread writes everything queued at once, so this waits one write; it waits
        # longer only when the disk refuses the log (said once, naming the error).
        if threading.current_thread().name.startswith("nbtrack-"):
            return  # a listener logging from a writer thread must not wait on itself
        t0 = time.monotonic()
        self._wake.set()
        with self._cond:
            self._stats["blocked"] += 1
            self._max_queued = max(self._max_queued, len(self._queue))
            while len(self._queue) >= self._maxsize * 0.9 and self._thread_alive():
                self._cond.wait(0.05)
        self._stats["blocked_ms"] += int((time.monotonic() - t0) * 1000)

    def latest(self, run_id: str) -> dict[str, tuple[int, float]]:
        """Last (step, value) of each key logged through nbtrack.log in a run."""
        return self._runs.latest(run_id)

    def subscribe(self, run_id: str, callback: Callable[[list[Point]], None]) -> None:
        """Call ``callback(points)`` from the log thread after points of ``run_id`` are logged."""
        self._listeners.setdefault(run_id, []).append(callback)

    def unsubscribe(self, run_id: str) -> None:
        self._listeners.pop(run_id, None)

    def stats(self) -> dict[str, int]:
        """Counters for benchmarks and tests: logged, sent, queued, blocked, processes..."""
        s = self.sender
        return {
            **dict.fromkeys(_COUNTERS, 0),  # a counter nothing has counted yet reads 0
            **self._stats,
            **s.stats,
            "queued": len(self._queue) + len(self._unwritten),
            "max_queued": max(self._max_queued, len(self._queue)),
            "pending": s.pending(),
            "processes": s._pool.ready(),
        }

    def progress(self, run_id: str) -> tuple[int, int] | None:
        """(points in MLflow, points logged) of a run MLflow is still catching up, or None."""
        return self.sender.progress(run_id)

    # -- the log thread --------------------------------------------------------------------

    def _start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._loop, name="nbtrack-log", daemon=True)
            self._thread.start()
        atexit.register(self.close)
        _on_sigterm(self)

    def _thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop:
            self._wake.wait(WRITE_EVERY)
            self._wake.clear()
            try:
                self.drain()
            except BaseException:
                # This thread must not die; a write that failed keeps its points for the next.
                _log.warning("nbtrack's metric log thread hit an error; it goes on", exc_info=True)

    def drain(self) -> None:
        """Write everything queued to the log now (any thread)."""
        with self._drain_lock:
            q = self._queue
            n = len(q)
            if not n and not self._unwritten:
                return
            batch = self._unwritten + [q.popleft() for _ in range(n)]
            self._unwritten = []
            with self._cond:
                self._cond.notify_all()  # room for a blocked producer
            by_run: dict[str, list[Point]] = {}
            for p in batch:
                by_run.setdefault(p[RUN_ID], []).append(p)
            for run_id, points in by_run.items():
                if not self._write(run_id, points):
                    self._unwritten.extend(points)
                elif self._listeners.get(run_id):
                    self._deliver(run_id, points)

    def _write(self, run_id: str, points: list[Point]) -> bool:
        run = None
        try:
            run = self.sender.open(run_id, self._runs.uri(run_id))
            self._seq += 1
            path = metric_log.write_points(
                run.dir,
                [p[KEY] for p in points],
                [p[STEP] for p in points],
                [p[TIMESTAMP] for p in points],
                [p[VALUE] for p in points],
                metric_log.file_name(self._seq),
            )
        except OSError as e:
            self._stats["disk_errors"] += 1
            if self._disk_error is None:
                self._disk_error = f"{type(e).__name__}: {e}"
                self._notify(
                    f"nbtrack could not write the metric log in {self._state_dir} "
                    f"({self._disk_error}); until it can, metrics go straight to the tracking "
                    "store (free some space, or set NBTRACK_STATE_DIR)"
                )
            if not self._send_direct(run_id, points):
                return False
            if run is not None and not run.partial:  # no Parquet copy stands for this run
                run.partial = True
                metric_log.mark_partial(run.dir)
            return True
        self._disk_error = None
        self._stats["logged"] += len(points)
        self.sender.add_file(run, path, len(points))
        return True

    def _send_direct(self, run_id: str, points: list[Point]) -> bool:
        """The disk refused the log: send the points to MLflow from memory (as before the log
        existed), so a full disk neither loses them nor lets memory grow. False when the store
        refuses too: they stay in memory and both are tried again at the next write."""
        uri = self._runs.uri(run_id)
        try:
            store.send_points(
                uri, run_id, [(p[KEY], p[VALUE], p[TIMESTAMP], p[STEP]) for p in points]
            )
        except store.RunGone:
            _log.warning("metric points of deleted run %s dropped (the disk is full)", run_id)
            return True
        except Exception:
            _log.debug(
                "sending %d points of %s from memory failed", len(points), run_id, exc_info=True
            )
            return False
        self._stats["direct"] += len(points)
        return True

    def _deliver(self, run_id: str, points: list[Point]) -> None:
        for callback in list(self._listeners.get(run_id, ())):
            try:
                callback(points)
            except Exception:  # a view's bug must not stop the log
                _log.debug("a metric listener of run %s failed", run_id, exc_info=True)

    # -- a run's end, flushing, exit -------------------------------------------------------

    def end(self, run_id: str, status: str, end_time: int, wait: float = END_WAIT) -> bool:
        """The run ended: write what is queued, give MLflow ``wait`` seconds. True when MLflow
        holds every point (the caller ends the run now); False when the sender will end it with
        ``status`` at ``end_time`` (ms) after its last point."""
        if self._thread is None:
            return True  # nothing was logged through nbtrack.log in this process
        self.drain()
        self.sender.wait(wait, [run_id], retry=False)
        return self.sender.end(run_id, status, end_time)

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Write the queue, wait for MLflow to hold it all (True); else say where it is kept."""
        if self._thread is None and not self.sender._runs:
            return True
        self.drain()
        if self.sender.wait(timeout):
            return True
        self._notify(
            f"{self.sender.pending()} metric points are not in the tracking store yet; they are "
            f"kept in {self._state_dir / 'metrics'} and sent in the background (call "
            "nbtrack.flush() again to wait for them)"
        )
        return False

    def adopt_orphans(self) -> list[str]:
        """Send, in the background, what processes that ended left unsent on this machine."""
        return self.sender.adopt_all()

    def close(self, wait: float = EXIT_WAIT) -> None:
        """The process ends (atexit, SIGTERM): the queue goes to the log, the rest to a catch-up."""
        if self._closed or (self._thread is None and not self.sender._runs):
            return
        self._closed = True
        for hook in self.before_close:  # the tracker ends the runs still open (KILLED)
            with failures_logged(_log, "a hook before closing the metric log"):
                hook()
        spawned = False  # the catch-up process, started once
        try:
            self.drain()
            # The catch-up starts before the waits: Jupyter kills a kernel still alive 5 s after
            # its shutdown request (the catch-up waits for this process to end, then adopts).
            spawned = bool(self.sender.pending()) and _spawn_catchup(self._state_dir)
            self.sender.wait(wait, retry=False)
        finally:
            self._stop = True
            self._wake.set()
            if self.sender.close() and not spawned:
                _spawn_catchup(self._state_dir)


def _spawn_catchup(state_dir: Path) -> bool:
    with failures_logged(_log, "starting the metric catch-up"):
        catchup.spawn(state_dir)
        return True
    return False


def _on_sigterm(writer: MetricWriter) -> None:
    """Let SIGTERM (Jupyter's shutdown 2.5 s after its request, a job scheduler's stop) write
    the queue to the log first. Python's default SIGTERM exit skips atexit."""
    if threading.current_thread() is not threading.main_thread():
        return
    with contextlib.suppress(ValueError, OSError):
        previous = signal.getsignal(signal.SIGTERM)
        if getattr(previous, "__nbtrack__", False):
            return

        def handler(signum, frame):
            with failures_logged(_log, "closing the metric log on SIGTERM"):
                writer.close(wait=0.0)
            if callable(previous):
                previous(signum, frame)
            elif previous != signal.SIG_IGN:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGTERM)

        handler.__nbtrack__ = True  # type: ignore[attr-defined]
        signal.signal(signal.SIGTERM, handler)
