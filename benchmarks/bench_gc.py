"""How long ``nbtrack.usage`` and a dry-run ``nbtrack.gc`` take over 1,000 runs, against plain
MLflow listing the same runs' artifacts with their sizes.

    python benchmarks/bench_gc.py [--runs 1000] [--repeat 5]

An embedded store (SQLite, local artifacts): N runs, each with a metric, two params, five
checkpoint files, a notes file and a snapshot file under ``nbtrack/`` (logged with MLflow's
client, untimed). Timed, alternately: ``nbtrack.usage(exp)``; ``nbtrack.gc(exp, keep_top=5,
metric="val_acc")`` (a dry run: registry checks included); the reference, plain MLflow:
``search_runs`` and ``list_artifacts`` walked folder by folder for every run (what a script gets
sizes with); and ``search_runs`` alone (the floor both stand on). Medians of ``--repeat``.
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

EXP = "bench-gc"


def _seed(client, runs: int, tmp: Path) -> str:
    from mlflow.entities import Metric, Param

    exp_id = client.create_experiment(EXP)
    folder = tmp / "files"
    (folder / "nbtrack").mkdir(parents=True)
    for i in range(5):
        (folder / f"checkpoint_{i}.pth").write_bytes(os.urandom(2048))
    (folder / "notes.txt").write_text("notes")
    (folder / "nbtrack" / "cell.py").write_text("lr = 0.1\n")
    for k in range(runs):
        run_id = client.create_run(exp_id).info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric("val_acc", (k * 7919 % runs) / runs, 0, 0)],
            params=[Param("lr", str(k)), Param("k", str(k))],
        )
        client.log_artifacts(run_id, str(folder))
        client.set_terminated(run_id, "FINISHED")
    return exp_id


def _plain(client, exp_id: str) -> int:
    total = 0
    runs = client.search_runs([exp_id], max_results=50_000)
    for run in runs:
        stack = [None]
        while stack:
            for f in client.list_artifacts(run.info.run_id, stack.pop()):
                if f.is_dir:
                    stack.append(f.path)
                else:
                    total += f.file_size or 0
    return total


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-gc-") as tmp:
        os.chdir(tmp)  # the store's artifacts go under it
        uri = fresh_store(tmp)
        os.environ["NBTRACK_TRACKING_URI"] = os.environ["MLFLOW_TRACKING_URI"] = uri
        os.environ["NBTRACK_STATE_DIR"] = str(Path(tmp) / "state")
        import mlflow

        import nbtrack

        client = mlflow.MlflowClient(uri)
        t = time.perf_counter()
        exp_id = _seed(client, args.runs, Path(tmp))
        print(f"seeded {args.runs} runs in {time.perf_counter() - t:.1f} s (untimed)")

        usage = nbtrack.usage(EXP)
        assert len(usage.frame) == args.runs
        assert usage.total == _plain(client, exp_id), "nbtrack and MLflow disagree on bytes"
        dry = nbtrack.gc(EXP, keep_top=5, metric="val_acc")
        assert (dry.frame["action"] == "keep").sum() == 5

        samples: dict[str, list[float]] = {k: [] for k in ("usage", "gc", "plain", "search")}
        for _ in range(args.repeat):
            samples["usage"].append(_timed(lambda: nbtrack.usage(EXP)))
            samples["gc"].append(_timed(lambda: nbtrack.gc(EXP, keep_top=5, metric="val_acc")))
            samples["plain"].append(_timed(lambda: _plain(client, exp_id)))
            samples["search"].append(
                _timed(lambda: client.search_runs([exp_id], max_results=50_000))
            )
        med = {k: statistics.median(v) for k, v in samples.items()}
        print(f"{args.runs} runs, {usage.total / 1e6:.1f} MB, medians of {args.repeat}:")
        print(f"  nbtrack.usage                         {med['usage']:7.3f} s")
        print(f"  nbtrack.gc dry run (keep_top=5)       {med['gc']:7.3f} s")
        print(f"  plain MLflow: search + list_artifacts {med['plain']:7.3f} s (reference)")
        print(f"  plain MLflow: search_runs alone       {med['search']:7.3f} s")
        print(
            f"  usage / plain listing = {med['usage'] / med['plain']:.2f}, "
            f"gc dry run / plain listing = {med['gc'] / med['plain']:.2f}"
        )


if __name__ == "__main__":
    main()
