"""Learning curves: the pure core (nbtrack.query.curves) against a real MLflow store, the static
fallback, the widgets in-process (no browser: see tests/browser/test_curves.py), and the live view
of a tracked cell in a real kernel."""

from __future__ import annotations

import html
import time

import mlflow
import nbformat
import numpy as np
import pytest
from support import execute

import nbtrack
from nbtrack.errors import NotFound, UsageError
from nbtrack.frontends.magic import live_listener
from nbtrack.query import curves as curvedata
from nbtrack.query import styles as curvestyles
from nbtrack.query.curves import Curves, LiveCurves, RunRef, family_of, group
from nbtrack.query.sampling import ema, lttb
from nbtrack.widgets import static

HOSTILE = "<img src=x onerror=alert(1)>"


def _log_run(name: str, experiment: str = "curves", n: int = 20, **params) -> str:
    """A finished run with train_loss, val_loss and val_acc over n steps."""
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=name) as run:
        if params:
            mlflow.log_params(params)
        for step in range(n):
            mlflow.log_metrics(
                {
                    "train_loss": 1 / (step + 1),
                    "val_loss": 1.2 / (step + 1),
                    "val_acc": 1 - 1 / (step + 2),
                },
                step=step,
            )
    return run.info.run_id


@pytest.fixture
def three_runs(store) -> list[str]:
    return [_log_run(name, lr=lr) for name, lr in (("a", 0.1), ("b", 0.01), ("c", 0.1))]


# -- families ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("train_loss", ("loss", "train")),
        ("val_loss", ("loss", "val")),
        ("val_acc", ("acc", "val")),
        ("validation/accuracy", ("accuracy", "val")),
        ("loss/train", ("loss", "train")),
        ("test.f1", ("f1", "test")),
        ("loss", ("loss", "")),
        ("lr", ("lr", "")),
        ("learning_rate", ("learning_rate", "")),
        ("train", ("train", "")),
    ],
)
def test_families(key, expected):
    assert family_of(key) == expected


def test_group_keeps_first_appearance_order():
    keys = ["train_loss", "val_acc", "val_loss", "lr", "train_acc"]
    assert group(keys) == {
        "loss": ["train_loss", "val_loss"],
        "acc": ["val_acc", "train_acc"],
        "lr": ["lr"],
    }


# -- downsampling ------------------------------------------------------------------------------


