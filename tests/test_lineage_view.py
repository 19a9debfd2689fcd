"""The lineage graph's view: the layout (columns in kind order, the "+N more" cap, edges to
what is drawn), the static SVG (every text escaped, bidirectional controls visible), and the
widget's Python side (a selection calls on_select with the node, its output in the view)."""

from __future__ import annotations

import re

import pytest

from nbtrack.query import lineage_svg
from nbtrack.widgets.lineage import LineageView, static_html

HOSTILE = "<script>alert(1)</script>"
RLO = "gpj\u202eexe.doc"


def graph(predictions: int = 2) -> dict:
    nodes = [
        {"id": "prediction:p0", "kind": "prediction", "label": "p0", "detail": {}, "run_id": None},
        {
            "id": "inference:i1",
            "kind": "inference",
            "label": "inference-1",
            "detail": {},
            "run_id": "i1",
        },
        {
            "id": "version:m/1",
            "kind": "version",
            "label": "m v1",
            "detail": {"aliases": "production since 2026-01-01"},
            "run_id": "r1",
        },
        {"id": "run:r1", "kind": "run", "label": HOSTILE, "detail": {"note": RLO}, "run_id": "r1"},
        {
            "id": "dataset:d1",
            "kind": "dataset",
            "label": RLO,
            "detail": {"source": "<img src=x onerror=alert(1)>"},
            "run_id": None,
        },
    ]
    nodes += [
        {
            "id": f"prediction:p{i}",
            "kind": "prediction",
            "label": f"p{i}",
            "detail": {},
            "run_id": None,
        }
        for i in range(1, predictions)
    ]
    edges = [
        {"source": "dataset:d1", "target": "run:r1", "kind": "trained_on"},
        {"source": "run:r1", "target": "version:m/1", "kind": "registered_as"},
        {"source": "version:m/1", "target": "inference:i1", "kind": "served"},
    ]
    edges += [
        {"source": "inference:i1", "target": f"prediction:p{i}", "kind": "predicted"}
        for i in range(predictions)
    ]
    return {"focus": "run:r1", "nodes": nodes, "edges": edges}


def test_the_kinds_are_columns_left_to_right():
    laid = lineage_svg.layout(graph())
    x = {b["id"]: b["x"] for b in laid["boxes"]}
    order = ["dataset:d1", "run:r1", "version:m/1", "inference:i1", "prediction:p0"]
    assert [x[i] for i in order] == sorted(x[i] for i in order)
    assert len({x[i] for i in order}) == 5
    assert x["prediction:p0"] == x["prediction:p1"]
    # Every edge leaves its source's right side and enters its target's left side.
    for e in laid["edges"]:
        assert e["x1"] < e["x2"]
    assert [h["kind"] for h in laid["columns"]] == list(lineage_svg.COLUMNS)


def test_a_long_column_is_capped_with_a_more_box():
    laid = lineage_svg.layout(graph(predictions=300), max_per_column=10)
    preds = [b for b in laid["boxes"] if b["kind"] == "prediction"]
    assert len(preds) == 10
    more = [b for b in laid["boxes"] if b["kind"] == "more"]
    assert [(m["label"], m["hidden"]) for m in more] == [("+290 more", 290)]
    # The 290 edges to predictions not drawn are one edge to the box.
    assert sum(e["target"] == more[0]["id"] for e in laid["edges"]) == 1
    assert len(laid["edges"]) == 3 + 10 + 1
    page = static_html(graph(predictions=300), max_per_column=10)
    assert page.count("class='nbtrack-lineage-node'") == 5 - 1 + 10 + 1
    assert "+290 more" in page
    # A few hundred nodes stay a picture of bounded height.
    assert laid["height"] < 12 * (lineage_svg.BOX_H + lineage_svg.ROW_GAP) + 100


def test_the_focus_is_drawn_even_beyond_the_cap():
    g = graph(predictions=50)
    g["focus"] = "prediction:p42"
    laid = lineage_svg.layout(g, max_per_column=5)
    ids = {b["id"] for b in laid["boxes"]}
    assert "prediction:p42" in ids
    assert next(b for b in laid["boxes"] if b["id"] == "prediction:p42")["focus"]


def test_every_text_is_escaped_and_controls_are_visible():
    page = static_html(graph())
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # in the dataset's tooltip
    assert "\u202e" not in page and "gpj\\u202eexe.doc" in page
    # Only the markup nbtrack writes: svg, g, rect, text, title, path, div.
    assert set(re.findall(r"<(\w+)", page)) <= {"div", "svg", "g", "rect", "text", "title", "path"}
    # The layout the browser draws with textContent has the controls visible too.
    laid = lineage_svg.layout(graph())
    texts = [b["label"] for b in laid["boxes"]] + [b["title"] for b in laid["boxes"]]
    assert not any("\u202e" in t for t in texts)


def test_an_empty_column_takes_no_room():
    g = graph()
    g["nodes"] = [n for n in g["nodes"] if n["kind"] != "dataset"]
    laid = lineage_svg.layout(g)
    assert next(b for b in laid["boxes"] if b["id"] == "run:r1")["x"] == lineage_svg.PAD


def test_an_edge_to_an_unknown_node_and_an_unknown_kind_do_not_break_it():
    g = graph()
    g["nodes"].append({"id": "model:x", "kind": "logged_model", "label": "x", "detail": {}})
    g["edges"].append({"source": "run:r1", "target": "nowhere", "kind": "trained_on"})
    laid = lineage_svg.layout(g)
    x = {b["id"]: b["x"] for b in laid["boxes"]}
    assert x["model:x"] > x["prediction:p0"]
    assert all(e["target"] != "nowhere" for e in laid["edges"])
    assert "no lineage" in static_html({"focus": None, "nodes": [], "edges": []})


def test_a_selection_calls_on_select_with_the_node():
    picked = []
    view = LineageView(graph(), on_select=picked.append)
    assert view.canvas.layout["boxes"]  # what the browser draws is synced
    view.canvas.selected = "inference:i1"
    view.canvas.clicks += 1  # what a click in the browser does
    assert [n["id"] for n in picked] == ["inference:i1"]
    view.canvas.clicks += 1  # the same node again is heard again
    assert len(picked) == 2
    bundle = view._repr_mimebundle_()
    assert "nbtrack-lineage-svg" in bundle["text/html"]
    assert bundle["text/plain"] == "<nbtrack lineage: 6 nodes, 5 edges>"


def test_a_failing_callback_is_kept_not_raised():
    def boom(node):
        raise RuntimeError("no card")

    view = LineageView(graph(), on_select=boom)
    with pytest.warns(Warning):
        view.select("run:r1")
    assert isinstance(view.errors[0], RuntimeError)
