"""nbtrack.usage, nbtrack.gc and nbtrack.gc_log on a real SQLite store with local artifacts:
the seed's scenario (50 runs x 5 checkpoint files logged with plain MLflow, one registered
version outside the top 5), the never-delete rules, the re-check before deleting, bad input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import nbtrack
from nbtrack import record
from nbtrack.errors import NotFound, UsageError
from tests import modelkit

EXP = "seed"


def _seed(client, tmp_path: Path, runs: int = 50, checkpoints: int = 5) -> dict:
    """``runs`` runs of experiment ``seed``, each with ``checkpoints`` files ``checkpoint_i.pth``
    (run k, file i: 100*k + 10*i + 1 bytes: every size different), a plain file, a snapshot file
    under nbtrack/, params and a val_acc that grows with k. Made through MLflow's client."""
    from mlflow.entities import Metric, Param

    exp_id = client.create_experiment(EXP)
    files = tmp_path / "files"
    files.mkdir()
    ids = []
    for k in range(runs):
        run_id = client.create_run(exp_id, run_name=f"run-{k:02d}").info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric("val_acc", 0.5 + k / 200, 0, 0)],
            params=[Param("lr", str(0.001 * (k + 1))), Param("k", str(k))],
        )
        folder = files / run_id
        (folder / "extras").mkdir(parents=True)
        (folder / record.SNAPSHOT_DIR).mkdir()
        for i in range(checkpoints):
            (folder / f"checkpoint_{i}.pth").write_bytes(b"x" * (100 * k + 10 * i + 1))
        (folder / "extras" / "notes.txt").write_text("n" * 7)
        (folder / record.SNAPSHOT_DIR / "cell.py").write_text("lr = 0.1\n")
        client.log_artifacts(run_id, str(folder))  # as log_artifact file by file, in one call
        client.set_terminated(run_id, "FINISHED")
        ids.append(run_id)
    return {"exp_id": exp_id, "runs": ids}


def _log_model(run_id: str, C: float = 1.0) -> str:
    """A tiny sklearn LoggedModel linked to ``run_id``; returns its model id."""
    import mlflow

    mlflow.set_experiment(experiment_id=mlflow.MlflowClient().get_run(run_id).info.experiment_id)
    with mlflow.start_run(run_id=run_id):
        info = modelkit.log_sklearn(modelkit.model(C))
    return info.model_id


def _disk(run_id: str) -> dict[str, int]:
    from mlflow import MlflowClient

    root = Path(MlflowClient().get_run(run_id).info.artifact_uri.removeprefix("file://"))
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def _model_dir(model_id: str) -> Path:
    from mlflow import MlflowClient

    return Path(MlflowClient().get_logged_model(model_id).artifact_location.removeprefix("file://"))


def _model_bytes(model_id: str) -> int:
    return sum(p.stat().st_size for p in _model_dir(model_id).rglob("*") if p.is_file())


@pytest.fixture
def seeded(store, client, tmp_path):
    seed = _seed(client, tmp_path)
    runs = seed["runs"]
    # a registered version from run 10 (far outside the top 5: the best runs are 45..49)
    registered = runs[10]
    seed["registered_model"] = _log_model(registered)
    nbtrack.register(registered, "digits-clf")
    # unregistered logged models on runs 3 and 47 (47 is in the top 5)
    seed["loose_model"] = _log_model(runs[3], 2.0)
    seed["top_model"] = _log_model(runs[47], 3.0)
    return seed


