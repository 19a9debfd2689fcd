"""A range of a log file's rows, and sending it to its store (in the sender thread or a writer
process: both read the immutable file themselves, so points never cross a pipe)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from nbtrack import logs, store
from nbtrack.errors import StoreError
from nbtrack.store import metric_log
from nbtrack.tracking.metrics import thinning

_log = logs.get(__name__)


@dataclass(frozen=True)
class Range:
    uri: str
    run_id: str
    path: str  # the log file (pending; renamed into sent/ once every range of it is stored)
    start: int
    stop: int
    thin: int = 1  # MLflow gets about one point in this many of the range (thinning.py)

    @property
    def rows(self) -> int:
        return self.stop - self.start

    def wire(self) -> tuple:
        return (self.uri, self.run_id, self.path, self.start, self.stop, self.thin)

    @classmethod
    def from_wire(cls, wire: tuple) -> Range:
        return cls(*wire)


class _LastFile:
    """The file read last, kept: its ranges come one after another."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._path: str | None = None
        self._columns: tuple[list, list, list, list] | None = None

    def columns(self, path: str) -> tuple[list, list, list, list]:
        with self._lock:
            if self._path != path or self._columns is None:
                t = metric_log.read_file(Path(path))
                self._columns = (
                    t.column("key").to_pylist(),
                    t.column("value").to_pylist(),
                    t.column("timestamp").to_pylist(),
                    t.column("step").to_pylist(),
                )
                self._path = path
            return self._columns


_last = _LastFile()


def points(job: Range) -> list[tuple[str, float, int, int]]:
    keys, values, stamps, steps = _last.columns(job.path)
    a, b = job.start, job.stop
    pts = list(zip(keys[a:b], values[a:b], stamps[a:b], steps[a:b], strict=True))
    return thinning.thin(pts, job.thin) if job.thin > 1 else pts


def send_range(job: Range) -> tuple[str | None, str]:
    """Send one range: (None, "") when the store has it; else the error in one line and what
    kind of failure it is: "down" (try again later), "gone" (the store refuses the run for
    good), "bad" (the file cannot be read)."""
    try:
        pts = points(job)
    except Exception as e:
        _log.debug("reading %s failed", job.path, exc_info=True)
        return f"{type(e).__name__}: {e}", "bad"
    try:
        store.send_points(job.uri, job.run_id, pts)
        return None, ""
    except store.RunGone as e:
        return e.reason, "gone"
    except StoreError as e:
        return e.reason, "down"
    except Exception as e:
        _log.debug("sending %s failed", job, exc_info=True)
        text = str(e).strip()
        return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}", "down"
