"""A tracked run's life: start with a snapshot, log, finish with a status.

The adapters (the ``%%track`` magic, ``nbtrack.run()``) describe what the user asked for
(``RunSpec``) and what is running (``Source``); this module turns that into one MLflow run that
follows the run-record contract of DESIGN.md. It knows nothing of IPython.
"""

# Over 400 lines: one run's whole life (start, log, finish, the script form) reads best in one
# place; its snapshot, names, orphans and metrics already live in their own modules.

from __future__ import annotations

import atexit
import contextlib
import os
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nbtrack import logs, settings, store
from nbtrack import record as R
from nbtrack.capture import data as datacap
from nbtrack.capture import environment, git, redact, seeds, source
from nbtrack.capture import notebook as nbcap
from nbtrack.capture.redaction import Redactor
from nbtrack.errors import NbtrackError, ParamConflict, StoreError, UsageError, warn
from nbtrack.logs import failures_logged
from nbtrack.tracking import interrupts, names, orphans, process_metrics, snapshot
from nbtrack.tracking import params as cellparams
from nbtrack.tracking.metrics.points import check_key, check_value
from nbtrack.tracking.process_metrics import catch_up, wait_caught_up, writer

_log = logs.get(__name__)


@dataclass
class RunSpec:
    """What the user asked the run to record, from ``%%track`` flags or ``nbtrack.run()``
    arguments. What the magic does around a cell (live curves, card, --register) is the
    magic's own (frontends.track_line.CellOptions)."""

    experiment: str | None = None
    name: str | None = None
    seed: int | None = None
    data: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    auto_params: bool = True
    nested: bool = False
    note: str | None = None  # the run's description; else the markdown above the cell


@dataclass
class Source:
    """What is running, as the adapter knows it."""

    kind: str  # "NOTEBOOK" or "LOCAL" (MLflow's source types)
    path: str | None  # the notebook or script file
    code: str  # the cell (or script) as the user wrote it
    python: str = ""  # the same code as plain Python, for finding literal params
    history: Sequence[str] | None = None  # cells this kernel ran, in order (notebooks)
    earlier: Sequence[str] = ()  # cells run before this one (papermill's parameters)
    namespace: Mapping[str, object] | None = None  # the user's variables (IPython's user_ns)
    kernel: str | None = None
    base_dir: str = field(default_factory=os.getcwd)
    found: str | None = None  # how the notebook was known, or why none was (nbtrack.notebook)
    output: str | None = None  # papermill's output notebook


_stack: list[TrackedRun | NullRun] = []
END_RESERVE = 0.15  # seconds of the end's budget kept for ending the run in MLflow
_exit_hooked = False


def end_open_runs() -> None:
    """The process is ending inside a tracked run (a kernel shut down mid-cell, a script's
    exit outside its ``with`` block): end them KILLED, keeping what they logged. Before
    MLflow's own atexit handler, which would end the active run FINISHED, points missing."""
    for run in reversed(list(_stack)):
        if isinstance(run, TrackedRun) and run.status == "RUNNING":
            with failures_logged(_log, "ending a run at exit"):
                store.log_params_tags(
                    run.run_id,
                    tags=run.redactor.mapping(
                        {R.TAG_KILLED_REASON: "its process ended during the run"}
                    ),
                )
                run.finish("KILLED")


process_metrics.before_close.append(end_open_runs)


def active() -> TrackedRun | NullRun | None:
    """The innermost tracked run of this process, if any."""
    return _stack[-1] if _stack else None


_last: TrackedRun | None = None
_warned_secret_names: set[tuple[str, str]] = set()  # said once per process


def last() -> TrackedRun | None:
    """The run that finished most recently in this process."""
    return _last


