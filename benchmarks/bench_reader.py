"""Readers use the fast copy: a 1,000,000-point run's curves read from its metric-log artifact,
cold (not yet cached) and warm, against plain MLflow's ``get_metric_history``.

    .venv/bin/python benchmarks/bench_reader.py [--points N] [--repeat R] [--mlflow-repeat M]

``NBTRACK_BENCH_POINTS`` sets N too (a quick run: ``NBTRACK_BENCH_POINTS=100000``). The run is
the one ``bench_curves.py`` makes (logged into MLflow once, ~70 s for a million points, cached under
``benchmarks/.cache/``); its Parquet artifact (``record.ARTIFACT_METRIC_LOG``, as the writer stores
it when a run ends) is added once. Each cold read starts from an empty state directory, so it
downloads the artifact; figures are medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
T0 = 1_700_000_000_000  # bench_curves.prepare's first timestamp


def _median(fn, repeat: int, before=None) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def add_artifact(uri: str, run_id: str, n: int) -> None:
    """The run's metric log as the writer stores it at the run's end, added once."""
    from bench_curves import CACHE, KEY, _series

    marker = CACHE / f"artifact-{n}.json"
    if marker.exists() and json.loads(marker.read_text()).get("run_id") == run_id:
        return
    import pyarrow as pa

    from nbtrack import record, store
    from nbtrack.store import metric_log

    steps, values = _series(n)
    table = pa.table(
        {
            "key": pa.array([KEY] * n, pa.string()),
            "step": pa.array(steps, pa.int64()),
            "timestamp": pa.array(T0 + np.arange(n), pa.int64()),
            "value": pa.array(values, pa.float64()),
        },
        schema=metric_log.schema(),
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "points.parquet")
        metric_log.to_parquet(table, path)
        store.log_files(run_id, {record.ARTIFACT_METRIC_LOG: path.read_bytes()})
        size = path.stat().st_size
    marker.write_text(json.dumps({"run_id": run_id, "bytes": size}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = int(os.environ.get("NBTRACK_BENCH_POINTS", 1_000_000))
    parser.add_argument("--points", type=int, default=default)
    parser.add_argument("--repeat", type=int, default=5, help="nbtrack reads")
    parser.add_argument("--mlflow-repeat", type=int, default=3, help="plain MLflow reads (slow)")
    args = parser.parse_args()

    from bench_curves import prepare

    uri, run_id = prepare(args.points)
    os.environ["NBTRACK_TRACKING_URI"] = uri
    import mlflow

    from nbtrack import store

    mlflow.set_tracking_uri(uri)
    store.quiet_mlflow()
    add_artifact(uri, run_id, args.points)

    with tempfile.TemporaryDirectory(prefix="nbtrack-bench-reader-") as state:
        os.environ["NBTRACK_STATE_DIR"] = state  # an empty cache, removed afterwards
        measure(uri, run_id, args)


def measure(uri: str, run_id: str, args: argparse.Namespace) -> None:
    from bench_curves import CACHE, KEY
    from mlflow import MlflowClient

    from nbtrack.query import curves, metric_points

    artifact_bytes = json.loads((CACHE / f"artifact-{args.points}.json").read_text())["bytes"]
    cached = metric_points.cache_dir() / f"{run_id}.parquet"

    def cold() -> None:
        cached.unlink(missing_ok=True)

    plain = MlflowClient(tracking_uri=uri)
    t_plain, history = _median(lambda: plain.get_metric_history(run_id, KEY), args.mlflow_repeat)
    assert len(history) == args.points, len(history)
    expected = np.fromiter((m.value for m in history), np.float64, len(history))
    del history

    r = args.repeat
    downloads = metric_points.downloads
    t_hist_cold, arrays = _median(lambda: metric_points.history(run_id, KEY), r, before=cold)
    assert metric_points.downloads == downloads + r, "every cold read downloads"
    assert np.array_equal(arrays[2], expected), "the log's history differs from MLflow's"
    t_hist_warm, _ = _median(lambda: metric_points.history(run_id, KEY), r)
    t_curves_cold, data = _median(lambda: curves.load([run_id]), r, before=cold)
    assert data.series[0].total == args.points
    t_curves_warm, _ = _median(lambda: curves.load([run_id]), r)
    assert metric_points.downloads == downloads + 2 * r, "warm reads come from the cache"

    rows = [
        ("MlflowClient.get_metric_history (plain MLflow)", t_plain, args.mlflow_repeat),
        ("query.metric_points.history, cold (download + read)", t_hist_cold, r),
        ("query.metric_points.history, warm (cached artifact)", t_hist_warm, r),
        ("nbtrack.curves data, cold (read + LTTB)", t_curves_cold, r),
        ("nbtrack.curves data, warm", t_curves_warm, r),
    ]
    print(
        f"\n{args.points:,} points of one metric; artifact {artifact_bytes / 1e6:.1f} MB "
        f"(medians; n = how many)"
    )
    for label, seconds, n in rows:
        print(f"  {label:<55} {seconds * 1000:9.1f} ms  n={n}")
    print(
        f"  plain MLflow / nbtrack.curves cold: {t_plain / t_curves_cold:.0f}x; "
        f"/ warm: {t_plain / t_curves_warm:.0f}x"
    )


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    main()
