"""The re-run's kernel set up as the original's was: each cell's seed, the environment variables
that change results (RESULT_ENV, torch's determinism flags), and the kernelspec to use.
"""

from __future__ import annotations

import os

from nbtrack import logs, store
from nbtrack import record as R
from nbtrack.reproduction import build as reprobuild
from nbtrack.reproduction.original import (
    RESULT_ENV,
    Record,
)

_log = logs.get(__name__)


def seeds(rec: Record, rebuilt: reprobuild.Rebuilt) -> dict[str, int]:
    """The reproduced cell's seed, and the seeds earlier tracked cells had in the original
    kernel (the latest run of each before this one): a seed drawn there is drawn here too."""
    seeds: dict[str, int] = {}
    tracked = {
        reprobuild.sha256(c)
        for c in rebuilt.earlier
        if c.lstrip().startswith("%%track") or "nbtrack.run(" in c
    }
    kernel = {k: rec.tags.get(k, "") for k in (R.TAG_HOST, R.TAG_PID, R.TAG_PID_START)}
    if tracked and all(kernel.values()):
        for run in store.runs_with_tags([rec.experiment_id], kernel):
            if run.start_time >= rec.start_ms:
                break
            sha = run.tags.get(R.TAG_CELL_SHA256)
            seed = run.params.get("random_seed", "")
            if sha in tracked and seed.lstrip("-").isdigit():
                seeds[sha] = int(seed)
    if rec.seed is not None:
        seeds[rebuilt.cell_sha256] = rec.seed
    return seeds


def kernel_env(rec: Record) -> dict[str, str | None]:
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


def kernel_name(rebuilt: reprobuild.Rebuilt, notes: list[str]) -> str:
    spec = ((rebuilt.notebook or {}).get("metadata") or {}).get("kernelspec") or {}
    name = spec.get("name") or "python3"
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        if name not in KernelSpecManager().find_kernel_specs():
            notes.append(f"the notebook's kernel {name!r} is not installed here: ran python3")
            return "python3"
    except Exception:
        _log.debug("from jupyter_client.kernelspec import KernelSpecManager failed", exc_info=True)
        pass
    return name