class TrackedRun:
    def __init__(
        self,
        run_id: str,
        name: str,
        experiment_id: str,
        experiment: str,
        uri: str,
        redactor: Redactor | None = None,
    ):
        self.run_id = run_id
        self.name = name
        self.experiment_id = experiment_id
        self.experiment = experiment
        self.uri = uri
        self.params: dict[str, str] = {}  # logged so far by nbtrack
        self.deferred: dict[str, str] = {}  # the cell's own params, logged when it ends
        self.sources: dict[str, str] = {}  # param -> where it came from (nbtrack/params.json)
        self.dropped: dict[str, object] | None = None  # found params the cap left out (the note)
        self.seed: int | None = None
        self.data_hash: str | None = None
        self.started = time.time()
        self.ended: float | None = None
        self.status = "RUNNING"
        self.spec = RunSpec()
        # The run's redaction pass: every text logged for it goes through here (capture.redaction)
        self.redactor = redactor or Redactor()
        self.user_logs = False  # may the cell's code log params or tags itself (the warning)
        self.registered = (
            None  # the model version --register made (nbtrack.model_registry.registry.VersionInfo)
        )

    def __repr__(self) -> str:
        return f"<TrackedRun {self.run_id} {self.experiment}/{self.name} {self.status}>"

    @property
    def duration(self) -> float:
        return (self.ended or time.time()) - self.started

    def log(self, step: int | None = None, **metrics: object) -> None:
        writer().put(self.uri, self.run_id, metrics, step)

    def log_params(self, params: Mapping[str, object]) -> None:
        for key in params:  # a bad name is the user's mistake: nothing is sent, the run goes on
            cellparams.check_name(key)
        new = {}
        for key, value in params.items():
            text = value if isinstance(value, str) else source.format_param(value)
            old = self.params.get(key)
            if old is not None and old != text:
                raise ParamConflict(key, old, text)
            if old is None:
                new[key] = text
        if new:
            params_out, files = cellparams.fit(self.redactor.mapping(new))
            store.log_files(self.run_id, self.redactor.files(files))
            store.log_params_tags(self.run_id, params=self.redactor.mapping(params_out))
            self.params.update(params_out)

    def flush(self, timeout: float | None = 30.0) -> bool:
        return writer().flush(timeout)

    def _log_late(self, late: dict[str, str]) -> dict[str, str]:
        """Log the cell's own params and late library versions; the keys the user's code logged
        meanwhile keep the user's values. Returns the keys the user changed -> nbtrack's value."""
        if not late:
            return {}
        late = self.redactor.mapping(late)
        try:
            store.log_params_tags(self.run_id, params=late)  # the common case: one call
            self.params.update(late)
            return {}
        except NbtrackError:
            # MLflow refused a changed value: the user's code logged one of these keys itself.
            _log.debug("late params refused; the user's own values win", exc_info=True)
        logged = store.get_run(self.run_id).params
        store.log_params_tags(self.run_id, params={k: late[k] for k in late if k not in logged})
        self.params.update({**late, **logged})
        return {k: late[k] for k in late if k in logged and logged[k] != late[k]}

    def finish(self, status: str = "FINISHED", error: BaseException | None = None) -> None:
        """Persist what is queued, record late facts and the outcome, and end the run (a
        second Ctrl-C meanwhile is ignored: the run would be left half-ended)."""
        if self.status != "RUNNING":
            return
        with interrupts.sigint_deferred():
            self._finish(status, error)

    def _finish(self, status: str, error: BaseException | None) -> None:
        self.ended = time.time()
        seeds.clear_pending()
        in_mlflow = True
        try:
            versions = environment.library_versions().items()
            late = {**self.deferred}
            late.update({k: v for k, v in versions if k not in self.params and k not in late})
            overridden = self._log_late(late)
            files = {}
            if overridden:  # the user's values are in self.params now; ours are kept beside
                files[R.ARTIFACT_PARAMS_JSON] = cellparams.params_json(
                    self.params, self.sources, overridden, self.dropped
                )
            if self.user_logs:
                self._check_user_secrets()
            if error is not None and status == "FAILED":
                tb = "".join(traceback.format_exception(type(error), error, error.__traceback__))
                files[R.ARTIFACT_TRACEBACK] = tb
            store.log_files(self.run_id, self.redactor.files(files))
        finally:
            global _last
            self.status, _last = status, self
            if self in _stack:
                _stack.remove(self)
            try:
                # The cell ends when its code ends: MLflow gets about a second (from the cell's
                # end, a moment kept for ending the run) to hold every point; else the run is
                # ended with this status and time once its last point is in (metrics/sender).
                budget = settings.current().end_wait - (time.time() - self.ended) - END_RESERVE
                in_mlflow = writer().end(
                    self.run_id, status, int(self.ended * 1000), max(0.0, budget)
                )
            finally:
                try:
                    store.end_run(self.run_id, status, defer=not in_mlflow)
                except StoreError as e:  # an outage: the sender ends it when the store answers
                    process_metrics.end_later(self.run_id, self.uri, status, self.ended, e)

    def _check_user_secrets(self) -> None:
        """The cell's own MLflow calls (mlflow.log_param("smtp_password", v)) store what they
        are given: nbtrack cannot intercept them. Say so once per name, and redact their values
        in everything nbtrack writes from now on (the traceback, later snapshots)."""
        with failures_logged(_log, "checking the run's params for secrets"):
            view = store.get_run(self.run_id)
            for kind, items in (("param", view.params), ("tag", view.tags)):
                for name, value in items.items():
                    if redact.is_secret_name(name) and value != redact.REDACTED:
                        self.redactor.know(value)
                        if (kind, name) not in _warned_secret_names:
                            _warned_secret_names.add((kind, name))
                            warn(
                                f"{kind} {name} looks like a secret; it is stored in MLflow as "
                                "given (read it from the environment instead)"
                            )

    @property
    def catching_up(self) -> tuple[int, int] | None:
        """(points in MLflow, points logged) while MLflow is still catching up; else None."""
        return process_metrics.progress(self.run_id)


