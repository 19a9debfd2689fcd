"""The comparison panel in a real JupyterLab: a notebook makes 200 runs and opens
``nbtrack.compare``; a person sorts by a metric, filters with an MLflow expression, selects two rows
and reads their diff, and a hostile param value shows as text (no script runs)."""

from __future__ import annotations

import nbformat
from playwright.sync_api import expect

HOSTILE = "<img src=x onerror=alert(1)>"
N = 200
FILTER = "metrics.val_acc > 0.9 and params.optimizer = 'adam'"

MAKE_RUNS = f"""\
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from nbtrack import store

store.configure()
client = MlflowClient()
exp = store.experiment_id("browser-compare")
for i in range({N}):
    run_id = client.create_run(exp, run_name=f"run-{{i:03d}}").info.run_id
    client.log_batch(run_id, params=[
        Param("lr", ["0.1", "0.01", "0.001"][i % 3]),
        Param("optimizer", ["adam", "sgd"][i % 2]),
        Param("batch_size", "64"),
    ], metrics=[Metric("val_acc", (i * 37) % {N} / {N}, 0, 0)])
    client.set_terminated(run_id, "FINISHED")
run_id = client.create_run(exp, run_name="hostile").info.run_id
client.log_batch(run_id, params=[Param("optimizer", {HOSTILE!r}), Param("lr", "0.1"),
                                 Param("batch_size", "64")],
                 metrics=[Metric("val_acc", 0.5, 0, 0)])
client.set_terminated(run_id, "FINISHED")
"""


def _val_acc(i: int) -> float:
    return (i * 37) % N / N


def _notebook(lab, store: str) -> None:
    cells = [
        f"%env NBTRACK_TRACKING_URI={store}\nimport nbtrack",
        MAKE_RUNS,
        'panel = nbtrack.compare("browser-compare")\npanel',
    ]
    lab.open_notebook(lab.write_notebook("compare.ipynb", cells))


def _choose(out, label: str, value: str) -> None:
    out.locator(".widget-dropdown", has_text=label).locator("select").select_option(value)


def test_sort_filter_select_and_diff(lab, store):
    dialogs: list[str] = []
    lab.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    _notebook(lab, store)
    lab.run_all(timeout=180)
    out = lab.cell_output(2)
    status = out.locator(".nbtrack-status")
    expect(status).to_contain_text(f"{N + 1} runs")
    grid = out.locator(".nbtrack-runs-grid")
    expect(grid).to_be_visible()
    lab.screenshot("opened")

    # Sort by a metric in the toolbar; click the top row: it is the best run.
    _choose(out, "sort by", "metrics.val_acc")
    expect(status).to_contain_text("sorted by metrics.val_acc ↓")
    best = max(range(N), key=_val_acc)
    runner_up = sorted(range(N), key=_val_acc)[-2]
    selection = out.locator(".nbtrack-selection")

    def row(k: int) -> dict[str, int]:  # a point inside row k (header 20 px, rows 20 px)
        return {"x": 56 + 40, "y": 20 + 20 * k + 10}

    lab.wait_until(
        lambda: (
            grid.click(position=row(0)),
            f"selected: run-{best:03d}" in selection.inner_text(),
        )[1],
        timeout=30,
        message="a click on the top row to select the best run",
    )

    # Two rows: the diff lists only the params that differ.
    grid.click(position=row(1), modifiers=["Control"])
    expect(selection).to_have_text(f"selected: run-{best:03d}, run-{runner_up:03d}")
    diff = out.locator(".nbtrack-diff")
    expect(diff).to_be_visible()
    params = diff.locator("table.nbtrack-diff-params tr[data-key]")
    expected = [
        key
        for key, of in (("lr", lambda i: i % 3), ("optimizer", lambda i: i % 2))
        if of(best) != of(runner_up)
    ]
    assert expected  # the two best runs differ in some param
    expect(params).to_have_count(len(expected))
    assert [params.nth(i).get_attribute("data-key") for i in range(len(expected))] == expected
    expect(diff.locator("summary", has_text="params identical")).to_be_visible()  # batch_size
    lab.screenshot("diff")

    # An MLflow filter: as many rows as MLflow's semantics give.
    box = out.get_by_placeholder("MLflow filter", exact=False)
    box.fill(FILTER)
    box.press("Enter")
    matching = sum(1 for i in range(N) if _val_acc(i) > 0.9 and i % 2 == 0)
    expect(status).to_contain_text(f"{matching} of {N + 1} runs")
    lab.screenshot("filtered")
    box.fill("")
    box.press("Enter")
    expect(status).to_contain_text(f"{N + 1} runs")

    # Quick search finds the hostile value; its row is selectable and nothing runs.
    search = out.get_by_placeholder("search text")
    search.fill("onerror")
    search.press("Enter")
    expect(status).to_contain_text(f"1 of {N + 1} runs")
    lab.wait_until(
        lambda: (grid.click(position=row(0)), "selected: hostile" in selection.inner_text())[1],
        timeout=30,
        message="a click on the only row to select the hostile run",
    )
    lab.screenshot("hostile")
    assert not dialogs, dialogs


def test_hostile_param_is_shown_as_text(lab, store):
    dialogs: list[str] = []
    lab.page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    cells = [
        f"%env NBTRACK_TRACKING_URI={store}\nimport nbtrack",
        MAKE_RUNS,
        "import mlflow\n"
        "df = nbtrack.runs('browser-compare')\n"
        "hostile = df.loc[df['name'] == 'hostile', 'run_id'].iloc[0]\n"
        "other = df.loc[df['name'] == 'run-000', 'run_id'].iloc[0]\n"
        "panel = nbtrack.compare('browser-compare', select=[hostile, other])\npanel",
        "nbtrack.diff(hostile, other)",
    ]
    lab.open_notebook(lab.write_notebook("hostile.ipynb", cells))
    lab.run_all(timeout=180)
    out = lab.cell_output(2)
    expect(out.locator(".nbtrack-selection")).to_have_text("selected: hostile, run-000")
    diff = out.locator(".nbtrack-diff")
    expect(diff.get_by_text(HOSTILE, exact=True).first).to_be_visible()
    assert diff.locator("img").count() == 0
    # the config of the selected run, as text
    expect(out.locator("textarea")).to_have_value(
        f"%%track --experiment browser-compare -p batch_size=64 -p lr=0.1 -p 'optimizer={HOSTILE}'"
    )
    # nbtrack.diff's own HTML, rendered by JupyterLab
    plain = lab.cell_output(3)
    expect(plain.get_by_text(HOSTILE, exact=True).first).to_be_visible()
    assert plain.locator("img").count() == 0
    diff.scroll_into_view_if_needed()
    lab.screenshot()
    # the saved notebook's static fallback carries the escaped text too
    lab.save()
    saved = nbformat.read(lab.workdir / "hostile.ipynb", as_version=4)
    [bundle] = [o for o in saved.cells[2].outputs if "text/html" in o.get("data", {})]
    page = bundle["data"]["text/html"]
    assert HOSTILE not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert not dialogs, dialogs
