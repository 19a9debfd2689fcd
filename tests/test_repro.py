"""nbtrack.reproduce: real papermill executions against a real store. Each test makes an original
run (a notebook executed the way papermill or JupyterLab would), then reproduces it."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import NOTEBOOKS, ROOT, all_runs, artifact_text, code_notebook, execute

import nbtrack
from nbtrack.capture.redaction import Redactor
from nbtrack.errors import CannotReproduce, NotFound, UsageError
from nbtrack.execution import runner
from nbtrack.frontends import cli
from nbtrack.reproduction import build as reprobuild
from nbtrack.reproduction import checks as reprocheck
from nbtrack.reproduction import notebook_file, randomness
from nbtrack.reproduction.report import Check, Failure, MetricDiff, ReproReport


def _points(path: Path, flip: int = 0) -> None:
    """A small separable data set; ``flip`` labels turned over (the data "changed")."""
    rows = []
    for i in range(60):
        x1, x2 = (i % 7) / 7 - 0.4, (i % 11) / 11 - 0.5
        label = int(x1 + 0.5 * x2 > 0)
        if i < flip:
            label = 1 - label
        rows.append(f"{x1:.4f},{x2:.4f},1,{label}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")


def _original(name: str, folder: Path, parameters=None, env=None) -> Path:
    """Run a fixture notebook as papermill would, with the notebook's path known (as
    nbtrack's runners and JupyterLab tell the kernel); returns the notebook's path."""
    folder.mkdir(parents=True, exist_ok=True)
    nb = folder / name
    shutil.copy(NOTEBOOKS / name, nb)
    result = runner.execute(nb, folder / "out" / name, parameters, env=env, timeout=300)
    assert result.success, result.message + "\n" + result.log[-2000:]
    return nb


def _written(folder: Path, name: str, cells: list[str]) -> Path:
    """A notebook of code cells, run as papermill would (see _original)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = code_notebook(folder / name, cells)
    result = runner.execute(path, folder / "out" / name, timeout=300)
    assert result.success, result.message + "\n" + result.log[-2000:]
    return path


def _only_run(client, experiment: str):
    [run] = [r for r in all_runs(client, experiment) if "nbtrack.repro.of" not in r.data.tags]
    return run


@pytest.fixture
def trained(store, client, tmp_path):
    """The seeded training notebook, run by papermill with epochs=12 on data/points.csv."""
    proj = tmp_path / "proj"
    _points(proj / "data" / "points.csv")
    nb = _original("repro_train.ipynb", proj, {"epochs": 12})
    run = _only_run(client, "repro")
    assert run.data.params["epochs"] == "12"  # papermill's value, not the notebook's 20
    return nb, run


def test_seeded_training_reproduces_bit_for_bit(trained, client):
    nb, original = trained
    report = nbtrack.reproduce(original.info.run_id)

    assert report.verdict == "REPRODUCED", str(report)
    assert report.ok and report.rebuilt_from == "the notebook snapshot" and report.seed == 11
    assert {m.key for m in report.metrics} == {"train_loss", "train_acc"}
    assert all(m.abs_diff == 0 for m in report.metrics)  # bit for bit, not just within 1e-6
    assert {c.name: c.status for c in report.checks}["data"] == "ok"

    rerun = client.get_run(report.rerun_id)
    tags, params = rerun.data.tags, rerun.data.params
    # tracked like the original: same experiment, notebook, cell, params (papermill's epochs
    # injected again), seed, data
    assert rerun.info.experiment_id == original.info.experiment_id
    assert tags["mlflow.source.name"] == str(nb)
    assert tags["nbtrack.cell.sha256"] == original.data.tags["nbtrack.cell.sha256"]
    for key in ("epochs", "lr", "batch_size", "random_seed", "data_hash"):
        assert params[key] == original.data.params[key], key
    # linked both ways, and the verdict is a query
    assert tags["nbtrack.reproduces"] == original.info.run_id
    assert tags["nbtrack.repro.verdict"] == "REPRODUCED"
    back = client.get_run(original.info.run_id).data.tags
    assert back["nbtrack.reproduced_by"] == report.rerun_id
    assert back["nbtrack.repro.last_verdict"] == "REPRODUCED"
    import mlflow

    found = mlflow.search_runs(
        experiment_names=["repro"], filter_string="tags.`nbtrack.repro.verdict` = 'REPRODUCED'"
    )
    assert found.run_id.tolist() == [report.rerun_id]
    table = nbtrack.runs("repro", filter=f"tags.`nbtrack.reproduces` = '{original.info.run_id}'")
    assert table.run_id.tolist() == [report.rerun_id]
    # the proof: the report and the executed notebook, which stops at the tracked cell
    saved = json.loads(artifact_text(client, report.rerun_id, "nbtrack/repro/report.json"))
    assert saved["verdict"] == "REPRODUCED" and saved["record_run_id"] == report.rerun_id
    out = json.loads(artifact_text(client, report.rerun_id, "nbtrack/repro/output.ipynb"))
    sources = ["".join(c["source"]) for c in out["cells"]]
    assert any(s.startswith("# Parameters\nepochs = 12") for s in sources)
    assert sources[-1].startswith("%%track --experiment repro")
    assert not any("after the tracked cell" in s for s in sources)
    # as text and as escaped HTML
    assert "REPRODUCED" in str(report) and "train_loss" in str(report)
    assert "nbtrack-repro" in report._repr_html_()
    # a re-run reproduces too, though the copies of the data it read are gone: it finds the
    # original's inputs
    again = nbtrack.reproduce(report.rerun_id)
    assert again.verdict == "REPRODUCED", str(again)


