"""``%%track`` and ``%track_config``: parse the line, hand over to the tracker, show the card.

``%%track`` is an input transformer, not a cell magic that runs code itself: ``cell_code`` takes
the ``%%track ...`` line off the cell and puts the call to ``_begin_cell``, which starts the run, in
front of the cell's parsed code; IPython runs the cell as it runs any cell (namespace, display of
the last expression, tracebacks, top-level ``await``, another cell magic on the next line). The
``post_run_cell`` event ends the run with the cell's outcome.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from nbtrack import settings
from nbtrack.errors import NbtrackError, StoreError, UserError, warn
from nbtrack.frontends import card_updates, cell_code, user_errors
from nbtrack.frontends.cell_code import PREFIX, is_track, transform
from nbtrack.frontends.track_line import HELP, CellOptions, config_update, parse_line
from nbtrack.logs import failures_logged
from nbtrack.widgets.card import UntrackedCard, card_for

# Not nbtrack.log: importing that module would replace the facade's nbtrack.log function.
_log = logging.getLogger(__name__)


# -- per-shell state and events ----------------------------------------------------------------


@dataclass
class _State:
    info: Any = None  # ExecutionInfo of the cell being run (pre_run_cell)
    runs: list = field(default_factory=list)  # runs begun in the current cell
    warmup: Any = None  # the background thread started by load()
    live: dict = field(default_factory=dict)  # run id -> live curves view of a running cell
    cells: dict = field(default_factory=dict)  # id(run) -> its cell's CellOptions


_state = _State()


def _pre_run_cell(info) -> None:
    _state.info = info
    cell_code.forget(getattr(info, "raw_cell", None))


def _post_run_cell(result) -> None:
    cell_code.forget()  # a tracked cell that did not parse (SyntaxError) started no run
    runs, _state.runs = _state.runs, []
    if not runs:
        return
    error = result.error_in_exec if result is not None else None
    if isinstance(error, KeyboardInterrupt):
        status = "KILLED"
    elif error is not None:
        status = "FAILED"
    else:
        status = "FINISHED"
    for run in reversed(runs):
        refused = _finish(run, status, error)
        if refused is not None:
            _fail_cell(result, refused)


def _finish(run, status: str, error: BaseException | None) -> NbtrackError | None:
    """End the run; returns the user's mistake that --register found, if any."""
    from nbtrack.tracking.tracker import NullRun

    if isinstance(run, NullRun):
        run.finish(status, error)
        if run.reason and settings.current().card:
            _display_card(UntrackedCard(run.reason))
        return None
    try:
        with cell_code.users_traceback(error):
            run.finish(status, error)
    except Exception as e:
        warn(f"run {run.run_id} may be incomplete: {_reason(e)}")
        return None
    finally:
        view = _state.live.pop(run.run_id, None)
        if view is not None:
            try:
                view.close()
            except Exception:
                _log.debug("closing the live curves failed", exc_info=True)
    cell = _state.cells.pop(id(run), None) or CellOptions()
    refused = _register(run, cell.register) if status == "FINISHED" else None
    if cell.card and settings.current().card:
        try:
            card_updates.show(_card(run), lambda: run.catching_up)
        except Exception:
            _log.debug("drawing the run card failed", exc_info=True)
    return refused


def _register(run, name: str | None) -> NbtrackError | None:
    """``--register NAME``: the model the cell logged becomes a new version of NAME, once the
    run has FINISHED. A user's mistake (the cell logged no model, read-only access) is returned,
    to stop the notebook like an error in the cell; a store failure is a warning."""
    if not name:
        return None
    from nbtrack.model_registry import registry as models

    try:
        run.registered = models.register(run.run_id, name)
    except UserError as e:
        return e
    except Exception as e:
        warn(f"the model of run {run.run_id} was not registered as {name!r}: {_reason(e)}")
    return None


def _fail_cell(result, error: NbtrackError) -> None:
    """Show ``error`` as one line and mark the cell failed, so papermill and nbval stop here
    (the cell's own code has run: this is about what --register was asked to do)."""
    err = IPythonUsageError(f"--register: {error}")
    shell = _shell()
    if shell is not None:
        shell.show_usage_error(err)
    if result is not None and result.error_in_exec is None and result.error_before_exec is None:
        result.error_in_exec = err


def _card(run) -> Any:
    """The run card: the widget draws what the store holds for the run (the magic reads it, so
    widgets never call the store)."""
    from nbtrack import store

    data = store.get_run(run.run_id)
    metrics = dict(data.metrics)
    progress = run.catching_up
    if progress is not None:  # MLflow's latest values lag: the kernel knows the last ones
        from nbtrack.tracking import tracker

        metrics.update({k: v for k, (_, v) in tracker.writer().latest(run.run_id).items()})
    return card_for(
        run,
        n_params=len(data.params),
        metrics=metrics,
        server_url=store.server_url(run.uri),
        catching_up=progress,
    )


