"""nbtrack: one notebook cell, one reproducible MLflow run.

``import nbtrack`` is fast: MLflow, IPython, plotly and torch are imported only when a function
that needs them is called.

    %load_ext nbtrack

    %%track --experiment digits --seed 42 --data data/digits.npz
    lr = 0.01
    for epoch in range(10):
        ...
        nbtrack.log(step=epoch, train_loss=tl, val_acc=va)
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from nbtrack.errors import NbtrackError

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "active_run",
    "close_orphans",
    "compare",
    "curves",
    "diff",
    "flush",
    "last_run",
    "load_ipython_extension",
    "log",
    "log_params",
    "run",
    "runs",
    "unload_ipython_extension",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbtrack``: registers ``%%track`` and ``%track_config``."""
    from nbtrack import magic

    magic.load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from nbtrack import magic

    magic.unload(ipython)


def _active():
    tracker = sys.modules.get("nbtrack.tracker")
    return tracker.active() if tracker is not None else None


def log(step: int | None = None, **metrics: float) -> None:
    """Log metrics to the tracked run: returns at once; a background writer persists them.

    ``step`` defaults to one more than the key's previous step (0 for the first point). Keys and
    values are checked here: a bad one raises ``InvalidMetric`` naming the key.
    """
    run = _active()
    if run is None:
        run = _no_run("nbtrack.log")
    try:
        run.log(step, **metrics)
    except NbtrackError as e:
        # The error is about the user's call: show their line and this one, not the machinery.
        raise e.with_traceback(None) from None


def log_params(**params: Any) -> None:
    """Log params to the tracked run; a param cannot change value within a run."""
    run = _active()
    if run is None:
        run = _no_run("nbtrack.log_params")
    try:
        run.log_params(params)
    except NbtrackError as e:
        raise e.with_traceback(None) from None


def _no_run(what: str):
    from nbtrack import settings, tracker
    from nbtrack.errors import UsageError

    if settings.current().disable:
        return tracker.NullRun.detached()
    raise UsageError(
        f"{what} needs a tracked run",
        "put %%track on the cell's first line, or use `with nbtrack.run():`",
    )


def flush(timeout: float | None = 30.0) -> bool:
    """Wait until every logged metric point is persisted; True when nothing is left over."""
    from nbtrack import tracker

    return tracker.writer().flush(timeout)


def active_run():
    """The innermost tracked run (its ``run_id``, ``experiment``, ``params``...), or None."""
    return _active()


def last_run():
    """The tracked run that finished last in this kernel: ``run_id``, ``params``, ``status``."""
    tracker = sys.modules.get("nbtrack.tracker")
    return tracker.last() if tracker is not None else None


@contextlib.contextmanager
def run(
    experiment: str | None = None,
    name: str | None = None,
    seed: int | None = None,
    data: Sequence[str] = (),
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    nested: bool = False,
) -> Iterator[Any]:
    """Track a block of a script (or notebook) as one run, with the same record as ``%%track``.

    with nbtrack.run(experiment="digits", seed=42, data=["data/"], params={"lr": 0.01}):
        ...
    """
    from nbtrack import settings, tracker
    from nbtrack.capture.source import format_param

    spec = tracker.RunSpec(
        experiment=experiment,
        name=name,
        seed=seed,
        data=[str(d) for d in data],
        params={k: v if isinstance(v, str) else format_param(v) for k, v in (params or {}).items()},
        tags={k: str(v) for k, v in (tags or {}).items()},
        nested=nested,
    )
    if settings.current().disable:
        null = tracker.NullRun()
        try:
            yield null
        finally:
            null.finish()
        return
    with tracker.tracked(spec, _source()) as r:
        yield r


def _source():
    from nbtrack import tracker

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None and getattr(shell, "history_manager", None) is not None:
        from nbtrack import magic

        # The cell being run, as IPython handed it to the extension's pre_run_cell hook: the
        # history holds it only when the frontend asked to store it (nbval does not).
        return magic.cell_source(shell, magic._state.info)
    main = sys.modules.get("__main__")
    return tracker.script_source(getattr(main, "__file__", None))


