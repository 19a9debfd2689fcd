"""Run comparison: the runs table, its cache and incremental refresh, MLflow's filter syntax on
cached runs (checked against MLflow itself), diffs, groups and configs, against a real store; and
the panel in-process (no browser: see tests/browser/test_compare.py)."""

from __future__ import annotations

import html
import os
import sys
import time

import mlflow
import pytest
from mlflow import MlflowClient

import nbtrack
from nbtrack import store
from nbtrack.errors import MissingExtra, NotFound, UsageError
from nbtrack.query import cache as runcache
from nbtrack.query import compare as comparedata
from nbtrack.query import filters
from nbtrack.query import table as runtable

HOSTILE = "<img src=x onerror=alert(1)>"
CELL_A = "lr = 0.01\nfor epoch in range(3):\n    train(lr)\n"
CELL_B = "lr = 0.1\nfor epoch in range(3):\n    train(lr, warmup=True)\n"
REQS_A = "numpy==1.26.4\npandas==2.2.0\ntorch==2.1.0\n"
REQS_B = "numpy==2.0.0\npandas==2.2.0\nscipy==1.13.0\n"


def _plain(
    name: str,
    params: dict | None = None,
    metrics: dict | None = None,
    *,
    experiment: str = "cmp",
    tags: dict | None = None,
    files: dict | None = None,
    status: str | None = "FINISHED",
    start_time: int | None = None,
) -> str:
    """A run made with plain MLflow, carrying whatever part of nbtrack's record is given."""
    exp_id = store.experiment_id(experiment)  # artifacts beside the test's database
    client = MlflowClient()
    run = client.create_run(exp_id, run_name=name, tags=tags or {}, start_time=start_time)
    run_id = run.info.run_id
    for k, v in (params or {}).items():
        client.log_param(run_id, k, v)
    for k, v in (metrics or {}).items():
        client.log_metric(run_id, k, v)
    for path, text in (files or {}).items():
        client.log_text(run_id, text, path)
    if status is not None:
        client.set_terminated(run_id, status)
    return run_id


@pytest.fixture
def sweep(store) -> dict[str, str]:
    """Six finished runs of experiment "cmp": lr x optimizer, val_acc, two data versions."""
    ids = {}
    for i, (lr, opt) in enumerate(
        [("0.1", "sgd"), ("0.01", "adam"), ("0.001", "adam"), ("0.03", "sgd"), ("1e-4", "adam")]
    ):
        ids[f"r{i}"] = _plain(
            f"r{i}",
            {"lr": lr, "optimizer": opt, "data_hash": ("a" if i < 3 else "b") * 64},
            {"val_acc": 0.5 + i / 10, "val_loss": 1 - i / 10},
            tags={"team": "vision" if i % 2 else "Vision", "mlflow.user": f"user{i % 2}"},
        )
    ids["bare"] = _plain("bare", {"lr": "0.5"}, {})
    return ids


# -- the table ---------------------------------------------------------------------------------


def test_runs_table_has_a_row_per_run_with_params_and_last_metrics(store):
    with nbtrack.run(experiment="cmp", name="tracked", seed=3, params={"lr": 0.01}):
        nbtrack.log(step=0, val_acc=0.5)
        nbtrack.log(step=1, val_acc=0.75)
    _plain(
        "plain",
        {"lr": "0.1", "git_commit": "c0ffee" * 6, "data_hash": "d" * 64},
        {"val_acc": 0.6},
        tags={"mlflow.source.git.commit": "c0ffee" * 6, "nbtrack.git.dirty": "true"},
    )
    df = nbtrack.runs("cmp", order_by="metrics.val_acc DESC")
    assert list(df["name"]) == ["tracked", "plain"]
    assert list(df.columns[:9]) == [
        "run_id",
        "name",
        "status",
        "start_time",
        "duration",
        "user",
        "notebook",
        "git_commit",
        "data_hash",
    ]
    tracked, plain = df.iloc[0], df.iloc[1]
    assert tracked["metrics.val_acc"] == 0.75  # the last value, not the best or the first
    assert tracked["params.lr"] == "0.01" and tracked["params.random_seed"] == "3"
    assert tracked["status"] == "FINISHED" and tracked["duration"] >= 0
    # nbtrack.run() records the script: here pytest's entry point (`pytest` or `python -m pytest`)
    assert tracked["notebook"] == os.path.basename(sys.modules["__main__"].__file__)
    assert plain["git_commit"] == "c0ffeec*" and plain["data_hash"] == "d" * 10
    assert df["start_time"].dt.tz is not None
    # the columns mlflow.search_runs users know
    assert {"params.lr", "metrics.val_acc"} <= set(mlflow.search_runs(experiment_names=["cmp"]))


