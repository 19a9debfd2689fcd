"""Learning curves of a 1,000,000-point metric: how long until the figure is built.

    .venv/bin/python benchmarks/bench_curves.py [--points N] [--repeat R]

The run is created once, in a SQLite store cached under ``benchmarks/.cache/`` (git-ignored), and
reused by later invocations. The time to a figure is split in two:

- fetch: reading the full history back from MLflow (``MlflowClient.get_metric_history``, the only
  public way to read a history), compared with the same fetch in a plain MLflow call;
- build: downsampling for display (LTTB) and building the plotly figure (and the static SVG).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache" / "curves"
KEY = "train_loss"


def _series(n: int) -> tuple[np.ndarray, np.ndarray]:
    """A decaying, noisy loss with a few spikes (the points downsampling must not lose)."""
    rng = np.random.default_rng(0)
    t = np.arange(n)
    y = np.exp(-t / (n / 5)) + 0.05 * rng.standard_normal(n)
    spikes = rng.choice(n, size=20, replace=False)
    y[spikes] += 3.0
    return t, y


def prepare(n: int) -> tuple[str, str]:
    """The store URI and run id of an n-point run, created on first use."""
    CACHE.mkdir(parents=True, exist_ok=True)
    db = CACHE / f"mlflow-{n}.db"
    marker = CACHE / f"run-{n}.json"
    uri = f"sqlite:///{db}"
    if marker.exists() and db.exists():
        return uri, json.loads(marker.read_text())["run_id"]
    db.unlink(missing_ok=True)
    os.environ["NBTRACK_TRACKING_URI"] = uri
    from mlflow import MlflowClient

    from nbtrack import store

    c = MlflowClient(tracking_uri=uri)
    exp = c.create_experiment("bench-curves", artifact_location=(CACHE / "mlruns").as_uri())
    run_id = c.create_run(exp, run_name=f"{n}-points").info.run_id
    steps, values = _series(n)
    t0 = 1_700_000_000_000
    print(f"creating a {n:,}-point run in {db} (once) ...", file=sys.stderr)
    start = time.perf_counter()
    chunk = 50_000
    for i in range(0, n, chunk):
        points = [
            (KEY, float(values[j]), t0 + int(j), int(steps[j])) for j in range(i, min(n, i + chunk))
        ]
        store.log_metric_points(run_id, points, uri=uri)
    c.set_terminated(run_id)
    print(f"  created in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    marker.write_text(json.dumps({"run_id": run_id, "points": n}))
    return uri, run_id


def _best(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    uri, run_id = prepare(args.points)
    os.environ["NBTRACK_TRACKING_URI"] = uri
    import mlflow
    from mlflow import MlflowClient

    from nbtrack import store
    from nbtrack.query import curves
    from nbtrack.query.sampling import MAX_POINTS
    from nbtrack.widgets import static
    from nbtrack.widgets.curves import figure_for

    mlflow.set_tracking_uri(uri)
    store.quiet_mlflow()
    plain = MlflowClient(tracking_uri=uri)
    r = args.repeat

    t_plain, history = _best(lambda: plain.get_metric_history(run_id, KEY), r)
    assert len(history) == args.points, len(history)
    del history
    t_fetch, arrays = _best(lambda: store.metric_history(run_id, KEY), r)
    steps, stamps, values = arrays

    [ref] = curves.resolve_runs([run_id])

    def downsample():
        return curves.series_from_history(ref, KEY, steps, stamps, values, x="step")

    t_down, series = _best(downsample, r)
    data = curves.Curves([series], x="step")
    t_fig, fig = _best(lambda: figure_for(data), r)
    t_svg, svg = _best(lambda: static.render(data), r)
    t_all, _ = _best(lambda: curves.load([run_id]), 1)

    shown = len(fig.data[0].x)
    assert shown <= MAX_POINTS and float(np.max(fig.data[0].y)) == float(np.max(values))
    build = t_down + t_fig
    rows = [
        ("fetch: MlflowClient.get_metric_history (plain MLflow)", t_plain),
        ("fetch: nbtrack store.metric_history (+ numpy arrays)", t_fetch),
        ("build: LTTB downsample", t_down),
        ("build: plotly figure", t_fig),
        ("build: static SVG fallback", t_svg),
        ("total: nbtrack.curves data, end to end (fetch + downsample)", t_all),
    ]
    print(f"\n{args.points:,} points of one metric -> {shown:,} points drawn (best of {r})")
    for label, seconds in rows:
        print(f"  {label:<62} {seconds * 1000:9.1f} ms")
    print(
        f"  fetch / plain MLflow fetch: {t_fetch / t_plain:.2f}x; "
        f"build is {build / (t_fetch + build):.1%} of fetch + build "
        f"({build * 1000:.0f} ms vs {t_fetch * 1000:.0f} ms)"
    )
    print(f"  static SVG fallback: {len(svg) / 1024:.0f} KiB")
    # For reference only (nbtrack does not do this): the same rows read straight from MLflow's
    # SQLite schema, which is private to MLflow and changes with its migrations.
    t_sql, _ = _best(lambda: _sqlite_read(uri, run_id), r)
    print(f"  reference, not used: raw SQL on MLflow's private schema {t_sql * 1000:9.1f} ms")


def _sqlite_read(uri: str, run_id: str) -> np.ndarray:
    import sqlite3

    path = uri[len("sqlite:///") :]
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        rows = con.execute(
            "SELECT step, timestamp, value FROM metrics WHERE run_uuid = ? AND key = ? "
            "ORDER BY timestamp, step, value",
            (run_id, KEY),
        ).fetchall()
    return np.asarray(rows)


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    main()
