"""The tracker without IPython: ``nbtrack.run()`` as a script uses it, against a real store."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from support import all_runs, artifact_text

import nbtrack
from nbtrack import store as store_module
from nbtrack.errors import DataNotFound, NbtrackError, ParamConflict, StoreError, UsageError
from nbtrack.tracking import tracker


def test_run_block_records_script_source_params_seed_and_data(store, client, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("1,2\n3,4\n")
    with nbtrack.run(
        experiment="script", name="s1", seed=3, data=[str(data)], params={"lr": 0.1}
    ) as r:
        nbtrack.log(step=0, loss=2.0)
        nbtrack.log(loss=1.0)  # automatic step: one more than the last
        nbtrack.log_params(depth=4)
    [run] = all_runs(client, "script")
    assert run.info.run_id == r.run_id and run.info.status == "FINISHED"
    p = run.data.params
    assert (p["lr"], p["depth"], p["random_seed"]) == ("0.1", "4", "3")
    assert len(p["data_hash"]) == 64
    assert run.data.tags["mlflow.source.type"] == "LOCAL"
    assert [(m.step, m.value) for m in client.get_metric_history(r.run_id, "loss")] == [
        (0, 2.0),
        (1, 1.0),
    ]
    data_json = json.loads(artifact_text(client, r.run_id, "nbtrack/data.json"))
    assert data_json[0]["path"] == str(data) and data_json[0]["files"] == 1


def test_exception_fails_the_run_and_keeps_the_traceback(store, client):
    with pytest.raises(ZeroDivisionError), nbtrack.run(experiment="fail") as r:
        nbtrack.log(step=0, loss=1.0)
        1 / 0  # noqa: B018
    run = client.get_run(r.run_id)
    assert run.info.status == "FAILED"
    assert "ZeroDivisionError" in artifact_text(client, r.run_id, "nbtrack/traceback.txt")
    assert run.data.metrics["loss"] == 1.0


def test_keyboard_interrupt_kills_the_run(store, client):
    with pytest.raises(KeyboardInterrupt), nbtrack.run(experiment="kill") as r:
        raise KeyboardInterrupt
    assert client.get_run(r.run_id).info.status == "KILLED"


def test_param_value_over_mlflow_limit_goes_to_an_artifact(store, client):
    long = "x" * 7000
    with nbtrack.run(experiment="long", params={"vocab": long}) as r:
        pass
    p = client.get_run(r.run_id).data.params
    assert p["vocab"] == "artifact:nbtrack/params/vocab.txt"
    assert artifact_text(client, r.run_id, "nbtrack/params/vocab.txt") == long


def test_relogging_a_param_with_another_value_is_refused(store, client):
    with nbtrack.run(experiment="p") as r:
        nbtrack.log_params(lr=0.1)
        nbtrack.log_params(lr=0.1)  # same value: fine
        with pytest.raises(ParamConflict, match=r"'lr' is already '0\.1'"):
            nbtrack.log_params(lr=0.2)
    assert client.get_run(r.run_id).data.params["lr"] == "0.1"


def test_missing_data_fails_before_anything_is_written(store, client):
    with (
        pytest.raises(DataNotFound, match=r"nope\.csv"),
        nbtrack.run(experiment="nodata", data=["nope.csv"]),
    ):
        pass
    assert all_runs(client) == []


def test_nested_runs_and_runner_parent(store, client, monkeypatch):
    with nbtrack.run(experiment="outer") as outer, nbtrack.run(experiment="outer") as inner:
        assert tracker.active() is inner
    assert client.get_run(inner.run_id).data.tags["mlflow.parentRunId"] == outer.run_id
    # a runner (grid, reproduce) passes its parent run and experiment through the environment
    monkeypatch.setenv("NBTRACK_RUNNER_PARENT", outer.run_id)
    monkeypatch.setenv("NBTRACK_RUNNER_EXPERIMENT", "grid-exp")
    monkeypatch.setenv("NBTRACK_RUNNER_TAGS", json.dumps({"nbtrack.grid": "g1"}))
    with nbtrack.run(experiment="ignored") as child:
        pass
    run = client.get_run(child.run_id)
    assert run.data.tags["mlflow.parentRunId"] == outer.run_id
    assert run.data.tags["nbtrack.grid"] == "g1"
    assert client.get_experiment(run.info.experiment_id).name == "grid-exp"


def test_experiment_precedence(store, monkeypatch):
    spec, src = tracker.RunSpec(), tracker.Source(kind="NOTEBOOK", path="/x/train.ipynb", code="")
    assert tracker.experiment_for(spec, src) == "train"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-mlflow")
    assert tracker.experiment_for(spec, src) == "from-mlflow"
    monkeypatch.setenv("NBTRACK_EXPERIMENT", "from-nbtrack")
    assert tracker.experiment_for(spec, src) == "from-nbtrack"
    spec.experiment = "flag"
    assert tracker.experiment_for(spec, src) == "flag"
    monkeypatch.setenv("NBTRACK_RUNNER_EXPERIMENT", "runner")
    assert tracker.experiment_for(spec, src) == "runner"


def test_an_active_mlflow_run_is_not_silently_nested(store):
    import mlflow

    # an explicit experiment: MLflow's fluent API keeps the last set_experiment of the process
    with mlflow.start_run(experiment_id=store_module.experiment_id("outer-mlflow")):
        with pytest.raises(UsageError, match="--nested"), nbtrack.run(experiment="x"):
            pass
        with nbtrack.run(experiment="x", nested=True) as child:
            pass
    assert child.status == "FINISHED"


def test_unreachable_store_raises_store_error_quickly(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("NBTRACK_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(StoreError) as err, nbtrack.run(experiment="down"):
        pass
    assert f"127.0.0.1:{port}" in str(err.value)


def test_orphaned_run_of_a_dead_process_is_closed(store, client):
    code = (
        "import os, nbtrack\n"
        "from nbtrack.tracking import tracker\n"
        "r = tracker.start(tracker.RunSpec(experiment='orphan'), tracker.script_source(None))\n"
        "print(r.run_id, flush=True)\n"
        "os._exit(0)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, check=True
    )
    run_id = out.stdout.split()[-1]
    assert client.get_run(run_id).info.status == "RUNNING"
    assert run_id in nbtrack.close_orphans()
    assert client.get_run(run_id).info.status == "KILLED"
    assert nbtrack.close_orphans() == []


def test_close_orphans_returns_a_logged_run_once_it_is_closed_whoever_took_it_over(store, client):
    """A dead process's run with a metric log is ended by the sender that takes the log over.
    In a kernel, the extension's warm-up thread may take it over while the user's explicit
    ``nbtrack.close_orphans()`` runs: the call still waits for it and returns it. (This does
    not force the two to meet; four kernels at once in test_magic's dead-kernel test did, 3
    times in 4, before the fix.)"""
    dead = (
        "import os, nbtrack\n"
        "from nbtrack.tracking import tracker\n"
        "r = tracker.start(tracker.RunSpec(experiment='orphan'), tracker.script_source(None))\n"
        "nbtrack.log(step=0, loss=1.0)\n"
        "nbtrack.flush()\n"
        "print(r.run_id, flush=True)\n"
        "os._exit(0)\n"
    )
    probe = (
        "import threading, nbtrack\n"
        "from nbtrack import store\n"
        "from nbtrack.tracking import process_metrics\n"
        "def warm_up():\n"  # as the extension's: MLflow imported, then the logs taken over
        "    store.configure()\n"
        "    process_metrics.catch_up()\n"
        "warmup = threading.Thread(target=warm_up)\n"
        "warmup.start()\n"
        "print(' '.join(nbtrack.close_orphans()), flush=True)\n"
        "warmup.join()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", dead], capture_output=True, text=True, env=os.environ
    )
    run_id = out.stdout.split()[-1]
    assert client.get_run(run_id).info.status == "RUNNING"
    closed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=os.environ
    )
    assert closed.stdout.split() == [run_id], closed.stderr
    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == [1.0]


def test_live_process_runs_are_not_orphans(store, client):
    with nbtrack.run(experiment="alive") as r:
        assert r.run_id not in nbtrack.close_orphans()
    assert client.get_run(r.run_id).info.status == "FINISHED"


def test_log_outside_a_run_says_what_to_do(store):
    with pytest.raises(UsageError, match="%%track"):
        nbtrack.log(loss=1.0)


def test_disabled_tracking_runs_the_block_untracked(store, client, monkeypatch):
    monkeypatch.setenv("NBTRACK_DISABLE", "1")
    with nbtrack.run(experiment="off"):
        nbtrack.log(step=0, loss=1.0)
    nbtrack.log(loss=2.0)  # no run and tracking is off: accepted, recorded nowhere
    assert all_runs(client) == []


def test_store_uri_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert store_module.absolute_uri("sqlite:///rel/m.db") == f"sqlite:///{tmp_path}/rel/m.db"
    assert store_module.absolute_uri("sqlite:////abs/m.db") == "sqlite:////abs/m.db"
    assert store_module.absolute_uri("http://h:5000") == "http://h:5000"
    assert store_module.absolute_uri("mlruns") == (tmp_path / "mlruns").as_uri()


def test_artifacts_live_beside_a_sqlite_store(store, client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with nbtrack.run(experiment="beside") as r:
        pass
    uri = client.get_run(r.run_id).info.artifact_uri
    assert uri.startswith((tmp_path / "store" / "mlruns").as_uri())


def test_errors_pickle_with_their_fields():
    import pickle

    from nbtrack import errors

    for err in (
        errors.UsageError("bad flag", "try --x"),
        errors.DataNotFound("a.csv"),
        errors.InvalidMetric("k", "'v'", "must be a number"),
        errors.ParamConflict("lr", "0.1", "0.2"),
        errors.NotFound("run", "abc"),
        errors.StoreError("log", "disk full", "sqlite:///x"),
        errors.MissingExtra("curves", "widgets"),
    ):
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err) and str(err)
        assert isinstance(back, NbtrackError)


def test_import_nbtrack_is_light():
    code = (
        "import sys, nbtrack\n"
        "heavy = [m for m in ('mlflow', 'IPython', 'plotly', 'torch', 'ipywidgets', 'pandas')"
        " if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_users_own_secret_named_param_is_warned_about_and_kept_out_of_the_record(
    store, client, tmp_path
):
    """mlflow.log_param("smtp_password", v) stores v as given (nbtrack cannot intercept it): the
    run says so once, and nothing nbtrack writes (the traceback here) repeats the value."""
    secret = "Smtp-" + "q7W2e9R4t6Y1"
    script = tmp_path / "job.py"
    script.write_text(
        "import mlflow, nbtrack\n"
        "value = open('value.txt').read()\n"  # a neutral name: no rule can see it is secret
        "with nbtrack.run(experiment='own'):\n"
        "    mlflow.log_param('smtp_password', value)\n"
        "    raise ValueError('mail server refused ' + value)\n"
    )
    (tmp_path / "value.txt").write_text(secret)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=os.environ
    )
    assert done.returncode == 1 and "ValueError" in done.stderr
    warning = [line for line in done.stderr.splitlines() if "smtp_password" in line]
    assert len(warning) == 1 and "looks like a secret" in warning[0], done.stderr
    [run] = all_runs(client, "own")
    assert run.data.params["smtp_password"] == secret  # MLflow's, as the user logged it
    traceback = artifact_text(client, run.info.run_id, "nbtrack/traceback.txt")
    assert "mail server refused [REDACTED]" in traceback and secret not in traceback


@pytest.mark.parametrize("bad", ["../etc", "/abs", "a//b", "tab\there", "x" * 251, ""])
def test_a_param_name_mlflow_refuses_is_the_users_sentence_and_the_run_goes_on(store, client, bad):
    with nbtrack.run(experiment="names") as r:
        with pytest.raises(UsageError, match="is not one MLflow accepts"):
            nbtrack.log_params(**{bad: "1", "fine": "2"})
        nbtrack.log_params(depth=3)  # nothing of the refused call was sent
        nbtrack.log(step=0, loss=1.0)
    run = client.get_run(r.run_id)
    assert run.info.status == "FINISHED"
    assert "fine" not in run.data.params and run.data.params["depth"] == "3"


def test_a_flag_with_a_bad_name_stops_before_any_run(store, client):
    with pytest.raises(UsageError, match=r"tag name '\.\./x'"):
        tracker.start(
            tracker.RunSpec(experiment="flags", tags={"../x": "1"}),
            tracker.Source(kind="LOCAL", path=None, code=""),
        )
    assert all_runs(client, "flags") == []


def test_a_cell_of_thousands_of_literals_keeps_the_first_ones_and_says_so(store, client):
    from nbtrack.tracking import params as cellparams

    n = cellparams.MAX_CELL + 1500
    code = "\n".join(f"x{i} = {i}" for i in range(n))
    with pytest.warns(UserWarning, match="1500 more are left out"):
        run = tracker.start(
            tracker.RunSpec(experiment="many"), tracker.Source(kind="LOCAL", path=None, code=code)
        )
    run.finish()
    params = client.get_run(run.run_id).data.params
    assert {f"x{i}" for i in range(cellparams.MAX_CELL)} <= set(params)
    assert f"x{cellparams.MAX_CELL}" not in params
    note = json.loads(artifact_text(client, run.run_id, "nbtrack/params.json"))["(dropped)"]
    assert note["cell"] == 1500
