"""The run record: every tag, param and artifact name nbtrack writes or reads, in one place.

``CONTRACT`` lists them with their meaning (``markdown_table`` renders it for the architecture
doc), and ``RunView`` / ``VersionView`` are the MLflow-free shapes the store hands out. The
derived fields (a run's commit, user, notebook, data hash) are each decided in one function here.

This is the bottom layer: it imports nothing from nbtrack but errors.
"""

# Over 400 lines: the contract is one list on purpose (every name in one place, the doc's table
# made from it), with the MLflow-free views beside it.

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple


class Field(NamedTuple):
    name: str
    kind: Literal["tag", "param", "artifact"]
    meaning: str


# MLflow's own tags that nbtrack writes or reads
TAG_SOURCE_NAME = "mlflow.source.name"
TAG_SOURCE_TYPE = "mlflow.source.type"
TAG_GIT_COMMIT = "mlflow.source.git.commit"
TAG_GIT_BRANCH = "mlflow.source.git.branch"
TAG_GIT_REPO_URL = "mlflow.source.git.repoURL"
TAG_USER = "mlflow.user"
TAG_RUN_NAME = "mlflow.runName"
TAG_PARENT_RUN_ID = "mlflow.parentRunId"
TAG_NOTE = "mlflow.note.content"

# Tag prefixes MLflow and nbtrack keep for themselves (not user metrics on a version)
RESERVED_PREFIXES = ("nbtrack.", "mlflow.")

# A registered version's own tags (the run's record, copied when it is registered)
VERSION_TAG_RUN_ID = "run_id"
VERSION_TAG_DATA_HASH = "data_hash"
VERSION_TAG_GIT_COMMIT = "git_commit"
VERSION_TAG_NOTEBOOK = "notebook"

# nbtrack's run tags
TAG_PID = "nbtrack.pid"
TAG_PID_START = "nbtrack.pid_start"
TAG_HOST = "nbtrack.host"
TAG_KERNEL = "nbtrack.kernel"
TAG_GIT = "nbtrack.git"
TAG_GIT_DIRTY = "nbtrack.git.dirty"
TAG_CELL_SHA256 = "nbtrack.cell.sha256"
TAG_NOTEBOOK_SHA256 = "nbtrack.notebook.sha256"
TAG_NOTEBOOK_SNAPSHOT = "nbtrack.notebook.snapshot"
TAG_NOTEBOOK_FOUND = "nbtrack.notebook"
TAG_NOTEBOOK_OUTPUT = "nbtrack.notebook.output"
TAG_KILLED_REASON = "nbtrack.killed_reason"
TAG_METRICS_THINNED = "nbtrack.metrics.thinned"
TAG_EXPERIMENT = "nbtrack.experiment"
TAG_REPRO_OF = "nbtrack.repro.of"
TAG_REPRO_CELL = "nbtrack.repro.cell"
TAG_REPRO_VERDICT = "nbtrack.repro.verdict"
TAG_REPRO_ATTEMPT = "nbtrack.repro.attempt"
TAG_REPRO_LAST_VERDICT = "nbtrack.repro.last_verdict"
TAG_REPRODUCES = "nbtrack.reproduces"
TAG_REPRODUCED_BY = "nbtrack.reproduced_by"
TAG_GRID = "nbtrack.grid"
TAG_GRID_POINT = "nbtrack.grid.point"
TAG_GRID_POINTS = "nbtrack.grid.points"
TAG_GRID_STATUS = "nbtrack.grid.status"
TAG_GRID_SECONDS = "nbtrack.grid.seconds"
TAG_GRID_PARALLEL = "nbtrack.grid.parallel"
TAG_GRID_NOTEBOOK = "nbtrack.grid.notebook"
TAG_GRID_MADE = "nbtrack.grid.made"
TAG_GRID_EXECUTOR = "nbtrack.grid.executor"
TAG_GRID_ERROR = "nbtrack.grid.error"
TAG_GRID_ATTEMPT = "nbtrack.grid.attempt"