def _walk(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.arange(n, dtype=float), np.cumsum(rng.standard_normal(n))


@pytest.mark.parametrize("n", [3, 10, 100, 1000])
def test_lttb_returns_the_count_asked_for_with_first_and_last(n):
    x, y = _walk(50_000)
    idx = lttb(x, y, n)
    assert len(idx) == n
    assert idx[0] == 0 and idx[-1] == len(x) - 1
    assert np.all(np.diff(idx) > 0)  # sorted, no point twice


def test_lttb_keeps_the_extremes_and_spikes():
    x, y = _walk(100_000, seed=1)
    y[31_337] = y.max() + 50  # a one-point spike: what dropping every k-th point would lose
    y[77_001] = y.min() - 50
    idx = lttb(x, y, 200)
    assert len(idx) == 200
    assert 31_337 in idx and 77_001 in idx
    assert y[idx].max() == y.max() and y[idx].min() == y.min()


def test_lttb_keeps_both_extremes_when_they_share_a_bucket():
    x = np.arange(1000, dtype=float)
    y = np.zeros(1000)
    y[500], y[501] = 10.0, -10.0  # one bucket of n=10 holds both
    idx = lttb(x, y, 10)
    assert len(idx) == 10 and {500, 501} <= set(idx.tolist())


def test_lttb_keeps_the_shape_better_than_striding():
    # A sine: LTTB's points stay on the curve's turning points; the worst error of the
    # piecewise-linear picture is small.
    x = np.linspace(0, 20 * np.pi, 100_000)
    y = np.sin(x)
    idx = lttb(x, y, 400)
    error = np.max(np.abs(np.interp(x, x[idx], y[idx]) - y))
    assert error < 0.05


def test_lttb_short_series_are_left_alone():
    x, y = _walk(50)
    assert lttb(x, y, 100).tolist() == list(range(50))
    with pytest.raises(ValueError):
        lttb(*_walk(100), 2)


def test_series_from_history_orders_drops_nonfinite_and_downsamples():
    ref = RunRef("r" * 32, "run", start_ms=1_000)
    n = 10_000
    steps = np.arange(n)[::-1].copy()  # logged out of order
    stamps = 1_000 + steps * 10
    values = np.sin(steps / 100.0)
    values[5] = np.nan
    values[6] = np.inf
    s = curvedata.series_from_history(ref, "val_loss", steps, stamps, values, max_points=500)
    assert s.total == n - 2 and len(s.x) == 500
    assert np.all(np.diff(s.x) > 0) and s.x[0] == 0 and s.x[-1] == n - 1
    assert np.isfinite(s.y).all()
    t = curvedata.series_from_history(ref, "val_loss", steps, stamps, values, x="time")
    assert t.x[0] == 0.0 and t.x[-1] == pytest.approx((n - 1) * 10 / 1000)
    with pytest.raises(UsageError, match="x must be one of"):
        curvedata.series_from_history(ref, "k", steps, stamps, values, x="epoch")


# -- smoothing ---------------------------------------------------------------------------------


def test_ema_is_debiased_and_bounded():
    assert ema([1.0, 0.0], 0.5).tolist() == pytest.approx([1.0, 1 / 3])
    assert ema([2.0] * 5, 0.9).tolist() == pytest.approx([2.0] * 5)  # no pull towards 0
    y = np.random.default_rng(0).standard_normal(1000)
    assert ema(y, 0.0).tolist() == y.tolist()
    smooth = ema(y, 0.9)
    assert smooth.std() < y.std() / 2
    assert ema([1.0, np.nan, 3.0], 0.5)[1] == pytest.approx(1.0)  # a NaN does not poison it
    with pytest.raises(UsageError):
        ema(y, 1.0)


# -- which runs --------------------------------------------------------------------------------


def test_resolve_run_ids_in_order_without_duplicates(three_runs):
    a, b, c = three_runs
    refs = curvedata.resolve_runs([c, a, c])
    assert [r.run_id for r in refs] == [c, a]
    assert [r.name for r in refs] == ["c", "a"]
    assert refs[0].metric_keys == ("train_loss", "val_acc", "val_loss")
    assert [r.run_id for r in curvedata.resolve_runs(b)] == [b]  # one id
    with pytest.raises(NotFound):
        curvedata.resolve_runs(["0" * 32])


def test_resolve_a_search_runs_dataframe(three_runs):
    df = mlflow.search_runs(experiment_names=["curves"], filter_string="params.lr = '0.1'")
    refs = curvedata.resolve_runs(df)
    assert sorted(r.name for r in refs) == ["a", "c"]
    with pytest.raises(UsageError, match="run_id"):
        curvedata.resolve_runs(df[["status"]])


def test_resolve_an_experiment_with_a_filter(three_runs):
    refs = curvedata.resolve_runs("curves", filter="params.lr = '0.1'")
    assert [r.name for r in refs] == ["a", "c"]  # oldest first
    assert len(curvedata.resolve_runs("curves")) == 3
    with pytest.raises(NotFound, match="no experiment 'nope'"):
        curvedata.resolve_runs("nope")
    with pytest.raises(UsageError, match="filter= applies"):
        curvedata.resolve_runs(three_runs, filter="params.lr = '0.1'")
    with pytest.raises(UsageError, match="filter"):
        curvedata.resolve_runs("curves", filter="params.lr === nonsense")


def test_load_selects_keys_or_families_along_x(three_runs):
    a, b, _ = three_runs
    data = curvedata.load([a, b])
    assert data.families() == ["acc", "loss"]
    assert {(s.run.name, s.key) for s in data.series} == {
        (n, k) for n in "ab" for k in ("train_loss", "val_loss", "val_acc")
    }
    loss = curvedata.load([a, b], metrics="loss")
    assert {s.key for s in loss.series} == {"train_loss", "val_loss"}
    exact = curvedata.load([a], metrics=["val_loss"])
    assert [s.key for s in exact.series] == ["val_loss"]
    assert exact.series[0].x.tolist() == list(range(20))
    timed = curvedata.load([a], metrics="val_acc", x="time")
    assert 0 <= timed.series[0].x[0] < 60
    stamped = curvedata.load([a], metrics="val_acc", x="timestamp")
    assert stamped.series[0].x[0] > 1.6e12


def test_a_long_history_is_downsampled_never_truncated(store):
    mlflow.set_experiment("long")
    n = 20_000
    values = np.cos(np.arange(n) / 500.0)
    values[n - 3] = 5.0  # a spike near the end
    with mlflow.start_run() as run:
        from mlflow.entities import Metric

        t0 = int(time.time() * 1000)
        metrics = [Metric("loss", float(values[i]), t0 + i, i) for i in range(n)]
        client = mlflow.MlflowClient()
        for i in range(0, n, 1000):
            client.log_batch(run.info.run_id, metrics=metrics[i : i + 1000])
    [s] = curvedata.load(run.info.run_id, max_points=300).series
    assert s.total == n and len(s.x) == 300
    assert s.x[-1] == n - 1 and s.y.max() == 5.0


def test_same_names_are_told_apart(store):
    ids = [_log_run("same", n=2), _log_run("same", n=2)]
    data = curvedata.load(ids)
    names = data.names()
    assert len(set(names.values())) == 2 and all(v.startswith("same (") for v in names.values())


# -- styles, and the static picture ------------------------------------------------------------


def test_styles_one_colour_per_run_line_style_per_role(three_runs):
    data = curvedata.load(three_runs, metrics="loss")
    styles = curvestyles.styles(data)
    by_run = {}
    for s, st in zip(data.series, styles, strict=True):
        by_run.setdefault(s.run.name, set()).add(st.colour)
        assert st.dash == ("solid" if s.role == "train" else "dash")
    assert all(len(c) == 1 for c in by_run.values())
    assert len({next(iter(c)) for c in by_run.values()}) == 3
    # one legend entry per run, carried by its solid (train) line
    carriers = [(s.run.name, s.key) for s, st in zip(data.series, styles, strict=True) if st.first]
    assert sorted(carriers) == [("a", "train_loss"), ("b", "train_loss"), ("c", "train_loss")]


def test_single_run_colours_by_role():
    ref = RunRef("r" * 32, "run")
    live = LiveCurves(ref)
    live.add([(ref.run_id, k, 1.0, 0, 0) for k in ("train_loss", "val_loss", "val_acc", "loss")])
    data = live.snapshot()
    colours = {
        s.key: st.colour for s, st in zip(data.series, curvestyles.styles(data), strict=True)
    }
    assert colours["train_loss"] != colours["val_loss"]
    assert colours["val_loss"] == colours["val_acc"]  # val looks the same in every subplot
    assert colours["loss"] != colours["train_loss"]  # same family, no role: told apart


def test_static_fallback_escapes_a_hostile_run_name(store):
    run_id = _log_run(HOSTILE, n=5)
    data = curvedata.load(run_id)
    for out in (static.render(data), static.render(data, smoothing=0.6, log_y=True)):
        assert "<img" not in out and "onerror=alert(1)>" not in out
        assert "<script" not in out and "http://" not in out.replace("http://www.w3.org", "")
        assert html.escape(HOSTILE) in out or html.escape(HOSTILE, quote=False) in out
        assert out.count("<svg") >= 2  # the acc and loss panels
        assert "train_loss" in out  # one run: the legend names the metrics


def test_static_fallback_without_data_says_so():
    assert "no metrics" in static.render(Curves([]))


# -- the widget, in-process --------------------------------------------------------------------


def test_curves_widget_bundle_controls_and_escaping(three_runs, store):
    hostile = _log_run(HOSTILE, n=5)
    view = nbtrack.curves([*three_runs, hostile], metrics="loss")
    bundle = view._repr_mimebundle_()
    assert set(bundle) >= {
        "text/plain",
        "text/html",
        "application/vnd.jupyter.widget-view+json",
    }
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == view.model_id
    assert "<img" not in bundle["text/html"] and "<svg" in bundle["text/html"]
    fig = view.figure
    assert len(fig.data) == 8  # 4 runs x (train_loss, val_loss)
    legend = [t.name for t in fig.data if t.showlegend]
    assert legend == ["a", "b", "c", html.escape(HOSTILE, quote=False)]
    # the hover template never holds a user's string; names travel in meta, escaped
    assert all(HOSTILE not in t.hovertemplate and "<img" not in str(t.meta) for t in fig.data)

    raw = list(fig.data[0].y)
    view.smoothing.value = 0.9
    assert list(fig.data[0].y) != raw and fig.data[0].y[0] == raw[0]
    assert list(fig.data[0].customdata) == raw  # the hover still shows the raw value
    view.log_y.value = True
    assert fig.layout.yaxis.type == "log"
    assert "(log)" in view._repr_mimebundle_()["text/html"]
    view.log_y.value = False
    assert fig.layout.yaxis.type == "linear"
    assert view.errors == []


def test_curves_of_an_experiment_with_filter_and_time_axis(three_runs):
    view = nbtrack.curves("curves", filter="params.lr = '0.1'", x="time")
    assert {t.name for t in view.figure.data if t.showlegend} == {"a", "c"}
    assert view.figure.layout.xaxis.title.text == "time (s)"
    stamped = nbtrack.curves(three_runs[:1], x="timestamp")
    assert stamped.figure.layout.xaxis.type == "date"


def test_import_nbtrack_stays_light_and_a_missing_extra_says_which():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import nbtrack, nbtrack.query.curves, nbtrack.widgets.static\n"
        "heavy = [m for m in ('IPython', 'plotly', 'ipywidgets') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "sys.modules['plotly'] = None  # as if the widgets extra were not installed\n"
        "try:\n"
        "    nbtrack.curves(['0' * 32])\n"
        "except nbtrack.errors.MissingExtra as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        "learning curves needs the 'widgets' extra: pip install 'nbtrack[widgets]'"
    )


