"""Grid points on a Dask distributed cluster (``executor="dask"``).

Each point is a Dask task (``retries=0``); on the Dask worker it runs in a grid worker process
(nbtrack.grids.worker), kept in a pool for the next tasks. A worker that dies must not make Dask
run a point again (its notebook would run twice): a cluster nbtrack starts has
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
import threading
import time
from pathlib import Path
from typing import Any

from nbtrack import logs
from nbtrack.errors import MissingExtra, UsageError
from nbtrack.grids import worker as gridworker
from nbtrack.grids.executors import STOP_GRACE
from nbtrack.grids.point import PointOutcome, PointTask, failed
from nbtrack.logs import failures_logged

_log = logs.get(__name__)

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"}

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
                _log.debug("out.append(future.result()) failed", exc_info=True)
                status = "KILLED" if self._event_set() else "FAILED"
                out.append(
                    failed(task, status, f"{type(e).__name__}: {e}", time.monotonic() - started)
                )
        return out

    def _event_set(self) -> bool:
        with failures_logged(_log, "bool(self._event.is_set())"):
            return bool(self._event.is_set())
        return False

    def stop(self, grace: float = STOP_GRACE) -> list[PointOutcome]:
        with failures_logged(_log, "self._event.set()"):
            self._event.set()
        out: list[PointOutcome] = []
        deadline = time.monotonic() + grace + 5.0  # the task's own grace, then its answer
        while self._futures and time.monotonic() < deadline:
            out += self.wait(0.5)
        for future, (task, started) in list(self._futures.items()):
            with failures_logged(_log, "future.cancel()"):
                future.cancel()
            out.append(failed(task, "KILLED", "stopped", time.monotonic() - started))
        self._futures.clear()
        return out

    def close(self) -> None:
        for thing in self._owned:
            with failures_logged(_log, "thing.close()"):
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

    with failures_logged(_log, "bool(store.search_all_runs([task.experiment_id], s..."):
        return bool(store.search_all_runs([task.experiment_id], store.tag_filter(task.tags())))
    return False
