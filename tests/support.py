"""Helpers for tests that run notebooks and read back what MLflow recorded."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"


def all_runs(client, experiment: str | None = None) -> list:
    exps = client.search_experiments()
    ids = [e.experiment_id for e in exps if experiment is None or e.name == experiment]
    return client.search_runs(ids, order_by=["attributes.start_time ASC"]) if ids else []


def artifact_text(client, run_id: str, path: str) -> str:
    from mlflow.artifacts import download_artifacts

    local = download_artifacts(run_id=run_id, artifact_path=path, tracking_uri=client.tracking_uri)
    return Path(local).read_text(encoding="utf-8")


def execute(
    nb_path: Path,
    cwd: Path,
    *,
    env: dict[str, str] | None = None,
    timeout: int = 120,
    allow_errors: bool = False,
    interrupt_on_timeout: bool = False,
    timeout_func=None,
):
    """Run a notebook top to bottom in a fresh kernel (nbclient), as papermill and nbval do.

    The kernel sees JPY_SESSION_NAME, as it would under JupyterLab, so nbtrack knows the path.
    Returns the executed notebook; raises CellExecutionError unless ``allow_errors``.
    """
    from nbclient import NotebookClient

    nb = nbformat.read(nb_path, as_version=4)
    kernel_env = {**os.environ, "JPY_SESSION_NAME": str(nb_path), **(env or {})}
    nb_client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=allow_errors,
        interrupt_on_timeout=interrupt_on_timeout,
        timeout_func=timeout_func,
        resources={"metadata": {"path": str(cwd)}},
    )
    nb_client.execute(env=kernel_env, cwd=str(cwd))
    return nb


def copy_notebook(name: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / name
    shutil.copy(NOTEBOOKS / name, target)
    return target


def outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if "text" in out:
            parts.append(out["text"])
        for mime in ("text/plain", "text/html"):
            if mime in out.get("data", {}):
                parts.append(out["data"][mime])
        if out.get("output_type") == "error":
            parts.append(f"{out['ename']}: {out['evalue']}")
    return "\n".join(parts)


def code_notebook(path: Path, cells: list) -> Path:
    """Write a Python 3 notebook of these cells to ``path``: code cells given as their source,
    other cells as nbformat cells."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) if isinstance(c, str) else c for c in cells]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


@contextlib.contextmanager
def mlflow_server(base: Path, args: list[str]):
    """``mlflow server`` on a free loopback port with ``args`` (store, artifacts), its log in
    ``base/server.log``; yields ``(url, process)`` once ``/health`` answers, stops it after."""
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    import pytest

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    log = (base / "server.log").open("wb")
    cmd += ["--workers", "1", *args]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("mlflow server did not start:\n" + (base / "server.log").read_text())
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        yield url, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGCONT)  # a test that failed while it was stopped
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
