"""``nbtrack.reproduce``: run a tracked run again from its record alone, and give a verdict.

1. Read the record (nbtrack.store): params, seed, tags, the notebook snapshot or the kernel
   history or the script, data inputs and their digests, requirements, environment.
2. Rebuild what ran (nbtrack.reproduction.build) and check the record against the present
   (reproduction.checks): data digests, git, packages, Python, hardware, seed, secrets. A data
   input that is gone stops here (FAILED, nothing ran); other drift is reported, and stops here
   only with ``strict=True``.
3. Execute it in a fresh kernel with papermill (execution.runner), in a scratch folder holding the
   data inputs at their recorded relative paths, tracking into the same store and experiment:
   the run's params injected into the ``parameters`` cell, the cell's seed forced
   (``NBTRACK_RUNNER_SEEDS``), torch's recorded determinism flags and the environment variables
   that change results (``PYTHONHASHSEED``, thread counts) set as they were.
4. Find the re-run of the cell among the runs the execution made (by the cell's hash, then its
   params, then its position), compare metrics, and record the verdict on it: tags
   ``nbtrack.reproduces`` and ``nbtrack.repro.verdict``, artifacts ``nbtrack/repro/report.json``
   and ``nbtrack/repro/output.ipynb``; and ``nbtrack.reproduced_by`` on the original.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbtrack import store
from nbtrack.errors import CannotReproduce, StoreError, UsageError, warn
from nbtrack.execution import runner
from nbtrack.reproduction import build as reprobuild
from nbtrack.reproduction import checks as reprocheck
from nbtrack.reproduction.report import (
    DRIFTED,
    FAILED,
    REPRODUCED,
    Check,
    Failure,
    ReproReport,
)

TAG_REPRODUCES = "nbtrack.reproduces"  # on the re-run: the run it reproduces
TAG_VERDICT = "nbtrack.repro.verdict"  # on the re-run: REPRODUCED, DRIFTED or FAILED
TAG_REPRODUCED_BY = "nbtrack.reproduced_by"  # on the original: its latest re-run
TAG_LAST_VERDICT = "nbtrack.repro.last_verdict"  # on the original: that re-run's verdict
TAG_OF = "nbtrack.repro.of"  # on every run a reproduction made (earlier tracked cells too)
TAG_ATTEMPT = "nbtrack.repro.attempt"  # one id per reproduction, to find its runs
REPORT = "nbtrack/repro/report.json"
OUTPUT = "nbtrack/repro/output.ipynb"
OUTPUT_LOG = "nbtrack/repro/output.log"
# Variables read when a process starts that change results: set in the re-run's kernel as the
# original's kernel had them (unset when it had them unset).
RESULT_ENV = (
    "PYTHONHASHSEED",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "CUBLAS_WORKSPACE_CONFIG",
    "TF_DETERMINISTIC_OPS",
)


@dataclass
class Record:
    """What a run's record holds, read once."""

    run_id: str
    name: str
    experiment_id: str
    experiment: str
    kind: str  # "NOTEBOOK" or "LOCAL"
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    seconds: float | None
    start_ms: int = 0
    origin: str | None = None  # mlflow.source.name: the notebook or script
    cell: str | None = None
    history: list[str] | None = None
    snapshot: str | None = None
    inputs: list[dict] = field(default_factory=list)
    requirements: str | None = None
    environment: dict | None = None
    git_diff: str | None = None

    @property
    def seed(self) -> int | None:
        seed = self.params.get("random_seed", "")
        return int(seed) if seed.lstrip("-").isdigit() else None


