"""Metric logging throughput: nbtrack.log against plain MLflow, on the embedded SQLite store.

    python benchmarks/bench_log.py [--points 100000] [--sample 2000] [--full] [--repeat 3]

One run, one fresh store in a temp dir (its tables created before anything is timed), the same
loop for every contender: ``points`` points of one metric, steps 0..n-1.

  (a) mlflow.log_metric                  one blocking call a point
  (b) mlflow.log_metric(synchronous=False)  MLflow's async logging as configured by default
  (c) MlflowClient.log_batch             1,000 metrics a call (MLflow's limit)
  (d) nbtrack.log                        inside a real tracked run (nbtrack.run())

For each: the producer's time a point (what the training loop pays) and the end-to-end rate
until everything is persisted (nbtrack: until ``nbtrack.flush()`` returns; the count is then
checked in the store), as medians of ``--repeat`` runs, and ratios against (a) and (c) from this
same run. (a) and (b) run at ~160 points/s, so they are timed on ``--sample`` points unless
``--full``. Also printed: SQLite's own insert rate (executemany into a similar table, one
transaction: the physical limit), how much a busy writer slows a CPU-bound producer, and the
memory a queued point takes.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def median_runs(repeat: int, fn: Callable[[int], tuple[float, float]]) -> tuple[float, float, list]:
    """fn(i) -> (producer seconds a point, end-to-end points/s); medians over ``repeat`` runs."""
    runs = [fn(i) for i in range(repeat)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), runs


def count(client, run_id: str, key: str = "loss") -> int:
    return len(client.get_metric_history(run_id, key))


def bench_sqlite(tmp: Path, n: int) -> tuple[float, float]:
    """executemany of n rows into a metrics-like table of a scratch database, one transaction."""
    db = tmp / f"scratch-{time.monotonic_ns()}.db"
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE metrics (key VARCHAR(250), value FLOAT, timestamp BIGINT, step BIGINT,"
        " is_nan BOOLEAN, run_uuid VARCHAR(32),"
        " PRIMARY KEY (key, timestamp, step, run_uuid, value, is_nan))"
    )
    ts = int(time.time() * 1000)
    rows = [("loss", i * 0.5, ts, i, False, "0" * 32) for i in range(n)]
    t0 = time.perf_counter()
    with con:
        con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)", rows)
    dt = time.perf_counter() - t0
    assert con.execute("SELECT count(*) FROM metrics").fetchone()[0] == n
    con.close()
    db.unlink()
    return dt / n, n / dt


def bench_log_metric(client, n: int, synchronous: bool | None) -> tuple[float, float]:
    import mlflow

    with mlflow.start_run() as run:
        t0 = time.perf_counter()
        for i in range(n):
            mlflow.log_metric("loss", i * 0.5, step=i, synchronous=synchronous)
        t1 = time.perf_counter()
        if synchronous is False:
            mlflow.flush_async_logging()
        t2 = time.perf_counter()
    assert count(client, run.info.run_id) == n
    return (t1 - t0) / n, n / (t2 - t0)


def bench_log_batch(client, exp_id: str, n: int) -> tuple[float, float]:
    from mlflow.entities import Metric

    run_id = client.create_run(exp_id).info.run_id
    t0 = time.perf_counter()
    for start in range(0, n, 1000):
        ts = int(time.time() * 1000)
        batch = [Metric("loss", i * 0.5, ts, i) for i in range(start, min(n, start + 1000))]
        client.log_batch(run_id, metrics=batch)
    dt = time.perf_counter() - t0
    client.set_terminated(run_id)
    assert count(client, run_id) == n
    return dt / n, n / dt


def bench_nbtrack(client, n: int, notes: list[str]) -> tuple[float, float]:
    import nbtrack
    from nbtrack.tracking import tracker

    with nbtrack.run(experiment="bench", params={"n": n}) as r:
        t0 = time.perf_counter()
        for i in range(n):
            nbtrack.log(step=i, loss=i * 0.5)
        t1 = time.perf_counter()
        assert nbtrack.flush(timeout=None)
        t2 = time.perf_counter()
        stats = tracker.writer().stats()
    assert count(client, r.run_id) == n
    notes.append(
        f"{n / (t2 - t0):,.0f} points/s with {stats['processes']} writer processes at the end"
        f" (producer blocked {stats.get('blocked', 0)} times)"
    )
    return (t1 - t0) / n, n / (t2 - t0)


def cpu_work(k: int) -> float:
    s = 0
    for j in range(k):
        s += j * j % 7
    return float(s)


def bench_gil(uri: str, client, exp_id: str, steps: int, per_step: int) -> dict[str, tuple]:
    """A CPU-bound pure-Python loop (~1 ms a step) that logs ``per_step`` points a step: its time
    alone, with the writer working in a thread of this process, and with writer processes; and
    the CPU this process spends a point, until flushed (all its threads)."""
    from nbtrack import store
    from nbtrack.errors import warn
    from nbtrack.tracking.metrics.writer import MetricWriter

    def persist(u: str, run_id: str, points: list) -> None:
        store.log_metric_points(run_id, points, uri=u)

    t0 = time.perf_counter()
    cpu_work(100_000)
    k = int(100_000 * 0.001 / (time.perf_counter() - t0))  # iterations for ~1 ms

    def loop(w: MetricWriter | None, run_id: str) -> tuple[float, float]:
        c0, t0 = time.process_time(), time.perf_counter()
        for i in range(steps):
            x = cpu_work(k)
            if w is not None:
                w.put(uri, run_id, {f"m{j}": x + j for j in range(per_step)}, i)
        t1 = time.perf_counter()
        if w is not None:
            w.flush(timeout=None)
        return t1 - t0, time.perf_counter() - t0, time.process_time() - c0

    alone = min(loop(None, "") for _ in range(3))
    out = {"alone": (alone[0], alone[0], 0.0)}
    with tempfile.TemporaryDirectory() as spool:
        for name, processes in (("writer thread", 0), ("writer processes", 2)):
            w = MetricWriter(persist, 10**7, Path(spool), warn, processes, spawn_busy=0.0)
            run_id = client.create_run(exp_id).info.run_id
            if processes:  # started and warm before timing
                w.put(uri, run_id, {"warm": 0.0}, 0)
                deadline = time.monotonic() + 60
                while w.stats()["processes"] < processes and time.monotonic() < deadline:
                    w.put(uri, run_id, {"warm": 0.0})
                    time.sleep(0.05)
                w.flush(timeout=None)
            secs, flushed, cpu = loop(w, run_id)
            out[name] = (secs, flushed, (cpu - alone[2]) / (steps * per_step))
            w.close()
    return out


def bytes_per_point(n: int = 100_000) -> float:
    """Memory of queued points, with the writer held so nothing drains."""
    from nbtrack.tracking.metrics.writer import MetricWriter

    gate = threading.Event()
    with tempfile.TemporaryDirectory() as spool:
        w = MetricWriter(lambda *a: gate.wait(), 10**7, Path(spool), print, processes=0)
        w.put("uri", "run", {"loss": 0.0}, 0)  # the writer takes this one and waits at the gate
        time.sleep(0.3)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(1, n + 1):
            w.put("uri", "run", {"loss": i * 0.5}, i)
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        gate.set()
        w.flush()
        w.close()
    return (after - before) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--sample", type=int, default=2_000, help="points for (a) and (b)")
    ap.add_argument("--full", action="store_true", help="(a) and (b) on all points (~25 min)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n, repeat = args.points, args.repeat
    sample = n if args.full else min(args.sample, n)

    tmp = Path(tempfile.mkdtemp(prefix="nbtrack-bench-"))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    os.environ.update(
        NBTRACK_TRACKING_URI=uri,
        MLFLOW_TRACKING_URI=uri,
        NBTRACK_STATE_DIR=str(tmp / "state"),
        NBTRACK_LIVE="0",
        NBTRACK_CARD="0",
    )
    import mlflow
    from mlflow import MlflowClient

    from nbtrack import store

    store.quiet_mlflow()
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    client.search_experiments()  # creates the tables: never inside a timing
    exp_id = client.create_experiment("plain-mlflow")
    mlflow.set_experiment(experiment_id=exp_id)
    load0 = os.getloadavg()

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results: dict[str, tuple[int, float, float]] = {}
    say(f"(a) mlflow.log_metric, {sample:,} points x {repeat} ...")
    p, e, _ = median_runs(repeat, lambda i: bench_log_metric(client, sample, None))
    results["a"] = (sample, p, e)
    say(f"(b) mlflow async logging, {sample:,} points x {repeat} ...")
    p, e, _ = median_runs(repeat, lambda i: bench_log_metric(client, sample, False))
    results["b"] = (sample, p, e)
    say(f"(c) MlflowClient.log_batch, {n:,} points x {repeat} ...")
    p, e, _ = median_runs(repeat, lambda i: bench_log_batch(client, exp_id, n))
    results["c"] = (n, p, e)
    say(f"(d) nbtrack.log, {n:,} points x {repeat} ...")
    notes: list[str] = []
    p, e, _ = median_runs(repeat, lambda i: bench_nbtrack(client, n, notes))
    results["d"] = (n, p, e)
    say("SQLite executemany ...")
    p, e, _ = median_runs(repeat, lambda i: bench_sqlite(tmp, n))
    results["s"] = (n, p, e)
    say("producer slowdown beside a busy writer ...")
    gil = bench_gil(uri, client, exp_id, steps=2000, per_step=10)
    per_point = bytes_per_point()
    load1 = os.getloadavg()

    from nbtrack import settings

    labels = {
        "a": "(a) mlflow.log_metric",
        "b": "(b) mlflow async logging (default config)",
        "c": "(c) MlflowClient.log_batch, 1,000 a call",
        "d": "(d) nbtrack.log (tracked run)",
        "s": "SQLite executemany, one transaction",
    }
    pa, ea = results["a"][1:]
    ec = results["c"][2]
    print()
    print(
        f"metric logging, embedded SQLite store: medians of {repeat} runs; "
        f"{os.cpu_count()} CPUs, load average {load0[0]:.1f} -> {load1[0]:.1f}; "
        f"python {sys.version.split()[0]}, mlflow {mlflow.__version__}"
    )
    head = f"{'':44} {'points':>9} {'producer µs/pt':>15} {'end-to-end pts/s':>17}"
    print(head + f" {'e2e vs (a)':>11} {'e2e vs (c)':>11} {'producer vs (a)':>16}")
    for k, label in labels.items():
        pts, p, e = results[k]
        star = "*" if k in "ab" and pts < n else " "
        line = f"{label:44} {pts:>8,}{star} {p * 1e6:>15.2f} {e:>17,.0f}"
        if k != "s":
            line += f" {e / ea:>10.1f}x {e / ec:>10.2f}x {pa / p:>15,.0f}x"
        print(line)
    if sample < n:
        minutes = n / ea / 60
        print(
            f"* (a) and (b) timed on a {sample:,}-point sample: {n:,} points would take "
            f"~{minutes:.0f} min at (a)'s rate (--full times all of them)"
        )
    pd, ed = results["d"][1:]
    es = results["s"][2]

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print()
    print(f"goal, producer under 5 µs a point:       {pd * 1e6:.2f} µs  {verdict(pd < 5e-6)}")
    print(f"goal, end to end at least 3x (c):        {ed / ec:.2f}x  {verdict(ed >= 3 * ec)}")
    print(f"goal, end to end at least 20,000 pts/s:  {ed:,.0f}  {verdict(ed >= 20_000)}")
    print(f"gap to SQLite's own insert rate:         {es / ed:.0f}x")
    print("nbtrack runs, in order (the first starts the writer processes):")
    for note in notes:
        print(f"  {note}")
    print()
    alone = gil["alone"][0]
    print(
        f"a CPU-bound pure-Python loop, ~1 ms and 10 points a step ({20_000:,} points): the"
        " loop's time, the time until flushed, and this process's CPU a point beyond its own work"
    )
    for name, (secs, flushed, cpu) in gil.items():
        line = f"  {name:18} loop {secs:5.2f} s {secs / alone:5.2f}x"
        if name != "alone":
            line += f"   flushed {flushed:5.2f} s {flushed / alone:5.2f}x   {cpu * 1e6:6.1f} µs CPU"
        print(line)
    queue_max = settings.current().queue_max
    print()
    print(
        f"memory: {per_point:.0f} bytes a queued point; NBTRACK_QUEUE_MAX={queue_max:,} "
        f"points -> {queue_max * per_point / 2**20:.0f} MiB at most in the queue"
    )


if __name__ == "__main__":
    main()