def test_sorting_reads_numeric_params_as_numbers_and_puts_missing_last(sweep):
    df = nbtrack.runs("cmp", order_by="params.lr")
    assert list(df["params.lr"]) == ["1e-4", "0.001", "0.01", "0.03", "0.1", "0.5"]
    df = nbtrack.runs("cmp", order_by=["metrics.val_acc DESC"])
    assert list(df["name"][:2]) == ["r4", "r3"] and df["name"].iloc[-1] == "bare"
    df = nbtrack.runs("cmp", order_by="metrics.val_acc ASC")
    assert df["name"].iloc[0] == "r0" and df["name"].iloc[-1] == "bare"  # missing last both ways
    df = nbtrack.runs("cmp", order_by=["params.optimizer", "attributes.run_name DESC"])
    assert list(df["name"]) == ["r4", "r2", "r1", "r3", "r0", "bare"]
    with pytest.raises(UsageError, match="no such column"):
        nbtrack.runs("cmp", order_by="metrics.nope")


def test_unknown_experiment_and_bad_filter_are_one_sentence(store):
    with pytest.raises(NotFound, match="no experiment 'nope'"):
        nbtrack.runs("nope")
    _plain("a", {"lr": "1"})
    with pytest.raises(UsageError, match="MLflow cannot read"):
        nbtrack.runs("cmp", filter="metrics.val_acc >>> 3")


def test_max_runs_keeps_the_newest(sweep):
    df = nbtrack.runs("cmp", max_runs=2)
    assert sorted(df["name"]) == ["bare", "r4"]
    df = nbtrack.runs("cmp", max_runs=2, order_by="metrics.val_acc DESC")
    assert list(df["name"]) == ["r4", "r3"]


# -- MLflow's filter syntax, locally -----------------------------------------------------------

PARITY = [
    "metrics.val_acc > 0.7",
    "metrics.val_acc >= 0.7 and metrics.val_loss < 0.45",
    "metrics.val_acc != 0.5",
    "metrics.`val_acc` <= 0.6",
    "params.optimizer = 'adam'",
    'params.optimizer = "adam"',
    "params.optimizer != 'adam'",
    "params.lr LIKE '0.0%'",
    "params.lr LIKE '%1'",
    "params.lr LIKE '0.0_'",
    "params.optimizer LIKE 'ADAM'",
    "params.optimizer ILIKE 'ADAM'",
    "param.optimizer = 'sgd' AND metrics.val_acc > 0.55",
    "tags.team = 'vision'",
    "tags.team ILIKE 'vision'",
    "tags.`mlflow.user` = 'user1'",
    "tags.team IS NULL",
    "tags.team IS NOT NULL",
    "params.optimizer IS NULL",
    "attributes.status = 'FINISHED'",
    "status != 'FINISHED'",
    "attributes.run_name = 'r2'",
    "run_name LIKE 'r%'",
    "attributes.start_time > 0",
    "attributes.end_time >= 0 and metrics.val_acc < 0.8",
    "attributes.user_id = 'nobody'",
    "attr.run_name ILIKE 'R1'",
]


@pytest.mark.parametrize("expression", PARITY)
def test_local_filter_matches_mlflow(sweep, expression):
    query, names = runtable.query_for("cmp")
    cache = runcache.RunCache(query, names).load()
    filters.parse_filter(expression)  # it is evaluated locally, not sent to MLflow
    local = filters.matching(cache, expression)
    remote = set(mlflow.search_runs(experiment_names=["cmp"], filter_string=expression)["run_id"])
    assert local == remote, expression


