"""%%track in a real kernel: notebooks under tests/notebooks run with nbclient, and the test reads
back what MLflow recorded, row by row of the run-record contract (DESIGN.md)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import nbformat
import pytest
from support import all_runs, artifact_text, copy_notebook, execute, outputs_text

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def project(tmp_path) -> Path:
    """A small git project holding the training notebook and its data, with one uncommitted
    change (so the run must record a dirty tree and its diff)."""
    proj = tmp_path / "proj"
    nb = copy_notebook("train.ipynb", proj)
    data = proj / "data"
    data.mkdir()
    rows = []
    for i in range(40):
        x1, x2 = (i % 7) / 7, (i % 5) / 5
        rows.append(f"{x1:.3f},{x2:.3f},1,{int(x1 + x2 > 0.9)}")
    (data / "train.csv").write_text("\n".join(rows) + "\n")
    (proj / "README.md").write_text("demo project\n")
    _git(proj, "init", "-q", "-b", "main")
    _git(proj, "config", "user.email", "t@example.com")
    _git(proj, "config", "user.name", "t")
    _git(
        proj,
        "remote",
        "add",
        "origin",
        "https://alice:ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/acme/proj.git",
    )
    _git(proj, "add", ".")
    _git(proj, "commit", "-q", "-m", "init")
    (proj / "README.md").write_text("demo project, edited\n")
    assert nb.exists()
    return proj


def test_training_notebook_records_the_whole_contract(store, client, project):
    nb_path = project / "train.ipynb"
    executed = execute(nb_path, project)

    runs = all_runs(client, "contract")
    assert len(runs) == 1
    run = runs[0]
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics

    # the cell behaves like an untracked cell: last expression shown, variables kept
    tracked_cell, next_cell = executed.cells[3], executed.cells[4]
    results = [o for o in tracked_cell.outputs if o.output_type == "execute_result"]
    assert results and results[0]["data"]["text/plain"] == repr(round(metrics["val_acc"], 3))
    assert "(3,)" in outputs_text(next_cell)
    # ...and a run card follows, in HTML and text
    card = outputs_text(tracked_cell)
    assert run.info.run_id in card and "FINISHED" in card and "nbtrack-card" in card

    assert run.info.status == "FINISHED"
    assert run.info.run_name == "baseline"
    # notebook path, kind; who, where
    assert tags["mlflow.source.name"] == str(nb_path)
    assert tags["mlflow.source.type"] == "NOTEBOOK"
    assert tags["mlflow.user"]
    assert tags["nbtrack.host"] == socket.gethostname()
    # papermill gives the kernel no id and a temporary connection file: the kernel's session id
    kernel = tags["nbtrack.kernel"]
    assert kernel not in ("", "none") and not kernel.startswith("tmp") and len(kernel) >= 16
    # code version
    commit = _git(project, "rev-parse", "HEAD")
    assert tags["mlflow.source.git.commit"] == commit
    assert params["git_commit"] == commit
    assert tags["mlflow.source.git.branch"] == "main"
    assert tags["mlflow.source.git.repoURL"].endswith("github.com/acme/proj.git")
    assert "ghp_" not in tags["mlflow.source.git.repoURL"]
    assert tags["nbtrack.git.dirty"] == "true"
    assert "demo project, edited" in artifact_text(client, run.info.run_id, "nbtrack/git.diff")
    # notebook version
    assert tags["nbtrack.notebook.sha256"] == hashlib.sha256(nb_path.read_bytes()).hexdigest()
    cell_py = artifact_text(client, run.info.run_id, "nbtrack/cell.py")
    assert cell_py.startswith("%%track --experiment contract")
    assert tags["nbtrack.cell.sha256"] == hashlib.sha256(cell_py.encode()).hexdigest()
    snapshot_text = artifact_text(client, run.info.run_id, "nbtrack/notebook.ipynb")
    assert len(json.loads(snapshot_text)["cells"]) == 5
    # nothing in it to redact or drop: the snapshot is the saved file, and hashes to the tag
    assert tags["nbtrack.notebook.snapshot"] == "exact"
    assert hashlib.sha256(snapshot_text.encode()).hexdigest() == tags["nbtrack.notebook.sha256"]
    history = artifact_text(client, run.info.run_id, "nbtrack/history.py")
    assert "%load_ext nbtrack" in history and "epochs = 5" in history
    assert history.index("epochs = 5") < history.index("%%track")
    # config: literal assignments, the parameters cell, -p
    assert params["batch_size"] == "16"
    assert params["layers"] == "[8, 4]"
    assert params["epochs"] == "5" and params["lr"] == "0.5"
    assert params["optimizer"] == "sgd"
    assert tags["team"] == "vision"
    # seeds
    assert params["random_seed"] == "7"
    # data version
    data_file = project / "data" / "train.csv"
    digest = hashlib.sha256(data_file.read_bytes()).hexdigest()
    assert len(params["data_hash"]) == 64
    assert run.inputs.dataset_inputs[0].dataset.digest == digest[:36]
    assert json.loads(run.inputs.dataset_inputs[0].dataset.source)["uri"].endswith("data/train.csv")
    # environment
    assert params["python_version"].count(".") == 2
    assert params["numpy_version"]
    assert "numpy==" in artifact_text(client, run.info.run_id, "nbtrack/requirements.txt")
    env = json.loads(artifact_text(client, run.info.run_id, "nbtrack/environment.json"))
    assert env["cpu_count"] >= 1 and env["platform"]
    # metrics: nbtrack.log and plain mlflow.log_metric
    history_pts = client.get_metric_history(run.info.run_id, "val_acc")
    assert [m.step for m in history_pts] == [0, 1, 2, 3, 4]
    assert metrics["plain_metric"] == 1.5
    assert "train_loss" in metrics


def test_seed_makes_the_cell_replayable(store, client, project):
    first = execute(project / "train.ipynb", project)
    second = execute(project / "train.ipynb", project)
    a, b = all_runs(client, "contract")
    # the seeded numpy draw in the cell is the same in both runs
    assert outputs_text(first.cells[4]) == outputs_text(second.cells[4])
    assert a.data.metrics == b.data.metrics


def test_the_markdown_above_a_tracked_cell_becomes_the_runs_description(store, client, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A notebook\nabout everything"),
        nbformat.v4.new_code_cell("%load_ext nbtrack"),
        nbformat.v4.new_markdown_cell("## Warm-up run\nlr 0.1 with a warm-up, to compare"),
        nbformat.v4.new_code_cell("%%track -e described --no-card\nlr = 0.1"),
    ]
    nbformat.write(nb, tmp_path / "d.ipynb")
    execute(tmp_path / "d.ipynb", tmp_path)
    [run] = all_runs(client, "described")
    note = "## Warm-up run\nlr 0.1 with a warm-up, to compare"
    assert run.data.tags["mlflow.note.content"] == note  # the MLflow UI's description


def test_without_seed_a_seed_is_drawn_applied_and_logged(store, client, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext nbtrack"),
        nbformat.v4.new_code_cell("%%track -e unseeded\nimport random\nx = random.random()\nx"),
    ]
    nbformat.write(nb, tmp_path / "u.ipynb")
    out = execute(tmp_path / "u.ipynb", tmp_path)
    [run] = all_runs(client, "unseeded")
    seed = int(run.data.params["random_seed"])
    import random

    random.seed(seed)
    shown = next(o for o in out.cells[1].outputs if o.output_type == "execute_result")
    assert shown["data"]["text/plain"] == repr(random.random())


def test_failing_cell_is_failed_with_traceback_and_stops_the_notebook(store, client, tmp_path):
    nb_path = copy_notebook("raises.ipynb", tmp_path)
    executed = execute(nb_path, tmp_path, allow_errors=True)
    cell = executed.cells[1]
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert errors and errors[0].ename == "ValueError" and "boom" in errors[0].evalue
    # the user's own traceback: their line, not nbtrack's machinery
    tb = ANSI.sub("", "\n".join(errors[0].traceback))
    assert 'raise ValueError("boom from user code")' in tb and "nbtrack/" not in tb
    [run] = all_runs(client, "failing")
    assert run.info.status == "FAILED"
    assert "boom from user code" in artifact_text(client, run.info.run_id, "nbtrack/traceback.txt")
    # metrics logged before the failure are kept
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [1.0, 0.5]


def test_failing_cell_stops_papermill(store, client, tmp_path):
    import papermill
    from papermill.exceptions import PapermillExecutionError

    nb_path = copy_notebook("raises.ipynb", tmp_path)
    with pytest.raises(PapermillExecutionError) as err:
        papermill.execute_notebook(
            str(nb_path), str(tmp_path / "out.ipynb"), cwd=str(tmp_path), progress_bar=False
        )
    assert err.value.ename == "ValueError"
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert "must not run" not in outputs_text(out.cells[2])


def test_a_failing_tracked_cell_shows_the_users_traceback(store, client, tmp_path):
    """What the user sees and what the run records start at the user's line, numbered as the
    cell reads without the magic line; they match the same cell run untracked."""
    bodies = ["x = 1\n\n1/0", "x = 0\ndivide(x)", "x = 1\n1/"]
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext nbtrack"),
        nbformat.v4.new_code_cell("def divide(v):\n    return 1 / v"),
    ]
    for i, body in enumerate(bodies):
        nb.cells.append(nbformat.v4.new_code_cell(f"%%track -e tb{i} --no-card --no-live\n{body}"))
        nb.cells.append(nbformat.v4.new_code_cell(body))
    nbformat.write(nb, tmp_path / "tb.ipynb")
    executed = execute(tmp_path / "tb.ipynb", tmp_path, allow_errors=True)

    def shown(cell) -> str:
        [err] = [o for o in cell.outputs if o.output_type == "error"]
        return re.sub(r"In\[\d+\]", "In[_]", ANSI.sub("", "\n".join(err.traceback)))

    for i in range(len(bodies)):
        tracked, untracked = executed.cells[2 + 2 * i], executed.cells[3 + 2 * i]
        assert shown(tracked) == shown(untracked)
        assert "nbtrack" not in shown(tracked) and "_begin_cell" not in shown(tracked)
    assert re.search(r"Cell In\[_\], line 3\n(.*\n)*----> 3 1/0", shown(executed.cells[2]))
    assert "Cell In[_], line 2, in divide(v)" in shown(executed.cells[4])
    assert "line 2" in shown(executed.cells[6]) and "SyntaxError" in shown(executed.cells[6])

    def recorded(experiment: str) -> list[tuple[str, str, str]]:
        [run] = all_runs(client, experiment)
        assert run.info.status == "FAILED"
        text = artifact_text(client, run.info.run_id, "nbtrack/traceback.txt")
        assert "nbtrack" not in text and "IPython" not in text, text
        return re.findall(r"line (\d+), in (\S+)\n +(.*)", text)

    assert recorded("tb0") == [("3", "<module>", "1/0")]
    assert recorded("tb1") == [("2", "<module>", "divide(x)"), ("2", "divide", "return 1 / v")]
    assert all_runs(client, "tb2") == []  # the cell did not compile: nothing ran


def test_interrupted_cell_is_killed_and_keeps_its_metrics(store, client, tmp_path):
    from nbclient.exceptions import CellExecutionError

    nb_path = copy_notebook("interrupted.ipynb", tmp_path)
    # The tracked cell writes its kernel's pid once its point is logged; the test then sends
    # SIGINT, as the stop button does. An event, not a timeout that load can stretch.
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            execute(nb_path, tmp_path, timeout=900)
        except BaseException as e:  # handed to the test's thread
            outcome["error"] = e

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    marker = tmp_path / "interrupt-me.pid"
    deadline = time.monotonic() + 600
    while not marker.exists() and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), f"the tracked cell never logged its point: {outcome}"
    os.kill(int(marker.read_text()), signal.SIGINT)
    worker.join(600)
    assert not worker.is_alive()
    assert isinstance(outcome.get("error"), CellExecutionError), outcome
    assert "KeyboardInterrupt" in str(outcome["error"])
    [run] = all_runs(client, "interrupted")
    assert run.info.status == "KILLED"
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [1.0]


def test_dead_kernel_run_is_closed_as_killed_by_the_next_kernel(store, client, tmp_path):
    from nbclient.exceptions import DeadKernelError

    nb_path = copy_notebook("dead.ipynb", tmp_path)
    with pytest.raises(DeadKernelError):
        execute(nb_path, tmp_path, timeout=180)
    [run] = all_runs(client, "dead")
    assert run.info.status == "RUNNING"
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [1.0]

    # the next kernel that loads the extension in this project closes it: an explicit call
    # returns once it is closed (its points were flushed, but its metric log is still there,
    # so the call takes the log over and ends the run, even before the warm-up gets to it)
    probe = nbformat.v4.new_notebook()
    probe.cells = [
        nbformat.v4.new_code_cell(
            "%load_ext nbtrack\nimport nbtrack\nprint('closed', nbtrack.close_orphans())"
        )
    ]
    nbformat.write(probe, tmp_path / "probe.ipynb")
    executed = execute(tmp_path / "probe.ipynb", tmp_path)
    printed = "".join(o.get("text", "") for o in executed.cells[0].outputs)
    assert run.info.run_id in printed
    assert client.get_run(run.info.run_id).info.status == "KILLED"
    assert (
        "ended during the run" in client.get_run(run.info.run_id).data.tags["nbtrack.killed_reason"]
    )


SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "GITHUB_TOKEN": "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "MY_SERVICE_PASSWORD": "correct-horse-battery-staple",
}


def test_secrets_never_reach_mlflow(store, client, tmp_path):
    nb_path = copy_notebook("secrets.ipynb", tmp_path)
    execute(nb_path, tmp_path, env=SECRETS)
    [run] = all_runs(client, "secrets")
    everything = json.dumps(
        {"params": run.data.params, "tags": run.data.tags, "metrics": run.data.metrics}
    )
    for path in (
        "nbtrack/cell.py",
        "nbtrack/history.py",
        "nbtrack/notebook.ipynb",
        "nbtrack/environment.json",
    ):
        everything += artifact_text(client, run.info.run_id, path)
    for value in SECRETS.values():
        assert value not in everything
    for leaked in (
        "sk-proj-4fG7hJ2kL9mN3pQ8rS5tV1wX6yZ0aB2cD4eF",
        "hunter2hunter2",
        "Sup3rS3cretPassw0rd",
    ):
        assert leaked not in everything
    # the names survive, so the record still says what was configured
    assert "AWS_SECRET_ACCESS_KEY" in everything and "db_url" in everything
    assert run.info.status == "FINISHED"


def test_bad_input_gets_one_sentence_and_records_nothing(store, client, tmp_path):
    nb_path = copy_notebook("bad_input.ipynb", tmp_path)
    executed = execute(nb_path, tmp_path, allow_errors=True)

    def usage_error(i: int) -> str:
        # IPython shows a UsageError as one line on stderr, without a traceback
        text = outputs_text(executed.cells[i])
        assert text.startswith("UsageError: ") and text.count("\n") <= 1, text
        assert "ran" not in text
        return text

    assert "--experimnt" in usage_error(1)
    assert "KEY=VALUE" in usage_error(2)
    assert "no/such/file.csv" in usage_error(3)
    assert "--seed" in usage_error(4)
    # flags that fail before the cell runs leave nothing behind: the only runs are those of
    # the cells below, which fail inside the user's code
    names = {client.get_experiment(r.info.experiment_id).name for r in all_runs(client)}
    assert names == {"bad", "bad2", "bad3"}

    def error(i: int):
        [err] = [o for o in executed.cells[i].outputs if o.output_type == "error"]
        tb = ANSI.sub("", "\n".join(err.traceback))
        # nbtrack's user errors: the sentence alone (IPython's short form, %tb for the frames)
        assert "%tb" in tb and "writer.py" not in tb and "tracker.py" not in tb, tb
        assert f"{err.ename}: {err.evalue}" in tb
        return err

    bad_key = error(5)
    assert bad_key.ename == "InvalidMetric" and "'bad key!'" in bad_key.evalue
    bad_value = error(6)
    assert bad_value.ename == "InvalidMetric" and "'high'" in bad_value.evalue
    relogged = error(7)
    assert relogged.ename == "ParamConflict" and "'lr'" in relogged.evalue


def test_usage_error_stops_papermill(store, client, tmp_path):
    import papermill
    from papermill.exceptions import PapermillExecutionError

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext nbtrack"),
        nbformat.v4.new_code_cell("%%track --data missing.csv\nprint('ran')"),
        nbformat.v4.new_code_cell("print('after')"),
    ]
    nbformat.write(nb, tmp_path / "u.ipynb")
    with pytest.raises(PapermillExecutionError) as err:
        papermill.execute_notebook(
            str(tmp_path / "u.ipynb"),
            str(tmp_path / "o.ipynb"),
            kernel_name="python3",
            progress_bar=False,
        )
    assert err.value.exec_count == 2  # stopped at the tracked cell
    out = nbformat.read(tmp_path / "o.ipynb", as_version=4)
    [tracked] = [c for c in out.cells if c.source.startswith("%%track")]
    assert outputs_text(tracked).startswith("UsageError: data input 'missing.csv'")
    assert all("after" not in outputs_text(c) for c in out.cells)


def test_values_the_cell_reads_from_earlier_cells_are_params_in_a_kernel(store, client, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext nbtrack"),
        nbformat.v4.new_code_cell(
            "import math\nn_estimators = 500\nparams = {'max_depth': 3, 'model': {'kind': 'gbm'}}"
        ),
        nbformat.v4.new_code_cell(
            "%%track -e ns-kernel --no-card\nscore = n_estimators * params['max_depth'] * math.pi"
        ),
        nbformat.v4.new_code_cell(
            "%%track -e ns-kernel --no-card --no-auto-params\nscore = n_estimators + 1"
        ),
    ]
    nbformat.write(nb, tmp_path / "ns.ipynb")
    execute(tmp_path / "ns.ipynb", tmp_path)
    exp = client.get_experiment_by_name("ns-kernel").experiment_id
    assert len(client.search_runs([exp])) == 2
    [run] = client.search_runs([exp], filter_string="params.n_estimators = '500'")
    p = run.data.params
    assert (p["max_depth"], p["model.kind"]) == ("3", "gbm")
    assert not {"params", "math", "score"} & set(p)
    sources = json.loads(artifact_text(client, run.info.run_id, "nbtrack/params.json"))
    assert sources["n_estimators"] == {"value": "500", "source": "namespace"}
    assert sources["model.kind"]["source"] == "namespace"


def test_the_python_apis_user_errors_show_their_sentence_not_nbtracks_frames(store, tmp_path):
    """In a notebook, ``nbtrack.promote`` & co. raising a UserError show one line: the sentence.
    Inside %%track the run still fails; other exceptions keep their whole traceback."""
    from mlflow import MlflowClient
    from support import code_notebook

    nb_path = code_notebook(
        tmp_path / "errors.ipynb",
        [
            "import nbtrack\nnbtrack.log(loss=1.0)",  # no run: a UsageError, without %load_ext
            "%load_ext nbtrack",
            "nbtrack.promote('no-such-model', version=1)",
            "%%track --experiment errs\nnbtrack.log(**{'../bad': 1.0})",
            "import json\njson.loads('{')",  # not nbtrack's: its traceback stays
        ],
    )
    nb = execute(nb_path, tmp_path, allow_errors=True, timeout=300)
    errors = [
        next((o for o in cell.outputs if o.output_type == "error"), None) for cell in nb.cells
    ]
    for i in (0, 2, 3):
        shown = re.sub(r"\x1b\[[0-9;]*m", "", "".join(errors[i].traceback))
        assert "nbtrack/" not in shown and len(errors[i].traceback) <= 2, shown
        assert f"{errors[i].ename}: " in shown and "%tb" in shown  # the full one, on request
    assert "%%track" in errors[0].evalue
    assert errors[1] is None
    assert len(errors[4].traceback) > 1 and errors[4].ename == "JSONDecodeError"
    [run] = all_runs(MlflowClient(), "errs")
    assert run.info.status == "FAILED"