def test_changed_data_drifts_and_names_the_digest(trained, client):
    nb, original = trained
    _points(nb.parent / "data" / "points.csv", flip=15)

    refused = nbtrack.reproduce(original.info.run_id, strict=True)
    assert refused.verdict == "FAILED" and "strict" in refused.failure.reason
    assert refused.record_run_id is None
    assert len(all_runs(client, "repro")) == 1  # nothing ran, nothing recorded

    report = nbtrack.reproduce(original.info.run_id)
    assert report.verdict == "DRIFTED", str(report)
    assert report.drifted and all(m.original != m.rerun for m in report.drifted)
    assert report.causes[0].startswith("data digest changed: data/points.csv changed")
    data = next(c for c in report.checks if c.name == "data")
    assert data.status == "drift" and "→" in data.message
    assert client.get_run(report.rerun_id).data.tags["nbtrack.repro.verdict"] == "DRIFTED"
    text = str(report)
    assert "abs diff" in text and "rel diff" in text and "DRIFTED" in text


def test_unseeded_randomness_drifts_and_names_the_call_in_the_cell(store, client, tmp_path):
    _original("repro_unseeded.ipynb", tmp_path / "proj")
    original = _only_run(client, "repro-unseeded")

    report = nbtrack.reproduce(original.info.run_id)
    assert report.verdict == "DRIFTED", str(report)
    # the cell's own SystemRandom, where it is; no call blamed that the cell does not make
    [cause] = report.causes
    assert cause.startswith("the cell draws randomness no seed covers: random.SystemRandom()")
    assert "the tracked cell, line 3 (rng = random.SystemRandom())" in cause
    assert "os.urandom" not in cause and "uuid4" not in cause


def test_randomness_from_an_earlier_unseeded_cell_is_named_as_such(store, client, tmp_path):
    _written(
        tmp_path / "proj",
        "earlier.ipynb",
        [
            "%load_ext nbtrack",
            "import numpy as np\n\nimport nbtrack",
            "# the data, drawn before the tracked cell: no seed covers it\n"
            "X = np.random.normal(size=(40, 2))",
            "%%track --experiment repro-earlier --seed 4\n"
            "w = np.random.normal(size=2)  # seeded\n"
            "nbtrack.log(step=0, score=float((X @ w).sum()))",
        ],
    )
    original = _only_run(client, "repro-earlier")

    report = nbtrack.reproduce(original.info.run_id)
    assert report.verdict == "DRIFTED", str(report)
    [cause] = report.causes
    assert cause.startswith("randomness from a cell before the tracked cell (no seed set there)")
    assert "np.random.normal() in code cell 3, line 2 (X = np.random.normal(size=(40, 2)))" in cause
    assert "seed it there, or make it a tracked cell with --seed" in cause
    assert "os.urandom" not in str(report) and "SystemRandom" not in str(report)


def test_a_run_without_metrics_ran_and_claims_nothing(store, client, tmp_path, capsys):
    _written(
        tmp_path / "proj",
        "quiet.ipynb",
        ["%load_ext nbtrack", "%%track --experiment repro-quiet --seed 2\ntotal = sum(range(10))"],
    )
    original = _only_run(client, "repro-quiet")
    assert not original.data.metrics

    report = nbtrack.reproduce(original.info.run_id)
    assert report.verdict == "RAN" and not report.ok and report.metrics == []
    assert report.summary == "RAN: no metrics to compare"
    text = str(report)
    assert text.startswith("nbtrack reproduce: RAN: no metrics to compare")
    assert "logged no metrics, so nothing was compared" in text and "REPRODUCED" not in text
    assert "RAN: no metrics to compare" in report._repr_html_()
    assert client.get_run(report.rerun_id).data.tags["nbtrack.repro.verdict"] == "RAN"
    back = client.get_run(original.info.run_id).data.tags
    assert back["nbtrack.repro.last_verdict"] == "RAN"

    # the command exits 4: neither a pass (0) nor a drift (1)
    assert cli.main(["reproduce", original.info.run_id]) == 4
    assert "RAN: no metrics to compare" in capsys.readouterr().out


