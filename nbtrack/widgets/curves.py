"""``nbtrack.curves(...)``: learning curves of any runs, as a plotly widget with a smoothing
slider and a log-scale toggle; its output also carries the static picture (``text/html``), which
nbconvert, GitHub and a notebook opened without its kernel show instead of the widget.

The figure code here is shared with the live view (``nbtrack.widgets.live``): one subplot per
metric family, series told apart as ``nbtrack.query.styles`` says.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from nbtrack.errors import MissingExtra, warn
from nbtrack.query.curves import Curves, Series
from nbtrack.query.sampling import ema
from nbtrack.query.styles import Style, styles
from nbtrack.widgets import static
from nbtrack.widgets._fallback import StaticFallback
from nbtrack.widgets._html import plotly_text as _esc

try:
    import ipywidgets as widgets
    import plotly.graph_objects as go
except ImportError as e:  # the widgets extra is optional
    raise MissingExtra("learning curves", "widgets") from e

ROW_PX = 270
_log = logging.getLogger(__name__)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


# -- the figure ---------------------------------------------------------------------------------


def _axis(i: int) -> str:
    return "" if i == 0 else str(i + 1)


def layout_for(data: Curves, log_y: bool = False) -> dict[str, Any]:
    """A grid of subplots, one per family (two columns from two families on)."""
    families = data.families() or ["metrics"]
    n = len(families)
    cols = 1 if n == 1 else 2
    rows = math.ceil(n / cols)
    height = 70 + rows * ROW_PX
    hgap, vgap = 0.08, 70 / (height - 70)
    w = (1 - (cols - 1) * hgap) / cols
    h = (1 - (rows - 1) * vgap) / rows
    layout: dict[str, Any] = {
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 30, "b": 40},
        "hovermode": "closest",
        "template": "plotly_white",
        "legend": {"font": {"size": 11}},
        "annotations": [],
        "meta": {"families": families, "log_y": log_y, "x": data.x},
    }
    for i, family in enumerate(families):
        r, c = divmod(i, cols)
        x0 = c * (w + hgap)
        top = 1 - r * (h + vgap)
        a = _axis(i)
        layout[f"xaxis{a}"] = {
            "domain": [x0, x0 + w],
            "anchor": f"y{a}",
            "visible": True,
            "title": {"text": data.x_label, "font": {"size": 11}},
            "type": "date" if data.x == "timestamp" else "linear",
        }
        layout[f"yaxis{a}"] = {
            "domain": [max(0.0, top - h), top],
            "anchor": f"x{a}",
            "visible": True,
            "type": "log" if log_y else "linear",
        }
        layout["annotations"].append(
            {
                "text": f"<b>{_esc(family)}</b>",
                "x": x0 + w / 2,
                "y": top,
                "xref": "paper",
                "yref": "paper",
                "xanchor": "center",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 13},
            }
        )
    return layout


def _x(series: Series, axis: str) -> Any:
    if axis == "timestamp":  # epoch ms -> ISO strings, which plotly reads as dates (UTC)
        return np.datetime_as_string(series.x.astype("datetime64[ms]"), unit="ms")
    return series.x


def trace_for(
    series: Series, style: Style, name: str, axis_index: int, x: str, smoothing: float
) -> dict[str, Any]:
    a = _axis(axis_index)
    y = ema(series.y, smoothing) if smoothing else series.y
    value = "%{y:.5g}" + (" (raw %{customdata:.5g})" if smoothing else "")
    return {
        "type": "scatter",
        "mode": "lines" if len(series.x) > 1 else "markers",
        "x": _x(series, x),
        "y": y,
        "customdata": series.y if smoothing else None,
        "name": _esc(style.legend),
        "legendgroup": style.group,
        "showlegend": style.first,
        "line": {"color": style.colour, "dash": style.dash, "width": 1.8},
        "marker": {"color": style.colour},
        "xaxis": f"x{a}",
        "yaxis": f"y{a}",
        # Names travel in meta, not in the template: a name holding "%{y}" stays a name. The
        # last item says which series this is (plotly's FigureWidget rewrites uid).
        "meta": [_esc(name), _esc(series.key), X_HOVER[x], ident(series)],
        "hovertemplate": "<b>%{meta[0]}</b><br>%{meta[1]}<br>%{meta[2]} %{x}<br>"
        + value
        + "<extra></extra>",
    }


X_HOVER = {"step": "step", "time": "t (s)", "timestamp": "at"}


def ident(series: Series) -> str:
    return f"{series.run.run_id}:{series.key}"


def _ident(trace: Any) -> str | None:
    meta = trace.meta
    return meta[-1] if isinstance(meta, (list, tuple)) and meta else None


def traces_for(data: Curves, smoothing: float = 0.0) -> list[dict[str, Any]]:
    index = {f: i for i, f in enumerate(data.families())}
    names = data.names()
    return [
        trace_for(s, st, names[s.run.run_id], index[s.family], data.x, smoothing)
        for s, st in zip(data.series, styles(data), strict=True)
    ]


def figure_for(data: Curves, smoothing: float = 0.0, log_y: bool = False) -> go.Figure:
    """A plain plotly Figure of the curves (no widget: for scripts, reports, the benchmark)."""
    return go.Figure(data=traces_for(data, smoothing), layout=layout_for(data, log_y))


def sync(fig: go.FigureWidget, data: Curves, smoothing: float = 0.0, log_y: bool = False) -> None:
    """Bring a figure (widget) in line with ``data``: new traces are added, existing ones (same
    run and key) get their new points, the grid changes only when the families do. One message
    per change to the browser, not one per trace."""
    layout = layout_for(data, log_y)
    wanted = traces_for(data, smoothing)
    current = {_ident(t): t for t in fig.data}
    new = [t for t in wanted if t["meta"][-1] not in current]
    with fig.batch_update():
        meta = fig.layout.meta
        if meta != layout["meta"]:
            # Replaced, not merged: update_layout would keep the old annotations and axes.
            fig.layout = layout
        for t in wanted:
            trace = current.get(t["meta"][-1])
            if trace is not None:
                trace.update({k: v for k, v in t.items() if k != "type"})
    if new:
        fig.add_traces(new)


# -- the widget ---------------------------------------------------------------------------------


class CurvesView(StaticFallback, widgets.VBox):
    """Curves of several runs: the figure, a smoothing slider and a log-scale toggle."""

    def __init__(self, data: Curves, smoothing: float = 0.0, log_y: bool = False, **kwargs):
        self.data = data
        self.errors: list[BaseException] = []  # what the callbacks swallowed (tests look here)
        self.figure = go.FigureWidget()
        sync(self.figure, data, smoothing, log_y)
        self.smoothing = widgets.FloatSlider(
            value=smoothing,
            min=0.0,
            max=0.99,
            step=0.01,
            description="smoothing",
            continuous_update=False,
            readout_format=".2f",
        )
        self.log_y = widgets.ToggleButton(
            value=log_y, description="log y", tooltip="logarithmic y axes", icon="chart-line"
        )
        self.smoothing.observe(self._guard(self._redraw), names="value")
        self.log_y.observe(self._guard(self._redraw), names="value")
        controls = widgets.HBox([self.smoothing, self.log_y])
        super().__init__([controls, self.figure], **kwargs)
        self.add_class("nbtrack-curves")

    def _guard(self, fn: Callable[..., None]) -> Callable[..., None]:
        def guarded(*args: Any) -> None:
            try:
                fn(*args)
            except Exception as e:  # a control that fails must not flood the notebook
                _log.debug("a learning curves control failed", exc_info=True)
                self.errors.append(e)
                warn(f"learning curves: {type(e).__name__}: {e}")

        return guarded

    def _redraw(self, _change: Any = None) -> None:
        sync(self.figure, self.data, self.smoothing.value, self.log_y.value)

    def static_html(self) -> str:
        return static.render(self.data, smoothing=self.smoothing.value, log_y=self.log_y.value)

    def __repr__(self) -> str:
        runs, keys = len(self.data.runs()), len({s.key for s in self.data.series})
        return f"<nbtrack curves: {runs} runs, {keys} metrics, x={self.data.x}>"


def show(
    runs: Any,
    metrics: str | list[str] | None = None,
    x: str = "step",
    filter: str | None = None,
    smoothing: float = 0.0,
    log_y: bool = False,
) -> CurvesView:
    from nbtrack.query import curves as curvedata

    return CurvesView(curvedata.load(runs, metrics, x, filter), smoothing=smoothing, log_y=log_y)


__all__ = ["CurvesView", "figure_for", "layout_for", "show", "sync", "traces_for"]
