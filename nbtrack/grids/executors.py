"""Where grid points run: ``local`` (worker processes on this machine) or ``dask`` (a Dask
distributed cluster).

Both take ``PointTask``s and give back ``PointOutcome``s (nbtrack.grids.point), as points finish,
in whatever order; both can stop the points in flight (``stop``): each one's kernel is
interrupted, so its tracked cell ends KILLED, and a point that does not end within the grace
period is killed with its kernel.

**local**: up to ``parallel`` long-lived worker processes (nbtrack.grids.worker), each running one
point at a time in a fresh kernel. Processes, not threads: papermill's working directory and a
kernel's inherited environment are process-wide.

**dask**: each point is a Dask task, in nbtrack.grids.dask_executor.
"""

from __future__ import annotations

import selectors
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from nbtrack import logs
from nbtrack.grids import worker as gridworker
from nbtrack.grids.options import GridOptions
from nbtrack.grids.point import PointOutcome, PointTask, failed
from nbtrack.logs import failures_logged

_log = logs.get(__name__)

STOP_GRACE = 20.0  # seconds a stopped point may take to end before it is killed


class Executor(Protocol):
    capacity: int  # points it runs at once

    def submit(self, task: PointTask) -> None: ...

    def wait(self, timeout: float) -> list[PointOutcome]:
        """Outcomes of points that finished (within ``timeout`` seconds: maybe none)."""
        ...

    def running(self) -> int: ...

    def stop(self, grace: float = STOP_GRACE) -> list[PointOutcome]:
        """Stop every point in flight; their outcomes (KILLED, unless one finished first)."""
        ...

    def close(self) -> None: ...


# -- local -------------------------------------------------------------------------------------


class LocalExecutor:
    def __init__(self, parallel: int, *, fork: bool = True, preload: Sequence[str] = ()):
        self.capacity = max(1, int(parallel))
        self._workers: list[gridworker.Worker] = []
        self._logdir = Path(tempfile.mkdtemp(prefix="nbtrack-grid-"))
        self._logs: dict[int, Path] = {}
        self._selector = selectors.DefaultSelector()
        self._server = None
        if fork:
            from nbtrack.execution.kernelfork import ForkServer

            # Starts importing now, while the caller records the grid's parent run.
            with open(self._logdir / "server.log", "wb") as log:
                self._server = ForkServer.start(preload, log)

    def _worker(self) -> gridworker.Worker:
        for w in self._workers:
            if not w.busy:
                return w
        path = self._logdir / f"worker-{len(self._logs)}.log"
        with open(path, "wb") as log:  # the worker holds its own descriptor
            try:
                w = gridworker.Worker(log, server=self._server)
            except (OSError, RuntimeError):  # the fork server is gone: a plain process
                w = gridworker.Worker(log)
        self._logs[w.pid] = path
        self._workers.append(w)
        self._selector.register(w.fileno(), selectors.EVENT_READ, w)
        return w

    def submit(self, task: PointTask) -> None:
        self._worker().submit(task)

    def running(self) -> int:
        return sum(1 for w in self._workers if w.busy)

    def wait(self, timeout: float) -> list[PointOutcome]:
        if not self.running():
            time.sleep(min(timeout, 0.05))
            return []
        out = []
        for key, _ in self._selector.select(timeout):
            w: gridworker.Worker = key.data
            if not w.busy:
                continue
            task = w.task
            try:
                out.append(w.result())
            except (EOFError, OSError, ValueError):
                # The worker died with the point (killed, out of memory): say so, with its log.
                tail = gridworker.log_tail(self._logs.get(w.pid))
                status = "KILLED" if w.stopping else "FAILED"
                why = "the grid worker running it died" + (f": {tail}" if tail else "")
                out.append(failed(task, status, why, time.monotonic() - w.started))
                self._drop(w, kill=True)
        return out

    def _drop(self, w: gridworker.Worker, kill: bool) -> None:
        with failures_logged(_log, "self._selector.unregister(w.fileno())"):
            self._selector.unregister(w.fileno())
        if w in self._workers:
            self._workers.remove(w)
        w.kill() if kill else w.close()

    def stop(self, grace: float = STOP_GRACE) -> list[PointOutcome]:
        busy = [w for w in self._workers if w.busy]
        for w in busy:
            w.interrupt()
        out: list[PointOutcome] = []
        deadline = time.monotonic() + grace
        while self.running() and time.monotonic() < deadline:
            out += self.wait(0.2)
        for w in [w for w in self._workers if w.busy]:
            out.append(failed(w.task, "KILLED", "stopped", time.monotonic() - w.started))
            self._drop(w, kill=True)
        return out

    def close(self) -> None:
        # The points are recorded: do not hold the caller up while the workers exit. Each waits
        # for its last kernel's exit, and kills a kernel that takes over 5 s; a thread reaps
        # them. Measured: kernels exit in ~0.4 s, but about one in 40 hangs in ipykernel's
        # close, joining its control thread, which is blocked flushing output to the IOPub
        # thread already stopped (py-spy; an ipykernel shutdown race, cf. ipykernel PR 1518).
        # Its run is closed and its metrics flushed by then (nbtrack's atexit runs first).
        idle = [w for w in self._workers if not w.busy]
        for w in idle:
            w.release()
        for w in [w for w in self._workers if w.busy]:
            self._drop(w, kill=True)
        for w in idle:
            with failures_logged(_log, "self._selector.unregister(w.fileno())"):
                self._selector.unregister(w.fileno())
            self._workers.remove(w)
        if idle:
            threading.Thread(
                target=lambda: [w.close() for w in idle], name="nbtrack-grid-reaper", daemon=True
            ).start()
        self._selector.close()
        if self._server is not None:
            self._server.release()  # it exits once its kernels have, without holding us up
        import shutil

        shutil.rmtree(self._logdir, ignore_errors=True)


def make(options: GridOptions, tracking_uri: str) -> Executor:
    """The executor the options name (checked by GridOptions: "local" or "dask")."""
    import uuid

    from nbtrack.execution import kernelfork

    if options.executor == "dask":
        from nbtrack.grids.dask_executor import DaskExecutor

        return DaskExecutor(
            options.parallel,
            tracking_uri,
            scheduler=options.scheduler,
            client=options.client,
            name=uuid.uuid4().hex,
        )
    preload = kernelfork.preload_for(tracking_uri, gridworker.PRELOAD)
    return LocalExecutor(options.parallel or 1, fork=kernelfork.enabled(), preload=preload)


__all__ = [
    "Executor",
    "LocalExecutor",
    "make",
]
