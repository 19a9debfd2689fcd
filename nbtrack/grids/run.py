"""Running a grid: its parent run, its points through an executor, progress, Ctrl-C, resume.

1. The grid's parent run is made first (which also creates a new store's database, once, before
   any worker opens it: MLflow's first migration races when several processes create the same
   new database). Params: the spec (``grid.<name>``: the values or the range; ``grid.exclude``,
   ``grid.random``, ``grid.seed``) and ``git_commit``; tags: the notebook
   (``mlflow.source.name``, ``nbtrack.notebook.sha256``, ``nbtrack.grid.notebook``), git, the
   number of points (``nbtrack.grid.points``, which marks a grid's parent), who and where (the
   driver's pid: a grid whose driver died is closed as KILLED like an orphaned run); artifacts
   ``nbtrack/grid/spec.json`` and ``nbtrack/grid/points.json`` (what a resume runs).
2. Each point runs on an executor (grids.executors); its tracked cells make child runs in the
   grid's experiment (nbtrack.grids.point). A progress bar counts finished, failed and running
   points, with the best value of ``metric`` so far.
3. The parent ends FINISHED when every point did, FAILED when one failed; metrics
   ``points_finished``, ``points_failed``, ``points_killed``.

Ctrl-C stops cleanly: the running points' kernels are interrupted (their tracked cells end
KILLED, and their notebooks are recorded as far as they got), a point that does not stop within
the grace period is killed with its kernel and its runs closed as KILLED, the parent ends KILLED,
and KeyboardInterrupt is raised again. ``resume=GRID_RUN_ID`` runs the points whose record does
not say FINISHED, under a new attempt id, in the same parent run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbtrack import logs, store
from nbtrack import record as R
from nbtrack.capture.redaction import nbtrack_tags, nbtrack_text
from nbtrack.errors import UsageError, warn
from nbtrack.grids import executors
from nbtrack.grids import spec as sweep
from nbtrack.grids.options import GridOptions
from nbtrack.grids.point import TAG_ATTEMPT, TAG_GRID, PointOutcome, PointTask
from nbtrack.grids.progress import Progress
from nbtrack.grids.result import GridResult, load, point_records
from nbtrack.logs import failures_logged
from nbtrack.record import ARTIFACT_GRID_POINTS as POINTS
from nbtrack.record import ARTIFACT_GRID_SPEC as SPEC
from nbtrack.record import TAG_GRID_NOTEBOOK as TAG_NOTEBOOK
from nbtrack.record import TAG_GRID_POINTS as TAG_POINTS  # on the parent: marks a grid
from nbtrack.tracking import orphans, snapshot, tracker
from nbtrack.tracking.interrupts import sigint_deferred

_log = logs.get(__name__)


@dataclass
class Plan:
    grid_run_id: str
    experiment: str
    experiment_id: str
    notebook: str
    sha256: str
    points: list[dict[str, Any]]
    todo: list[int]
    attempt: str
    done: list = field(default_factory=list)  # PointRecords already FINISHED (a resume)


def run(
    notebook: str | os.PathLike | None,
    params: Mapping[str, Any] | None,
    options: GridOptions | None = None,
) -> GridResult:
    """``nbtrack.grid``: run ``notebook`` over the points of ``params`` (see there)."""
    o = options or GridOptions()
    uri = store.configure()
    if o.resume:
        if params or o.exclude or o.random is not None:
            raise UsageError(
                "a resumed grid runs the points recorded on its parent run",
                "leave params, exclude and random out (or start a new grid)",
            )
        plan: Plan | None = _resumed(o.resume, notebook)
    else:
        if notebook is None:
            raise UsageError(
                "nbtrack.grid needs a notebook", 'e.g. nbtrack.grid("train.ipynb", ...)'
            )
        path, spec, points = _check(notebook, params or {}, o.exclude, o.random, o.seed)
        plan = None
    ex: executors.Executor | None = None
    outcomes: dict[int, PointOutcome] = {}
    bar: Progress | None = None
    try:
        # The fork server starts importing (papermill, MLflow, ipykernel) while this process
        # records the parent run; workers open the store only once it exists.
        ex = executors.make(o, uri)
        if plan is None:
            plan = _new(path, spec, points, o.experiment)
        _describe_run(plan, o.executor, o.parallel)
        bar = Progress(plan, o.metric, o.mode, enabled=o.progress)
        tasks = deque(_task(plan, i, uri, o) for i in plan.todo)
        while tasks or ex.running():
            while tasks and ex.running() < ex.capacity:
                ex.submit(tasks.popleft())
            bar.running(ex.running())  # as submitted, not as left by the last outcome
            for outcome in ex.wait(0.25):
                outcomes[outcome.index] = outcome
                bar.update(outcome)
    except KeyboardInterrupt:
        if plan is None:
            raise
        with sigint_deferred():
            if ex is not None:
                for outcome in ex.stop():
                    outcomes[outcome.index] = outcome
                    if bar is not None:
                        bar.update(outcome)
                ex.close()
                ex = None
            _close_left_running(plan, "the grid was stopped while the point ran", wait=30.0)
            _end(plan, "KILLED", outcomes)
            if bar is not None:
                bar.close()
        left = len(plan.points) - len(plan.done)
        left -= sum(1 for o in outcomes.values() if o.status == "FINISHED")
        hint = f"nbtrack.grid(resume={plan.grid_run_id!r}) runs the {left} points not FINISHED"
        warn(f"grid {plan.grid_run_id} stopped: {hint}")
        raise KeyboardInterrupt(f"grid {plan.grid_run_id} stopped; {hint}") from None
    except BaseException:
        with failures_logged(_log, "if ex is not None:"):
            if ex is not None:
                ex.stop(grace=5.0)
            if plan is not None:
                _close_left_running(plan, "the grid failed while the point ran")
                _end(plan, "FAILED", outcomes)
        if bar is not None:
            bar.close()
        raise
    finally:
        if ex is not None:
            ex.close()
    _close_left_running(plan, "its grid worker ended during the run")
    status = _end(plan, None, outcomes)
    bar.close()
    failures = [o for o in outcomes.values() if o.status != "FINISHED"]
    if failures and not o.progress:  # a script's grid would otherwise fail without a word
        first = min(failures, key=lambda f: f.index)
        warn(
            f"grid {plan.grid_run_id}: {len(failures)} of {len(plan.points)} points did not "
            f"finish (point {first.index}: {first.status} {first.error or ''}); "
            "the GridResult's .df shows each"
        )
    return load(plan.grid_run_id, metric=o.metric, mode=o.mode, status=status)


# -- the parent run ----------------------------------------------------------------------------


def default_experiment(notebook: Path) -> str:
    """The notebook's own ``%%track --experiment``, else NBTRACK_EXPERIMENT /
    MLFLOW_EXPERIMENT_NAME, else the notebook's name (as its tracked cells would choose)."""
    from nbtrack import settings

    with contextlib.suppress(OSError, ValueError):
        nb = json.loads(notebook.read_text(encoding="utf-8"))
        for cell in nb.get("cells") or []:
            source = cell.get("source") or ""
            source = "".join(source) if isinstance(source, list) else source
            first = source.lstrip().split("\n", 1)[0]
            if cell.get("cell_type") == "code" and first.startswith("%%track"):
                name = _experiment_flag(first[len("%%track") :])
                if name:
                    return name
    return settings.current().experiment or notebook.stem