def _display_card(card) -> None:
    from IPython.display import display

    display(card)


def _reason(e: BaseException) -> str:
    return str(e) if isinstance(e, NbtrackError) else f"{type(e).__name__}: {e}"


def _begin_cell(args: str) -> None:
    """Called first in a tracked cell's code (``cell_code.BeginRun``)."""
    from nbtrack.tracking import tracker

    try:
        spec, cell = parse_line(args, settings.session_defaults())
    except NbtrackError as e:
        raise IPythonUsageError(str(e)) from None
    if settings.current().disable:
        # Untracked, but the cell computes what it computes tracked: an explicit seed holds.
        if spec.seed is not None:
            from nbtrack.capture import seeds

            seeds.apply_seed(spec.seed)
        _state.runs.append(tracker.NullRun("NBTRACK_DISABLE=1"))
        if cell.live and settings.current().live:
            try:
                from nbtrack.widgets import live

                live.show_untracked()
            except Exception:
                _log.debug("showing the untracked cell's curves failed", exc_info=True)
        return
    if _state.warmup is not None:
        # The warm-up may be creating a new database; two threads must not migrate it at once.
        _state.warmup.join(timeout=60)
    shell = _shell()
    try:
        src = cell_source(shell, _state.info)
        run = tracker.start(spec, src)
    except NbtrackError as e:
        if isinstance(e, UserError):
            # One sentence, no traceback; the cell stops before its code runs.
            raise IPythonUsageError(str(e)) from None
        _untracked(tracker, e)
        return
    except Exception as e:  # nbtrack's own failure must never be the reason a cell fails
        _log.debug("cell_source(shell, _state.info) failed", exc_info=True)
        _untracked(tracker, e)
        return
    _state.runs.append(run)
    _state.cells[id(run)] = cell
    if cell.live and settings.current().live:
        _state.live[run.run_id] = _attach_live(run)


# The AST transformer that calls _begin_cell in front of a tracked cell's code.
begin_run = cell_code.BeginRun(__name__, _begin_cell.__name__)


def _attach_live(run):
    """Live learning curves under the cell; None without a frontend or without the widgets
    extra. A view that fails must not fail the cell."""
    try:
        from nbtrack.widgets import live
    except ImportError:
        return None
    try:
        return live.attach(run, listen=live_listener)
    except Exception as e:
        warn(f"live curves are off for this cell: {_reason(e)}")
        return None


def live_listener(run_id: str, on_points: Any) -> Any:
    """Hand the metric writer's batches of run ``run_id`` to ``on_points`` as they persist;
    returns the function that stops it. The live views get this, so they import no tracker."""
    from nbtrack.tracking import tracker

    tracker.writer().subscribe(run_id, on_points)
    return lambda: tracker.writer().unsubscribe(run_id)


def _untracked(tracker, e: BaseException) -> None:
    what = "tracking store unavailable" if isinstance(e, StoreError) else "tracking failed"
    warn(f"{what}, this cell runs untracked: {_reason(e)}")
    _state.runs.append(tracker.NullRun(what))


def _shell():
    from IPython import get_ipython

    return get_ipython()


def kernel_id() -> str | None:
    """The Jupyter kernel's id; None outside a kernel.

    A Jupyter server names a kernel's connection file ``kernel-<kernel id>.json``: that id is
    the one the server's API and the notebook UI show. papermill and nbclient write a temporary
    file (``tmpXXXX.json``) and give the kernel no id; then the kernel's session id (a UUID made
    when the kernel started, sent on every message it sends) names it instead.
    """
    ipykernel = sys.modules.get("ipykernel")  # importing it in a plain shell costs ~50 ms
    if ipykernel is None:
        return None
    try:
        name = os.path.basename(ipykernel.get_connection_file())
    except Exception:
        _log.debug("reading the kernel's connection file name failed", exc_info=True)
        name = ""
    if name.startswith("kernel-") and name.endswith(".json"):
        return name.removeprefix("kernel-").removesuffix(".json")
    shell = _shell()
    session = getattr(getattr(getattr(shell, "kernel", None), "session", None), "session", None)
    return str(session) if session else None


