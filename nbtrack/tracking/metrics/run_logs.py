"""The run logs a sender owns: taking over those ended processes left, and ending a run once
MLflow holds its points (its Parquet artifact, its status and end time, its folder removed)."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from nbtrack import logs, store
from nbtrack import record as R
from nbtrack.logs import failures_logged
from nbtrack.store import metric_log

_log = logs.get(__name__)

# A run with fewer points keeps no Parquet copy: MLflow's own history of it reads in well under
# a second, and storing the artifact costs every small cell a few tens of milliseconds.
ARTIFACT_MIN_POINTS = 10_000
KILLED_REASON = "its process ended during the run; its logged metrics were sent afterwards"


@dataclass
class RunLog:
    """A run this sender owns: its folder, its store, what is pending, its end."""

    run_id: str
    uri: str
    dir: Path
    owner_fd: int | None
    adopted: bool = False
    files: dict[str, list[int]] = field(default_factory=dict)  # path -> [ranges left, rows]
    end: dict | None = None
    finishing: bool = False
    logged: int = 0  # points in its log files
    sent: int = 0  # of those, stored in MLflow (or, thinned, handled: thinning.py)
    thin: int = 1  # MLflow gets about one point in this many (NBTRACK_MLFLOW_METRICS)
    partial: bool = False  # some points went to MLflow without the log (a full disk)


def adopt(state_dir: Path, known: set[str]) -> list[RunLog]:
    """The run logs on this machine nobody owns (their process is gone), now owned here."""
    runs = []
    for d in metric_log.run_dirs(state_dir):
        if d.name in known:
            continue
        fd = metric_log.hold(d / metric_log.OWNER_LOCK)
        if fd is None:
            continue  # its process is alive, or another one is catching it up
        doc = metric_log.read_json(d / metric_log.RUN_FILE)
        if not doc or not d.is_dir():
            metric_log.release(fd)  # finished meanwhile, or not ours to read
            continue
        run = RunLog(doc["run_id"], doc["uri"], d, fd, adopted=True, thin=_thin(doc))
        run.partial = (d / metric_log.PARTIAL).exists()
        run.end = metric_log.read_json(d / metric_log.END_FILE)
        run.sent = run.logged = sum(metric_log.rows(p) for p in metric_log.sent_files(d))
        runs.append(run)
    return runs


def _thin(doc: dict) -> int:
    thin = doc.get("thin", 1)
    return thin if isinstance(thin, int) and thin > 1 else 1


def store_artifact(run: RunLog, state_dir: Path) -> None:
    """The whole log as the run's Parquet artifact (runs of ARTIFACT_MIN_POINTS or more, and
    every thinned run: MLflow does not hold all its points)."""
    if (run.logged < ARTIFACT_MIN_POINTS and run.thin == 1) or run.partial:
        return  # a partial log is no copy of the run: readers then read MLflow's history
    table = metric_log.read_run(run.dir)
    if table is None:
        return
    with tempfile.TemporaryDirectory(prefix="nbtrack-", dir=state_dir) as tmp:
        path = Path(tmp, Path(R.ARTIFACT_METRIC_LOG).name)
        metric_log.to_parquet(table, path)
        store.store_log(run.uri, run.run_id, path, R.ARTIFACT_METRIC_LOG)


def end_in_store(run: RunLog) -> bool:
    """The status its cell ended with, at the cell's end time; KILLED when its process died
    mid-run (unless something else ended it meanwhile). True when it closed it KILLED."""
    if run.end is not None:
        store.close_run(run.uri, run.run_id, run.end["status"], run.end.get("end_time"))
    elif store.run_status(run.uri, run.run_id) == "RUNNING":
        store.close_run(run.uri, run.run_id, "KILLED", None, KILLED_REASON)
        return True
    return False


def remove(run: RunLog) -> None:
    with failures_logged(_log, "removing a finished run's log"):
        shutil.rmtree(run.dir, ignore_errors=True)
    metric_log.release(run.owner_fd)


def set_aside(run: RunLog, state_dir: Path) -> Path:
    """Move a run's log out of the way (its store refuses it for good); returns where."""
    aside = Path(state_dir) / "metrics-set-aside" / run.run_id
    with failures_logged(_log, "setting a run's log aside"):
        aside.parent.mkdir(parents=True, exist_ok=True)
        run.dir.replace(aside)
    metric_log.release(run.owner_fd)
    return aside