# registered-model and model-version tags
TAG_STAGE = "nbtrack.stage"
TAG_AUDIT_PREFIX = "nbtrack.audit."
TAG_AUDIT_FORMAT = "nbtrack.audit_format"
TAG_REGISTERED_BY = "nbtrack.registered_by"
TAG_REGISTERED_AT = "nbtrack.registered_at"
TAG_PROMOTED_BY = "nbtrack.promoted_by"
TAG_PROMOTED_AT = "nbtrack.promoted_at"
TAG_PROMOTION_REASON = "nbtrack.promotion_reason"
TAG_ARCHIVED_BY = "nbtrack.archived_by"
TAG_ARCHIVED_AT = "nbtrack.archived_at"
TAG_ARCHIVE_REASON = "nbtrack.archive_reason"

# lineage: inference runs (nbtrack.predict, nbtrack.inference)
TAG_KIND = "nbtrack.kind"  # "inference" on an inference run
KIND_INFERENCE = "inference"
TAG_PARENT_RUN = "nbtrack.parent_run"  # an inference run's model version's training run
TAG_INFERENCE_ALIAS = "nbtrack.inference.alias"  # the alias the caller named (name@alias)
TAG_INFERENCE_ALIASES = "nbtrack.inference.aliases"  # the aliases the version held then
TAG_INFERENCE_STATUS = "nbtrack.inference.status"  # open while a serving loop appends batches
TAG_PREDICTIONS_MIN_ID = "nbtrack.predictions.min_id"
TAG_PREDICTIONS_MAX_ID = "nbtrack.predictions.max_id"
PARAM_MODEL_NAME = "model_name"
PARAM_MODEL_VERSION = "model_version"
PARAM_MODEL_URI = "model_uri"
PARAM_INPUT_DATA_HASH = "input_data_hash"
PARAM_PREDICTIONS_HASH = "predictions_hash"
PARAM_INFERENCE_TIMESTAMP = "inference_timestamp"
PARAM_N_PREDICTIONS = "n_predictions"
INFERENCE_RUN_PREFIX = "inference-"
INFERENCE_CONTEXT = "inference"  # MLflow dataset context of an inference input

# params
PARAM_GIT_COMMIT = "git_commit"
PARAM_DATA_HASH = "data_hash"
PARAM_RANDOM_SEED = "random_seed"

# artifacts
ARTIFACT_CELL = "nbtrack/cell.py"
ARTIFACT_HISTORY = "nbtrack/history.py"
ARTIFACT_NOTEBOOK = "nbtrack/notebook.ipynb"
ARTIFACT_REQUIREMENTS = "nbtrack/requirements.txt"
ARTIFACT_ENVIRONMENT = "nbtrack/environment.json"
ARTIFACT_GIT_DIFF = "nbtrack/git.diff"
ARTIFACT_TRACEBACK = "nbtrack/traceback.txt"
ARTIFACT_DATA = "nbtrack/data.json"
ARTIFACT_REPRO_REPORT = "nbtrack/repro/report.json"
ARTIFACT_REPRO_OUTPUT = "nbtrack/repro/output.ipynb"
ARTIFACT_REPRO_LOG = "nbtrack/repro/output.log"
ARTIFACT_PARAMS_DIR = "nbtrack/params"
ARTIFACT_PARAMS_JSON = "nbtrack/params.json"
ARTIFACT_GRID_SPEC = "nbtrack/grid/spec.json"
ARTIFACT_GRID_POINTS = "nbtrack/grid/points.json"
ARTIFACT_GRID_OUTPUT = "nbtrack/grid/output.ipynb"
ARTIFACT_GRID_ERROR = "nbtrack/grid/error.json"
ARTIFACT_METRIC_LOG = "nbtrack/metrics/points.parquet"
ARTIFACT_PREDICTIONS_DIR = "nbtrack/predictions"  # part-00000.parquet, part-00001.parquet...
ARTIFACT_INPUT_PROFILE = "nbtrack/input_profile.json"

