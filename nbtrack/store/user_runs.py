"""MLflow code the user writes inside a tracked run: ``mlflow.start_run()`` joins it.

Most MLflow notebooks open their own run (``with mlflow.start_run(): ...``). Inside a tracked
cell MLflow would refuse ("Run ... is already active"), so a notebook that works untracked would
fail tracked. While a run nbtrack started is MLflow's active run, ``mlflow.start_run`` and
``mlflow.end_run`` are wrapped (the module attributes users call; the originals run underneath):

- ``start_run()`` without ``nested`` returns the tracked run itself, with the given ``run_name``,
  ``tags`` and ``description`` applied to it; leaving its ``with`` block does not end it, the
  cell's end does. ``run_id=<another run>`` resumes that run as a child of the stack (MLflow
  needs ``nested`` for that), as it would have been resumed untracked.
- ``start_run(nested=True)`` makes a child of the tracked run in the tracked run's experiment
  (MLflow would use its active experiment, often Default).
- ``end_run()`` while the tracked run is the innermost active run does nothing: the cell ends it.

Outside a tracked run the wrappers call MLflow's functions unchanged. Code that bound
``from mlflow import start_run`` before nbtrack's first run holds the original function.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
from collections.abc import Mapping

import mlflow

from nbtrack import record
from nbtrack.store.connection import client, translated

_log = logging.getLogger("nbtrack.store")

original_start_run = mlflow.start_run
original_end_run = mlflow.end_run
_signature = inspect.signature(original_start_run)

# run id -> experiment id of the runs nbtrack started that are still open in this process
_tracked: dict[str, str] = {}
# run id -> what restore_active_experiment gives back when the run ends
_experiments: dict[str, tuple[str, str | None, str | None]] = {}
_lock = threading.Lock()


class JoinedRun(mlflow.ActiveRun):
    """The tracked run, as ``mlflow.start_run()`` returns it inside a tracked cell: its ``with``
    block's end leaves the run open (the cell ends it, with the cell's status)."""

    def __exit__(self, exc_type, exc_val, exc_tb) -> bool:
        return False  # an exception goes on to the cell, which ends the run FAILED


def opened(run_id: str, experiment_id: str) -> None:
    """A run nbtrack started is MLflow's active run: user code joins it, and its experiment is
    MLflow's active experiment, until ``closed``."""
    with _lock:
        _tracked[run_id] = experiment_id
        _install()
    try:
        _experiments[run_id] = set_active_experiment(experiment_id)
    except Exception:  # the run goes on; children the user starts say their experiment
        _log.debug("could not make experiment %s active", experiment_id, exc_info=True)


def closed(run_id: str) -> None:
    with _lock:
        _tracked.pop(run_id, None)
    state = _experiments.pop(run_id, None)
    if state is not None:
        restore_active_experiment(state)


def _active_tracked() -> tuple[str, str] | None:
    """(run id, experiment id) when the innermost active MLflow run is one nbtrack started."""
    if not _tracked:
        return None
    active = mlflow.active_run()
    if active is None:
        return None
    exp_id = _tracked.get(active.info.run_id)
    return (active.info.run_id, exp_id) if exp_id is not None else None


@functools.wraps(original_start_run)
def start_run(*args, **kwargs):
    tracked = _active_tracked()
    if tracked is None:
        return original_start_run(*args, **kwargs)
    run_id, experiment_id = tracked
    call = _signature.bind(*args, **kwargs)
    asked = call.arguments
    if asked.get("nested") or asked.get("parent_run_id"):
        # A child: in the tracked run's experiment unless the user named one.
        if asked.get("experiment_id") is None:
            call.arguments["experiment_id"] = experiment_id
        return original_start_run(*call.args, **call.kwargs)
    if asked.get("run_id") not in (None, run_id):
        call.arguments["nested"] = True  # resume the user's run on top of the tracked one
        return original_start_run(*call.args, **call.kwargs)
    _apply(run_id, asked.get("run_name"), asked.get("tags"), asked.get("description"))
    return JoinedRun(mlflow.get_run(run_id))


def _apply(
    run_id: str, name: str | None, tags: Mapping[str, object] | None, description: str | None
) -> None:
    """What the user's ``start_run`` asked of the run they joined."""
    items = {str(k): str(v) for k, v in (tags or {}).items()}
    if description:
        items[record.TAG_NOTE] = description
    with translated("apply start_run's name and tags to the tracked run"):
        if name:
            client().update_run(run_id, name=name)
        if items:
            mlflow.set_tags(items)


@functools.wraps(original_end_run)
def end_run(*args, **kwargs) -> None:
    if _active_tracked() is not None:
        _log.debug("mlflow.end_run() inside a tracked run: the run ends with the cell")
        return None
    return original_end_run(*args, **kwargs)


def _install() -> None:
    # The names users call; MLflow's own modules keep calling the originals.
    if mlflow.start_run is not start_run:
        mlflow.start_run = start_run
        mlflow.end_run = end_run


def set_active_experiment(experiment_id: str) -> tuple[str, str | None, str | None]:
    """Make ``experiment_id`` MLflow's active experiment while a run is open, so autologging and
    runs the user starts land there. Returns what ``restore_active_experiment`` gives back.

    With no experiment set by the user, only MLflow's ``MLFLOW_EXPERIMENT_ID`` variable is set
    (and removed after): ``mlflow.set_experiment`` would leave a process-wide choice behind that
    outlives the run and a change of store. An experiment the user set is switched with
    ``mlflow.set_experiment`` and switched back after.
    """
    env_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
    env_name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if env_id is None and env_name is None:
        os.environ["MLFLOW_EXPERIMENT_ID"] = experiment_id
    elif env_id != experiment_id:
        with translated("set the active experiment"):
            mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id, env_id, env_name


def restore_active_experiment(state: tuple[str, str | None, str | None]) -> None:
    """Give back the active experiment the user had before the run, unless the user's code
    chose another one meanwhile (``mlflow.set_experiment`` inside the cell wins)."""
    experiment_id, env_id, env_name = state
    if os.environ.get("MLFLOW_EXPERIMENT_ID") != experiment_id or env_id == experiment_id:
        return
    if env_id is None and env_name is None:
        os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
        return
    try:
        with translated("restore the active experiment"):
            if env_id is not None:
                mlflow.set_experiment(experiment_id=env_id)
            else:
                mlflow.set_experiment(experiment_name=env_name)
    except Exception:  # the user's experiment was deleted meanwhile: keep the run's
        _log.debug("could not restore the experiment the user had set", exc_info=True)