def _experiment_flag(line: str) -> str | None:
    try:
        argv = shlex.split(line)
    except ValueError:
        return None
    for i, arg in enumerate(argv):
        if arg in ("--experiment", "-e") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--experiment="):
            return arg.split("=", 1)[1]
    return None


def _check(
    notebook: str | os.PathLike,
    params: Mapping[str, Any],
    exclude: Sequence[Mapping[str, Any] | str],
    random: int | None,
    seed: int | None,
) -> tuple[Path, sweep.GridSpec, list[dict[str, Any]]]:
    """The notebook, the spec and its points, checked before anything is recorded or run."""
    path = Path(notebook).expanduser().resolve()
    if not path.is_file():
        raise UsageError(f"no notebook {str(notebook)!r}", f"looked for {path}")
    spec = sweep.GridSpec.build(params, exclude, random, seed)
    sweep.check_names(spec.names, path)
    points = spec.points()
    if not points:
        raise UsageError("the exclusions leave no point to run", "exclude fewer combinations")
    return path, spec, points


def _new(
    path: Path, spec: sweep.GridSpec, points: list[dict[str, Any]], experiment: str | None
) -> Plan:
    """Record the grid's parent run."""
    from nbtrack.capture import git
    from nbtrack.capture import notebook as nbcap
    from nbtrack.capture.redaction import Redactor

    exp = experiment or default_experiment(path)
    exp_id = store.experiment_id(exp)
    redactor = Redactor()
    nb = nbcap.read_notebook(str(path), redactor)
    sha = nb.sha256 if nb else ""
    tags = {
        R.TAG_SOURCE_NAME: str(path),
        R.TAG_SOURCE_TYPE: "NOTEBOOK",
        R.TAG_NOTEBOOK_SHA256: sha,
        TAG_NOTEBOOK: str(path),
        TAG_POINTS: str(len(points)),
        **snapshot.process_tags(),
    }
    run_params = spec.run_params()
    gitstate = git.git_state(str(path))
    tags.update(snapshot.git_tags(gitstate))
    if gitstate is not None and gitstate.commit:
        run_params["git_commit"] = gitstate.commit
    run_id = store.create_run(exp_id, redactor.text(f"grid {path.stem}"), redactor.mapping(tags))
    try:
        run_params = _fit(redactor.mapping(run_params))
        store.log_params_tags(run_id, params=redactor.mapping(run_params))
        indexed = [{"index": i, "params": p} for i, p in enumerate(points)]
        files = {
            SPEC: json.dumps(spec.to_json(), indent=1, default=str) + "\n",
            POINTS: json.dumps(indexed, indent=1, default=str) + "\n",
        }
        store.log_files(run_id, redactor.files(files))
    except BaseException:
        with failures_logged(_log, "store.terminate_run(run_id, 'FAILED')"):
            store.terminate_run(run_id, "FAILED")
        raise
    return Plan(
        run_id, exp, exp_id, str(path), sha, points, list(range(len(points))), uuid.uuid4().hex
    )