def test_a_notebook_changed_on_disk_is_said_and_diffed_not_ok(trained, client):
    nb, original = trained
    doc = json.loads(nb.read_text())
    [params] = [c for c in doc["cells"] if "parameters" in c["metadata"].get("tags", [])]
    params["source"] = "".join(params["source"]).replace("lr = 0.5", "lr = 0.9")
    nb.write_text(json.dumps(doc, indent=1))

    report = nbtrack.reproduce(original.info.run_id)
    assert report.verdict == "REPRODUCED", str(report)  # the recorded snapshot ran, lr 0.5
    [check] = [c for c in report.checks if c.name == "notebook"]
    assert check.status == "note" and not check.drift
    assert check.message.startswith("the notebook file changed since the run (sha256 ")
    assert "1 code cell(s) differ; the reproduction uses the recorded snapshot" in check.message
    assert "-lr = 0.5" in check.detail and "+lr = 0.9" in check.detail
    assert "--- recorded" in check.detail and "+++ on disk" in check.detail
    text = str(report)
    assert "notebook     ok" not in text and "+lr = 0.9" in text


def test_a_cell_that_raises_fails_with_the_cell_and_its_traceback(
    store, client, tmp_path, monkeypatch
):
    _original("repro_raises.ipynb", tmp_path / "proj")
    original = _only_run(client, "repro-raises")
    monkeypatch.setenv("REPRO_FIXTURE_FAIL", "1")  # the re-run's kernel inherits it

    report = nbtrack.reproduce(original.info.run_id)
    assert report.verdict == "FAILED"
    f = report.failure
    assert "RuntimeError: the data server is unreachable" in f.reason
    assert f.source.startswith("%%track --experiment repro-raises")
    assert "RuntimeError" in f.traceback and "\x1b[" not in f.traceback
    rerun = client.get_run(report.rerun_id)
    assert rerun.info.status == "FAILED"
    assert rerun.data.tags["nbtrack.repro.verdict"] == "FAILED"
    out = artifact_text(client, report.rerun_id, "nbtrack/repro/output.ipynb")
    assert "the data server is unreachable" in out


def test_a_timeout_fails_with_the_cell_that_was_running(store, client, tmp_path, monkeypatch):
    _original("repro_slow.ipynb", tmp_path / "proj")
    original = _only_run(client, "repro-slow")
    monkeypatch.setenv("REPRO_FIXTURE_SLEEP", "120")

    report = nbtrack.reproduce(original.info.run_id, timeout=8)
    assert report.verdict == "FAILED"
    assert report.failure.timed_out and "timed out" in report.failure.reason
    assert "time.sleep" in report.failure.source
    # the cell's run was closed (the kernel was shut down) and carries the verdict
    assert client.get_run(report.record_run_id).data.tags["nbtrack.repro.verdict"] == "FAILED"


def test_a_missing_data_input_fails_before_execution(trained, client, capsys):
    nb, original = trained
    data = nb.parent / "data" / "points.csv"
    digest = json.loads(artifact_text(client, original.info.run_id, "nbtrack/data.json"))[0]
    data.unlink()

    report = nbtrack.reproduce(original.info.run_id)
    assert report.verdict == "FAILED" and report.rerun_id is None
    assert str(data) in report.failure.reason and digest["digest"] in report.failure.reason
    assert "nothing was executed" in str(report)
    assert len(all_runs(client, "repro")) == 1

    # the command: the same report, exit code 3 for FAILED
    assert cli.main(["reproduce", original.info.run_id]) == 3
    assert "data input is gone" in capsys.readouterr().out


