"""NBTRACK_MLFLOW_METRICS=thin: MLflow gets an LTTB-thinned copy (first, last, min, max and
non-finite values kept), the run's Parquet artifact every point, and nbtrack's readers read
every point. A real script run on a real store; the thinning itself on synthetic series."""

from __future__ import annotations

import math
import random
import subprocess
import sys
import textwrap
import time

import pytest

from nbtrack.tracking.metrics.thinning import thin

N = 30_000


def series(n: int, key: str = "loss") -> list[tuple[str, float, int, int]]:
    rng = random.Random(7)
    return [(key, math.exp(-i / 3000) + rng.random() * 0.05, 1000 + i, i) for i in range(n)]


def test_thinning_keeps_about_one_in_n_and_the_first_last_min_max_and_nan():
    pts = series(1000) + series(1000, "acc")
    pts[500] = ("loss", float("nan"), pts[500][2], pts[500][3])
    pts[700] = ("loss", -5.0, pts[700][2], pts[700][3])  # a spike down
    pts[800] = ("loss", 9.0, pts[800][2], pts[800][3])  # and up
    kept = thin(pts, 100)
    loss = [p for p in kept if p[0] == "loss"]
    acc = [p for p in kept if p[0] == "acc"]
    assert 10 <= len(loss) <= 13 and 10 <= len(acc) <= 12
    assert loss[0] == pts[0] and loss[-1] == pts[999]  # first and last
    assert pts[700] in loss and pts[800] in loss  # min and max
    assert any(math.isnan(p[1]) for p in loss)  # the NaN
    assert kept == sorted(kept, key=pts.index)  # in logging order
    assert set(kept) <= set(pts)  # points as logged, none made up


def test_a_short_key_and_every_one_are_kept_whole():
    pts = series(3) + series(2000, "acc")
    assert [p for p in thin(pts, 100) if p[0] == "loss"] == pts[:3]
    assert thin(pts, 1) == pts


def test_a_key_logged_out_of_step_order_is_thinned_by_position():
    pts = list(reversed(series(1000)))
    kept = thin(pts, 50)
    assert kept[0] == pts[0] and kept[-1] == pts[-1] and len(kept) == 20


def test_a_thinned_run_has_every_point_in_its_artifact_and_readers(store, client, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import math, nbtrack
            with nbtrack.run(experiment="thin") as run:
                for i in range({N}):
                    nbtrack.log(step=i, loss=math.exp(-i / 3000) + (0.5 if i == 12345 else 0))
            print(run.run_id, flush=True)
            """
        )
    )
    env_run = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "NBTRACK_MLFLOW_METRICS": "thin"},
    )
    assert env_run.returncode == 0, env_run.stderr
    run_id = env_run.stdout.split()[-1]
    deadline = time.monotonic() + 600
    while (run := client.get_run(run_id)).info.status == "RUNNING":
        assert time.monotonic() < deadline, "the thinned run never ended"
        time.sleep(0.25)
    assert run.info.status == "FINISHED"
    assert run.data.tags["nbtrack.metrics.thinned"] == "lttb 1/100"
    history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "loss"))
    # a thousand points a range: 10 kept of each, and the range's first/last/min/max among them
    assert N // 100 <= len(history) <= N // 100 * 2
    steps = [s for s, _ in history]
    assert steps[0] == 0 and steps[-1] == N - 1 and 12345 in steps  # first, last, the spike
    assert run.data.metrics["loss"] == pytest.approx(math.exp(-(N - 1) / 3000))  # the last value
    from nbtrack.query import metric_points

    s, _stamps, v = metric_points.history(run_id, "loss")
    assert list(s) == list(range(N))  # every point, from the artifact
    assert v[12345] == pytest.approx(math.exp(-12345 / 3000) + 0.5)


def test_a_bad_setting_is_one_sentence_saying_the_choices(store, tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", "import nbtrack\nwith nbtrack.run(experiment='x'): pass"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**__import__("os").environ, "NBTRACK_MLFLOW_METRICS": "half"},
    )
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert "NBTRACK_MLFLOW_METRICS='half' is not a choice" in last
    assert "thin:N" in last