# retention: checkpoints, usage, gc
TAG_KEEP = "nbtrack.keep"  # on a run: gc never collects it (any value)
TAG_GC = "nbtrack.gc"  # on a run gc collected: when, what, bytes (JSON)
TAG_GC_LOG_PREFIX = "nbtrack.gc_log."  # experiment tags, one per applied gc (JSON)
TAG_CHECKPOINT_STEP = "nbtrack.checkpoint.step"  # on a logged model nbtrack.checkpoint made
TAG_CHECKPOINT_STATE = "nbtrack.checkpoint.state"  # "writing", "ready", "dropped: <why>"
TAG_CHECKPOINT_FORMAT = "nbtrack.checkpoint.format"  # how to load it: a flavour, or state_dict
TAG_CHECKPOINT_BY = "nbtrack.checkpoint.by"  # "val_acc max": what keep=N ranked by
SNAPSHOT_DIR = "nbtrack"  # a run's own record; gc never deletes under it

CONTRACT: tuple[Field, ...] = (
    Field(TAG_SOURCE_NAME, "tag", "the notebook (or script) the run came from"),
    Field(TAG_SOURCE_TYPE, "tag", "MLflow's source type of the run"),
    Field(TAG_GIT_COMMIT, "tag", "the git commit the run ran at"),
    Field(TAG_GIT_BRANCH, "tag", "the git branch the run ran on"),
    Field(TAG_GIT_REPO_URL, "tag", "the git remote, credentials removed"),
    Field(TAG_USER, "tag", "who ran it"),
    Field(TAG_RUN_NAME, "tag", "the run's name"),
    Field(TAG_PARENT_RUN_ID, "tag", "the parent run (a grid's point runs under the grid run)"),
    Field(TAG_NOTE, "tag", "the run's description: --note, else the markdown right above the cell"),
    Field(TAG_PID, "tag", "the process that records the run"),
    Field(TAG_PID_START, "tag", "that process's start time, so a reused pid is not taken as alive"),
    Field(TAG_HOST, "tag", "the machine that records the run"),
    Field(TAG_KERNEL, "tag", "the Jupyter kernel the cell ran in, or none"),
    Field(TAG_GIT, "tag", "why no git state was recorded (e.g. not a git repository)"),
    Field(TAG_GIT_DIRTY, "tag", "whether the work tree had uncommitted changes"),
    Field(TAG_CELL_SHA256, "tag", "sha256 of the cell's code"),
    Field(TAG_NOTEBOOK_SHA256, "tag", "sha256 of the notebook as saved"),
    Field(
        TAG_NOTEBOOK_FOUND,
        "tag",
        "how the kernel knew its notebook (the frontend, papermill's output, the launcher's "
        "command line...), or why it recorded none",
    ),
    Field(TAG_NOTEBOOK_OUTPUT, "tag", "papermill's output notebook (the notebook is its input)"),
    Field(
        TAG_NOTEBOOK_SNAPSHOT,
        "tag",
        "what nbtrack/notebook.ipynb is: exact (the saved file, hashing to the sha256 tag), or "
        "what was changed (redacted, widget state removed)",
    ),
    Field(TAG_KILLED_REASON, "tag", "why a run was marked killed"),
    Field(
        TAG_METRICS_THINNED,
        "tag",
        "set when MLflow got a thinned copy of the metrics (NBTRACK_MLFLOW_METRICS=thin): "
        "'lttb 1/N'; every point is in the metric log artifact",
    ),
    Field(TAG_EXPERIMENT, "tag", "the experiment a registered version's run belongs to"),
    Field(
        TAG_REPRO_OF,
        "tag",
        "on every run a reproduction made (the re-run of the cell, and the runs of earlier "
        "tracked cells it re-executed): the run it reproduces",
    ),
    Field(
        TAG_REPRO_CELL,
        "tag",
        "on every run a reproduction made: sha256 of the cell it reproduces (a run of another "
        "cell is an earlier tracked cell's, left out of nbtrack.runs and compare by default)",
    ),
    Field(TAG_REPRO_VERDICT, "tag", "on a reproduction: its verdict"),
    Field(TAG_REPRO_ATTEMPT, "tag", "on a reproduction: which attempt it is"),
    Field(TAG_REPRO_LAST_VERDICT, "tag", "on the original: the latest reproduction's verdict"),
    Field(TAG_REPRODUCES, "tag", "on a reproduction: the original run"),
    Field(TAG_REPRODUCED_BY, "tag", "on the original: its latest reproduction"),
    Field(TAG_GRID, "tag", "the grid a run belongs to"),
    Field(TAG_GRID_POINT, "tag", "a point run's place in its grid"),
    Field(TAG_GRID_POINTS, "tag", "on a grid run: how many points it has"),
    Field(TAG_GRID_STATUS, "tag", "a grid or point's status"),
    Field(TAG_GRID_SECONDS, "tag", "how long a point took"),
    Field(TAG_GRID_PARALLEL, "tag", "how many points ran at once"),
    Field(TAG_GRID_NOTEBOOK, "tag", "the notebook a grid runs"),
    Field(TAG_GRID_MADE, "tag", "how many points were made so far"),
    Field(TAG_GRID_EXECUTOR, "tag", "the executor the grid ran on"),
    Field(TAG_GRID_ERROR, "tag", "a failed point's error"),
    Field(TAG_GRID_ATTEMPT, "tag", "which attempt of a point this run is"),
    Field(TAG_KIND, "tag", "what a run is when it is not training: 'inference'"),
    Field(
        TAG_PARENT_RUN, "tag", "on an inference run: the training run of the model version it used"
    ),
    Field(TAG_INFERENCE_ALIAS, "tag", "on an inference run: the alias the caller named, if any"),
    Field(
        TAG_INFERENCE_ALIASES,
        "tag",
        "on an inference run: the aliases its model version held when it started (comma-separated)",
    ),
    Field(
        TAG_INFERENCE_STATUS,
        "tag",
        "on an inference run: 'open' while a serving loop appends batches, then 'closed'",
    ),
    Field(
        TAG_PREDICTIONS_MIN_ID,
        "tag",
        "on an inference run: its smallest prediction id (string order), with the largest a "
        "range a lookup reads the run's files for only when the id is in it",
    ),
    Field(TAG_PREDICTIONS_MAX_ID, "tag", "on an inference run: its largest prediction id"),
    Field(PARAM_MODEL_NAME, "param", "on an inference run: the registered model's name"),
    Field(PARAM_MODEL_VERSION, "param", "on an inference run: the model version (a number)"),
    Field(
        PARAM_MODEL_URI,
        "param",
        "on an inference run: the model as resolved (models:/NAME/VERSION, never an alias)",
    ),
    Field(
        PARAM_INPUT_DATA_HASH,
        "param",
        "on an inference run: sha256 over the input rows' hashes, in order",
    ),
    Field(PARAM_PREDICTIONS_HASH, "param", "on an inference run: sha256 of the predictions"),
    Field(
        PARAM_INFERENCE_TIMESTAMP, "param", "on an inference run: when it started (ISO 8601 UTC)"
    ),
    Field(PARAM_N_PREDICTIONS, "param", "on an inference run: how many predictions it made"),
    Field(TAG_STAGE, "tag", "a model version's stage: production, staging or archived"),
    Field(TAG_AUDIT_PREFIX, "tag", "prefix of the audit trail's records on a registered model"),
    Field(TAG_AUDIT_FORMAT, "tag", "how to read a registered model's audit records"),
    Field(TAG_REGISTERED_BY, "tag", "who registered a model version"),
    Field(TAG_REGISTERED_AT, "tag", "when a model version was registered"),
    Field(TAG_PROMOTED_BY, "tag", "who promoted a model version"),
    Field(TAG_PROMOTED_AT, "tag", "when a model version was promoted"),
    Field(TAG_PROMOTION_REASON, "tag", "why a model version was promoted"),
    Field(TAG_ARCHIVED_BY, "tag", "who archived a model version"),
    Field(TAG_ARCHIVED_AT, "tag", "when a model version was archived"),
    Field(TAG_ARCHIVE_REASON, "tag", "why a model version was archived"),
    Field(VERSION_TAG_RUN_ID, "version tag", "the run a model version was registered from"),
    Field(VERSION_TAG_DATA_HASH, "version tag", "that run's data digest"),
    Field(VERSION_TAG_GIT_COMMIT, "version tag", "that run's git commit"),
    Field(VERSION_TAG_NOTEBOOK, "version tag", "that run's notebook"),
    Field(PARAM_GIT_COMMIT, "param", "the git commit (read when the MLflow tag is missing)"),
    Field(PARAM_DATA_HASH, "param", "digest of the data the run read"),
    Field(PARAM_RANDOM_SEED, "param", "the random seed the run used"),
    Field(ARTIFACT_CELL, "artifact", "the cell's code, secrets redacted"),
    Field(ARTIFACT_HISTORY, "artifact", "the kernel's input history up to the cell"),
    Field(ARTIFACT_NOTEBOOK, "artifact", "the notebook as saved, widget state left out"),
    Field(ARTIFACT_REQUIREMENTS, "artifact", "the installed distributions"),
    Field(ARTIFACT_ENVIRONMENT, "artifact", "Python, platform and environment details"),
    Field(ARTIFACT_GIT_DIFF, "artifact", "uncommitted changes of the work tree"),
    Field(ARTIFACT_TRACEBACK, "artifact", "the traceback of a failed run, secrets redacted"),
    Field(ARTIFACT_DATA, "artifact", "the data the run read: path, kind, size, digest per input"),
    Field(ARTIFACT_PARAMS_DIR, "artifact", "params too long for MLflow, one text file each"),
    Field(
        ARTIFACT_PARAMS_JSON,
        "artifact",
        "each param's value and source: papermill, cell, namespace (read by the cell, bound by "
        "an earlier one), flag, nbtrack, or user (the user's own logging won over what nbtrack "
        "found); under `(dropped)`, how many found params the cap of 100 left out, and why",
    ),
    Field(ARTIFACT_REPRO_REPORT, "artifact", "on a re-run: the reproduction's checks and verdict"),
    Field(ARTIFACT_REPRO_OUTPUT, "artifact", "on a re-run: the executed notebook"),
    Field(ARTIFACT_REPRO_LOG, "artifact", "on a re-run: the execution's log"),
    Field(ARTIFACT_GRID_SPEC, "artifact", "a grid's specification"),
    Field(ARTIFACT_GRID_POINTS, "artifact", "a grid's points"),
    Field(ARTIFACT_GRID_OUTPUT, "artifact", "a point's executed notebook"),
    Field(ARTIFACT_GRID_ERROR, "artifact", "a failed point's error"),
    Field(
        ARTIFACT_METRIC_LOG,
        "artifact",
        "every point logged with nbtrack.log (key, step, timestamp ms, value; Parquet, sorted "
        "by key and step), stored when the run ends: what nbtrack's readers load",
    ),
    Field(
        ARTIFACT_PREDICTIONS_DIR,
        "artifact",
        "on an inference run: the predictions, one Parquet file per batch (prediction_id, "
        "row_hash, timestamp ms, output)",
    ),
    Field(
        ARTIFACT_INPUT_PROFILE,
        "artifact",
        "on an inference run: the input's profile per column (mean, std, min, max, null rate)",
    ),
    Field(TAG_KEEP, "tag", "set by the user on a run that nbtrack gc must never collect"),
    Field(
        TAG_GC,
        "tag",
        "on a run nbtrack gc collected: when, which kinds, files and bytes deleted (JSON)",
    ),
    Field(
        TAG_GC_LOG_PREFIX,
        "tag",
        "experiment tags: prefix of the gc log, one record per applied gc (who, when, policy, "
        "runs, bytes freed)",
    ),
    Field(TAG_CHECKPOINT_STEP, "tag", "logged model tag: the training step of a checkpoint"),
    Field(
        TAG_CHECKPOINT_STATE,
        "tag",
        "logged model tag: a checkpoint's state: writing, ready, or dropped (by keep=N, with why)",
    ),
    Field(
        TAG_CHECKPOINT_FORMAT,
        "tag",
        "logged model tag: how a checkpoint loads: an MLflow flavour (pytorch, sklearn) or "
        "state_dict (torch.load)",
    ),
    Field(
        TAG_CHECKPOINT_BY,
        "tag",
        "logged model tag: the metric and mode a checkpoint was ranked by ('val_acc max')",
    ),
)