def test_without_the_extra_a_frontend_still_gets_the_static_picture(store, monkeypatch):
    import sys

    import nbtrack.widgets
    from nbtrack.widgets import live

    # as if the widgets extra were not installed: importing the widget module fails again
    monkeypatch.delitem(sys.modules, "nbtrack.widgets.curves", raising=False)
    monkeypatch.delattr(nbtrack.widgets, "curves", raising=False)
    monkeypatch.setitem(sys.modules, "plotly", None)
    shown = []

    class Handle:  # what IPython's display(..., display_id=True) returns, recording updates
        def update(self, obj):
            shown.append(obj)

    monkeypatch.setattr(live, "_display", lambda obj, **kw: Handle())
    with nbtrack.run(experiment="no-extra") as run:
        view = live.attach(run, listen=live_listener, frontend=True)
        assert isinstance(view, live.StaticView)
        run.log(step=0, loss=1.0)
    view.close()
    assert view.errors == []
    [picture] = shown
    assert "<polyline" in picture._repr_mimebundle_()["text/html"]


def test_nbtrack_curves_stays_callable_after_its_modules_load():
    import nbtrack.query.curves
    import nbtrack.widgets.curves
    import nbtrack.widgets.live

    assert callable(nbtrack.curves)


# -- the live view, in-process -----------------------------------------------------------------


