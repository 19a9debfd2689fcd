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

# Over 400 lines: the whole public API, each function with the docstring that is its help;
# the bodies are a few lines that import their subsystem lazily (``import nbtrack`` stays light).

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from nbtrack import grids as _grids
from nbtrack.errors import NbtrackError

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "active_run",
    "archive",
    "audit",
    "audit_prediction",
    "audit_report",
    "checkpoint",
    "checkpoints",
    "close_orphans",
    "compare",
    "curves",
    "diff",
    "flush",
    "gc",
    "gc_log",
    "grid",
    "inference",
    "last_run",
    "lineage",
    "load",
    "load_checkpoint",
    "load_ipython_extension",
    "log",
    "log_data_profile",
    "log_params",
    "predict",
    "production",
    "promote",
    "register",
    "registry",
    "reproduce",
    "rollback",
    "run",
    "runs",
    "unload_ipython_extension",
    "usage",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbtrack``: registers ``%%track`` and ``%track_config``, and puts ``nbtrack``
    in the notebook's namespace (unless the name is taken), so ``nbtrack.log`` in a tracked cell
    works without an import."""
    from nbtrack.frontends import magic

    magic.load(ipython)
    ipython.user_ns.setdefault("nbtrack", sys.modules[__name__])


def unload_ipython_extension(ipython: Any) -> None:
    from nbtrack.frontends import magic

    magic.unload(ipython)


def _active():
    tracker = sys.modules.get("nbtrack.tracking.tracker")
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
    from nbtrack import settings
    from nbtrack.errors import UsageError
    from nbtrack.tracking import tracker

    if settings.current().disable:
        return tracker.NullRun.detached()
    raise UsageError(
        f"{what} needs a tracked run",
        "put %%track on the cell's first line, or use `with nbtrack.run():`",
    )


def flush(timeout: float | None = 30.0) -> bool:
    """Wait until every logged metric point is persisted; True when nothing is left over."""
    from nbtrack.tracking import tracker

    return tracker.writer().flush(timeout)


def active_run():
    """The innermost tracked run (its ``run_id``, ``experiment``, ``params``...), or None."""
    return _active()


def last_run():
    """The tracked run that finished last in this kernel: ``run_id``, ``params``, ``status``."""
    tracker = sys.modules.get("nbtrack.tracking.tracker")
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
    from nbtrack import settings
    from nbtrack.capture.source import format_param
    from nbtrack.tracking import tracker

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
    from nbtrack.tracking import tracker

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None and getattr(shell, "history_manager", None) is not None:
        from nbtrack.frontends import magic

        # The cell being run, as IPython handed it to the extension's pre_run_cell hook: the
        # history holds it only when the frontend asked to store it (nbval does not).
        return magic.cell_source(shell, magic._state.info)
    main = sys.modules.get("__main__")
    return tracker.script_source(getattr(main, "__file__", None))


def close_orphans(wait: float = 60.0) -> list[str]:
    """Close as KILLED the runs a dead kernel of this host left RUNNING; returns their ids.

    A dead kernel's metric points that had not reached MLflow are sent first (its run ends
    once they are in): ``wait`` bounds that, in seconds; what is left goes on in the
    background."""
    from nbtrack import store
    from nbtrack.tracking import tracker

    store.configure()
    return tracker.close_orphans(wait=wait)


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
    include_repro_byproducts: bool = False,
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

    Runs that earlier tracked cells made while ``nbtrack.reproduce`` re-executed them on its way
    to the reproduced cell (tagged ``nbtrack.repro.of``) are left out;
    ``include_repro_byproducts=True`` lists them too. The re-run that carries a reproduction's
    verdict is always listed.
    """
    from nbtrack.query import table as runtable

    return runtable.runs(
        experiment,
        filter,
        order_by,
        max_runs,
        full=full,
        include_repro_byproducts=include_repro_byproducts,
    )


def diff(run_a: str, run_b: str, *more: str) -> Any:
    """What differs between runs (ids): params, metrics, git commit and uncommitted changes,
    data digests, package versions, and the cell source as a unified diff; identical parts
    are counted, not listed. Prints as text, shows as HTML in a notebook.

        d = nbtrack.diff(best, runner_up)
        d["params"].rows      # [Row(key='lr', values=('0.01', '0.1')), ...]
    """
    from nbtrack.query import diff as rundiff

    return rundiff.diff(run_a, run_b, *more)