def _fit(params: Mapping[str, str]) -> dict[str, str]:
    # The full spec is in nbtrack/grid/spec.json: a param over MLflow's limit is cut, and says so.
    limit = store.MAX_PARAM_VALUE
    return {
        k: v if len(v) <= limit else v[: limit - 40] + f"... (see {SPEC})"
        for k, v in params.items()
    }


def _resumed(grid_run_id: str, notebook: str | os.PathLike | None) -> Plan:
    from nbtrack.capture import notebook as nbcap

    run = store.get_run(grid_run_id)  # NotFound for an unknown id
    tags = run.tags
    if TAG_POINTS not in tags:
        raise UsageError(
            f"run {grid_run_id} is not a grid's parent run",
            "pass the id nbtrack.grid printed (GridResult.grid_run_id)",
        )
    if run.status == "RUNNING" and _driver_alive(tags):
        raise UsageError(
            f"grid {grid_run_id} is still running (process {tags.get(R.TAG_PID)} on "
            f"{tags.get(R.TAG_HOST)})",
            "stop it first, or wait for it",
        )
    text = store.artifact_text(grid_run_id, POINTS)
    if not text:
        raise UsageError(f"grid {grid_run_id} has no {POINTS}", "it cannot be resumed")
    points = [p["params"] for p in sorted(json.loads(text), key=lambda p: p["index"])]
    path = Path(notebook).expanduser().resolve() if notebook else Path(tags[TAG_NOTEBOOK])
    if not path.is_file():
        raise UsageError(
            f"the grid's notebook {str(path)!r} is gone", "pass its new path as notebook="
        )
    exp_id = run.experiment_id
    runs = store.search_all_runs([exp_id], store.tag_filter({TAG_GRID: grid_run_id}))
    records = point_records(points, runs)
    nb = nbcap.read_notebook(str(path))
    sha = nb.sha256 if nb else ""
    if sha and tags.get(R.TAG_NOTEBOOK_SHA256) not in (None, "", sha):
        warn(
            f"the notebook changed since grid {grid_run_id} started: the points left run the "
            "notebook as it is now"
        )
    store.reopen_run(grid_run_id)
    if sha:  # the notebook the grid's latest points ran
        store.log_params_tags(grid_run_id, tags=nbtrack_tags({R.TAG_NOTEBOOK_SHA256: sha}))
    return Plan(
        grid_run_id,
        store.experiment_name(exp_id),
        exp_id,
        str(path),
        sha,
        points,
        [r.index for r in records if not r.done],
        uuid.uuid4().hex,
        [r for r in records if r.done],
    )