def test_frontend_detection(monkeypatch):
    from types import SimpleNamespace

    from nbtrack.widgets.live import has_frontend

    kernel = SimpleNamespace(kernel=object(), user_ns={})
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.delenv("NBTRACK_RUNNER_NOTEBOOK", raising=False)
    assert not has_frontend(kernel)  # nbclient, papermill, nbconvert
    monkeypatch.setenv("JPY_SESSION_NAME", "/x/train.ipynb")
    assert has_frontend(kernel)  # JupyterLab, Notebook 7
    assert not has_frontend(SimpleNamespace(kernel=None, user_ns={}))  # terminal IPython
    monkeypatch.setenv("NBTRACK_RUNNER_NOTEBOOK", "/x/train.ipynb")
    assert not has_frontend(kernel)  # nbtrack's own papermill runners
    monkeypatch.delenv("NBTRACK_RUNNER_NOTEBOOK")
    monkeypatch.delenv("JPY_SESSION_NAME")
    assert has_frontend(SimpleNamespace(kernel=object(), user_ns={"__vsc_ipynb_file__": "a"}))


def _until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_live_view_throttles_then_draws_everything_on_close(store, monkeypatch):
    from nbtrack.widgets import live

    with nbtrack.run(experiment="live", name="live-run") as run:
        headless = live.attach(
            run, listen=live_listener, frontend=False
        )  # headless: only the final picture
        assert isinstance(headless, live.StaticView)
        headless.close()
        monkeypatch.setenv("NBTRACK_LIVE", "0")
        assert live.attach(run, listen=live_listener, frontend=True) is None
        monkeypatch.delenv("NBTRACK_LIVE")
        # A redraw interval of an hour: the first points are drawn at once, none after that
        # until close, however many batches the writer hands over.
        view = live.attach(run, listen=live_listener, frontend=True, interval=3600)
        assert isinstance(view, live.LiveView)
        run.log(step=0, train_loss=1.0, val_loss=1.1, val_acc=0.5)
        run.flush()
        _until(lambda: view.redraws == 1)
        for step in range(1, 3000):
            run.log(step=step, train_loss=1 / step, val_loss=1.1 / step, val_acc=1 - 1 / step)
            if step % 100 == 0:
                run.flush()  # many writer batches, hence many listener calls
        mlflow.log_metric("plain", 3.0, step=7)  # around nbtrack.log
        run.flush()
        assert view.redraws == 1
        assert len(view.data) == 3 * 3000
    view.close()
    assert view.errors == []
    fig = view.figure
    by_key = {t.meta[1]: t for t in fig.data}
    assert set(by_key) == {"train_loss", "val_loss", "val_acc", "plain"}
    assert by_key["train_loss"].xaxis == by_key["val_loss"].xaxis  # one "loss" subplot
    assert by_key["val_acc"].xaxis != by_key["train_loss"].xaxis
    assert by_key["train_loss"].x[-1] == 2999 and len(by_key["train_loss"].x) <= 2000
    assert list(by_key["plain"].y) == [3.0]
    assert [a.text for a in fig.layout.annotations] == [
        "<b>loss</b>",
        "<b>acc</b>",
        "<b>plain</b>",
    ]


