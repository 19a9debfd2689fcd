"""Metric logging throughput: nbtrack.log against plain MLflow, on the embedded SQLite store.

    python benchmarks/bench_log.py [--points N] [--sample 2000] [--full] [--repeat 3]
                                   [--big-repeat 1] [--load quiet|loaded|both] [--no-contenders]

A fresh store in a temp dir for each part (its tables created before anything is timed), the
state directory (NBTRACK_STATE_DIR) in a temp dir too. The same loop for every contender:
``points`` points of one metric, steps 0..n-1 (100,000 unless ``--points``).

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

Then issue 13's figures, each on a quiet machine and beside 2 busy-loop processes (``--load``),
a fresh store for each 1M-point run:

  1. the producer's cost a point (p50, p99, slowest call) and the loop's longest stall (the
     longest gap between two calls' starts), each call timed with perf_counter_ns, over
     1,000,000 points in ``with nbtrack.run()`` (``--big-repeat`` runs, default 1);
  2. the block's extra time at its end (its last call to the block's exit), and from there the
     time until the run is FINISHED in MLflow (its status polled every 0.2 s) with every point
     (counted in the store's table after the timing);
  3. the end-to-end rate: points / (first call to FINISHED);
  4. a run of 20,000 points, the block alone and until FINISHED, beside W&B offline
     (``wandb.init(mode="offline")``, 20,000 ``wandb.log``, ``finish``; never the network).
"""

from __future__ import annotations

import argparse
import array
import atexit
import contextlib
import gc
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
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


def bench_gil(client, exp_id: str, steps: int, per_step: int) -> dict[str, tuple]:
    """A CPU-bound pure-Python loop (~1 ms a step) that logs ``per_step`` points a step: its time
    alone, with MLflow catching up from a thread of this process, and from writer processes; and
    the CPU this process spends a point, until flushed (all its threads)."""
    from nbtrack.errors import warn
    from nbtrack.tracking.metrics.writer import MetricWriter

    uri = client.tracking_uri
    t0 = time.perf_counter()
    cpu_work(100_000)
    k = int(100_000 * 0.001 / (time.perf_counter() - t0))  # iterations for ~1 ms

    def loop(w: MetricWriter | None, run_id: str) -> tuple[float, float, float]:
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
    with tempfile.TemporaryDirectory() as state:
        for name, processes in (("sender thread", 0), ("writer processes", 2)):
            w = MetricWriter(Path(state) / name.replace(" ", "-"), warn, 10**7, processes, 0.0)
            if processes:  # started and warm before timing
                warm = client.create_run(exp_id).info.run_id
                w.put(uri, warm, {"warm": 0.0}, 0)
                deadline = time.monotonic() + 60
                while w.stats()["processes"] < processes and time.monotonic() < deadline:
                    w.put(uri, warm, {"warm": 0.0})
                    time.sleep(0.05)
                w.flush(timeout=None)
                w.end(warm, "FINISHED", int(time.time() * 1000))
            run_id = client.create_run(exp_id).info.run_id
            secs, flushed, cpu = loop(w, run_id)
            out[name] = (secs, flushed, (cpu - alone[2]) / (steps * per_step))
            w.end(run_id, "FINISHED", int(time.time() * 1000))  # nothing left: no catch-up
            w.close()
    return out


def bytes_per_point(n: int = 100_000) -> float:
    """Memory of queued points, with the log thread never started so nothing drains."""
    from nbtrack.tracking.metrics.writer import MetricWriter

    with tempfile.TemporaryDirectory() as state:
        w = MetricWriter(Path(state), print, 10**7, processes=0)
        w._start = lambda: None  # type: ignore[method-assign]  # no log thread: the queue stays
        w.put("uri", "run", {"loss": 0.0}, 0)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(1, n + 1):
            w.put("uri", "run", {"loss": i * 0.5}, i)
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    return (after - before) / n


@contextlib.contextmanager
def cpu_hog(on: bool, n: int = 2) -> Iterator[None]:
    """``n`` busy-loop processes beside the benchmark (a loaded machine), killed after."""
    procs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n if on else 0)
    ]
    try:
        time.sleep(0.5 if procs else 0)
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def wait_finished(client, run_id: str, timeout: float) -> tuple[float, str]:
    """Poll the run's status in MLflow every 0.2 s: (seconds until it is no longer RUNNING, its
    status; "RUNNING" after ``timeout``)."""
    t0 = time.perf_counter()
    while True:
        status = client.get_run(run_id).info.status
        if status != "RUNNING" or time.perf_counter() - t0 > timeout:
            return time.perf_counter() - t0, status
        time.sleep(0.2)


