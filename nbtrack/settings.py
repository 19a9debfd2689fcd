"""Every NBTRACK_* environment variable and its default, in one place.

Read at the moment of use (``current()``), not at import, so a test or a runner can change the
environment of a live process.

User settings
  NBTRACK_TRACKING_URI   store for nbtrack runs; else MLFLOW_TRACKING_URI; else MLflow's default
                         (``mlflow.db`` in the working directory)
  NBTRACK_EXPERIMENT     default experiment; else MLFLOW_EXPERIMENT_NAME; else the notebook's stem
  NBTRACK_DISABLE        "1": tracked cells run untracked (CI without a store)
  NBTRACK_CARD           "0": no run card under tracked cells
  NBTRACK_LIVE           "0": no live learning curves
  NBTRACK_STATE_DIR      where the data-digest cache and the metric spool live
                         (default: $XDG_CACHE_HOME/nbtrack or ~/.cache/nbtrack)
  NBTRACK_END_WAIT       seconds a tracked cell waits at its end for MLflow to hold its
                         metrics (default 1; then the run is ended once it does)
  NBTRACK_QUEUE_MAX      metric points waiting for the local log before nbtrack.log blocks (1000000)
  NBTRACK_WRITERS        writer processes heavy metric logging may start (default 2; 0: the
                         kernel's writer thread writes everything)
  NBTRACK_MLFLOW_METRICS "all" (default): MLflow gets every metric point; "thin": about one point
                         in 100 per key (LTTB; each 1,000 points' first, last, min, max and
                         non-finite values kept), "thin:N" one in N; every point stays in the
                         run's Parquet artifact, which nbtrack's readers use
  NBTRACK_HTTP_TIMEOUT   seconds a request to a tracking server may wait for an answer (default 5;
                         one hung call costs this once per outage: store.outages)
  NBTRACK_HTTP_RETRIES   retries of a failed request to a tracking server (default 0: MLflow
                         retries a timeout too, and each retry waits the whole timeout again)
  NBTRACK_PRODUCTION_ALIAS  registry alias of the production stage (default "production")
  NBTRACK_STAGING_ALIAS     registry alias of the staging stage (default "staging")
  NBTRACK_LEGACY_STAGES  "0": do not keep MLflow's deprecated stage field (Production, Staging,
                         Archived) in step with the aliases (default: kept, for older readers)
  NBTRACK_GRID_FORK      "0": start the kernels of grid points as jupyter_client does, rather
                         than forking them from a pre-warmed process (execution.kernelfork; Linux)
  NBTRACK_DEBUG          "1": nbtrack's own failures (logged at debug to the ``nbtrack`` logger,
                         never swallowed) are shown on stderr with their tracebacks (nbtrack.logs)

Runner settings: nbtrack's own papermill runners (grid, reproduce) set these in the kernel's
environment, and they take precedence over what the notebook's %%track lines say.
  NBTRACK_RUNNER_NOTEBOOK    path of the notebook being executed (papermill sets none)
  NBTRACK_RUNNER_EXPERIMENT  experiment every tracked cell logs to
  NBTRACK_RUNNER_PARENT      run id every tracked cell nests under
  NBTRACK_RUNNER_SEED        seed every tracked cell uses
  NBTRACK_RUNNER_SEEDS       JSON object: sha256 of a cell's source (nbtrack.cell.sha256) -> the
                             seed that cell uses; wins over NBTRACK_RUNNER_SEED (reproduce forces
                             the reproduced cell's seed, and leaves the other cells their own)
  NBTRACK_RUNNER_TAGS        JSON object of tags added to every run
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# %track_config's choices for this kernel (%%track's flags, by name). frontends.magic sets them;
# the query side reads the experiment from here, so it needs no import of the magic.
_session_defaults: dict[str, Any] = {}


def session_defaults() -> dict[str, Any]:
    """A copy of the %track_config defaults of this kernel."""
    return dict(_session_defaults)


def set_session_defaults(defaults: dict[str, Any]) -> None:
    _session_defaults.clear()
    _session_defaults.update(defaults)


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() not in ("0", "false", "no", "off")


def _int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass(frozen=True)
class Settings:
    tracking_uri: str | None
    experiment: str | None
    disable: bool
    card: bool
    live: bool
    state_dir: Path
    queue_max: int
    http_timeout: int
    http_retries: int
    runner_notebook: str | None
    runner_experiment: str | None
    runner_parent: str | None
    runner_seed: int | None
    runner_tags: dict[str, str]
    production_alias: str = "production"
    staging_alias: str = "staging"
    legacy_stages: bool = True
    runner_seeds: dict[str, int] = field(default_factory=dict)
    writers: int = 2
    grid_fork: bool = True
    end_wait: float = 1.0  # seconds a run's end waits for MLflow before it is ended later
    # MLflow gets one metric point in this many (1: all); None: NBTRACK_MLFLOW_METRICS is not valid
    metric_thin: int | None = 1


def _seconds(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name) or default)
    except ValueError:
        return default
    return value if value >= 0 else default


def debug() -> bool:
    """NBTRACK_DEBUG, read by ``nbtrack.logs`` when it sets up the ``nbtrack`` logger."""
    return _flag("NBTRACK_DEBUG", False)


def _state_dir() -> Path:
    if os.environ.get("NBTRACK_STATE_DIR"):
        return Path(os.environ["NBTRACK_STATE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nbtrack"


def current() -> Settings:
    env = os.environ
    seed = env.get("NBTRACK_RUNNER_SEED")
    try:
        tags = json.loads(env.get("NBTRACK_RUNNER_TAGS") or "{}")
    except ValueError:
        tags = {}
    return Settings(
        tracking_uri=env.get("NBTRACK_TRACKING_URI") or env.get("MLFLOW_TRACKING_URI") or None,
        experiment=env.get("NBTRACK_EXPERIMENT") or env.get("MLFLOW_EXPERIMENT_NAME") or None,
        disable=_flag("NBTRACK_DISABLE", False),
        card=_flag("NBTRACK_CARD", True),
        live=_flag("NBTRACK_LIVE", True),
        state_dir=_state_dir(),
        queue_max=max(1000, _int("NBTRACK_QUEUE_MAX", 1_000_000)),
        http_timeout=_int("NBTRACK_HTTP_TIMEOUT", 5),
        http_retries=_int("NBTRACK_HTTP_RETRIES", 0),
        runner_notebook=env.get("NBTRACK_RUNNER_NOTEBOOK") or None,
        runner_experiment=env.get("NBTRACK_RUNNER_EXPERIMENT") or None,
        runner_parent=env.get("NBTRACK_RUNNER_PARENT") or None,
        runner_seed=int(seed) if seed and seed.strip().lstrip("-").isdigit() else None,
        runner_tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {},
        production_alias=(env.get("NBTRACK_PRODUCTION_ALIAS") or "production").strip(),
        staging_alias=(env.get("NBTRACK_STAGING_ALIAS") or "staging").strip(),
        legacy_stages=_flag("NBTRACK_LEGACY_STAGES", True),
        runner_seeds=_seeds(env.get("NBTRACK_RUNNER_SEEDS")),
        writers=max(0, _int("NBTRACK_WRITERS", 2)),
        end_wait=_seconds("NBTRACK_END_WAIT", 1.0),
        grid_fork=_flag("NBTRACK_GRID_FORK", True),
        metric_thin=_thin(env.get("NBTRACK_MLFLOW_METRICS")),
    )


THIN_DEFAULT = 100  # NBTRACK_MLFLOW_METRICS=thin: about one point in 100 per key reaches MLflow


def _thin(raw: str | None) -> int | None:
    value = (raw or "").strip().lower()
    if value in ("", "all"):
        return 1
    if value == "thin":
        return THIN_DEFAULT
    name, _, n = value.partition(":")
    if name == "thin" and n.strip().isdigit() and int(n) >= 2:
        return int(n)
    return None  # said at the run's start, where the user can act on it


def _seeds(raw: str | None) -> dict[str, int]:
    try:
        seeds = json.loads(raw or "{}")
    except ValueError:
        return {}
    if not isinstance(seeds, dict):
        return {}
    return {str(k): int(v) for k, v in seeds.items() if isinstance(v, int)}
