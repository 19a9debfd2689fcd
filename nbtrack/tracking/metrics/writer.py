"""The fast metric path: ``nbtrack.log`` appends to a queue; background writers persist it.

Here: the queue and its dispatcher thread (MetricWriter). Beside it: points.py (a point and the
checks at the call site), spool.py (writing a chunk, and the spool it falls back on),
processes.py (the writer processes).

Producer side (the user's thread): validate, stamp, append to a deque. About 1 µs a point; no I/O,
no lock, and a bad key or value raises here, naming the key.

Writer side: a dispatcher thread takes the queue in chunks of up to 1,000 points (MLflow's
``log_batch`` limit; the busier the producer, the fuller the chunks: coalescing comes from the
queue, plus a short linger when it is nearly empty) and has them persisted with
``MlflowClient.log_batch`` through ``store.log_metric_points``, the public API only.

Where that work runs was chosen by measurement (benchmarks/bench_log.py, 2-core machine):

- ``log_batch`` of 1,000 points costs ~80 ms of CPU, of which SQLite itself is ~5 ms; the rest
  is MLflow's SQLAlchemy ORM (object creation, unit-of-work flush, the latest_metrics update). A
  writer *thread* therefore tops out near 12,000 points/s, and it holds the kernel's GIL while it
  works: ~80-110 µs of kernel CPU a point; a pure-Python training loop beside it runs up to 2x
  slower (1.1-2.1x measured, as the GIL falls) and its flush waits for the rest.
- Writer *processes* run that ORM work outside the kernel, which keeps ~2-8 µs a point; at a
  lower priority (nice 10, their session's autogroup too), the same loop runs ~1.1-1.2x. SQLite
  takes concurrent writers from several processes (a writer waits on its busy timeout); about
  60% of each ``log_batch`` runs under the database's write lock, so two processes reach ~1.7x
  one (median ~22,000 points/s on a quiet machine, 15,000-26,000 as its load varies); three gain
  nothing and sometimes collapse under lock contention (8,000-22,000).

So: light logging is written by the dispatcher thread itself (no process to start, flushes in
milliseconds). Once that thread is busy for more than ``spawn_busy`` of its time, or a backlog
builds, up to ``processes`` writer processes (``python -c``, own session, fed chunks over a pipe)
take over; they exit after ``IDLE_EXIT`` seconds without work. Each costs ~1.5 s of CPU to start
(importing MLflow) and ~170 MB of memory, hence not for light logging. A worker that cannot start
leaves the thread in charge.

Lossless:
- ``flush()`` returns only when every point is persisted or spooled: a worker acknowledges a
  chunk after ``log_batch`` returned (synchronously) or after it appended the chunk to the spool.
- A chunk the store refuses (unreachable, locked past its timeout, disk full) is appended to a
  spool file (JSON lines, fsynced) in the state directory; every later flush sends the spool
  again. MLflow ignores exact duplicates (same key, value, timestamp and step), so a replay
  after a partial failure, or a chunk resent after a worker died, is stored once.
- After a failure, new points go straight to the spool for ``RETRY_AFTER`` seconds (or until the
  next flush) rather than each waiting on a store that is down.
- ``close()`` runs at exit. A kernel that is killed loses the points still queued in its memory
  (at most ``maxsize``; in practice the backlog, i.e. nothing while the writers keep up); the
  chunks already handed to a writer process (at most ``WINDOW`` x ``CHUNK`` per process) are still
  persisted, because the process finishes what it received before it exits.

Memory: ``put`` blocks while ``maxsize`` points are queued (back-pressure), so the kernel holds at
most ``maxsize`` queued points plus ``processes`` x ``WINDOW`` x ``CHUNK`` in flight, ~180 bytes
a point (one float metric a call; measured with tracemalloc by the benchmark).

Order: points keep the step and millisecond timestamp they were given at the call; MLflow returns
a metric's history ordered by (timestamp, step, value) and keeps the latest value by step, so the
order in which parallel writers insert chunks does not show.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path

from nbtrack.tracking.metrics.points import (
    CHUNK,
    RUN_ID,
    Point,
    Runs,
)
from nbtrack.tracking.metrics.processes import IDLE_EXIT, WriterProcesses
from nbtrack.tracking.metrics.spool import Persist, by_run, persist_chunk, replay, spool

_log = logging.getLogger(__name__)

LINGER = 0.1  # a light producer's points are gathered this long, making few, fuller batches
RETRY_AFTER = 30.0  # after a failed write, new points go to the spool this long


class MetricWriter:
    def __init__(
        self,
        persist: Persist,
        maxsize: int,
        spool_dir: Path,
        notify: Callable[[str], None],
        processes: int = 2,
        spawn_busy: float = 0.25,
    ):
        """``processes``: most writer processes to start (0: the thread writes everything).
        ``spawn_busy``: share of its time the thread may spend writing before they start."""
        self._persist = persist
        self._maxsize = maxsize
        self._spool_dir = Path(spool_dir)
        self._notify = notify
        self._processes = processes
        self._spawn_busy = spawn_busy
        self._init_state()
        # A forked child (a DataLoader worker, a process pool) must not share queue or pipes.
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: (w := ref()) and w._init_state())

    def _init_state(self) -> None:
        self._queue: collections.deque[Point] = collections.deque()
        self._runs = Runs(self._notify)
        self._listeners: dict[str, list[Callable[[list[Point]], None]]] = {}
        self._cond = threading.Condition()
        self._wake = threading.Event()  # set by the producer when the queue needs draining
        self._hurry = threading.Event()  # set while a flush waits: no lingering
        self._flushers = 0
        self._pending = 0  # points taken from the queue and not yet persisted or spooled
        self._thread: threading.Thread | None = None
        self._stop = False
        self._pool = WriterProcesses(self, self._processes, self._spawn_busy)
        self._last_work = time.monotonic()
        self._down_until = 0.0
        self._last_error: str | None = None
        self._stats = collections.Counter()
        self._max_queued = 0

    # -- producer side (the user's thread) -------------------------------------------------

    def put(
        self, uri: str, run_id: str, metrics: Mapping[str, object], step: int | None = None
    ) -> None:
        self._queue.extend(self._runs.points(uri, run_id, metrics, step))
        if not self._wake.is_set():
            self._wake.set()
        if len(self._queue) >= self._maxsize:
            self._backpressure()
        if self._thread is None:
            self._start()

    def _backpressure(self) -> None:
        # Block the producer until the writers have made room: bounded memory beats a crash.
        if threading.current_thread().name.startswith("nbtrack-"):
            return  # a listener logging from a writer thread must not wait on itself
        t0 = time.monotonic()
        with self._cond:
            self._max_queued = max(self._max_queued, len(self._queue))
            self._stats["blocked"] += 1
            while len(self._queue) >= self._maxsize * 0.9 and self._thread_alive():
                self._cond.wait(0.05)
            self._stats["blocked_ms"] += int((time.monotonic() - t0) * 1000)

    def latest(self, run_id: str) -> dict[str, tuple[int, float]]:
        """Last (step, value) of each key logged through nbtrack.log in a run."""
        return self._runs.latest(run_id)

    def subscribe(self, run_id: str, callback: Callable[[list[Point]], None]) -> None:
        """Call ``callback(points)`` from a writer thread after points of ``run_id`` persist."""
        self._listeners.setdefault(run_id, []).append(callback)

    def unsubscribe(self, run_id: str) -> None:
        self._listeners.pop(run_id, None)

    def stats(self) -> dict[str, int]:
        """Counters for benchmarks and tests: queued, pending, written, spooled, blocked..."""
        with self._cond:
            return {
                **self._stats,
                "queued": len(self._queue),
                "pending": self._pending,
                "max_queued": max(self._max_queued, len(self._queue)),
                "processes": self._pool.ready(),
            }

    # -- dispatcher thread -----------------------------------------------------------------

    def _start(self) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="nbtrack-writer", daemon=True
                )
                self._thread.start()
                atexit.register(self.close)

    def _thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while (chunk := self._next_chunk()) is not None:
            try:
                self._dispatch(chunk)
            except BaseException as e:  # never lose a chunk to a bug in the writer itself
                _log.debug("self._dispatch(chunk) failed", exc_info=True)
                self._finish(chunk, self._spool_chunk(chunk, f"{type(e).__name__}: {e}"))

    def _next_chunk(self) -> list[Point] | None:
        q = self._queue
        while not q:
            if self._stop:
                return None
            self._wake.clear()
            if q:  # appended between the check and the clear
                break
            # With writer processes alive, wake now and then to let idle ones go.
            idle = not self._wake.wait(5.0 if self._pool else None)
            if idle and self._pool and time.monotonic() - self._last_work > IDLE_EXIT:
                self._pool.close()
        if len(q) < CHUNK and not self._stop:
            self._hurry.wait(LINGER)
        with self._cond:
            n = min(len(q), CHUNK)
            self._max_queued = max(self._max_queued, len(q))
            chunk = [q.popleft() for _ in range(n)]
            self._pending += n
            self._cond.notify_all()  # room for a blocked producer
        self._last_work = time.monotonic()
        return chunk

    def _dispatch(self, chunk: list[Point]) -> None:
        if time.monotonic() < self._down_until:
            self._finish(chunk, self._spool_chunk(chunk, self._last_error or "store unavailable"))
            return
        taken = self._pool.take(chunk)
        if taken is not None:
            worker, seq = taken
            if worker.send(seq, self._uris(chunk), chunk):
                return
            with self._cond:  # it died as we wrote: its reader requeues the chunk, or we write it
                if worker.inflight.pop(seq, None) is None:
                    return
        t0 = time.perf_counter()
        failed = persist_chunk(self._persist, self._spool_dir, self._uris(chunk), chunk)
        self._finish(chunk, failed)
        self._pool.wrote(time.perf_counter() - t0, len(self._queue))

    def _uris(self, chunk: list[Point]) -> dict[str, str]:
        return {run_id: self._runs.uri(run_id) for run_id in {p[RUN_ID] for p in chunk}}

    def _finish(self, chunk: list[Point], failed: tuple[list[str], str | None]) -> None:
        """A chunk is persisted, or its runs ``failed[0]`` were spooled because of ``failed[1]``."""
        spooled_runs, error = failed
        spooled = sum(1 for p in chunk if p[RUN_ID] in spooled_runs) if spooled_runs else 0
        with self._cond:
            self._pending -= len(chunk)
            self._stats["written"] += len(chunk) - spooled
            if spooled:
                self._stats["spooled"] += spooled
                self._last_error = error
                self._down_until = time.monotonic() + RETRY_AFTER
            self._cond.notify_all()
        if self._listeners:
            _deliver(self._listeners, chunk, spooled_runs)

    def _requeue(self, chunk: list[Point]) -> None:
        """A chunk a dead writer process had not acknowledged goes back to the queue's front
        (under ``_cond``)."""
        self._queue.extendleft(reversed(chunk))
        self._pending -= len(chunk)
        self._stats["requeued"] += len(chunk)

    def _spool_chunk(self, chunk: list[Point], error: str) -> tuple[list[str], str]:
        runs = by_run(chunk)
        uris = self._uris(chunk)
        for run_id, points in runs.items():
            spool(self._spool_dir, uris[run_id], run_id, points)
        return list(runs), error

    # -- spool -----------------------------------------------------------------------------

    def replay_spool(self) -> int:
        """Send spooled points to their stores; returns how many points are still spooled."""
        left, replayed, error = replay(self._persist, self._spool_dir)
        self._stats["replayed"] += replayed
        if error:
            self._last_error = error
        return left

    # -- flushing --------------------------------------------------------------------------

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every queued point is persisted (or spooled); retry the spool.

        Returns True when nothing is left in memory or on disk; otherwise tells the user once,
        in one line, where the points are kept.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flushers += 1
            self._hurry.set()
            self._down_until = 0.0  # a flush tries the store again
            self._wake.set()
            try:
                while (self._queue or self._pending) and self._thread_alive():
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        break
                    self._cond.wait(0.05 if left is None else min(0.05, left))
            finally:
                self._flushers -= 1
                if not self._flushers:
                    self._hurry.clear()
        if self._queue and not self._thread_alive():
            # The dispatcher is gone (interpreter shutting down): write what is left ourselves.
            with self._cond:
                batch = list(self._queue)
                self._queue.clear()
                self._pending += len(batch)
            for i in range(0, len(batch), CHUNK):
                chunk = batch[i : i + CHUNK]
                self._finish(
                    chunk, persist_chunk(self._persist, self._spool_dir, self._uris(chunk), chunk)
                )
        spooled = self.replay_spool()
        return _all_sent(
            self._notify,
            len(self._queue) + self._pending,
            spooled,
            self._last_error,
            self._spool_dir,
        )

    def close(self) -> None:
        """Flush and stop the writers (atexit: the kernel is shutting down)."""
        if self._thread is None and not self._queue:
            return  # nothing was logged in this process (or this is a forked child)
        try:
            self.flush(timeout=30.0)
        finally:
            with self._cond:
                self._stop = True
                self._cond.notify_all()
            self._wake.set()
            self._pool.close(wait=True)


def _deliver(
    listeners: Mapping[str, list[Callable[[list[Point]], None]]],
    chunk: list[Point],
    spooled_runs: list[str],
) -> None:
    """Hand each listener (a live curves view) the persisted points of its run."""
    for run_id, callbacks in list(listeners.items()):
        points = [p for p in chunk if p[RUN_ID] == run_id and run_id not in spooled_runs]
        for callback in callbacks if points else ():
            try:
                callback(points)
            except Exception:  # a view's bug must not stop the writer
                _log.debug("a metric listener of run %s failed", run_id, exc_info=True)


def _all_sent(
    notify: Callable[[str], None], in_memory: int, spooled: int, error: str | None, spool: Path
) -> bool:
    """True when no point is left in memory or on disk; else tells the user, in one line."""
    if in_memory:
        notify(
            f"{in_memory} metric points are still on their way to the tracking store; call "
            "nbtrack.flush() again to wait for them"
        )
        return False
    if spooled:
        notify(
            f"{spooled} metric points could not reach the tracking store ({error}); they are "
            f"kept in {spool} and nbtrack.flush() sends them again"
        )
        return False
    return True
