"""nbtrack.grid: real papermill grids of small notebooks against a real store; the spec's expansion,
sampling and exclusions without a kernel; the Dask executor on a LocalCluster on loopback; Ctrl-C
on a grid running in a subprocess."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from support import NOTEBOOKS, all_runs, artifact_text

import nbtrack
from nbtrack.errors import UsageError
from nbtrack.frontends import cli
from nbtrack.grids import dask_executor
from nbtrack.grids import run as sweeprun
from nbtrack.grids import spec as sweep
from nbtrack.grids.options import GridOptions
from nbtrack.grids.point import PointOutcome, PointTask
from nbtrack.query import filters

SMALL = "grid_small.ipynb"  # lr, batch_size, steps; lr * batch_size > 100 raises


def _copy(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / "proj"
    folder.mkdir(exist_ok=True)
    shutil.copy(NOTEBOOKS / name, folder / name)
    return folder / name


def _children(client, parent_id: str) -> list:
    return [r for r in all_runs(client) if r.data.tags.get("mlflow.parentRunId") == parent_id]


# -- the spec, without a kernel ----------------------------------------------------------------


def test_full_grid_expands_in_product_order_without_the_exclusions():
    spec = sweep.GridSpec.build(
        {"lr": [0.001, 0.01, 0.1], "batch_size": [32, 64], "opt": "adam"},
        exclude=[{"lr": 0.1, "batch_size": 64}, "lr=0.01"],
    )
    assert spec.points() == [
        {"lr": 0.001, "batch_size": 32, "opt": "adam"},
        {"lr": 0.001, "batch_size": 64, "opt": "adam"},
        {"lr": 0.1, "batch_size": 32, "opt": "adam"},
    ]
    assert spec.size() == 6
    assert spec.run_params()["grid.lr"] == "[0.001, 0.01, 0.1]"
    assert json.loads(spec.run_params()["grid.exclude"]) == [
        {"lr": 0.1, "batch_size": 64},
        {"lr": 0.01},
    ]


def test_random_search_samples_lists_and_ranges_reproducibly():
    params = {"lr": "loguniform(1e-4, 1e-1)", "batch_size": [32, 64], "layers": "randint(1, 3)"}
    a = sweep.GridSpec.build(params, random=20, seed=7).points()
    b = sweep.GridSpec.build(params, random=20, seed=7).points()
    assert a == b and len(a) == 20
    assert all(1e-4 <= p["lr"] <= 1e-1 for p in a)
    assert {p["batch_size"] for p in a} == {32, 64}
    assert {p["layers"] for p in a} <= {1, 2, 3} and all(isinstance(p["layers"], int) for p in a)
    assert all(len(repr(p["lr"]).rstrip("0")) <= 14 for p in a)  # 6 significant digits
    # lists only: distinct points from the grid, in grid order; a drawn seed is recorded
    spec = sweep.GridSpec.build({"a": [1, 2, 3], "b": [1, 2]}, random=4)
    points = spec.points()
    assert len({tuple(p.values()) for p in points}) == 4 and spec.seed is not None
    assert spec.run_params()["grid.seed"] == str(spec.seed)
    # an excluded draw is drawn again
    spec = sweep.GridSpec.build(
        {"u": sweep.uniform(0, 1), "k": [1, 2]}, exclude=[{"k": 2}], random=10, seed=1
    )
    assert {p["k"] for p in spec.points()} == {1}


def test_spec_mistakes_are_one_sentence():
    with pytest.raises(UsageError, match="a full grid needs lists"):
        sweep.GridSpec.build({"lr": "loguniform(1e-4, 1e-1)"})
    with pytest.raises(UsageError, match="positive bounds"):
        sweep.GridSpec.build({"lr": "loguniform(0, 1)"}, random=2)
    with pytest.raises(UsageError, match="write uniform"):
        sweep.GridSpec.build({"lr": "uniform(1)"}, random=2)
    with pytest.raises(UsageError, match="not a param of the grid"):
        sweep.GridSpec.build({"lr": [1, 2]}, exclude=["batch=3"])
    with pytest.raises(UsageError, match="papermill cannot write"):
        sweep.GridSpec.build({"f": [object()]})
    assert sweep.parse_exclusion("layers=[64, 32],opt='a,b'") == {
        "layers": [64, 32],
        "opt": "a,b",
    }
    assert sweep.assigned_names("a = 1\nb: int = 2\nc, (d, e) = 1, (2, 3)\nf += 1") == list(
        "abcdef"
    )


def test_grid_options_are_checked_in_one_place():
    for bad, match in [
        ({"mode": "best"}, "mode must be"),
        ({"parallel": 0}, "parallel must be at least 1"),
        ({"parallel": True}, "parallel must be at least 1"),
        ({"executor": "spark"}, "unknown executor"),
        ({"timeout": 0}, "timeout must be a positive"),
    ]:
        with pytest.raises(UsageError, match=match):
            GridOptions(**bad)
    assert GridOptions(scheduler="tcp://127.0.0.1:8786").executor == "dask"
    assert GridOptions(exclude=[{"lr": 0.1}]).exclude == ({"lr": 0.1},)


# -- grids of a real notebook ------------------------------------------------------------------


def test_full_grid_gives_a_parent_and_a_finished_child_per_point(store, client, tmp_path):
    nb = _copy(tmp_path, SMALL)
    result = nbtrack.grid(
        nb,
        params={"lr": [0.1, 0.2], "batch_size": [32, 64]},
        parallel=2,
        experiment="grid-test",
        metric="score",
        progress=False,
    )
    # the notebook's own %%track line says --experiment elsewhere: the grid's wins
    assert client.get_experiment_by_name("elsewhere") is None
    parent = client.get_run(result.grid_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["grid.lr"] == "[0.1, 0.2]"
    assert parent.data.params["grid.batch_size"] == "[32, 64]"
    assert parent.data.tags["mlflow.source.name"] == str(nb)
    assert len(parent.data.tags["nbtrack.notebook.sha256"]) == 64
    assert parent.data.tags["nbtrack.grid.points"] == "4"
    assert "mlflow.source.git.commit" in parent.data.tags or parent.data.tags.get("nbtrack.git")
    assert parent.data.metrics["points_finished"] == 4

    children = _children(client, result.grid_run_id)
    assert len(children) == 4
    assert {r.info.status for r in children} == {"FINISHED"}
    assert {r.info.experiment_id for r in children} == {parent.info.experiment_id}
    got = sorted((r.data.params["lr"], r.data.params["batch_size"]) for r in children)
    assert got == [("0.1", "32"), ("0.1", "64"), ("0.2", "32"), ("0.2", "64")]
    for r in children:
        assert r.data.tags["nbtrack.grid.status"] == "FINISHED"
        assert r.data.tags["mlflow.source.name"] == str(nb)
        out = json.loads(artifact_text(client, r.info.run_id, "nbtrack/grid/output.ipynb"))
        injected = [
            c for c in out["cells"] if "injected-parameters" in c["metadata"].get("tags", [])
        ]
        assert f"lr = {r.data.params['lr']}" in "".join(injected[0]["source"])

    df = result.df
    assert list(df["status"]) == ["FINISHED"] * 4
    assert list(zip(df["params.lr"], df["params.batch_size"], strict=True)) == [
        (0.1, 32),
        (0.1, 64),
        (0.2, 32),
        (0.2, 64),
    ]
    assert df["metrics.score"].tolist() == pytest.approx([3.2, 6.4, 6.4, 12.8])
    assert (df["duration"] > 0).all() and set(df["runs"]) == {1}
    best = result.best()
    assert (best["params.lr"], best["params.batch_size"]) == (0.2, 64)
    assert result.best("loss", mode="min")["params.lr"] == 0.2
    # the comparison panel's filter is evaluated locally, and MLflow agrees
    assert filters.parse_filter(result.filter)[0].key == "mlflow.parentRunId"
    table = nbtrack.runs("grid-test", filter=result.filter)
    assert sorted(table["run_id"]) == sorted(r.info.run_id for r in children)
    panel = result.compare(columns=["name", "params.lr", "metrics.score"])
    panel.wait(60)
    assert len(panel.df) == 4
    cache = panel.cache
    assert filters.matching(cache, result.filter) == {r.info.run_id for r in children}
    text, page = repr(result), result._repr_html_()
    assert "4 FINISHED" in text and "best score (max) 12.8 at lr=0.2, batch_size=64" in text
    assert "nbtrack-grid" in page and result.grid_run_id in page


def test_a_failing_point_is_recorded_with_its_cell_then_resume_runs_only_it(
    store, client, tmp_path
):
    nb = _copy(tmp_path, SMALL)
    result = nbtrack.grid(
        nb,
        params={"lr": [0.1, 2.0], "batch_size": [32, 64]},
        parallel=2,
        experiment="grid-fail",
        progress=False,
    )
    df = result.df
    assert df["status"].tolist() == ["FINISHED", "FINISHED", "FINISHED", "FAILED"]
    assert df["error"][3] == "In [4] raised ValueError: diverged: lr=2.0 batch_size=64"
    parent = client.get_run(result.grid_run_id)
    assert parent.info.status == "FAILED" and parent.data.metrics["points_failed"] == 1
    failed_run = client.get_run(df["run_id"][3])
    assert failed_run.info.status == "FAILED"
    assert failed_run.data.tags["nbtrack.grid.status"] == "FAILED"
    assert "ValueError" in artifact_text(client, failed_run.info.run_id, "nbtrack/traceback.txt")
    failure = result.failure(3)
    assert "raise ValueError" in failure["source"] and failure["ename"] == "ValueError"
    assert "diverged" in failure["traceback"]
    before = {r.info.run_id for r in _children(client, result.grid_run_id)}

    # Fix the notebook; a resume runs the failed point only, under the same parent.
    text = nb.read_text().replace("lr * batch_size > 100", "lr * batch_size > 1000")
    nb.write_text(text)
    with pytest.warns(nbtrack.errors.NbtrackWarning, match="notebook changed"):
        resumed = nbtrack.grid(resume=result.grid_run_id, progress=False)
    assert resumed.df["status"].tolist() == ["FINISHED"] * 4
    assert resumed.df["run_id"][:3].tolist() == df["run_id"][:3].tolist()
    new = {r.info.run_id for r in _children(client, result.grid_run_id)} - before
    assert new == {resumed.df["run_id"][3]}
    assert client.get_run(result.grid_run_id).info.status == "FINISHED"
    again = nbtrack.grid(resume=result.grid_run_id, progress=False)  # nothing left to run
    assert {r.info.run_id for r in _children(client, result.grid_run_id)} == before | new
    assert again.df["status"].tolist() == ["FINISHED"] * 4


def test_an_unknown_param_is_refused_with_the_notebooks_names(store, client, tmp_path):
    nb = _copy(tmp_path, SMALL)
    with pytest.raises(UsageError) as e:
        nbtrack.grid(nb, params={"lr": [0.1], "batchsize": [32, 64]}, progress=False)
    assert str(e.value) == (
        "the notebook 'grid_small.ipynb' has no parameter 'batchsize'; "
        "its parameters cell sets: lr, batch_size, steps"
    )
    assert all_runs(client) == []  # nothing recorded, nothing ran
    plain = _copy(tmp_path, "train.ipynb")
    plain.write_text(plain.read_text().replace('"parameters"', '"other"'))
    with pytest.raises(UsageError, match="has no papermill parameters cell"):
        nbtrack.grid(plain, params={"lr": [0.1]}, progress=False)
    assert pickle.loads(pickle.dumps(e.value)).args == e.value.args


def test_several_tracked_cells_give_one_row_per_point(store, client, tmp_path):
    nb = _copy(tmp_path, "grid_two_cells.ipynb")
    result = nbtrack.grid(nb, params={"lr": [0.5, 1.0]}, experiment="grid-two", progress=False)
    df = result.df
    assert len(df) == 2 and set(df["runs"]) == {2}
    # metrics merged over the point's runs; a key both cells log is the later cell's
    assert df["metrics.prepared"].tolist() == [16.0, 16.0]
    assert df["metrics.score"].tolist() == [8.0, 16.0]
    assert df["metrics.trained"].tolist() == [1.0, 1.0]
    runs = result.runs
    assert len(runs) == 4 and sorted(set(runs["name"])) == ["prepare", "train"]
    assert all(
        client.get_run(i).data.tags["mlflow.parentRunId"] == result.grid_run_id
        for i in runs["run_id"]
    )
    assert df["run_id"].tolist() == runs[runs["name"] == "train"]["run_id"].tolist()


def test_concurrent_points_lose_no_metric_points(store, client, tmp_path):
    nb = _copy(tmp_path, SMALL)
    steps = 3000
    result = nbtrack.grid(
        nb,
        params={"lr": [0.001, 0.002, 0.003, 0.004], "batch_size": 32, "steps": steps},
        parallel=4,
        experiment="grid-metrics",
        progress=False,
    )
    assert result.df["status"].tolist() == ["FINISHED"] * 4
    for run_id in result.df["run_id"]:
        history = client.get_metric_history(run_id, "loss")
        assert sorted(m.step for m in history) == list(range(steps))


def test_cli_runs_a_grid_and_exits_with_its_outcome(store, client, tmp_path, capsys):
    nb = _copy(tmp_path, SMALL)
    code = cli.main(
        [
            *("grid", str(nb), "-p", "lr", "0.1", "2.0", "-p", "batch_size", "32", "64"),
            *("--exclude", "lr=0.1,batch_size=64", "-e", "grid-cli", "--metric", "score"),
            *("--parallel", "2", "--no-progress"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1  # one point failed
    assert "2 FINISHED" in out and "1 FAILED" in out and "diverged" in out
    assert "best score (max) 64 at lr=2.0, batch_size=32" in out
    assert cli.main(["grid", str(nb), "-p", "nope", "1"]) == 2
    assert "has no parameter 'nope'" in capsys.readouterr().err


def test_result_html_is_escaped(store, client, tmp_path):
    from nbtrack.grids.result import GridResult, PointRecord

    hostile = "<img src=x onerror=alert(1)>"
    result = GridResult(
        "0" * 32, hostile, f"/x/{hostile}.ipynb", [PointRecord(0, {"opt": hostile})]
    )
    page = result._repr_html_()
    assert hostile not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_a_result_shown_headless_is_its_summary_alone(store, client, tmp_path):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from nbtrack.grids.result import GridResult, PointRecord

    result = GridResult("0" * 32, "exp", "/x/nb.ipynb", [PointRecord(0, {"lr": 0.1})])
    InteractiveShell.instance()  # display() needs a shell; this one has no kernel: no frontend
    try:
        with capture_output() as shown:
            result._ipython_display_()
    finally:
        InteractiveShell.clear_instance()  # later tests are scripts, not shells
    [summary] = shown.outputs  # no comparison panel without a frontend to show it live
    assert summary.data["text/plain"] == repr(result)
    assert "nbtrack-grid" in summary.data["text/html"]


def test_a_result_shown_in_jupyterlab_opens_the_comparison_on_the_grid(store, client, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    client.create_experiment("grid-shown")
    nb = nbformat.v4.new_notebook()
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "from nbtrack.grids.result import GridResult, PointRecord\n"
            "GridResult('0' * 32, 'grid-shown', '/x/nb.ipynb', [PointRecord(0, {'lr': 0.1})])"
        )
    )
    # A real kernel with the session name JupyterLab gives it: a frontend shows widgets live.
    env = {**os.environ, "JPY_SESSION_NAME": str(tmp_path / "shown.ipynb")}
    NotebookClient(nb, timeout=120, kernel_name="python3").execute(env=env, cwd=str(tmp_path))
    summary, panel = nb.cells[0].outputs
    assert "nbtrack-grid" in summary["data"]["text/html"]
    assert "application/vnd.jupyter.widget-view+json" in panel["data"]
    assert panel["data"]["text/plain"].startswith("<nbtrack compare · grid-shown")


# -- Dask --------------------------------------------------------------------------------------


def test_dask_executor_on_a_local_cluster_gives_the_same_runs(store, client, tmp_path):
    import dask
    import distributed  # the dask extra, part of the dev install: no skip when it is missing

    nb = _copy(tmp_path, SMALL)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
    try:
        with distributed.Client(cluster) as dask_client:
            result = nbtrack.grid(
                nb,
                params={"lr": [0.1, 0.2], "batch_size": [32, 64]},
                experiment="grid-dask",
                client=dask_client,
                progress=False,
            )
    finally:
        cluster.close()
    assert result.df["status"].tolist() == ["FINISHED"] * 4
    children = _children(client, result.grid_run_id)
    got = sorted((r.data.params["lr"], r.data.params["batch_size"]) for r in children)
    assert got == [("0.1", "32"), ("0.1", "64"), ("0.2", "32"), ("0.2", "64")]
    assert {r.data.tags["nbtrack.grid.status"] for r in children} == {"FINISHED"}
    assert client.get_run(result.grid_run_id).data.tags["nbtrack.grid.executor"] == "dask"


def test_a_store_only_this_machine_sees_is_refused_for_remote_workers():
    class Remote:
        def run(self, fn):
            return {"tcp://10.0.0.7:40000": ("other-host", "0123"), "tcp://127.0.0.1:1": fn()}

    assert dask_executor.machine_local("http://mlflow.internal:5000") is None
    assert "loopback" in dask_executor.machine_local("http://127.0.0.1:5000")
    with pytest.raises(UsageError) as e:
        dask_executor.check_store_reachable(Remote(), "sqlite:////data/mlflow.db")
    assert "is a file on this machine, and Dask worker tcp://10.0.0.7:40000" in str(e.value)
    assert "mlflow server" in str(e.value)
    dask_executor.check_store_reachable(Remote(), "http://mlflow.internal:5000")  # reachable


def test_tasks_and_outcomes_cross_process_boundaries():
    task = PointTask("g", "a", "e", "1", 0, {"lr": 0.1}, "/nb.ipynb", "0" * 64, "sqlite:///x")
    outcome = PointOutcome(0, "FAILED", ("r",), {"m": 1.0}, "boom", "x = 1", "tb", 1.5)
    assert pickle.loads(pickle.dumps(task)) == task
    assert pickle.loads(pickle.dumps(outcome)) == outcome


# -- Ctrl-C ------------------------------------------------------------------------------------


def _kernel_that_dies_at_its_first_start(tmp_path: Path, monkeypatch) -> Path:
    """A kernelspec ``flaky`` whose first kernel exits before answering (as a kernel that
    never starts does); every later one is a normal ipykernel. Returns the first-start mark."""
    mark = tmp_path / "first-start"
    launcher = tmp_path / "flaky_launcher.py"
    launcher.write_text(
        textwrap.dedent(
            """
            import os, sys
            mark = sys.argv[1]
            if not os.path.exists(mark):
                open(mark, "w").close()
                sys.exit(3)
            os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *sys.argv[2:]])
            """
        )
    )
    spec_dir = tmp_path / "jupyter" / "kernels" / "flaky"
    spec_dir.mkdir(parents=True)
    argv = [sys.executable, str(launcher), str(mark), "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "flaky", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return mark


def test_a_point_whose_kernel_never_answers_starts_again_in_a_new_kernel(
    store, client, tmp_path, monkeypatch
):
    mark = _kernel_that_dies_at_its_first_start(tmp_path, monkeypatch)
    nb = _copy(tmp_path, "grid_slow.ipynb")
    doc = json.loads(nb.read_text())
    doc["metadata"]["kernelspec"] = {"name": "flaky", "display_name": "flaky", "language": "python"}
    nb.write_text(json.dumps(doc))
    result = nbtrack.grid(
        nb,
        params={"lr": [0.1, 0.2], "seconds": [0.5]},
        parallel=1,
        experiment="grid-flaky",
        progress=False,
    )
    assert mark.exists()  # the first kernel did die
    assert list(result.df["status"]) == ["FINISHED", "FINISHED"]
    children = _children(client, result.grid_run_id)
    assert sorted(r.data.params["lr"] for r in children) == ["0.1", "0.2"]
    assert all(r.data.metrics["tick"] == 4.0 for r in children)


def test_a_reproduction_whose_kernel_never_answers_starts_again(tmp_path, monkeypatch):
    from nbtrack.execution import runner

    mark = _kernel_that_dies_at_its_first_start(tmp_path, monkeypatch)
    nb = tmp_path / "plain.ipynb"
    doc = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": "c0",
                "metadata": {},
                "outputs": [],
                "source": ["print(6 * 7)"],
            }
        ],
        "metadata": {
            "kernelspec": {"name": "flaky", "display_name": "flaky", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    nb.write_text(json.dumps(doc))
    result = runner.execute(nb, tmp_path / "out.ipynb", timeout=300)
    assert mark.exists()
    assert result.success, result.message
    out = json.loads((tmp_path / "out.ipynb").read_text())
    assert out["cells"][0]["outputs"][0]["text"] == ["42\n"]


def test_ctrl_c_kills_the_running_points_and_leaves_nothing_running(store, client, tmp_path):
    nb = _copy(tmp_path, "grid_slow.ipynb")
    script = tmp_path / "run_grid.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import nbtrack
            nbtrack.grid({str(nb)!r}, params={{"lr": [0.1, 0.2, 0.3], "seconds": [600]}},
                         parallel=2,
                         experiment="grid-stop", progress=False)
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            running = [r for r in all_runs(client, "grid-stop") if r.info.status == "RUNNING"]
            ticking = [r for r in running if r.data.metrics.get("tick", 0) >= 5]
            if len(ticking) == 2:
                break
            if proc.poll() is not None:  # the grid ended: say how its points did
                states = [
                    (r.info.status, r.data.tags.get("nbtrack.grid.error"))
                    for r in all_runs(client, "grid-stop")
                ]
                pytest.fail(f"the grid ended early: {proc.communicate()} {states}")
            time.sleep(0.5)
        else:
            pytest.fail("the grid's points did not start")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "stopped" in err and "resume=" in err

    runs = all_runs(client, "grid-stop")
    assert [r for r in runs if r.info.status == "RUNNING"] == []
    [parent] = [r for r in runs if "nbtrack.grid.points" in r.data.tags]
    assert parent.info.status == "KILLED"
    children = [r for r in runs if r is not parent]
    assert len(children) == 2  # the third point never started
    for r in children:
        assert r.info.status == "KILLED"
        assert r.data.tags["nbtrack.grid.status"] == "KILLED"
        assert r.data.metrics["tick"] >= 5  # what it logged before the stop is kept
        assert "nbtrack/grid/output.ipynb" in [
            a.path for a in client.list_artifacts(r.info.run_id, "nbtrack/grid")
        ]
    # their kernels are gone
    import psutil

    # The grid returns once its points are recorded; each worker then lets its kernel exit
    # (and kills one that hangs past 5 s). Wait for that, bounded, rather than a fixed time.
    def alive(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    pids = {int(r.data.tags["nbtrack.pid"]): r.info.run_id for r in children}
    deadline = time.monotonic() + 90
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid, run_id in pids.items():
        assert not alive(pid), f"kernel {pid} of run {run_id} is still running"
    loaded = sweeprun.load(parent.info.run_id)
    assert sorted(loaded.df["status"]) == ["KILLED", "KILLED", "PENDING"]