def compare(
    experiment: str | Sequence[str] | None = None,
    filter: str | None = None,
    order_by: str | Sequence[str] | None = None,
    max_runs: int | None = None,
    *,
    columns: Sequence[str] | None = None,
    select: Sequence[str | int] | None = None,
    include_repro_byproducts: bool = False,
) -> Any:
    """The run-comparison panel: the runs table (sort, MLflow filter, search, columns, select
    rows), the diff of the selected runs, their learning curves, parallel coordinates and a
    scatter of params against a metric, group-by with a metric's mean/min/max, and actions
    (copy config, open in MLflow). ``panel.df`` is the table as shown, ``panel.selected`` the
    selected rows.

    Arguments as for ``nbtrack.runs`` (a reproduction's by-products left out unless
    ``include_repro_byproducts=True``); ``columns``: the columns shown (default: all but library
    versions); ``select``: run ids or row positions to select (``select=[0, 1]``: the top two).
    Saved and headless-executed notebooks show the top rows and the selection's diff as HTML.

        nbtrack.compare("digits", order_by="metrics.val_acc DESC", select=[0, 1])
    """
    from nbtrack import store
    from nbtrack.widgets import compare as view  # MissingExtra without the widgets extra

    return view.show(
        experiment,
        filter,
        order_by,
        max_runs,
        columns=columns,
        select=select,
        server_url=store.server_url(),
        include_repro_byproducts=include_repro_byproducts,
    )


# -- the model registry (nbtrack.model_registry; the panel in widgets.registry_panel) ---------


def register(run_id: str, name: str, model_path: str | None = None) -> Any:
    """Register the model run ``run_id`` logged as a new version of model ``name`` (created if
    needed); ``%%track --register NAME`` does this when the cell finishes. ``model_path``: the
    name given to ``log_model`` when the run logged several (default: the last one).

    The version carries tags ``run_id``, the run's final metrics, ``data_hash``, ``git_commit``,
    ``notebook`` and a description from the run. Returns the version (``.version``, ``.tags``).
    """
    from nbtrack.model_registry import registry as models

    return models.register(run_id, name, model_path)


def promote(
    name: str,
    version: int | str,
    stage: str = "production",
    reason: str | None = None,
    *,
    force: bool = False,
) -> Any:
    """Move ``stage`` ("production" or "staging", MLflow aliases) of model ``name`` to
    ``version``. The version production replaces is archived and marked
    ``previous_production``. A version whose run FAILED is refused unless ``force=True``. Who,
    when, from which version to which and ``reason`` go to the audit trail.

        nbtrack.promote("digits", 3, reason="val_acc 0.97 on the new data")
    """
    from nbtrack.model_registry import registry as models

    return models.promote(name, version, stage, reason, force=force)


def rollback(name: str, reason: str | None = None) -> Any:
    """Put the previous production version of model ``name`` back in production, in one call."""
    from nbtrack.model_registry import registry as models

    return models.rollback(name, reason)


def archive(name: str, version: int | str, reason: str | None = None) -> Any:
    """Archive a version of model ``name`` (not the one in production)."""
    from nbtrack.model_registry import registry as models

    return models.archive(name, version, reason)


def audit(name: str) -> Any:
    """The audit trail of model ``name`` as a DataFrame, oldest first: when, who, action
    (register, promote, rollback, archive), stage, from_version, to_version, reason."""
    from nbtrack.model_registry import registry as models

    return models.audit(name)


def production(name: str) -> Any:
    """What is in production for model ``name``: version, run, metrics, data hash, when it was
    promoted and by whom, and the version before it (``.previous``)."""
    from nbtrack.model_registry import registry as models

    return models.production(name)


def load(
    name: str,
    stage: str = "production",
    *,
    version: int | str | None = None,
    flavor: str | None = None,
) -> Any:
    """Load ``models:/NAME@production`` (or ``stage="staging"``, or ``version=3``) with MLflow's
    loader for the model's flavour; ``flavor="pyfunc"`` for MLflow's generic wrapper."""
    from nbtrack.model_registry import registry as models

    return models.load(name, stage, version=version, flavor=flavor)


