"""The comparison panel's runs table: the streaming grid, the filter, search, sort and column
controls, and the state they make (the view shown, the selection)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
from ipydatagrid import StreamingDataGrid

from nbtrack.query import cache as runcache
from nbtrack.query import compare as core
from nbtrack.query import diff as rundiff
from nbtrack.query import filters
from nbtrack.widgets._html import esc

MAX_DIFF = 6  # runs in one diff view


class RunsGrid(StreamingDataGrid):
    """The streaming grid, kept consistent when its rows are replaced.

    ipydatagrid keeps the rows sorted or filtered from its header menu in ``_transformed_data``
    and does not redo it when ``data`` is set: ``show`` re-applies the transforms to the new rows.
    The private names used are ipydatagrid 1.4's (the extra pins 1.4)."""

    def show(self, frame) -> None:
        self.data = frame
        try:
            self._on_transforms_changed({"new": self._transforms})
        except (KeyError, ValueError, TypeError):  # a transform on a column that is gone
            self._transforms = []

    def displayed_positions(self, n: int) -> list[int]:
        """Row positions (0-based, in the frame given to ``show``) in the order on screen; the
        frame's index is 1-based."""
        transformed = getattr(self, "_transformed_data", None)
        if transformed is None:
            return list(range(n))
        return [int(i) - 1 for i in transformed.index]


class _Quiet:
    """Programmatic changes of the controls: their handlers do nothing meanwhile."""

    def __init__(self, panel: TableMixin):
        self.panel = panel

    def __enter__(self) -> None:
        self.panel._updating = True

    def __exit__(self, *exc: Any) -> None:
        self.panel._updating = False