def cell_source(shell, info=None):
    """The Source of the cell being run: its text, the notebook, the kernel's history."""
    from nbtrack.capture.notebook import PLAIN_SHELL, identify
    from nbtrack.tracking.tracker import Source

    hist = list(shell.history_manager.input_hist_raw[1:]) if shell.history_manager else []
    raw = getattr(info, "raw_cell", None)
    if raw is None:
        raw = hist[-1] if hist else ""
    # IPython's history keeps a cell without its trailing newlines; the cell being run has them.
    # Compared as written, a cell ending in a newline (as tools write them) would be in the
    # history twice, and no notebook would hold the cells this kernel ran.
    earlier = hist[:-1] if hist and hist[-1].rstrip() == raw.rstrip() else hist
    lines = raw.lstrip("\n").splitlines(keepends=True)
    body = "".join(lines[1:]) if lines and is_track(lines[0]) else raw
    try:
        python = shell.transform_cell(body)
    except Exception:
        _log.debug("shell.transform_cell(body) failed", exc_info=True)
        python = body
    history = [*earlier, raw]
    found = identify(shell.user_ns, history, in_kernel=getattr(shell, "kernel", None) is not None)
    if found.how == PLAIN_SHELL and type(shell).__name__ == "TerminalInteractiveShell":
        _say_once("nbtrack: no notebook in a terminal IPython; runs record this session's cells")
    return Source(
        kind="NOTEBOOK",
        path=found.path,
        code=raw,
        python=python,
        history=history,
        earlier=earlier,
        namespace=shell.user_ns,
        kernel=kernel_id(),
        found=found.how,
        output=found.output,
    )


_said: set[str] = set()


def _say_once(line: str) -> None:
    if line not in _said:
        _said.add(line)
        print(line, file=sys.stderr)


@magics_class
class TrackMagics(Magics):
    @cell_magic("track")
    def track(self, line: str, cell: str):
        # Reached only when something calls run_cell_magic("track", ...) directly: the input
        # transformer handles %%track cells before IPython looks for a cell magic.
        return self.shell.run_cell(f"{PREFIX} {line}\n{cell}", store_history=False)

    @line_magic("track_config")
    def track_config(self, line: str = ""):
        """Show or set %%track defaults for this session: takes %%track's flags; --reset clears."""
        line = line.strip()
        if line == "--reset":
            settings.set_session_defaults({})
        elif line:
            try:
                settings.set_session_defaults(config_update(settings.session_defaults(), line))
            except NbtrackError as e:
                raise IPythonUsageError(str(e).replace("%%track", "%track_config")) from None
        from nbtrack import store

        shown = settings.session_defaults()
        shown["store"] = store.tracking_uri()
        return shown


TrackMagics.track.__doc__ = HELP


def pin_default_store() -> None:
    """Pin MLflow's default store to an absolute path now, so that a later ``os.chdir`` in the
    notebook cannot move it; child processes (papermill kernels) inherit the same store."""
    if os.environ.get("NBTRACK_TRACKING_URI") or os.environ.get("MLFLOW_TRACKING_URI"):
        return
    from nbtrack import store

    if store.user_pinned_store():
        return
    os.environ["MLFLOW_TRACKING_URI"] = "sqlite:///" + os.path.abspath("mlflow.db")


def load(shell) -> None:
    from nbtrack import logs

    logs.configure()
    pin_default_store()
    shell.register_magics(TrackMagics)
    cleanup = shell.input_transformers_cleanup
    if transform not in cleanup:
        cleanup.append(transform)
    if begin_run not in shell.ast_transformers:
        shell.ast_transformers.append(begin_run)
    for name, fn in (("pre_run_cell", _pre_run_cell), ("post_run_cell", _post_run_cell)):
        if fn not in shell.events.callbacks[name]:
            shell.events.register(name, fn)
    user_errors.install(shell)
    if _state.warmup is None:
        _state.warmup = _warm_up()


def unload(shell) -> None:
    with contextlib.suppress(ValueError):
        shell.input_transformers_cleanup.remove(transform)
    with contextlib.suppress(ValueError):
        shell.ast_transformers.remove(begin_run)
    for name, fn in (("pre_run_cell", _pre_run_cell), ("post_run_cell", _post_run_cell)):
        with contextlib.suppress(ValueError):
            shell.events.unregister(name, fn)
    user_errors.uninstall(shell)


def _warm_up():
    """Import MLflow, list the installed distributions and close orphaned runs in the
    background, so that loading the extension returns at once and the first cell is quick."""
    import threading

    def work() -> None:
        with failures_logged(_log, "from nbtrack.capture import environment"):
            from nbtrack.capture import environment

            environment.installed_distributions()
        if settings.current().disable:
            return
        with failures_logged(_log, "from nbtrack import store"):
            from nbtrack import store
            from nbtrack.tracking import tracker

            store.configure()
            tracker.catch_up()
            tracker.close_orphans()
        # MLflow's run context imports GitPython on the first start_run (~70 ms): pay it here.
        with failures_logged(_log, "__import__('git')"):
            __import__("git")

    thread = threading.Thread(target=work, name="nbtrack-warmup", daemon=True)
    thread.start()
    return thread


__all__ = ["TrackMagics", "load", "transform", "unload"]