def test_run_id_lists_and_unsupported_expressions(sweep):
    query, names = runtable.query_for("cmp")
    cache = runcache.RunCache(query, names).load()
    ids = f"('{sweep['r1']}', '{sweep['r2']}')"
    assert filters.matching(cache, f"attributes.run_id IN {ids}") == {sweep["r1"], sweep["r2"]}
    assert len(filters.matching(cache, f"attributes.run_id NOT IN {ids}")) == 4
    # Not evaluated here (artifact_uri, datasets): MLflow answers, on the cached runs.
    with pytest.raises(filters.NotLocal):
        filters.parse_filter("attributes.artifact_uri LIKE '%'")
    assert filters.matching(cache, "attributes.artifact_uri LIKE '%mlruns%'") == set(sweep.values())
    assert filters.matching(cache, "datasets.name = 'x'") == set()
    assert filters.matching(cache, "  ") is None
    with pytest.raises(UsageError, match="MLflow cannot read"):
        filters.matching(cache, "params.lr = 0.1")  # params compare with strings, MLflow says


# -- caching and incremental refresh -----------------------------------------------------------


def test_refresh_fetches_new_and_running_runs_only(store):
    # started before a refresh's window: as far as a refresh knows, long finished
    old = int(time.time() * 1000) - 2 * runcache.WINDOW_MS
    done = _plain("done", {"lr": "1"}, {"acc": 0.1}, start_time=old)
    running = _plain("running", {"lr": "2"}, {"acc": 0.2}, status=None)
    doomed = _plain("doomed", {"lr": "3"}, status=None)
    query, names = runtable.query_for("cmp")
    cache = runcache.cache_for(query, names)
    cache.load()
    assert len(cache) == 3 and cache.last["kind"] == "full"
    version = cache.version

    assert cache.refresh() == 0 and cache.version == version  # nothing changed: same table
    assert cache.last["kind"] == "incremental"
    frame = cache.frame()
    assert cache.frame() is frame  # not rebuilt

    client = MlflowClient()
    client.log_metric(running, "acc", 0.9)
    client.set_terminated(running, "FINISHED")
    client.delete_run(doomed)
    new = _plain("new", {"lr": "4"}, {"acc": 0.4})
    assert cache.refresh() == 3  # running finished, doomed gone, new arrived
    df = cache.frame().set_index("name")
    assert sorted(df.index) == ["done", "new", "running"]
    assert df.loc["running", "status"] == "FINISHED" and df.loc["running", "metrics.acc"] == 0.9
    assert df.loc["new", "run_id"] == new

    # The documented limit: a change to a run that had finished is not seen incrementally...
    client.log_metric(done, "acc", 0.5)
    assert cache.refresh() == 0
    assert cache.frame().set_index("name").loc["done", "metrics.acc"] == 0.1
    # ... until a full reload.
    assert cache.refresh(full=True)
    assert cache.frame().set_index("name").loc["done", "metrics.acc"] == 0.5


def test_runs_reuses_the_kernels_cache(sweep):
    nbtrack.runs("cmp")
    query, _ = runtable.query_for("cmp")
    cache = runcache.cache_for(query)
    assert cache.last["kind"] == "full"
    _plain("later", {"lr": "9"}, {"val_acc": 0.99})
    df = nbtrack.runs("cmp", order_by="metrics.val_acc DESC")
    assert cache.last["kind"] == "incremental" and df["name"].iloc[0] == "later"
    nbtrack.runs("cmp", full=True)
    assert cache.last["kind"] == "full"


def test_pages_fill_the_table_as_they_arrive(sweep, monkeypatch):
    monkeypatch.setattr(store, "SEARCH_PAGE", 2)
    query, names = runtable.query_for("cmp")
    cache = runcache.RunCache(query, names)
    seen = [(n, len(cache.frame())) for n in cache.pages()]
    assert seen == [(2, 2), (4, 4), (6, 6)]
    assert cache.complete and cache.last["requests"] == 3


def test_capped_refresh_keeps_the_newest(store):
    for i in range(3):
        _plain(f"r{i}")
    query, names = runtable.query_for("cmp", max_runs=2)
    cache = runcache.RunCache(query, names).load()
    assert sorted(r.name for r in cache.records()) == ["r1", "r2"]
    _plain("r3")
    cache.refresh()
    assert sorted(r.name for r in cache.records()) == ["r2", "r3"]


