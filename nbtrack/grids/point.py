"""One point of a grid: execute the notebook with its params, then complete its record.

Runs in a grid worker process (nbtrack.grids.worker), on this machine or on a Dask worker: the
execution is papermill's, through ``runner.execute_here``, in a fresh kernel whose tracked cells
make the point's runs (the runner tells the kernel the grid's experiment, its parent run and the
point's tags, which win over the notebook's own ``%%track`` lines). Then, from the same process
(it sees the executed notebook and the store), each of the point's runs gets:

- the executed notebook, artifact ``nbtrack/grid/output.ipynb`` (redacted like every snapshot);
- tags ``nbtrack.grid.status`` (the point's outcome: FINISHED, FAILED or KILLED),
  ``nbtrack.grid.seconds`` and, on failure, ``nbtrack.grid.error`` (one line) with the failing
  cell and its traceback in artifact ``nbtrack/grid/error.json``.

A point whose execution made no run (it failed before its first tracked cell, or the notebook
tracks nothing) gets one made for it under the grid's parent, with the point's params, so that
every point has a record. A run its kernel left RUNNING (the point was stopped, timed out, or
its kernel died) is closed as KILLED once that kernel is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbtrack import logs
from nbtrack.execution import runner
from nbtrack.record import ARTIFACT_GRID_ERROR as ERROR
from nbtrack.record import ARTIFACT_GRID_OUTPUT as OUTPUT
from nbtrack.record import TAG_GRID  # on each point's run: the grid's parent run id
from nbtrack.record import TAG_GRID_ATTEMPT as TAG_ATTEMPT  # one id per call of nbtrack.grid
from nbtrack.record import TAG_GRID_ERROR as TAG_ERROR
from nbtrack.record import TAG_GRID_POINT as TAG_POINT  # the point's index in the grid
from nbtrack.record import TAG_GRID_SECONDS as TAG_SECONDS
from nbtrack.record import TAG_GRID_STATUS as TAG_STATUS  # the point's outcome

_log = logs.get(__name__)

KERNEL_GONE_WAIT = 15.0  # seconds to wait for a stopped point's kernel before closing its runs


@dataclass(frozen=True)
class PointTask:
    """What a worker needs to run one point (picklable: it crosses to Dask workers)."""

    grid_run_id: str
    attempt: str
    experiment: str
    experiment_id: str
    index: int
    parameters: Mapping[str, Any]
    notebook: str  # absolute path, as the grid's caller sees it (recorded as the notebook)
    notebook_sha256: str
    tracking_uri: str
    cwd: str | None = None  # the kernel's working directory (default: the notebook's folder)
    timeout: float | None = None
    kernel_name: str | None = None
    output_dir: str | None = None  # keep executed notebooks here (default: a temp dir, removed)
    notebook_text: str | None = None  # shipped to workers that may not see the file (Dask)
    env: Mapping[str, str | None] = field(default_factory=dict)

    def tags(self) -> dict[str, str]:
        return {
            TAG_GRID: self.grid_run_id,
            TAG_POINT: str(self.index),
            TAG_ATTEMPT: self.attempt,
        }


@dataclass(frozen=True)
class PointOutcome:
    """How a point ended (picklable)."""

    index: int
    status: str  # FINISHED, FAILED or KILLED
    run_ids: tuple[str, ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)
    error: str = ""  # one line; "" when it FINISHED
    cell: str = ""  # the failing cell's source
    traceback: str = ""
    seconds: float = 0.0
    note: str = ""  # something that went wrong recording it


def failed(task: PointTask, status: str, error: str, seconds: float = 0.0) -> PointOutcome:
    """An outcome for a point whose worker could not report one (it died, or never ran it)."""
    return PointOutcome(task.index, status, error=error, seconds=seconds)


def run_point(
    task: PointTask,
    *,
    kernel_manager_class: type | None = None,
    stopping: Callable[[], bool] = lambda: False,
    wait_kernel: Callable[[float], None] = lambda timeout: None,
) -> PointOutcome:
    """Execute the point in this process, then complete its record. Never raises for a
    failing notebook or store: the outcome says what happened."""
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="nbtrack-point-"))
    try:
        notebook, cwd = _locate(task, scratch)
        stem = Path(task.notebook).stem
        folder = Path(task.output_dir) if task.output_dir else scratch
        output = folder / f"{stem}.point{task.index}.ipynb"
        settings = runner.RunnerSettings(
            notebook=task.notebook,
            experiment=task.experiment,
            parent=task.grid_run_id,
            tags=task.tags(),
            tracking_uri=task.tracking_uri,
        )
        try:
            execution = runner.execute_here(
                notebook,
                output,
                dict(task.parameters),
                settings=settings,
                env={"NBTRACK_DISABLE": None, **task.env},  # a grid is tracked
                cwd=cwd,
                timeout=task.timeout,
                kernel_name=task.kernel_name,
                kernel_manager_class=kernel_manager_class,
            )
        except Exception as e:  # the runner reports failing notebooks; this is something else
            _log.debug("runner.execute_here(notebook, output, dict(ta... failed", exc_info=True)
            execution = runner.Execution(output=output, success=False, error=_line(e))
        seconds = time.monotonic() - started
        return record(task, execution, stopped=stopping(), seconds=seconds, wait_kernel=wait_kernel)
    except Exception as e:
        _log.debug("_locate(task, scratch) failed", exc_info=True)
        return failed(task, "KILLED" if stopping() else "FAILED", _line(e))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def _locate(task: PointTask, scratch: Path) -> tuple[str, str | None]:
    """The notebook to execute and its working directory: the file itself when this worker
    sees it unchanged, else the copy shipped with the task, in a scratch folder."""
    path = Path(task.notebook)
    with contextlib.suppress(OSError):
        if hashlib.sha256(path.read_bytes()).hexdigest() == task.notebook_sha256:
            return str(path), task.cwd
    if task.notebook_text is None:
        raise FileNotFoundError(f"the notebook {task.notebook} is not on this worker")
    copy = scratch / "notebook" / path.name
    copy.parent.mkdir(parents=True)
    copy.write_text(task.notebook_text, encoding="utf-8")
    cwd = task.cwd if task.cwd and Path(task.cwd).is_dir() else str(copy.parent)
    return str(copy), cwd


# -- the record --------------------------------------------------------------------------------


def status_of(execution: runner.Execution, stopped: bool) -> str:
    if execution.success:
        return "FINISHED"
    f = execution.failure
    if stopped or (f is not None and f.ename == "KeyboardInterrupt"):
        return "KILLED"
    return "FAILED"


def record(
    task: PointTask,
    execution: runner.Execution,
    *,
    stopped: bool,
    seconds: float,
    wait_kernel: Callable[[float], None] = lambda timeout: None,
) -> PointOutcome:
    from nbtrack import store
    from nbtrack.capture import notebook as nbcap
    from nbtrack.capture.redaction import Redactor
    from nbtrack.errors import NbtrackError
    from nbtrack.tracking import tracker

    status = status_of(execution, stopped)
    f = execution.failure
    error = "" if status == "FINISHED" else _error_line(execution, stopped)
    outcome = PointOutcome(
        task.index,
        status,
        error=error,
        cell=f.source if f else "",
        traceback=f.traceback if f else "",
        seconds=seconds,
    )
    try:
        store.configure()
        runs = _runs(task)
        running = [r.run_id for r in runs if r.status == "RUNNING"]
        if running and tracker.wait_caught_up(running) != running:
            # Its kernel ended, and MLflow was catching up with what it logged: now done.
            runs = _runs(task)
        if any(r.status == "RUNNING" for r in runs):
            # Stopped, timed out, or its kernel died: the kernel may still be ending its run.
            wait_kernel(KERNEL_GONE_WAIT)
            runs = _runs(task)
            for r in runs:
                if r.status == "RUNNING":
                    reason = Redactor().text(_why_left_running(execution, stopped))
                    store.mark_killed(r.run_id, reason)
            runs = _runs(task)
        if not runs:
            runs = [_made_run(task, status)]
        redactor = Redactor()
        files: dict[str, str] = {}
        nb = nbcap.read_notebook(str(execution.output), redactor) if execution.output else None
        if nb is not None:
            files[OUTPUT] = nb.text
        if status != "FINISHED":
            files[ERROR] = json.dumps(_error_doc(execution, error), indent=1)
        tags = {TAG_STATUS: status, TAG_SECONDS: f"{seconds:.3f}"}
        if error:
            tags[TAG_ERROR] = redactor.text(error)[: store.MAX_TAG_VALUE]
        for r in runs:
            store.log_files(r.run_id, redactor.files(files))
            store.log_params_tags(r.run_id, tags=redactor.mapping(tags))
        metrics: dict[str, float] = {}
        for r in runs:  # oldest first: a later cell's value of the same key wins
            metrics.update(r.metrics)
        return PointOutcome(
            task.index,
            status,
            tuple(r.run_id for r in runs),
            metrics,
            error,
            outcome.cell,
            outcome.traceback,
            seconds,
        )
    except (NbtrackError, OSError) as e:
        return PointOutcome(**{**outcome.__dict__, "note": f"not fully recorded: {e}"})


def _runs(task: PointTask) -> list:
    from nbtrack import store

    return store.search_all_runs([task.experiment_id], store.tag_filter(task.tags()))


def _error_line(execution: runner.Execution, stopped: bool) -> str:
    if stopped:
        return f"stopped: {execution.message}" if not execution.success else "stopped"
    return execution.message


def _why_left_running(execution: runner.Execution, stopped: bool) -> str:
    if stopped:
        return "the grid was stopped while the point ran"
    if execution.timed_out:
        return f"the point ran out of time ({execution.error})"
    return f"the point's kernel ended during the run ({execution.message})"


def _error_doc(execution: runner.Execution, error: str) -> dict[str, Any]:
    f = execution.failure
    doc: dict[str, Any] = {"error": error, "timed_out": execution.timed_out}
    if f is not None:
        doc.update(
            cell_index=f.index,
            execution_count=f.execution_count,
            source=f.source,
            ename=f.ename,
            evalue=f.evalue,
            traceback=f.traceback,
        )
    return doc


def _made_run(task: PointTask, status: str):
    """A run for a point whose execution made none, under the grid's parent."""
    from nbtrack import record, store
    from nbtrack.capture.redaction import Redactor
    from nbtrack.capture.source import format_param

    tags = {
        **task.tags(),
        record.TAG_PARENT_RUN_ID: task.grid_run_id,
        record.TAG_SOURCE_NAME: task.notebook,
        record.TAG_SOURCE_TYPE: "NOTEBOOK",
        record.TAG_GRID_MADE: "no tracked cell ran: this run records the point",
    }
    redactor = Redactor()
    run_id = store.create_run(
        task.experiment_id, redactor.text(f"point {task.index}"), redactor.mapping(tags)
    )
    try:
        params = {k: format_param(v) for k, v in task.parameters.items()}
        store.log_params_tags(run_id, params=redactor.mapping(params))
    finally:
        store.terminate_run(run_id, status)
    return store.get_run(run_id)


__all__ = ["PointOutcome", "PointTask", "record", "run_point"]
