"""The comparison panel's actions: copy a run's config (``%%track`` line or papermill dict),
open runs in MLflow, and fetching: refresh, and the full load with its loader thread."""

from __future__ import annotations

import logging
import threading
import time
from importlib import resources

import anywidget
import ipywidgets as widgets
import traitlets

from nbtrack.query import compare as core
from nbtrack.widgets._html import esc
from nbtrack.widgets.compare.table import MAX_DIFF

REDRAW = 0.5  # seconds between table updates while pages arrive
_log = logging.getLogger(__name__)


class CopyButton(anywidget.AnyWidget):
    """A button that copies ``text`` to the browser's clipboard.

    The copy happens in the browser, in the click handler: a kernel cannot reach the clipboard,
    and a browser allows a page to write to it only in answer to a user's gesture. ``clicks``
    counts the clicks, so the kernel can say what was copied."""

    _esm = resources.files(__package__).joinpath("copy_button.js").read_text(encoding="utf-8")
    text = traitlets.Unicode("").tag(sync=True)
    description = traitlets.Unicode("copy config").tag(sync=True)
    clicks = traitlets.Int(0).tag(sync=True)
    copied = traitlets.Bool(False).tag(sync=True)  # whether the browser's clipboard took it


class ActionsMixin:
    """The actions part of ``ComparePanel``: the config to copy, links, and loading runs."""

    def _build_actions(self) -> None:
        self._loader: threading.Thread | None = None
        self._loading = False
        self.refresh_button = widgets.Button(
            description="refresh", tooltip="fetch runs started or still running since"
        )
        self.reload_button = widgets.Button(description="reload all", tooltip="fetch every run")
        self.config_format = widgets.ToggleButtons(
            options=[("%%track line", "track"), ("papermill dict", "papermill")],
            style={"button_width": "auto"},
        )
        self.copy_button = CopyButton()
        self.config_text = widgets.Textarea(
            placeholder="select a run, then copy its config", layout={"width": "98%"}, rows=2
        )
        self.links = widgets.HTML()
        self._clipboard = widgets.HTML()  # a one-shot script output for the clipboard

    def _wire_actions(self, g) -> None:
        self.refresh_button.on_click(g(lambda _: self.refresh()))
        self.reload_button.on_click(g(lambda _: self.refresh(full=True)))
        self.config_format.observe(g(lambda _: self._draw_actions()), names="value")
        self.copy_button.observe(g(lambda _: self._copied()), names="clicks")

    def config(self, run_id: str | None = None, format: str = "track") -> str:
        """A run's params as a ``%%track`` line (format="track") or a papermill dict."""
        run_id = run_id or (self._selected[0] if self._selected else None)
        if run_id is None:
            return ""
        r = self.cache.record(run_id)
        if r is None:
            return ""
        if format == "papermill":
            return repr(core.as_papermill_parameters(r.params))
        exp = self.cache.experiments.get(r.experiment_id)
        if exp is None and len(self.experiment_names) == 1:
            exp = self.experiment_names[0]
        return core.track_line(r.params, exp)

    def _draw_actions(self) -> None:
        text = self.config(format=self.config_format.value)
        self.config_text.value = text
        self.copy_button.text = text
        self.copy_button.description = "copy config"
        if self.server_url and self._selected:
            links = []
            for run_id in self._selected[:MAX_DIFF]:
                r = self.cache.record(run_id)
                if r is None:
                    continue
                url = f"{self.server_url}/#/experiments/{r.experiment_id}/runs/{run_id}"
                links.append(
                    f"<a href='{esc(url, quote=True)}' target='_blank' rel='noopener'>"
                    f"open {esc(r.name)} in MLflow</a>"
                )
            self.links.value = " · ".join(links)
        else:
            self.links.value = ""

    def _copied(self) -> None:
        # The text area always holds the config too: where the clipboard refused (no focus, an
        # insecure origin), the user copies it from there.
        if not self.copy_button.text:
            self.copy_button.description = "select a run first"
        elif self.copy_button.copied:
            self.copy_button.description = "copied ✓"
        else:
            self.copy_button.description = "copy from the box below"

    # -- fetching --------------------------------------------------------------------------------

    def refresh(self, full: bool = False) -> int:
        """Ask MLflow what changed (``full``: everything) and redraw; returns how many runs
        changed."""
        if self._loading:
            return 0
        if full:
            self._start_loading(background=True)
            return 0
        changed = self.cache.refresh()
        self.update()
        self._say(f"refreshed: {changed} changed" if changed else "refreshed: no change")
        return changed

    def _start_loading(self, background: bool) -> None:
        """A full load: the first page now, the rest in the background with a frontend (the
        table fills as pages arrive), or all of it now without one."""
        pages = self.cache.pages()
        self._loading = True
        try:
            next(pages, None)
        except BaseException:
            self._loading = False
            raise
        if not background:
            for _ in pages:
                pass
            self._loading = False
            self.update()
            return
        self.update()
        self._loader = threading.Thread(
            target=self._load_rest, args=(pages,), name="nbtrack-compare", daemon=True
        )
        self._loader.start()

    def _load_rest(self, pages) -> None:
        last = time.monotonic()
        try:
            for _ in pages:
                if time.monotonic() - last >= REDRAW:
                    self.update()
                    last = time.monotonic()
        except Exception as e:
            _log.debug("loading the runs stopped", exc_info=True)
            self.errors.append(e)
            self._say(f"loading stopped: {e}", error=True)
        finally:
            self._loading = False
        try:
            self.update()
        except Exception as e:
            _log.debug("redrawing the loaded runs failed", exc_info=True)
            self.errors.append(e)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background load to finish; True when it has."""
        loader = self._loader
        if loader is not None:
            loader.join(timeout)
        return not self._loading
