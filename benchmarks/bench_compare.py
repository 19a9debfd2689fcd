"""The comparison panel's data for 1,000 and 10,000 runs: cold, and on refresh.

    .venv/bin/python benchmarks/bench_compare.py [--sizes 1000 10000] [--repeat 5]

The runs are created once (``create_run`` + ``log_batch``: 8 params, 4 metrics, nbtrack's tags,
start times spread over the past week) in a SQLite store cached under ``benchmarks/.cache/``
(git-ignored), one experiment per size, and reused by later invocations.

What is timed, each repeated and reported as the median (the machine is small and noisy):

- ``mlflow.search_runs``: the reference, the same runs as a DataFrame in plain MLflow;
- cold: a fresh cache fetches every run (``nbtrack.query.table``, pages of 1,000 through
  ``MlflowClient.search_runs``), builds the table and sorts it by a metric;
- first page: the same, until the first 1,000 runs are in the table (what the panel shows first;
  the rest fill in from a background thread);
- refresh, no change: an incremental refresh of a warm cache, table and sort;
- refresh, 10 new: the same after 10 runs were started and one RUNNING run finished;
- filter: MLflow's filter syntax on the cached runs (``metrics.val_acc > 0.9 and
  params.optimizer = 'adam'``), against asking MLflow with the same filter;
- panel: building the widget and its table view on a warm cache (no browser: what the kernel
  does before anything is sent).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache" / "compare"
DB = CACHE / "mlflow.db"
URI = f"sqlite:///{DB}"
WEEK_MS = 7 * 24 * 3600 * 1000
FILTER = "metrics.val_acc > 0.9 and params.optimizer = 'adam'"


def prepare(n: int) -> str:
    """The id of an experiment of n runs, created on first use."""
    CACHE.mkdir(parents=True, exist_ok=True)
    marker = CACHE / f"experiment-{n}.json"
    if marker.exists() and DB.exists():
        return json.loads(marker.read_text())["experiment_id"]
    import numpy as np
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    c = MlflowClient(tracking_uri=URI)
    name = f"bench-compare-{n}"
    exp = c.get_experiment_by_name(name)
    if exp is not None:  # an interrupted creation: start over
        c.delete_experiment(exp.experiment_id)
        c.rename_experiment(exp.experiment_id, f"{name}-deleted-{int(time.time())}")
    exp_id = c.create_experiment(name, artifact_location=(CACHE / "mlruns").as_uri())
    rng = np.random.default_rng(n)
    now = int(time.time() * 1000) - 3600_000  # an hour ago: outside a refresh's window
    starts = np.sort(rng.integers(now - WEEK_MS, now, n))
    print(f"creating {n:,} runs in {DB} (once) ...", file=sys.stderr)
    t0 = time.perf_counter()
    for i, start in enumerate(starts.tolist()):
        commit = f"{rng.integers(0, 2**31):08x}" * 5
        run = c.create_run(
            exp_id,
            start_time=start,
            run_name=f"run-{i:05d}",
            tags={
                "mlflow.user": str(rng.choice(["alice", "bob", "carol"])),
                "mlflow.source.name": "/work/train.ipynb",
                "mlflow.source.type": "NOTEBOOK",
                "mlflow.source.git.commit": commit,
                "nbtrack.git.dirty": str(bool(rng.random() < 0.2)).lower(),
            },
        )
        run_id = run.info.run_id
        acc = float(rng.random())
        c.log_batch(
            run_id,
            params=[
                Param("lr", str(float(rng.choice([0.1, 0.03, 0.01, 0.003, 0.001])))),
                Param("batch_size", str(int(rng.choice([32, 64, 128, 256])))),
                Param("optimizer", str(rng.choice(["adam", "sgd", "adamw"]))),
                Param("epochs", str(int(rng.integers(5, 50)))),
                Param("dropout", f"{rng.random() * 0.5:.2f}"),
                Param("random_seed", str(int(rng.integers(0, 10_000)))),
                Param("data_hash", f"{rng.integers(0, 4):064x}"),
                Param("python_version", "3.11.7"),
            ],
            metrics=[
                Metric("val_acc", acc, start + 1000, 9),
                Metric("val_loss", 1 - acc, start + 1000, 9),
                Metric("train_loss", float(rng.random()), start + 1000, 9),
                Metric("train_acc", float(rng.random()), start + 1000, 9),
            ],
            tags=[RunTag("nbtrack.host", "bench")],
        )
        c.set_terminated(run_id, "FINISHED", end_time=start + int(rng.integers(10_000, 3600_000)))
        if (i + 1) % 1000 == 0:
            print(f"  {i + 1:,} runs, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    marker.write_text(json.dumps({"experiment_id": exp_id}))
    return exp_id


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(n: int, repeat: int) -> list[tuple[str, float, str]]:
    import mlflow
    from mlflow import MlflowClient

    from nbtrack.query import cache as runcache
    from nbtrack.query import compare as comparedata
    from nbtrack.query import filters

    exp_id = prepare(n)
    order = comparedata.parse_order("metrics.val_acc DESC")
    query = runcache.RunQuery(experiment_ids=(exp_id,))
    rows: list[tuple[str, float, str]] = []

    def reference():
        df = mlflow.search_runs(experiment_ids=[exp_id], max_results=100_000)
        assert len(df) >= n, (len(df), n)

    def cold():
        cache = runcache.RunCache(query)
        cache.load()
        comparedata.sort_frame(cache.frame(), order)

    def first_page():
        cache = runcache.RunCache(query)
        next(cache.pages())
        comparedata.sort_frame(cache.frame(), order)

    ref = median_time(reference, repeat)
    rows.append(("mlflow.search_runs", ref, ""))
    rows.append(("cold: fetch, table, sort", median_time(cold, repeat), ""))
    rows.append(("cold: first page in the table", median_time(first_page, repeat), ""))

    warm = runcache.RunCache(query).load()
    warm.frame()

    def refresh():
        warm.refresh()
        comparedata.sort_frame(warm.frame(), order)

    rows.append(("refresh, no change", median_time(refresh, repeat), ""))

    c = MlflowClient(tracking_uri=URI)
    live: list[str] = []

    def activity():
        # 10 new runs, one of them left RUNNING; the one left RUNNING last time finishes.
        for run_id in live:
            c.set_terminated(run_id, "FINISHED")
        live.clear()
        for k in range(10):
            run_id = c.create_run(exp_id, run_name=f"new-{k}").info.run_id
            c.log_batch(run_id, metrics=[mlflow.entities.Metric("val_acc", 0.5, 0, 0)])
            if k:
                c.set_terminated(run_id, "FINISHED")
            else:
                live.append(run_id)

    times = []
    for _ in range(repeat):
        activity()
        t0 = time.perf_counter()
        changed = warm.refresh()
        comparedata.sort_frame(warm.frame(), order)
        times.append(time.perf_counter() - t0)
        assert changed >= 10, changed
    rows.append(("refresh, 10 new + 1 finished", statistics.median(times), ""))
    # Leave the store as it was found: the new runs go (the next invocation's n stays n).
    for run_id in live:
        c.set_terminated(run_id, "FINISHED")
    extra = c.search_runs([exp_id], "attributes.run_name LIKE 'new-%'", max_results=50_000)
    for r in extra:
        c.delete_run(r.info.run_id)
    warm.refresh(full=True)

    local = median_time(lambda: filters.matching(warm, FILTER), repeat)
    server = median_time(
        lambda: mlflow.search_runs(experiment_ids=[exp_id], filter_string=FILTER), repeat
    )
    rows.append(("filter, local", local, ""))
    rows.append(("filter, asking MLflow (search_runs)", server, ""))

    try:
        from nbtrack.widgets.compare import ComparePanel
    except Exception as e:  # the widgets extra is optional
        rows.append(("panel on a warm cache", float("nan"), f"skipped: {e}"))
    else:
        panel_cache = runcache.RunCache(query).load()
        panel_cache.frame()

        def panel():
            p = ComparePanel(panel_cache, experiment_names=["bench"], order=order)
            p.close_all() if hasattr(p, "close_all") else None

        rows.append(("panel on a warm cache", median_time(panel, repeat), ""))
    return [(name, t, note or f"{t / ref:.2f}x search_runs") for name, t, note in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ["NBTRACK_TRACKING_URI"] = URI
    os.environ["MLFLOW_TRACKING_URI"] = URI
    import mlflow

    mlflow.set_tracking_uri(URI)
    from nbtrack import store

    store.quiet_mlflow()
    print(f"median of {args.repeat}; store {URI}")
    for n in args.sizes:
        rows = bench(n, args.repeat)
        print(f"\n{n:,} runs")
        print(f"  {'what':<38} {'median':>9}  ratio")
        for name, t, note in rows:
            print(f"  {name:<38} {t * 1000:>7.0f} ms  {note}")


if __name__ == "__main__":
    main()