def test_live_view_is_fed_through_the_listener_it_is_given(store, monkeypatch):
    from nbtrack.widgets import live

    calls = []

    def listen(run_id, on_points):
        calls.append(("subscribe", run_id))
        on_points([(run_id, "loss", 0.5, 0, 0)])  # what the writer hands over
        return lambda: calls.append(("stop", run_id))

    monkeypatch.setattr(live, "_display", lambda obj, **kw: None)
    with nbtrack.run(experiment="listen") as run:
        view = live.attach(run, listen=listen, frontend=False)
        assert calls == [("subscribe", run.run_id)] and len(view.data) == 1
    view.close()
    assert calls == [("subscribe", run.run_id), ("stop", run.run_id)] and view.errors == []


def test_live_view_swallows_and_records_its_errors(store):
    from nbtrack.errors import NbtrackWarning
    from nbtrack.widgets import live

    def broken(*_a, **_k):
        raise RuntimeError("redraw broke")

    told = pytest.warns(NbtrackWarning, match="redraw broke")  # once, from the timer thread
    with told, nbtrack.run(experiment="live") as run:
        view = live.attach(run, listen=live_listener, frontend=True, interval=0.01)
        view._sync = broken
        run.log(step=0, loss=1.0)
        run.flush()
        _until(lambda: view.errors)
        run.log(step=1, loss=0.5)  # the cell goes on
    assert run.status == "FINISHED"
    view.errors.clear()
    with pytest.warns(NbtrackWarning, match="redraw broke"):
        view.close()  # the final redraw breaks too, and is swallowed
    assert [str(e) for e in view.errors] == ["redraw broke"]


