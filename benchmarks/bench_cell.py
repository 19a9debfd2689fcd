"""What a tracked cell costs, against doing the same by hand with plain MLflow.

    python benchmarks/bench_cell.py [--repeat 15] [--cold 5]

Warm: one IPython shell runs, alternately, (a) a ``%%track`` cell that logs 10 params (literal
assignments) and 5 metrics, and (b) a cell doing the equivalent with plain MLflow: start_run,
log the params, set the tags, log the snapshot files (cell source, notebook, history,
requirements, environment), log the metrics, end_run. Both use one embedded SQLite store made
before timing. Cold: a fresh Python process per sample times ``%load_ext nbtrack`` and then the
first tracked cell of its kernel. Medians are printed, with the ratio measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from benchstore import fresh_store

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "01-quickstart.ipynb"

PARAMS = "\n".join(f"p{i} = {i * 0.1!r}" for i in range(10))
TRACKED = f"""%%track --experiment bench --no-card --no-live
{PARAMS}
import nbtrack
nbtrack.log(step=0, m0=0.1, m1=0.2, m2=0.3, m3=0.4, m4=0.5)
"""
PLAIN = """
import json, os, platform, tempfile, mlflow
with mlflow.start_run(experiment_id=_bench_exp):
    mlflow.log_params({f"p{i}": i * 0.1 for i in range(10)})
    mlflow.set_tags({"mlflow.source.name": _bench_nb, "mlflow.source.type": "NOTEBOOK",
                     "team": "bench"})
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "snap"))
        open(os.path.join(d, "snap", "cell.py"), "w").write(_bench_cell)
        open(os.path.join(d, "snap", "notebook.ipynb"), "w").write(open(_bench_nb).read())
        open(os.path.join(d, "snap", "history.py"), "w").write("\\n".join(In))
        open(os.path.join(d, "snap", "requirements.txt"), "w").write(_bench_reqs)
        json.dump({"platform": platform.platform(), "env": dict(os.environ)},
                  open(os.path.join(d, "snap", "environment.json"), "w"))
        mlflow.log_artifacts(os.path.join(d, "snap"), "snap")
    mlflow.log_metrics({f"m{i}": i * 0.1 for i in range(5)}, step=0)
