"""Finding one prediction among a million: ``nbtrack.audit_prediction`` against a plain scan of the
inference runs' prediction files, and what ``nbtrack.predict`` adds to the model's own predict.

    python benchmarks/bench_audit.py [--runs 100] [--rows 10000] [--lookups 200] [--server]

A LogisticRegression on scikit-learn's digits (64 features) is registered and promoted. Then
``--runs`` calls of ``nbtrack.predict("bench-audit@production", X, ids=...)`` of ``--rows`` rows
each make the inference runs (1,000,000 predictions by default). Timed:

- predict: ``nbtrack.predict`` against the model's own ``predict`` on the same 10,000 rows
  (medians of the first runs' calls, alternating);
- audit, warm: ``audit_prediction`` of random ids (the index ``predict`` filled as it wrote);
- audit, cold: the same from an empty state dir (another machine): the first call reads every
  run's id column into the index, the next ones are warm again;
- plain scan: what a user without the index does: download each run's prediction files and
  filter them for the id (a few ids; each scan reads everything).

Medians and maxima; the store is an embedded SQLite file, or with ``--server`` a local
``mlflow server`` over HTTP (proxied artifacts).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from benchstore import bench_store

NAME = "bench-audit"


def _model():
    import mlflow
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    import nbtrack

    digits = load_digits()
    clf = LogisticRegression(max_iter=200).fit(digits.data, digits.target)
    mlflow.set_experiment("bench-audit")
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(clf, name="model", pip_requirements=["scikit-learn"])
    nbtrack.register(run.info.run_id, NAME)
    nbtrack.promote(NAME, 1)
    return clf, digits.data


def _scan(prediction_id: str, run_ids: list[str]) -> dict:
    """The plain way: every run's prediction files downloaded and filtered."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from mlflow import MlflowClient

    client = MlflowClient()
    with tempfile.TemporaryDirectory() as tmp:
        for run_id in run_ids:
            local = client.download_artifacts(run_id, "nbtrack/predictions", tmp + "/" + run_id)
            for part in sorted(Path(local).glob("*.parquet")):
                table = pq.read_table(part)
                hit = table.filter(pc.equal(table["prediction_id"], prediction_id))
                if hit.num_rows:
                    return {"run_id": run_id, **hit.to_pylist()[0]}
    return {}


def measure(runs: int, rows: int, lookups: int) -> dict[str, object]:
    import nbtrack

    clf, data = _model()
    X = np.tile(data, (rows // len(data) + 1, 1))[:rows]
    out: dict[str, object] = {}
    own, ours = [], []
    run_ids = []
    started = time.perf_counter()
    for i in range(runs):
        ids = [f"r{i:03d}-{j:06d}" for j in range(rows)]
        if i < 7:  # the model's own predict, alternating with nbtrack's
            t = time.perf_counter()
            clf.predict(X)
            own.append(time.perf_counter() - t)
        t = time.perf_counter()
        nbtrack.predict(f"{NAME}@production", X, ids=ids)
        ours.append(time.perf_counter() - t)
    out["make"] = time.perf_counter() - started
    out["own"], out["ours"] = statistics.median(own), statistics.median(ours)
    # A serving loop: the call returns after the model's predict and the hashing; the writing
    # happens behind it (the block's end waits for it).
    served = []
    with nbtrack.inference(f"{NAME}@production") as inf:
        for i in range(20):
            t = time.perf_counter()
            inf.predict(X, ids=[f"s{i:03d}-{j:06d}" for j in range(rows)])
            served.append(time.perf_counter() - t)
    out["served"] = statistics.median(served)
    for run in nbtrack.runs("bench-audit", filter="tags.`nbtrack.kind` = 'inference'").itertuples():
        run_ids.append(run.run_id)
    run_ids = run_ids[:runs]
    rng = random.Random(0)
    keys = [f"r{rng.randrange(runs):03d}-{rng.randrange(rows):06d}" for _ in range(lookups)]

    def timed(key: str) -> float:
        t = time.perf_counter()
        found = nbtrack.audit_prediction(key)
        took = time.perf_counter() - t
        assert found.prediction_id == key and found.model_version == "1", found
        return took

    warm = [timed(k) for k in keys]
    out["warm"] = (statistics.median(warm), max(warm))
    os.environ["NBTRACK_STATE_DIR"] = tempfile.mkdtemp(prefix="nbtrack-bench-cold-")
    first = timed(keys[0])
    again = [timed(k) for k in keys[1:]]
    out["cold_first"] = first
    out["cold_after"] = (statistics.median(again), max(again))
    scans = []
    for key in keys[:5]:
        t = time.perf_counter()
        hit = _scan(key, run_ids)
        scans.append(time.perf_counter() - t)
        assert hit.get("prediction_id") == key
    out["scan"] = (statistics.median(scans), max(scans))
    out["n_runs"] = len(run_ids)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--server", action="store_true", help="against a local mlflow server")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nbtrack-bench-audit-"))
    os.environ["NBTRACK_STATE_DIR"] = str(tmp / "state")
    with bench_store(tmp, server=args.server) as uri:
        f = measure(args.runs, args.rows, args.lookups)
    total = args.runs * args.rows
    print(f"store: {uri}; {f['n_runs']} inference runs, {total:,} predictions")
    print(f"making them: {f['make']:.1f} s ({total / f['make']:,.0f} predictions/s)")
    own, ours = f["own"], f["ours"]
    print(
        f"predict of {args.rows:,} rows: model {own * 1000:.1f} ms, nbtrack.predict "
        f"{ours * 1000:.1f} ms (+{(ours - own) * 1000:.1f} ms, {ours / own:.1f}x)"
    )
    print(
        f"nbtrack.inference(...).predict of {args.rows:,} rows (writing in the background): "
        f"{f['served'] * 1000:.1f} ms ({f['served'] / own:.1f}x the model's)"
    )
    for label, key in (
        ("audit, warm index", "warm"),
        ("audit, cold index, after the first", "cold_after"),
    ):
        med, top = f[key]
        print(
            f"{label:<36} median {med * 1000:7.1f} ms  max {top * 1000:7.1f} ms  (n={args.lookups})"
        )
    print(
        f"{'audit, cold index, first call':<36} {f['cold_first'] * 1000:9.1f} ms "
        "(reads the runs whose id range holds the id)"
    )
    med, top = f["scan"]
    print(
        f"{'plain scan of the artifacts':<36} median {med * 1000:7.1f} ms  max {top * 1000:7.1f} ms"
    )
    print(f"ratio scan / warm audit: {f['scan'][0] / f['warm'][0]:.0f}x")


if __name__ == "__main__":
    main()