class NullRun:
    """Stands in for a run when tracking is off (NBTRACK_DISABLE) or failed: the cell's own
    ``nbtrack.log`` calls still validate their input, and record nothing."""

    run_id = None
    status = "RUNNING"

    def __init__(self, reason: str = "", push: bool = True) -> None:
        self.reason = reason  # why nothing is recorded, for the card
        if push:
            _stack.append(self)

    @classmethod
    def detached(cls) -> NullRun:
        return cls(push=False)

    def log(self, step: int | None = None, **metrics: object) -> None:
        for key, value in metrics.items():
            check_value(check_key(key), value)

    def log_params(self, params: Mapping[str, object]) -> None:
        for key in params:
            cellparams.check_name(key)

    def flush(self, timeout: float | None = 30.0) -> bool:
        return True

    def finish(self, status: str = "FINISHED", error: BaseException | None = None) -> None:
        self.status = status
        seeds.clear_pending()
        if self in _stack:
            _stack.remove(self)


def experiment_for(spec: RunSpec, src: Source) -> str:
    """Runner's experiment, else --experiment, else the settings, else the notebook's stem."""
    s = settings.current()
    if s.runner_experiment:
        return s.runner_experiment
    if spec.experiment:
        return spec.experiment
    if s.experiment:
        return s.experiment
    if src.path:
        return Path(src.path).stem
    return "Default"


