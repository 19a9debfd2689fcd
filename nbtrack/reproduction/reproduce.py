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
from pathlib import Path
from typing import Any

from nbtrack import record as R
from nbtrack import store
from nbtrack.errors import StoreError, warn
from nbtrack.execution import runner
from nbtrack.reproduction import build as reprobuild
from nbtrack.reproduction import checks as reprocheck
from nbtrack.reproduction import notebook_file, randomness, rerun_kernel
from nbtrack.reproduction.original import (
    Record,
    load_record,
    metric_keys,
    read_artifact,
    rebuild,
)
from nbtrack.reproduction.report import (
    DRIFTED,
    FAILED,
    RAN,
    REPRODUCED,
    Check,
    Failure,
    ReproReport,
)
from nbtrack.tracking import tracker

TAG_REPRODUCES = R.TAG_REPRODUCES  # on the re-run: the run it reproduces
TAG_VERDICT = R.TAG_REPRO_VERDICT  # on the re-run: REPRODUCED, DRIFTED, RAN or FAILED
TAG_REPRODUCED_BY = R.TAG_REPRODUCED_BY  # on the original: its latest re-run
TAG_LAST_VERDICT = R.TAG_REPRO_LAST_VERDICT  # on the original: that re-run's verdict
TAG_OF = R.TAG_REPRO_OF  # on every run a reproduction made (earlier tracked cells too)
TAG_ATTEMPT = R.TAG_REPRO_ATTEMPT  # one id per reproduction, to find its runs
REPORT = R.ARTIFACT_REPRO_REPORT
OUTPUT = R.ARTIFACT_REPRO_OUTPUT
OUTPUT_LOG = R.ARTIFACT_REPRO_LOG
# Variables read when a process starts that change results: set in the re-run's kernel as the
# original's kernel had them (unset when it had them unset).

# -- before running ----------------------------------------------------------------------------


def pre_checks(rec: Record, rebuilt: reprobuild.Rebuilt) -> list[Check]:
    from nbtrack.capture import environment

    origin_dir = os.path.dirname(rec.origin) if rec.origin else None
    checks = [
        reprocheck.check_data(rec.inputs),
        reprocheck.check_code(rec.tags, rec.git_diff, [origin_dir, os.getcwd()]),
    ]
    if rebuilt.kind == "notebook":
        history = reprocheck.check_history(rec.history or [], rebuilt.earlier, rebuilt.source)
        on_disk = notebook_file.check_notebook_file(
            rec.origin, rec.tags.get(R.TAG_NOTEBOOK_SHA256), rec.snapshot, rebuilt.source
        )
        checks.append(notebook_file.with_notebook_file(history, on_disk))
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


def _execute(
    rec: Record,
    rebuilt: reprobuild.Rebuilt,
    tmp: Path,
    attempt: str,
    seeds: dict[str, int],
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
    # On every run the execution makes; a run of another cell than the reproduced one is an
    # earlier tracked cell's (record.reproduction_byproduct), known as soon as it starts.
    tags = {TAG_OF: rec.run_id, TAG_ATTEMPT: attempt, R.TAG_REPRO_CELL: rebuilt.cell_sha256}
    if rec.tags.get(R.TAG_SOURCE_NAME):  # the notebook it reproduces, not a temp copy
        tags[R.TAG_SOURCE_NAME] = rec.tags[R.TAG_SOURCE_NAME]
    settings = runner.RunnerSettings(
        notebook=str(path) if rebuilt.kind == "notebook" else None,
        experiment=rec.experiment,
        seeds=seeds,
        tags=tags,
        tracking_uri=store.tracking_uri(),
    )
    env = rerun_kernel.kernel_env(rec)
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
        kernel_name=kernel_name or rerun_kernel.kernel_name(rebuilt, notes),
    )


# -- matching the re-run -----------------------------------------------------------------------


def match(rec: Record, rebuilt: reprobuild.Rebuilt, runs: Sequence[Any]) -> Any | None:
    """The run of the reproduced cell among those the execution made: the cell's hash; among
    several (a cell with ``nbtrack.run()`` in a loop), the one with the original's params;
    among runs with equal params, the one at the original's position among its kernel's runs
    of that cell."""
    from nbtrack.query.compare import config_params

    cands = [r for r in runs if r.tags.get(R.TAG_CELL_SHA256) == rebuilt.cell_sha256]
    if len(cands) <= 1:
        return cands[0] if cands else None
    config = config_params(rec.params)
    same = [r for r in cands if config_params(dict(r.params)) == config]
    if len(same) == 1:
        return same[0]
    pool = same or cands
    return pool[_position(rec) % len(pool)]


def _position(rec: Record) -> int:
    keys = (R.TAG_HOST, R.TAG_PID, R.TAG_PID_START, R.TAG_CELL_SHA256)
    tags = {k: rec.tags[k] for k in keys if rec.tags.get(k)}
    ids = [r.run_id for r in store.runs_with_tags([rec.experiment_id], tags)]
    return ids.index(rec.run_id) if rec.run_id in ids else 0