def _read(folder: Path | None, rel: str) -> str | None:
    if folder is None:
        return None
    path = folder / rel
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def load_record(run_id: str, folder: Path) -> Record:
    run = store.get_run(run_id)  # NotFound for an unknown id
    info = data = run
    tags = dict(data.tags)
    if info.status == "RUNNING":
        raise CannotReproduce(run_id, "it is still RUNNING; reproduce it once it has finished")
    if "nbtrack.cell.sha256" not in tags:
        raise CannotReproduce(
            run_id,
            "it was not tracked by nbtrack (%%track or nbtrack.run), so its record holds no "
            "code to run again",
        )
    kind = tags.get("mlflow.source.type", "NOTEBOOK")
    origin = tags.get("mlflow.source.name")
    # Without a notebook path MLflow names the process's script (ipykernel_launcher.py).
    if origin and not origin.endswith(".py" if kind == "LOCAL" else ".ipynb"):
        origin = None
    local = store.download_artifacts(run_id, "nbtrack", folder)
    root = local.parent if local is not None else None
    params = dict(data.params)
    for key, value in params.items():  # values over MLflow's limit live in an artifact
        if value.startswith("artifact:nbtrack/"):
            params[key] = _read(root, value[len("artifact:") :]) or value
    history = _read(root, "nbtrack/history.py")
    environment = _read(root, "nbtrack/environment.json")
    inputs = _read(root, "nbtrack/data.json")
    ended = info.end_time or 0
    return Record(
        run_id=run_id,
        name=info.name or run_id[:8],
        experiment_id=info.experiment_id,
        experiment=store.experiment_name(info.experiment_id),
        kind=kind,
        params=params,
        metrics=dict(data.metrics),
        tags=tags,
        seconds=(ended - info.start_time) / 1000 if ended and info.start_time else None,
        start_ms=info.start_time or 0,
        origin=origin,
        cell=_read(root, "nbtrack/cell.py"),
        history=reprobuild.parse_history(history) if history is not None else None,
        snapshot=_read(root, "nbtrack/notebook.ipynb"),
        inputs=_inputs(json.loads(inputs) if inputs else [], tags, folder),
        requirements=_read(root, "nbtrack/requirements.txt"),
        environment=json.loads(environment) if environment else None,
        git_diff=_read(root, "nbtrack/git.diff"),
    )


def _inputs(inputs: list[dict], tags: dict[str, str], folder: Path) -> list[dict]:
    """A re-run read copies of its inputs in a scratch folder that is gone now: a data input
    whose path is gone is the original run's input of the same name and digest, if it has one."""
    original = tags.get(TAG_OF)
    if not original or all(os.path.exists(i.get("path", "")) for i in inputs):
        return inputs
    local = store.download_artifacts(original, "nbtrack/data.json", folder / "original")
    text = _read(local.parent, local.name) if local is not None else None
    theirs = {(i["given"], i["digest"]): i for i in (json.loads(text) if text else [])}
    return [
        i if os.path.exists(i.get("path", "")) else theirs.get((i["given"], i["digest"]), i)
        for i in inputs
    ]


def rebuild(rec: Record) -> reprobuild.Rebuilt:
    """What runs again: the notebook snapshot, else the kernel history; or the script."""
    if rec.kind == "LOCAL":
        if not rec.cell or not (rec.origin or "").endswith(".py"):
            raise CannotReproduce(
                rec.run_id,
                "it ran from a script whose source was not recorded (python -c, an "
                "interactive interpreter), so there is nothing to run again",
            )
        return reprobuild.from_script(rec.cell, rec.origin or "script.py")
    if rec.cell is None:
        raise CannotReproduce(rec.run_id, "its record has no nbtrack/cell.py")
    determinism = (rec.environment or {}).get("torch_determinism")
    history = rec.history or []
    if rec.snapshot is not None:
        sha = rec.tags["nbtrack.cell.sha256"]
        rebuilt = reprobuild.from_snapshot(
            rec.snapshot, rec.cell, sha, rec.params, history, determinism
        )
        if rebuilt is not None:
            rebuilt.name = Path(rec.origin).name if rec.origin else rebuilt.name
            return rebuilt
    if rec.history is None:
        raise CannotReproduce(
            rec.run_id,
            "its record holds neither a notebook with the cell nor the kernel's history",
        )
    rebuilt = reprobuild.from_history(history, rec.cell, determinism)
    if rec.origin:
        rebuilt.name = Path(rec.origin).name
    if rec.snapshot is not None:
        rebuilt.notes.append(
            "the saved notebook did not hold the cell as it ran (edited or not saved since): "
            "rebuilt from the kernel history instead"
        )
    return rebuilt


