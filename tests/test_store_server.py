"""nbtrack against a real ``mlflow server`` on 127.0.0.1: a hung server (SIGSTOP) costs one
bounded wait per outage (store.outages), and MLflow's own chatter stays out of cell output."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from tests.support import execute, mlflow_server

MLFLOW_LOG_LINE = re.compile(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


@pytest.fixture(scope="module")
def server(tmp_path_factory, template_db):
    """``mlflow server`` on a free loopback port, with its own SQLite store and artifacts."""
    base = tmp_path_factory.mktemp("server")
    db = base / "mlflow.db"
    shutil.copy(template_db, db)
    args = ["--backend-store-uri", f"sqlite:///{db}"]
    with mlflow_server(base, [*args, "--default-artifact-root", str(base / "artifacts")]) as (
        url,
        proc,
    ):
        yield {"url": url, "proc": proc}


def _env(url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "NBTRACK_"))}
    env.update(
        NBTRACK_TRACKING_URI=url,
        MLFLOW_TRACKING_URI=url,
        NBTRACK_STATE_DIR=str(tmp_path / "state"),
    )
    return env


def _script(script: Path, args: list[Path], env: dict[str, str]) -> subprocess.Popen:
    """The script in a child process, its output piped (read by the test as it goes)."""
    cmd = [sys.executable, str(script), *map(str, args)]
    return subprocess.Popen(
        cmd, env=env, cwd=script.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finished(child: subprocess.Popen) -> tuple[str, str]:
    """Its output once it exits (killed after 5 minutes); it must exit 0."""
    try:
        out, err = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err[-3000:]
    return out, err


HUNG = """
import dataclasses, json, os, sys, time
import nbtrack
from nbtrack import store
from nbtrack.errors import NbtrackError

stalled, resumed = sys.argv[1], sys.argv[2]
report = {}

def outage():
    o = store.outage()
    return dataclasses.asdict(o) if o else None

def block(name):
    try:
        with nbtrack.run(experiment="hung"):
            pass
        return "FINISHED"
    except NbtrackError as e:
        return f"{type(e).__name__}: {e}"

report["first"] = block("first")  # the server accepts the connection and never answers
report["first_outage"] = outage()
report["second"] = block("second")  # known down: fails at once
report["second_outage"] = outage()
report["unreachable"] = store.unreachable()
open(stalled, "w").close()

while not os.path.exists(resumed):  # the test resumes the server
    time.sleep(0.01)
deadline = time.monotonic() + 300
while store.unreachable() and time.monotonic() < deadline:  # the backoff window ends
    time.sleep(0.05)
report["third"] = block("third")  # the probe gets through: the outage is over
report["third_outage"] = outage()
print(json.dumps(report))
"""


def test_a_hung_server_costs_one_timeout_and_then_fails_fast_until_it_answers(server, tmp_path):
    script = tmp_path / "hung.py"
    script.write_text(HUNG)
    stalled, resumed = tmp_path / "stalled", tmp_path / "resumed"
    proc = server["proc"]
    os.killpg(proc.pid, signal.SIGSTOP)
    try:
        child = _script(script, [stalled, resumed], _env(server["url"], tmp_path))
        deadline = time.monotonic() + 300
        while not stalled.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGCONT)
    resumed.touch()
    out, err = _finished(child)
    report = json.loads(out.strip().splitlines()[-1])

    # one call went to the hung server and waited (one timeout: no retries)...
    assert report["first"].startswith("StoreUnreachable: "), report
    assert "no answer within 5 s" in report["first"]
    assert report["first_outage"]["failures"] == 1
    assert report["first_outage"]["fast_failures"] == 0
    # ...the next tracked block made no request at all
    assert report["second"].startswith("StoreUnreachable: "), report
    assert "tries it again in" in report["second"]
    assert report["second_outage"]["failures"] == 1
    assert report["second_outage"]["fast_failures"] == 1
    assert report["unreachable"] is True
    # said once, in one line, without credentials or a traceback
    said = [line for line in err.splitlines() if "is unreachable" in line]
    assert said == [
        f"nbtrack:0: NbtrackWarning: the tracking store at {server['url']} is unreachable (no "
        "answer within 5 s); nbtrack's calls to it fail at once until it answers again (next "
        "try in 10 s)"
    ], err[-3000:]
    assert "Traceback" not in err
    # the server answers again: the next block after the window is recorded, the outage over
    assert report["third"] == "FINISHED", report
    assert report["third_outage"] is None


OUTAGE_AT_END = """
import os, sys, time
import nbtrack

