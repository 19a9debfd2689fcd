"""Where grid points run: ``local`` (worker processes on this machine) or ``dask`` (a Dask
distributed cluster).

Both take ``PointTask``s and give back ``PointOutcome``s (nbtrack.grids.point), as points finish,
in whatever order; both can stop the points in flight (``stop``): each one's kernel is
interrupted, so its tracked cell ends KILLED, and a point that does not end within the grace
period is killed with its kernel.

**local**: up to ``parallel`` long-lived worker processes (nbtrack.grids.worker), each running one
point at a time in a fresh kernel. Processes, not threads: papermill's working directory and a
kernel's inherited environment are process-wide.

**dask**: each point is a Dask task (``retries=0``); on the Dask worker it runs in a grid worker
process as above, kept in a pool for the next tasks. A worker that dies must not make Dask run a
point again (its notebook would run twice): a cluster nbtrack starts has
``distributed.scheduler.allowed-failures=0``; with another cluster, a point's task first asks
the store whether the point already started in this attempt. The Dask workers write to the
tracking store themselves, so they must reach it: a store that only this machine sees (the
embedded SQLite file, a ``file:`` store, a server on a loopback address) works only when every
worker runs on this machine (same host name and machine id), as a ``LocalCluster`` does.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from nbtrack.errors import MissingExtra, UsageError
from nbtrack.grids import worker as gridworker
from nbtrack.grids.point import PointOutcome, PointTask, failed

STOP_GRACE = 20.0  # seconds a stopped point may take to end before it is killed
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"}


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
        with contextlib.suppress(Exception):
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
            with contextlib.suppress(Exception):
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


# -- dask --------------------------------------------------------------------------------------


def _distributed():
    try:
        import distributed
    except ImportError:
        raise MissingExtra("the dask executor", "dask") from None
    return distributed


def machine() -> tuple[str, str]:
    """This machine: host name and machine id (boot id when there is none)."""
    ident = ""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id", "/proc/sys/kernel/random/boot_id"):
        with contextlib.suppress(OSError):
            ident = Path(path).read_text().strip()
            if ident:
                break
    return socket.gethostname(), ident


def machine_local(uri: str) -> str | None:
    """Why only this machine can reach the store ``uri``, or None when others may."""
    if uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri:
        return "a file on this machine"
    from urllib.parse import urlsplit

    try:
        host = urlsplit(uri).hostname or ""
    except ValueError:
        return None
    if host in LOCAL_HOSTS or host.startswith("127."):
        return f"a server on this machine's loopback address ({host})"
    return None


def check_store_reachable(client: Any, uri: str) -> None:
    """Refuse a store the cluster's workers cannot reach (a file or loopback server here, and
    workers on other machines)."""
    why = machine_local(uri)
    if why is None:
        return
    here = machine()
    there = client.run(machine)
    elsewhere = sorted(addr for addr, where in there.items() if tuple(where) != here)
    if elsewhere:
        from nbtrack.capture.redact import redact_url

        raise UsageError(
            f"the tracking store {redact_url(uri)} is {why}, and Dask worker "
            f"{elsewhere[0]}{f' (and {len(elsewhere) - 1} more)' if len(elsewhere) > 1 else ''} "
            "runs on another machine, which cannot write to it",
            "run an MLflow tracking server the workers can reach (mlflow server --host 0.0.0.0 "
            "--backend-store-uri sqlite:///mlflow.db) and set NBTRACK_TRACKING_URI=http://HOST:5000",
        )


class DaskExecutor:
    """Points as Dask tasks on a distributed cluster: ``scheduler`` (an address), ``client`` (a
    ``distributed.Client``), or neither (a LocalCluster on loopback, ``parallel`` workers)."""

    def __init__(
        self,
        parallel: int | None,
        tracking_uri: str,
        *,
        scheduler: str | None = None,
        client: Any = None,
        name: str = "",
    ):
        distributed = _distributed()
        import dask

        self._owned: list[Any] = []
        if client is None and scheduler:
            client = distributed.Client(scheduler)
            self._owned.append(client)
        elif client is None:
            # The dashboard would listen on every interface; a worker that dies must not
            # make the scheduler run its point again.
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                cluster = distributed.LocalCluster(
                    n_workers=max(1, int(parallel or 2)),
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                )
            client = distributed.Client(cluster)
            self._owned += [client, cluster]
        self.client = client
        try:
            check_store_reachable(client, tracking_uri)
        except BaseException:
            self.close()
            raise
        threads = sum(client.nthreads().values()) or 1
        self.capacity = max(1, int(parallel)) if parallel else threads
        self._event = distributed.Event(f"nbtrack-grid-stop-{name or id(self)}", client=client)
        self._futures: dict[Any, tuple[PointTask, float]] = {}

    def submit(self, task: PointTask) -> None:
        key = f"nbtrack-point-{task.grid_run_id[:8]}-{task.attempt[:8]}-{task.index}"
        future = self.client.submit(
            run_dask_point, task, self._event.name, key=key, pure=False, retries=0
        )
        self._futures[future] = (task, time.monotonic())

    def running(self) -> int:
        return len(self._futures)

    def wait(self, timeout: float) -> list[PointOutcome]:
        if not self._futures:
            time.sleep(min(timeout, 0.05))
            return []
        distributed = _distributed()
        with contextlib.suppress(distributed.TimeoutError, TimeoutError):
            distributed.wait(list(self._futures), timeout=timeout, return_when="FIRST_COMPLETED")
        out = []
        for future in [f for f in self._futures if f.done()]:
            task, started = self._futures.pop(future)
            try:
                out.append(future.result())
            except Exception as e:  # KilledWorker, or the task itself failed on the worker
                status = "KILLED" if self._event_set() else "FAILED"
                out.append(
                    failed(task, status, f"{type(e).__name__}: {e}", time.monotonic() - started)
                )
        return out

    def _event_set(self) -> bool:
        with contextlib.suppress(Exception):
            return bool(self._event.is_set())
        return False

    def stop(self, grace: float = STOP_GRACE) -> list[PointOutcome]:
        with contextlib.suppress(Exception):
            self._event.set()
        out: list[PointOutcome] = []
        deadline = time.monotonic() + grace + 5.0  # the task's own grace, then its answer
        while self._futures and time.monotonic() < deadline:
            out += self.wait(0.5)
        for future, (task, started) in list(self._futures.items()):
            with contextlib.suppress(Exception):
                future.cancel()
            out.append(failed(task, "KILLED", "stopped", time.monotonic() - started))
        self._futures.clear()
        return out

    def close(self) -> None:
        for thing in self._owned:
            with contextlib.suppress(Exception):
                thing.close()
        self._owned = []


# -- on a Dask worker --------------------------------------------------------------------------

_pool_lock = threading.Lock()
_pool: list[gridworker.Worker] = []
_servers: dict[str, Any] = {}  # tracking URI kind -> this Dask worker's fork server


def _acquire(tracking_uri: str) -> gridworker.Worker:
    from nbtrack.execution import kernelfork

    with _pool_lock:
        while _pool:
            w = _pool.pop()
            if w.alive():
                return w
        server = None
        if kernelfork.enabled():
            preload = kernelfork.preload_for(tracking_uri, gridworker.PRELOAD)
            key = json.dumps(preload)
            server = _servers.get(key)
            if server is None or not server.alive():
                # Its kernels' chatter (ipykernel's warnings) stays out of the Dask worker's log.
                server = _servers[key] = kernelfork.ForkServer.start(preload, subprocess.DEVNULL)
    try:
        return gridworker.Worker(server=server)
    except (OSError, RuntimeError):
        return gridworker.Worker()


def _release(w: gridworker.Worker) -> None:
    with _pool_lock:
        _pool.append(w)


def run_dask_point(task: PointTask, event_name: str) -> PointOutcome:
    """A point, as a Dask task: in a grid worker process of this Dask worker's pool."""
    distributed = _distributed()
    os.environ["NBTRACK_TRACKING_URI"] = task.tracking_uri
    os.environ["MLFLOW_TRACKING_URI"] = task.tracking_uri
    started = time.monotonic()
    if _already_started(task):
        return failed(
            task, "FAILED", "its Dask worker died while it ran; not run a second time", 0.0
        )
    event = distributed.Event(event_name)
    w = _acquire(task.tracking_uri)
    deadline = None
    try:
        w.submit(task)
        while True:
            with selectors.DefaultSelector() as sel:
                sel.register(w.fileno(), selectors.EVENT_READ)
                ready = sel.select(0.5)
            if ready:
                outcome = w.result()
                _release(w)
                return outcome
            if deadline is None and event.is_set():
                w.interrupt()
                deadline = time.monotonic() + STOP_GRACE
            if deadline is not None and time.monotonic() > deadline:
                w.kill()
                return failed(task, "KILLED", "stopped", time.monotonic() - started)
    except (EOFError, OSError):
        w.kill()
        status = "KILLED" if w.stopping else "FAILED"
        return failed(task, status, "the grid worker running it died", time.monotonic() - started)


def _already_started(task: PointTask) -> bool:
    from nbtrack import store

    with contextlib.suppress(Exception):
        return bool(store.search_all_runs([task.experiment_id], store.tag_filter(task.tags())))
    return False


def make(
    kind: str,
    parallel: int | None,
    tracking_uri: str,
    *,
    scheduler: str | None = None,
    client: Any = None,
) -> Executor:
    """The executor ``kind`` names (a dask one if ``scheduler`` or ``client`` is given)."""
    import uuid

    from nbtrack.execution import kernelfork

    if client is not None or scheduler:
        kind = "dask"
    if kind == "local":
        fork, preload = (
            kernelfork.enabled(),
            kernelfork.preload_for(tracking_uri, gridworker.PRELOAD),
        )
        return LocalExecutor(parallel or 1, fork=fork, preload=preload)
    if kind == "dask":
        name = uuid.uuid4().hex
        return DaskExecutor(parallel, tracking_uri, scheduler=scheduler, client=client, name=name)
    raise UsageError(f"unknown executor {kind!r}", "use 'local' or 'dask'")


__all__ = [
    "DaskExecutor",
    "Executor",
    "LocalExecutor",
    "check_store_reachable",
    "machine",
    "machine_local",
    "make",
    "run_dask_point",
]
