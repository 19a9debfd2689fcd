"""The comparison panel's tabs: the selection's diff, its learning curves, parallel
coordinates and a scatter of the runs shown, and group-by with a metric's mean/min/max."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from nbtrack.query import compare as core
from nbtrack.widgets._html import hint as _hint
from nbtrack.widgets._html import plotly_text as _esc
from nbtrack.widgets.compare.table import MAX_DIFF, _set_options

MAX_AXES = 10  # params on the parallel-coordinates plot
GROUP_BY = ("data_hash", "git_commit", "user", "notebook", "status")
TABS = ("diff", "curves", "parallel coordinates", "scatter", "group by")


class PlotsMixin:
    """The tabs part of ``ComparePanel``; the table's state (``_view``, ``_selected``) is read."""

    def _build_plots(self) -> None:
        self._stale = set(TABS)
        self._plots_chosen = False  # the plots' metric follows the first sort, once
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

    def _tabs_stale(self) -> None:
        """The rows or the selection changed: every tab is redrawn when next shown."""
        self._stale = set(TABS)

    def _wire_plots(self, g) -> None:
        self.tabs.observe(g(lambda _: self._draw_tab()), names="selected_index")
        for w in (self.parallel_metric, self.scatter_x, self.scatter_y):
            w.observe(g(lambda _: self._redraw_plots()), names="value")
        for w in (self.group_by, self.group_metric):
            w.observe(g(lambda _: self._draw_groups()), names="value")

    def _sync_plot_controls(self, columns: list[str]) -> None:
        metrics = [c for c in columns if c.startswith("metrics.")]
        params = [c for c in columns if c.startswith("params.")]
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