def markdown_table() -> str:
    """CONTRACT as a Markdown table, one row per Field in CONTRACT order."""
    rows = ["| name | kind | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{f.name}` | {f.kind} | {f.meaning} |" for f in CONTRACT]
    return "\n".join(rows) + "\n"


def commit_of(tags: dict, params: dict) -> str | None:
    """A run's git commit: MLflow's tag, then the param (older runs and grids write only that)."""
    return tags.get(TAG_GIT_COMMIT) or params.get(PARAM_GIT_COMMIT) or None


def user_of(tags: dict) -> str | None:
    return tags.get(TAG_USER) or None


def notebook_of(tags: dict) -> str | None:
    return tags.get(TAG_SOURCE_NAME) or None


def data_hash_of(params: dict) -> str | None:
    return params.get(PARAM_DATA_HASH) or None


def reproduction_byproduct(tags: Mapping[str, str]) -> bool:
    """Whether a run is a by-product of a reproduction: made by an earlier tracked cell that the
    reproduction re-executed on its way to the reproduced cell. The re-run of the reproduced cell
    (the one carrying the verdict, ``nbtrack.reproduces``) is not one.

    Decided from the tags a run has from its start (``nbtrack.repro.of`` and ``nbtrack.repro.cell``
    against ``nbtrack.cell.sha256``), so it never changes; a reproduction made before
    ``nbtrack.repro.cell`` existed: every run it made but the one with the verdict.
    """
    if not tags.get(TAG_REPRO_OF) or tags.get(TAG_REPRODUCES):
        return False
    cell = tags.get(TAG_REPRO_CELL)
    if cell:
        return tags.get(TAG_CELL_SHA256) != cell
    return True