def test_several_tracked_cells_match_by_hash_and_params(store, client, tmp_path):
    _original("repro_multi.ipynb", tmp_path / "proj")
    runs = {r.info.run_name: r for r in all_runs(client, "repro-multi")}
    target = runs["scale 2.0"]
    assert (
        target.data.tags["nbtrack.cell.sha256"]
        == runs["scale 1.0"].data.tags["nbtrack.cell.sha256"]
    )

    report = nbtrack.reproduce(target.info.run_id)
    assert report.verdict == "REPRODUCED", str(report)
    made = {client.get_run(r).info.run_name: r for r in report.rerun_ids}
    assert set(made) == {"first", "scale 1.0", "scale 2.0"}
    assert report.rerun_id == made["scale 2.0"]
    # the earlier tracked cell kept its own seed, not the reproduced cell's
    assert client.get_run(made["first"]).data.params["random_seed"] == "5"
    first = client.get_run(made["first"]).data.tags
    assert first.get("nbtrack.reproduces") is None
    # ... and its run says it is part of the reproduction, which lists it only when asked
    assert first["nbtrack.repro.of"] == target.info.run_id
    assert first["nbtrack.repro.cell"] == target.data.tags["nbtrack.cell.sha256"]
    listed = set(nbtrack.runs("repro-multi").run_id)
    assert made["first"] not in listed and report.rerun_id in listed
    assert {r.info.run_id for r in runs.values()} <= listed
    everything = nbtrack.runs("repro-multi", include_repro_byproducts=True)
    assert set(everything.run_id) == listed | {made["first"]}
    from nbtrack.widgets.compare import show

    panel = show("repro-multi", frontend=False)
    assert made["first"] not in set(panel.df.run_id) and report.rerun_id in set(panel.df.run_id)
    panel = show("repro-multi", frontend=False, include_repro_byproducts=True)
    assert made["first"] in set(panel.df.run_id)


def test_unsaved_notebook_is_rebuilt_from_the_kernel_history(store, client, tmp_path):
    proj = tmp_path / "proj"
    _points(proj / "data" / "points.csv")
    nb = proj / "repro_train.ipynb"
    shutil.copy(NOTEBOOKS / "repro_train.ipynb", nb)
    execute(nb, proj, env={"JPY_SESSION_NAME": ""})  # no notebook path: no snapshot
    original = _only_run(client, "repro")
    names = [a.path for a in client.list_artifacts(original.info.run_id, "nbtrack")]
    assert "nbtrack/notebook.ipynb" not in names and "nbtrack/history.py" in names

    report = nbtrack.reproduce(original.info.run_id)
    assert report.verdict == "REPRODUCED", str(report)
    assert report.rebuilt_from == "the kernel history"


def test_a_script_run_is_reproduced_by_running_the_script(store, client, tmp_path):
    proj = tmp_path / "proj"
    _points(proj / "data" / "points.csv")
    script = proj / "train.py"
    script.write_text(
        textwrap.dedent(
            """
            import numpy as np

            import nbtrack

            with nbtrack.run(experiment="repro-script", data=["data/points.csv"],
                             params={"epochs": 5}) as run:
                data = np.loadtxt("data/points.csv", delimiter=",")
                w = np.random.normal(size=data.shape[1] - 1)
                for epoch in range(5):
                    w -= 0.1 * np.random.normal(size=w.shape)
                    nbtrack.log(step=epoch, norm=float(np.linalg.norm(w)))
            """
        )
    )
    subprocess.run([sys.executable, str(script)], cwd=proj, check=True, env=dict(os.environ))
    original = _only_run(client, "repro-script")
    assert original.data.tags["mlflow.source.type"] == "LOCAL"

    report = nbtrack.reproduce(original.info.run_id)  # the seed was drawn: it is forced
    assert report.verdict == "REPRODUCED", str(report)
    assert report.rebuilt_from == "the script"
    assert "output.log" in [
        a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(report.rerun_id, "nbtrack/repro")
    ]


def test_torch_notebook_reproduces_on_cpu_with_determinism_reapplied(store, client, tmp_path):
    # torch is part of `make test`'s install (the torch extra): no skip when it is missing.
    import torch  # noqa: F401
    import torchvision  # noqa: F401

    folder = tmp_path / "proj"
    folder.mkdir()
    nb = folder / "02-train-torch.ipynb"
    shutil.copy(ROOT / "notebooks" / "02-train-torch.ipynb", nb)
    result = runner.execute(nb, folder / "out.ipynb", {"epochs": 2}, timeout=600)
    assert result.success, result.message
    original = _only_run(client, "digits-cnn")
    env = json.loads(artifact_text(client, original.info.run_id, "nbtrack/environment.json"))
    assert env["torch_determinism"]["deterministic_algorithms"] is True

    report = nbtrack.reproduce(original.info.run_id, rtol=1e-5, atol=1e-7)
    assert report.verdict == "REPRODUCED", str(report)
    assert {"train_loss", "val_acc", "val_loss"} <= {m.key for m in report.metrics}
    out = json.loads(artifact_text(client, report.rerun_id, "nbtrack/repro/output.ipynb"))
    determinism = [c for c in out["cells"] if reprobuild.REPRO_TAG in c["metadata"].get("tags", [])]
    assert determinism and "use_deterministic_algorithms(True)" in "".join(determinism[0]["source"])