def test_seed_scenario_gc_keeps_the_top_5_and_the_registered_run(seeded, client):
    runs = seeded["runs"]
    top = set(runs[45:])
    registered = runs[10]
    before = {r: _disk(r) for r in runs}

    dry = nbtrack.gc(EXP, keep_top=5, metric="val_acc")
    frame = dry.frame.set_index("run_id")
    assert not dry.applied
    assert {r for r in runs if frame.loc[r, "action"] == "keep"} == top | {registered}
    for r in top:
        assert "top-5 by val_acc" in frame.loc[r, "kept_why"]
    assert frame.loc[registered, "kept_why"] == "registered: digits-clf v1"
    assert {r: _disk(r) for r in runs} == before  # a dry run deletes nothing

    # what should go: every file outside nbtrack/ of the 44 other runs, and run 3's model
    loose_dir = _model_dir(seeded["loose_model"])
    expected = sum(
        size
        for r in runs
        if r not in top and r != registered
        for path, size in before[r].items()
        if not path.startswith("nbtrack/")
    ) + _model_bytes(seeded["loose_model"])
    assert dry.bytes == expected

    usage = nbtrack.usage(EXP, keep_top=5, metric="val_acc")
    assert usage.would_free == expected == usage.frame["would_free"].sum()
    assert usage.frame.set_index("run_id").loc[registered, "would_free"] == 0
    assert usage.total == sum(sum(d.values()) for d in before.values()) + sum(
        _model_bytes(m)
        for m in (seeded["registered_model"], seeded["loose_model"], seeded["top_model"])
    )

    done = nbtrack.gc(EXP, keep_top=5, metric="val_acc", apply=True)
    assert done.applied and done.bytes_freed == expected
    for r in runs:
        left = _disk(r)
        if r in top or r == registered:
            assert left == before[r]
            names = {f.path for f in client.list_artifacts(r)}
            assert {f"checkpoint_{i}.pth" for i in range(5)} <= names
        else:
            assert left == {"nbtrack/cell.py": 9}
            assert [f.path for f in client.list_artifacts(r)] == ["nbtrack"]
            assert record.TAG_GC in client.get_run(r).data.tags
    # the registered version still loads; the top run's model stays; run 3's model is deleted
    assert modelkit.predictions(nbtrack.load("digits-clf", version=1))
    live = {m.model_id for m in client.search_logged_models([seeded["exp_id"]])}
    assert live == {seeded["registered_model"], seeded["top_model"]}
    # MLflow keeps a deleted model's row (deleted stage) but its client no longer returns it
    from nbtrack import store as st

    assert st.logged_model(seeded["loose_model"]) is None
    assert not any(p.is_file() for p in loose_dir.rglob("*"))

    # collected runs are still listed, with their params and metrics
    table = nbtrack.runs(EXP)
    assert len(table) == 50
    row = table.set_index("run_id").loc[runs[0]]
    assert row["params.lr"] == "0.001" and row["metrics.val_acc"] == 0.5

    again = nbtrack.gc(EXP, keep_top=5, metric="val_acc", apply=True)
    assert again.bytes_freed == 0 and not (again.frame["action"] == "collect").any()

    log = nbtrack.gc_log(EXP)
    assert list(log["bytes_freed"]) == [expected, 0]
    assert log["runs_touched"].iloc[0] == 44
    assert log["policy"].iloc[0]["keep_top"] == 5
    assert sorted(log["run_ids"].iloc[0]) == sorted(set(runs) - top - {registered})


def test_never_delete_rules_each_say_why(store, client, tmp_path):
    runs = _seed(client, tmp_path, runs=8, checkpoints=1)["runs"]
    # run 1: a version that held production, then lost it to run 2's version
    for r in runs[1:3]:
        _log_model(r)
    nbtrack.register(runs[1], "m")
    nbtrack.register(runs[2], "m")
    nbtrack.promote("m", 1)
    nbtrack.promote("m", 2)
    client.set_tag(runs[3], record.TAG_KEEP, "yes")
    client.update_run(runs[4], "RUNNING")
    client.set_tag(runs[5], record.TAG_REPRODUCES, runs[7])  # a proof of the top run
    dry = nbtrack.gc(EXP, keep_top=1, metric="val_acc")
    why = dict(zip(dry.frame["run_id"], dry.frame["kept_why"], strict=True))
    assert why[runs[0]] == "" and why[runs[6]] == ""
    assert why[runs[1]] == "registered: m v1, alias previous_production, held alias production"
    assert why[runs[2]] == "registered: m v2, alias production"
    assert why[runs[3]] == f"tag {record.TAG_KEEP}"
    assert why[runs[4]] == "running"
    assert why[runs[5]] == "reproduction proof of a kept run"
    assert why[runs[7]] == "top-1 by val_acc"

    last = nbtrack.gc(EXP, keep_last=2, older_than="1d")
    reasons = set(last.frame["kept_why"])
    assert "last-2 started, newer than 1d" in reasons


def test_a_run_protected_while_gc_runs_is_not_deleted(store, client, tmp_path):
    from nbtrack.retention import gc as gcs
    from nbtrack.retention import policy as policies

    runs = _seed(client, tmp_path, runs=4, checkpoints=2)["runs"]
    plan = gcs.plan(EXP, policies.make_policy(keep_top=1, metric="val_acc"))
    assert sum(p.collected for p in plan.plans) == 3
    # after the plan, before the deletions: one run is registered, one tagged keep, one restarts
    _log_model(runs[0])
    nbtrack.register(runs[0], "late")
    client.set_tag(runs[1], record.TAG_KEEP, "1")
    client.update_run(runs[2], "RUNNING")
    before = {r: _disk(r) for r in runs}
    done = gcs._apply(plan, [p for p in plan.plans if p.collected])
    assert done.bytes_freed == 0
    assert {r: _disk(r) for r in runs} == before
    assert done.skipped == {
        runs[0]: "registered: late v1",
        runs[1]: f"tag {record.TAG_KEEP}",
        runs[2]: "running",
    }


