"""The fast metric path: ``nbtrack.log`` appends to a queue; background writers persist it.

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
import contextlib
import json
import marshal
import os
import posixpath
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from nbtrack.errors import InvalidMetric, UsageError

try:
    import fcntl
except ImportError:  # Windows: spool appends are not locked against a concurrent replay
    fcntl = None  # type: ignore[assignment]

# What MLflow accepts as a metric name (mlflow.utils.validation): checked here, at the call site,
# so a bad key fails in the user's loop rather than later in a writer.
_KEY = re.compile(r"[/\w.\- :]+")
MAX_KEY = 250
MAX_STEP = 2**63  # MLflow stores steps as 64-bit integers

CHUNK = 1000  # points a writer takes at once: one log_batch (MLflow's per-call metric limit)
WINDOW = 2  # chunks a writer process holds: one being written, one ready to go
LINGER = 0.1  # a light producer's points are gathered this long, making few, fuller batches
RETRY_AFTER = 30.0  # after a failed write, new points go to the spool this long
IDLE_EXIT = 120.0  # writer processes exit after this long without work
BACKLOG = 5 * CHUNK  # a queue this long after a write means the thread cannot keep up
NICE = 10  # scheduling priority of writer processes, below the kernel's

Point = tuple  # (run_id, key, value, timestamp_ms, step)
Persist = Callable[[str, str, list[tuple[str, float, int, int]]], None]  # (uri, run_id, points)


def check_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidMetric(str(key), "", "metric names must be non-empty strings")
    if len(key) > MAX_KEY:
        raise InvalidMetric(key[:40] + "...", "", f"metric names are at most {MAX_KEY} characters")
    norm = posixpath.normpath(key)
    if not _KEY.fullmatch(key) or norm != key or norm == "." or norm.startswith(("..", "/")):
        raise InvalidMetric(
            key,
            "",
            "use letters, digits and _ - . : / space, as a clean relative path "
            "(no '..', no leading, trailing or double '/')",
        )
    return key


def check_value(key: str, value: object) -> float:
    if type(value) is float or type(value) is int:
        try:
            return float(value)
        except OverflowError:
            raise InvalidMetric(key, repr(value)[:60], "too large for a 64-bit float") from None
    # bool is an int to Python but not a number to MLflow's validation, which refuses it
    if isinstance(value, (str, bytes, bool)) or value is None:
        raise InvalidMetric(key, repr(value)[:60], "metric values must be numbers")
    try:
        return float(value)  # numpy scalars, 0-d tensors, Decimal, Fraction
    except (TypeError, ValueError, OverflowError):
        raise InvalidMetric(key, repr(value)[:60], "metric values must be numbers") from None


def check_step(step: object) -> int:
    if type(step) is not int:
        if isinstance(step, bool) or not hasattr(step, "__index__"):
            raise UsageError(f"step={step!r} is not an integer", "pass an int, e.g. step=epoch")
        step = step.__index__()  # numpy and torch integers
    if not -MAX_STEP <= step < MAX_STEP:
        raise UsageError(f"step={step} does not fit in 64 bits", "MLflow stores steps as int64")
    return step


class _RunState:
    """What the producer side remembers about a run: where it goes, and each key's last step."""

    __slots__ = ("latest", "nonfinite", "steps", "uri")

    def __init__(self, uri: str):
        self.uri = uri
        self.steps: dict[str, int] = {}
        self.latest: dict[str, tuple[int, float]] = {}
        self.nonfinite: set[str] = set()


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
        self._runs: dict[str, _RunState] = {}
        self._listeners: dict[str, list[Callable[[list[Point]], None]]] = {}
        self._cond = threading.Condition()
        self._wake = threading.Event()  # set by the producer when the queue needs draining
        self._hurry = threading.Event()  # set while a flush waits: no lingering
        self._flushers = 0
        self._pending = 0  # points taken from the queue and not yet persisted or spooled
        self._thread: threading.Thread | None = None
        self._stop = False
        self._workers: list[_Worker] = []
        self._spawn_failures = 0
        self._seq = 0
        self._busy = 0.0  # seconds the thread spent writing since _busy_since
        self._busy_since = time.monotonic()
        self._last_work = time.monotonic()
        self._down_until = 0.0
        self._last_error: str | None = None
        self._stats = collections.Counter()
        self._max_queued = 0

    # -- producer side (the user's thread) -------------------------------------------------

    def put(
        self, uri: str, run_id: str, metrics: Mapping[str, object], step: int | None = None
    ) -> None:
        run = self._runs.get(run_id)
        if run is None:
            run = self._runs[run_id] = _RunState(uri)
        if step is not None:
            step = check_step(step)
        ts = time.time_ns() // 1_000_000
        steps = run.steps
        points = []
        # Everything is checked before anything is queued: a call with one bad key logs nothing.
        for key, value in metrics.items():
            v = value if type(value) is float else check_value(key, value)
            if key not in steps:
                check_key(key)
            points.append(
                (run_id, key, v, ts, step if step is not None else steps.get(key, -1) + 1)
            )
        for point in points:
            key, v, s = point[1], point[2], point[4]
            steps[key] = s
            run.latest[key] = (s, v)
            if v - v:  # NaN or +-inf (finite - itself is 0.0)
                self._flag_nonfinite(run, key, v)
        self._queue.extend(points)
        if not self._wake.is_set():
            self._wake.set()
        if len(self._queue) >= self._maxsize:
            self._backpressure()
        if self._thread is None:
            self._start()

    def _flag_nonfinite(self, run: _RunState, key: str, value: float) -> None:
        if key not in run.nonfinite:
            run.nonfinite.add(key)
            self._notify(
                f"metric {key!r} got {value}; it is kept as MLflow keeps it (NaN as NaN, "
                "inf as the largest float), and flagged once per key"
            )

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
        run = self._runs.get(run_id)
        return dict(run.latest) if run else {}

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
                "processes": sum(1 for w in self._workers if w.ready and w.alive),
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
            if not self._wake.wait(5.0 if self._workers else None):
                self._reap_idle()
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
        taken = self._take_worker(chunk)
        if taken is not None:
            worker, seq = taken
            if worker.send(seq, self._uris(chunk), chunk):
                return
            with self._cond:  # it died as we wrote: its reader requeues the chunk, or we write it
                if worker.inflight.pop(seq, None) is None:
                    return
        t0 = time.perf_counter()
        failed = _persist_chunk(self._persist, self._spool_dir, self._uris(chunk), chunk)
        self._busy += time.perf_counter() - t0
        self._finish(chunk, failed)
        self._maybe_spawn()

    def _uris(self, chunk: list[Point]) -> dict[str, str]:
        return {run_id: self._runs[run_id].uri for run_id in {p[0] for p in chunk}}

    def _finish(self, chunk: list[Point], failed: tuple[list[str], str | None]) -> None:
        """A chunk is persisted, or its runs ``failed[0]`` were spooled because of ``failed[1]``."""
        spooled_runs, error = failed
        spooled = sum(1 for p in chunk if p[0] in spooled_runs) if spooled_runs else 0
        with self._cond:
            self._pending -= len(chunk)
            self._stats["written"] += len(chunk) - spooled
            if spooled:
                self._stats["spooled"] += spooled
                self._last_error = error
                self._down_until = time.monotonic() + RETRY_AFTER
            self._cond.notify_all()
        if not self._listeners:
            return
        for run_id, callbacks in list(self._listeners.items()):
            points = [p for p in chunk if p[0] == run_id and run_id not in spooled_runs]
            for callback in callbacks if points else ():
                with contextlib.suppress(Exception):
                    callback(points)

    def _spool_chunk(self, chunk: list[Point], error: str) -> tuple[list[str], str]:
        by_run = _by_run(chunk)
        uris = self._uris(chunk)
        for run_id, points in by_run.items():
            _spool(self._spool_dir, uris[run_id], run_id, points)
        return list(by_run), error

    # -- writer processes ------------------------------------------------------------------

    def _take_worker(self, chunk: list[Point]) -> tuple[_Worker, int] | None:
        """A ready writer process with room in its window (waiting for one if all are busy),
        with the chunk registered as in flight there; None when none is ready, and the thread
        writes the chunk itself."""
        with self._cond:
            while True:
                ready = [w for w in self._workers if w.ready and w.alive]
                if not ready:
                    return None
                free = [w for w in ready if len(w.inflight) < WINDOW]
                if free:
                    worker = min(free, key=lambda w: len(w.inflight))
                    self._seq += 1
                    worker.inflight[self._seq] = chunk
                    return worker, self._seq
                self._cond.wait(1.0)

    def _maybe_spawn(self) -> None:
        if self._processes <= 0 or len(self._workers) >= self._processes:
            return
        now = time.monotonic()
        span = now - self._busy_since
        busy = span >= 1.0 and self._busy / span >= self._spawn_busy
        if span >= 1.0:
            self._busy, self._busy_since = 0.0, now
        if busy or len(self._queue) >= BACKLOG or self._spawn_busy <= 0:
            with self._cond:  # listed before it starts: its reader may report it gone at once
                new = [_Worker(self) for _ in range(self._processes - len(self._workers))]
                self._workers += new
            for worker in new:
                worker.start()

    def _worker_ended(self, worker: _Worker) -> None:
        """Called by a worker's reader thread when its process is gone."""
        with self._cond:
            worker.alive = False
            if worker in self._workers:
                self._workers.remove(worker)
            # Chunks it had not acknowledged go back to the front of the queue; any it did write
            # are ignored by MLflow as exact duplicates.
            for seq in sorted(worker.inflight, reverse=True):
                chunk = worker.inflight.pop(seq)
                self._queue.extendleft(reversed(chunk))
                self._pending -= len(chunk)
                self._stats["requeued"] += len(chunk)
            if not worker.ready and not worker.closing:
                self._spawn_failures += 1
                if self._spawn_failures >= 2 and self._processes:
                    self._processes = 0
                    failed = True
                else:
                    failed = False
            else:
                failed = False
            self._cond.notify_all()
        self._wake.set()
        if failed:
            self._notify(
                "nbtrack's writer processes could not start; metrics are written from the "
                "kernel (slower)"
            )

    def _reap_idle(self) -> None:
        if self._workers and time.monotonic() - self._last_work > IDLE_EXIT:
            self._close_workers()

    def _close_workers(self) -> None:
        with self._cond:
            workers = list(self._workers)
        for w in workers:
            w.close()

    # -- spool -----------------------------------------------------------------------------

    def replay_spool(self) -> int:
        """Send spooled points to their stores; returns how many points are still spooled."""
        if not self._spool_dir.is_dir():
            return 0
        left = 0
        failing: dict[str, str] = {}  # uri -> error: one failure per store, not one per record
        for path in sorted(self._spool_dir.glob("spool-*.jsonl")):
            claimed = path.with_name(f"replay-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl")
            try:
                path.rename(claimed)  # atomic: of two kernels replaying, one gets the file
            except OSError:
                continue
            for record in _read_spool(claimed):
                uri, run_id = record["uri"], record["run_id"]
                points = [tuple(p) for p in record["points"]]
                if uri not in failing:
                    try:
                        _with_retry(self._persist, uri, run_id, points)
                        self._stats["replayed"] += len(points)
                        continue
                    except Exception as e:
                        failing[uri] = f"{type(e).__name__}: {e}"
                        self._last_error = failing[uri]
                _spool(self._spool_dir, uri, run_id, points)
                left += len(points)
            claimed.unlink(missing_ok=True)
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
                    chunk, _persist_chunk(self._persist, self._spool_dir, self._uris(chunk), chunk)
                )
        spooled = self.replay_spool()
        if self._queue or self._pending:
            self._notify(
                f"{len(self._queue) + self._pending} metric points are still on their way to the "
                "tracking store; call nbtrack.flush() again to wait for them"
            )
            return False
        if spooled:
            self._notify(
                f"{spooled} metric points could not reach the tracking store "
                f"({self._last_error}); they are kept in {self._spool_dir} and "
                "nbtrack.flush() sends them again"
            )
            return False
        return True

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
            workers = list(self._workers)
            self._close_workers()
            for w in workers:  # they hold nothing after the flush: exit is immediate
                if w.proc is not None:
                    with contextlib.suppress(Exception):
                        w.proc.wait(timeout=5)


