"""The metric writer against real stores: a fresh SQLite MLflow store per test (the ``store``
fixture), a real ``mlflow server`` for the unreachable-store case, real writer processes, the
durable local log in a per-test state directory."""

from __future__ import annotations

import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

import nbtrack
from nbtrack.errors import InvalidMetric, NbtrackWarning, UsageError, warn
from nbtrack.tracking.metrics.points import check_key
from nbtrack.tracking.metrics.writer import MetricWriter


def make_writer(tmp_path: Path, **kw) -> MetricWriter:
    kw = {"maxsize": 200_000, "processes": 0, **kw}
    return MetricWriter(tmp_path / "state", notify=warn, **kw)


@pytest.fixture
def run_id(client) -> str:
    return client.create_run(client.create_experiment("writer")).info.run_id


def history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def produce(w: MetricWriter, uri: str, run_id: str, n: int) -> None:
    """n points over four keys: two with explicit steps, two with automatic ones."""
    for i in range(n // 4):
        w.put(uri, run_id, {"loss": i * 0.5, "acc": i / n}, step=i)
        w.put(uri, run_id, {"lr": 1.0 / (i + 1), "grad/norm": float(i % 7)})


def wait_for_processes(w: MetricWriter, uri: str, run_id: str, n: int) -> None:
    """Start the writer processes (spawn_busy=0: at the first write) and wait until n are up."""
    deadline = time.monotonic() + 120
    while w.stats()["processes"] < n:
        assert time.monotonic() < deadline, "writer processes did not start"
        w.put(uri, run_id, {"warmup": 0.0})
        time.sleep(0.05)
    assert w.flush(timeout=None)


def check_all_there(client, run_id: str, n: int) -> None:
    steps = list(range(n // 4))
    assert history(client, run_id, "loss") == [(i, i * 0.5) for i in steps]
    assert history(client, run_id, "acc") == [(i, i / n) for i in steps]
    assert history(client, run_id, "lr") == [(i, 1.0 / (i + 1)) for i in steps]
    assert history(client, run_id, "grad/norm") == [(i, float(i % 7)) for i in steps]


@pytest.mark.parametrize("processes", [0, 2], ids=["thread", "processes"])
def test_fast_producer_loses_nothing(store, client, run_id, tmp_path, monkeypatch, processes):
    # MLflow's async mode must not make a flush return before the points are in the store.
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "true")
    w = make_writer(tmp_path, processes=processes, spawn_busy=0.0)
    try:
        if processes:  # let them start first: on a busy machine the thread alone could finish
            wait_for_processes(w, store, run_id, processes)
        before = w.stats().get("sent", 0)
        produce(w, store, run_id, 50_000)
        assert w.flush(timeout=None)
        check_all_there(client, run_id, 50_000)
        stats = w.stats()
        assert stats["sent"] - before == 50_000 and not stats.get("failed")
    finally:
        w.close()


def test_nan_and_inf_are_kept_as_mlflow_keeps_them_and_flagged_once_per_key(
    store, client, run_id, tmp_path
):
    w = make_writer(tmp_path)
    with pytest.warns(NbtrackWarning) as record:
        for step in range(3):
            w.put(store, run_id, {"x": math.nan, "y": math.inf, "z": -math.inf, "ok": 1.0}, step)
    flagged = [str(r.message) for r in record if issubclass(r.category, NbtrackWarning)]
    assert len(flagged) == 3 and all(any(f"'{k}'" in m for m in flagged) for k in "xyz")
    assert w.flush()
    # the same values logged through MLflow itself, for comparison
    for step, value in enumerate([math.nan, math.inf, -math.inf]):
        mlflow.MlflowClient(store).log_metric(run_id, "plain", value, step=step)
    plain = [v for _, v in history(client, run_id, "plain")]
    ours = [history(client, run_id, k)[0][1] for k in "xyz"]
    assert math.isnan(ours[0]) and math.isnan(plain[0])
    assert ours[1:] == plain[1:]
    assert [s for s, _ in history(client, run_id, "x")] == [0, 1, 2]
    w.close()


def test_bad_keys_and_values_raise_at_the_call_site_naming_the_key(store, client, tmp_path):
    with nbtrack.run(experiment="bad") as r:
        with pytest.raises(InvalidMetric, match="'bad key!'"):
            nbtrack.log(step=0, **{"bad key!": 1.0})
        with pytest.raises(InvalidMetric, match=r"'acc'.*'high'"):
            nbtrack.log(step=0, loss=0.5, acc="high")  # one bad value: nothing of the call
        with pytest.raises(InvalidMetric, match="'flag'"):
            nbtrack.log(flag=True)
        with pytest.raises(UsageError, match=r"step=1\.5"):
            nbtrack.log(step=1.5, loss=0.5)
        nbtrack.log(step=7, loss=0.25)
    # nothing failed later in the background: only the good call is in the store
    assert history(client, r.run_id, "loss") == [(7, 0.25)]
    assert r.status == "FINISHED"


def test_key_rules_match_mlflow(store, client, run_id):
    """check_key refuses exactly the names MLflow refuses, so nothing fails in a writer."""
    keys = [
        "loss", "val/acc", "a b", "a-b.c:d", "über", "x" * 250,
        "x" * 251, "", "a//b", "a/", "/a", "../a", "a/../b", "./a", ".", "a\\b", "a!", "a\n",
    ]  # fmt: skip
    c = mlflow.MlflowClient(store)
    for key in keys:
        try:
            check_key(key)
            ours = True
        except InvalidMetric:
            ours = False
        try:
            c.log_metric(run_id, key, 1.0)
            theirs = True
        except Exception:
            theirs = False
        # MLflow lets "a\n" through its regex ($ matches before a final newline); refusing it
        # at the call site is stricter, never looser.
        assert ours == theirs or (key == "a\n" and not ours), key


def _lock_store(uri: str, seconds: float) -> threading.Thread:
    """Hold SQLite's exclusive lock on the store for a while: a really slow store."""
    locked = threading.Event()

    def hold() -> None:
        con = sqlite3.connect(uri[len("sqlite:///") :], isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(seconds)
        con.execute("COMMIT")
        con.close()

    t = threading.Thread(target=hold)
    t.start()
    locked.wait()
    return t


def test_a_locked_store_does_not_block_the_producer(store, client, run_id, tmp_path):
    w = make_writer(tmp_path)
    w.put(store, run_id, {"loss": 0.0}, 0)  # start the writer
    assert w.flush()
    holder = _lock_store(store, 2.0)
    for i in range(1, 20_000):
        w.put(store, run_id, {"loss": float(i)}, i)
    logged_while_locked = holder.is_alive()
    holder.join()
    # The producer never waited for the store: the points went to the local log (when the
    # machine is so busy that the lock is gone before the loop ends, this says nothing).
    if logged_while_locked:
        assert w.stats().get("blocked", 0) == 0
    assert w.flush(timeout=None)
    assert history(client, run_id, "loss") == [(i, float(i)) for i in range(20_000)]
    w.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(db: str, port: int, tmp_path: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--backend-store-uri", db, "--default-artifact-root", str(tmp_path / "artifacts")]
    cmd += ["--workers", "1"]
    with open(tmp_path / "server.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((tmp_path / "server.log").read_text()[-2000:])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.3)
    _stop(proc)
    raise RuntimeError("mlflow server did not start: " + (tmp_path / "server.log").read_text())


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn/gunicorn workers
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_unreachable_store_keeps_the_points_and_a_later_flush_delivers_exactly_once(
    store, client, run_id, tmp_path, monkeypatch
):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    port = _free_port()
    server_uri = f"http://user:secret@127.0.0.1:{port}"  # down: nothing listens there yet
    w = make_writer(tmp_path, processes=2, spawn_busy=0.0)
    for i in range(3000):
        w.put(server_uri, run_id, {"loss": float(i)}, i)
    with pytest.warns(NbtrackWarning) as record:
        assert not w.flush(timeout=5)
    messages = [str(r.message) for r in record]
    logs = tmp_path / "state" / "metrics"
    # one line names the store (never its credentials) and where the points are kept
    assert any(f"127.0.0.1:{port}" in m and str(logs) in m for m in messages), messages
    assert not any("secret" in m for m in messages)
    assert list((logs / run_id).glob("*.arrow"))
    assert history(client, run_id, "loss") == []  # nothing partial reached the store

    # a point logged while the store is still down is kept with the others
    w.put(server_uri, run_id, {"loss": 3000.0}, 3000)
    with pytest.warns(NbtrackWarning, match="3001 metric points"):
        assert not w.flush(timeout=2)

    server = _start_server(store, port, tmp_path)
    try:
        assert w.flush(timeout=120)  # the store is back: the log goes out
        assert not list((logs / run_id).glob("*.arrow"))
        assert w.flush()  # and only once
        assert history(client, run_id, "loss") == [(i, float(i)) for i in range(3001)]
        # the writer processes log to the server too
        for i in range(3001, 9000):
            w.put(server_uri, run_id, {"loss": float(i)}, i)
        assert w.flush(timeout=120)
        assert w.stats()["processes"] > 0
    finally:
        w.close()
        _stop(server)
    assert history(client, run_id, "loss") == [(i, float(i)) for i in range(9000)]


def test_a_writer_process_that_dies_loses_nothing(store, client, run_id, tmp_path):
    w = make_writer(tmp_path, processes=2, spawn_busy=0.0)
    try:
        w.put(store, run_id, {"loss": 0.0}, 0)
        wait_for_processes(w, store, run_id, 2)
        n = 40_000
        for i in range(1, n):
            w.put(store, run_id, {"loss": float(i)}, i)
            if i == 10_000:  # writers busy, ranges in flight: kill one of them
                w.drain()
                victim = w.sender._pool.workers[0]
                while not victim.inflight:
                    time.sleep(0.001)
                os.kill(victim.proc.pid, signal.SIGKILL)
        assert w.flush(timeout=None)
        assert w.stats()["requeued"] > 0  # what it held was sent again
        # every point once: chunks it had not acknowledged were sent again, and MLflow ignores
        # the exact duplicates of any it had written
        assert history(client, run_id, "loss") == [(i, float(i)) for i in range(n)]
    finally:
        w.close()


def wait_for_run(client, run_id: str, n: int, status: str, key: str = "loss") -> None:
    """Poll until the run is ``status``; whenever it is terminal, MLflow must hold all ``n``
    points (a run is never FINISHED, FAILED or KILLED with points missing)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        run = client.get_run(run_id)
        if run.info.status != "RUNNING":
            assert run.info.status == status
            assert len(client.get_metric_history(run_id, key)) == n
            return
        time.sleep(0.2)
    pytest.fail(f"run {run_id} is still RUNNING with {len(history(client, run_id, key))} points")


def test_points_left_at_exit_are_sent_after_it(store, client, tmp_path):
    script = textwrap.dedent(
        """
        import nbtrack
        from nbtrack.tracking import tracker
        # a run that is started and never finished: the process exits in the middle of it
        run = tracker.start(tracker.RunSpec(experiment="atexit"), tracker.script_source(None))
        for i in range(100_000):
            nbtrack.log(step=i, loss=i / 2)
        print(run.run_id)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip().splitlines()[-1]
    # the process's exit handed what MLflow lacked to a catch-up process, which ends the run
    # KILLED (it was still running) once every point is in
    wait_for_run(client, run_id, 100_000, "KILLED")
    assert history(client, run_id, "loss") == [(i, i / 2) for i in range(100_000)]


def test_a_killed_process_loses_at_most_its_last_write(store, client, tmp_path):
    script = textwrap.dedent(
        """
        import os, signal, sys, time
        import nbtrack
        from nbtrack.tracking import tracker
        run = tracker.start(tracker.RunSpec(experiment="killed"), tracker.script_source(None))
        w = tracker.writer()
        for i in range(200_000):
            nbtrack.log(step=i, loss=float(i))
        w.drain()  # what the log thread does every half second
        for i in range(200_000, 200_100):
            nbtrack.log(step=i, loss=float(i))  # still in memory: lost with the process
        print(run.run_id, w.stats()["sent"], flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert out.returncode == -signal.SIGKILL, out.stderr
    run_id, _sent = out.stdout.split()
    logs = Path(os.environ["NBTRACK_STATE_DIR"]) / "metrics" / run_id
    assert logs.is_dir()
    # the next process that loads nbtrack on this machine sends the rest: here, the CLI
    cli = subprocess.run(
        [sys.executable, "-m", "nbtrack.frontends.cli", "flush"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    wait_for_run(client, run_id, 200_000, "KILLED")
    # every point of the log, each once, and in order
    assert history(client, run_id, "loss") == [(i, float(i)) for i in range(200_000)]
    assert not logs.exists()


def test_plain_mlflow_log_metric_works_alongside(store, client):
    with nbtrack.run(experiment="mixed") as r:
        for i in range(100):
            nbtrack.log(step=i, ours=float(i))
            mlflow.log_metric("theirs", float(i), step=i)
        assert mlflow.active_run().info.run_id == r.run_id
    assert history(client, r.run_id, "ours") == [(i, float(i)) for i in range(100)]
    assert history(client, r.run_id, "theirs") == [(i, float(i)) for i in range(100)]
    run = client.get_run(r.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics == {"ours": 99.0, "theirs": 99.0}


def test_a_catch_up_that_looks_in_while_a_run_log_is_created_does_not_take_it(tmp_path):
    """A process's catch-up (8 starting at once) may lock a new run's folder before its owner
    does: it must find nothing to adopt, and the owner must still own the run."""
    from nbtrack.store import metric_log
    from nbtrack.tracking.metrics import run_logs

    d = metric_log.run_dir(tmp_path, "r1")
    early = metric_log.hold(d / metric_log.OWNER_LOCK)  # the catch-up, first to the lock
    assert early is not None
    owned: list = []
    owner = threading.Thread(
        target=lambda: owned.append(metric_log.own_run(tmp_path, "r1", "sqlite:///x.db"))
    )
    owner.start()
    # the catch-up sees no run file yet: nothing to adopt, so it lets go (as adopt() does)
    assert metric_log.read_json(d / metric_log.RUN_FILE) is None
    metric_log.release(early)
    owner.join(timeout=600)  # it returns once it holds the lock
    [(folder, fd)] = owned
    assert folder == d and fd is not None  # the owner holds its run
    assert run_logs.adopt(tmp_path, set()) == []  # and no later catch-up takes it over
    metric_log.release(fd)
