"""Grid workers and their kernels, forked from one pre-warmed process instead of started cold.

A grid runs its notebook once per point, each time in a fresh kernel, from worker processes that
run papermill (nbtrack.grids.worker). Started the usual way, each worker imports papermill and
MLflow (~2.3 s of CPU), and each kernel (``python -m ipykernel_launcher -f CONNECTION``) pays
an interpreter start and ipykernel's import, then its first tracked cell imports MLflow and
opens the store (SQLAlchemy, alembic): ~1.5-2 s of CPU per point, measured on the 2-core
development machine (benchmarks/bench_grid.py) against ~2 s of work in its notebook. On two
cores, that CPU is what a parallel grid waits for.

A fork server (``python -m nbtrack.execution.forkserver``, one per grid) imports all of it once
and waits on a Unix socket. A worker is a fork of it that runs the grid's worker entry point on
the pipes the grid passed along; a kernel is a fork of it that does what ``ipykernel_launcher``
does, in the point's working directory and environment, in a session of its own (as
jupyter_client starts kernels). The kernel is fresh: no cell has run in it; only modules are
imported already (and the kernel's list of installed distributions,
``nbtrack/requirements.txt``, is the one read when the grid started). ``random`` and numpy's
global generator are reseeded from the OS, as a new interpreter's would be; string hashing keeps
the server's seed (set ``PYTHONHASHSEED`` to fix it anyway).

jupyter_client learns of a forked kernel through a kernel provisioner (its extension point for
launching kernels), and ``GridKernelManager`` shuts a finished kernel down without waiting for
it to exit: the interpreter's teardown with MLflow and torch loaded (~0.8-1 s, measured) is off
the critical path, and a kernel that has not exited within ``EXIT_GRACE`` seconds is killed.

Used on Linux only (forking without exec is unsafe on macOS), and for kernelspecs that run this
same interpreter with ``ipykernel_launcher``; ``NBTRACK_GRID_FORK=0`` turns it off. Any other
kernel starts as jupyter_client starts it, and workers as plain child processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from nbtrack import logs
from nbtrack.logs import failures_logged

_log = logs.get(__name__)

EXIT_GRACE = 30.0  # seconds a shut-down kernel may take to exit before it is killed
# Imported by the server: a kernel's modules, and what MLflow imports the first time it opens a
# store of each kind. The caller adds its workers' own modules (preload_for's ``extra``): this
# layer forks them without knowing them.
PRELOAD = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "IPython",
    "nbtrack.frontends.magic",
    "nbtrack.tracking.tracker",
    "nbtrack.widgets.card",
    "git",
)
PRELOAD_SQL = (
    "sqlalchemy",
    "alembic",
    "mlflow.store.db.utils",
    "mlflow.store.tracking.sqlalchemy_store",
)
PRELOAD_HTTP = ("requests", "mlflow.store.tracking.rest_store")


def preload_for(tracking_uri: str | None, extra: Sequence[str] = ()) -> list[str]:
    """The modules a fork server imports before forking: ``extra``, a kernel's, the store's."""
    uri = tracking_uri or ""
    if uri.startswith(("http://", "https://", "databricks")):
        return [*extra, *PRELOAD, *PRELOAD_HTTP]
    if "://" in uri and not uri.startswith("file:"):
        return [*extra, *PRELOAD, *PRELOAD_SQL]
    return [*extra, *PRELOAD]


def enabled() -> bool:
    from nbtrack import settings

    return sys.platform == "linux" and settings.current().grid_fork


# -- the caller's side -------------------------------------------------------------------------


class ForkServer:
    """The pre-warmed process: forks workers and kernels on request, over a Unix socket."""

    def __init__(self, path: str, proc: subprocess.Popen | None = None):
        self.path = path  # the socket
        self.proc = proc  # None in a worker: the grid owns the server
        self.python = sys.executable
        self.ready = proc is None

    @classmethod
    def start(
        cls, preload: Sequence[str], log: Any = None, env: Mapping[str, str] | None = None
    ) -> ForkServer:
        folder = tempfile.mkdtemp(prefix="nbtrack-fork-")
        path = os.path.join(folder, "socket")
        proc = subprocess.Popen(
            [sys.executable, "-m", "nbtrack.execution.forkserver", path, json.dumps(list(preload))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=dict(env) if env is not None else None,
            cwd=folder,  # a json.py beside the notebook must not shadow what it imports
        )
        return cls(path, proc)

    def _wait_ready(self) -> None:
        if self.ready:
            return
        assert self.proc is not None and self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the fork server did not start (exit {self.proc.poll()})")
        self.ready = True

    def _request(self, request: Mapping[str, Any], fds: Sequence[int] = ()) -> int:
        self._wait_ready()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(self.path)
            data = (json.dumps(dict(request)) + "\n").encode()
            if fds:
                socket.send_fds(conn, [data], list(fds))
            else:
                conn.sendall(data)
            reply = json.loads(conn.makefile("rb").readline() or b"{}")
        if "pid" not in reply:
            raise RuntimeError(reply.get("error") or "the fork server did not answer")
        return int(reply["pid"])

    def fork_kernel(self, argv: Sequence[str], env: Mapping[str, str], cwd: str) -> int:
        """A kernel running ``ipykernel_launcher`` with ``argv``; returns its pid."""
        return self._request({"op": "kernel", "argv": list(argv), "env": dict(env), "cwd": cwd})

    def fork_worker(self, entry: str, stdin: int, stdout: int, stderr: int | None) -> int:
        """A worker running ``entry`` ("module:function") on ``stdin``/``stdout``; its pid."""
        fds = [stdin, stdout] + ([stderr] if stderr is not None else [])
        return self._request({"op": "worker", "entry": entry}, fds)

    def alive(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        return os.path.exists(self.path)

    def release(self) -> None:
        """Let it go: it exits once its children have (see ``main``)."""
        if self.proc is not None and self.proc.stdin:
            with failures_logged(_log, "self.proc.stdin.close()"):
                self.proc.stdin.close()

    def close(self, timeout: float = 5.0) -> None:
        if self.proc is None:
            return
        self.release()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        import shutil

        shutil.rmtree(os.path.dirname(self.path), ignore_errors=True)


class ForkedProcess:
    """What jupyter_client's LocalProvisioner (and a grid) needs of a ``Popen``, for a process
    the fork server started: its child, not ours (the server reaps it)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int):
        import psutil

        self.pid = pid
        self.returncode: int | None = None
        try:
            self._proc: Any = psutil.Process(pid)
        except psutil.NoSuchProcess:
            self._proc = None
            self.returncode = 0

    def poll(self) -> int | None:
        import psutil

        if self.returncode is not None:
            return self.returncode
        try:
            if self._proc.status() != psutil.STATUS_ZOMBIE:
                return None
        except psutil.NoSuchProcess:
            pass
        self.returncode = 0  # the server reaps it and keeps the code; 0 is all we can say
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            time.sleep(0.05)
        return self.returncode or 0

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class Reaper:
    """Kernels shut down without waiting: each gets ``EXIT_GRACE`` seconds to exit, then it is
    killed (with its process group). Also waits for one when a caller must (``wait_gone``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: list[tuple[Any, int | None, float]] = []
        self._thread: threading.Thread | None = None

    def add(self, process: Any, pgid: int | None, grace: float = EXIT_GRACE) -> None:
        with self._lock:
            self._procs.append((process, pgid, time.monotonic() + grace))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="nbtrack-reaper", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._procs:
                    self._thread = None
                    return
                self._procs = [p for p in self._procs if not self._settle(*p)]
            time.sleep(0.2)

    @staticmethod
    def _settle(process: Any, pgid: int | None, deadline: float) -> bool:
        """True once the process is gone (killed past its deadline)."""
        if process.poll() is not None:
            return True
        if time.monotonic() < deadline:
            return False
        _kill_group(process, pgid)
        return process.poll() is not None

    def wait_gone(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for every kernel handed over to exit, then kill the rest."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if all(p.poll() is not None for p, _, _ in self._procs):
                    return
            time.sleep(0.1)
        with self._lock:
            for process, pgid, _ in self._procs:
                if process.poll() is None:
                    _kill_group(process, pgid)


def _kill_group(process: Any, pgid: int | None) -> None:
    # The kernel's own children (a DataLoader's workers) live in its process group.
    if pgid:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
            return
    with contextlib.suppress(OSError):
        process.kill()


reaper = Reaper()


def kernel_manager_class(server: ForkServer | None, on_start: Any = None) -> type:
    """A jupyter_client ``AsyncKernelManager`` for grid points: kernels forked from ``server``
    when it can run them (else started as usual), shut down without waiting for their exit.
    ``on_start(pid)`` is told each kernel's pid (its process group)."""
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_client.provisioning import LocalProvisioner

    class ForkProvisioner(LocalProvisioner):
        async def launch_kernel(self, cmd: list[str], **kwargs: Any):
            if server is None or not _forkable(cmd, server) or not server.alive():
                return await super().launch_kernel(cmd, **kwargs)
            env = dict(kwargs.get("env") or os.environ)
            cwd = str(kwargs.get("cwd") or os.getcwd())
            try:
                pid = server.fork_kernel(cmd[3:], env, cwd)
            except (OSError, RuntimeError, ValueError):
                return await super().launch_kernel(cmd, **kwargs)
            self.process = ForkedProcess(pid)
            self.pid = self.pgid = pid  # the kernel leads a session of its own
            self.cwd = cwd
            return self.connection_info

    class GridKernelManager(AsyncKernelManager):
        async def _async_pre_start_kernel(self, **kw: Any):
            # Ports picked by the OS, not from jupyter_client's cache: the previous point's
            # kernel may still hold its ports while it exits in the background.
            self.cache_ports = False
            if self.provisioner is None:
                import uuid

                self.kernel_id = self.kernel_id or str(uuid.uuid4())
                self.provisioner = ForkProvisioner(
                    kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self
                )
            return await super()._async_pre_start_kernel(**kw)

        async def _async_start_kernel(self, **kw: Any) -> None:
            if _stop.is_set():  # stopped before this point's kernel started: do not start it
                raise RuntimeError("the grid was stopped before this point's kernel started")
            await super()._async_start_kernel(**kw)
            _set_current(self)
            if on_start is not None:
                with failures_logged(
                    _log, "on_start(getattr(self.provisioner, 'pgid', None) or self...."
                ):
                    on_start(getattr(self.provisioner, "pgid", None) or self.provisioner.pid)

        async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
            provisioner = self.provisioner
            process = getattr(provisioner, "process", None)
            if now or restart or process is None or process.poll() is not None:
                await super()._async_shutdown_kernel(now=now, restart=restart)
                _set_current(None)
                return
            # Ask the kernel to exit, and hand it to the reaper instead of waiting.
            self.shutting_down = True
            self.stop_restarter()
            with failures_logged(_log, "self._async_request_shutdown(restart=False)"):
                await self._async_request_shutdown(restart=False)
            reaper.add(process, getattr(provisioner, "pgid", None))
            provisioner.process = None  # type: ignore[union-attr]
            await self._async_cleanup_resources(restart=False)
            _set_current(None)

        # AsyncKernelManager binds its public names to KernelManager's functions, not to
        # whatever a subclass overrides: bind them to these.
        start_kernel = _async_start_kernel
        shutdown_kernel = _async_shutdown_kernel

    return GridKernelManager


