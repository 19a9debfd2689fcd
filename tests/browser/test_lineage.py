"""The lineage graph in a real JupyterLab: the nodes are drawn, a click on a training run calls
the notebook's callback (its output shows under the graph) and highlights the node; a hostile
label is text, not markup."""

from __future__ import annotations

from playwright.sync_api import expect

HOSTILE = "<img src=x onerror=alert(1)>"

GRAPH = f"""\
graph = {{
    "focus": "version:digits/1",
    "nodes": [
        {{"id": "dataset:abc123", "kind": "dataset", "label": "digits.npz", "detail":
          {{"digest": "abc123", "source": {HOSTILE!r}}}, "run_id": None}},
        {{"id": "run:r1", "kind": "run", "label": "train-1", "detail": {{}}, "run_id": "r1"}},
        {{"id": "version:digits/1", "kind": "version", "label": "digits v1",
          "detail": {{"aliases": "production"}}, "run_id": "r1"}},
        {{"id": "inference:i1", "kind": "inference", "label": {HOSTILE!r}, "detail": {{}},
          "run_id": "i1"}},
    ],
    "edges": [
        {{"source": "dataset:abc123", "target": "run:r1", "kind": "trained_on"}},
        {{"source": "run:r1", "target": "version:digits/1", "kind": "registered_as"}},
        {{"source": "version:digits/1", "target": "inference:i1", "kind": "served"}},
    ],
}}
"""


def test_the_graph_shows_and_a_click_selects(lab):
    dialogs: list[str] = []
    lab.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    cells = [
        GRAPH,
        "from nbtrack.widgets.lineage import LineageView\n"
        'view = LineageView(graph, on_select=lambda n: print("selected", n["id"]))\nview',
    ]
    lab.open_notebook(lab.write_notebook("lineage.ipynb", cells))
    lab.run_all()
    out = lab.cell_output(1)
    nodes = out.locator(".nbtrack-lineage-view g.nbtrack-lineage-node")
    expect(nodes).to_have_count(4)
    expect(out.locator(".nbtrack-lineage-edge")).to_have_count(3)
    lab.screenshot("drawn")

    run = out.locator('g.nbtrack-lineage-node[data-id="run:r1"]')
    run.click()
    expect(out).to_contain_text("selected run:r1")
    expect(run).to_have_class("nbtrack-lineage-node nbtrack-selected")
    lab.screenshot("selected")

    out.locator('g.nbtrack-lineage-node[data-id="inference:i1"]').click()
    expect(out).to_contain_text("selected inference:i1")
    expect(out).not_to_contain_text("selected run:r1")  # the output shows the latest click

    # The hostile label is drawn as text.
    expect(out.locator('g[data-id="inference:i1"] text')).to_contain_text("<img src=x onerror")
    assert out.locator("img").count() == 0 and not dialogs


def test_nbtrack_lineage_draws_itself_and_a_click_shows_the_run_card(lab, store):
    from modelkit import X, train_run

    import nbtrack

    run_id = train_run("browser-lineage", C=1.0)
    nbtrack.register(run_id, "lineage-model")
    nbtrack.promote("lineage-model", 1)
    nbtrack.predict("lineage-model@production", X[:4])
    nbtrack.predict("lineage-model@production", X[:2])

    cells = [
        # The lab server does not pass NBTRACK_*/MLFLOW_* on to kernels: the notebook names it.
        f"%env NBTRACK_TRACKING_URI={store}\nimport nbtrack",
        'nbtrack.lineage("lineage-model", version=1)',
    ]
    lab.open_notebook(lab.write_notebook("real-lineage.ipynb", cells))
    lab.run_all()
    out = lab.cell_output(1)
    nodes = out.locator(".nbtrack-lineage-view g.nbtrack-lineage-node")
    expect(out.locator('g.nbtrack-lineage-node[data-kind="inference"]')).to_have_count(2)
    expect(out.locator('g.nbtrack-lineage-node[data-kind="version"]')).to_have_count(1)
    lab.screenshot("drawn")

    out.locator(f'g.nbtrack-lineage-node[data-id="run:{run_id}"]').click()
    card = out.locator(".nbtrack-card")
    expect(card).to_contain_text(run_id)
    expect(card).to_contain_text("browser-lineage")
    expect(nodes.locator("xpath=self::*[contains(@class, 'nbtrack-selected')]")).to_have_count(1)
    lab.screenshot("card")
