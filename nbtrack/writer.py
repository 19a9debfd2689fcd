"""The fast metric path: ``nbtrack.log`` appends to a queue; a background thread persists it.

- The producer pays for validation and an append (a few microseconds), never for I/O.
- The writer drains the queue in large ``log_batch`` calls; the busier the producer, the larger
  the batches it finds waiting (coalescing comes from the queue, not from a timer).
- Memory is bounded: beyond ``maxsize`` queued points, ``put`` blocks until the writer catches up.
- Nothing is dropped: points the store refuses (unreachable, disk full) are appended to a spool
  file under the state directory, and every later flush tries them again. MLflow ignores exact
  duplicates (same key, value, timestamp and step), so a replay after a partial failure is safe.
"""

from __future__ import annotations

import atexit
import collections
import json
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from nbtrack.errors import InvalidMetric

# What MLflow accepts as a metric name (mlflow.utils.validation): checked here, at the call site,
# so a bad key fails in the user's loop rather than later in the writer thread.
_KEY = re.compile(r"^[\w\-. :/]+$")
MAX_KEY = 250
BATCH = 5000  # points taken per writer round; store.log_metric_points splits by MLflow's limit

Point = tuple  # (run_id, key, value, timestamp_ms, step)
Persist = Callable[[str, str, list[tuple[str, float, int, int]]], None]  # (uri, run_id, points)


def check_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidMetric(str(key), "", "metric names must be non-empty strings")
    if len(key) > MAX_KEY:
        raise InvalidMetric(key[:40] + "...", "", f"metric names are at most {MAX_KEY} characters")
    if not _KEY.match(key) or ".." in key or key.startswith("/"):
        raise InvalidMetric(
            key, "", "use letters, digits, and _ - . : / space (no '..', no leading '/')"
        )
    return key


def check_value(key: str, value: object) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    if isinstance(value, (str, bytes, bool)) or value is None:
        raise InvalidMetric(key, repr(value)[:60], "metric values must be numbers")
    try:
        return float(value)  # numpy scalars, 0-d tensors, Decimal, Fraction
    except (TypeError, ValueError):
        raise InvalidMetric(key, repr(value)[:60], "metric values must be numbers") from None