def post_checks(rec: Record, rerun: Any, tmp: Path) -> list[Check]:
    """The re-run's own record against the original's: the data it read, its packages,
    Python, torch determinism and hardware."""
    folder = store.download_artifacts(rerun.run_id, "nbtrack", tmp / "rerun")
    root = folder.parent if folder is not None else None
    env_text = read_artifact(root, R.ARTIFACT_ENVIRONMENT)
    env_now = json.loads(env_text) if env_text else {}
    env_then = rec.environment or {}
    checks = [
        reprocheck.check_data_hash(rec.params.get("data_hash"), rerun.params.get("data_hash")),
        reprocheck.check_environment(
            rec.requirements,
            read_artifact(root, R.ARTIFACT_REQUIREMENTS),
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


def _nothing_compared(rec: Record, rerun: Any) -> str:
    theirs = sorted(k for k in rerun.metrics if not k.startswith("system/"))
    said = (
        f" (the re-run logged {', '.join(theirs[:5])}{' ...' if len(theirs) > 5 else ''}, "
        "which the original did not)"
        if theirs
        else ""
    )
    return (
        f"the cell ran again and finished, but run {rec.run_id} logged no metrics, so nothing "
        f"was compared{said}: log one (nbtrack.log) to have its results checked"
    )


def _randomness(
    rebuilt: reprobuild.Rebuilt, seeds: dict[str, int]
) -> tuple[list[randomness.Draw], list[randomness.Draw]]:
    """Randomness the seed does not cover that the code shows: sources no seed reaches in the
    reproduced cell, and unseeded draws in the cells run before it."""
    if rebuilt.kind == "script":
        return randomness.in_cell(rebuilt.script or ""), []
    cells = (rebuilt.notebook or {}).get("cells") or []
    cell = cells[rebuilt.target].get("source", "") if cells else ""
    cell = "".join(cell) if isinstance(cell, list) else str(cell)
    before = randomness.before_cell(rebuilt.earlier, set(seeds), reprobuild.sha256)
    return randomness.in_cell(cell), before


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
    from nbtrack.capture.redaction import Redactor

    redactor = Redactor()
    made = rerun_id is None
    if made:
        tags = {TAG_OF: rec.run_id, TAG_ATTEMPT: attempt, R.TAG_SOURCE_TYPE: rec.kind}
        if rec.tags.get(R.TAG_SOURCE_NAME):
            tags[R.TAG_SOURCE_NAME] = rec.tags[R.TAG_SOURCE_NAME]
        name = redactor.text(f"reproduce {rec.name}")
        rerun_id = store.create_run(rec.experiment_id, name, redactor.mapping(tags))
    report.record_run_id = rerun_id
    files: dict[str, str] = {REPORT: json.dumps(report.to_dict(), indent=1, default=str)}
    if output is not None and output.exists():
        if output.suffix == ".ipynb":
            nb = nbcap.read_notebook(str(output), redactor)
            if nb is not None:
                files[OUTPUT] = nb.text
        else:
            files[OUTPUT_LOG] = output.read_text("utf-8", "replace")
    try:
        store.log_files(rerun_id, redactor.files(files))
        store.log_params_tags(
            rerun_id,
            tags=redactor.mapping({TAG_REPRODUCES: rec.run_id, TAG_VERDICT: report.verdict}),
        )
    finally:
        if made:
            store.terminate_run(rerun_id, "FAILED")
    try:
        store.log_params_tags(
            rec.run_id,
            tags=redactor.mapping({TAG_REPRODUCED_BY: rerun_id, TAG_LAST_VERDICT: report.verdict}),
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
        keys = metric_keys(rec, metrics)
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
        seeds = rerun_kernel.seeds(rec, rebuilt)
        execution = _execute(rec, rebuilt, tmp, attempt, seeds, timeout, kernel_name, report.notes)
        runs = store.runs_with_tags([rec.experiment_id], {TAG_ATTEMPT: attempt})
        # The re-run's kernel is gone; MLflow may still be catching up with its metrics, and
        # the comparison needs every last value.
        if tracker.wait_caught_up([r.run_id for r in runs if r.status == "RUNNING"]):
            report.notes.append("the re-run's metrics were still on their way to MLflow")
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
            if not report.metrics:
                report.verdict = RAN
                report.notes.append(_nothing_compared(rec, rerun))
            elif report.drifted:
                report.verdict = DRIFTED
                in_cell, before = _randomness(rebuilt, seeds)
                report.causes = reprocheck.causes(report.checks, in_cell, before)
            else:
                report.verdict = REPRODUCED
        report.elapsed = time.monotonic() - started
        _record(report, rec, report.rerun_id, attempt, execution.output)
    return report


__all__ = ["match", "reproduce"]
