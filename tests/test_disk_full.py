"""A full disk under the metric log (a 2 MB tmpfs as NBTRACK_STATE_DIR): one warning, the points
go straight to MLflow while the disk refuses, the run ends FINISHED with every point once, and
nothing hangs. Needs root to mount the tmpfs (CI and the dev container run as root)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

N = 150_000  # ~3-4 MB of Arrow files: the 2 MB disk fills part way through


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root: run the suite as root (as CI does)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], check=True)
    monkeypatch.setenv("NBTRACK_STATE_DIR", str(mnt))
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_loses_nothing_and_says_so_once(store, client, full_disk, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import nbtrack
            with nbtrack.run(experiment="disk") as run:
                for i in range({N}):
                    nbtrack.log(step=i, loss=i / 2)
            print(run.run_id, flush=True)
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.split()[-1]
    assert out.stderr.count("could not write the metric log") == 1, out.stderr
    assert "No space left on device" in out.stderr
    deadline = time.monotonic() + 600
    while (run := client.get_run(run_id)).info.status == "RUNNING":
        assert time.monotonic() < deadline, "the run never ended"
        time.sleep(0.25)
    assert run.info.status == "FINISHED"
    steps = sorted(m.step for m in client.get_metric_history(run_id, "loss"))
    assert steps == list(range(N))  # every point, each once
    # no partial Parquet copy stands for the run (readers fall back to MLflow's history)
    assert not client.list_artifacts(run_id, "nbtrack/metrics")
    assert not list(Path(full_disk, "metrics").glob(f"{run_id}/*.tmp"))
    from nbtrack.query import metric_points

    s, _stamps, _v = metric_points.history(run_id, "loss")
    assert list(s) == list(range(N))
