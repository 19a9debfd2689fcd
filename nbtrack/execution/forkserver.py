"""The fork server process (``python -m nbtrack.execution.forkserver SOCKET PRELOAD``) and the
processes it forks: a kernel that becomes what ``ipykernel_launcher`` would have been, or a
worker running its caller's entry point. execution.kernelfork is the caller's side and says why.

A forked process never returns into the server's loop (``_as_process``): it resets signal
handlers and random state, runs, and leaves through the interpreter's atexit handlers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nbtrack import logs
from nbtrack.execution.kernelfork import EXIT_GRACE, PRELOAD
from nbtrack.logs import failures_logged

_log = logs.get(__name__)

# -- the server --------------------------------------------------------------------------------


def _reap(*_: Any) -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _as_child() -> None:
    """What every forked process does first: default signal handlers, fresh random state."""
    for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import random

    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def _exit(code: int) -> None:
    """Leave without unwinding into the server's loop; atexit handlers (nbtrack's metric
    writer, MLflow's) still run, as at any interpreter exit."""
    try:
        import atexit

        atexit._run_exitfuncs()
    finally:
        with failures_logged(_log, "sys.stdout.flush()"):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _as_process(main: Callable[[], int | None]) -> None:
    """Run ``main`` as a forked child's whole life: its exit code, or 1 with the traceback on
    stderr, and never a return into the server's loop."""
    code = 0
    try:
        code = main() or 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        _exit(code)


def _kernel(request: Mapping[str, Any], parent: int) -> None:
    """In the forked kernel: become what ``python -m ipykernel_launcher`` would have been."""

    def main() -> None:
        os.setsid()  # as jupyter_client starts kernels: Ctrl-C in a terminal does not reach it
        _as_child()
        cwd = str(request["cwd"])
        os.chdir(cwd)
        env = {str(k): str(v) for k, v in request["env"].items()}
        env["JPY_PARENT_PID"] = str(parent)
        os.environ.clear()
        os.environ.update(env)
        sys.path[0] = cwd  # ``python -m`` puts its working directory first
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        from ipykernel import kernelapp

        argv = [*request["argv"], f"--IPKernelApp.parent_handle={parent}"]
        sys.argv = [kernelapp.__file__, *argv]
        kernelapp.IPKernelApp.launch_instance(argv=argv)

    _as_process(main)


def _worker(fds: Sequence[int], entry: str) -> None:
    """In the forked worker: the caller's entry point (the grid's worker) on its pipes."""
    import importlib

    def main() -> int:
        _as_child()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        module, _, function = entry.partition(":")
        return getattr(importlib.import_module(module), function)()

    _as_process(main)


def _serve(conn: socket.socket, listener: socket.socket, me: int) -> None:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
    buf = data
    while not buf.endswith(b"\n"):
        more = conn.recv(1 << 20)
        if not more:
            break
        buf += more
    try:
        request = json.loads(buf or b"{}")
    except ValueError:
        request = {}
    op = request.get("op")
    entry = request.get("entry")
    if op not in ("kernel", "worker") or (
        op == "worker" and (len(fds) < 2 or not isinstance(entry, str) or ":" not in entry)
    ):
        conn.sendall(b'{"error": "bad request"}\n')
        return
    pid = os.fork()
    if pid == 0:
        listener.close()
        conn.close()
        if op == "kernel":
            for fd in fds:
                os.close(fd)
            _kernel(request, me)
        _worker(fds, entry)
    for fd in fds:
        os.close(fd)
    conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")


def main(argv: Sequence[str]) -> int:
    import importlib
    import selectors

    path = argv[0]
    # Ctrl-C in a terminal reaches the whole process group: the grid's driver decides.
    signal.signal(signal.SIGINT, lambda *_: None)
    for name in json.loads(argv[1]) if len(argv) > 1 else PRELOAD:
        with failures_logged(_log, "importlib.import_module(name)"):
            importlib.import_module(name)
    with failures_logged(_log, "from nbtrack.capture import environment"):
        from nbtrack.capture import environment

        environment.installed_distributions()  # once for every kernel of the grid (~0.15 s)
    signal.signal(signal.SIGCHLD, _reap)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    me = os.getpid()
    os.write(1, b"ready\n")
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "listener")
    sel.register(0, selectors.EVENT_READ, "stdin")  # EOF: the grid is done with this server
    running = True
    while running:
        for key, _ in sel.select():
            if key.data == "stdin":
                if not os.read(0, 4096):
                    running = False
                continue
            conn, _ = listener.accept()
            with conn:
                try:
                    _serve(conn, listener, me)
                except OSError as e:
                    with contextlib.suppress(OSError):
                        conn.sendall(json.dumps({"error": str(e)}).encode() + b"\n")
    listener.close()
    with contextlib.suppress(OSError):
        os.unlink(path)
    # Wait for the workers and kernels still exiting (a kernel's parent poller would stop it
    # the moment this process is gone), then leave without the interpreter's teardown.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    deadline = time.monotonic() + EXIT_GRACE
    while time.monotonic() < deadline:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.05)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