@dataclass(frozen=True)
class RunView:
    """One run as nbtrack reads it; the store builds it, no MLflow entity escapes."""

    run_id: str
    experiment_id: str
    name: str
    status: str
    start_time: int | None
    end_time: int | None  # ms; None while running
    artifact_uri: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # latest values
    tags: dict[str, str] = field(default_factory=dict)
    lifecycle_stage: str = "active"
    user_id: str = ""  # MLflow's run attribute; the mlflow.user tag is read first (``user``)
    datasets: dict[str, str] = field(default_factory=dict)  # input name -> digest

    @property
    def commit(self) -> str | None:
        return commit_of(self.tags, self.params)

    @property
    def user(self) -> str | None:
        return user_of(self.tags)

    @property
    def notebook(self) -> str | None:
        return notebook_of(self.tags)

    @property
    def data_hash(self) -> str | None:
        return data_hash_of(self.params)


@dataclass(frozen=True)
class VersionView:
    """One registered model version, MLflow-free."""

    name: str
    version: str
    run_id: str | None
    source: str
    status: str
    creation_time: int | None
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    current_stage: str | None = None
    description: str | None = None
    model_id: str | None = None  # the LoggedModel it was registered from (MLflow 3)

    @property
    def stage(self) -> str | None:
        """nbtrack's stage tag (production | staging | archived)."""
        return self.tags.get(TAG_STAGE)


@dataclass(frozen=True)
class ModelView:
    """One registered model, MLflow-free: its aliases (alias -> version) and tags."""

    name: str
    aliases: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    latest_versions: tuple[str, ...] = ()
    last_updated: int | None = None  # ms


@dataclass(frozen=True)
class LoggedModelView:
    """One MLflow 3 LoggedModel (``models:/m-<id>``) a run logged."""

    model_id: str
    name: str
    model_uri: str
    creation_time: int | None = None


@dataclass(frozen=True)
class ModelFilesView:
    """A logged model as retention reads it: where its files are, its run, tags and metrics
    (the values and steps MLflow linked to it)."""

    model_id: str
    name: str
    run_id: str
    experiment_id: str
    artifact_location: str
    status: str = ""
    creation_time: int | None = None
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    metric_steps: dict[str, int] = field(default_factory=dict)

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_id}"