# -- writing a chunk (in the kernel's thread or in a writer process) -----------------------------


def _by_run(chunk: list[Point]) -> dict[str, list[tuple[str, float, int, int]]]:
    by_run: dict[str, list[tuple[str, float, int, int]]] = {}
    for run_id, key, value, ts, step in chunk:
        by_run.setdefault(run_id, []).append((key, value, ts, step))
    return by_run


def _with_retry(persist: Persist, uri: str, run_id: str, points: list) -> None:
    try:
        persist(uri, run_id, points)
    except Exception:
        time.sleep(0.2)  # one quick retry covers a blip
        persist(uri, run_id, points)


def _persist_chunk(
    persist: Persist, spool_dir: Path, uris: Mapping[str, str], chunk: list[Point]
) -> tuple[list[str], str | None]:
    """Persist a chunk run by run; spool the runs the store refused. Returns (spooled run ids,
    the last error)."""
    spooled, error = [], None
    for run_id, points in _by_run(chunk).items():
        try:
            _with_retry(persist, uris[run_id], run_id, points)
        except Exception as e:
            error = (
                f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            )
            _spool(spool_dir, uris[run_id], run_id, points)
            spooled.append(run_id)
    return spooled, error


def _spool(spool_dir: Path, uri: str, run_id: str, points: list) -> None:
    spool_dir.mkdir(parents=True, exist_ok=True)
    path = spool_dir / f"spool-{os.getpid()}.jsonl"
    line = json.dumps({"uri": uri, "run_id": run_id, "points": points}) + "\n"
    while True:
        with open(path, "a", encoding="utf-8") as f:
            if fcntl is not None:
                fcntl.flock(f, fcntl.LOCK_EX)
                # A replay may have claimed (renamed) the file between our open and our lock:
                # then this handle is no longer the spool, and the line must go to a new one.
                try:
                    if os.fstat(f.fileno()).st_ino != os.stat(path).st_ino:
                        continue
                except FileNotFoundError:
                    continue
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
            return


