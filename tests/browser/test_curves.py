"""Learning curves in a real JupyterLab: the live plot under a running tracked cell grows while the
cell runs; ``nbtrack.curves`` overlays runs with their names in the legend; the log toggle
switches the y axes."""

from __future__ import annotations

import json

import mlflow
import nbformat
from playwright.sync_api import expect

PLOT = ".js-plotly-plot"
# Points in the plot's data, per trace, as plotly.js holds them (the drawn line is simplified,
# so its path is not a count of points).
POINTS_JS = "gd => (gd.data || []).map(t => (t.x ? t.x.length : 0))"
LEGEND_JS = "gd => Array.from(gd.querySelectorAll('.legend .legendtext')).map(e => e.textContent)"
YAXIS_JS = """gd => ({
  type: gd._fullLayout.yaxis.type,
  ticks: Array.from(gd.querySelectorAll('.yaxislayer-above .ytick text')).map(e => e.textContent),
})"""


def _setup_cell(store: str) -> str:
    # The lab server does not pass NBTRACK_*/MLFLOW_* on to kernels: the notebook names its store.
    return f"%env NBTRACK_TRACKING_URI={store}\n%load_ext nbtrack\nimport time\nimport nbtrack"


TRAIN_CELL = """\
%%track --experiment live-browser --name grow
for step in range(80):
    time.sleep(0.1)
    nbtrack.log(step=step, train_loss=1 / (step + 1), val_loss=1.2 / (step + 1), val_acc=step / 80)
'done'
"""


def test_live_curves_grow_while_the_cell_runs(lab, store):
    path = lab.write_notebook("live.ipynb", [_setup_cell(store), TRAIN_CELL])
    lab.open_notebook(path)
    lab.run_all(wait=False)

    plot = lab.cell_output(1).locator(PLOT)

    def points() -> list[int]:
        return plot.first.evaluate(POINTS_JS) if plot.count() else []

    first = lab.wait_until(
        lambda: lab.is_running() and sum(points()) >= 6 and sum(points()),
        timeout=60,
        message="the live plot to show points while the cell is still running",
    )
    lab.screenshot("running")
    later = lab.wait_until(
        lambda: lab.is_running() and sum(points()) > first + 30 and sum(points()),
        timeout=30,
        message="more points while the cell is still running",
    )
    assert later > first
    lab.wait_for_run()

    # Finished: every point, train and val in one "loss" subplot, acc in its own.
    assert sorted(points()) == [80, 80, 80]
    subplots = plot.first.evaluate("gd => gd.data.map(t => [t.meta[1], t.xaxis || 'x'])")
    axes = dict(subplots)
    assert axes["train_loss"] == axes["val_loss"] != axes["val_acc"]
    expect(plot.locator(".scatterlayer .trace")).to_have_count(3)
    expect(lab.cell_output(1).locator(".nbtrack-card")).to_contain_text("FINISHED")
    assert not lab.cell_output(1).get_by_text("live curves of run").count()  # no swallowed error

    # The saved notebook carries a static picture beside the widget (nbconvert, GitHub).
    lab.save()
    saved = nbformat.read(lab.workdir / "live.ipynb", as_version=4)
    [out] = [
        o
        for o in saved.cells[1].outputs
        if "text/html" in o.get("data", {})
        and "application/vnd.jupyter.widget-view+json" in o["data"]
    ]
    assert out["data"]["text/html"].count("<polyline") == 3


def _runs(names: list[str]) -> list[str]:
    mlflow.set_experiment("browser-curves")
    ids = []
    for k, name in enumerate(names):
        with mlflow.start_run(run_name=name) as run:
            for step in range(40):
                mlflow.log_metric("loss", (1 + k) / (step + 1), step=step)
        ids.append(run.info.run_id)
    return ids


def _curves_notebook(lab, store: str, ids: list[str]) -> None:
    cells = [
        f"%env NBTRACK_TRACKING_URI={store}\nimport nbtrack",
        f"nbtrack.curves({json.dumps(ids)})",
    ]
    lab.open_notebook(lab.write_notebook("curves.ipynb", cells))
    lab.run_all()


def test_curves_of_three_runs_name_them_in_the_legend(lab, store):
    names = ["baseline", "wide lr", "<b>bold</b> & co"]
    _curves_notebook(lab, store, _runs(names))
    plot = lab.cell_output(1).locator(PLOT)
    expect(plot).to_be_visible()
    expect(plot.locator(".scatterlayer .trace")).to_have_count(3)
    lab.wait_until(lambda: plot.evaluate(LEGEND_JS) == names, message="the legend to name the runs")
    assert plot.evaluate(POINTS_JS) == [40, 40, 40]
    # the controls are there, and no HTML from a run name leaked into the page
    expect(lab.cell_output(1).get_by_role("button", name="log y")).to_be_visible()
    expect(lab.cell_output(1).locator(".widget-slider")).to_contain_text("smoothing")
    assert plot.locator(".legend b").count() == 0


def test_log_toggle_switches_the_y_axis(lab, store):
    _curves_notebook(lab, store, _runs(["a", "b", "c"]))
    plot = lab.cell_output(1).locator(PLOT)
    expect(plot).to_be_visible()
    before = lab.wait_until(
        lambda: plot.evaluate(YAXIS_JS)["ticks"] and plot.evaluate(YAXIS_JS),
        message="y ticks",
    )
    assert before["type"] == "linear"
    lab.screenshot("linear")

    lab.cell_output(1).get_by_role("button", name="log y").click()
    after = lab.wait_until(
        lambda: (
            (y := plot.evaluate(YAXIS_JS))["type"] == "log" and y["ticks"] != before["ticks"] and y
        ),
        message="the y axis to become logarithmic",
    )
    # decades on the axis: the data span 0.025 .. 3
    assert "0.1" in after["ticks"] and "1" in after["ticks"]
    lab.screenshot("log")

    lab.cell_output(1).get_by_role("button", name="log y").click()
    lab.wait_until(
        lambda: plot.evaluate(YAXIS_JS)["type"] == "linear", message="the y axis back to linear"
    )
