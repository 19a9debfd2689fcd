"""The lineage graph's picture: a layered layout (one column per kind, left to right: dataset ->
training run -> model version -> inference run -> prediction) and its SVG.

One layout, two renderers: ``svg`` draws it here (the static fallback of saved notebooks and the
compliance report), and the lineage widget's JavaScript draws the same JSON-ready layout in the
browser, so the two pictures cannot drift apart. It lives in ``query`` because both the widgets
and ``lineage.report`` may import ``query`` and neither may import the other.

The graph is ``Lineage.to_dict()``'s shape: ``{"focus", "nodes": [{"id", "kind", "label",
"detail", "run_id"}], "edges": [{"source", "target", "kind"}]}``. Every text that reaches the SVG
goes through ``html_text.escape``; the layout's labels and tooltips already show invisible
controls (bidirectional overrides) as ``\\uXXXX``, for the browser's ``textContent`` too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nbtrack.html_text import escape, visible

COLUMNS = ("dataset", "run", "version", "inference", "prediction")
TITLES = {
    "dataset": "data",
    "run": "training run",
    "version": "model version",
    "inference": "inference run",
    "prediction": "prediction",
}
COLOURS = {  # fill, stroke
    "dataset": ("#e8f1fb", "#4a7fb5"),
    "run": ("#eaf6ea", "#4b9a4b"),
    "version": ("#fff4e0", "#c98a1b"),
    "inference": ("#f3ecfa", "#8259b0"),
    "prediction": ("#f4f4f4", "#777777"),
    "more": ("#ffffff", "#aaaaaa"),
}
MAX_PER_COLUMN = 40  # nodes drawn per column; the rest are one "+N more" box
BOX_W, BOX_H = 180, 34
COL_GAP, ROW_GAP = 70, 12
PAD, HEAD = 10, 28
LABEL_CHARS = 26  # a label longer than this is cut with "…" (the tooltip has it whole)
FONT = "font-family:sans-serif;font-size:11px"


def _column_of(kind: str) -> int:
    # A kind nbtrack does not know yet gets a column of its own after the known ones.
    return COLUMNS.index(kind) if kind in COLUMNS else len(COLUMNS)


def _short(text: str) -> str:
    text = visible(text)
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _title(node: Mapping[str, Any]) -> str:
    lines = [str(node.get("label") or node.get("id") or "")]
    detail = node.get("detail") or {}
    lines += [f"{k}: {v}" for k, v in detail.items()]
    return visible("\n".join(lines))


def _ordered(columns: list[list[dict]], edges: Sequence[Mapping[str, Any]]) -> None:
    """Sort each column by the mean row of its neighbours in the columns before it (fewer
    crossings); the first column keeps the graph's order."""
    row: dict[str, float] = {}
    neighbours: dict[str, list[str]] = {}
    for e in edges:
        neighbours.setdefault(str(e.get("target")), []).append(str(e.get("source")))
        neighbours.setdefault(str(e.get("source")), []).append(str(e.get("target")))
    for column in columns:

        def key(item: tuple[int, dict]) -> tuple[float, int]:
            i, node = item
            placed = [row[n] for n in neighbours.get(node["id"], ()) if n in row]
            return (sum(placed) / len(placed) if placed else float(i), i)

        column[:] = [n for _, n in sorted(enumerate(column), key=key)]
        row.update({n["id"]: float(i) for i, n in enumerate(column)})


