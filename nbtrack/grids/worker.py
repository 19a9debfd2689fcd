"""Grid worker processes: each imports papermill once and runs points one after the other.

papermill's working directory (a ``chdir``) and the environment a kernel inherits belong to the
whole process, so two points never run in one process at the same time; but a process per point
pays an interpreter start and papermill's import (~1.1 s of CPU) every time. A worker pays them
once, then runs the points it is sent, each in a fresh kernel.

The protocol is pickled messages, length-prefixed, on the worker's stdin (tasks; EOF: exit) and
on a duplicate of its original stdout (outcomes); whatever the worker or its kernels print goes
to stderr, the grid's log. ``SIGUSR1`` stops the point running (its kernel is interrupted, so a
tracked cell ends KILLED); Ctrl-C in a terminal reaches the worker too and is ignored there: the
grid's driver decides what stops. A worker whose driver is gone stops its point and exits.

``Worker`` is the driver's handle on one (local executor; and on a Dask worker, grids.executors
keeps a pool of them). Workers are forked from the grid's fork server (execution.kernelfork), with
papermill and MLflow imported already; without one (not Linux, ``NBTRACK_GRID_FORK=0``), they
start as ``python -m nbtrack.grids.worker``.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from nbtrack import logs
from nbtrack.logs import failures_logged

_log = logs.get(__name__)

_HEADER = struct.Struct(">I")
# What the fork server runs in a forked worker, and imports before forking (beside a kernel's).
ENTRY = "nbtrack.grids.worker:main"
PRELOAD = ("papermill", "nbtrack.grids.worker", "nbtrack.grids.point")


def send(stream: IO[bytes], message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def receive(stream: IO[bytes]) -> Any:
    """The next message; EOFError when the other side is gone."""
    head = _read_exactly(stream, _HEADER.size)
    return pickle.loads(_read_exactly(stream, _HEADER.unpack(head)[0]))


def _read_exactly(stream: IO[bytes], n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# -- the driver's handle -----------------------------------------------------------------------


class Worker:
    """One worker process: send it a task, read its outcome, stop or kill it.

    Forked from ``server`` (execution.kernelfork), which then forks its kernels too; without one,
    a plain child process whose kernels start as jupyter_client starts them."""

    def __init__(self, log: IO[bytes] | None = None, *, server: Any = None):
        self._scratch = tempfile.mkdtemp(prefix="nbtrack-worker-")
        self.kernels: set[int] = set()  # process groups of the kernels it started
        self.proc: Any
        if server is not None:
            from nbtrack.execution.kernelfork import ForkedProcess

            task_r, task_w = os.pipe()
            out_r, out_w = os.pipe()
            try:
                pid = server.fork_worker(ENTRY, task_r, out_w, log.fileno() if log else None)
            finally:
                os.close(task_r)
                os.close(out_w)
            self.proc = ForkedProcess(pid)
            self.stdin: IO[bytes] = os.fdopen(task_w, "wb")
            self.stdout: IO[bytes] = os.fdopen(out_r, "rb")
        else:
            # Started in a folder of its own: a json.py beside the notebook must not shadow
            # what it imports.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "nbtrack.grids.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log if log is not None else subprocess.DEVNULL,
                cwd=self._scratch,
            )
            self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.task: Any = None  # the task it runs, if any
        self.started = 0.0
        self.stopping = False
        config = {"server": server.path if server else None, "driver": os.getpid()}
        send(self.stdin, config)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def fileno(self) -> int:
        return self.stdout.fileno()

    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def busy(self) -> bool:
        return self.task is not None

    def submit(self, task: Any) -> None:
        self.task, self.started, self.stopping = task, time.monotonic(), False
        send(self.stdin, task)

    def result(self) -> Any:
        """The outcome of its task (blocks; call when ``fileno`` is readable). EOFError if the
        worker died."""
        while True:
            message = receive(self.stdout)
            if isinstance(message, tuple) and message[:1] == ("kernel",):
                self.kernels.add(message[1])
            elif isinstance(message, tuple) and message[:1] == ("done",):
                self.task = None
                return message[1]

    def interrupt(self) -> None:
        """Stop the point it runs: its kernel gets SIGINT; a kernel not started yet never is."""
        self.stopping = True
        with contextlib.suppress(OSError):
            os.kill(self.proc.pid, signal.SIGUSR1)

    def release(self) -> None:
        """Tell it to exit once its point (if any) is done."""
        with contextlib.suppress(OSError):
            self.stdin.close()

    def close(self, timeout: float = 10.0) -> None:
        """Let it exit (after its point, if it runs one); killed with its kernels past
        ``timeout``."""
        self.release()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._cleanup()

    def kill(self) -> None:
        """Kill it and every kernel it started."""
        from nbtrack.execution.processes import kill_tree

        for pgid in self.kernels:  # a forked kernel is not its child: by process group
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)
        kill_tree(self.proc.pid)
        with failures_logged(_log, "self.proc.wait(5)"):
            self.proc.wait(5)
        self._cleanup()

    def _cleanup(self) -> None:
        for stream in (self.stdin, self.stdout):
            with failures_logged(_log, "stream.close()"):
                stream.close()
        import shutil

        shutil.rmtree(self._scratch, ignore_errors=True)


# -- the worker process ------------------------------------------------------------------------


def _watch_driver(driver: int) -> None:
    """The driver died (killed, not stopped): stop the point and leave."""
    from nbtrack.execution import kernelfork

    def alive() -> bool:
        try:
            os.kill(driver, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def watch() -> None:
        while alive():
            time.sleep(1.0)
        kernelfork.interrupt()
        time.sleep(5.0)  # time for the tracked cell to end KILLED
        kernelfork.kernel_gone(0)
        os._exit(1)

    threading.Thread(target=watch, name="nbtrack-driver-watch", daemon=True).start()


def _open_store() -> None:
    """Import MLflow and open the store while the first point's kernel starts: the worker
    records each point's outcome there (~1.5 s of CPU the first time, measured)."""
    with failures_logged(_log, "from nbtrack import store"):
        from nbtrack import store

        store.configure()
        store.client().search_experiments(max_results=1)