def start(spec: RunSpec, src: Source) -> TrackedRun:
    """Start a tracked run and write its snapshot.

    User mistakes (a missing data path, a bad value) raise before anything is written. A store
    that fails raises StoreError: the adapter decides whether the work goes on untracked.
    """
    s = settings.current()
    process_metrics.check_thin(s)
    global _exit_hooked
    if not process_metrics.caught_up:  # once a process: what ended processes left goes out
        catch_up()
    if not _exit_hooked:  # registered after MLflow's (imported by now), so it runs before it
        _exit_hooked = True
        atexit.register(end_open_runs)
        process_metrics.prepare()
    for key in spec.params:
        cellparams.check_name(key)
    for key in spec.tags:
        cellparams.check_name(key, "tag")
    inputs = datacap.fingerprint(spec.data, base_dir=src.base_dir) if spec.data else []
    parent = s.runner_parent
    active_id = store.active_run_id()
    if spec.nested:
        if active_id is None and parent is None:
            raise UsageError("--nested needs an active run to nest under", "start one first")
        parent = active_id or parent
    elif active_id is not None:
        outer = active()
        if outer is None or outer.run_id != active_id:
            raise UsageError(
                f"MLflow run {active_id} is still active",
                "end it with mlflow.end_run(), or add --nested to make this run its child",
            )
        parent = active_id

    # A runner's seed for this very cell (reproduce), else for every cell (grid), else the line's.
    seed = s.runner_seeds.get(nbcap.cell_sha256(src.code), s.runner_seed)
    if seed is None:
        seed = spec.seed
    if seed is None:
        seed = seeds.draw_seed()
    # The run's redaction pass learns every source before redacting anything: a secret the
    # cell, an earlier cell, a flag or the dirty tree names is hidden wherever it appears.
    gitstate = git.git_state(src.path or src.base_dir)
    redactor = Redactor()
    redactor.mapping({**spec.params, **spec.tags})
    history = nbcap.history_text(src.history) if src.history is not None else None
    redactor.learn(src.code, history, *src.earlier, spec.note)  # the history's rules run once
    nb = nbcap.read_notebook(src.path, redactor) if src.path and src.kind == "NOTEBOOK" else None
    # What the cell's code says (papermill's parameters, its literal assignments, the values it
    # reads) is logged when the cell ends, for the keys the user's own code did not log meanwhile:
    # a notebook that calls mlflow.log_param("alpha", float(alpha)) must not be refused because
    # nbtrack logged '1'.
    found = cellparams.asked(spec, src, nb)
    asked, sources = found.params, found.sources
    if found.dropped and found.dropped.get("cell"):
        warn(
            f"the cell assigns more than {cellparams.MAX_CELL} literals: the first "
            f"{cellparams.MAX_CELL} are params, {found.dropped['cell']} more are left out "
            "(pass the ones that matter with -p, or nbtrack.log_params)"
        )
    if cellparams.user_may_log_params(src.code, src.earlier):
        params = {k: v for k, v in asked.items() if sources[k] == "flag"}
    else:  # nothing here logs params itself: all at once, one call fewer (bench_cell)
        params = dict(asked)
    params["random_seed"] = str(seed)

    uri = store.configure()
    exp_name = experiment_for(spec, src)
    exp_id = store.experiment_id(exp_name)
    if gitstate and gitstate.commit:
        params["git_commit"] = gitstate.commit
    data_hash = datacap.combined_digest(inputs) if inputs else None
    if data_hash:
        params["data_hash"] = data_hash
    params["python_version"] = environment.python_version()
    params.update(environment.library_versions())
    sources.update({k: "nbtrack" for k in params if k not in sources})
    params, long_files = cellparams.fit(redactor.mapping(params))
    deferred, deferred_files = cellparams.fit(
        redactor.mapping({k: v for k, v in asked.items() if k not in params})
    )

    tags = redactor.mapping(snapshot.run_tags(spec, src, gitstate, s.runner_tags))
    name = redactor.text(spec.name or names.run_name())  # not MLflow's: a seed would repeat it
    run_id, run_name = store.start_run(exp_id, name, tags, parent_run_id=parent)
    run = TrackedRun(run_id, run_name, exp_id, exp_name, uri, redactor)
    run.user_logs = cellparams.user_may_log_params(src.code, src.earlier)
    run.spec, run.seed, run.data_hash = spec, seed, data_hash
    run.deferred, run.sources, run.dropped = deferred, sources, found.dropped
    _stack.append(run)
    try:
        seeds.apply_seed(seed)
        files = snapshot.snapshot_files(src, nb, gitstate, inputs, redactor)
        files.update(long_files)
        files.update(deferred_files)
        files[R.ARTIFACT_PARAMS_JSON] = cellparams.params_json(
            {**deferred, **params}, sources, {}, found.dropped
        )
        late_tags = (
            {R.TAG_NOTEBOOK_SHA256: nb.sha256, R.TAG_NOTEBOOK_SNAPSHOT: nb.snapshot} if nb else {}
        )
        note = spec.note or (nb.note_for(src.code) if nb else None)
        if note:
            late_tags[R.TAG_NOTE] = note  # MLflow's UI shows it as the run's description
        store.log_params_tags(
            run_id, params=redactor.mapping(params), tags=redactor.mapping(late_tags)
        )
        run.params.update(params)
        store.log_files(run_id, redactor.files(files))
        store.log_datasets(run_id, [snapshot.dataset_entry(i) for i in inputs])
    except BaseException:
        # A snapshot that cannot be written leaves no half-recorded RUNNING run behind.
        with failures_logged(_log, "_stack.remove(run)"):
            _stack.remove(run)
            store.end_run(run_id, "FAILED")
        raise
    return run


def close_orphans(wait: float | None = None) -> list[str]:
    """Close as KILLED the runs of this host whose kernel process is gone (tracking.orphans).

    A run that logged through ``nbtrack.log`` is ended by whoever sends its last point; with
    ``wait``, this process takes over such logs, sends them and waits (at most ``wait`` s) for
    their runs to end, so that they are closed when this returns (an explicit call). Without,
    they are taken over in the background (the extension's warm-up)."""
    ended = process_metrics.end_orphaned_logs(wait) if wait is not None else []
    return ended + orphans.close_orphans({r.run_id for r in _stack})


# -- the Python API for scripts ----------------------------------------------------------------


@contextlib.contextmanager
def tracked(spec: RunSpec, src: Source) -> Iterator[TrackedRun]:
    """``with``-form of a run: FINISHED, FAILED (with traceback) or KILLED on Ctrl-C."""
    run = start(spec, src)
    try:
        yield run
    except KeyboardInterrupt as e:
        run.finish("KILLED", e)
        raise
    except BaseException as e:
        run.finish("FAILED", e)
        raise
    else:
        try:
            run.finish("FINISHED")
        except StoreError as e:  # the block's work is done: an outage must not fail the script
            warn(f"run {run.run_id} may be incomplete: {e}")


def script_source(path: str | None) -> Source:
    code = ""
    if path:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            code = Path(path).read_text(encoding="utf-8")
    return Source(kind="LOCAL", path=os.path.abspath(path) if path else None, code=code)


__all__ = [
    "NbtrackError",
    "RunSpec",
    "Source",
    "StoreError",
    "TrackedRun",
    "active",
    "catch_up",
    "close_orphans",
    "start",
    "tracked",
    "wait_caught_up",
    "writer",
]
