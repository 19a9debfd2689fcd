"""NBTRACK_MLFLOW_METRICS=thin against the default (every point to MLflow), same process, same
store kind, alternating: a run of N points in ``with nbtrack.run()``; the time from the block's
exit until MLflow has the run FINISHED; from the first call to FINISHED; the points MLflow holds;
and reading every point back with nbtrack's reader (from the Parquet artifact) against plain
MLflow's ``get_metric_history`` (MLflow's copy: all points, or the thinned ones). Medians.

    python benchmarks/bench_thin.py [--points 300000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchstore import fresh_store


def one(n: int, mode: str) -> dict[str, float]:
    from mlflow import MlflowClient

    import nbtrack
    from nbtrack.query import metric_points

    os.environ["NBTRACK_MLFLOW_METRICS"] = mode
    client = MlflowClient(os.environ["NBTRACK_TRACKING_URI"])
    log = nbtrack.log
    first = time.perf_counter()
    with nbtrack.run(experiment=f"bench-{mode}") as r:
        for i in range(n):
            log(step=i, loss=1.0 / (i + 1))
    exited = time.perf_counter()
    while (status := client.get_run(r.run_id).info.status) == "RUNNING":
        time.sleep(0.1)
    done = time.perf_counter()
    t0 = time.perf_counter()
    in_mlflow = len(client.get_metric_history(r.run_id, "loss"))
    t1 = time.perf_counter()
    steps, _, _ = metric_points.history(r.run_id, "loss")
    t2 = time.perf_counter()
    assert status == "FINISHED" and len(steps) == n, (status, len(steps))
    return {
        "finished": done - exited,
        "total": done - first,
        "in_mlflow": in_mlflow,
        "mlflow_read": t1 - t0,
        "nbtrack_read": t2 - t1,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="nbtrack-bench-thin-")
    uri = fresh_store(tmp.name)
    os.environ.update(
        NBTRACK_TRACKING_URI=uri,
        MLFLOW_TRACKING_URI=uri,
        NBTRACK_STATE_DIR=str(Path(tmp.name, "state")),
        NBTRACK_LIVE="0",
        NBTRACK_CARD="0",
    )
    from nbtrack import store

    store.quiet_mlflow()
    runs: dict[str, list[dict]] = {"all": [], "thin": []}
    load0 = os.getloadavg()[0]
    for i in range(args.repeat):
        for mode in ("all", "thin"):
            print(f"{mode} {i + 1}/{args.repeat} ...", file=sys.stderr, flush=True)
            runs[mode].append(one(args.points, mode))
    load1 = os.getloadavg()[0]

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[mode])

    print(
        f"\n{args.points:,} points in one run, embedded SQLite store, medians of {args.repeat}; "
        f"{os.cpu_count()} CPUs, load {load0:.1f} -> {load1:.1f}"
    )
    print(f"{'':40} {'all (default)':>14} {'thin':>10} {'thin / all':>11}")
    for key, label, fmt in (
        ("finished", "block's exit to FINISHED, s", ".2f"),
        ("total", "first call to FINISHED, s", ".2f"),
        ("in_mlflow", "points in MLflow", ",.0f"),
        ("mlflow_read", "MLflow's get_metric_history, s", ".2f"),
        ("nbtrack_read", "nbtrack's reader (every point), s", ".3f"),
    ):
        a, t = med("all", key), med("thin", key)
        print(f"{label:40} {a:>14{fmt}} {t:>10{fmt}} {t / a if a else 0:>10.2f}x")
    tmp.cleanup()


if __name__ == "__main__":
    main()