def layout(graph: Mapping[str, Any], max_per_column: int = MAX_PER_COLUMN) -> dict[str, Any]:
    """Where each node's box and each edge go: a JSON-ready dict of ``width``, ``height``,
    ``columns`` (kind, title, x, how many nodes), ``boxes`` (id, kind, label, title, x, y, w, h,
    ``hidden``: how many nodes a "+N more" box stands for, else 0) and ``edges`` (source,
    target, kind, x1, y1, x2, y2), edges to nodes left out drawn once to their column's box."""
    focus = graph.get("focus")
    nodes = [dict(n, id=str(n.get("id"))) for n in graph.get("nodes") or ()]
    edges = list(graph.get("edges") or ())
    n_cols = max([_column_of(str(n.get("kind"))) for n in nodes] + [len(COLUMNS) - 1]) + 1
    columns: list[list[dict]] = [[] for _ in range(n_cols)]
    for n in nodes:
        columns[_column_of(str(n.get("kind")))].append(n)
    _ordered(columns, edges)

    shown: dict[str, dict] = {}  # node id -> its box (a left-out node -> its column's box)
    boxes: list[dict] = []
    heads: list[dict] = []
    rows = 0
    place = 0  # an empty column takes no room: a graph without data starts at its runs
    for c, column in enumerate(columns):
        x = PAD + place * (BOX_W + COL_GAP)
        place += bool(column)
        kind = COLUMNS[c] if c < len(COLUMNS) else "other"
        heads.append({"kind": kind, "title": TITLES.get(kind, kind), "x": x, "count": len(column)})
        keep = column
        if len(column) > max_per_column:
            # The focus is always drawn; the others in order up to the cap.
            first = [n for n in column if n["id"] == focus]
            rest = [n for n in column if n["id"] != focus]
            keep = first + rest[: max_per_column - len(first)]
        for r, n in enumerate(keep):
            box = {
                "id": n["id"],
                "kind": str(n.get("kind")),
                "label": _short(str(n.get("label") or n["id"])),
                "title": _title(n),
                "run_id": n.get("run_id"),
                "x": x,
                "y": HEAD + PAD + r * (BOX_H + ROW_GAP),
                "w": BOX_W,
                "h": BOX_H,
                "hidden": 0,
                "focus": n["id"] == focus,
            }
            boxes.append(box)
            shown[n["id"]] = box
        left_out = [n for n in column if n["id"] not in shown]
        if left_out:
            more = {
                "id": f"more:{kind}",
                "kind": "more",
                "label": f"+{len(left_out)} more",
                "title": f"{len(left_out)} more {TITLES.get(kind, kind)} nodes not drawn",
                "run_id": None,
                "x": x,
                "y": HEAD + PAD + len(keep) * (BOX_H + ROW_GAP),
                "w": BOX_W,
                "h": BOX_H,
                "hidden": len(left_out),
                "focus": False,
            }
            boxes.append(more)
            shown.update({n["id"]: more for n in left_out})
        rows = max(rows, len(keep) + bool(left_out))

    lines, seen = [], set()
    for e in edges:
        a, b = shown.get(str(e.get("source"))), shown.get(str(e.get("target")))
        if a is None or b is None or (a["id"], b["id"]) in seen:
            continue  # an edge to a node the graph does not have, or one already drawn
        seen.add((a["id"], b["id"]))
        lines.append(
            {
                "source": a["id"],
                "target": b["id"],
                "kind": str(e.get("kind") or ""),
                "x1": a["x"] + a["w"],
                "y1": a["y"] + a["h"] / 2,
                "x2": b["x"],
                "y2": b["y"] + b["h"] / 2,
            }
        )
    used = [h for h in heads if h["count"]] or heads[:1]
    last = max(h["x"] for h in used)
    return {
        "focus": focus,
        "width": last + BOX_W + PAD,
        "height": HEAD + 2 * PAD + max(rows, 1) * (BOX_H + ROW_GAP),
        "columns": heads,
        "boxes": boxes,
        "edges": lines,
    }


def edge_path(e: Mapping[str, Any]) -> str:
    """The SVG path of an edge: a curve leaving the source's right side, entering the target's
    left side (the widget's JavaScript draws the same curve)."""
    mid = (e["x1"] + e["x2"]) / 2
    return f"M{e['x1']},{e['y1']} C{mid},{e['y1']} {mid},{e['y2']} {e['x2']},{e['y2']}"


def svg(laid: Mapping[str, Any], selected: str | None = None) -> str:
    """The layout as one inline ``<svg>`` element: no script, no external resource."""
    e = escape
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='nbtrack-lineage-svg' "
        f"width='{laid['width']}' height='{laid['height']}' style='{FONT}'>"
    ]
    for h in laid["columns"]:
        if h["count"]:
            parts.append(
                f"<text x='{h['x']}' y='{HEAD - 10}' fill='#555' font-weight='bold'>"
                f"{e(h['title'])} ({h['count']})</text>"
            )
    for edge in laid["edges"]:
        parts.append(
            f"<path class='nbtrack-lineage-edge' d='{edge_path(edge)}' fill='none' "
            f"stroke='#999' stroke-width='1.2'><title>{e(edge['kind'])}</title></path>"
        )
    for b in laid["boxes"]:
        fill, stroke = COLOURS.get(b["kind"], COLOURS["more"])
        width = 2.5 if b["focus"] or b["id"] == selected else 1
        parts.append(
            f"<g class='nbtrack-lineage-node' data-id='{e(b['id'])}' data-kind='{e(b['kind'])}'>"
            f"<title>{e(b['title'])}</title>"
            f"<rect x='{b['x']}' y='{b['y']}' width='{b['w']}' height='{b['h']}' rx='5' "
            f"fill='{fill}' stroke='{stroke}' stroke-width='{width}'/>"
            f"<text x='{b['x'] + 8}' y='{b['y'] + b['h'] / 2 + 4}'>{e(b['label'])}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def html(graph: Mapping[str, Any], max_per_column: int = MAX_PER_COLUMN) -> str:
    """The graph as a self-contained HTML fragment: the SVG in a scrolling box and one line
    saying what it shows (the widget's fallback in saved notebooks, the report's picture)."""
    nodes, edges = len(graph.get("nodes") or ()), len(graph.get("edges") or ())
    if not nodes:
        return f"<div class='nbtrack-lineage' style='{FONT};color:#666'>nbtrack: no lineage</div>"
    laid = layout(graph, max_per_column)
    note = f"{nodes} nodes, {edges} edges"
    if graph.get("focus"):
        note += f" · focus {graph['focus']}"
    return (
        f"<div class='nbtrack-lineage' style='{FONT};margin:4px 0'>"
        f"<div style='overflow:auto;max-height:640px'>{svg(laid)}</div>"
        f"<div style='color:#888'>nbtrack lineage · {escape(note)} · static picture</div></div>"
    )


__all__ = ["COLUMNS", "MAX_PER_COLUMN", "edge_path", "html", "layout", "svg"]
