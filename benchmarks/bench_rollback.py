"""How long from calling ``nbtrack.rollback`` until ``models:/NAME@production`` loads the previous
model, against a plain ``load_model`` of that same version.

    python benchmarks/bench_rollback.py [--repeat 15] [--server]

A registered model with two versions of a small scikit-learn classifier (LogisticRegression on
the digits data; the two versions predict differently). Each sample, untimed: version 1 then
version 2 are promoted, so production is 2 and the rollback target is 1. Timed: ``rollback``,
then ``mlflow.sklearn.load_model("models:/NAME@production")`` (checked to predict as version 1);
alternately with a plain ``mlflow.sklearn.load_model("models:/NAME/1")``. Also shown: when,
within ``rollback``, the production alias moved, which is the moment any reader resolving
``models:/NAME@production`` gets version 1 (the rest of the call is bookkeeping: the legacy stage
field, tags, the audit record). Medians; the store is an embedded SQLite file, or with
``--server`` a local ``mlflow server`` over HTTP.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from benchstore import bench_store

NAME = "bench-rollback"


def _versions() -> tuple[np.ndarray, list[np.ndarray]]:
    """Two versions registered from two runs; returns the probe data and each one's output."""
    import mlflow
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    import nbtrack

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    outputs = []
    mlflow.set_experiment("bench-rollback")
    for C in (0.001, 1.0):
        model = LogisticRegression(C=C, max_iter=2000).fit(X, y)
        with mlflow.start_run() as run:
            mlflow.sklearn.log_model(
                model, name="model", input_example=X[:2], pip_requirements=["scikit-learn"]
            )
        nbtrack.register(run.info.run_id, NAME)
        outputs.append(model.predict(X))
    assert not np.array_equal(outputs[0], outputs[1]), "the versions must predict differently"
    return X, outputs


def measure(repeat: int) -> dict[str, float]:
    import mlflow

    import nbtrack
    from nbtrack import store

    X, outputs = _versions()
    moved: list[float] = []
    set_alias = store.set_alias

    def timed_set_alias(name: str, alias: str, version: str) -> None:
        set_alias(name, alias, version)
        if alias == "production":
            moved.append(time.perf_counter())

    store.set_alias = timed_set_alias  # records when readers start seeing the new version
    # warm both paths once (imports, first downloads)
    nbtrack.promote(NAME, 1)
    nbtrack.promote(NAME, 2)
    nbtrack.rollback(NAME)
    mlflow.sklearn.load_model(f"models:/{NAME}@production")
    mlflow.sklearn.load_model(f"models:/{NAME}/1")
    figures: dict[str, list[float]] = {k: [] for k in ("call", "alias", "load", "total", "plain")}
    for _ in range(repeat):
        nbtrack.promote(NAME, 1)
        nbtrack.promote(NAME, 2)
        moved.clear()
        t0 = time.perf_counter()
        nbtrack.rollback(NAME)
        t1 = time.perf_counter()
        model = mlflow.sklearn.load_model(f"models:/{NAME}@production")
        t2 = time.perf_counter()
        assert np.array_equal(model.predict(X), outputs[0]), "production is not version 1"
        figures["call"].append(t1 - t0)
        figures["alias"].append(moved[0] - t0)
        figures["load"].append(t2 - t1)
        figures["total"].append(t2 - t0)
        t = time.perf_counter()
        plain = mlflow.sklearn.load_model(f"models:/{NAME}/1")
        figures["plain"].append(time.perf_counter() - t)
        assert np.array_equal(plain.predict(X), outputs[0])
    return {k: statistics.median(v) for k, v in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="samples")
    parser.add_argument("--server", action="store_true", help="against a local mlflow server")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nbtrack-bench-rollback-"))
    with bench_store(tmp, server=args.server) as uri:
        f = measure(args.repeat)
    rows = [
        ("rollback() call", f["call"] * 1000, "ms"),
        ("  of which: until the production alias moved", f["alias"] * 1000, "ms"),
        ("load_model('models:/NAME@production') after it", f["load"] * 1000, "ms"),
        ("rollback -> previous model loaded", f["total"] * 1000, "ms"),
        ("plain load_model('models:/NAME/1'), same version", f["plain"] * 1000, "ms"),
        ("ratio (rollback + load) / plain load", f["total"] / f["plain"], "x"),
    ]
    print(f"store: {uri}  (medians, n={args.repeat})")
    for label, value, unit in rows:
        print(f"{label:<52} {value:9.2f} {unit}")


if __name__ == "__main__":
    main()