def main() -> int:
    from nbtrack.execution import kernelfork

    # A fresh reader of fd 0: one inherited from a fork server may hold its buffered input.
    inbox = open(0, "rb", closefd=False)  # noqa: SIM115
    outbox = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints (papermill, warnings) go to the log, not into the protocol
    signal.signal(signal.SIGINT, lambda *_: None)
    signal.signal(signal.SIGUSR1, lambda *_: kernelfork.interrupt())
    config = receive(inbox)
    _watch_driver(int(config["driver"]))
    import papermill  # noqa: F401  (once, here: the point of a long-lived worker)

    from nbtrack.grids import point as gridpoint

    server = kernelfork.ForkServer(config["server"]) if config.get("server") else None
    lock = threading.Lock()

    def started(pgid: int) -> None:  # the driver kills it if this worker must be killed
        with lock:
            send(outbox, ("kernel", pgid))

    kernel_manager = kernelfork.kernel_manager_class(server, on_start=started)
    warm = False
    try:
        while True:
            try:
                task = receive(inbox)
            except EOFError:
                return 0
            kernelfork.reset()
            # The store the outcome is recorded in: the task's, whatever this process inherited.
            os.environ["NBTRACK_TRACKING_URI"] = task.tracking_uri
            os.environ["MLFLOW_TRACKING_URI"] = task.tracking_uri
            if not warm:  # now that the store exists (the grid's parent run is in it)
                warm = True
                threading.Thread(target=_open_store, name="nbtrack-store", daemon=True).start()
            outcome = gridpoint.run_point(
                task,
                kernel_manager_class=kernel_manager,
                stopping=kernelfork.stopping,
                wait_kernel=kernelfork.kernel_gone,
            )
            with lock:
                send(outbox, ("done", outcome))
    finally:
        # Leave at once: the last kernel is exiting already, and this process's own teardown
        # with MLflow and papermill loaded would only delay the caller.
        kernelfork.kernel_gone(5.0)
        with failures_logged(_log, "outbox.flush()"):
            outbox.flush()
        os._exit(0)


def log_tail(path: str | os.PathLike | None, lines: int = 8) -> str:
    if not path:
        return ""
    with contextlib.suppress(OSError):
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.strip().splitlines()[-lines:])
    return ""


if __name__ == "__main__":
    sys.exit(main())