# -- the live view in a real kernel ------------------------------------------------------------

LIVE_NOTEBOOK = [
    "%load_ext nbtrack\nimport nbtrack",
    "%%track --experiment live-nb --name " + "'" + HOSTILE + "'\n"
    "for step in range(30):\n"
    "    nbtrack.log(step=step, train_loss=1 / (step + 1), val_loss=1.2 / (step + 1))\n",
    "%%track --experiment live-nb --no-live\nnbtrack.log(step=0, loss=1.0)",
]


CURVES_CELL = 'nbtrack.curves("live-nb", metrics="loss")'


def test_saved_notebook_keeps_a_static_picture_of_the_live_curves(store, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in LIVE_NOTEBOOK]
    path = tmp_path / "live.ipynb"
    nbformat.write(nb, path)
    out = execute(path, tmp_path)  # JPY_SESSION_NAME set, as under JupyterLab
    [curves] = [
        o
        for o in out.cells[1].outputs
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    # updated in place at the end of the run: the widget, and the picture for everyone else
    picture = curves["data"]["text/html"]
    assert picture.count("viewBox") == 1  # one panel: the loss family
    assert picture.count("<polyline") == 2 and "train_loss" in picture and "val_loss" in picture
    assert "<img" not in picture and "&lt;img" in picture  # text/plain may say it as it is
    card = out.cells[1].outputs[-1]["data"]["text/html"]
    assert "nbtrack-card" in card  # the curves come before the card
    assert not any("widget-view" in str(o.get("data", {})) for o in out.cells[2].outputs)


def test_headless_execution_leaves_the_static_picture_where_the_live_view_would_be(store, tmp_path):
    import papermill

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in [*LIVE_NOTEBOOK[:2], CURVES_CELL]]
    nbformat.write(nb, tmp_path / "in.ipynb")
    papermill.execute_notebook(
        str(tmp_path / "in.ipynb"),
        str(tmp_path / "out.ipynb"),
        kernel_name="python3",
        progress_bar=False,
    )
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    tracked = next(c for c in out.cells if "%%track" in c.source)
    kinds = [sorted(o.get("data", {})) for o in tracked.outputs]
    assert kinds == [["text/html", "text/plain"]] * 2  # no widget: the picture, then the card
    assert tracked.outputs[0]["data"]["text/html"].count("<polyline") == 2
    assert "nbtrack-card" in tracked.outputs[1]["data"]["text/html"]
    # nbtrack.curves in a headless run: the widget, and the picture nbconvert and GitHub show
    [shown] = out.cells[-1].outputs
    assert "application/vnd.jupyter.widget-view+json" in shown["data"]
    picture = shown["data"]["text/html"]
    assert picture.count("<polyline") == 2 and "<img" not in picture and "&lt;img" in picture
