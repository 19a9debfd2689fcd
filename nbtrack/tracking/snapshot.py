"""What a tracked run records when it starts, besides its params: its tags (who, which process,
which code), the snapshot files (cell, history, notebook, requirements, environment, git diff,
data) and its datasets, every name from nbtrack.record.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from nbtrack import logs, settings
from nbtrack import record as R
from nbtrack.capture import data as datacap
from nbtrack.capture import environment
from nbtrack.capture import notebook as nbcap
from nbtrack.capture.redaction import Redactor

if TYPE_CHECKING:
    from nbtrack.tracking.tracker import RunSpec, Source

_log = logs.get(__name__)


def run_tags(
    spec: RunSpec, src: Source, gitstate, runner_tags: Mapping[str, str]
) -> dict[str, str]:
    """Where the run came from (source, process, kernel, cell, git) plus the user's and the
    runner's tags, to be redacted by the run's pass."""
    tags = {
        R.TAG_SOURCE_TYPE: src.kind,
        **process_tags(),
        R.TAG_KERNEL: src.kernel or "none",
        R.TAG_CELL_SHA256: nbcap.cell_sha256(src.code),
    }
    if src.path:
        tags[R.TAG_SOURCE_NAME] = src.path
    if src.found:
        tags[R.TAG_NOTEBOOK_FOUND] = src.found
    if src.output:
        tags[R.TAG_NOTEBOOK_OUTPUT] = src.output
    thin = settings.current().metric_thin
    if thin and thin > 1:  # the metric log's sender thins what MLflow gets (tracking.metrics)
        tags[R.TAG_METRICS_THINNED] = f"lttb 1/{thin}"
    tags.update(git_tags(gitstate))
    tags.update({k: str(v) for k, v in spec.tags.items()})
    tags.update(runner_tags)
    return tags


def process_tags() -> dict[str, str]:
    """Who and which process: what tells a run whose process died (closed as KILLED later)."""
    return {
        R.TAG_USER: _user(),
        R.TAG_HOST: socket.gethostname(),
        R.TAG_PID: str(os.getpid()),
        R.TAG_PID_START: _process_start(),
    }


def git_tags(gitstate) -> dict[str, str]:
    """The code version as MLflow's own git tags (the UI shows them) and nbtrack's dirty flag."""
    if gitstate is None:
        return {R.TAG_GIT: "not a git repository"}
    tags = {R.TAG_GIT_DIRTY: str(gitstate.dirty).lower()}
    for key, value in (
        (R.TAG_GIT_COMMIT, gitstate.commit),
        (R.TAG_GIT_BRANCH, gitstate.branch),
        (R.TAG_GIT_REPO_URL, gitstate.repo_url),
    ):
        if value:
            tags[key] = value
    return tags


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        _log.debug("return getpass.getuser() failed", exc_info=True)
        return "unknown"


def _process_start() -> str:
    try:
        import psutil

        return f"{psutil.Process().create_time():.3f}"
    except Exception:
        _log.debug("import psutil failed", exc_info=True)
        return ""


def snapshot_files(src: Source, nb, gitstate, inputs, redactor: Redactor) -> dict[str, str]:
    """The snapshot's files, each through the run's redaction pass."""
    files = {
        R.ARTIFACT_CELL: src.code,
        R.ARTIFACT_REQUIREMENTS: environment.installed_distributions(),
        R.ARTIFACT_ENVIRONMENT: json.dumps(environment.environment_info(), indent=1) + "\n",
    }
    if src.history is not None:
        files[R.ARTIFACT_HISTORY] = nbcap.history_script(src.history, redactor)
    if nb is not None:
        files[R.ARTIFACT_NOTEBOOK] = nb.text
    if gitstate is not None and gitstate.dirty and gitstate.diff:
        files[R.ARTIFACT_GIT_DIFF] = gitstate.diff
    if inputs:
        files[R.ARTIFACT_DATA] = json.dumps([i.to_dict() for i in inputs], indent=1) + "\n"
    return redactor.files(files)


def dataset_entry(item: datacap.DataInput) -> dict:
    d = {
        "name": Path(item.path).name or item.given,
        "digest": item.digest,
        "source": item.path,
        "sha256": item.digest,
        "kind": item.kind,
        "size": item.size,
        "files": item.files,
    }
    if item.dvc_md5:
        d["dvc_md5"] = item.dvc_md5
    return d