def registry(name: str | None = None) -> Any:
    """The registry panel: the registered models, and for model ``name`` its versions with
    their stages, key metrics, data hash, source run and creation time; promote, roll back and
    archive (each asks for confirmation); the audit trail below."""
    from nbtrack.widgets import registry_panel as view  # MissingExtra without the widgets extra

    return view.show(_registry_source(view.RegistrySource), name)


def _registry_source(source_type: Any) -> Any:
    """What the registry panel reads and does: ``nbtrack.model_registry``'s functions, and
    ``nbtrack.compare`` to open a version's run (the panel imports neither)."""
    from nbtrack.model_registry import registry as models

    def open_run(experiment: str, run_id: str) -> Any:
        panel = globals().get("compare")  # looked up at each click: it may be replaced
        return None if panel is None else panel(experiment, select=[run_id])

    return source_type(
        list_models=models.list_models,
        require=models.require,
        can_edit=models.can_edit,
        versions=models.versions,
        audit_records=models.audit_records,
        stage_aliases=lambda: models.aliases().values(),
        previous_alias=models.previous_alias,
        refused_statuses=models.REFUSED_STATUSES,
        experiment_of=models.experiment_of,
        run_url=models.run_url,
        promote=models.promote,
        rollback=models.rollback,
        archive=models.archive,
        open_run=open_run,
    )


# -- reproduction (nbtrack.reproduction) ----------------------------------------------------


def reproduce(
    run_id: str,
    rtol: float = 1e-6,
    atol: float = 0.0,
    metrics: Sequence[str] | str | None = None,
    timeout: float | None = None,
    strict: bool = False,
) -> Any:
    """Run a tracked run again from its record alone, and say whether its result holds.

    The notebook is rebuilt from the run's snapshot (else from the kernel's history) up to the
    tracked cell, with the run's params injected by papermill and its seed forced, and executed
    in a fresh kernel in a scratch folder holding the data inputs at their recorded relative
    paths, tracking into the same store. A script run (``nbtrack.run()``) runs its recorded
    script again. Before running, data digests, git, packages and Python are checked against the
    record: drift is reported, and refused with ``strict=True``; a data input that is gone stops
    it.

    Returns a ``ReproReport`` (``.verdict``): REPRODUCED (at least one metric compared, and
    every metric, or those in ``metrics``, within ``atol + rtol * |original|``), DRIFTED
    (``.metrics`` original vs re-run, ``.causes``), RAN (it ran and finished, but the original
    logged no metrics: nothing was compared, "RAN: no metrics to compare") or FAILED
    (``.failure``: the cell and its traceback). ``timeout``: seconds the execution may take. The
    re-run carries tags ``nbtrack.reproduces`` and ``nbtrack.repro.verdict``, the report and the
    executed notebook as artifacts; the original, ``nbtrack.reproduced_by``. Runs that earlier
    tracked cells make on the way are tagged ``nbtrack.repro.of`` and left out of
    ``nbtrack.runs`` and ``nbtrack.compare`` unless ``include_repro_byproducts=True``.

        report = nbtrack.reproduce(run_id)
        report.verdict   # 'REPRODUCED'
    """
    from nbtrack.reproduction import reproduce as repro

    return repro.reproduce(run_id, rtol, atol, metrics, timeout, strict)


# -- grids (grids.spec, grids.run, grids.executors) ----------------------------------