class MetricWriter:
    def __init__(self, persist: Persist, maxsize: int, spool_dir: Path, notify: Callable):
        self._persist = persist
        self._maxsize = maxsize
        self._spool_dir = spool_dir
        self._notify = notify
        self._queue: collections.deque[Point] = collections.deque()
        self._uris: dict[str, str] = {}
        self._steps: dict[tuple[str, str], int] = {}
        self._keys: set[str] = set()
        self._nonfinite: set[str] = set()
        self._latest: dict[str, dict[str, tuple[int, float]]] = {}
        self._listeners: dict[str, list[Callable[[list[Point]], None]]] = {}
        self._cond = threading.Condition()
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self._stop = False
        self._last_error: str | None = None
        self._spooled_files: set[Path] = set()

    # -- producer side (the user's thread) -------------------------------------------------

    def put(
        self, uri: str, run_id: str, metrics: Mapping[str, object], step: int | None = None
    ) -> None:
        ts = time.time_ns() // 1_000_000
        queue = self._queue
        latest = self._latest.get(run_id)
        if latest is None:
            latest = self._latest[run_id] = {}
            self._uris[run_id] = uri
        for key, value in metrics.items():
            if key not in self._keys:
                self._keys.add(check_key(key))
            v = check_value(key, value)
            if v != v or v in (math.inf, -math.inf):
                self._flag_nonfinite(key, v)
            if step is None:
                s = self._steps.get((run_id, key), -1) + 1
                self._steps[(run_id, key)] = s
            else:
                s = int(step)
            queue.append((run_id, key, v, ts, s))
            latest[key] = (s, v)
        if len(queue) >= self._maxsize:
            self._backpressure()
        if self._thread is None:
            self._start()

    def _flag_nonfinite(self, key: str, value: float) -> None:
        if key not in self._nonfinite:
            self._nonfinite.add(key)
            self._notify(
                f"metric {key!r} got {value}; it is kept as MLflow keeps it (flagged once)"
            )

    def _backpressure(self) -> None:
        # Block the producer until the writer has made room: bounded memory beats a fast crash.
        with self._cond:
            self._cond.notify_all()
            while len(self._queue) >= self._maxsize * 0.9 and self._thread_alive():
                self._cond.wait(0.05)

    def latest(self, run_id: str) -> dict[str, tuple[int, float]]:
        """Last (step, value) of each key logged through nbtrack.log in a run."""
        return dict(self._latest.get(run_id, {}))

    def subscribe(self, run_id: str, callback: Callable[[list[Point]], None]) -> None:
        """Call ``callback(points)`` from the writer thread after points of ``run_id`` persist."""
        self._listeners.setdefault(run_id, []).append(callback)

    def unsubscribe(self, run_id: str) -> None:
        self._listeners.pop(run_id, None)

    # -- writer thread -------------------------------------------------------------------------

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
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait(0.05)
                if not self._queue and self._stop:
                    return
                n = min(len(self._queue), BATCH)
                batch = [self._queue.popleft() for _ in range(n)]
                self._in_flight = n
                self._cond.notify_all()  # room for a blocked producer
            try:
                self._write(batch)
            finally:
                with self._cond:
                    self._in_flight = 0
                    self._cond.notify_all()

    def _write(self, batch: list[Point]) -> None:
        by_run: dict[str, list[tuple[str, float, int, int]]] = {}
        for run_id, key, value, ts, step in batch:
            by_run.setdefault(run_id, []).append((key, value, ts, step))
        for run_id, points in by_run.items():
            uri = self._uris.get(run_id, "")
            try:
                self._persist_with_retry(uri, run_id, points)
            except Exception as e:
                self._last_error = f"{type(e).__name__}: {e}"
                self._spool(uri, run_id, points)
                continue
            for callback in self._listeners.get(run_id, ()):
                try:
                    callback([(run_id, *p) for p in points])
                except Exception:
                    pass

    def _persist_with_retry(self, uri: str, run_id: str, points: list) -> None:
        try:
            self._persist(uri, run_id, points)
        except Exception:
            time.sleep(0.2)  # one quick retry covers a locked SQLite file or a blip
            self._persist(uri, run_id, points)

    # -- spool -----------------------------------------------------------------------------

    def _spool(self, uri: str, run_id: str, points: list) -> None:
        self._spool_dir.mkdir(parents=True, exist_ok=True)
        path = self._spool_dir / f"spool-{os.getpid()}.jsonl"
        record = {"uri": uri, "run_id": run_id, "points": points}
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._spooled_files.add(path)

    def replay_spool(self) -> int:
        """Send spooled points to their stores; returns how many points are still spooled."""
        if not self._spool_dir.is_dir():
            return 0
        left = 0
        for path in sorted(self._spool_dir.glob("spool-*.jsonl")):
            claimed = path.with_name(f"replay-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl")
            try:
                path.rename(claimed)  # atomic: of two kernels replaying, one gets the file
            except OSError:
                continue
            for line in claimed.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                points = [tuple(p) for p in record["points"]]
                try:
                    self._persist(record["uri"], record["run_id"], points)
                except Exception as e:
                    self._last_error = f"{type(e).__name__}: {e}"
                    self._spool(record["uri"], record["run_id"], points)
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
            self._cond.notify_all()
            while (self._queue or self._in_flight) and self._thread_alive():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(0.05 if left is None else min(0.05, left))
        if self._queue and not self._thread_alive():
            # The writer is gone (interpreter shutting down): write what is left ourselves.
            batch = list(self._queue)
            self._queue.clear()
            self._write(batch)
        spooled = self.replay_spool()
        if self._queue or self._in_flight:
            self._notify(
                f"{len(self._queue)} metric points are still queued for the tracking store; "
                "call nbtrack.flush() again to wait for them"
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
        """Flush and stop the writer (atexit: the kernel is shutting down)."""
        try:
            self.flush(timeout=30.0)
        finally:
            with self._cond:
                self._stop = True
                self._cond.notify_all()
