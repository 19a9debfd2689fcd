"""The comparison panel put together: the table (``table.py``), the tabs (``plots.py``) and
the actions (``actions.py``) of one ``ComparePanel``, and ``show``, which builds it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets

from nbtrack.errors import NbtrackError, warn
from nbtrack.query import cache as runcache
from nbtrack.query import compare as core
from nbtrack.query import table as runtable
from nbtrack.widgets._fallback import StaticFallback
from nbtrack.widgets._html import esc
from nbtrack.widgets.compare.actions import ActionsMixin
from nbtrack.widgets.compare.plots import PlotsMixin
from nbtrack.widgets.compare.table import TableMixin

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
CHOOSE = "(choose)"
_log = logging.getLogger(__name__)


class ComparePanel(StaticFallback, TableMixin, PlotsMixin, ActionsMixin, widgets.VBox):
    """The panel; see ``nbtrack.compare``. ``panel.df`` is the table as shown (every column),
    ``panel.selected`` the selected rows; ``panel.select(...)``, ``panel.refresh()``."""

    def __init__(
        self,
        cache: runcache.RunCache,
        *,
        experiment_names: Sequence[str],
        order: Sequence[tuple[str, bool]] = (),
        columns: Sequence[str] | None = None,
        server_url: str | None = None,
    ):
        self.experiment_names = list(experiment_names)
        self.server_url = server_url
        self.errors: list[BaseException] = []  # what the callbacks swallowed (tests look here)
        self._init_table(cache, order, columns)
        self._build_table()
        self._build_plots()
        self._build_actions()
        self._wire()
        controls = widgets.HBox(
            [self.filter_box, self.search_box, self.sort_by, self.descending],
            layout={"flex_flow": "row wrap"},
        )
        chooser = widgets.Accordion([self.column_chooser], selected_index=None)
        chooser.set_title(0, "columns")
        buttons = widgets.HBox([self.refresh_button, self.reload_button, self.status])
        actions = widgets.VBox(
            [
                widgets.HBox([self.copy_button, self.config_format, self.links]),
                self.config_text,
            ]
        )
        super().__init__(
            [controls, buttons, chooser, self.grid, self.selection, self.tabs, actions]
        )
        self.add_class("nbtrack-compare")
        self.update()

    def _say(self, message: str = "", error: bool = False) -> None:
        total, shown = len(self.cache), len(self._view_ids)
        parts = [f"{shown:,} of {total:,} runs" if shown != total else f"{total:,} runs"]
        if self.cache.query.filter:
            parts.append(f"fetched with {self.cache.query.filter}")
        if self._order:
            column, desc = self._order[0]
            parts.append(f"sorted by {column} {'↓' if desc else '↑'}")
        if self._loading:
            parts.append("loading…")
        text = esc(" · ".join(parts))
        if message:
            colour = "#c62828" if error else "#555"
            text += f" · <span style='color:{colour}'>{esc(message)}</span>"
        self.status.value = f"<span class='nbtrack-status' style='font-size:12px'>{text}</span>"

    # -- wiring ----------------------------------------------------------------------------------

    def _guard(self, fn: Callable[..., None]) -> Callable[..., None]:
        def guarded(*args: Any) -> None:
            if self._updating:
                return
            try:
                fn(*args)
            except NbtrackError as e:  # the user's input: say so in the status line
                self._say(str(e), error=True)
            except Exception as e:  # a control that fails must not flood the notebook
                _log.debug("a comparison panel control failed", exc_info=True)
                self.errors.append(e)
                self._say(f"{type(e).__name__}: {e}", error=True)
                warn(f"comparison panel: {type(e).__name__}: {e}")

        return guarded

    def _wire(self) -> None:
        self._wire_table(self._guard)
        self._wire_plots(self._guard)
        self._wire_actions(self._guard)

    # -- output ----------------------------------------------------------------------------------

    def static_html(self, limit: int = core.TOP_ROWS) -> str:
        view = self.df
        shown = view[self.shown_columns()]
        caption = self._caption()
        parts = [core.table_html(shown, limit, caption)]
        d = self.diff()
        if d is not None:
            parts.append(d._repr_html_())
        return "".join(parts)

    def _caption(self) -> str:
        parts = [f"nbtrack compare · {', '.join(self.experiment_names)}"]
        n, total = len(self._view_ids), len(self.cache)
        parts.append(f"{n:,} of {total:,} runs" if n != total else f"{total:,} runs")
        if self.filter_box.value.strip():
            parts.append(f"filter {self.filter_box.value.strip()}")
        if self._order:
            parts.append(
                "sorted by " + ", ".join(f"{c} {'↓' if d else '↑'}" for c, d in self._order)
            )
        return " · ".join(parts)

    def __repr__(self) -> str:
        return f"<{self._caption()}>"


def show(
    experiment: str | Sequence[str] | None = None,
    filter: str | None = None,
    order_by: str | Sequence[str] | None = None,
    max_runs: int | None = None,
    *,
    columns: Sequence[str] | None = None,
    select: Sequence[str | int] | None = None,
    frontend: bool | None = None,
    server_url: str | None = None,
    include_repro_byproducts: bool = False,
) -> ComparePanel:
    """The panel on the runs asked for (``nbtrack.compare``'s arguments). ``server_url``: the
    MLflow UI's, for "open in MLflow" links (the facade passes the store's)."""
    from nbtrack.widgets.live import has_frontend

    query, names = runtable.query_for(
        experiment, filter, order_by, max_runs, include_repro_byproducts
    )
    cache = runcache.cache_for(query, names)
    panel = ComparePanel(
        cache,
        experiment_names=list(names.values()),
        order=core.parse_order(order_by),
        columns=columns,
        server_url=server_url,
    )
    if cache.complete:
        panel.refresh()
    else:
        # Headless (papermill, nbconvert): everything now, so the saved output is complete.
        background = has_frontend() if frontend is None else frontend
        panel._start_loading(background=background)
    if select:
        panel.wait()  # positions refer to the whole table
        panel.select(select)
    return panel


__all__ = ["ComparePanel", "show"]