# -- errors --------------------------------------------------------------------------------------


def test_unknown_run_id_is_not_found(store):
    with pytest.raises(NotFound, match="no run '0123456789abcdef0123456789abcdef'"):
        nbtrack.reproduce("0123456789abcdef0123456789abcdef")


def test_a_run_not_tracked_by_nbtrack_cannot_be_reproduced(store):
    import mlflow

    with mlflow.start_run() as run:
        mlflow.log_metric("m", 1.0)
    with pytest.raises(CannotReproduce, match="not tracked by nbtrack"):
        nbtrack.reproduce(run.info.run_id)


def test_a_script_whose_source_was_not_recorded_cannot_be_reproduced(store, client):
    code = (
        "import nbtrack\nwith nbtrack.run(experiment='inline'):\n    nbtrack.log(step=0, m=1.0)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ))
    [run] = all_runs(client, "inline")
    with pytest.raises(CannotReproduce, match="source was not recorded"):
        nbtrack.reproduce(run.info.run_id)


def test_unknown_metric_is_a_usage_error(trained):
    _, original = trained
    with pytest.raises(UsageError, match=r"no metric 'accuracy'.*train_acc"):
        nbtrack.reproduce(original.info.run_id, metrics=["accuracy"])


def test_errors_pickle_with_their_fields():
    e = pickle.loads(pickle.dumps(CannotReproduce("abc", "why")))
    assert (e.run_id, e.reason, str(e)) == ("abc", "why", "run abc cannot be reproduced: why")


# -- the pure parts ------------------------------------------------------------------------------


def test_history_is_parsed_back_into_cells():
    from nbtrack.capture.notebook import history_script

    cells = ["%load_ext nbtrack", "x = 1\n\n# In[9]: not a header\n", "", "%%track\ny = x"]
    parsed = reprobuild.parse_history(history_script(cells, Redactor()))
    assert parsed == ["%load_ext nbtrack", "x = 1\n\n# In[9]: not a header", "%%track\ny = x"]


def test_injected_parameters_are_the_changed_knobs_typed_like_the_defaults():
    before = [
        {
            "cell_type": "code",
            "metadata": {"tags": ["parameters"]},
            "source": (
                "epochs = 20\nlr = 0.5\nname = 'a'\ntag = '1'\nlayers = [8]\nfixed = 3\nlabel = 'x'"
            ),
        }
    ]
    cell = "%%track -p label=y\nfixed = 4\n"
    params = {
        "epochs": "12",
        "lr": "0.5",
        "name": "b",
        "tag": "2",
        "layers": "[8, 4]",
        "fixed": "4",
        "label": "y",
        "python_version": "3.11",
    }
    got = reprobuild.injected_parameters(before, cell, params)
    assert got == {"epochs": 12, "name": "b", "tag": "2", "layers": [8, 4]}


def test_the_snapshot_is_cut_after_the_cell_and_loads_the_extension():
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": "# t"},
        {
            "cell_type": "code",
            "metadata": {},
            "source": "x = nbtrack.reproduce('a')",
            "outputs": [],
            "execution_count": 1,
        },
        {
            "cell_type": "code",
            "metadata": {},
            "source": "%%track\ny = 1",
            "outputs": [1],
            "execution_count": 2,
        },
        {
            "cell_type": "code",
            "metadata": {},
            "source": "after()",
            "outputs": [],
            "execution_count": 3,
        },
    ]
    snap = json.dumps(
        {"cells": cells, "metadata": {"widgets": {"big": 1}}, "nbformat": 4, "nbformat_minor": 5}
    )
    r = reprobuild.from_snapshot(
        snap,
        "%%track\ny = 1",
        "0" * 64,
        {},
        [],
        {"deterministic_algorithms": True, "cudnn_deterministic": False, "cudnn_benchmark": False},
    )
    sources = [c["source"] for c in r.notebook["cells"]]
    assert sources[0].endswith("\n%load_ext nbtrack") and sources[-1] == "%%track\ny = 1"
    assert "torch.use_deterministic_algorithms(True)" in sources[-2]
    assert not any("nbtrack.reproduce(" in s for s in sources) and "after()" not in sources
    assert "widgets" not in r.notebook["metadata"] and r.target == len(sources) - 1
    assert reprobuild.from_snapshot(snap, "%%track\nz = 2", "1" * 64, {}, []) is None


