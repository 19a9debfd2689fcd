"""What a grid costs beyond its notebook's work, and what running points in parallel buys.

    python benchmarks/bench_grid.py [--points 8] [--repeat 2] [--seconds 2] [--variants]

The notebook (written to a temp folder) loads the extension and runs one tracked cell whose work
is a fixed CPU loop of about ``--seconds`` (calibrated once, before timing); it logs the loop's
wall time as metric ``work``. Into a fresh embedded store made before timing, alternately,
``--repeat`` times each (medians printed):

- by hand: ``papermill NOTEBOOK OUT -p point K`` from a shell (an interpreter, papermill's import,
  a kernel, tracking, the kernel's exit);
- grid, sequential: ``nbtrack.grid`` over ``--points`` points, ``parallel=1``;
- grid, parallel: the same with ``parallel=2``.

Per-point overhead = wall time per point minus the loop's own time (``work``, the median over the
points): kernel start, papermill, tracking, recording, and the grid's start-up spread over its
points. Speedup = sequential / parallel wall time. ``--variants`` also times the sequential grid
without forked kernels (``NBTRACK_GRID_FORK=0``) and with a child process per point (nbtrack's
``runner.execute``, as ``reproduce`` runs a notebook), to show what each change buys.

The machine has 2 cores and other work may run on it: the CPU the rest of the machine uses while
this benchmark waits (3 s before, 3 s after) is printed; above ~10% of a core, the figures are
disturbed, the parallel ones most.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchstore import fresh_store

NOTEBOOK_CELLS = [
    ("%load_ext nbtrack", None),
    ("point = 0\niterations = 1000", ["parameters"]),
    (
        "%%track --experiment bench-grid --seed 0 --no-live\n"
        "import time\n\n"
        "import nbtrack\n\n"
        "started = time.perf_counter()\n"
        "total = 0\n"
        "for i in range(iterations):\n"
        "    total += i & 7\n"
        "nbtrack.log(step=0, work=time.perf_counter() - started, point=point)\n"
        "total",
        None,
    ),
]


def write_notebook(path: Path) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for i, (source, tags) in enumerate(NOTEBOOK_CELLS):
        cell = new_code_cell(source, metadata={"tags": tags} if tags else {})
        cell["id"] = f"cell{i}"
        nb.cells.append(cell)
    nbformat.write(nb, path)


def calibrate(seconds: float) -> int:
    """Loop iterations that take about ``seconds`` here: the tracked cell's loop, at a module's
    top level as in a notebook cell (globals, slower than a function's locals)."""
    n = 2_000_000
    code = "total = 0\nfor i in range(n):\n    total += i & 7\n"
    started = time.perf_counter()
    exec(code, {"n": n})
    per = (time.perf_counter() - started) / n
    return int(seconds / per)


def by_hand(nb: Path, iterations: int, k: int) -> float:
    papermill = Path(sys.executable).with_name("papermill")
    out = nb.with_name(f"hand-{k}.ipynb")
    cmd = [str(papermill), str(nb), str(out), "-p", "point", str(k), "-p", "iterations"]
    started = time.perf_counter()
    subprocess.run(
        [*cmd, str(iterations), "--no-progress-bar"],
        check=True,
        capture_output=True,
        cwd=nb.parent,
        env={**os.environ, "JPY_SESSION_NAME": str(nb)},
    )
    return time.perf_counter() - started


def grid(nb: Path, iterations: int, points: int, parallel: int) -> tuple[float, list[float]]:
    import nbtrack

    started = time.perf_counter()
    result = nbtrack.grid(
        nb,
        params={"point": list(range(points)), "iterations": iterations},
        parallel=parallel,
        experiment="bench-grid",
        progress=False,
    )
    wall = time.perf_counter() - started
    df = result.df
    assert (df["status"] == "FINISHED").all(), df[["status", "error"]]
    return wall, df["metrics.work"].tolist()


def runner_per_point(nb: Path, iterations: int, points: int, tmp: Path) -> float:
    """The points one after the other, each through ``runner.execute`` (a child process)."""
    from nbtrack.execution import runner

    started = time.perf_counter()
    for k in range(points):
        out = tmp / f"runner-{k}.ipynb"
        ex = runner.execute(nb, out, {"point": k, "iterations": iterations})
        assert ex.success, ex.message
    return time.perf_counter() - started


def others_busy(seconds: float = 3.0) -> float:
    """Cores' worth of CPU the machine spends while this process idles (other people's work)."""
    import psutil

    return psutil.cpu_percent(interval=seconds) / 100 * (psutil.cpu_count() or 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--variants", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="nbtrack-bench-grid-"))
    uri = fresh_store(tmp)
    os.environ.update(
        NBTRACK_TRACKING_URI=uri, MLFLOW_TRACKING_URI=uri, NBTRACK_STATE_DIR=str(tmp / "state")
    )
    nb = tmp / "work.ipynb"
    write_notebook(nb)
    iterations = calibrate(args.seconds)
    busy_before = others_busy()

    hand: list[float] = []
    seq: list[float] = []
    par: list[float] = []
    nofork: list[float] = []
    child: list[float] = []
    work: list[float] = []
    for r in range(args.repeat):
        for k in range(2):
            hand.append(by_hand(nb, iterations, 2 * r + k))
        wall, w = grid(nb, iterations, args.points, 1)
        seq.append(wall)
        work += w
        wall, w = grid(nb, iterations, args.points, 2)
        par.append(wall)
        if args.variants:
            os.environ["NBTRACK_GRID_FORK"] = "0"
            nofork.append(grid(nb, iterations, args.points, 1)[0])
            del os.environ["NBTRACK_GRID_FORK"]
            child.append(runner_per_point(nb, iterations, args.points, tmp))
    busy_after = others_busy()

    n = args.points
    w = statistics.median(work)
    m_hand, m_seq, m_par = (statistics.median(x) for x in (hand, seq, par))
    print(f"{n} points, loop ~{w:.2f} s each (median of the points' own timing)")
    print(f"other work on the machine: {busy_before:.2f} cores before, {busy_after:.2f} after")
    print(f"by hand (papermill CLI), one run:     {m_hand:6.2f} s  overhead {m_hand - w:5.2f} s")
    per = m_seq / n
    print(f"grid parallel=1: {m_seq:6.2f} s, a point {per:5.2f} s  overhead {per - w:5.2f} s")
    print(f"grid parallel=2: {m_par:6.2f} s, a point {m_par / n:5.2f} s (wall / points)")
    print(f"speedup parallel=2 / parallel=1: {m_seq / m_par:.2f}x")
    print("samples (s): parallel=1 " + ", ".join(f"{x:.2f}" for x in seq), end="; ")
    print("parallel=2 " + ", ".join(f"{x:.2f}" for x in par))
    if args.variants:
        m_nofork, m_child = statistics.median(nofork), statistics.median(child)
        print(
            f"grid parallel=1, NBTRACK_GRID_FORK=0: {m_nofork:6.2f} s, overhead "
            f"{m_nofork / n - w:5.2f} s a point"
        )
        print(
            f"a child process per point (runner.execute): {m_child:6.2f} s, overhead "
            f"{m_child / n - w:5.2f} s a point"
        )
    if max(busy_before, busy_after) > 0.1:
        print("the machine was busy with other work: these figures are disturbed")


if __name__ == "__main__":
    main()