def test_a_reproductions_earlier_cells_are_left_out_unless_asked_for(store):
    from nbtrack import record

    original = _plain("orig", tags={"nbtrack.cell.sha256": "c" * 64}, metrics={"acc": 0.5})
    made = {"nbtrack.repro.of": original, "nbtrack.repro.cell": "c" * 64}
    earlier = _plain("earlier", tags={**made, "nbtrack.cell.sha256": "e" * 64}, status=None)
    rerun = _plain("rerun", tags={**made, "nbtrack.cell.sha256": "c" * 64}, metrics={"acc": 0.5})
    MlflowClient().set_tag(rerun, "nbtrack.reproduces", original)
    # a reproduction made before nbtrack.repro.cell: every run but the verdict's is a by-product
    old = _plain("old-earlier", tags={"nbtrack.repro.of": original})

    assert set(nbtrack.runs("cmp")["name"]) == {"orig", "rerun"}
    both = nbtrack.runs("cmp", include_repro_byproducts=True)
    assert set(both["name"]) == {"orig", "rerun", "earlier", "old-earlier"}
    # a cap counts the runs listed, not those left out
    assert set(nbtrack.runs("cmp", max_runs=2)["name"]) == {"orig", "rerun"}
    # the rule, from the tags alone
    tags = {r: MlflowClient().get_run(r).data.tags for r in (earlier, rerun, old, original)}
    assert [record.reproduction_byproduct(tags[r]) for r in (earlier, rerun, old, original)] == [
        True,
        False,
        True,
        False,
    ]
    # an earlier cell's run still RUNNING when the table was fetched stays out once it ends
    query, names = runtable.query_for("cmp")
    cache = runcache.cache_for(query, names)
    MlflowClient().set_terminated(earlier, "FINISHED")
    cache.refresh()
    assert "earlier" not in {r.name for r in cache.records()}
    # the panel lists what nbtrack.runs lists
    from nbtrack.widgets.compare import show

    assert set(show("cmp", frontend=False).df["name"]) == {"orig", "rerun"}
    panel = show("cmp", frontend=False, include_repro_byproducts=True)
    assert set(panel.df["name"]) == {"orig", "rerun", "earlier", "old-earlier"}


# -- diffs -------------------------------------------------------------------------------------


@pytest.fixture
def pair(store) -> tuple[str, str]:
    common = {"batch_size": "64", "epochs": "3", "python_version": "3.11.7"}
    a = _plain(
        "baseline",
        {**common, "lr": "0.01", "optimizer": HOSTILE, "data_hash": "a" * 64},
        {"val_acc": 0.8, "val_loss": 0.3},
        tags={"mlflow.source.git.commit": "1" * 40, "nbtrack.git.dirty": "false"},
        files={"nbtrack/cell.py": CELL_A, "nbtrack/requirements.txt": REQS_A},
    )
    b = _plain(
        "warmup",
        {**common, "lr": "0.1", "warmup": "True", "data_hash": "b" * 64},
        {"val_acc": 0.9, "val_loss": 0.3},
        tags={"mlflow.source.git.commit": "2" * 40, "nbtrack.git.dirty": "true"},
        files={
            "nbtrack/cell.py": CELL_B,
            "nbtrack/requirements.txt": REQS_B,
            "nbtrack/git.diff": "--- a/model.py\n+++ b/model.py\n@@ -1 +1 @@\n-old\n+new\n",
        },
    )
    return a, b


def test_diff_keeps_only_what_differs(pair):
    d = nbtrack.diff(*pair)
    assert d.names == ("baseline", "warmup")
    params = d["params"]
    assert params.keys() == ["lr", "optimizer", "warmup"]
    assert [r.change for r in params.rows] == ["changed", "removed", "added"]
    assert params.same == {"batch_size": "64", "epochs": "3"}
    assert d["metrics"].keys() == ["val_acc"] and d["metrics"].same == {"val_loss": "0.3"}
    assert d["data"].keys() == ["data_hash"]
    assert d["code"].keys() == ["git commit", "git dirty"]
    env = {r.key: (r.values, r.change) for r in d["environment"].rows}
    assert env == {
        "numpy": (("1.26.4", "2.0.0"), "changed"),
        "scipy": ((None, "1.13.0"), "added"),
        "torch": (("2.1.0", None), "removed"),
    }
    assert d["environment"].same == {"pandas": "2.2.0", "python": "3.11.7"}
    source, changes = d.texts
    assert "-lr = 0.01" in source.diff and "+lr = 0.1" in source.diff
    assert "+    train(lr, warmup=True)" in source.diff
    assert "baseline/nbtrack/cell.py" in source.diff
    assert "+new" in changes.diff  # the uncommitted changes differ (clean vs dirty)

    text = repr(d)
    assert text.startswith("nbtrack diff: baseline → warmup")
    assert "lr           0.01 → 0.1" in text or "0.01 → 0.1" in text
    assert "batch_size" not in text  # identical: counted, not listed
    assert "params (3 differ, 2 identical)" in text