def test_redacted_literals_are_flagged():
    cell = "%%track\nprint(token)"
    r = reprobuild.from_history(["token = '[REDACTED]'", cell], cell)
    check = reprocheck.check_secrets(r.redacted_cells, r.kind)
    assert check.drift and "os.environ" in check.message


def test_data_inputs_keep_their_relative_paths(tmp_path):
    src = tmp_path / "orig" / "data"
    src.mkdir(parents=True)
    (src / "a.csv").write_text("1\n")
    inputs = [
        {"given": "../data/a.csv", "path": str(src / "a.csv"), "size": 2},
        {"given": str(src / "a.csv"), "path": str(src / "a.csv"), "size": 2},
    ]
    workdir, placed = reprobuild.layout(tmp_path / "s", inputs, "/x/orig/nb/train.ipynb")
    assert workdir.name == "nb"
    assert (workdir / "../data/a.csv").read_text() == "1\n"
    assert not (workdir / "../data/a.csv").is_symlink()  # copied: a re-run cannot change it
    assert [p.how for p in placed] == ["copied", "absolute"]


def test_metrics_compare_within_tolerance():
    diffs = reprocheck.compare_metrics(
        {"a": 1.0, "b": 0.0, "c": float("nan"), "d": 2.0},
        {"a": 1.0 + 1e-9, "b": 1e-12, "c": float("nan")},
        ["a", "b", "c", "d"],
        rtol=1e-6,
        atol=0.0,
    )
    assert [d.within for d in diffs] == [True, False, True, False]
    assert diffs[1].rel_diff == float("inf") and diffs[3].rerun is None


def test_git_diffs_leave_notebooks_out():
    diff = (
        "diff --git a/nb.ipynb b/nb.ipynb\n--- a/nb.ipynb\n+++ b/nb.ipynb\n@@ -1 +1 @@\n-a\n+b\n"
        "diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-x\n+y\n"
    )
    assert reprocheck.without_notebooks(diff).startswith("diff --git a/m.py")


def test_causes_rank_the_checks_that_found_a_difference():
    checks = [
        Check("seed", "ok", "seed 1"),
        Check("environment", "drift", "1 package(s) differ: numpy 1 → 2"),
        Check("data", "drift", "d changed"),
    ]
    assert reprocheck.causes(checks) == [
        "data digest changed: d changed",
        "package versions changed: 1 package(s) differ: numpy 1 → 2",
    ]
    assert reprocheck.causes([Check("data", "ok", "")]) == [reprocheck.UNSEEDED]
    # nothing found in the code: no call is blamed
    assert "os.urandom" not in reprocheck.UNSEEDED and "uuid4" not in reprocheck.UNSEEDED
    own = randomness.Draw(0, 2, "os.urandom", "unseedable", "k = os.urandom(4)")
    before = randomness.Draw(3, 1, "np.random.rand", "unseeded", "X = np.random.rand(9)")
    assert reprocheck.causes(checks[1:2], [own], [before]) == [
        "package versions changed: 1 package(s) differ: numpy 1 → 2",
        "the cell draws randomness no seed covers: os.urandom() in the tracked cell, line 2 "
        "(k = os.urandom(4)); draw from a seeded generator instead (random.Random(seed), "
        "np.random.default_rng(seed))",
        "randomness from a cell before the tracked cell (no seed set there): np.random.rand() in "
        "code cell 3, line 1 (X = np.random.rand(9)); seed it there, or make it a tracked cell "
        "with --seed",
    ]


def test_the_report_html_is_escaped():
    r = ReproReport(
        verdict="FAILED",
        run_id="r" * 32,
        run_name="<b>x</b>",
        experiment="e",
        metrics=[MetricDiff("<m>", 1.0, 2.0, 1.0, 1.0, False)],
        checks=[Check("data", "drift", "<script>alert(1)</script>", "<i>d</i>")],
        failure=Failure("<boom>", "In [1]", "<src>", "<tb>"),
        causes=["<cause>"],
        notes=["<note>"],
    )
    page = r._repr_html_()
    for raw in ("<b>x</b>", "<m>", "<script>", "<i>d</i>", "<boom>", "<src>", "<tb>", "<cause>"):
        assert raw not in page
    assert "&lt;script&gt;" in page