stop_now, stopped, resumed = sys.argv[1:4]
with nbtrack.run(experiment="outage-end") as run:
    nbtrack.log(step=0, loss=1.0)
    assert nbtrack.flush(timeout=120)  # MLflow holds every point before the outage
    open(stop_now, "w").close()  # the test stops the server now
    while not os.path.exists(stopped):
        time.sleep(0.01)
print(run.run_id, run.status, flush=True)  # the block ended during the outage
while not os.path.exists(resumed):
    time.sleep(0.01)
print(nbtrack.flush(timeout=300), flush=True)  # the kept end goes out once the server answers
"""


def test_a_run_ended_during_an_outage_is_ended_when_the_server_answers(server, tmp_path):
    """The block ends while the server hangs: the script goes on (one warning), and the run is
    FINISHED at the block's end time once the server answers: not RUNNING, not KILLED later."""
    script = tmp_path / "end.py"
    script.write_text(OUTAGE_AT_END)
    stop_now, stopped, resumed = (tmp_path / n for n in ("stop-now", "stopped", "resumed"))
    proc = server["proc"]
    env = {**_env(server["url"], tmp_path), "NBTRACK_HTTP_TIMEOUT": "2"}
    child = _script(script, [stop_now, stopped, resumed], env)
    try:
        deadline = time.monotonic() + 300
        while not stop_now.exists():
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGSTOP)
        stopped.touch()
        first = child.stdout.readline().split()  # the block is over: the run id, its status
        before_resume = time.time()
    finally:
        os.killpg(proc.pid, signal.SIGCONT)
    resumed.touch()
    out, err = _finished(child)
    run_id, status = first
    assert status == "FINISHED"  # the cell's outcome, as the script saw it
    assert out.split() == ["True"], err[-3000:]
    assert "did not take the end of run" in err and "ends it FINISHED" in err, err[-3000:]
    from mlflow import MlflowClient

    run = MlflowClient(server["url"]).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.end_time <= before_resume * 1000  # the block's end, not when it was sent
    assert [m.value for m in MlflowClient(server["url"]).get_metric_history(run_id, "loss")] == [
        1.0
    ]


def _chatter_notebook(path: Path, cell: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext nbtrack"),
        nbformat.v4.new_code_cell(cell),
        nbformat.v4.new_code_cell("print('after')"),
    ]
    nbformat.write(nb, path)
    return path


def _all_output(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.extend(str(v) for v in out.get("data", {}).values())
            parts.extend(out.get("traceback", []))
    return "\n".join(parts)


def test_a_tracked_cell_against_a_server_shows_no_mlflow_chatter(server, tmp_path):
    from mlflow import MlflowClient

    nb_path = _chatter_notebook(
        tmp_path / "chatter.ipynb",
        "%%track --experiment chatter\nimport mlflow\nmlflow.log_metric('m', 1.0)\nx = 1",
    )
    env = {**_env(server["url"], tmp_path), "NBTRACK_CARD": "0", "NBTRACK_LIVE": "0"}
    nb = execute(nb_path, tmp_path, env=env)
    text = _all_output(nb)
    assert "View run" not in text and "View experiment" not in text, text
    assert not MLFLOW_LOG_LINE.search(text), text
    assert "untracked" not in text, text
    client = MlflowClient(tracking_uri=server["url"])
    exp = client.get_experiment_by_name("chatter")
    runs = client.search_runs([exp.experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED"]
    assert runs[0].data.metrics["m"] == 1.0


def _make_read_only(path: Path) -> bool:
    """Read-only for this process: chmod, unless we are root (root writes anyway), then the
    immutable attribute, which root too must respect; False when neither is possible."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        return True
    if shutil.which("chattr") is None:
        return False
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
    return done.returncode == 0


def test_a_read_only_store_says_so_in_nbtrack_words_without_mlflow_log_lines(tmp_path, template_db):
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(template_db, db)
    if not _make_read_only(db):
        pytest.skip("cannot make a file read-only for root here (no chattr +i)")
    try:
        uri = f"sqlite:///{db}"
        env = {**_env(uri, tmp_path), "NBTRACK_CARD": "0", "NBTRACK_LIVE": "0"}
        nb_path = _chatter_notebook(tmp_path / "ro.ipynb", "%%track\nx = 1")
        nb = execute(nb_path, tmp_path, env=env)
        text = _all_output(nb)
        assert "this cell runs untracked" in text, text  # nbtrack's one sentence
        assert "readonly database" in text or "read-only" in text, text
        assert not MLFLOW_LOG_LINE.search(text), text
        assert "Traceback" not in text, text
        assert "after" in text
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(db)], check=False)
        else:
            db.chmod(0o644)