def test_the_note_is_a_column_and_its_whole_text_is_in_the_diff(store):
    a = _plain("a", tags={"mlflow.note.content": "## Baseline\nlr 0.01, as in the paper"})
    b = _plain("b", tags={"mlflow.note.content": "## Warm-up\nlr 0.1 with warm-up"})
    df = nbtrack.runs("cmp")
    assert sorted(df["note"]) == ["Baseline", "Warm-up"]  # the first line, heading marks left out
    note = next(t for t in nbtrack.diff(a, b).texts if t.title == "note")
    assert "-lr 0.01, as in the paper" in note.diff and "+lr 0.1 with warm-up" in note.diff


def test_diff_html_escapes_everything(pair):
    page = nbtrack.diff(*pair)._repr_html_()
    assert HOSTILE not in page
    assert html.escape(HOSTILE) in page
    assert "<details><summary>2 params identical</summary>" in page
    assert "identical: status" in page and "python=3.11.7" in page  # env differs: listed
    assert "<span class='add'>+lr = 0.1</span>" in page


def test_diff_of_runs_without_nbtrack_artifacts_says_so(pair):
    plain = _plain("plain", {"lr": "0.5", "python_version": "3.11.7"}, {"val_acc": 0.1})
    d = nbtrack.diff(pair[0], plain)
    assert d.texts[0].missing == ("plain",) and not d.texts[0]
    assert "cell source: not recorded for plain" in repr(d)
    # no package list when one run has none: not 3 "removed" packages
    assert [r.key for r in d["environment"].rows] == ["requirements.txt"]


def test_diff_of_tracked_runs(store):
    ids = []
    for lr in (0.1, 0.2):
        with nbtrack.run(experiment="cmp", name=f"lr={lr}", seed=1, params={"lr": lr}) as r:
            nbtrack.log(step=0, acc=lr)
        ids.append(r.run_id)
    d = nbtrack.diff(*ids)
    assert d["params"].keys() == ["lr"] and d["params"].same["random_seed"] == "1"
    assert not d["environment"]  # same kernel, same packages
    assert d["environment"].same  # ... which were compared: requirements.txt was recorded
    assert not d.texts[0]  # same source


def test_diff_needs_two_runs_and_known_ids(pair):
    with pytest.raises(UsageError, match="at least two"):
        nbtrack.diff(pair[0], pair[0])
    with pytest.raises(NotFound):
        nbtrack.diff(pair[0], "0" * 32)


def test_identical_runs(store):
    a = _plain("a", {"lr": "1"}, {"acc": 0.5}, files={"nbtrack/cell.py": CELL_A})
    b = _plain("a", {"lr": "1"}, {"acc": 0.5}, files={"nbtrack/cell.py": CELL_A})
    d = nbtrack.diff(a, b)
    assert d.identical
    assert d.names == (f"a ({a[:7]})", f"a ({b[:7]})")  # same names told apart
    assert "identical" in repr(d)


# -- groups and configs ------------------------------------------------------------------------


def test_group_by_data_hash_shows_the_drop(sweep):
    df = nbtrack.runs("cmp")
    table = comparedata.group_table(df, "params.data_hash", "metrics.val_acc")
    assert list(table.columns) == ["params.data_hash", "runs", "mean", "min", "max"]
    rows = {k[:1] or k: (n, round(m, 3)) for k, n, m, _, _ in table.itertuples(index=False)}
    assert rows == {
        "b": (2, 0.85),
        "a": (3, 0.6),
        "(": (1, pytest.approx(float("nan"), nan_ok=True)),
    }
    by_user = comparedata.group_table(df, "user", "metrics.val_acc")
    assert {"user0", "user1"} < set(by_user["user"])  # and what MLflow says for "bare"
    page = comparedata.group_html(table, "params.data_hash", "metrics.val_acc")
    assert "<th>mean metrics.val_acc</th>" in page
    with pytest.raises(UsageError):
        comparedata.group_table(df, "params.optimizer", "params.optimizer")


