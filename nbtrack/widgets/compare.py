"""``nbtrack.compare(...)``: the run-comparison panel. A view only: the runs come from
``nbtrack.query.table`` (cached, refreshed incrementally), the diffs, groups and configs from
``nbtrack.query.compare``; nothing here calls MLflow.

The runs table is ipydatagrid's StreamingDataGrid: a canvas grid that asks the kernel for the rows
in view only, so a new filter, sort or page of runs costs the same with 100 runs or 100,000 (the
kernel sends the schema and a row count; ~10 ms for 10,000 runs, where a plain DataGrid sends all
the rows again, ~1.4 MB for 10,000 x 30). It needs a live kernel, so the panel's output also
carries a static HTML picture (the top rows as sorted, and the selection's diff) for saved
notebooks, nbconvert and papermill.

Every value is drawn as text: the grid paints on a canvas, and every HTML string built here or in
comparedata is escaped.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from nbtrack.errors import MissingExtra, NbtrackError, warn
from nbtrack.query import compare as core
from nbtrack.query import table as runtable

try:
    import anywidget
    import ipywidgets as widgets
    import plotly.graph_objects as go
    import traitlets
    from ipydatagrid import StreamingDataGrid
except ImportError as e:  # the widgets extra is optional
    raise MissingExtra("the comparison panel", "widgets") from e

REDRAW = 0.5  # seconds between table updates while pages arrive
MAX_DIFF = 6  # runs in one diff view
MAX_AXES = 10  # params on the parallel-coordinates plot
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
GROUP_BY = ("data_hash", "git_commit", "user", "notebook", "status")
TABS = ("diff", "curves", "parallel coordinates", "scatter", "group by")
CHOOSE = "(choose)"


def _esc(text: Any) -> str:
    # Plotly renders labels and hover text as a small subset of HTML (see widgets/curves.py).
    return html.escape(str(text), quote=False)


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


class CopyButton(anywidget.AnyWidget):
    """A button that copies ``text`` to the browser's clipboard.

    The copy happens in the browser, in the click handler: a kernel cannot reach the clipboard,
    and a browser allows a page to write to it only in answer to a user's gesture. ``clicks``
    counts the clicks, so the kernel can say what was copied."""

    _esm = """
    export default {
      render({ model, el }) {
        const button = document.createElement("button");
        button.className = "jupyter-widgets jupyter-button widget-button nbtrack-copy";
        const label = () => { button.textContent = model.get("description"); };
        label();
        model.on("change:description", label);
        button.addEventListener("click", async () => {
          let ok = true;
          try { await navigator.clipboard.writeText(model.get("text")); }
          catch (e) { ok = false; }
          model.set("copied", ok);
          model.set("clicks", model.get("clicks") + 1);
          model.save_changes();
        });
        el.appendChild(button);
      }
    };
    """
    text = traitlets.Unicode("").tag(sync=True)
    description = traitlets.Unicode("copy config").tag(sync=True)
    clicks = traitlets.Int(0).tag(sync=True)
    copied = traitlets.Bool(False).tag(sync=True)  # whether the browser's clipboard took it


class ComparePanel(widgets.VBox):
    """The panel; see ``nbtrack.compare``. ``panel.df`` is the table as shown (every column),
    ``panel.selected`` the selected rows; ``panel.select(...)``, ``panel.refresh()``."""

    def __init__(
        self,
        cache: runtable.RunCache,
        *,
        experiment_names: Sequence[str],
        order: Sequence[tuple[str, bool]] = (),
        columns: Sequence[str] | None = None,
        server_url: str | None = None,
    ):
        self.cache = cache
        self.experiment_names = list(experiment_names)
        self.server_url = server_url
        self.errors: list[BaseException] = []  # what the callbacks swallowed (tests look here)
        self._lock = threading.RLock()
        self._order = list(order)
        self._columns = list(columns) if columns is not None else None
        self._frame = None  # the cache's table last seen
        self._frame_version = -1
        self._view = None  # filtered, searched, sorted (every column)
        self._view_ids: list[str] = []
        self._filter_ids: set[str] | None = None
        self._selected: list[str] = []
        self._stale = set(TABS)
        self._loader: threading.Thread | None = None
        self._loading = False
        self._updating = False  # programmatic changes of the controls: no handlers
        self._plots_chosen = False  # the plots' metric follows the first sort, once

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
        self.refresh_button = widgets.Button(
            description="refresh", tooltip="fetch runs started or still running since"
        )
        self.reload_button = widgets.Button(description="reload all", tooltip="fetch every run")
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

        # tabs
        self.diff_view = widgets.HTML()
        self.curves_box = widgets.VBox()
        self.parallel_metric = widgets.Dropdown(description="colour by")
        self.parallel_box = widgets.VBox([self.parallel_metric])
        self.scatter_x = widgets.Dropdown(description="x")
        self.scatter_y = widgets.Dropdown(description="y")
        self.scatter_box = widgets.VBox([widgets.HBox([self.scatter_x, self.scatter_y])])
        self.group_by = widgets.Dropdown(description="group by")
        self.group_metric = widgets.Dropdown(description="metric")
        self.group_view = widgets.HTML()
        self.group_box = widgets.VBox(
            [widgets.HBox([self.group_by, self.group_metric]), self.group_view]
        )
        self.tabs = widgets.Tab(
            [self.diff_view, self.curves_box, self.parallel_box, self.scatter_box, self.group_box]
        )
        for i, title in enumerate(TABS):
            self.tabs.set_title(i, title)

        # actions
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
                self.errors.append(e)
                self._say(f"{type(e).__name__}: {e}", error=True)
                warn(f"comparison panel: {type(e).__name__}: {e}")

        return guarded

    def _wire(self) -> None:
        g = self._guard
        self.filter_box.observe(g(self._on_filter), names="value")
        self.search_box.observe(g(lambda _: self.update()), names="value")
        self.sort_by.observe(g(self._on_sort), names="value")
        self.descending.observe(g(self._on_sort), names="value")
        self.column_chooser.observe(g(self._on_columns), names="value")
        self.refresh_button.on_click(g(lambda _: self.refresh()))
        self.reload_button.on_click(g(lambda _: self.refresh(full=True)))
        self.grid.observe(g(self._on_grid_selection), names="selections")
        self.grid.observe(g(self._on_grid_transforms), names="_transforms")
        self.tabs.observe(g(lambda _: self._draw_tab()), names="selected_index")
        for w in (self.parallel_metric, self.scatter_x, self.scatter_y):
            w.observe(g(lambda _: self._redraw_plots()), names="value")
        for w in (self.group_by, self.group_metric):
            w.observe(g(lambda _: self._draw_groups()), names="value")
        self.config_format.observe(g(lambda _: self._draw_actions()), names="value")
        self.copy_button.observe(g(lambda _: self._copied()), names="clicks")

    def _on_filter(self, _change: Any = None) -> None:
        text = self.filter_box.value.strip()
        self._filter_ids = runtable.matching(self.cache, text) if text else None
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

    class _Quiet:
        def __init__(self, panel: ComparePanel):
            self.panel = panel

        def __enter__(self) -> None:
            self.panel._updating = True

        def __exit__(self, *exc: Any) -> None:
            self.panel._updating = False

    def _quiet(self) -> ComparePanel._Quiet:
        return ComparePanel._Quiet(self)

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
            self._stale = set(TABS)
            self._after_selection(select_in_grid=True)

    def _current_frame(self):
        if self._frame is None or self._frame_version != self.cache.version:
            self._frame = self.cache.frame()
            self._frame_version = self.cache.version
            if self.filter_box.value.strip():  # new runs: evaluate the filter on them too
                self._filter_ids = runtable.matching(self.cache, self.filter_box.value)
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
        metrics = [c for c in columns if c.startswith("metrics.")]
        params = [c for c in columns if c.startswith("params.")]
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
            _set_options(self.parallel_metric, metrics)
            _set_options(self.scatter_x, params + metrics)
            _set_options(self.scatter_y, metrics + params)
            if self.scatter_x.value is None and params:
                self.scatter_x.value = params[0]
            _set_options(self.group_by, [c for c in GROUP_BY if c in columns] + params)
            _set_options(self.group_metric, metrics)
            if not self._plots_chosen and self._order and self._order[0][0] in metrics:
                # The metric the table is sorted by is the one to plot, until the user picks.
                for w in (self.parallel_metric, self.scatter_y, self.group_metric):
                    w.value = self._order[0][0]
                self._plots_chosen = True

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
        text = html.escape(" · ".join(parts))
        if message:
            colour = "#c62828" if error else "#555"
            text += f" · <span style='color:{colour}'>{html.escape(message)}</span>"
        self.status.value = f"<span class='nbtrack-status' style='font-size:12px'>{text}</span>"

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
        self._stale = set(TABS)
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
            text = "selected: " + ", ".join(html.escape(n) for n in names)
        else:
            text = "select rows to compare them (ctrl- or shift-click for several)"
        self.selection.value = (
            f"<span class='nbtrack-selection' style='font-size:12px'>{text}</span>"
        )
        self._stale = set(TABS)
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

    def diff(self) -> core.RunsDiff | None:
        """The diff of the selected runs (None with fewer than two)."""
        if len(self._selected) < 2:
            return None
        return core.diff(*self._selected[:MAX_DIFF])

    # -- tabs ------------------------------------------------------------------------------------

    def _draw_tab(self) -> None:
        index = self.tabs.selected_index or 0
        name = TABS[index]
        if name not in self._stale:
            return
        self._stale.discard(name)
        if name == "diff":
            self._draw_diff()
        elif name == "curves":
            self._draw_curves()
        elif name in ("parallel coordinates", "scatter"):
            self._redraw_plots()
        else:
            self._draw_groups()

    def _draw_diff(self) -> None:
        d = self.diff()
        if d is None:
            self.diff_view.value = _hint("select two or more rows to see what differs")
            return
        note = ""
        if len(self._selected) > MAX_DIFF:
            note = _hint(f"the first {MAX_DIFF} of {len(self._selected)} selected runs")
        self.diff_view.value = note + d._repr_html_()

    def _draw_curves(self) -> None:
        if not self._selected:
            self.curves_box.children = [widgets.HTML(_hint("select runs to overlay their curves"))]
            return
        from nbtrack.query import curves as curvedata
        from nbtrack.widgets.curves import CurvesView

        data = curvedata.load(self._selected[:20])
        self.curves_box.children = [CurvesView(data)]

    def _redraw_plots(self) -> None:
        name = TABS[self.tabs.selected_index or 0]
        if name == "parallel coordinates":
            self.parallel_box.children = [self.parallel_metric, self._parallel()]
        elif name == "scatter":
            self.scatter_box.children = [self.scatter_box.children[0], self._scatter()]

    def _parallel(self) -> widgets.Widget:
        metric = self.parallel_metric.value
        view = self._view
        if not metric or view is None or view.empty:
            return widgets.HTML(_hint("no metric to plot"))
        dims = []
        for c in [c for c in view.columns if c.startswith("params.")]:
            if core.ENV_PARAM.match(c[7:]) or view[c].nunique(dropna=True) < 2:
                continue
            dims.append(_dimension(c, view[c]))
            if len(dims) >= MAX_AXES:
                break
        values = view[metric]
        dims.append({"label": _esc(metric), "values": values.to_numpy()})
        fig = go.FigureWidget(
            data=[
                go.Parcoords(
                    dimensions=dims,
                    line={"color": values.to_numpy(), "colorscale": "Viridis", "showscale": True},
                )
            ],
            layout={"height": 380, "margin": {"l": 60, "r": 60, "t": 50, "b": 30}},
        )
        return fig

    def _scatter(self) -> widgets.Widget:
        x, y = self.scatter_x.value, self.scatter_y.value
        view = self._view
        if not x or not y or view is None or view.empty:
            return widgets.HTML(_hint("choose a param and a metric"))
        xs = core.numeric(view[x])
        ys = core.numeric(view[y])
        xv = xs.to_numpy() if xs is not None else view[x].astype(str).to_numpy()
        yv = ys.to_numpy() if ys is not None else view[y].astype(str).to_numpy()
        names = [_esc(n) for n in view["name"]]
        chosen = view["run_id"].isin(self._selected).to_numpy()
        fig = go.FigureWidget(
            layout={
                "height": 380,
                "template": "plotly_white",
                "xaxis": {"title": {"text": _esc(x)}},
                "yaxis": {"title": {"text": _esc(y)}},
                "margin": {"l": 60, "r": 20, "t": 20, "b": 50},
            }
        )
        fig.add_trace(
            go.Scattergl(
                x=xv,
                y=yv,
                mode="markers",
                text=names,
                hovertemplate="%{text}<br>%{x}, %{y}<extra></extra>",
                marker={"size": 6, "opacity": 0.6},
                name="runs",
            )
        )
        if chosen.any():
            fig.add_trace(
                go.Scattergl(
                    x=xv[chosen],
                    y=yv[chosen],
                    mode="markers",
                    text=[n for n, c in zip(names, chosen, strict=True) if c],
                    hovertemplate="%{text}<br>%{x}, %{y}<extra></extra>",
                    marker={"size": 11, "color": "#ef553b"},
                    name="selected",
                )
            )
        return fig

    def _draw_groups(self) -> None:
        by, metric = self.group_by.value, self.group_metric.value
        if not by or not metric or self._view is None or self._view.empty:
            self.group_view.value = _hint("choose a column to group by and a metric")
            return
        table = core.group_table(self._view, by, metric)
        self.group_view.value = core.group_html(table, by, metric)

    # -- actions ---------------------------------------------------------------------------------

    def config(self, run_id: str | None = None, format: str = "track") -> str:
        """A run's params as a ``%%track`` line (format="track") or a papermill dict."""
        run_id = run_id or (self._selected[0] if self._selected else None)
        if run_id is None:
            return ""
        r = self.cache.record(run_id)
        if r is None:
            return ""
        if format == "papermill":
            return repr(core.papermill_parameters(r.params))
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
                    f"<a href='{html.escape(url, quote=True)}' target='_blank' rel='noopener'>"
                    f"open {html.escape(r.name)} in MLflow</a>"
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
            self.errors.append(e)
            self._say(f"loading stopped: {e}", error=True)
        finally:
            self._loading = False
        try:
            self.update()
        except Exception as e:
            self.errors.append(e)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background load to finish; True when it has."""
        loader = self._loader
        if loader is not None:
            loader.join(timeout)
        return not self._loading

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

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # ipywidgets gives text/plain and the widget view; the HTML is what renderers without a
        # widget manager (nbconvert, GitHub, a notebook opened without its kernel) show.
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = repr(self)
        bundle["text/html"] = self.static_html()
        return bundle


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


def _hint(text: str) -> str:
    return f"<div style='font-size:12px;color:#888;padding:4px'>{html.escape(text)}</div>"


def _dimension(column: str, values) -> dict[str, Any]:
    nums = core.numeric(values)
    if nums is not None:
        return {"label": _esc(column[7:]), "values": nums.to_numpy()}
    text = values.where(values.notna(), "(none)").astype(str)
    levels = sorted(text.unique())
    codes = {v: i for i, v in enumerate(levels)}
    return {
        "label": _esc(column[7:]),
        "values": [codes[v] for v in text],
        "tickvals": list(range(len(levels))),
        "ticktext": [_esc(v[:24]) for v in levels],
    }


def _empty_frame():
    import pandas as pd

    return pd.DataFrame({"name": pd.Series([], dtype=object)}, index=pd.RangeIndex(1, 1, name="#"))


def show(
    experiment: str | Sequence[str] | None = None,
    filter: str | None = None,
    order_by: str | Sequence[str] | None = None,
    max_runs: int | None = None,
    *,
    columns: Sequence[str] | None = None,
    select: Sequence[str | int] | None = None,
    frontend: bool | None = None,
) -> ComparePanel:
    from nbtrack import store
    from nbtrack.widgets.live import has_frontend

    query, names = runtable.query_for(experiment, filter, order_by, max_runs)
    cache = runtable.cache_for(query, names)
    panel = ComparePanel(
        cache,
        experiment_names=list(names.values()),
        order=core.parse_order(order_by),
        columns=columns,
        server_url=store.server_url(),
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


__all__ = ["ComparePanel", "RunsGrid", "show"]
