"""What a training loop pays for ``nbtrack.checkpoint`` of a torch state dict, against saving the
same checkpoint by hand with plain MLflow.

    python benchmarks/bench_checkpoint.py [--params 4000000] [--repeat 7]

An embedded store (SQLite, local artifacts), one run. Timed, alternately: the
``nbtrack.checkpoint(model.state_dict(), step, metrics)`` call (the copy to the CPU and the
request making the LoggedModel; the files are written by the background thread), then the time
until that checkpoint is READY (``.wait()``); and by hand: ``torch.save`` to a file then
``mlflow.log_artifact`` (what the loop pays without nbtrack). Medians of ``--repeat``.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=int, default=4_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ckpt-") as tmp:
        os.chdir(tmp)
        uri = fresh_store(tmp)
        os.environ["NBTRACK_TRACKING_URI"] = os.environ["MLFLOW_TRACKING_URI"] = uri
        os.environ["NBTRACK_STATE_DIR"] = str(Path(tmp) / "state")
        import mlflow
        import torch

        import nbtrack

        side = int(args.params**0.5)
        model = torch.nn.Linear(side, side)
        mb = sum(p.numel() for p in model.parameters()) * 4 / 1e6
        mlflow.set_experiment("bench-checkpoint")
        call, ready, plain = [], [], []
        with mlflow.start_run():
            nbtrack.checkpoint(model.state_dict(), step=0).wait()  # warm: imports, first request
            for step in range(1, args.repeat + 1):
                t = time.perf_counter()
                saved = nbtrack.checkpoint(model.state_dict(), step=step, metrics={"acc": 0.5})
                call.append(time.perf_counter() - t)
                saved.wait()
                ready.append(time.perf_counter() - t)
                t = time.perf_counter()
                path = Path(tmp) / f"checkpoint_{step}.pth"
                torch.save(model.state_dict(), path)
                mlflow.log_artifact(str(path))
                plain.append(time.perf_counter() - t)
        samples = {"call": call, "ready": ready, "plain": plain}
        med = {k: statistics.median(v) for k, v in samples.items()}
        print(f"state dict of {mb:.0f} MB, medians of {args.repeat}:")
        print(f"  nbtrack.checkpoint: the loop pays      {med['call'] * 1000:8.1f} ms")
        print(f"  nbtrack.checkpoint: until READY        {med['ready'] * 1000:8.1f} ms")
        print(f"  plain: torch.save + log_artifact       {med['plain'] * 1000:8.1f} ms (reference)")
        print(f"  loop's cost / plain = {med['call'] / med['plain']:.2f}")


if __name__ == "__main__":
    main()
