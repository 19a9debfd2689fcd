"""A new SQLite store that many processes start using at once (store.creation): real processes,
real kernels, a fresh store path each time, no template database."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from support import code_notebook

START_TIMEOUT = 180  # seconds for 8 interpreters (or kernels) to import MLflow on a busy machine


def _fresh_store(tmp_path: Path, monkeypatch) -> tuple[str, Path]:
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("NBTRACK_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("NBTRACK_EXPERIMENT", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    return uri, db


def _wait_for_files(paths: list[Path], procs: list[subprocess.Popen]) -> None:
    """Every process got to its barrier (or one of them died first: the test says how)."""
    deadline = time.monotonic() + START_TIMEOUT
    while not all(p.exists() for p in paths):
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            out = dead[0].communicate()[0]
            pytest.fail(f"a process ended before the barrier:\n{out[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail("the processes did not reach the barrier")
        time.sleep(0.05)


def _finish(procs: list[subprocess.Popen]) -> list[tuple[int, str]]:
    results = []
    try:
        for p in procs:
            out = p.communicate(timeout=START_TIMEOUT)[0]
            results.append((p.returncode, out))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return results


def _runs(uri: str, experiment: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    client.search_experiments(max_results=1)  # MLflow opens the store
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r}"
    return client.search_runs([exp.experiment_id], max_results=100)


# Everything heavy is imported before the barrier, so the processes reach their first nbtrack
# call (the first touch of the store) together rather than a second apart.
SCRIPT = """
import os, sys, time
import mlflow
import nbtrack
from nbtrack.tracking import tracker

go, ready = sys.argv[1], sys.argv[2]
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.002)
with nbtrack.run(experiment="together", params={"who": sys.argv[3]}):
    x = 1
print("done")
"""


def test_eight_processes_starting_runs_on_a_new_store_all_record_them(tmp_path, monkeypatch):
    uri, db = _fresh_store(tmp_path, monkeypatch)
    script = tmp_path / "together.py"
    script.write_text(SCRIPT)
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(8)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(go), str(ready[i]), str(i)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(8)
    ]
    _wait_for_files(ready, procs)
    assert not db.exists()  # nobody touched the store before the barrier
    go.touch()
    results = _finish(procs)
    failed = [out for code, out in results if code != 0]
    assert not failed, failed[0][-3000:]
    runs = _runs(uri, "together")
    assert len(runs) == 8
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(r.data.params["who"] for r in runs) == [str(i) for i in range(8)]
    assert Path(str(db) + ".nbtrack-lock").exists()


def _notebook(path: Path, go: Path, ready: Path) -> None:
    barrier = (
        "import os, time\n"
        "import mlflow\n"
        "from nbtrack.tracking import tracker\n"
        f"open({str(ready)!r}, 'w').close()\n"
        f"while not os.path.exists({str(go)!r}):\n"
        "    time.sleep(0.002)"
    )
    code_notebook(path, [barrier, "%load_ext nbtrack", "%%track --experiment together\nx = 1"])


def test_eight_kernels_tracking_their_first_cell_on_a_new_store_all_record_it(
    tmp_path, monkeypatch
):
    uri, db = _fresh_store(tmp_path, monkeypatch)
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(8)]
    procs = []
    for i in range(8):
        nb = tmp_path / f"nb{i}.ipynb"
        _notebook(nb, go, ready[i])
        cmd = [sys.executable, "-m", "papermill", str(nb), str(tmp_path / f"out{i}.ipynb")]
        cmd += ["--kernel", "python3", "--cwd", str(tmp_path)]
        procs.append(
            subprocess.Popen(
                cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    _wait_for_files(ready, procs)
    assert not db.exists()
    go.touch()
    results = _finish(procs)
    failed = [out for code, out in results if code != 0]
    assert not failed, failed[0][-3000:]
    for i in range(8):
        out = nbformat.read(tmp_path / f"out{i}.ipynb", as_version=4)
        text = "".join(o.get("text", "") for o in out.cells[2].get("outputs", []))
        assert "untracked" not in text, text
    runs = _runs(uri, "together")
    assert len(runs) == 8
    assert {r.info.status for r in runs} == {"FINISHED"}


# A plain-MLflow process (no nbtrack) creating the store dies right after the first statement
# of a table rebuild, as a process killed mid-migration does: the scratch table stays behind.
INTERRUPTED = """
import os, sys
import mlflow
from sqlalchemy import event
from sqlalchemy.engine import Engine

@event.listens_for(Engine, "after_cursor_execute")
def _die(conn, cursor, statement, *args):
    if statement.lstrip().upper().startswith("CREATE TABLE _ALEMBIC_TMP_"):
        os._exit(3)

mlflow.MlflowClient(tracking_uri=sys.argv[1]).search_experiments(max_results=1)
"""


def test_a_store_left_half_migrated_is_one_sentence_saying_how_to_recover(tmp_path, monkeypatch):
    uri, db = _fresh_store(tmp_path, monkeypatch)
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED)
    done = subprocess.run([sys.executable, str(script), uri], capture_output=True, text=True)
    assert done.returncode == 3, done.stderr[-2000:]  # the migration was interrupted

    # MLflow's own upgrade does not get it back (so the sentence does not suggest it)
    upgrade = subprocess.run(
        [sys.executable, "-m", "mlflow", "db", "upgrade", uri], capture_output=True, text=True
    )
    assert upgrade.returncode != 0
    assert "OperationalError" in upgrade.stderr  # e.g. duplicate column name: step

    code = (
        "import nbtrack\n"
        "try:\n"
        "    with nbtrack.run(experiment='e'):\n"
        "        pass\n"
        "except nbtrack.NbtrackError as e:\n"
        "    print(type(e).__name__ + ': ' + str(e))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    message = out.stdout.strip()
    assert message.startswith("StoreError: could not open the tracking store at "), (
        message + out.stderr[-2000:]
    )
    assert "half-migrated" in message
    assert f"mv {db} {db}.broken" in message
    assert len(message.splitlines()) == 1
    assert "Traceback" not in out.stderr

    # and what it says works: the file moved aside, nbtrack makes a new store
    db.rename(str(db) + ".broken")
    code = "import nbtrack\nwith nbtrack.run(experiment='e'):\n    pass\n"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    assert [r.info.status for r in _runs(uri, "e")] == ["FINISHED"]