def test_the_runner_tells_the_kernel_its_notebook_and_clears_inherited_settings(monkeypatch):
    monkeypatch.setenv("JPY_SESSION_NAME", "/elsewhere/caller.ipynb")
    monkeypatch.setenv("NBTRACK_RUNNER_PARENT", "stale")
    monkeypatch.setenv("MLFLOW_RUN_ID", "stale")
    env = runner._child_env(
        "/p/nb.ipynb",
        runner.RunnerSettings(experiment="e", seeds={"abc": 3}, tags={"k": "v"}),
        {"EXTRA": "1", "HOME": None},
    )
    assert env["JPY_SESSION_NAME"] == env["NBTRACK_RUNNER_NOTEBOOK"] == "/p/nb.ipynb"
    assert env["NBTRACK_RUNNER_EXPERIMENT"] == "e"
    assert json.loads(env["NBTRACK_RUNNER_SEEDS"]) == {"abc": 3}
    assert json.loads(env["NBTRACK_RUNNER_TAGS"]) == {"k": "v"}
    assert "NBTRACK_RUNNER_PARENT" not in env and "MLFLOW_RUN_ID" not in env
    assert env["EXTRA"] == "1" and "HOME" not in env


def test_runner_seeds_apply_to_their_cell_only(monkeypatch):
    from nbtrack import settings
    from nbtrack.capture.notebook import cell_sha256

    monkeypatch.setenv("NBTRACK_RUNNER_SEEDS", json.dumps({cell_sha256("a"): 9}))
    assert settings.current().runner_seeds == {cell_sha256("a"): 9}


def test_the_walkthrough_passes_strict_nbval_twice_against_one_store(store, tmp_path):
    from test_nbval import _nbval

    nb = tmp_path / "05-reproduce.ipynb"
    shutil.copy(ROOT / "notebooks" / "05-reproduce.ipynb", nb)
    env = {**os.environ, "NBTRACK_TRACKING_URI": store}
    for attempt in (1, 2):
        result = _nbval(nb, env)
        assert result.returncode == 0, f"run {attempt}:\n{result.stdout[-3000:]}"


def test_history_against_the_saved_notebook_finds_hidden_and_skipped_cells():
    history = ["%load_ext nbtrack", "x = 1", "# Parameters\nlr = 0.1\n", "x = 2", "%%track\ny = x"]
    ok = reprocheck.check_history(history, ["%load_ext nbtrack", "x = 1", "x = 2"], "s")
    assert ok.status == "ok"
    hidden = reprocheck.check_history(history, ["%load_ext nbtrack", "x = 1", "z = 3"], "s")
    assert hidden.drift and "1 cell(s) before this one that the saved notebook" in hidden.message
    assert "x = 2" in hidden.detail and "z = 3" in hidden.detail  # and z = 3 never ran
    alone = reprocheck.check_history(["%%track\ny = 1"], ["import os"], "s")
    assert alone.status == "ok"  # a history of the cell alone says nothing (nbval)