def grid(
    notebook: str | os.PathLike | None = None,
    params: Mapping[str, Any] | None = None,
    parallel: int | None = None,
    experiment: str | None = None,
    executor: str = "local",
    *,
    exclude: Sequence[Mapping[str, Any] | str] = (),
    random: int | None = None,
    seed: int | None = None,
    metric: str | None = None,
    mode: str = "max",
    resume: str | None = None,
    scheduler: str | None = None,
    client: Any = None,
    timeout: float | None = None,
    kernel_name: str | None = None,
    cwd: str | os.PathLike | None = None,
    output_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Any:
    """Run a parameterized notebook (papermill's ``parameters`` cell) over a grid of params.

    One parent MLflow run for the grid; each point runs the notebook top to bottom with
    papermill in a fresh kernel, and its ``%%track`` cells become child runs of the parent, in
    the grid's ``experiment`` (default: the notebook's ``%%track --experiment``, else its name),
    whatever the notebook's own ``%%track`` lines say. The executed notebook is logged on each
    point's runs; a point that fails is recorded FAILED with its failing cell, and the others go
    on.

    ``params``: name -> a list of values, one value, or a range to sample (``"uniform(a, b)"``,
    ``"loguniform(a, b)"``, ``"randint(a, b)"``, with ``random=N``). Names the notebook's
    parameters cell does not set are refused before anything runs. ``exclude``: combinations to
    leave out (``[{"lr": 0.1, "batch_size": 32}]``). ``random=N``, ``seed``: N sampled points.

    ``parallel``: points at a time (default 1; with ``executor="dask"``, the cluster's threads).
    ``executor``: "local" (worker processes here) or "dask" (``scheduler="tcp://..."``, a
    ``client=distributed.Client``, or a LocalCluster started for the grid). ``metric``,
    ``mode`` ("max"/"min"): the best value shown while it runs and ``result.best()``'s default.
    ``timeout``: seconds one point may take. ``resume=GRID_RUN_ID``: run the points of an
    earlier grid that did not finish. Ctrl-C stops the running points (KILLED) and raises.

    Returns a ``GridResult``: ``.df`` (one row per point), ``.best()``, ``.compare()``.

        result = nbtrack.grid("train.ipynb", params={"lr": [1e-3, 1e-2], "batch_size": [32, 64]},
                              parallel=2, metric="val_acc")
        result.best()
    """
    from nbtrack.grids import run as sweeprun
    from nbtrack.grids.options import GridOptions

    options = GridOptions(
        parallel=parallel,
        experiment=experiment,
        executor=executor,
        exclude=exclude,
        random=random,
        seed=seed,
        metric=metric,
        mode=mode,
        resume=resume,
        scheduler=scheduler,
        client=client,
        timeout=timeout,
        kernel_name=kernel_name,
        cwd=cwd,
        output_dir=output_dir,
        progress=progress,
    )
    return sweeprun.run(notebook, params, options)


# -- lineage: inference runs, prediction audit, the lineage graph --------------------------------


def predict(
    model: Any,
    data: Any,
    ids: Sequence[Any] | None = None,
    experiment: str | None = None,
    batch_name: str | None = None,
) -> Any:
    """Predict with a registered model and record it: returns what the model's ``predict`` returns.

    ``model``: ``"NAME@alias"``, ``"NAME/3"``, ``"NAME"`` (its production version), a
    ``models:/`` URI, a run id, or a model ``nbtrack.load`` loaded. One inference run (named
    ``inference-<UTC time>``, in the model's training experiment unless ``experiment``) records
    the version, the input's and predictions' digests, each row's id, input hash and output, and
    the input's profile. ``ids``: yours (one per row, unique), else nbtrack makes sortable ones.
    Any prediction is then answered by ``nbtrack.audit_prediction(id)``.
    """
    from nbtrack.provenance import inference as lineage_inference

    try:
        return lineage_inference.predict(model, data, ids, experiment, batch_name)
    except NbtrackError as e:
        raise e.with_traceback(None) from None


def inference(model: Any, experiment: str | None = None, batch_name: str | None = None) -> Any:
    """A serving loop's inference run: ``with nbtrack.inference("NAME@production") as inf:
    inf.predict(batch, ids=...)``; batches are recorded in the background, one run for the block."""
    from nbtrack.provenance import batches

    return batches.Inference(model, experiment, batch_name)


def audit_prediction(prediction_id: Any) -> Any:
    """What made prediction ``prediction_id``: model name and version, the aliases that version
    held at the prediction's time, its training run, data digests, git commit, notebook and
    snapshot, the input row's hash and the output, the time."""
    from nbtrack.provenance import audit as lineage_audit

    try:
        return lineage_audit.audit_prediction(prediction_id)
    except NbtrackError as e:
        raise e.with_traceback(None) from None


def audit_report(name: str, version: int | str | None = None, out: str | None = None) -> str:
    """The compliance report of model ``name``'s production version (or ``version``): one
    standalone HTML page with the training data's digests and sources, the commit, the notebook
    and its snapshot, the environment, params and metrics, the training run's reproductions,
    every registry move (who, when, why) and the inference runs the version served. Returns the
    page; with ``out``, writes it there and returns the path."""
    from nbtrack.provenance import report

    try:
        return report.write(name, version, out) if out else report.audit_report(name, version)
    except NbtrackError as e:
        raise e.with_traceback(None) from None


def log_data_profile(data: Any) -> dict:
    """Record the profile of ``data`` (per column: mean, std, min, max, null rate) on the tracked
    run, as every inference run records its input's: ``nbtrack.diff(training_run,
    inference_run)`` then shows how the inputs drifted. Returns the profile."""
    from nbtrack.provenance import profiles

    try:
        return profiles.log_data_profile(data)
    except NbtrackError as e:
        raise e.with_traceback(None) from None


def lineage(target: Any = None, *, version: Any = None, data_hash: str | None = None) -> Any:
    """The connected graph datasets -> training runs -> model versions (with alias history) ->
    inference runs, from any node: a model name (``version=`` for one), a run id, a prediction id,
    or ``data_hash=`` ("which models were trained on this data, and what did they predict?").
    ``.to_dict()`` gives JSON-ready nodes and edges; in JupyterLab it draws itself."""
    from nbtrack.provenance import graph

    try:
        found = graph.lineage(target, version=version, data_hash=data_hash)
    except NbtrackError as e:
        raise e.with_traceback(None) from None
    found.view = _lineage_view
    return found


def _lineage_view(found: Any) -> dict:
    """The graph's display: the drawn graph (a widget whose node clicks show that run's card)
    where a frontend shows widgets, else its static SVG; the text for terminals."""
    from nbtrack.query import lineage_svg

    graph = found.to_dict()
    static = {"text/plain": str(found), "text/html": lineage_svg.html(graph)}
    try:
        if not _has_frontend():
            return static
        from nbtrack.widgets import lineage as view
    except (ImportError, NbtrackError):  # no widgets extra: the picture is the static one
        return static
    bundle = view.show(graph, _lineage_selected)._repr_mimebundle_()
    bundle["text/plain"] = str(found)
    return bundle


def _lineage_selected(node: Mapping[str, Any]) -> None:
    """A click on a lineage node: the card of its run (a training or inference run, a version's
    training run), else the node's details."""
    from IPython.display import display

    from nbtrack import store
    from nbtrack.widgets.card import card_of

    run_id = node.get("run_id")
    if not run_id:
        detail = node.get("detail") or {}
        print("\n".join([str(node.get("label")), *(f"{k}: {v}" for k, v in detail.items())]))
        return
    run = store.get_run(run_id)
    experiment = store.experiment_name(run.experiment_id)
    display(card_of(run, experiment=experiment, server_url=store.server_url()))


def _has_frontend() -> bool:
    from nbtrack.widgets.live import has_frontend

    return has_frontend()


# -- retention: usage, gc --------------------------------------------------------------------------


def usage(
    experiment: str | None = None,
    *,
    keep_top: int | None = None,
    metric: str | None = None,
    mode: str = "max",
    keep_last: int | None = None,
    older_than: Any = None,
    kinds: Any = None,
) -> Any:
    """Where the disk went: bytes per run and per kind (checkpoints, models, snapshots, other),
    largest first, with the total (``.frame``, ``.total``, ``.by_kind``); of one experiment, or
    of all. With a gc policy (the arguments of ``nbtrack.gc``), ``.would_free`` says what that
    gc would free."""
    from nbtrack.retention import policy as policies
    from nbtrack.retention import usage as usage_of

    try:
        given = (keep_top, metric, keep_last, older_than, kinds) != (None,) * 5
        policy = (
            policies.make_policy(keep_top, metric, mode, keep_last, older_than, kinds)
            if given
            else None
        )
        return usage_of.usage(experiment, policy)
    except NbtrackError as e:
        raise e.with_traceback(None) from None


def gc(
    experiment: str,
    keep_top: int | None = None,
    metric: str | None = None,
    keep_last: int | None = None,
    older_than: Any = None,
    apply: bool = False,
    *,
    mode: str = "max",
    kinds: Any = None,
    delete_runs: bool = False,
    force: bool = False,
) -> Any:
    """Free the disk of experiment ``experiment``'s runs. A dry run unless ``apply=True``: per
    run, what would go (bytes) or why it stays. Never deleted: a registered version's run, runs
    whose versions hold or held an alias, runs tagged ``nbtrack.keep``, running runs,
    reproductions of kept runs. The policy keeps the top ``keep_top`` by ``metric`` (``mode``
    "max" or "min"), the ``keep_last`` newest, runs newer than ``older_than`` ("7d", "12h").
    Of the other runs it deletes the artifacts outside ``nbtrack/`` and the unregistered logged
    models (``kinds``: checkpoints, models, other); params, metrics and the snapshot stay.
    ``delete_runs=True`` also soft-deletes them (``mlflow gc`` removes them for good). A policy
    that keeps nothing is refused without ``force=True``. Applied gcs are in ``gc_log``."""
    from nbtrack.retention import gc as gcs
    from nbtrack.retention import policy as policies

    try:
        policy = policies.make_policy(
            keep_top, metric, mode, keep_last, older_than, kinds, delete_runs
        )
        return gcs.gc(experiment, policy, apply=apply, force=force)
    except NbtrackError as e:
        raise e.with_traceback(None) from None


def gc_log(experiment: str) -> Any:
    """Every applied gc of ``experiment``, oldest first: when, who, policy, runs touched, bytes
    freed, files, models and runs deleted, the run ids."""
    from nbtrack.retention import gc as gcs

    try:
        return gcs.gc_log(experiment)
    except NbtrackError as e:
        raise e.with_traceback(None) from None


def checkpoint(
    obj: Any,
    step: int,
    metrics: dict[str, float] | None = None,
    keep: int | None = None,
    by: str | None = None,
    mode: str = "max",
    name: str = "checkpoint",
) -> Any:
    """Save ``obj`` (a torch module or state dict, a scikit-learn estimator) as a checkpoint of
    the tracked run: an MLflow LoggedModel with its ``step`` and ``metrics`` linked to it. For
    torch the loop pays a copy; the files are written in the background. ``keep=N`` keeps the
    best N ``by`` a metric (``mode`` "max" or "min"; without ``by``, the last N) and deletes the
    others' files at once. Returns a handle (``.uri``, ``.wait()``)."""
    from nbtrack.retention import checkpoints as ckpt

    try:
        return ckpt.checkpoint(obj, step, metrics, keep, by, mode, name)
    except NbtrackError as e:
        raise e.with_traceback(None) from None


def checkpoints(run_id: str | None = None) -> Any:
    """A run's checkpoints (default: the tracked run) as a DataFrame: step, model id, URI,
    bytes, kept/why, format, and their metrics."""
    from nbtrack.retention import checkpoints as ckpt

    try:
        return ckpt.checkpoints(run_id)
    except NbtrackError as e:
        raise e.with_traceback(None) from None


def load_checkpoint(run_id: str | None = None, which: Any = "best", by: str | None = None) -> Any:
    """Load a kept checkpoint of a run: ``"best"`` (by ``by``, else the metric ``keep`` ranked
    by), ``"last"``, or a step; with its flavour's loader (a state dict with ``torch.load``)."""
    from nbtrack.retention import checkpoints as ckpt

    try:
        return ckpt.load_checkpoint(run_id, which, by)
    except NbtrackError as e:
        raise e.with_traceback(None) from None


# A GridResult's panel (grids sit below widgets and the facade: they are handed these).
_grids.display_hooks.compare = compare
_grids.display_hooks.has_frontend = _has_frontend


def _in_ipython() -> None:
    """``import nbtrack`` in a notebook without ``%load_ext``: its user errors show as one line
    too. IPython is already imported there; elsewhere nothing is imported."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        from nbtrack.frontends import user_errors

        user_errors.install(shell)


_in_ipython()