def test_kinds_narrow_what_goes_and_delete_runs_soft_deletes(store, client, tmp_path):
    runs = _seed(client, tmp_path, runs=3, checkpoints=2)["runs"]
    done = nbtrack.gc(EXP, keep_top=1, metric="val_acc", kinds="other", apply=True)
    assert done.bytes_freed == 2 * 7  # the two notes.txt
    assert set(_disk(runs[0])) == {"checkpoint_0.pth", "checkpoint_1.pth", "nbtrack/cell.py"}
    usage = nbtrack.usage(EXP)
    assert usage.by_kind["other"] == 7 and usage.by_kind["snapshots"] == 3 * 9
    nbtrack.gc(EXP, keep_top=1, metric="val_acc", kinds="other", delete_runs=True, apply=True)
    assert client.get_run(runs[0]).info.lifecycle_stage == "deleted"  # nothing left to free
    assert client.get_run(runs[2]).info.lifecycle_stage == "active"


def test_bad_input_is_one_sentence(store, client, tmp_path):
    from nbtrack.frontends import cli

    _seed(client, tmp_path, runs=2, checkpoints=1)
    with pytest.raises(NotFound, match="nope"):
        nbtrack.gc("nope", keep_top=1, metric="val_acc")
    with pytest.raises(UsageError, match=r"--keep-top.*--metric"):
        nbtrack.gc(EXP, keep_top=5)
    with pytest.raises(UsageError, match=r"no run of 'seed' has the metric 'val_ac'.*val_acc"):
        nbtrack.gc(EXP, keep_top=5, metric="val_ac")
    with pytest.raises(UsageError, match="--force"):
        nbtrack.gc(EXP, apply=True)
    with pytest.raises(UsageError, match="duration"):
        nbtrack.gc(EXP, older_than="soon")
    with pytest.raises(UsageError, match="checkpoints, models, other"):
        nbtrack.gc(EXP, kinds="snapshots")
    assert cli.main(["gc", "-e", EXP, "--keep-top", "5"]) == 2
    assert cli.main(["gc", "-e", "nope", "--keep-top", "1", "--metric", "val_acc"]) == 2
    done = nbtrack.gc(EXP, apply=True, force=True)
    assert done.bytes_freed > 0


def test_cli_dry_run_then_apply(store, client, tmp_path, capsys):
    from nbtrack.frontends import cli

    runs = _seed(client, tmp_path, runs=6, checkpoints=2)["runs"]
    assert cli.main(["usage", "-e", EXP]) == 0
    out = capsys.readouterr().out
    assert "seed:" in out and "checkpoints" in out
    args = ["gc", "-e", EXP, "--keep-top", "2", "--metric", "val_acc"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "dry run" in out and "top-2 by val_acc" in out and "would free" in out
    before = _disk(runs[0])
    assert cli.main([*args, "--apply"]) == 0
    out = capsys.readouterr().out
    assert "freed" in out and _disk(runs[0]) != before
    assert cli.main(["gc-log", "-e", EXP]) == 0
    out = capsys.readouterr().out
    assert "bytes_freed" in out and "keep_top=2 " in out and "metric=val_acc" in out
    assert os.path.exists(tmp_path)


def test_a_collected_tracked_run_still_reproduces(store, client, tmp_path):
    from tests.test_repro import _only_run, _original, _points

    proj = tmp_path / "proj"
    _points(proj / "data" / "points.csv")
    _original("repro_train.ipynb", proj, {"epochs": 4})
    run_id = _only_run(client, "repro").info.run_id
    ckpt = tmp_path / "checkpoint_3.pth"
    ckpt.write_bytes(b"w" * 1000)
    client.log_artifact(run_id, str(ckpt))  # what the seed logs by hand
    done = nbtrack.gc("repro", apply=True, force=True)  # no policy: every run goes
    assert done.bytes_freed == 1000
    assert {f.path for f in client.list_artifacts(run_id)} == {"nbtrack"}
    report = nbtrack.reproduce(run_id)
    assert report.verdict == "REPRODUCED", str(report)
