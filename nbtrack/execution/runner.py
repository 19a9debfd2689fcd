"""Execute a notebook with papermill in a fresh kernel, in a child process.

papermill changes the working directory of the whole process for the length of an execution
(``execute_notebook(cwd=...)`` is a ``chdir``), and its kernels inherit the process's
environment. Both are process-global: two executions in threads (a grid), or one inside a
notebook that has its own working directory, would step on each other. So every execution gets a
child process (``python -m nbtrack.execution.notebook_run``) whose working directory and
environment are its own; the kernel is the child's child and inherits both. The cost is one
interpreter start and papermill's import, about a second.

nbtrack's own runners tell the kernel what papermill does not (see ``nbtrack.settings``): the
notebook's path (``NBTRACK_RUNNER_NOTEBOOK``, and ``JPY_SESSION_NAME`` as JupyterLab would set
it, overriding one inherited from the caller's own kernel), the experiment, the parent run, seeds
and tags. Tracked cells give those precedence over their ``%%track`` lines.

    result = runner.execute("train.ipynb", "out/train.ipynb", {"lr": 0.1},
                            settings=RunnerSettings(experiment="digits", seed=0),
                            cwd="project/", timeout=600)
    if not result.success:
        print(result.failure.source, result.failure.traceback)

``execute_here`` runs the same execution in the calling process instead, for long-lived workers
that run one execution at a time and import papermill once (nbtrack's grids).

This module imports only the standard library (papermill is imported in the child).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbtrack.execution.notebook_run import CellFailure, find_failure, read_json, run_papermill
from nbtrack.execution.processes import kill_tree

# How long the parent waits beyond ``timeout`` before it kills the child: kernel start-up
# (papermill's own limit is 60 s), shutdown and saving the output notebook are not cell time.
GRACE = 120.0
RUNNER_PREFIX = "NBTRACK_RUNNER_"


@dataclass(frozen=True)
class RunnerSettings:
    """What nbtrack's runners tell the kernel through ``NBTRACK_RUNNER_*`` (nbtrack.settings).

    ``seeds`` maps the sha256 of a cell's source (``nbtrack.cell.sha256``) to the seed that cell
    must use; ``seed`` applies to every other tracked cell.
    """

    notebook: str | None = None  # the path tracked cells record; default: the input notebook
    experiment: str | None = None
    parent: str | None = None
    seed: int | None = None
    seeds: Mapping[str, int] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    tracking_uri: str | None = None  # default: inherited from this process's environment

    def environ(self, notebook: str | None) -> dict[str, str]:
        """The variables to set in the kernel's (or script's) environment."""
        env = {}
        path = self.notebook or notebook
        if path:
            env["NBTRACK_RUNNER_NOTEBOOK"] = path
            # A kernel started by JupyterLab has its own notebook's name here, and the kernel
            # reads it first: an execution started from a notebook must not inherit it.
            env["JPY_SESSION_NAME"] = path
        if self.experiment:
            env["NBTRACK_RUNNER_EXPERIMENT"] = self.experiment
        if self.parent:
            env["NBTRACK_RUNNER_PARENT"] = self.parent
        if self.seed is not None:
            env["NBTRACK_RUNNER_SEED"] = str(int(self.seed))
        if self.seeds:
            env["NBTRACK_RUNNER_SEEDS"] = json.dumps({k: int(v) for k, v in self.seeds.items()})
        if self.tags:
            env["NBTRACK_RUNNER_TAGS"] = json.dumps({str(k): str(v) for k, v in self.tags.items()})
        if self.tracking_uri:
            env["NBTRACK_TRACKING_URI"] = self.tracking_uri
            env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        return env


@dataclass(frozen=True)
class Execution:
    """The outcome of ``execute``."""

    output: Path  # the executed notebook (as far as it got)
    success: bool
    failure: CellFailure | None = None  # the failing cell, when one failed
    error: str = ""  # a failure outside any cell (no kernel, papermill refused), else ""
    timed_out: bool = False
    duration: float = 0.0  # seconds, child process included
    log: str = ""  # the child's stderr (papermill's log, warnings), for diagnosis

    @property
    def message(self) -> str:
        """One line: what went wrong, or "ok"."""
        if self.success:
            return "ok"
        if self.failure is not None:
            return str(self.failure)
        return self.error or "the execution failed"


def execute(
    notebook: str | os.PathLike,
    output: str | os.PathLike,
    parameters: Mapping[str, Any] | None = None,
    *,
    settings: RunnerSettings | None = None,
    env: Mapping[str, str | None] | None = None,
    cwd: str | os.PathLike | None = None,
    timeout: float | None = None,
    kernel_name: str | None = None,
) -> Execution:
    """Run ``notebook`` top to bottom with papermill in a fresh kernel; write it to ``output``.

    ``parameters`` go to papermill (into the ``parameters`` cell when there is one).
    ``settings``: the ``NBTRACK_RUNNER_*`` variables for the kernel. ``env``: more variables for
    the kernel (a value of None removes an inherited one). ``cwd``: the kernel's working
    directory (default: the notebook's folder, as JupyterLab does). ``timeout``: seconds the
    whole execution may take; the cell running when it runs out fails with a timeout.
    ``kernel_name``: default, the notebook's kernelspec.

    Never raises for a failing notebook: the result says what failed, and where.
    """
    out, spec, child_env = _prepare(
        notebook, output, parameters, settings, env, cwd, timeout, kernel_name
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nbtrack-runner-") as tmp:
        spec_path, result_path = Path(tmp, "spec.json"), Path(tmp, "result.json")
        spec["result"] = str(result_path)
        spec_path.write_text(json.dumps(spec, default=str), encoding="utf-8")
        log_path = Path(tmp, "stderr.txt")
        with open(log_path, "wb") as log:
            # The child starts in a folder of its own: a module in the notebook's folder (a
            # json.py, a yaml.py) must not shadow what papermill imports. papermill then moves
            # the child into ``workdir``, where the kernel starts.
            proc = subprocess.Popen(
                [sys.executable, "-m", "nbtrack.execution.notebook_run", str(spec_path)],
                cwd=tmp,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            killed = _wait(proc, None if timeout is None else timeout + GRACE)
        stderr = log_path.read_text(encoding="utf-8", errors="replace")
        result = read_json(result_path)
    duration = time.monotonic() - started
    if killed:
        result = {"ok": False, "timed_out": True, "error": f"no result after {timeout:g} s"}
    elif result is None:
        tail = "\n".join(stderr.strip().splitlines()[-5:])
        result = {"ok": False, "error": f"the runner exited with code {proc.returncode}: {tail}"}
    return _execution(out, result, duration, stderr)


def _prepare(
    notebook: str | os.PathLike,
    output: str | os.PathLike,
    parameters: Mapping[str, Any] | None,
    settings: RunnerSettings | None,
    env: Mapping[str, str | None] | None,
    cwd: str | os.PathLike | None,
    timeout: float | None,
    kernel_name: str | None,
) -> tuple[Path, dict[str, Any], dict[str, str]]:
    """What both ways of executing need: the output path (its folder made), papermill's spec
    and the kernel's environment."""
    src = Path(notebook).resolve()
    out = Path(output).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(cwd).resolve() if cwd is not None else src.parent
    spec = {
        "input": str(src),
        "output": str(out),
        "parameters": dict(parameters or {}),
        "kernel_name": kernel_name,
        "timeout": timeout,
        "cwd": str(workdir),
    }
    return out, spec, _child_env(str(src), settings or RunnerSettings(), env or {})


def _execution(out: Path, result: Mapping[str, Any], duration: float, log: str) -> Execution:
    failure = find_failure(out) if not result.get("ok") else None
    return Execution(
        output=out,
        success=bool(result.get("ok")),
        failure=failure,
        error="" if result.get("ok") else str(result.get("error") or ""),
        timed_out=bool(result.get("timed_out")),
        duration=duration,
        log=log,
    )


def execute_here(
    notebook: str | os.PathLike,
    output: str | os.PathLike,
    parameters: Mapping[str, Any] | None = None,
    *,
    settings: RunnerSettings | None = None,
    env: Mapping[str, str | None] | None = None,
    cwd: str | os.PathLike | None = None,
    timeout: float | None = None,
    kernel_name: str | None = None,
    kernel_manager_class: type | None = None,
) -> Execution:
    """``execute``, in this process rather than a child: for a long-lived worker process that
    runs one execution at a time and has papermill imported already (nbtrack's grid workers).

    The working directory (papermill's ``chdir``) and the environment the kernel inherits are
    this process's for the length of the execution, and restored after: never call it from two
    threads at once. ``kernel_manager_class``: jupyter_client's kernel manager for the kernel
    (the grid's starts kernels from a pre-warmed process). The result's ``log`` is empty: this
    process's stderr is the caller's.
    """
    out, spec, child_env = _prepare(
        notebook, output, parameters, settings, env, cwd, timeout, kernel_name
    )
    extra = {"kernel_manager_class": kernel_manager_class} if kernel_manager_class else {}
    saved = dict(os.environ)
    started = time.monotonic()
    try:
        os.environ.clear()
        os.environ.update(child_env)
        result = run_papermill(spec, **extra)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return _execution(out, result, time.monotonic() - started, "")


def _child_env(notebook: str | None, settings: RunnerSettings, extra: Mapping[str, str | None]):
    env = {k: v for k, v in os.environ.items() if not k.startswith(RUNNER_PREFIX)}
    # An inherited MLFLOW_RUN_ID would make every mlflow.start_run in the kernel resume that run.
    env.pop("MLFLOW_RUN_ID", None)
    env.pop("JPY_SESSION_NAME", None)
    env.update(settings.environ(notebook))
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def execute_script(
    script: str | os.PathLike,
    log: str | os.PathLike,
    *,
    settings: RunnerSettings | None = None,
    env: Mapping[str, str | None] | None = None,
    cwd: str | os.PathLike | None = None,
    timeout: float | None = None,
) -> Execution:
    """Run a Python script (``nbtrack.run()`` blocks in it) in a child process, as ``python
    script.py``; its output goes to ``log``. The result's ``output`` is the log, and a failure
    carries the script's last traceback."""
    src = Path(script).resolve()
    out = Path(log).resolve()
    workdir = Path(cwd).resolve() if cwd is not None else src.parent
    child_env = _child_env(None, settings or RunnerSettings(), env or {})
    started = time.monotonic()
    with open(out, "wb") as f:
        proc = subprocess.Popen(
            [sys.executable, str(src)],
            cwd=str(workdir),
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
        )
        killed = _wait(proc, timeout)
    text = out.read_text(encoding="utf-8", errors="replace")
    ok = not killed and proc.returncode == 0
    failure = None
    if not ok:
        tb = _last_traceback(text)
        last = tb.strip().splitlines()[-1] if tb.strip() else ""
        ename, _, evalue = last.partition(": ")
        if killed:
            ename, evalue = "TimeoutError", f"timed out after {timeout:g} s"
        failure = CellFailure(
            0, None, src.read_text(encoding="utf-8"), ename, evalue, tb, timed_out=killed
        )
    return Execution(
        output=out,
        success=ok,
        failure=failure,
        error="" if ok else (failure.evalue if killed else f"exit code {proc.returncode}"),
        timed_out=killed,
        duration=time.monotonic() - started,
        log=text,
    )


def _last_traceback(text: str) -> str:
    start = text.rfind("Traceback (most recent call last):")
    return text[start:] if start >= 0 else "\n".join(text.strip().splitlines()[-20:])


def _wait(proc: subprocess.Popen, limit: float | None) -> bool:
    """Wait for the child; past ``limit`` kill it and its kernel. True if it was killed."""
    try:
        proc.wait(timeout=limit)
        return False
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        proc.wait()
        return True
    except BaseException:  # Ctrl-C in the caller: leave no kernel behind
        kill_tree(proc.pid)
        raise