def test_config_line_round_trips_through_the_magic():
    from nbtrack.frontends.track_line import parse_line

    params = {
        "lr": "0.01",
        "layers": "[64, 32]",
        "name": "it's a <b>test</b>",
        "random_seed": "7",
        "git_commit": "abc",
        "numpy_version": "2.0.0",
    }
    line = comparedata.track_line(params, "my exp")
    assert line.startswith("%%track --experiment 'my exp' --seed 7 -p")
    spec, _ = parse_line(line[len("%%track") :])
    assert spec.params == {"layers": "[64, 32]", "lr": "0.01", "name": "it's a <b>test</b>"}
    assert spec.seed == 7 and spec.experiment == "my exp"
    assert comparedata.as_papermill_parameters(params) == {
        "layers": [64, 32],
        "lr": 0.01,
        "name": "it's a <b>test</b>",
    }


def test_static_table_escapes_and_formats(sweep):
    df = nbtrack.runs("cmp", order_by="metrics.val_acc DESC")
    df.loc[0, "params.optimizer"] = HOSTILE
    page = comparedata.table_html(df[["name", "params.optimizer", "metrics.val_acc"]], 3, "top")
    assert HOSTILE not in page and html.escape(HOSTILE) in page
    assert page.count("<tr>") == 4 and "3 more not shown" in page
    assert "<td>0.9</td>" in page


# -- the panel, in-process ---------------------------------------------------------------------


@pytest.fixture
def panel(sweep):
    from nbtrack.widgets.compare import show

    return show("cmp", order_by="metrics.val_acc DESC", frontend=False)


def test_panel_table_sort_filter_search(panel, sweep):
    assert list(panel.df["name"][:2]) == ["r4", "r3"]
    assert "6 runs" in panel.status.value and "sorted by metrics.val_acc ↓" in panel.status.value
    panel.sort_by.value = "params.lr"
    panel.descending.value = False
    assert list(panel.df["name"][:2]) == ["r4", "r2"]  # 1e-4, 0.001: as numbers
    panel.filter_box.value = "metrics.val_acc > 0.6 and params.optimizer = 'adam'"
    assert sorted(panel.df["name"]) == ["r4"] or sorted(panel.df["name"]) == ["r2", "r4"]
    assert sorted(panel.df["name"]) == ["r2", "r4"]
    assert "2 of 6 runs" in panel.status.value
    panel.filter_box.value = "metrics.val_acc >>> 1"
    assert "MLflow cannot read" in panel.status.value and not panel.errors
    panel.filter_box.value = ""
    panel.search_box.value = "SGD"
    assert sorted(panel.df["name"]) == ["r0", "r3"]
    panel.search_box.value = ""
    panel.column_chooser.value = ("name", "metrics.val_acc")
    fields = [f["name"] for f in panel.grid._data["schema"]["fields"]]
    assert fields[:3] == ["#", "name", "metrics.val_acc"]  # the row number, then the columns
    assert panel.df.shape[1] > 2  # panel.df keeps every column
    assert not panel.errors


def test_panel_selection_diff_and_actions(panel, sweep):
    panel.select([0, 1])
    assert list(panel.selected["name"]) == ["r4", "r3"]
    assert "selected: r4, r3" in panel.selection.value
    view = panel.diff_view.value
    assert "<tr data-key='lr'>" in view and "<tr data-key='optimizer'>" in view
    assert "data-key='val_acc'" in view
    assert panel.grid.selections[0]["r1"] == 0 and panel.grid.selections[1]["r1"] == 1
    assert panel.config_text.value == "%%track --experiment cmp -p lr=1e-4 -p optimizer=adam"
    assert panel.copy_button.text == panel.config_text.value
    panel.config_format.value = "papermill"
    assert panel.config_text.value == "{'lr': 0.0001, 'optimizer': 'adam'}"
    panel.copy_button.copied, panel.copy_button.clicks = True, 1
    assert panel.copy_button.description == "copied ✓"
    assert panel.links.value == ""  # no server: no MLflow link

    # a click in the grid, as the browser reports it (rows as shown)
    panel.grid.selections = [{"r1": 2, "r2": 3, "c1": 0, "c2": 3}]
    assert list(panel.selected["name"]) == ["r2", "r1"]


