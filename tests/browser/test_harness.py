"""Smoke tests of the browser harness: ipywidgets and plotly's FigureWidget render and react."""

from __future__ import annotations

import nbformat
from playwright.sync_api import expect

WIDGETS_CELL = """\
import ipywidgets as widgets

slider = widgets.IntSlider(value=7, min=0, max=10, description="Epochs")
text = widgets.Text(value="", placeholder="run name", description="Name")
button = widgets.Button(description="Go")
label = widgets.Label(value="not clicked")
clicks = []

def on_click(_):
    clicks.append(1)
    label.value = f"clicked {len(clicks)}: slider={slider.value} name={text.value}"

button.on_click(on_click)
widgets.VBox([slider, text, button, label])
"""

PLOT_CELL = """\
import plotly.graph_objects as go

fig = go.FigureWidget(layout=dict(title="loss", width=700, height=380))
for k, name in enumerate(["train", "val", "test"]):
    fig.add_scatter(x=[0, 1, 2], y=[3 - k, 2 - k / 2, 1.5 - k / 3], mode="lines+markers", name=name)
fig
"""

GROW_CELL = """\
with fig.batch_update():
    for trace in fig.data:
        trace.x = list(trace.x) + [3, 4]
        trace.y = list(trace.y) + [1.0, 0.8]
"""

# The cell adds a point, then waits for the test to say it saw the plot grow (a file), so a busy
# machine cannot finish the cell before the browser drew the first update.
LIVE_CELL = """\
import os
import time

for step in range(5, 10):
    for trace in fig.data:
        trace.x = list(trace.x) + [step]
        trace.y = list(trace.y) + [0.5]
    while step == 5 and not os.path.exists("seen-growing"):
        time.sleep(0.05)
"""


def test_ipywidgets_slider_text_button_label(lab):
    path = lab.write_notebook(
        "widgets.ipynb", [nbformat.v4.new_markdown_cell("# Widgets"), WIDGETS_CELL]
    )
    lab.open_notebook(path)
    lab.run_all()
    assert lab.execution_count(1) == 1

    out = lab.cell_output(1)
    slider = out.locator(".widget-slider")
    expect(slider).to_be_visible()
    expect(slider.locator(".widget-readout")).to_have_text("7")
    expect(slider).to_contain_text("Epochs")
    label = out.locator(".widget-label", has_text="clicked")
    expect(label).to_have_text("not clicked")

    # A person types a name, nudges the slider with the keyboard and clicks the button; the kernel's
    # callback changes the label.
    out.get_by_placeholder("run name").fill("baseline")
    out.locator(".widget-slider .noUi-handle").focus()
    lab.page.keyboard.press("ArrowRight")
    expect(slider.locator(".widget-readout")).to_have_text("8")
    out.get_by_role("button", name="Go").click()
    expect(label).to_have_text("clicked 1: slider=8 name=baseline")
    out.get_by_role("button", name="Go").click()
    expect(label).to_have_text("clicked 2: slider=8 name=baseline")


def test_plotly_figurewidget_renders_and_updates(lab):
    path = lab.write_notebook("plot.ipynb", [PLOT_CELL, GROW_CELL, LIVE_CELL])
    lab.open_notebook(path)
    lab.run_cell(0)

    plot = lab.cell_output(0).locator(".js-plotly-plot")
    expect(plot).to_be_visible()
    traces = plot.locator(".scatterlayer .trace")
    points = plot.locator(".scatterlayer .trace .points path.point")
    expect(traces).to_have_count(3)
    expect(plot.locator(".legend .traces")).to_have_count(3)
    expect(plot.locator(".legend .legendtext")).to_have_text(["train", "val", "test"])
    expect(points).to_have_count(9)
    line_before = traces.first.locator("path.js-line").get_attribute("d")

    # A later cell adds points: the plot in the first cell's output follows.
    lab.run_cell(1)
    expect(points).to_have_count(15)
    assert traces.first.locator("path.js-line").get_attribute("d") != line_before

    # A running cell updates the figure as it goes: the plot grows while the cell is still "[*]".
    lab.run_cell(2, wait=False)
    lab.wait_until(
        lambda: lab.is_running() and points.count() > 15,
        timeout=120,
        message="the plot to grow while the cell is still running",
    )
    (lab.workdir / "seen-growing").touch()
    lab.wait_for_run()
    expect(points).to_have_count(30)