def _read_spool(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        if fcntl is not None:
            fcntl.flock(f, fcntl.LOCK_EX)  # a writer that opened it before the rename finishes
        records = []
        for line in f:
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))  # a torn last line (power loss) is skipped
        return records


# -- the pipe between the kernel and a writer process --------------------------------------------


def _send(f: IO[bytes], obj: object) -> None:
    data = marshal.dumps(obj)  # str, float and int tuples only: fast, and no pickle on the pipe
    f.write(len(data).to_bytes(4, "big") + data)
    f.flush()


def _recv(f: IO[bytes]) -> Any:
    head = f.read(4)
    if len(head) < 4:
        return None
    n = int.from_bytes(head, "big")
    data = f.read(n)
    return marshal.loads(data) if len(data) == n else None


class _Worker:
    """A writer process and the kernel-side thread that reads its acknowledgements."""

    def __init__(self, writer: MetricWriter):
        self.writer = writer
        self.inflight: dict[int, list[Point]] = {}
        self.ready = False
        self.alive = True
        self.closing = False
        self.last_sent = 0  # seq of the last chunk written to the pipe (it survives the kernel)
        self.proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        # The worker imports this very package, wherever the kernel found it (a checkout the
        # kernel put on sys.path comes first; site-packages keeps its place after the stdlib).
        root = str(Path(__file__).resolve().parent.parent)
        code = (
            f"import sys; root = {root!r}\n"
            "if root not in sys.path: sys.path.insert(0, root)\n"
            "from nbtrack.tracking.metrics.writer import _worker_main; _worker_main()"
        )
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", code, str(self.writer._spool_dir), str(NICE)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                # Its own session: a kernel interrupt (SIGINT to the process group) or a kill
                # of the kernel's group does not cut a write short.
                start_new_session=True,
            )
        except OSError:
            pass  # the reader below reports it gone, and the thread goes on writing
        threading.Thread(target=self._read, name="nbtrack-writer-ack", daemon=True).start()

    def send(self, seq: int, uris: dict[str, str], chunk: list[Point]) -> bool:
        try:
            with self._lock:
                assert self.proc is not None and self.proc.stdin is not None
                _send(self.proc.stdin, (seq, uris, chunk))
                self.last_sent = seq
            return True
        except (OSError, ValueError):
            return False

    def close(self) -> None:
        """Let the process finish what it holds and exit (EOF on its input)."""
        self.closing = True
        with self._lock, contextlib.suppress(OSError, ValueError):
            if self.proc is not None and self.proc.stdin is not None:
                self.proc.stdin.close()

    def _read(self) -> None:
        w = self.writer
        try:
            if self.proc is None or self.proc.stdout is None:
                return
            while (msg := _recv(self.proc.stdout)) is not None:
                if msg[0] == "ready":
                    with w._cond:
                        self.ready = True
                        w._cond.notify_all()
                    w._wake.set()
                elif msg[0] == "done":
                    _, seq, spooled_runs, error = msg
                    with w._cond:
                        chunk = self.inflight.pop(seq, None)
                    if chunk is not None:
                        w._finish(chunk, (spooled_runs, error))
        except (OSError, ValueError, EOFError):
            pass
        finally:
            if self.proc is not None:
                with contextlib.suppress(Exception):
                    self.proc.wait(timeout=30)
            w._worker_ended(self)