def test_panel_follows_the_grids_own_sort(panel, sweep):
    # The grid's header menu sorts in the frontend; the kernel hears of it as a transform.
    panel.grid.transform([{"type": "sort", "column": "name", "desc": False}])
    assert list(panel.df["name"]) == ["bare", "r0", "r1", "r2", "r3", "r4"]
    panel.grid.selections = [{"r1": 1, "r2": 1, "c1": 0, "c2": 0}]
    assert list(panel.selected["name"]) == ["r0"]
    panel.search_box.value = "adam"  # new rows: the grid's sort still applies
    assert list(panel.df["name"]) == ["r1", "r2", "r4"]
    panel.sort_by.value = "params.lr"  # the toolbar's sort replaces the header's
    assert panel.grid._transforms == []
    assert list(panel.df["name"]) == ["r1", "r2", "r4"]  # lr 0.01, 0.001, 1e-4 (descending)
    panel.descending.value = False
    assert list(panel.df["name"]) == ["r4", "r2", "r1"]


def test_panel_tabs_draw_on_demand(panel, sweep):
    panel.select([0, 1])
    panel.tabs.selected_index = 1
    [curves] = panel.curves_box.children
    assert "2 runs" in repr(curves)
    panel.tabs.selected_index = 2
    parcoords = panel.parallel_box.children[-1].data[0]
    assert [d.label for d in parcoords.dimensions][-1] == "metrics.val_acc"
    assert len(parcoords.dimensions[-1].values) == 6  # the whole filtered set
    panel.tabs.selected_index = 3
    fig = panel.scatter_box.children[-1]
    assert [t.name for t in fig.data] == ["runs", "selected"]
    panel.tabs.selected_index = 4
    panel.group_by.value = "params.optimizer"
    assert "<td>adam</td>" in panel.group_view.value
    assert not panel.errors


def test_panel_output_has_a_static_fallback(panel, sweep):
    from nbtrack.widgets.compare import show

    hostile = _plain("evil", {"lr": HOSTILE, "optimizer": "adam"}, {"val_acc": 2.0})
    p = show("cmp", order_by="metrics.val_acc DESC", select=[hostile, sweep["r4"]])
    bundle = p._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    page = bundle["text/html"]
    assert HOSTILE not in page and html.escape(HOSTILE) in page
    assert page.index(">evil<") < page.index(">r4<")  # sorted as asked
    assert "nbtrack diff" in page  # and the selection's diff
    assert bundle["text/plain"] == "<nbtrack compare · cmp · 7 runs · sorted by metrics.val_acc ↓>"


def test_panel_loads_in_the_background_with_a_frontend(sweep, monkeypatch):
    from nbtrack.widgets.compare import show

    monkeypatch.setattr(store, "SEARCH_PAGE", 2)
    p = show("cmp", frontend=True)
    assert p.wait(30)
    assert len(p.df) == 6 and "loading" not in p.status.value and not p.errors
    _plain("new", {"lr": "7"})
    p.refresh_button.click()
    assert len(p.df) == 7 and "refreshed: 1 changed" in p.status.value


def test_compare_without_the_widgets_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipydatagrid", None)
    monkeypatch.delitem(sys.modules, "nbtrack.widgets.compare", raising=False)
    import nbtrack.widgets

    monkeypatch.delattr(nbtrack.widgets, "compare", raising=False)
    with pytest.raises(MissingExtra) as info:
        nbtrack.compare("cmp")
    assert info.value.feature == "the comparison panel" and info.value.extra == "widgets"


def test_the_copy_buttons_javascript_ships_as_package_data():
    from importlib import resources

    from nbtrack.widgets.compare import CopyButton

    shipped = resources.files("nbtrack.widgets.compare").joinpath("copy_button.js")
    assert shipped.is_file()
    assert CopyButton._esm == shipped.read_text(encoding="utf-8")
    assert "navigator.clipboard.writeText" in CopyButton._esm
    assert "export default" in CopyButton._esm


def test_widget_html_helper_escapes_every_value():
    from nbtrack.widgets import _html

    assert _html.esc(HOSTILE) == html.escape(HOSTILE, quote=True)
    assert _html.esc(None) == "" and _html.esc(3) == "3"
    assert _html.esc('it\'s "x"') == "it&#x27;s &quot;x&quot;"
    assert _html.plotly_text('<b>"a"</b>') == '&lt;b&gt;"a"&lt;/b&gt;'  # plotly shows &quot;
    assert _html.hint("<x>") == (
        "<div style='font-size:12px;color:#888;padding:4px'>&lt;x&gt;</div>"
    )
