"""What reproducing a run costs, beyond running its notebook again.

    python benchmarks/bench_repro.py [--repeat 3] [--epochs 2]

The torch example (notebooks/02-train-torch.ipynb, shortened with papermill to ``--epochs``) is
run once as the original, by papermill with the notebook's path known, into a fresh embedded
store made before timing. Then, alternately, ``--repeat`` times each:

- by hand: the same notebook run again with papermill (nbtrack's runner: a child process and a
  fresh kernel), the way one would re-run it without nbtrack.reproduce;
- reproduce: ``nbtrack.reproduce(run_id)`` (read the record, check data, git and packages, lay out
  the scratch folder, run the rebuilt notebook, match the re-run, compare, record the verdict).

"cells" is the notebook's own work: the sum of the cells' durations that papermill records in the
executed notebook (the original's, and the re-run's from the ``nbtrack/repro/output.ipynb``
artifact). Overhead = wall time minus cells: interpreter and kernel start, the snapshot, checks
and verdict. Medians are printed, with the load average before and after (the machine has 2 cores
and other work may be running: a load above 2 means the figures are disturbed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchstore import fresh_store

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "02-train-torch.ipynb"


def cell_seconds(nb: dict) -> float:
    """The sum of the code cells' durations papermill recorded."""
    return sum(
        float(((c.get("metadata") or {}).get("papermill") or {}).get("duration") or 0.0)
        for c in nb.get("cells", [])
        if c.get("cell_type") == "code"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="nbtrack-bench-repro-"))
    uri = fresh_store(tmp)
    os.environ.update(
        NBTRACK_TRACKING_URI=uri, MLFLOW_TRACKING_URI=uri, NBTRACK_STATE_DIR=str(tmp / "state")
    )
    import mlflow

    import nbtrack
    from nbtrack.execution import runner

    load_before = os.getloadavg()
    proj = tmp / "proj"
    proj.mkdir()
    nb = proj / NOTEBOOK.name
    shutil.copy(NOTEBOOK, nb)
    params = {"epochs": args.epochs}

    t = time.perf_counter()
    first = runner.execute(nb, tmp / "original.ipynb", params, timeout=1800)
    original_wall = time.perf_counter() - t
    assert first.success, first.message
    original_cells = cell_seconds(json.loads(first.output.read_text()))
    [run] = mlflow.MlflowClient().search_runs(
        [mlflow.get_experiment_by_name("digits-cnn").experiment_id]
    )
    run_id = run.info.run_id
    original_cell = (run.info.end_time - run.info.start_time) / 1000

    hand, hand_cells, repro, repro_cells, verdicts = [], [], [], [], []
    for i in range(args.repeat):
        t = time.perf_counter()
        again = runner.execute(nb, tmp / f"hand-{i}.ipynb", params, timeout=1800)
        hand.append(time.perf_counter() - t)
        assert again.success, again.message
        hand_cells.append(cell_seconds(json.loads(again.output.read_text())))

        t = time.perf_counter()
        report = nbtrack.reproduce(run_id, rtol=1e-5, atol=1e-7)
        repro.append(time.perf_counter() - t)
        verdicts.append(report.verdict)
        out = mlflow.artifacts.download_artifacts(
            run_id=report.record_run_id, artifact_path="nbtrack/repro/output.ipynb"
        )
        repro_cells.append(cell_seconds(json.loads(Path(out).read_text())))
    load_after = os.getloadavg()

    med = statistics.median
    print(f"torch example, epochs={args.epochs}, {args.repeat} repeats, medians (s)")
    print(f"  original tracked cell           {original_cell:7.2f}")
    print(f"  original notebook: cells        {original_cells:7.2f}   wall {original_wall:7.2f}")
    print(f"  by hand (papermill): cells      {med(hand_cells):7.2f}   wall {med(hand):7.2f}")
    print(f"  nbtrack.reproduce: cells        {med(repro_cells):7.2f}   wall {med(repro):7.2f}")
    overhead_hand = med([w - c for w, c in zip(hand, hand_cells, strict=True)])
    overhead_repro = med([w - c for w, c in zip(repro, repro_cells, strict=True)])
    print(f"  overhead beyond the cells: by hand {overhead_hand:.2f}")
    print(f"  overhead beyond the cells: reproduce {overhead_repro:.2f}")
    print(f"  reproduce / by hand (wall)      {med(repro) / med(hand):7.2f}x")
    print(f"  reproduce - by hand (wall)      {med(repro) - med(hand):7.2f}")
    print(f"  verdicts: {', '.join(verdicts)}")
    print(f"  load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (2 cores)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