def _driver_alive(tags: Mapping[str, str]) -> bool:
    if tags.get(R.TAG_HOST) != socket.gethostname():
        return True  # another machine's: cannot tell, so assume it runs
    try:
        return orphans.alive(int(tags.get(R.TAG_PID, "")), tags.get(R.TAG_PID_START, ""))
    except ValueError:
        return False


def _describe_run(plan: Plan, executor: str, parallel: int | None) -> None:
    store.log_params_tags(
        plan.grid_run_id,
        tags=nbtrack_tags(
            {
                TAG_ATTEMPT: plan.attempt,
                R.TAG_GRID_EXECUTOR: executor,
                R.TAG_GRID_PARALLEL: str(parallel or ""),
                **snapshot.process_tags(),
            }
        ),
    )


def _task(plan: Plan, index: int, uri: str, o: GridOptions) -> PointTask:
    text = Path(plan.notebook).read_text(encoding="utf-8") if o.ships_notebook else None
    return PointTask(
        grid_run_id=plan.grid_run_id,
        attempt=plan.attempt,
        experiment=plan.experiment,
        experiment_id=plan.experiment_id,
        index=index,
        parameters=plan.points[index],
        notebook=plan.notebook,
        notebook_sha256=plan.sha256,
        tracking_uri=uri,
        cwd=str(Path(o.cwd).resolve()) if o.cwd else None,
        timeout=o.timeout,
        kernel_name=o.kernel_name,
        output_dir=str(Path(o.output_dir).resolve()) if o.output_dir else None,
        notebook_text=text,
    )


def _close_left_running(plan: Plan, reason: str, wait: float = 600.0) -> None:
    """Runs of this attempt still RUNNING once its workers are gone: their kernels are too."""
    query = store.tag_filter({TAG_GRID: plan.grid_run_id, TAG_ATTEMPT: plan.attempt})
    with failures_logged(_log, "for r in store.search_all_runs([plan.experiment_id], f'{q..."):
        running = store.search_all_runs(
            [plan.experiment_id], f"{query} and attributes.status = 'RUNNING'"
        )
        # A run MLflow is still catching up with is ended, with its cell's own status, by
        # whoever sends its last point: wait for that (bounded) before calling it killed.
        if running:
            tracker.wait_caught_up([r.run_id for r in running], timeout=wait)
        for r in running:
            if store.get_run(r.run_id).status == "RUNNING":
                store.mark_killed(r.run_id, nbtrack_text(reason))


def _end(plan: Plan, status: str | None, outcomes: Mapping[int, PointOutcome]) -> str:
    """End the parent run: ``status``, else FINISHED when every point did, else FAILED."""
    statuses = [o.status for o in outcomes.values()] + ["FINISHED"] * len(plan.done)
    counts = {s: statuses.count(s) for s in ("FINISHED", "FAILED", "KILLED")}
    if status is None:
        all_done = counts["FINISHED"] == len(plan.points)
        status = (
            "FINISHED"
            if all_done
            else ("KILLED" if counts["KILLED"] and not counts["FAILED"] else "FAILED")
        )
    with failures_logged(_log, "store.log_metrics_now(plan.grid_run_id, {f'points_{s.lowe..."):
        store.log_metrics_now(
            plan.grid_run_id, {f"points_{s.lower()}": n for s, n in counts.items()}
        )
    store.terminate_run(plan.grid_run_id, status)
    return status


__all__ = ["GridResult", "default_experiment", "load", "run"]