def _forkable(cmd: Sequence[str], server: ForkServer) -> bool:
    import shutil

    if len(cmd) < 5 or list(cmd[1:3]) != ["-m", "ipykernel_launcher"]:
        return False
    exe = shutil.which(cmd[0]) or cmd[0]
    # Same interpreter *path*, not its resolved target: a venv's python links to the system's.
    return os.path.abspath(exe) == os.path.abspath(server.python)


# The kernel manager of the point running in this process, for ``interrupt``.
_current_lock = threading.Lock()
_current: Any = None
_stop = threading.Event()


def _set_current(km: Any) -> None:
    global _current
    with _current_lock:
        _current = km


def interrupt() -> None:
    """Stop the point running in this process: SIGINT to its kernel's process group (a tracked
    cell ends KILLED and papermill stops), and no new kernel starts. Safe in a signal handler."""
    _stop.set()
    km = _current
    provisioner = getattr(km, "provisioner", None)
    process = getattr(provisioner, "process", None)
    if process is None or process.poll() is not None:
        return
    pgid = getattr(provisioner, "pgid", None)
    try:
        if pgid:
            os.killpg(pgid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGINT)
    except OSError:
        pass


def stopping() -> bool:
    return _stop.is_set()


def reset() -> None:
    """A new point: forget an earlier ``interrupt``."""
    _stop.clear()


def kernel_gone(timeout: float) -> None:
    """Wait for the kernels this process started to exit (kill them past ``timeout``)."""
    reaper.wait_gone(timeout)