def _metric_keys(rec: Record, metrics: Sequence[str] | str | None) -> list[str]:
    if metrics is None:
        # MLflow's system metrics (system/cpu_utilization_percentage...) measure the machine.
        return sorted(k for k in rec.metrics if not k.startswith("system/"))
    keys = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [k for k in keys if k not in rec.metrics]
    if unknown:
        have = ", ".join(sorted(rec.metrics)) or "none"
        raise UsageError(f"run {rec.run_id} has no metric {unknown[0]!r}", f"its metrics: {have}")
    return keys


# -- before running ----------------------------------------------------------------------------


def pre_checks(rec: Record, rebuilt: reprobuild.Rebuilt) -> list[Check]:
    from nbtrack.capture import environment

    origin_dir = os.path.dirname(rec.origin) if rec.origin else None
    checks = [
        reprocheck.check_data(rec.inputs),
        reprocheck.check_code(rec.tags, rec.git_diff, [origin_dir, os.getcwd()]),
    ]
    if rebuilt.kind == "notebook":
        checks.append(reprocheck.check_history(rec.history or [], rebuilt.earlier, rebuilt.source))
    checks.append(
        reprocheck.check_environment(
            rec.requirements,
            environment.installed_distributions(),
            rec.params.get("python_version"),
            environment.python_version(),
        )
    )
    # This process's hardware; GPUs only once the re-run reports them (asking torch costs).
    here = {"cpu_count": os.cpu_count(), "machine": platform.machine()}
    then = {k: v for k, v in (rec.environment or {}).items() if k in here}
    hardware = reprocheck.check_hardware(then, here)
    secrets = reprocheck.check_secrets(rebuilt.redacted_cells, rebuilt.kind)
    checks += [c for c in (hardware, secrets) if c is not None]
    checks.append(reprocheck.check_seed(rec.params))
    return checks


def _refusal(checks: Sequence[Check], strict: bool) -> str | None:
    """Why nothing may run: a data input is gone; with ``strict``, any drift."""
    for c in checks:
        if c.status == "missing":
            return f"a data input is gone, nothing ran: {c.message}"
    drift = [f"{c.name}: {c.message}" for c in checks if c.drift]
    if strict and drift:
        return "strict: the record does not match the present, nothing ran: " + "; ".join(drift)
    return None


# -- running -----------------------------------------------------------------------------------


def _seeds(rec: Record, rebuilt: reprobuild.Rebuilt) -> dict[str, int]:
    """The reproduced cell's seed, and the seeds earlier tracked cells had in the original
    kernel (the latest run of each before this one): a seed drawn there is drawn here too."""
    seeds: dict[str, int] = {}
    tracked = {
        reprobuild.sha256(c)
        for c in rebuilt.earlier
        if c.lstrip().startswith("%%track") or "nbtrack.run(" in c
    }
    kernel = {k: rec.tags.get(k, "") for k in ("nbtrack.host", "nbtrack.pid", "nbtrack.pid_start")}
    if tracked and all(kernel.values()):
        for run in store.runs_with_tags([rec.experiment_id], kernel):
            if run.start_time >= rec.start_ms:
                break
            sha = run.tags.get("nbtrack.cell.sha256")
            seed = run.params.get("random_seed", "")
            if sha in tracked and seed.lstrip("-").isdigit():
                seeds[sha] = int(seed)
    if rec.seed is not None:
        seeds[rebuilt.cell_sha256] = rec.seed
    return seeds


