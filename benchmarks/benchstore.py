"""A fresh store for a benchmark: an embedded SQLite file, its database created before anything is
timed, or a local ``mlflow server`` over HTTP with proxied artifacts."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def fresh_store(folder: str | Path) -> str:
    """``sqlite:///FOLDER/mlflow.db``, migrated once in a separate process: MLflow's first-time
    schema migration is not what a benchmark measures, and it races when parallel workers
    create the same new database."""
    uri = f"sqlite:///{Path(folder)}/mlflow.db"
    code = f"import mlflow; mlflow.MlflowClient({uri!r}).search_experiments()"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return uri


def _server(tmp: Path) -> tuple[str, subprocess.Popen]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBTRACK_"))}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1"),
            *("--port", str(port), "--backend-store-uri", f"sqlite:///{tmp}/server.db"),
            *("--artifacts-destination", str(tmp / "artifacts"), "--workers", "1"),
        ],
        cwd=tmp,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=2):
            return url, proc
        time.sleep(0.5)
    raise SystemExit("mlflow server did not start")


@contextlib.contextmanager
def bench_store(tmp: Path, *, server: bool = False) -> Iterator[str]:
    """nbtrack and MLflow pointed at a fresh store in ``tmp`` (``server``: a local mlflow server,
    stopped at the end); yields its URI."""
    uri, proc = _server(tmp) if server else (fresh_store(tmp), None)
    os.environ["NBTRACK_TRACKING_URI"] = uri
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        yield uri
    finally:
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