def close_orphans() -> list[str]:
    """Close as KILLED the runs a dead kernel of this host left RUNNING; returns their ids."""
    from nbtrack import store, tracker

    store.configure()
    return tracker.close_orphans()


def curves(
    runs: Any,
    metrics: str | Sequence[str] | None = None,
    x: str = "step",
    *,
    filter: str | None = None,
    smoothing: float = 0.0,
    log_y: bool = False,
) -> Any:
    """Learning curves of runs, overlaid: one colour per run, one subplot per metric family
    (``train_loss`` and ``val_loss`` share "loss"), with a smoothing slider and a log toggle.

    ``runs``: run ids, a DataFrame from ``mlflow.search_runs``, or an experiment name with
    ``filter`` an MLflow filter string (``"params.lr = '0.1'"``). ``metrics``: keys or families
    (default: all). ``x``: "step", "time" (seconds since each run started) or "timestamp".
    Long series are downsampled for display (LTTB); MLflow keeps every point.

        nbtrack.curves("digits", filter="metrics.val_acc > 0.9", metrics="loss", x="time")
    """
    from nbtrack.widgets import curves as view  # MissingExtra without the widgets extra

    return view.show(runs, metrics, x, filter, smoothing=smoothing, log_y=log_y)


def runs(
    experiment: str | Sequence[str] | None = None,
    filter: str | None = None,
    order_by: str | Sequence[str] | None = None,
    max_runs: int | None = None,
    *,
    full: bool = False,
) -> Any:
    """The runs of an experiment as a pandas DataFrame, one row per run: run_id, name, status,
    start_time, duration (s), user, notebook, git_commit (short, ``*`` when dirty), data_hash
    (short), then ``params.<key>`` (strings, as MLflow keeps them) and ``metrics.<key>`` (last
    value).

    ``experiment``: a name or several (default: where ``%%track`` would write). ``filter``:
    MLflow's syntax (``"metrics.val_acc > 0.9 and params.optimizer = 'adam'"``). ``order_by``:
    MLflow's syntax or column names (``"metrics.val_acc DESC"``). ``max_runs``: fetch only that
    many (the newest, or the first by ``order_by``).

    The kernel keeps the runs: calling again asks MLflow only for runs started since, and those
    that were still running (``full=True`` fetches everything again).
    """
    from nbtrack import runtable

    return runtable.runs(experiment, filter, order_by, max_runs, full=full)


def diff(run_a: str, run_b: str, *more: str) -> Any:
    """What differs between runs (ids): params, metrics, git commit and uncommitted changes,
    data digests, package versions, and the cell source as a unified diff; identical parts
    are counted, not listed. Prints as text, shows as HTML in a notebook.

        d = nbtrack.diff(best, runner_up)
        d["params"].rows      # [Row(key='lr', values=('0.01', '0.1')), ...]
    """
    from nbtrack import comparedata

    return comparedata.diff(run_a, run_b, *more)


def compare(
    experiment: str | Sequence[str] | None = None,
    filter: str | None = None,
    order_by: str | Sequence[str] | None = None,
    max_runs: int | None = None,
    *,
    columns: Sequence[str] | None = None,
    select: Sequence[str | int] | None = None,
) -> Any:
    """The run-comparison panel: the runs table (sort, MLflow filter, search, columns, select
    rows), the diff of the selected runs, their learning curves, parallel coordinates and a
    scatter of params against a metric, group-by with a metric's mean/min/max, and actions
    (copy config, open in MLflow). ``panel.df`` is the table as shown, ``panel.selected`` the
    selected rows.

    Arguments as for ``nbtrack.runs``; ``columns``: the columns shown (default: all but library
    versions); ``select``: run ids or row positions to select (``select=[0, 1]``: the top two).
    Saved and headless-executed notebooks show the top rows and the selection's diff as HTML.

        nbtrack.compare("digits", order_by="metrics.val_acc DESC", select=[0, 1])
    """
    from nbtrack.widgets import compare as view  # MissingExtra without the widgets extra

    return view.show(
        experiment, filter, order_by, max_runs, columns=columns, select=select
    )