def test_the_runner_runs_a_notebook_in_its_own_folder_and_environment(tmp_path, monkeypatch):
    import nbformat

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("lr = 0.1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            "import os\nprint(os.getcwd(), os.environ['JPY_SESSION_NAME'], "
            "os.environ['NBTRACK_RUNNER_SEED'], os.environ.get('GONE'), lr)"
        ),
        nbformat.v4.new_code_cell("1 / 0"),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = tmp_path / "nb" / "n.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, path)
    work = tmp_path / "work"
    work.mkdir()
    before = os.getcwd()
    monkeypatch.setenv("GONE", "inherited")

    result = runner.execute(
        path,
        tmp_path / "out.ipynb",
        {"lr": 0.5},
        settings=runner.RunnerSettings(seed=4),
        env={"GONE": None},
        cwd=work,
        timeout=120,
    )
    assert os.getcwd() == before  # papermill's chdir happened in the child
    assert not result.success and result.failure is not None
    assert (result.failure.ename, result.failure.source) == ("ZeroDivisionError", "1 / 0")
    assert result.failure.index == 3  # after papermill's injected-parameters cell
    out = nbformat.read(result.output, as_version=4)
    printed = "".join(o.get("text", "") for c in out.cells for o in c.get("outputs", []))
    assert printed.split() == [str(work), str(path), "4", "None", "0.5"]


def test_randomness_before_the_cell_follows_seeds_imports_and_tracked_cells():
    earlier = [
        "%load_ext nbtrack",
        "import random\nimport numpy as np\nfrom sklearn.datasets import make_classification",
        "X, y = make_classification(n_samples=50)  # numpy's global generator, not seeded",
        "!ls\nnp.random.seed(0)\nA, b = make_classification(n_samples=5)\nZ = np.random.rand()",
        "%%track --seed 3\nw = random.random()",  # nbtrack seeds it: --seed on its line
        "u = random.random()  # after a seeded tracked cell: deterministic",
        "%%track\nv = np.random.rand(2)",  # a fresh seed, unless the re-run replays it
        "def draw():\n    return np.random.default_rng()\n\ng = draw()",
        "%%bash\necho not python",
    ]
    found = randomness.before_cell(earlier, (), reprobuild.sha256)
    assert [(d.cell, d.line, d.call, d.kind) for d in found] == [
        (3, 1, "make_classification", "unseeded"),
        (7, 2, "np.random.rand", "unseeded"),
        (8, 4, "np.random.default_rng", "unseedable"),
    ]
    assert found[0].describe() == (
        "make_classification() in code cell 3, line 1 "
        "(X, y = make_classification(n_samples=50)  # numpy's global …)"  # cut at 60
    )
    # the tracked cell's seed replayed by the re-run: no longer a source
    replayed = {reprobuild.sha256(earlier[6])}
    assert [d.cell for d in randomness.before_cell(earlier, replayed, reprobuild.sha256)] == [3, 8]
    # seeded, or given random_state: nothing
    quiet = ["import numpy as np\nnp.random.seed(1)\nX = np.random.rand(3)"]
    quiet.append(
        "from sklearn.model_selection import train_test_split\n"
        "a, b = train_test_split([1, 2], random_state=0)"
    )
    assert randomness.before_cell(quiet) == []


def test_randomness_in_the_cell_is_only_what_no_seed_covers():
    cell = (
        "%%track --seed 3\nimport os, uuid\nimport numpy as np\n"
        "x = np.random.rand(3)\nk = os.urandom(8)\nu = uuid.uuid4()\n"
        "g = np.random.default_rng(7)\nh = np.random.default_rng()\n%time y = 1"
    )
    assert [(d.call, d.line) for d in randomness.in_cell(cell)] == [
        ("os.urandom", 5),
        ("uuid.uuid4", 6),
        ("np.random.default_rng", 8),
    ]
    assert randomness.in_cell("%%track\nimport numpy as np\nw = np.random.normal()") == []


def test_the_notebook_file_against_the_recorded_one(tmp_path):
    import hashlib

    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("a = 1"), nbformat.v4.new_code_cell("%%track\nb = a")]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    recorded = path.read_text()
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    snap = "the notebook snapshot"
    assert notebook_file.check_notebook_file(str(path), sha, recorded, snap) is None
    gone = str(tmp_path / "gone.ipynb")
    assert notebook_file.check_notebook_file(gone, sha, recorded, snap) is None

    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="saved with outputs")]
    nbformat.write(nb, path)
    same_code = notebook_file.check_notebook_file(str(path), sha, recorded, snap)
    assert same_code.status == "ok" and "its code cells did not" in same_code.message

    nb.cells[0].source = "a = 2"
    nb.cells.append(nbformat.v4.new_code_cell("print(b)"))
    nbformat.write(nb, path)
    changed = notebook_file.check_notebook_file(str(path), sha, recorded, "the kernel history")
    assert changed.status == "note"
    assert "2 code cell(s) differ" in changed.message
    assert "uses what the record holds (the kernel history), not the file" in changed.message
    assert (
        "-a = 1" in changed.detail and "+a = 2" in changed.detail and "+print(b)" in changed.detail
    )
    # the history's finding and the file's make one check; an "ok" gives way
    history_ok = Check("notebook", "ok", "the saved notebook holds what the kernel ran before")
    assert notebook_file.with_notebook_file(history_ok, changed) is changed
    hidden = Check("notebook", "drift", "the kernel ran 1 cell(s)", "x = 2")
    both = notebook_file.with_notebook_file(hidden, changed)
    assert both.drift and both.message.startswith("the kernel ran 1 cell(s); the notebook file")
    assert both.detail.startswith("x = 2\n\n---")


def test_a_ran_report_and_the_cli_exit_codes():
    r = ReproReport(verdict="RAN", run_id="r" * 32, notes=["the cell ran again"])
    assert not r.ok and r.summary == "RAN: no metrics to compare"
    assert str(r).splitlines()[0] == "nbtrack reproduce: RAN: no metrics to compare"
    assert ReproReport(verdict="REPRODUCED", run_id="r").summary == "REPRODUCED"
    assert cli.REPRO_EXIT == {"REPRODUCED": 0, "DRIFTED": 1, "FAILED": 3, "RAN": 4}
    help_text = cli.build_parser()._subparsers._group_actions[0].choices["reproduce"].format_help()
    assert "4 RAN (it ran, but no metrics to compare)" in " ".join(help_text.split())