def _worker_main() -> None:
    """A writer process: read chunks from stdin, persist (or spool) each, acknowledge on stdout.

    On EOF (the kernel closed the pipe, or died) it finishes the chunks it already received,
    then exits.
    """
    spool_dir, nice = Path(sys.argv[1]), int(sys.argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The protocol gets private copies of stdin/stdout; a library printing to stdout then goes to
    # stderr instead of corrupting the acknowledgements.
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    with open(os.devnull, "rb") as null:
        os.dup2(null.fileno(), 0)

    from nbtrack import store

    store.quiet_mlflow()
    if hasattr(os, "nice"):
        # Background work: where cores are short, the training loop comes first (and blocks,
        # through back-pressure, only if the writers fall too far behind). Lowered after the
        # imports, so that a busy machine does not starve the start-up.
        os.nice(nice)
        # Linux shares CPU between sessions first (autogroups), and this process leads a
        # session of its own: lower the session's weight too, or the nice above counts for
        # nothing against the kernel.
        with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as f:
            f.write(str(nice))

    def persist(uri: str, run_id: str, points: list) -> None:
        store.log_metric_points(run_id, points, uri=uri)

    inbox: queue.SimpleQueue = queue.SimpleQueue()

    def read() -> None:
        # Read ahead, so the kernel's next chunk is never stuck in a full pipe while we write.
        try:
            while (msg := _recv(proto_in)) is not None:
                inbox.put(msg)
        finally:
            inbox.put(None)

    threading.Thread(target=read, daemon=True).start()
    acking = True
    with contextlib.suppress(OSError):
        _send(proto_out, ("ready", os.getpid()))
    while (msg := inbox.get()) is not None:
        seq, uris, chunk = msg
        spooled, error = _persist_chunk(persist, spool_dir, uris, chunk)
        if acking:
            try:
                _send(proto_out, ("done", seq, spooled, error))
            except OSError:
                acking = False  # the kernel is gone: keep writing what we received