def sql_count(db: Path, run_id: str, key: str = "loss") -> int:
    """Points of a run in the store's table, read directly: MLflow's history of 1M points takes
    25-39 s through its client (a check after the timing, not a way nbtrack reads)."""
    con = sqlite3.connect(db)
    try:
        q = "SELECT count(*) FROM metrics WHERE run_uuid = ? AND key = ?"
        return con.execute(q, (run_id, key)).fetchone()[0]
    finally:
        con.close()


def bench_big(client, db: Path, n: int, bugs: list[str], label: str) -> dict[str, float]:
    """Items 1-3 of issue 13: ``n`` points in a tracked run, each call timed; the block's extra
    time at its end; the time until the run is FINISHED in MLflow with every point."""
    import numpy as np

    import nbtrack

    calls = array.array("q", bytes(8 * n))  # ns a call
    starts = array.array("q", bytes(8 * n))  # ns at each call's start
    clock, log = time.perf_counter_ns, nbtrack.log
    gc_pauses: list[float] = []  # ns of each collection of the oldest generation
    gc_start = [0]

    def on_gc(phase: str, info: dict) -> None:
        if info["generation"] == 2:
            if phase == "start":
                gc_start[0] = clock()
            else:
                gc_pauses.append(clock() - gc_start[0])

    with nbtrack.run(experiment="bench-big", params={"n": n}) as r:
        first = time.perf_counter()
        gc.callbacks.append(on_gc)
        for i in range(n):
            t = clock()
            log(step=i, loss=i * 0.5)
            calls[i] = clock() - t
            starts[i] = t
        last = time.perf_counter()
        gc.callbacks.remove(on_gc)
    exited = time.perf_counter()
    progress = r.catching_up
    waited, status = wait_finished(client, r.run_id, timeout=max(600.0, n / 200))
    done = time.perf_counter()
    stored = sql_count(db, r.run_id)
    if status != "FINISHED" or stored != n:
        bugs.append(
            f"{label}: {n:,} points, run {r.run_id} {status} after {waited:.0f} s "
            f"with {stored:,} points in MLflow"
        )
    c = np.frombuffer(calls, dtype=np.int64) / 1e3
    gaps = np.diff(np.frombuffer(starts, dtype=np.int64)) / 1e3
    return {
        "p50": float(np.percentile(c, 50)),
        "p99": float(np.percentile(c, 99)),
        "max": float(c.max()),
        "mean": float(c.mean()),
        "slow": int((c > 10_000).sum()),
        "gc": max(gc_pauses, default=0) / 1e3,
        "stall": float(max(gaps.max(initial=0.0), c.max())),
        "loop": last - first,
        "block_end": exited - last,
        "finished": done - exited,
        "rate": n / (done - first),
        "behind": (progress[1] - progress[0]) if progress else 0,
        "ok": status == "FINISHED" and stored == n,
    }


def bench_run(client, n: int, bugs: list[str], label: str) -> dict[str, float]:
    """Item 4: a run of ``n`` points, start to done: the whole block, and until FINISHED."""
    import nbtrack

    t0 = time.perf_counter()
    with nbtrack.run(experiment="bench-run", params={"n": n}) as r:
        for i in range(n):
            nbtrack.log(step=i, loss=i * 0.5)
    block = time.perf_counter() - t0
    _, status = wait_finished(client, r.run_id, timeout=300.0)
    total = time.perf_counter() - t0
    stored = count(client, r.run_id)
    if status != "FINISHED" or stored != n:
        bugs.append(f"{label}: {n:,}-point run {r.run_id} {status} with {stored:,} points")
    return {"block": block, "done": total}


def bench_wandb(tmp: Path, n: int) -> dict[str, float] | None:
    """The same run in W&B offline mode: init, ``n`` wandb.log calls, finish."""
    try:
        import wandb
    except ImportError:
        return None
    d = tmp / f"wandb-{time.monotonic_ns()}"
    d.mkdir()
    t0 = time.perf_counter()
    run = wandb.init(mode="offline", dir=str(d), project="bench")
    t1 = time.perf_counter()
    for i in range(n):
        wandb.log({"loss": i * 0.5}, step=i)
    t2 = time.perf_counter()
    run.finish()
    t3 = time.perf_counter()
    return {"init": t1 - t0, "point": (t2 - t1) / n, "finish": t3 - t2, "done": t3 - t0}


