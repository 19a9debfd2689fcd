"""Live learning curves under a running ``%%track`` cell.

``attach(run)`` is called by the magic before the cell's code runs, and ``view.close()`` after the
run finished. With a frontend, a plotly FigureWidget shows the points as the metric writer
persists them, redrawn at most ``1 / INTERVAL`` times a second whatever the logging rate; on close
it is redrawn with everything and its output also carries a static picture (``text/html``), so
the saved notebook shows the curves where no widget can render. Without a frontend (papermill,
nbconvert, nbtrack's own runners) a StaticView leaves only the final picture (see
``has_frontend``).

A live view never fails the cell: what its callbacks raise is kept in ``view.errors`` (tests
assert it is empty) and told once as a warning.

A view only: the points come through ``listen``, a callable the caller hands over
(``frontends.magic.live_listener`` registers with the metric writer); nothing here imports the
tracker.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from nbtrack import settings
from nbtrack.errors import MissingExtra, warn
from nbtrack.query.curves import Curves, LiveCurves, RunRef, ref_of
from nbtrack.widgets import static

INTERVAL = 0.25  # seconds: at most four redraws a second
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# Not nbtrack.log: importing that module would replace the facade's nbtrack.log function.
_log = logging.getLogger(__name__)

# listen(run_id, on_points) starts handing the run's persisted points (batches of
# (run_id, key, value, timestamp, step) tuples) to on_points, and returns what stops it.
Listen = Callable[[str, Callable[[list[tuple]], None]], Callable[[], None]]


def has_frontend(shell: Any = None) -> bool:
    """True when a notebook frontend shows this kernel's outputs as they come.

    The rule: nbtrack's own papermill runners (NBTRACK_RUNNER_NOTEBOOK) are headless; a shell
    that is not an ipykernel kernel (terminal IPython, plain Python) has no frontend; otherwise a
    frontend left its mark: jupyter_server's session (``JPY_SESSION_NAME`` in the kernel's
    environment, ``__session__`` in its namespace: JupyterLab, Notebook 7) or VS Code's
    ``__vsc_ipynb_file__``. papermill, nbclient and ``nbconvert --execute`` set none of them.
    """
    if settings.current().runner_notebook:
        return False
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    ns = getattr(shell, "user_ns", {}) or {}
    return bool(
        os.environ.get("JPY_SESSION_NAME") or ns.get("__session__") or ns.get("__vsc_ipynb_file__")
    )


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return getattr(get_ipython(), "kernel", None) is not None


def attach(
    run: Any, *, listen: Listen, frontend: bool | None = None, interval: float = INTERVAL
) -> LiveView | StaticView | None:
    """The view of a starting run, fed by ``listen``: a LiveView; a StaticView (the picture at
    the end) when the widgets extra is missing; None when live curves are off (``--no-live``,
    NBTRACK_LIVE=0) or no frontend is attached."""
    if getattr(run.spec, "live", None) is False or not settings.current().live:
        return None
    if frontend is None:
        if not _in_kernel():  # a terminal IPython or a script: no notebook keeps a picture
            return None
        frontend = has_frontend()
    ref = ref_of(run)
    if not frontend:
        # Nobody watches: no widget, but the saved notebook (papermill, nbconvert, CI artefacts)
        # still gets the picture, in the same place a live view would have left it.
        return StaticView(ref, listen)
    try:
        return LiveView(ref, listen, interval=interval)
    except MissingExtra:
        return StaticView(
            ref, listen
        )  # without plotly and ipywidgets, the static picture still works


class _Output:
    """What is displayed: the widget for JupyterLab, the static picture for everything else."""

    def __init__(self, html: str, text: str, model_id: str | None = None):
        self.html, self.text, self.model_id = html, text, model_id

    def __repr__(self) -> str:
        return self.text

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": self.text, "text/html": self.html}
        if self.model_id is not None:
            bundle[WIDGET_VIEW] = {
                "version_major": 2,
                "version_minor": 0,
                "model_id": self.model_id,
            }
        return bundle


def _display(obj: Any, **kwargs: Any):
    from IPython.display import display

    return display(obj, **kwargs)


class _View:
    def __init__(self, ref: RunRef):
        self.ref = ref
        self.data = LiveCurves(ref)
        self.errors: list[BaseException] = []
        self._stop: Callable[[], None] | None = None  # what ends the listening

    def _unlisten(self) -> None:
        stop, self._stop = self._stop, None
        if stop is not None:
            try:
                stop()
            except Exception:
                _log.debug(
                    "unsubscribing the live view of %s failed", self.ref.run_id, exc_info=True
                )

    def _swallow(self, e: BaseException) -> None:
        _log.debug("live curves of run %s", self.ref.run_id, exc_info=e)
        self.errors.append(e)
        if len(self.errors) == 1:
            warn(f"live curves of run {self.ref.run_id}: {type(e).__name__}: {e}")

    def final(self) -> Curves:
        try:
            return self.data.complete()
        except Exception as e:  # the store is unreachable: draw what was seen
            self._swallow(e)
            return self.data.snapshot()


class StaticView(_View):
    """Headless, or no widgets extra: nothing live; on close, the static picture of the run.

    It reserves its output when the cell starts and fills it on close, so a notebook saved from
    JupyterLab and the same notebook run by papermill or nbval have the same outputs in the same
    order (nbval compares them one by one). Points are collected from the writer as they persist,
    so the end of the cell does not read them back from the store.
    """

    def __init__(self, ref: RunRef, listen: Listen):
        super().__init__(ref)
        self.handle = _display(_placeholder(ref), display_id=True)
        self._stop = listen(ref.run_id, self._on_points)

    def _on_points(self, points: list[tuple]) -> None:
        try:
            self.data.add(points)
        except Exception as e:
            self._swallow(e)

    def close(self) -> None:
        self._unlisten()
        try:
            data = self.final()
            if data.series and self.handle is not None:
                self.handle.update(_Output(static.render(data), _text(self.ref, data)))
        except Exception as e:
            self._swallow(e)


class LiveView(_View):
    """A FigureWidget fed by the metric writer's listener, redrawn on a throttle."""

    def __init__(self, ref: RunRef, listen: Listen, interval: float = INTERVAL):
        from nbtrack.widgets import curves as figures  # MissingExtra without the widgets extra

        super().__init__(ref)
        self.interval = interval
        self.redraws = 0
        self._sync = figures.sync
        self.figure = figures.go.FigureWidget(
            layout={
                "height": 120,
                "margin": {"l": 20, "r": 20, "t": 20, "b": 20},
                "template": "plotly_white",
                "xaxis": {"visible": False},
                "yaxis": {"visible": False},
                "annotations": [
                    {
                        "text": "nbtrack: waiting for metrics…",
                        "showarrow": False,
                        "xref": "paper",
                        "yref": "paper",
                        "x": 0.5,
                        "y": 0.5,
                        "font": {"color": "#888"},
                    }
                ],
            }
        )
        self.figure.add_class("nbtrack-live")
        self._lock = threading.Lock()  # guards the timer and the closed flag
        self._draw_lock = threading.Lock()  # one redraw at a time (timer thread vs close)
        self._timer: threading.Timer | None = None
        self._last = float("-inf")  # monotonic time of the last redraw: the first is at once
        self._cost = 0.0  # how long it took
        self._drawn = -1  # data version drawn last
        self._closed = False
        self._failed = False  # a redraw raised: no more live redraws (close still tries one)
        waiting = (
            "<div class='nbtrack-curves' style='font-size:12px;color:#888'>"
            "nbtrack: live learning curves (shown while the cell runs)</div>"
        )
        self.handle = _display(
            _Output(waiting, f"<nbtrack live curves of run {ref.run_id}>", self.figure.model_id),
            display_id=True,
        )
        self._stop = listen(ref.run_id, self._on_points)

    # -- the writer's thread ---------------------------------------------------------------------

    def _on_points(self, points: list[tuple]) -> None:
        try:
            self.data.add(points)
            self._schedule()
        except Exception as e:
            self._swallow(e)

    def _schedule(self) -> None:
        with self._lock:
            if self._timer is not None or self._closed or self._failed:
                return
            # A redraw that costs much (a huge series) waits longer, so that drawing never takes
            # more than a fraction of the time the training loop has.
            gap = max(self.interval, 4 * self._cost)
            delay = max(0.0, self._last + gap - time.monotonic())
            self._timer = threading.Timer(delay, self._tick)
            self._timer.daemon = True
            self._timer.start()

    # -- the timer's thread ----------------------------------------------------------------------

    def _tick(self) -> None:
        with self._lock:
            self._timer = None
            if self._closed:
                return
        try:
            self._redraw()
        except Exception as e:
            self._failed = True  # once, not four times a second for the rest of the cell
            self._swallow(e)
        if self.data.version != self._drawn:  # points came in while drawing
            self._schedule()

    def _redraw(self, data: Curves | None = None) -> None:
        with self._draw_lock:
            start = time.monotonic()
            version = self.data.version
            if data is None:
                data = self.data.snapshot()
            if data.series:
                self._sync(self.figure, data)
                self.redraws += 1
            self._drawn = version
            self._last = time.monotonic()
            self._cost = self._last - start

    # -- the kernel's thread, after the run finished ---------------------------------------------

    def close(self) -> None:
        self._unlisten()
        with self._lock:
            self._closed = True
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        try:
            data = self.final()
            self._redraw(data)
            if data.series:
                out = _Output(static.render(data), _text(self.ref, data), self.figure.model_id)
            else:  # nothing was logged: leave no empty plot behind
                self.figure.close()
                out = _Output(EMPTY, f"<nbtrack curves of run {self.ref.run_id}: none>")
            if self.handle is not None:
                self.handle.update(out)
        except Exception as e:
            self._swallow(e)


# Invisible, but of the same kind as a picture: nbval's sanitize file compares it equal to one.
EMPTY = "<div class='nbtrack-curves'></div>"


def _placeholder(ref: RunRef) -> _Output:
    """What a headless view shows until the cell ends. papermill and nbconvert replace it with
    the picture (update_display_data); nbval does not apply updates, and its sanitize file
    compares this placeholder equal to the picture a saved notebook holds."""
    return _Output(EMPTY, f"<nbtrack curves of run {ref.run_id}>")


def show_untracked() -> None:
    """Where the curves of a cell run untracked (NBTRACK_DISABLE=1) would be: the notebook keeps
    the shape nbval compares, output for output."""
    _display(_Output(EMPTY, "<nbtrack curves of run untracked: none>"))


def _text(ref: RunRef, data: Curves) -> str:
    keys = ", ".join(dict.fromkeys(s.key for s in data.series))
    return f"<nbtrack curves of run {ref.run_id} ({ref.name}): {keys}>"


__all__ = ["INTERVAL", "LiveView", "StaticView", "attach", "has_frontend", "show_untracked"]
