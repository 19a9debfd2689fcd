"""``nbtrack.lineage(...)``'s view: the lineage graph drawn in the browser, its nodes clickable.

A view only: the graph dict (``Lineage.to_dict()``) and what a click does (``on_select``, the
facade's callback that shows a run card or a comparison) are handed in. The layout is computed
once in Python (``nbtrack.query.lineage_svg``) and drawn twice: by the JavaScript in
``lineage.js`` in a live notebook, and as a static SVG (``static_html``) in the output's
``text/html`` for saved notebooks, nbconvert and GitHub.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

from nbtrack.errors import MissingExtra, warn
from nbtrack.query import lineage_svg
from nbtrack.widgets._fallback import StaticFallback

try:
    import anywidget
    import ipywidgets as widgets
    import traitlets
except ImportError as e:  # the widgets extra is optional
    raise MissingExtra("the lineage graph", "widgets") from e

_log = logging.getLogger(__name__)


def static_html(graph: Mapping[str, Any], max_per_column: int = lineage_svg.MAX_PER_COLUMN) -> str:
    """The graph as a self-contained HTML fragment with an inline SVG: no script, no network;
    every text escaped."""
    return lineage_svg.html(graph, max_per_column)


class LineageCanvas(anywidget.AnyWidget):
    """The drawn graph. ``layout`` is what the browser draws; a click on a node sets
    ``selected`` to its id and counts in ``clicks`` (so a second click on the same node is
    heard too)."""

    _esm = resources.files(__package__).joinpath("lineage.js").read_text(encoding="utf-8")
    # The browser draws ``layout`` (each box's label and tooltip included); the graph stays in
    # the kernel, so a large graph crosses to the browser once.
    graph = traitlets.Dict()
    layout = traitlets.Dict().tag(sync=True)
    selected = traitlets.Unicode(None, allow_none=True).tag(sync=True)
    clicks = traitlets.Int(0).tag(sync=True)
    max_per_column = traitlets.Int(lineage_svg.MAX_PER_COLUMN)

    @traitlets.observe("graph", "max_per_column")
    def _laid_out(self, _change: Any) -> None:
        self.layout = lineage_svg.layout(self.graph, self.max_per_column)


class LineageView(StaticFallback, widgets.VBox):
    """The lineage graph and, below it, an output area where ``on_select(node)`` shows what it
    shows (the facade: a run card, a comparison). ``node`` is the graph's node dict."""

    def __init__(
        self,
        graph: Mapping[str, Any],
        on_select: Callable[[dict[str, Any]], Any] | None = None,
        *,
        max_per_column: int = lineage_svg.MAX_PER_COLUMN,
        **kwargs: Any,
    ) -> None:
        self.on_select = on_select
        self.errors: list[BaseException] = []  # what the callback raised (tests look here)
        self.canvas = LineageCanvas(max_per_column=max_per_column)
        self.canvas.graph = dict(graph)
        self.output = widgets.Output()
        self.canvas.observe(self._clicked, names="clicks")
        super().__init__([self.canvas, self.output], **kwargs)
        self.add_class("nbtrack-lineage")

    @property
    def graph(self) -> dict[str, Any]:
        return self.canvas.graph

    @graph.setter
    def graph(self, graph: Mapping[str, Any]) -> None:
        self.canvas.graph = dict(graph)

    @property
    def selected(self) -> str | None:
        return self.canvas.selected

    def node(self, node_id: str | None) -> dict[str, Any] | None:
        """The graph's node ``node_id``, or None."""
        for n in self.graph.get("nodes") or ():
            if str(n.get("id")) == node_id:
                return dict(n)
        return None

    def select(self, node_id: str) -> None:
        """What a click on node ``node_id`` does (the browser calls this through ``clicks``)."""
        self.canvas.selected = node_id
        self._show(self.node(node_id))

    def _clicked(self, _change: Any) -> None:
        self._show(self.node(self.canvas.selected))

    def _show(self, node: dict[str, Any] | None) -> None:
        if node is None or self.on_select is None:
            return
        self.output.clear_output()
        with self.output:
            try:
                self.on_select(node)
            except Exception as e:  # a failing callback must not break the graph
                _log.debug("the lineage view's on_select failed", exc_info=True)
                self.errors.append(e)
                warn(f"lineage: {type(e).__name__}: {e}")

    def static_html(self) -> str:
        return static_html(self.graph, self.canvas.max_per_column)

    def __repr__(self) -> str:
        g = self.graph
        return (
            f"<nbtrack lineage: {len(g.get('nodes') or ())} nodes, "
            f"{len(g.get('edges') or ())} edges>"
        )


def show(
    graph: Mapping[str, Any], on_select: Callable[[dict[str, Any]], Any] | None = None
) -> LineageView:
    """The facade's entry: the view of ``graph`` with ``on_select`` for node clicks."""
    return LineageView(graph, on_select)


__all__ = ["LineageCanvas", "LineageView", "show", "static_html"]