def _kernel_env(rec: Record) -> dict[str, str | None]:
    from nbtrack.capture.redact import REDACTED

    env: dict[str, str | None] = {"NBTRACK_DISABLE": None}  # a reproduction is tracked
    recorded = (rec.environment or {}).get("env")
    if isinstance(recorded, dict):
        for var in RESULT_ENV:
            value = recorded.get(var)
            env[var] = value if value and REDACTED not in value else None
    # The original's folder stays importable: its local modules, as they are now (the code
    # check says whether they changed).
    origin_dir = os.path.dirname(rec.origin) if rec.origin else None
    if origin_dir and os.path.isdir(origin_dir):
        paths = [origin_dir, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def _kernel_name(rebuilt: reprobuild.Rebuilt, notes: list[str]) -> str:
    spec = ((rebuilt.notebook or {}).get("metadata") or {}).get("kernelspec") or {}
    name = spec.get("name") or "python3"
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        if name not in KernelSpecManager().find_kernel_specs():
            notes.append(f"the notebook's kernel {name!r} is not installed here: ran python3")
            return "python3"
    except Exception:
        pass
    return name


def _execute(
    rec: Record,
    rebuilt: reprobuild.Rebuilt,
    tmp: Path,
    attempt: str,
    timeout: float | None,
    kernel_name: str | None,
    notes: list[str],
) -> runner.Execution:
    workdir, placed = reprobuild.layout(tmp / "scratch", rec.inputs, rec.origin)
    for p in placed:
        if p.how == "linked":
            notes.append(
                f"{p.given} is large: linked, not copied, into the re-run's folder "
                "(a re-run that writes to it changes the original)"
            )
        elif p.how == "outside":
            notes.append(f"{p.given} could not be placed in the re-run's folder")
    path = rebuilt.write(workdir)
    tags = {TAG_OF: rec.run_id, TAG_ATTEMPT: attempt}
    if rec.tags.get("mlflow.source.name"):  # the notebook it reproduces, not a temp copy
        tags["mlflow.source.name"] = rec.tags["mlflow.source.name"]
    settings = runner.RunnerSettings(
        notebook=str(path) if rebuilt.kind == "notebook" else None,
        experiment=rec.experiment,
        seeds=_seeds(rec, rebuilt),
        tags=tags,
        tracking_uri=store.tracking_uri(),
    )
    env = _kernel_env(rec)
    if rebuilt.kind == "script":
        return runner.execute_script(
            path, tmp / "output.log", settings=settings, env=env, cwd=workdir, timeout=timeout
        )
    return runner.execute(
        path,
        tmp / "output.ipynb",
        rebuilt.parameters,
        settings=settings,
        env=env,
        cwd=workdir,
        timeout=timeout,
        kernel_name=kernel_name or _kernel_name(rebuilt, notes),
    )


# -- matching the re-run -----------------------------------------------------------------------


def match(rec: Record, rebuilt: reprobuild.Rebuilt, runs: Sequence[Any]) -> Any | None:
    """The run of the reproduced cell among those the execution made: the cell's hash; among
    several (a cell with ``nbtrack.run()`` in a loop), the one with the original's params;
    among runs with equal params, the one at the original's position among its kernel's runs
    of that cell."""
    from nbtrack.query.compare import config_params

    cands = [r for r in runs if r.tags.get("nbtrack.cell.sha256") == rebuilt.cell_sha256]
    if len(cands) <= 1:
        return cands[0] if cands else None
    config = config_params(rec.params)
    same = [r for r in cands if config_params(dict(r.params)) == config]
    if len(same) == 1:
        return same[0]
    pool = same or cands
    return pool[_position(rec) % len(pool)]


def _position(rec: Record) -> int:
    keys = ("nbtrack.host", "nbtrack.pid", "nbtrack.pid_start", "nbtrack.cell.sha256")
    tags = {k: rec.tags[k] for k in keys if rec.tags.get(k)}
    ids = [r.run_id for r in store.runs_with_tags([rec.experiment_id], tags)]
    return ids.index(rec.run_id) if rec.run_id in ids else 0


def post_checks(rec: Record, rerun: Any, tmp: Path) -> list[Check]:
    """The re-run's own record against the original's: the data it read, its packages,
    Python, torch determinism and hardware."""
    folder = store.download_artifacts(rerun.run_id, "nbtrack", tmp / "rerun")
    root = folder.parent if folder is not None else None
    env_text = _read(root, "nbtrack/environment.json")
    env_now = json.loads(env_text) if env_text else {}
    env_then = rec.environment or {}
    checks = [
        reprocheck.check_data_hash(rec.params.get("data_hash"), rerun.params.get("data_hash")),
        reprocheck.check_environment(
            rec.requirements,
            _read(root, "nbtrack/requirements.txt"),
            rec.params.get("python_version"),
            rerun.params.get("python_version"),
        ),
        reprocheck.check_determinism(
            env_then.get("torch_determinism"), env_now.get("torch_determinism")
        ),
        reprocheck.check_hardware(env_then, env_now) if env_now else None,
    ]
    return [c for c in checks if c is not None]


def _merge(before: list[Check], after: list[Check]) -> list[Check]:
    """The re-run's own record replaces what this process could only guess before running
    (its environment, hardware); a data drift found either way is kept."""
    replaced = {c.name for c in after} & {"environment", "hardware"}
    out = [c for c in before if c.name not in replaced]
    for c in after:
        if c.name == "data" and any(b.name == "data" and b.drift for b in before):
            continue  # the digests before running already say it, with the path
        out.append(c)
    order = ["data", "code", "notebook", "environment", "determinism", "hardware", "secrets"]
    return sorted(out, key=lambda c: order.index(c.name) if c.name in order else len(order))


# -- the verdict -------------------------------------------------------------------------------


def _failure(execution: runner.Execution) -> Failure:
    f = execution.failure
    if f is None:
        return Failure(execution.message)
    cell = f"In [{f.execution_count}]" if f.execution_count else f"cell {f.index}"
    if f.timed_out:
        reason = f"the re-run {execution.error or 'timed out'} in {cell}"
    else:
        reason = f"{cell} raised {f.ename}: {f.evalue}"
    return Failure(reason, cell, f.source, f.traceback, f.timed_out)


def _hints(failure: Failure, rec: Record, rebuilt: reprobuild.Rebuilt) -> list[str]:
    hints = []
    if "FileNotFoundError" in failure.reason:
        hints.append(
            "the re-run's folder holds the recorded --data inputs only: a file the notebook "
            "reads without --data is not there; declare it with --data"
        )
    if rebuilt.source == "the kernel history" and len(rec.history or []) <= 1:
        hints.append(
            "the record holds this cell alone (no saved notebook, and a kernel history without "
            "earlier cells: the frontend may store none, as nbval does), so the cells it relied "
            "on did not run first"
        )
    return hints


def _record(
    report: ReproReport, rec: Record, rerun_id: str | None, attempt: str, output: Path | None
) -> None:
    """Record the verdict on the re-run (or, when the execution made none, on a run made for
    it), with the report and the executed notebook; and point the original to it."""
    from nbtrack.capture import notebook as nbcap
    from nbtrack.capture import redact

    made = rerun_id is None
    if made:
        tags = {TAG_OF: rec.run_id, TAG_ATTEMPT: attempt, "mlflow.source.type": rec.kind}
        if rec.tags.get("mlflow.source.name"):
            tags["mlflow.source.name"] = rec.tags["mlflow.source.name"]
        rerun_id = store.create_run(rec.experiment_id, f"reproduce {rec.name}", tags)
    report.record_run_id = rerun_id
    secrets = redact.secret_values()
    files: dict[str, str] = {
        REPORT: redact.redact_text(json.dumps(report.to_dict(), indent=1, default=str), secrets)
    }
    if output is not None and output.exists():
        if output.suffix == ".ipynb":
            nb = nbcap.read_notebook(str(output), secrets)
            if nb is not None:
                files[OUTPUT] = nb.text
        else:
            files[OUTPUT_LOG] = redact.redact_text(output.read_text("utf-8", "replace"), secrets)
    try:
        store.log_files(rerun_id, files)
        store.log_params_tags(
            rerun_id, tags={TAG_REPRODUCES: rec.run_id, TAG_VERDICT: report.verdict}
        )
    finally:
        if made:
            store.terminate_run(rerun_id, "FAILED")
    try:
        store.log_params_tags(
            rec.run_id, tags={TAG_REPRODUCED_BY: rerun_id, TAG_LAST_VERDICT: report.verdict}
        )
    except StoreError as e:  # someone else's run, read-only to us: the re-run holds the link
        warn(f"run {rec.run_id} was not tagged with its reproduction: {e}")


def reproduce(
    run_id: str,
    rtol: float = 1e-6,
    atol: float = 0.0,
    metrics: Sequence[str] | str | None = None,
    timeout: float | None = None,
    strict: bool = False,
    *,
    kernel_name: str | None = None,
) -> ReproReport:
    """Run ``run_id`` again from its record and say whether its metrics hold (see
    ``nbtrack.reproduce``)."""
    started = time.monotonic()
    store.configure()
    with tempfile.TemporaryDirectory(prefix="nbtrack-repro-") as tmpdir:
        tmp = Path(tmpdir)
        rec = load_record(run_id, tmp / "record")
        keys = _metric_keys(rec, metrics)
        rebuilt = rebuild(rec)
        report = ReproReport(
            verdict=FAILED,
            run_id=rec.run_id,
            run_name=rec.name,
            experiment=rec.experiment,
            rtol=rtol,
            atol=atol,
            rebuilt_from=rebuilt.source,
            seed=rec.seed,
            original_seconds=rec.seconds,
            notes=list(rebuilt.notes),
        )
        report.checks = pre_checks(rec, rebuilt)
        refusal = _refusal(report.checks, strict)
        if refusal is not None:
            report.failure = Failure(refusal)
            report.notes.append("nothing was executed, and nothing was recorded")
            report.elapsed = time.monotonic() - started
            return report

        attempt = uuid.uuid4().hex
        execution = _execute(rec, rebuilt, tmp, attempt, timeout, kernel_name, report.notes)
        runs = store.runs_with_tags([rec.experiment_id], {TAG_ATTEMPT: attempt})
        report.rerun_ids = [r.run_id for r in runs]
        rerun = match(rec, rebuilt, runs)
        if rerun is not None:
            report.rerun_id = rerun.run_id
            info = rerun
            if info.end_time and info.start_time:
                report.rerun_seconds = (info.end_time - info.start_time) / 1000
            report.checks = _merge(report.checks, post_checks(rec, rerun, tmp))

        if not execution.success:
            report.failure = _failure(execution)
            report.notes += _hints(report.failure, rec, rebuilt)
        elif rerun is None:
            report.failure = Failure(
                "the re-run made no run for the cell: it ran untracked (is the extension "
                "loaded, and tracking on?)"
            )
        elif rerun.status != "FINISHED":
            report.failure = Failure(f"the re-run of the cell ended {rerun.status}")
        else:
            report.metrics = reprocheck.compare_metrics(
                rec.metrics, dict(rerun.metrics), keys, rtol, atol
            )
            report.verdict = DRIFTED if report.drifted else REPRODUCED
            if report.verdict == DRIFTED:
                report.causes = reprocheck.causes(report.checks)
        report.elapsed = time.monotonic() - started
        _record(report, rec, report.rerun_id, attempt, execution.output)
    return report


__all__ = ["Record", "load_record", "match", "rebuild", "reproduce"]