def med(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def new_figures(
    tmp: Path,
    big: int,
    big_repeat: int,
    small: int,
    repeat: int,
    loaded: bool,
    bugs: list[str],
    say: Callable[[str], None],
) -> dict:
    label = "loaded" if loaded else "quiet"
    out: dict = {"load0": os.getloadavg()[0]}
    with cpu_hog(loaded):
        say(f"[{label}] {big:,} points in a tracked run x {big_repeat} ...")
        out["big"] = []
        for k in range(big_repeat):
            client, db = fresh_store(tmp, f"big-{label}-{k}")
            out["big"].append(bench_big(client, db, big, bugs, label))
        client, _ = fresh_store(tmp, f"runs-{label}")
        say(f"[{label}] a {small:,}-point run, nbtrack and W&B offline, x {repeat} ...")
        out["run"], out["wandb"] = [], []
        for _ in range(repeat):
            out["run"].append(bench_run(client, small, bugs, label))
            w = bench_wandb(tmp, small)
            if w is not None:
                out["wandb"].append(w)
        out["load1"] = os.getloadavg()[0]
    return out


def print_new(results: dict[str, dict], big: int, big_repeat: int, small: int, repeat: int):
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    cols = list(results)
    print()
    print(
        f"issue 13's figures, {big:,} points in one tracked run ("
        + ("one run" if big_repeat == 1 else f"medians of {big_repeat} runs")
        + f"), a {small:,}-point run (medians of {repeat}); loaded = 2 busy-loop processes"
        " beside it"
    )
    print(
        "load average during: "
        + ", ".join(f"{c} {results[c]['load0']:.1f} -> {results[c]['load1']:.1f}" for c in cols)
    )
    print(f"{'':52} {'goal':>12}" + "".join(f" {c:>12}" for c in cols))

    def row(name: str, goal: str, fmt: Callable[[dict], str]) -> None:
        print(f"{name:52} {goal:>12}" + "".join(f" {fmt(results[c]):>12}" for c in cols))

    def b(key: str, unit: str = "", f: str = ".2f") -> Callable[[dict], str]:
        return lambda r: f"{med(r['big'], key):{f}}{unit}"

    row("1. producer a point, p50", "<= 2 µs", b("p50", " µs"))
    row("   producer a point, p99", "", b("p99", " µs"))

    def ms(key: str) -> Callable[[dict], str]:
        return lambda r: f"{med(r['big'], key) / 1e3:.1f} ms"

    row("   producer a point, mean", "", b("mean", " µs"))
    row("   slowest call", "", ms("max"))
    row("   calls over 10 ms", "", b("slow", "", ",.0f"))
    row("   longest full garbage collection in the loop", "", ms("gc"))
    row(
        "   longest stall of the loop",
        "<= 10 ms",
        lambda r: f"{med(r['big'], 'stall') / 1e3:.1f} ms",
    )
    row("   the loop, all points", "", b("loop", " s"))
    row("2. block's extra time after its last call", "<= 1 s", b("block_end", " s"))
    row("   points not in MLflow at the block's exit", "", b("behind", "", ",.0f"))
    row("   block's exit to FINISHED with all points", "", b("finished", " s", ".1f"))
    row("3. end to end, first log to FINISHED, pts/s", ">= 25,000 q", b("rate", "", ",.0f"))
    row(f"4. nbtrack, {small:,}-point run, block", "", lambda r: f"{med(r['run'], 'block'):.2f} s")
    row(
        f"   nbtrack, {small:,}-point run, to FINISHED",
        "< 1 s",
        lambda r: f"{med(r['run'], 'done'):.2f} s",
    )
    if all(results[c]["wandb"] for c in cols):
        import wandb

        def w(key: str, scale: float = 1, unit: str = " s", f: str = ".2f"):
            return lambda r: f"{med(r['wandb'], key) * scale:{f}}{unit}"

        row(f"   W&B {wandb.__version__} offline: init", "", w("init"))
        row("   W&B offline: wandb.log a point", "", w("point", 1e6, " µs"))
        row("   W&B offline: finish", "", w("finish"))
        row("   W&B offline: total", "", w("done"))
        row(
            "   nbtrack to FINISHED / W&B total",
            "",
            lambda r: f"{med(r['run'], 'done') / med(r['wandb'], 'done'):.2f}x",
        )
        row(
            "   nbtrack block / W&B total",
            "",
            lambda r: f"{med(r['run'], 'block') / med(r['wandb'], 'done'):.2f}x",
        )
    else:
        print("   (W&B not installed: pip install wandb==0.31.*)")
    print()
    for c in cols:
        r = results[c]
        checks = [
            ("p50 <= 2 µs", med(r["big"], "p50") <= 2),
            ("stall <= 10 ms", med(r["big"], "stall") <= 10_000),
            ("block end <= 1 s", med(r["big"], "block_end") <= 1),
            ("run < 1 s", med(r["run"], "done") < 1),
        ]
        if c == "quiet":
            checks.append((">= 25,000 pts/s", med(r["big"], "rate") >= 25_000))
        print(f"goals, {c}: " + "; ".join(f"{name} {verdict(ok)}" for name, ok in checks))


def fresh_store(tmp: Path, name: str):
    """A new SQLite store in ``tmp`` for nbtrack and MLflow, its tables created now: (client,
    its database file)."""
    import mlflow
    from mlflow import MlflowClient

    db = tmp / f"{name}.db"
    uri = f"sqlite:///{db}"
    os.environ.update(NBTRACK_TRACKING_URI=uri, MLFLOW_TRACKING_URI=uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    client.search_experiments()  # creates the tables: never inside a timing
    return client, db


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--points",
        type=int,
        help="N for every figure (default 100,000 for (a)-(d),"
        " 1,000,000 for issue 13's 1-3, 20,000 for its run)",
    )
    ap.add_argument("--sample", type=int, default=2_000, help="points for (a) and (b)")
    ap.add_argument("--full", action="store_true", help="(a) and (b) on all points (~25 min)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--big-repeat", type=int, default=1, help="runs of the 1M-point figures")
    ap.add_argument(
        "--load",
        choices=["quiet", "loaded", "both"],
        default="both",
        help="issue 13's figures on a quiet machine, beside 2 busy loops, or both",
    )
    ap.add_argument("--no-contenders", action="store_true", help="issue 13's figures only")
    args = ap.parse_args()
    n, repeat = args.points or 100_000, args.repeat
    big, small = args.points or 1_000_000, min(args.points or 20_000, 20_000)
    sample = n if args.full else min(args.sample, n)

    tmp = Path(tempfile.mkdtemp(prefix="nbtrack-bench-"))
    atexit.register(shutil.rmtree, tmp, True)  # ~700 MB after a full run; after nbtrack's exit
    os.environ.update(
        NBTRACK_STATE_DIR=str(tmp / "state"),
        NBTRACK_LIVE="0",
        NBTRACK_CARD="0",
        # W&B: offline, quiet, nothing sent anywhere (no error reports either)
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_ERROR_REPORTING="false",
        WANDB_DISABLE_GIT="true",
        WANDB_DIR=str(tmp / "wandb"),
        WANDB_CONFIG_DIR=str(tmp / "wandb-config"),
        WANDB_CACHE_DIR=str(tmp / "wandb-cache"),
        WANDB_DATA_DIR=str(tmp / "wandb-data"),
        WANDB_BASE_URL="http://127.0.0.1:9",  # were anything to try the network, it goes nowhere
    )
    import mlflow

    from nbtrack import store

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    store.quiet_mlflow()
    bugs: list[str] = []
    new: dict[str, dict] = {}
    for loaded in {"quiet": [False], "loaded": [True], "both": [False, True]}[args.load]:
        new["loaded" if loaded else "quiet"] = new_figures(
            tmp, big, args.big_repeat, small, repeat, loaded, bugs, say
        )
    if args.no_contenders:
        print_new(new, big, args.big_repeat, small, repeat)
        print_bugs(bugs)
        return

    client, _ = fresh_store(tmp, "contenders")
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
    gil = bench_gil(client, exp_id, steps=2000, per_step=10)
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
    if new:
        print_new(new, big, args.big_repeat, small, repeat)
    print_bugs(bugs)


def print_bugs(bugs: list[str]) -> None:
    if bugs:
        print()
        print("PROBLEMS (a run not FINISHED, or points missing):")
        for b in bugs:
            print(f"  {b}")


if __name__ == "__main__":
    main()