"""


def warm(uri: str, repeat: int) -> tuple[float, float]:
    os.environ["NBTRACK_TRACKING_URI"] = uri
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["JPY_SESSION_NAME"] = str(NOTEBOOK)  # as under JupyterLab: snapshot this notebook
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_cell("%load_ext nbtrack", store_history=True)
    import mlflow

    from nbtrack.capture import environment

    ip.user_ns.update(
        _bench_exp=mlflow.MlflowClient(uri).create_experiment("bench-plain"),
        _bench_nb=str(NOTEBOOK),
        _bench_cell=PLAIN,
        _bench_reqs=environment.installed_distributions(),  # nbtrack caches it per kernel too
    )
    for code in (TRACKED, PLAIN):  # warm both paths once
        assert ip.run_cell(code, store_history=True).success
    tracked, plain = [], []
    for _ in range(repeat):
        for code, sink in ((TRACKED, tracked), (PLAIN, plain)):
            t = time.perf_counter()
            result = ip.run_cell(code, store_history=True)
            sink.append(time.perf_counter() - t)
            assert result.success, result.error_in_exec
    return statistics.median(tracked), statistics.median(plain)


COLD = textwrap.dedent(
    """
    import json, os, sys, time
    t0 = time.perf_counter()
    import nbtrack
    t_import = time.perf_counter() - t0
    from IPython.core.interactiveshell import InteractiveShell
    ip = InteractiveShell.instance()
    t1 = time.perf_counter()
    ip.run_cell("%load_ext nbtrack", store_history=True)
    t2 = time.perf_counter()
    result = ip.run_cell(sys.argv[1], store_history=True)
    t3 = time.perf_counter()
    assert result.success, result.error_in_exec
    print(json.dumps({"import": t_import, "load_ext": t2 - t1, "first_cell": t3 - t2}))
    """
)


COLD_PLAIN = textwrap.dedent(
    """
    import json, sys, time
    t0 = time.perf_counter()
    import mlflow
    t_import = time.perf_counter() - t0
    mlflow.set_tracking_uri(sys.argv[1])
    with mlflow.start_run(experiment_id=mlflow.set_experiment("bench-plain").experiment_id):
        mlflow.log_params({f"p{i}": i * 0.1 for i in range(10)})
        mlflow.log_metrics({f"m{i}": i * 0.1 for i in range(5)}, step=0)
    print(json.dumps({"import": t_import, "first_run": time.perf_counter() - t0}))
    """
)


def cold(uri: str, samples: int, pause: float) -> dict[str, float]:
    env = {**os.environ, "NBTRACK_TRACKING_URI": uri, "JPY_SESSION_NAME": str(NOTEBOOK)}
    imports, mlflow_imports = [], []
    loads, firsts, after_pause, plain = [], [], [], []
    for _ in range(samples):
        out = subprocess.run(
            [sys.executable, "-c", COLD_PLAIN, uri], env=env, capture_output=True, text=True
        )
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        plain.append(figures["first_run"])
        mlflow_imports.append(figures["import"])
        out = subprocess.run(
            [sys.executable, "-c", COLD, TRACKED], env=env, capture_output=True, text=True
        )
        if out.returncode:
            raise SystemExit(out.stderr)
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        imports.append(figures["import"])
        loads.append(figures["load_ext"])
        firsts.append(figures["first_cell"])
        # The usual notebook: the extension loads, the user imports and prepares data for a
        # while, then runs the first tracked cell. The warm-up overlaps that pause.
        code = COLD.replace(
            'ip.run_cell("%load_ext nbtrack", store_history=True)',
            f'ip.run_cell("%load_ext nbtrack", store_history=True); time.sleep({pause})',
        )
        out = subprocess.run([sys.executable, "-c", code, TRACKED], env=env, capture_output=True)
        first = json.loads(out.stdout.decode().strip().splitlines()[-1])["first_cell"]
        after_pause.append(first)
    med = statistics.median
    return {
        "import": med(imports),
        "mlflow_import": med(mlflow_imports),
        "load": med(loads),
        "first": med(firsts),
        "after": med(after_pause),
        "plain": med(plain),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="warm samples of each cell")
    parser.add_argument("--cold", type=int, default=5, help="fresh processes for the cold cell")
    parser.add_argument("--pause", type=float, default=3.0, help="seconds between load and cell")
    args = parser.parse_args()
    uri = fresh_store(tempfile.mkdtemp(prefix="nbtrack-bench-"))
    tracked, plain = warm(uri, args.repeat)
    c = cold(uri, args.cold, args.pause)
    load, first, after, plain_cold = c["load"], c["first"], c["after"], c["plain"]
    rows = [
        ("warm tracked cell (10 params, 5 metrics, full snapshot)", tracked * 1000, "ms"),
        ("warm plain-MLflow equivalent", plain * 1000, "ms"),
        ("ratio tracked / plain (warm)", tracked / plain, "x"),
        ("import nbtrack, fresh process (MLflow not imported)", c["import"] * 1000, "ms"),
        ("import mlflow, fresh process", c["mlflow_import"] * 1000, "ms"),
        ("%load_ext nbtrack (returns before MLflow is imported)", load * 1000, "ms"),
        ("cold plain MLflow: import + first run, new process", plain_cold * 1000, "ms"),
        ("cold %load_ext + first tracked cell, back to back", (load + first) * 1000, "ms"),
        ("ratio cold nbtrack / cold plain MLflow", (load + first) / plain_cold, "x"),
        (f"cold first tracked cell, {args.pause:.0f} s after %load_ext", after * 1000, "ms"),
    ]
    print(f"store: {uri}  (medians; warm n={args.repeat}, cold n={args.cold})")
    for label, value, unit in rows:
        print(f"{label:<58} {value:9.2f} {unit}")


if __name__ == "__main__":
    main()