class TableMixin:
    """The table part of ``ComparePanel``: its controls, the rows shown and the selection."""

    cache: runcache.RunCache

    def _init_table(
        self, cache: runcache.RunCache, order: Sequence[tuple[str, bool]], columns
    ) -> None:
        self.cache = cache
        self._lock = threading.RLock()
        self._order = list(order)
        self._columns = list(columns) if columns is not None else None
        self._frame = None  # the cache's table last seen
        self._frame_version = -1
        self._view = None  # filtered, searched, sorted (every column)
        self._view_ids: list[str] = []
        self._filter_ids: set[str] | None = None
        self._selected: list[str] = []
        self._updating = False  # programmatic changes of the controls: no handlers

    def _build_table(self) -> None:
        """The table's controls and the grid."""
        self.filter_box = widgets.Text(
            placeholder="MLflow filter: metrics.val_acc > 0.9 and params.optimizer = 'adam'",
            description="filter",
            continuous_update=False,
            layout={"width": "44%"},
        )
        self.search_box = widgets.Text(
            placeholder="search text", description="search", layout={"width": "22%"}
        )
        self.sort_by = widgets.Dropdown(description="sort by", layout={"width": "22%"})
        self.descending = widgets.ToggleButton(
            value=True, description="desc", tooltip="descending", layout={"width": "6em"}
        )
        self.column_chooser = widgets.SelectMultiple(rows=8, layout={"width": "98%"})
        self.status = widgets.HTML()
        self.selection = widgets.HTML()
        self.grid = RunsGrid(
            _empty_frame(),
            selection_mode="row",
            layout={"height": "340px"},
            base_column_size=110,
            base_row_header_size=56,
            column_widths={"name": 170, "start_time": 150, "run_id": 250},
        )
        self.grid.add_class("nbtrack-runs-grid")

    def _wire_table(self, g) -> None:
        self.filter_box.observe(g(self._on_filter), names="value")
        self.search_box.observe(g(lambda _: self.update()), names="value")
        self.sort_by.observe(g(self._on_sort), names="value")
        self.descending.observe(g(self._on_sort), names="value")
        self.column_chooser.observe(g(self._on_columns), names="value")
        self.grid.observe(g(self._on_grid_selection), names="selections")
        self.grid.observe(g(self._on_grid_transforms), names="_transforms")

    def _on_filter(self, _change: Any = None) -> None:
        text = self.filter_box.value.strip()
        self._filter_ids = filters.matching(self.cache, text) if text else None
        self.update()

    def _on_sort(self, _change: Any = None) -> None:
        column = self.sort_by.value
        self._order = [(column, self.descending.value)] if column else []
        # The toolbar's sort replaces a sort from the grid's header menu.
        kept = [t for t in self.grid._transforms if t.get("type") != "sort"]
        if kept != list(self.grid._transforms):
            with self._quiet():
                self.grid.transform(kept)
        self.update()

    def _on_columns(self, _change: Any = None) -> None:
        self._columns = list(self.column_chooser.value)
        self.update()

    def _on_grid_transforms(self, _change: Any = None) -> None:
        # A sort or filter from the grid's header menu: the rows moved; keep the selected runs
        # selected where they are now (and drop those the grid's filter hid).
        positions = self.grid.displayed_positions(len(self._view_ids))
        shown = {self._view_ids[p] for p in positions}
        self._selected = [r for r in self._selected if r in shown]
        self._after_selection(select_in_grid=True)

    def _on_grid_selection(self, _change: Any = None) -> None:
        rows: list[int] = []
        for rect in self.grid.selections:
            rows += range(int(rect["r1"]), int(rect["r2"]) + 1)
        positions = self.grid.displayed_positions(len(self._view_ids))
        ids = [self._view_ids[positions[r]] for r in dict.fromkeys(rows) if r < len(positions)]
        self._selected = ids
        self._after_selection()

    def _quiet(self) -> _Quiet:
        return _Quiet(self)

    # -- the table -------------------------------------------------------------------------------

    def update(self) -> None:
        """Recompute the table from the cache and the controls, and redraw what depends on it."""
        with self._lock:
            frame = self._current_frame()
            view = frame
            if self._filter_ids is not None:
                view = view[view["run_id"].isin(self._filter_ids).to_numpy()]
            text = self.search_box.value
            if text.strip():
                view = view[core.search_mask(view, text)]
            order = [(c, d) for c, d in self._order if c in view.columns]
            view = core.sort_frame(view, order)
            self._view = view.reset_index(drop=True)
            self._view_ids = list(self._view["run_id"])
            keep = set(self._view_ids)
            self._selected = [r for r in self._selected if r in keep]
            self._sync_controls(frame)
            self.grid.show(self._grid_frame())
            self._say()
            self._tabs_stale()
            self._after_selection(select_in_grid=True)

    def _current_frame(self):
        if self._frame is None or self._frame_version != self.cache.version:
            self._frame = self.cache.frame()
            self._frame_version = self.cache.version
            if self.filter_box.value.strip():  # new runs: evaluate the filter on them too
                self._filter_ids = filters.matching(self.cache, self.filter_box.value)
        return self._frame

    def shown_columns(self) -> list[str]:
        cols = list(self._view.columns) if self._view is not None else []
        if self._columns is not None:
            return [c for c in self._columns if c in cols] or ["name"]
        return [
            c
            for c in cols
            if c != "run_id" and not (c.startswith("params.") and core.ENV_PARAM.match(c[7:]))
        ]

    def _grid_frame(self):
        import pandas as pd

        cols = self.shown_columns()
        frame = self._view[cols].copy()
        for c in cols:
            col = frame[c]
            if c == "start_time":
                frame[c] = col.dt.strftime("%Y-%m-%d %H:%M:%S").where(col.notna(), "")
            elif c == "duration":
                frame[c] = col.round(2)
            elif col.dtype == object:
                nums = core.numeric(col)
                # Numeric params sort as numbers in the grid's header menu too.
                frame[c] = nums if nums is not None else col.where(col.notna(), "").astype(str)
        frame.index = pd.RangeIndex(1, len(frame) + 1, name="#")
        return frame

    def _sync_controls(self, frame) -> None:
        columns = list(frame.columns)
        with self._quiet():
            _set_options(self.sort_by, [("(none)", ""), *[(c, c) for c in columns]])
            first = self._order[0] if self._order else ("", self.descending.value)
            self.sort_by.value = first[0] if first[0] in columns else ""
            self.descending.value = first[1]
            if tuple(self.column_chooser.options) != tuple(columns):
                self.column_chooser.options = columns
            shown = [c for c in self.shown_columns() if c in columns]
            if tuple(self.column_chooser.value) != tuple(shown):
                self.column_chooser.value = shown
            self._sync_plot_controls(columns)

    # -- selection -------------------------------------------------------------------------------

    def select(self, runs: Sequence[str | int]) -> None:
        """Select rows: run ids, or positions in the table as sorted (0 is the top row)."""
        ids = []
        for item in runs:
            if isinstance(item, int):
                if not -len(self._view_ids) <= item < len(self._view_ids):
                    raise IndexError(f"row {item} of {len(self._view_ids)}")
                ids.append(self._view_ids[item])
            else:
                ids.append(item)
        self._selected = list(dict.fromkeys(ids))
        self._tabs_stale()
        self._after_selection(select_in_grid=True)

    def _after_selection(self, select_in_grid: bool = False) -> None:
        if select_in_grid:
            positions = self.grid.displayed_positions(len(self._view_ids))
            where = {self._view_ids[p]: row for row, p in enumerate(positions)}
            ncols = len(self.shown_columns())
            rects = [
                {"r1": where[r], "r2": where[r], "c1": 0, "c2": max(0, ncols - 1)}
                for r in self._selected
                if r in where
            ]
            with self._quiet():
                if rects != list(self.grid.selections):
                    self.grid.selections = rects
        names = [self._name(r) for r in self._selected]
        if names:
            text = "selected: " + ", ".join(esc(n) for n in names)
        else:
            text = "select rows to compare them (ctrl- or shift-click for several)"
        self.selection.value = (
            f"<span class='nbtrack-selection' style='font-size:12px'>{text}</span>"
        )
        self._tabs_stale()
        self._draw_tab()
        self._draw_actions()

    def _name(self, run_id: str) -> str:
        r = self.cache.record(run_id)
        return r.name if r is not None else run_id[:8]

    @property
    def selected_ids(self) -> list[str]:
        return list(self._selected)

    @property
    def df(self):
        """The table as shown: filtered, searched and sorted, every column."""
        with self._lock:
            view = self._view
            positions = self.grid.displayed_positions(len(self._view_ids))
        return view.iloc[positions].reset_index(drop=True)

    @property
    def selected(self):
        """The selected rows, in the order they were selected."""
        view = self._view
        rank = {r: i for i, r in enumerate(self._selected)}
        rows = view[view["run_id"].isin(rank)]
        order = sorted(range(len(rows)), key=lambda i: rank[rows["run_id"].iloc[i]])
        return rows.iloc[order].reset_index(drop=True)

    def diff(self) -> rundiff.RunsDiff | None:
        """The diff of the selected runs (None with fewer than two)."""
        if len(self._selected) < 2:
            return None
        return rundiff.diff(*self._selected[:MAX_DIFF])


def _set_options(dropdown: widgets.Widget, options: list) -> None:
    if tuple(dropdown.options) == tuple(options):
        return
    value = dropdown.value
    dropdown.options = options
    values = [o[1] if isinstance(o, tuple) else o for o in options]
    if value in values:
        dropdown.value = value
    elif values:
        dropdown.value = values[0]


def _empty_frame():
    import pandas as pd

    return pd.DataFrame({"name": pd.Series([], dtype=object)}, index=pd.RangeIndex(1, 1, name="#"))
